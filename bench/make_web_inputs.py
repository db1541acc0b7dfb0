"""Write the WARC and WAT inputs of the harvest benchmark to bench/data/.

Every input is a series of gzip members, one WARC record each, as in Common Crawl's
files, repeated K times (gzip members concatenate into one valid file):

- ``wat-real-kK.warc.wat.gz``: the real Common Crawl WAT file. Its first member (the
  warcinfo record) is written once, the others K times. That file contains only the WAT
  record of a request, so it has no image link at all.
- ``wat-derived-kK.warc.wat.gz``: a WAT file derived here from the real WARC files,
  one WAT metadata record per WARC record, after the real WAT's warcinfo record. It
  is the input on which the tools produce candidates.
- ``warc-kK.warc.gz``: the members of the real WARC files, in order, K times.

The derived WAT follows the JSON layout of Common Crawl's WAT files (written by
ia-web-commons): ``Container``, ``Envelope.WARC-Header-Metadata`` and
``Envelope.Payload-Metadata``, with ``HTTP-Response-Metadata.HTML-Metadata`` for HTML
responses. Its ``Links`` list has one entry per ``A``, ``AREA``, ``IMG``, ``IFRAME``,
``FRAME``, ``EMBED`` and ``FORM`` URL in document order, with ia-web-commons' paths
(``IMG@/src``) and attributes (``alt`` and ``title`` for images, the anchor text
cut to 128 characters as ``text``). ``Head`` has the title, base URL, meta, link and
script tags, and the ``<html lang>`` as a meta entry named ``HTML@/lang``. The HTML is parsed with the standard library's ``html.parser``, not with
either tool under test.

NOTE: the derived WAT approximates ia-web-commons. It leaves out the CSS URLs,
``onclick`` URLs, global ``background``/``data-href`` attributes and the text extract
that real WAT records can carry, so its records are somewhat smaller than real ones.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import html.parser
import json
import logging
import re
import sys
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness import DEFAULT_DATA_DIR, MB, REPO_ROOT, add_data_arguments

DEFAULT_SOURCE_DIR = REPO_ROOT.parent / "shared" / "data" / "web"
REAL_WAT = Path("commoncrawl_whirlwind") / "whirlwind.warc.wat.gz"
REAL_WARCS = (
    Path("warcfile.warc.gz"),
    Path("commoncrawl_whirlwind") / "whirlwind.warc.gz",
    Path("enwiki-main-page-2012-post-blackout.warc.gz"),
)
#: Compressed sizes of the inputs in MB. Common Crawl's WAT files are several hundred MB, so the
#: 200 MB inputs show the rate with start-up weighing about as little as in a real file, and the
#: 50 MB inputs keep a run short.
DEFAULT_TARGET_MBS = [50.0, 200.0]
_CHUNK_BYTES = 16384

#: Maximum length, in characters, of the anchor and title texts that ia-web-commons keeps.
MAX_TEXT_LENGTH = 128

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_RECORD_ID_NAMESPACE = uuid.UUID("6f1c7a52-3f0e-4a57-9d7a-1b2a3c4d5e6f")

logger = logging.getLogger("make_web_inputs")


@dataclass(frozen=True)
class GzipMember:
    """One gzip member of a file: its compressed bytes, offset and decompressed content."""

    raw: bytes
    offset: int
    content: bytes
    header_length: int


@dataclass(frozen=True)
class WarcRecord:
    """One WARC record: its header fields, the length of the header block and the content block."""

    headers: dict[str, str]
    header_length: int
    block: bytes


def split_gzip_members(path: Path) -> list[GzipMember]:
    """Split a multi-member gzip file into its members. Raises ValueError on a damaged or truncated member."""
    data = path.read_bytes()
    view = memoryview(data)
    members = []
    offset = 0
    while offset < len(data):
        # Feed small chunks, so that finding where a member ends copies little of what follows it.
        decompressor = zlib.decompressobj(wbits=31)
        parts = []
        position = offset
        try:
            while not decompressor.eof and position < len(data):
                chunk = view[position : position + _CHUNK_BYTES]
                parts.append(decompressor.decompress(chunk))
                position += len(chunk)
        except zlib.error as error:
            raise ValueError(f"{path}: invalid gzip member at byte offset {offset}: {error}") from error
        if not decompressor.eof:
            raise ValueError(f"{path}: the gzip member at byte offset {offset} is truncated")
        end = position - len(decompressor.unused_data)
        raw = data[offset:end]
        members.append(GzipMember(raw=raw, offset=offset, content=b"".join(parts), header_length=_gzip_header_length(raw)))
        offset = end
    return members


def _gzip_header_length(raw: bytes) -> int:
    """Return the length of a gzip member's header, optional fields included (RFC 1952)."""
    flags = raw[3]
    position = 10
    if flags & 0x04:
        position += 2 + int.from_bytes(raw[position : position + 2], "little")
    for flag in (0x08, 0x10):
        if flags & flag:
            position = raw.index(b"\0", position) + 1
    if flags & 0x02:
        position += 2
    return position


