"""Streaming reader of MediaWiki pages-articles XML dumps.

Reads ``.xml``, ``.xml.bz2`` (single- or multistream), ``.xml.gz`` and ``.xml.xz`` files
with ``xml.etree.ElementTree.iterparse`` and clears each page after it is read, so memory
stays flat however large the dump is. Element names are matched without their XML
namespace, so every export schema version works (0.10 and 0.11 are tested). A dump whose
XML declaration names an encoding that expat cannot read (a multi-byte one such as
EUC-KR or Shift_JIS) is recoded to UTF-8 on the fly.

The dump's <siteinfo> gives the local namespace names (``Datei:``, ``파일:``) and the
case rule: on a "first-letter" wiki "paris" and "Paris" name the same page, on a
"case-sensitive" wiki (Wiktionary) they do not.

By default the reader yields only articles: pages in namespace 0 that are not
redirects. A dump that ends in the middle of a page (a cut download) yields every
complete page and logs a warning that names where it stopped.
"""

from __future__ import annotations

import bz2
import codecs
import dataclasses
import io
import logging
import lzma
import os
import re
import zlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from tqdm import tqdm

logger = logging.getLogger(__name__)

ARTICLE_NAMESPACE = 0
FILE_NAMESPACE = 6
MEDIA_NAMESPACE = -2
CATEGORY_NAMESPACE = 14

# Canonical English names and aliases that every MediaWiki site accepts, whatever its
# language. A dump's <siteinfo> adds the local names (for example "Datei" on dewiki).
_CANONICAL_NAMESPACES = {
    "Media": -2,
    "Special": -1,
    "Talk": 1,
    "User": 2,
    "User talk": 3,
    "Project": 4,
    "Project talk": 5,
    "File": 6,
    "Image": 6,
    "File talk": 7,
    "Image talk": 7,
    "MediaWiki": 8,
    "MediaWiki talk": 9,
    "Template": 10,
    "Template talk": 11,
    "Help": 12,
    "Help talk": 13,
    "Category": 14,
    "Category talk": 15,
}

#: Case rules of <siteinfo><case>: titles differ only after their first letter, or in every letter.
FIRST_LETTER = "first-letter"
CASE_SENSITIVE = "case-sensitive"

