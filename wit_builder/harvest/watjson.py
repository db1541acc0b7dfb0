"""Read the fields that the harvest needs from the JSON of one WAT response record.

Most of a WAT record is its ``Links`` list, and most links are anchors, so parsing the whole
JSON document costs more than everything else the harvest does with it. ``scan_wat_page``
therefore finds the few small JSON objects it needs (the response status line, the HTTP
headers, each ``IMG@/src`` link, the ``<html lang>`` meta entry) by their keys in the raw bytes
and parses only those. It works for the compact JSON that ia-web-commons writes, in any key
order. It returns None whenever a located object fails to parse or to check out, and
``read_wat_page`` then parses the whole document, so an unexpected layout costs time only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import orjson

from wit_builder.harvest.extract import language_tag
from wit_builder.harvest.warc import clean_target_uri

IMAGE_PATH = "IMG@/src"

# A JSON string, written so that the regular expression engine needs no backtracking.
_STRING = rb'"[^"\\]*(?:\\.[^"\\]*)*"'
# A flat JSON object: string keys with string, number, boolean or null values, no nesting.
_FLAT_OBJECT = re.compile(
    rb'\{\s*(?:' + _STRING + rb'\s*:\s*(?:' + _STRING + rb'|[-+0-9.eE]+|true|false|null)\s*(?:,\s*|(?=\})))*\}'
)
_BASE = re.compile(rb'"Base"\s*:\s*(' + _STRING + rb')')
_LANGUAGE_PRAGMA = re.compile(rb'"http-equiv"\s*:\s*"content-language"', re.IGNORECASE)
_IMAGE_KEY = b'"' + IMAGE_PATH.encode() + b'"'
# An image link in the key order that ia-web-commons writes: path, url, then alt and title when present.
_JSON_STRING = rb'"([^"\\]*(?:\\.[^"\\]*)*)"'
_IMAGE_LINK = re.compile(rb'\{"path":"IMG@/src","url":' + _JSON_STRING + rb'(?:,"alt":' + _JSON_STRING
                         + rb')?(?:,"title":' + _JSON_STRING + rb')?\}')
_IMAGE_PREFIX_LENGTH = len(b'{"path":')
_HTML_LANG_KEYS = (b'"HTML@/lang"', b'"HTML@/xml:lang"')


#: An ``IMG@/src`` link: the unresolved ``src`` and the ``alt`` and ``title`` texts, None when absent.
WatImage = tuple[str | None, str | None, str | None]


@dataclass
class WatPage:
    """The parts of one WAT response record that the harvest uses."""

    url: str
    http_status: int | None
    content_type: str | None
    base: str | None = None
    language: str | None = None
    images: list[WatImage] = field(default_factory=list)


def _child(mapping: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def header_value(headers: object, name: str) -> str | None:
    """Return an HTTP header from a WAT ``Headers`` object, whose names keep the server's spelling."""
    if not isinstance(headers, dict):
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((item for key, item in headers.items() if key.lower() == lowered), None)
    return _text(value)


def parse_status(value: object) -> int | None:
    """Return the HTTP status of a WAT ``Response-Message.Status`` value, a string of digits."""
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def declared_language(metas: object, headers: object) -> str | None:
    """Return the page's declared language: ``<html lang>``, then a Content-Language pragma, then the header."""
    pragma = None
    if isinstance(metas, list):
        for meta in metas:
            if not isinstance(meta, dict):
                continue
            name = (_text(meta.get("name")) or "").strip()
            if name in ("HTML@/lang", "HTML@/xml:lang"):
                language = language_tag(_text(meta.get("content")))
                if language:
                    return language
            equiv = (_text(meta.get("http-equiv")) or "").strip().lower()
            if pragma is None and equiv == "content-language":
                pragma = language_tag(_text(meta.get("content")))
    return pragma or language_tag(header_value(headers, "Content-Language"))


def read_wat_page(metadata: dict, record_uri: str | None) -> WatPage | None:
    """Return the page of a parsed WAT record about an HTTP response, or None for any other record."""
    envelope = _child(metadata, "Envelope")
    response = _child(envelope, "Payload-Metadata", "HTTP-Response-Metadata")
    if not isinstance(response, dict):
        return None

    url = clean_target_uri(_text(_child(envelope, "WARC-Header-Metadata", "WARC-Target-URI")) or record_uri)
    headers = response.get("Headers")
    html = response.get("HTML-Metadata")
    head = _child(html, "Head")
    page = WatPage(
        url=url,
        http_status=parse_status(_child(response, "Response-Message", "Status")),
        content_type=header_value(headers, "Content-Type"),
        base=_text(_child(head, "Base")),
        language=declared_language(_child(head, "Metas"), headers),
    )
    links = _child(html, "Links")
    if isinstance(links, list):
        page.images = [_image_of(link) for link in links if isinstance(link, dict) and link.get("path") == IMAGE_PATH]
    return page