def parse_warc_records(content: bytes) -> Iterator[WarcRecord]:
    """Yield the WARC records of a decompressed member (usually one)."""
    position = 0
    while True:
        while position < len(content) and content[position : position + 1] in (b"\r", b"\n"):
            position += 1
        if position >= len(content):
            return
        header_end = content.find(b"\r\n\r\n", position)
        if header_end < 0:
            raise ValueError(f"WARC record at offset {position} has no end of header")
        lines = content[position:header_end].decode("utf-8", "replace").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip()] = value.strip()
        block_start = header_end + 4
        length = int(headers.get("Content-Length", "0"))
        yield WarcRecord(headers=headers, header_length=block_start - position, block=content[block_start : block_start + length])
        position = block_start + length


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def _parse_http(block: bytes) -> tuple[str, dict[str, str], int, bytes]:
    """Split an HTTP message into its first line, headers, header length and body."""
    head, separator, body = block.partition(b"\r\n\r\n")
    if not separator:
        return "", {}, 0, block
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return lines[0], headers, len(head) + 4, body


def _header_value(headers: dict[str, str], name: str) -> str:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), "")


def _decode_html(body: bytes, content_type: str) -> str:
    """Decode an HTML body with the charset of its Content-Type or meta tag, else UTF-8, replacing bad bytes."""
    charset = ""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'")
    if not charset:
        match = _META_CHARSET.search(body[:4096])
        charset = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