# Encodings that expat decodes itself. Any other declared encoding is recoded to UTF-8.
_EXPAT_ENCODINGS = {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "ascii", "latin-1"}
_EXPAT_NAMES = {"utf-8", "utf-16", "iso-8859-1", "us-ascii"}
_XML_DECLARATION = re.compile(rb"""\A(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")

# "#REDIRECT [[Target]]" in any case, with or without spaces or a colon before the link.
_REDIRECT_TEXT = re.compile(r"\A\s*#\s*redirect\b\s*:?\s*(?:\[\[([^\]|#]*))?", re.IGNORECASE)


class DumpFormatError(ValueError):
    """The file is not a MediaWiki XML dump."""


def normalize_namespace_name(name: str) -> str:
    """Return the lookup key of a namespace name: underscores as spaces, single spaces, case-folded."""
    return " ".join(name.replace("_", " ").split()).casefold()


@dataclass
class Namespaces:
    """Namespace numbers by name, from MediaWiki's canonical names plus a dump's <siteinfo>."""

    keys_by_name: dict[str, int] = field(default_factory=dict)

    @classmethod
    def default(cls) -> Namespaces:
        """Return the canonical English namespaces, used when a dump has no <siteinfo>."""
        namespaces = cls()
        for name, key in _CANONICAL_NAMESPACES.items():
            namespaces.add(name, key)
        return namespaces

    def add(self, name: str, key: int) -> None:
        """Register ``name`` as a prefix of namespace ``key``."""
        normalized = normalize_namespace_name(name)
        if normalized:
            self.keys_by_name[normalized] = key

    def key_for(self, prefix: str) -> int | None:
        """Return the namespace number of a title prefix such as "File" or "image", or None."""
        return self.keys_by_name.get(normalize_namespace_name(prefix))

    def names_of(self, key: int) -> set[str]:
        """Return every normalized name that refers to namespace ``key``."""
        return {name for name, value in self.keys_by_name.items() if value == key}

    def namespace_of_title(self, title: str) -> int:
        """Return the namespace of a full page title, for dumps older than schema 0.5 without <ns>."""
        prefix, colon, _rest = title.partition(":")
        if not colon:
            return ARTICLE_NAMESPACE
        key = self.key_for(prefix)
        return ARTICLE_NAMESPACE if key is None else key


@dataclass
class SiteInfo:
    """Facts about a wiki from its dump's <siteinfo>: names, language, case rule, namespaces."""

    sitename: str = ""
    dbname: str = ""
    language: str = ""
    case: str = FIRST_LETTER
    encoding: str = "utf-8"
    namespaces: Namespaces = field(default_factory=Namespaces.default)

    @property
    def first_letter_case(self) -> bool:
        """True when titles are case-insensitive in their first letter, as on every Wikipedia."""
        return self.case != CASE_SENSITIVE

    def normalize_title(self, title: str) -> str:
        """Return ``title`` as this wiki stores it (see ``normalize_title``)."""
        return normalize_title(title, first_letter=self.first_letter_case)


@dataclass(frozen=True)
class WikiPage:
    """One page of a dump: its title, namespace number, page id and the wikitext of its last revision.

    ``redirect`` is the target title of a redirect page and None for other pages.
    """

    title: str
    namespace: int
    page_id: int
    text: str
    redirect: str | None = None


@dataclass
class DumpStats:
    """Counts of one pass over a dump."""

    pages_seen: int = 0
    articles: int = 0
    redirects: int = 0
    other_namespaces: int = 0
    bytes_read: int = 0
    truncated: bool = False
    stop_reason: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def normalize_title(title: str, first_letter: bool = True) -> str:
    """Return ``title`` as MediaWiki stores it: underscores as spaces, single spaces, first letter upper case.

    This matches the page titles of a dump with the way links and redirects spell them.
    With ``first_letter`` False (a case-sensitive wiki) the case is left alone.
    """
    title = " ".join(title.replace("_", " ").split())
    if not first_letter:
        return title
    return title[:1].upper() + title[1:]


def redirect_target_of_text(text: str) -> str | None:
    """Return the target of a "#REDIRECT [[Target]]" text, "" when the link is missing, else None."""
    match = _REDIRECT_TEXT.match(text)
    if match is None:
        return None
    return (match.group(1) or "").strip()


def _local_name(tag: str) -> str:
    return tag.rpartition("}")[2]


class _DecompressingReader(io.RawIOBase):
    """A raw stream of the decompressed bytes of ``raw``, one bzip2, gzip or xz stream after another.

    Unlike ``bz2.BZ2File`` and its siblings, it hands out every byte the decompressor
    produced before a cut or a corrupt block, and then ends as if the file ended there.
    ``error`` then records why: EOFError when the file ends inside a stream, OSError for
    corrupt data. Raising instead would make a buffered read drop the bytes it had
    already gathered. Concatenated streams (multistream bzip2, multi-member gzip) are
    read in order, and zero padding after the last one is skipped.
    """

    CHUNK = 1 << 16

    def __init__(self, raw: BinaryIO, make_decompressor):
        self._raw = raw
        self._make = make_decompressor
        self._decompressor = make_decompressor()
        self._in_stream = False
        self._pending = b""
        self.error: BaseException | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._pending:
            if self._done or self.error is not None:
                return 0
            self._fill()
        size = min(len(target), len(self._pending))
        target[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _fill(self) -> None:
        chunk = self._raw.read(self.CHUNK)
        if not chunk:
            if self._in_stream:
                self.error = EOFError("no end-of-stream marker")
            else:
                self._done = True
            return
        output = []
        try:
            while chunk:
                self._in_stream = True
                output.append(self._decompressor.decompress(chunk))
                if not self._decompressor.eof:
                    break
                chunk = self._decompressor.unused_data
                self._decompressor = self._make()
                self._in_stream = False
                if not chunk.strip(b"\0"):
                    break
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as error:
            self.error = OSError(f"corrupt compressed data: {error}")
        self._pending = b"".join(output)


def _gzip_decompressor():
    return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)


_DECOMPRESSORS = {".bz2": bz2.BZ2Decompressor, ".gz": _gzip_decompressor, ".xz": lzma.LZMADecompressor}


def _open_compressed(raw: BinaryIO, path: Path) -> BinaryIO:
    make_decompressor = _DECOMPRESSORS.get(path.suffix.lower())
    if make_decompressor is None:
        return raw
    return io.BufferedReader(_DecompressingReader(raw, make_decompressor), buffer_size=1 << 16)


def declared_encoding(head: bytes) -> str:
    """Return the normalized encoding named in an XML declaration, "utf-8" when none is named.

    A UTF-16 byte-order mark gives "utf-16". An unknown encoding name raises DumpFormatError.
    """
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    name = _declared_name(head)
    if name is None:
        return "utf-8"
    try:
        # bytes.decode accepts text encodings only, so "base64" or "rot13" fail here too.
        b"<?xml".decode(name)
        return codecs.lookup(name).name
    except (LookupError, TypeError, ValueError) as error:
        raise DumpFormatError(f"the XML declaration names an unknown encoding {name!r}: {error}") from error


def _declared_name(head: bytes) -> str | None:
    match = _XML_DECLARATION.match(head)
    return match.group(1).decode("ascii") if match is not None else None


class _Utf8Recoder(io.RawIOBase):
    """A byte stream that decodes ``stream`` from ``encoding`` and gives the text back as UTF-8.

    The XML declaration is rewritten to say UTF-8, so expat reads the result as it is.
    """

    def __init__(self, stream: BinaryIO, encoding: str):
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._stream = stream
        self._buffer = b""
        self._first = True
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self._buffer and not self._done:
            chunk = self._stream.read(1 << 16)
            text = self._decoder.decode(chunk, final=not chunk)
            if self._first and text:
                text = re.sub(r"""\A(\ufeff?<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""", r'\1"utf-8"', text, count=1)
                self._first = False
            self._buffer = text.encode("utf-8")
            self._done = not chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


def xml_byte_stream(stream: BinaryIO, force_utf8: bool = False) -> tuple[BinaryIO, str]:
    """Return a stream expat can parse and the encoding the XML declares.

    Encodings that expat decodes (UTF-8, UTF-16, ASCII, Latin-1) pass through; others, such as
    EUC-KR, Shift_JIS or windows-1252, are recoded to UTF-8. With ``force_utf8``, every
    encoding but UTF-8 is recoded, for callers that read the bytes themselves.
    """
    buffered = io.BufferedReader(stream, buffer_size=1 << 16) if not hasattr(stream, "peek") else stream
    head = buffered.peek(512)[:512]
    encoding = declared_encoding(head)
    name = _declared_name(head)
    # expat accepts these names only as spelled here, not aliases such as "UTF8".
    spelled_for_expat = name is None or name.lower() in _EXPAT_NAMES
    if encoding == "utf-8" and spelled_for_expat:
        return buffered, encoding
    if encoding in _EXPAT_ENCODINGS and spelled_for_expat and not force_utf8:
        return buffered, encoding
    logger.info("recoding the dump from %s to UTF-8", encoding)
    return io.BufferedReader(_Utf8Recoder(buffered, encoding), buffer_size=1 << 16), encoding


class DumpReader:
    """Iterate over the pages of a MediaWiki XML dump.

    Iterating yields ``WikiPage`` objects in dump order. ``namespaces`` contains the
    canonical names plus those of the dump's <siteinfo> once the first page is yielded.
    ``stats`` counts what the last iteration read and skipped.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        keep_namespaces: frozenset[int] | None = frozenset({ARTICLE_NAMESPACE}),
        include_redirects: bool = False,
        max_articles: int | None = None,
        progress: bool = False,
        progress_desc: str = "reading dump",
    ):
        """Set up a reader of ``path``.

        ``keep_namespaces`` selects the namespaces to yield (None yields all).
        ``include_redirects`` also yields redirect pages, with ``redirect`` set.
        ``max_articles`` stops after that many yielded non-redirect pages.
        """
        self.path = _dump_file(path)
        self.keep_namespaces = keep_namespaces
        self.include_redirects = include_redirects
        self.max_articles = max_articles
        self.progress = progress
        self.progress_desc = progress_desc
        self.siteinfo = SiteInfo()
        self.stats = DumpStats()

    @property
    def namespaces(self) -> Namespaces:
        """Namespace names: the canonical ones plus those of the dump's <siteinfo> once it is read."""
        return self.siteinfo.namespaces

    def __iter__(self) -> Iterator[WikiPage]:
        self.stats = DumpStats()
        size = self.path.stat().st_size
        with open(self.path, "rb") as raw, _open_compressed(raw, self.path) as compressed:
            bar = tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self.progress_desc,
                disable=not self.progress,
            )
            decompressing = getattr(compressed, "raw", None)
            try:
                stream, self.siteinfo.encoding = xml_byte_stream(compressed)
                if isinstance(decompressing, _DecompressingReader) and decompressing.error is not None and not stream.peek(1):
                    raise DumpFormatError(f"{self.path} cannot be decompressed: {decompressing.error}")
                yield from self._iter_stream(stream, raw, bar, decompressing)
            finally:
                self.stats.bytes_read = raw.tell()
                bar.close()

    def _iter_stream(self, stream: BinaryIO, raw: BinaryIO, bar: tqdm, decompressing) -> Iterator[WikiPage]:
        root: ET.Element | None = None
        last_page: WikiPage | None = None
        reported_bytes = 0
        context = ET.iterparse(stream, events=("start", "end"))

        try:
            for event, element in context:
                if event == "start":
                    if root is None:
                        root = element
                        if _local_name(root.tag) != "mediawiki":
                            raise DumpFormatError(
                                f"{self.path} is not a MediaWiki XML dump: the root element is "
                                f"<{_local_name(root.tag)}>, expected <mediawiki>"
                            )
                        self.siteinfo.language = root.get("{http://www.w3.org/XML/1998/namespace}lang", "")
                    continue

                name = _local_name(element.tag)
                if name == "siteinfo":
                    read_siteinfo_element(element, self.siteinfo)
                    root.clear()
                    continue
                if name != "page":
                    continue

                page = read_page_element(element, self.namespaces)
                root.clear()
                self.stats.pages_seen += 1
                last_page = page

                position = raw.tell()
                if position != reported_bytes:
                    bar.update(position - reported_bytes)
                    reported_bytes = position
                    bar.set_postfix(pages=self.stats.pages_seen, refresh=False)

                if not self._keep(page):
                    continue
                if page.redirect is None:
                    self.stats.articles += 1
                yield page
                if self.max_articles is not None and self.stats.articles >= self.max_articles:
                    self.stats.stop_reason = f"reached max_articles={self.max_articles}"
                    return

        except ET.ParseError as error:
            compressed_error = getattr(decompressing, "error", None)
            if root is None:
                cause = compressed_error or error
                raise DumpFormatError(f"{self.path} is not a MediaWiki XML dump: {cause}") from error
            if isinstance(compressed_error, EOFError):
                self._stop_early(f"compressed stream is cut off after {raw.tell()} bytes ({compressed_error})", last_page)
            elif compressed_error is not None:
                self._stop_early(f"compressed stream is corrupt after {raw.tell()} bytes ({compressed_error})", last_page)
            else:
                line, column = error.position
                self._stop_early(f"XML ends early or is malformed at line {line}, column {column} ({error})", last_page)
            return

        # The XML can be complete while the compressed file is not: a bad checksum at the end.
        compressed_error = getattr(decompressing, "error", None)
        if compressed_error is not None:
            self._stop_early(f"compressed stream is corrupt after {raw.tell()} bytes ({compressed_error})", last_page)

    def _stop_early(self, reason: str, last_page: WikiPage | None) -> None:
        self.stats.truncated = True
        self.stats.stop_reason = reason
        if last_page is None:
            where = "before the first complete page"
        else:
            where = f"after page {last_page.title!r} (id {last_page.page_id})"
        logger.warning(
            "dump %s stopped %s: %s; kept the %d complete pages before it",
            self.path,
            where,
            reason,
            self.stats.pages_seen,
        )

    def _keep(self, page: WikiPage) -> bool:
        if self.keep_namespaces is not None and page.namespace not in self.keep_namespaces:
            self.stats.other_namespaces += 1
            return False
        if page.redirect is not None:
            self.stats.redirects += 1
            return self.include_redirects
        return True

