"""Helpers for tests that take real WARC, WAT and WET records apart and put them back together."""

from __future__ import annotations

import gzip
import html.parser
import json
import zlib
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Member:
    """One gzip member of a file: where it starts and its decompressed bytes (one WARC record)."""

    offset: int
    raw: bytes
    content: bytes


def read_members(path: Path) -> list[Member]:
    """Split a .gz file into its gzip members."""
    data = Path(path).read_bytes()
    members = []
    position = 0
    while position < len(data):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        content = inflater.decompress(data[position:])
        end = len(data) - len(inflater.unused_data)
        members.append(Member(offset=position, raw=data[position:end], content=content))
        position = end
    return members


def compress(*records: bytes) -> bytes:
    """Return the records as one gzip member each, as Common Crawl writes them."""
    return b"".join(gzip.compress(record, mtime=0) for record in records)


def set_content_length(record: bytes) -> bytes:
    """Return a WARC record with its Content-Length header set to the length of its block."""
    head, _separator, rest = record.partition(b"\r\n\r\n")
    block = rest[: -4] if rest.endswith(b"\r\n\r\n") else rest
    lines = [
        b"Content-Length: %d" % len(block) if line.lower().startswith(b"content-length:") else line
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + block + b"\r\n\r\n"


def split_http(record: bytes) -> tuple[bytes, bytes, bytes]:
    """Split a WARC response record into its WARC header, HTTP header and HTTP body."""
    warc_head, _separator, rest = record.partition(b"\r\n\r\n")
    block = rest[:-4] if rest.endswith(b"\r\n\r\n") else rest
    http_head, _separator, body = block.partition(b"\r\n\r\n")
    return warc_head, http_head, body


def join_http(warc_head: bytes, http_head: bytes, body: bytes) -> bytes:
    """Build a WARC response record from its parts, with a matching Content-Length."""
    return set_content_length(warc_head + b"\r\n\r\n" + http_head + b"\r\n\r\n" + body + b"\r\n\r\n")


def replace_http_header(http_head: bytes, name: bytes, value: bytes | None) -> bytes:
    """Return an HTTP header block with the field ``name`` replaced, or removed when ``value`` is None."""
    lines = http_head.split(b"\r\n")
    kept = [line for line in lines if not line.lower().startswith(name.lower() + b":")]
    if value is not None:
        kept.append(name + b": " + value)
    return b"\r\n".join(kept)


class _ImageCollector(html.parser.HTMLParser):
    """Collect what ia-web-commons writes into a WAT record, using the standard library's HTML parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[dict] = []
        self.metas: list[dict] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if tag == "img" and "src" in values:
            link = {"path": "IMG@/src", "url": values["src"]}
            link.update({name: values[name] for name in ("alt", "title") if name in values})
            self.links.append(link)
        elif tag == "a" and "href" in values:
            self.links.append({"path": "A@/href", "url": values["href"], "text": "link"})
        elif tag == "html":
            for name in ("lang", "xml:lang"):
                if name in values:
                    self.metas.append({"name": f"HTML@/{name}", "content": values[name]})
        elif tag == "meta":
            self.metas.append({name: values[name] for name in ("name", "content", "http-equiv", "property") if name in values})
        elif tag == "base" and "href" in values and self.base is None:
            self.base = values["href"]


def wat_record_for(response: bytes, refers_to: str = "<urn:uuid:00000000-0000-0000-0000-000000000000>") -> bytes:
    """Build the WAT metadata record that ia-web-commons would write for a WARC response record.

    The JSON has the same layout and key order as Common Crawl's WAT files. Its HTML metadata
    comes from the standard library's HTML parser, not from the extractor under test.
    """
    warc_head, http_head, body = split_http(response)
    warc_headers = dict(line.split(b": ", 1) for line in warc_head.split(b"\r\n")[1:])
    warc_headers = {name.decode(): value.decode() for name, value in warc_headers.items()}
    status_line, *header_lines = http_head.decode("latin-1").split("\r\n")
    version, status, reason = (status_line.split(" ", 2) + [""])[:3]
    headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)

    collector = _ImageCollector()
    collector.feed(body.decode("utf-8", errors="replace"))
    head: dict = {"Title": "", "Metas": collector.metas}
    if collector.base is not None:
        head["Base"] = collector.base
    envelope = {
        "Format": "WARC",
        "WARC-Header-Length": str(len(warc_head) + 4),
        "Actual-Content-Length": warc_headers.get("Content-Length", "0"),
        "WARC-Header-Metadata": warc_headers,
        "Block-Digest": warc_headers.get("WARC-Block-Digest", ""),
        "Payload-Metadata": {
            "Actual-Content-Type": "application/http; msgtype=response",
            "HTTP-Response-Metadata": {
                "Response-Message": {"Version": version, "Status": status, "Reason": reason},
                "Headers-Length": str(len(http_head) + 4),
                "Headers": headers,
                "Entity-Length": str(len(body)),
                "Entity-Trailing-Slop-Length": "0",
                "HTML-Metadata": {"Head": head, "Links": collector.links},
            },
            "Trailing-Slop-Length": "4",
        },
    }
    metadata = {"Container": {"Filename": "test.warc.gz", "Compressed": True, "Offset": "0"}, "Envelope": envelope}
    payload = json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    header = (
        "WARC/1.0\r\n"
        "WARC-Type: metadata\r\n"
        f"WARC-Target-URI: {warc_headers.get('WARC-Target-URI', '')}\r\n"
        f"WARC-Date: {warc_headers.get('WARC-Date', '')}\r\n"
        "WARC-Record-ID: <urn:uuid:11111111-1111-1111-1111-111111111111>\r\n"
        f"WARC-Refers-To: {refers_to}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n"
    ).encode()
    return header + b"\r\n" + payload + b"\r\n\r\n"