class HtmlMetadataParser(html.parser.HTMLParser):
    """Collect the ``HTML-Metadata`` of a WAT record from one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.base: str | None = None
        self.metas: list[dict[str, str]] = []
        self.head_links: list[dict[str, str]] = []
        self.scripts: list[dict[str, str]] = []
        self.links: list[dict[str, str]] = []
        self._title_parts: list[str] | None = None
        self._open_anchors: list[tuple[dict[str, str], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        name = tag.upper()
        if name == "HTML":
            # ia-web-commons lists the <html> element's language as a meta entry named HTML@/lang.
            for attribute in ("lang", "xml:lang"):
                if attribute in values:
                    self.metas.append({"name": f"HTML@/{attribute}", "content": values[attribute]})
        elif name == "TITLE" and self.title is None:
            self._title_parts = []
        elif name == "BASE" and "href" in values:
            self.base = values["href"]
        elif name == "META":
            meta = {key: values[key] for key in ("name", "rel", "content", "http-equiv", "property") if key in values}
            if meta:
                self.metas.append(meta)
        elif name == "LINK":
            self._add(self.head_links, name, "href", values, ("rel", "type"))
        elif name == "SCRIPT":
            self._add(self.scripts, name, "src", values, ("type",))
        elif name == "A" and "href" in values:
            link = self._link(name, "href", values, ("target", "alt", "title", "rel", "hreflang", "type"))
            self._open_anchors.append((link, []))
        elif name == "IMG":
            self._add(self.links, name, "src", values, ("alt", "title"))
        elif name == "AREA":
            self._add(self.links, name, "href", values, ("rel",))
        elif name == "FORM":
            self._add(self.links, name, "action", values, ("target", "method"))
        elif name in ("IFRAME", "FRAME", "EMBED"):
            self._add(self.links, name, "src", values, ())

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag.upper() == "A" and self._open_anchors:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        name = tag.upper()
        if name == "TITLE" and self._title_parts is not None:
            self.title = _WHITESPACE.sub(" ", "".join(self._title_parts)).strip()[:MAX_TEXT_LENGTH]
            self._title_parts = None
        elif name == "A" and self._open_anchors:
            link, parts = self._open_anchors.pop()
            text = _WHITESPACE.sub(" ", "".join(parts)).strip()[:MAX_TEXT_LENGTH]
            if text:
                link["text"] = text
            self.links.append(link)

    def handle_data(self, data: str) -> None:
        if self._title_parts is not None:
            self._title_parts.append(data)
        for _link, parts in self._open_anchors:
            parts.append(data)

    def close(self) -> None:
        super().close()
        while self._open_anchors:
            self.handle_endtag("a")

    @staticmethod
    def _link(tag: str, url_attribute: str, values: dict[str, str], optional: tuple[str, ...]) -> dict[str, str]:
        link = {"path": f"{tag}@/{url_attribute}", "url": values[url_attribute]}
        link.update((key, values[key]) for key in optional if key in values)
        return link

    def _add(self, target: list, tag: str, url_attribute: str, values: dict[str, str], optional: tuple[str, ...]) -> None:
        if url_attribute in values:
            target.append(self._link(tag, url_attribute, values, optional))

    def metadata(self) -> dict:
        head: dict = {}
        if self.title is not None:
            head["Title"] = self.title
        if self.base is not None:
            head["Base"] = self.base
        for key, values in (("Metas", self.metas), ("Link", self.head_links), ("Scripts", self.scripts)):
            if values:
                head[key] = values
        return {"Head": head, "Links": self.links}


def html_metadata(body: bytes, content_type: str) -> dict:
    """Return the ``HTML-Metadata`` object of one HTML page."""
    parser = HtmlMetadataParser()
    parser.feed(_decode_html(body, content_type))
    parser.close()
    return parser.metadata()


def payload_metadata(record: WarcRecord) -> dict:
    """Return the ``Payload-Metadata`` object of a WAT record for one WARC record."""
    content_type = record.headers.get("Content-Type", "")
    payload: dict = {"Actual-Content-Type": content_type}
    if content_type.startswith("application/http"):
        first_line, headers, headers_length, body = _parse_http(record.block)
        entity = {"Entity-Length": str(len(body)), "Entity-Digest": _digest(body), "Entity-Trailing-Slop-Length": "0"}
        if "msgtype=response" in content_type:
            version, _, rest = first_line.partition(" ")
            status, _, reason = rest.partition(" ")
            response: dict = {
                "Response-Message": {"Version": version, "Status": status, "Reason": reason},
                "Headers-Length": str(headers_length),
                "Headers": headers,
                "Entity-Metadata": {"Actual-Content-Type": _header_value(headers, "Content-Type"), **entity},
            }
            http_type = _header_value(headers, "Content-Type")
            if http_type.split(";", 1)[0].strip().lower() in _HTML_TYPES:
                response["HTML-Metadata"] = html_metadata(body, http_type)
            payload["HTTP-Response-Metadata"] = response
        else:
            method, _, rest = first_line.partition(" ")
            path, _, version = rest.rpartition(" ")
            payload["HTTP-Request-Metadata"] = {
                "Request-Message": {"Method": method, "Path": path, "Version": version},
                "Headers-Length": str(headers_length),
                "Headers": headers,
                **entity,
            }
    elif content_type == "application/warc-fields":
        fields = {}
        for line in record.block.decode("utf-8", "replace").splitlines():
            name, separator, value = line.partition(":")
            if separator:
                fields[name.strip()] = value.strip()
        key = "WARC-Info-Metadata" if record.headers.get("WARC-Type") == "warcinfo" else "WARC-Metadata-Metadata"
        payload[key] = fields
    payload.update(
        {"Actual-Content-Length": str(len(record.block)), "Trailing-Slop-Length": "4", "Block-Digest": _digest(record.block)}
    )
    return payload


def wat_record(source_name: str, member: GzipMember, record: WarcRecord, index: int) -> bytes:
    """Return the WAT metadata record, uncompressed, that describes one WARC record."""
    document = {
        "Container": {
            "Filename": source_name,
            "Compressed": True,
            "Offset": str(member.offset),
            "Gzip-Metadata": {
                "Deflate-Length": str(len(member.raw) - member.header_length - 8),
                "Header-Length": str(member.header_length),
                "Footer-Length": "8",
                "Inflated-CRC": str(zlib.crc32(member.content)),
                "Inflated-Length": str(len(member.content)),
            },
        },
        "Envelope": {
            "Format": "WARC",
            "WARC-Header-Length": str(record.header_length),
            "Actual-Content-Length": str(len(record.block)),
            "WARC-Header-Metadata": record.headers,
            "Block-Digest": _digest(record.block),
            "Payload-Metadata": payload_metadata(record),
        },
    }
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    record_id = uuid.uuid5(_RECORD_ID_NAMESPACE, f"{source_name}:{member.offset}:{index}")
    header_lines = ["WARC/1.0", "WARC-Type: metadata"]
    if "WARC-Target-URI" in record.headers:
        header_lines.append(f"WARC-Target-URI: {record.headers['WARC-Target-URI']}")
    header_lines += [
        f"WARC-Date: {record.headers.get('WARC-Date', '')}",
        f"WARC-Record-ID: <urn:uuid:{record_id}>",
        f"WARC-Refers-To: {record.headers.get('WARC-Record-ID', '')}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        f"WARC-Payload-Digest: {_digest(body)}",
        f"WARC-Block-Digest: {_digest(body)}",
    ]
    return ("\r\n".join(header_lines) + "\r\n\r\n").encode("utf-8") + body + b"\r\n\r\n"


def derived_wat_members(source_dir: Path) -> list[bytes]:
    """Return the gzip members of one copy of the derived WAT: one per record of the real WARC files."""
    members = []
    for relative in REAL_WARCS:
        path = source_dir / relative
        for member in split_gzip_members(path):
            for index, record in enumerate(parse_warc_records(member.content)):
                members.append(gzip.compress(wat_record(path.name, member, record, index), compresslevel=6, mtime=0))
    return members


@dataclass(frozen=True)
class WebInput:
    """One generated input file with its size and the number of copies it repeats."""

    kind: str
    path: Path
    copies: int


def copies_for(target_mb: float, once: list[bytes], repeated: list[bytes]) -> int:
    """Return the K whose file size (once + K * repeated) is closest to ``target_mb`` MB, at least 1."""
    repeated_bytes = sum(map(len, repeated))
    return max(1, round((target_mb * MB - sum(map(len, once))) / repeated_bytes))


def write_repeated(path: Path, once: list[bytes], repeated: list[bytes], copies: int, force: bool = False) -> Path:
    """Write ``once`` followed by ``copies`` times ``repeated``, unless ``path`` already exists and ``force`` is off."""
    if path.is_file() and not force:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as output:
        output.writelines(once)
        for _copy in range(copies):
            output.writelines(repeated)
    partial.replace(path)
    logger.info("wrote %s (%.1f MB)", path, path.stat().st_size / MB)
    return path


def ensure_inputs(
    source_dir: Path, data_dir: Path, target_mbs: list[float], copies: int | None = None, force: bool = False
) -> list[WebInput]:
    """Write the missing inputs and return them, three per size in ``target_mbs``.

    ``copies`` fixes K and then one size is written. Otherwise each input gets the K whose file
    is nearest each target size in MB. ``force`` rewrites inputs that exist already.
    """
    for relative in (REAL_WAT, *REAL_WARCS):
        if not (source_dir / relative).is_file():
            raise FileNotFoundError(f"source file not found: {source_dir / relative}; pass --source-dir")

    wat_members = [member.raw for member in split_gzip_members(source_dir / REAL_WAT)]
    warc_members = [member.raw for relative in REAL_WARCS for member in split_gzip_members(source_dir / relative)]
    derived = derived_wat_members(source_dir)
    plans = [
        ("wat-real", "warc.wat.gz", wat_members[:1], wat_members[1:]),
        ("wat-derived", "warc.wat.gz", wat_members[:1], derived),
        ("warc", "warc.gz", [], warc_members),
    ]

    inputs = []
    for target_mb in target_mbs if copies is None else target_mbs[:1]:
        for kind, suffix, once, repeated in plans:
            count = copies or copies_for(target_mb, once, repeated)
            path = write_repeated(data_dir / f"{kind}-k{count}.{suffix}", once, repeated, count, force)
            inputs.append(WebInput(kind=kind, path=path, copies=count))
    return inputs


def parse_sizes(text: str) -> list[float]:
    """Parse a comma-separated list of sizes in MB, such as ``50,200``; raises ValueError unless each is positive."""
    sizes = [float(item) for item in text.split(",") if item.strip()]
    if not sizes or any(size <= 0 for size in sizes):
        raise ValueError(f"invalid sizes {text!r}: expected positive numbers of MB separated by commas")
    return sizes


def add_size_arguments(parser: argparse.ArgumentParser, default: list[float]) -> None:
    """Add ``--target-mb`` (a list of compressed sizes) and ``--copies`` (a fixed K instead)."""
    parser.add_argument(
        "--target-mb",
        type=parse_sizes,
        default=default,
        help="comma-separated compressed sizes of the inputs in MB (10**6 bytes); each size sets its K and gets "
        f"its own three inputs (default: {','.join(f'{size:g}' for size in default)})",
    )
    parser.add_argument("--copies", type=int, default=None, help="repeat every input K times instead of using --target-mb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, DEFAULT_SOURCE_DIR, "folder of the real WARC and WAT files")
    add_size_arguments(parser, DEFAULT_TARGET_MBS)
    parser.add_argument("--force", action="store_true", help="rewrite inputs that exist already")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for web_input in ensure_inputs(args.source_dir, args.data_dir, args.target_mb, args.copies, args.force):
        print(f"{web_input.kind}: {web_input.path} (K = {web_input.copies}, {web_input.path.stat().st_size / MB:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