def read_siteinfo_element(siteinfo: ET.Element, into: SiteInfo) -> SiteInfo:
    """Fill ``into`` from a <siteinfo> element: names, case rule and local namespace names."""
    for child in siteinfo:
        name = _local_name(child.tag)
        if name in ("sitename", "dbname"):
            setattr(into, name, (child.text or "").strip())
        elif name == "case":
            into.case = (child.text or FIRST_LETTER).strip()
        elif name == "namespaces":
            for namespace in child:
                key = namespace.get("key")
                if key is None or not namespace.text:
                    continue
                try:
                    into.namespaces.add(namespace.text, int(key))
                except ValueError:
                    logger.warning("skipped namespace %r with a non-numeric key %r", namespace.text, key)
    return into


def read_page_element(page: ET.Element, namespaces: Namespaces) -> WikiPage:
    """Return the ``WikiPage`` of a <page> element; the last revision's text is the page text."""
    title = ""
    namespace: int | None = None
    page_id = -1
    redirect_element: str | None = None
    text = ""

    for child in page:
        name = _local_name(child.tag)
        if name == "title":
            title = child.text or ""
        elif name == "ns":
            namespace = _parse_int(child.text, default=ARTICLE_NAMESPACE)
        elif name == "id":
            page_id = _parse_int(child.text, default=-1)
        elif name == "redirect":
            redirect_element = child.get("title", "")
        elif name == "revision":
            # A history dump has several revisions per page. The last one is the current text.
            for part in child:
                if _local_name(part.tag) == "text":
                    text = part.text or ""

    if namespace is None:
        namespace = namespaces.namespace_of_title(title)

    redirect = redirect_target_of_text(text)
    if redirect_element is not None:
        redirect = redirect_element or redirect or ""
    return WikiPage(title=title, namespace=namespace, page_id=page_id, text=text, redirect=redirect)


