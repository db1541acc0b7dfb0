"""Decode HTML bytes to text with the charset that a browser would pick.

The order follows the WHATWG encoding sniffing steps in simplified form: a byte order mark,
then the charset of the HTTP Content-Type header, then a ``<meta>`` charset declaration in
the first bytes of the document. A page that declares nothing is decoded as UTF-8 when it is
valid UTF-8, and otherwise with the charset that charset-normalizer detects, as browsers also
guess. Undecodable bytes become U+FFFD.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

#: Bytes that charset detection reads from a page without a declared charset.
DETECTION_SAMPLE_BYTES = 32 * 1024

#: Charset of an undeclared page that is not UTF-8 and whose charset detection fails (the WHATWG default).
FALLBACK_CHARSET = "cp1252"

#: Bytes searched for a ``<meta>`` charset declaration. The WHATWG prescan reads 1,024 bytes,
#: and 4 KiB also finds declarations that follow long head content.
META_PRESCAN_BYTES = 4096

_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# WHATWG maps these labels to a superset encoding, and browsers decode pages that way.
_LABEL_ALIASES = {
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "unicode-1-1-utf-8": "utf-8",
}


def normalize_charset(label: str | None, from_meta: bool = False) -> str | None:
    """Return the Python codec name for a charset label, or None if Python has no such codec."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _LABEL_ALIASES.get(name, name)

    # A meta tag readable as ASCII cannot be in UTF-16, so WHATWG decodes such a page as UTF-8.
    if from_meta and name.startswith("utf-16"):
        return "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def charset_from_content_type(content_type: str | None) -> str | None:
    """Return the codec named by the charset parameter of a Content-Type header value."""
    if not content_type:
        return None
    match = _HEADER_CHARSET.search(content_type)
    return normalize_charset(match.group(1)) if match else None


def charset_from_meta(body: bytes) -> str | None:
    """Return the codec declared by a ``<meta>`` tag near the start of ``body``."""
    match = _META_CHARSET.search(body[:META_PRESCAN_BYTES])
    if match is None:
        return None
    return normalize_charset(match.group(1).decode("ascii", "replace"), from_meta=True)


def declared_charset(body: bytes, content_type: str | None = None) -> str | None:
    """Return the codec of a byte order mark, the Content-Type header or a ``<meta>`` tag, or None."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    return charset_from_content_type(content_type) or charset_from_meta(body)


def sniff_charset(body: bytes, content_type: str | None = None) -> str:
    """Return the declared codec of ``body``, or UTF-8 when it declares none."""
    return declared_charset(body, content_type) or "utf-8"


def detect_charset(body: bytes) -> str:
    """Return the codec that charset-normalizer detects in the first bytes of ``body``, or the fallback."""
    match = charset_normalizer.from_bytes(body[:DETECTION_SAMPLE_BYTES]).best()
    detected = normalize_charset(match.encoding) if match is not None else None
    return detected or FALLBACK_CHARSET


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Decode an HTML document, replacing bytes that are invalid in the chosen charset."""
    charset = declared_charset(body, content_type)
    if charset is None:
        try:
            return body.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as error:
            # A page cut at a size limit can end inside a UTF-8 sequence, which is no reason to guess.
            charset = "utf-8" if error.start >= len(body) - 3 else detect_charset(body)
    text = body.decode(charset, errors="replace")
    return text.removeprefix("\ufeff")