def _image_of(link: dict) -> WatImage:
    return _text(link.get("url")), _text(link.get("alt")), _text(link.get("title"))


def parse_wat_page(data: bytes, record_uri: str | None) -> WatPage | None:
    """Return the page of a WAT response record's JSON bytes, scanning when possible and parsing otherwise.

    Raises orjson.JSONDecodeError when the scan fails and the document is not valid JSON.
    """
    # The scan does not validate the document, so it only reads documents that at least end like one.
    if record_uri and data[:16].lstrip().startswith(b"{") and data[-16:].rstrip().endswith(b"}"):
        page = scan_wat_page(data, record_uri)
        if page is not None:
            return page
    return read_wat_page(orjson.loads(data), record_uri)


def _object_at(data: bytes, key_position: int) -> dict | None:
    """Return the flat JSON object that contains the key or value at ``key_position``, or None."""
    start = data.rfind(b"{", 0, key_position)
    if start == -1:
        return None
    match = _FLAT_OBJECT.match(data, start)
    if match is None or match.end() <= key_position:
        return None
    try:
        value = orjson.loads(match.group())
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _object_after(data: bytes, key: bytes) -> dict | None:
    """Return the flat JSON object that follows ``key`` (such as ``"Headers":``), or None."""
    position = data.find(key)
    if position == -1:
        return None
    start = data.find(b"{", position + len(key))
    if start == -1 or data[position + len(key) : start].strip(b" \t\r\n:"):
        return None
    match = _FLAT_OBJECT.match(data, start)
    if match is None:
        return None
    try:
        value = orjson.loads(match.group())
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _json_string(raw: bytes | None) -> str | None:
    """Return the text of a JSON string's raw bytes (without quotes), decoding escapes only when there are any."""
    if raw is None:
        return None
    if b"\\" not in raw:
        return raw.decode("utf-8", errors="replace")
    return orjson.loads(b'"' + raw + b'"')


def _image_links(data: bytes) -> list[WatImage] | None:
    """Return the ``IMG@/src`` links of a WAT record, or None when one of them cannot be read."""
    images = []
    position = data.find(_IMAGE_KEY)
    while position != -1:
        # Links in the key order of ia-web-commons match the pattern, and others are parsed as JSON objects.
        match = _IMAGE_LINK.match(data, position - _IMAGE_PREFIX_LENGTH)
        if match is not None:
            try:
                images.append((_json_string(match.group(1)), _json_string(match.group(2)), _json_string(match.group(3))))
            except orjson.JSONDecodeError:
                return None
        else:
            link = _object_at(data, position)
            if link is None or link.get("path") != IMAGE_PATH:
                return None
            images.append(_image_of(link))
        position = data.find(_IMAGE_KEY, position + len(_IMAGE_KEY))
    return images


def _head_region(data: bytes) -> tuple[int, int]:
    """Return the byte range of the ``Head`` object: from its key to the ``Links`` key when that follows it."""
    head = data.find(b'"Head"')
    if head == -1:
        return 0, 0
    links = data.find(b'"Links"', head)
    return head, links if links != -1 else len(data)


def scan_wat_page(data: bytes, record_uri: str) -> WatPage | None:
    """Return the page read from the small objects of a WAT response record, or None to fall back to a full parse."""
    message = _object_after(data, b'"Response-Message"')
    headers = _object_after(data, b'"Headers"')
    if message is None or headers is None:
        return None
    page = WatPage(
        url=clean_target_uri(record_uri),
        http_status=parse_status(message.get("Status")),
        content_type=header_value(headers, "Content-Type"),
    )

    head_start, head_end = _head_region(data)
    base = _BASE.search(data, head_start, head_end)
    if base is not None:
        try:
            page.base = _text(orjson.loads(base.group(1)))
        except orjson.JSONDecodeError:
            return None

    metas = []
    for key in _HTML_LANG_KEYS:
        position = data.find(key, head_start, head_end)
        if position != -1:
            meta = _object_at(data, position)
            if meta is None:
                return None
            metas.append(meta)
    if not metas:
        pragma = _LANGUAGE_PRAGMA.search(data, head_start, head_end)
        if pragma is not None:
            meta = _object_at(data, pragma.start())
            if meta is None:
                return None
            metas.append(meta)
    page.language = declared_language(metas, headers)

    page.images = _image_links(data)
    return None if page.images is None else page