def read_siteinfo(path: str | os.PathLike) -> SiteInfo:
    """Read only the <siteinfo> of a dump (the start of the file), without reading its pages."""
    path = _dump_file(path)
    info = SiteInfo()
    with open(path, "rb") as raw, _open_compressed(raw, path) as compressed:
        stream, info.encoding = xml_byte_stream(compressed)
        try:
            for event, element in ET.iterparse(stream, events=("start", "end")):
                name = _local_name(element.tag)
                if event == "start" and name == "mediawiki":
                    info.language = element.get("{http://www.w3.org/XML/1998/namespace}lang", "")
                elif event == "start" and name == "page":
                    break
                elif event == "end" and name == "siteinfo":
                    read_siteinfo_element(element, info)
                    break
        except (ET.ParseError, EOFError, OSError) as error:
            cause = getattr(getattr(compressed, "raw", None), "error", None) or error
            raise DumpFormatError(
                f"{path} is not a MediaWiki XML dump: its start cannot be read ({cause}). "
                "Give a pages-articles .xml, .xml.bz2, .xml.gz or .xml.xz file"
            ) from error
    return info


def _dump_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dump not found: {path}")
    if not path.is_file():
        raise DumpFormatError(f"invalid dump {path}: it is not a regular file")
    return path


def _parse_int(text: str | None, default: int) -> int:
    try:
        return int((text or "").strip())
    except ValueError:
        return default


def iter_articles(path: str | os.PathLike, *, max_articles: int | None = None) -> Iterator[WikiPage]:
    """Yield the articles of a dump: namespace 0, no redirects."""
    yield from DumpReader(path, max_articles=max_articles)
