"""Harvest candidates from the HTML responses of WARC files such as Common Crawl's.

Only ``response`` records whose HTTP Content-Type is HTML (or XHTML) and whose HTTP status is
2xx are parsed. Payloads with a chunked Transfer-Encoding or a gzip, deflate or Brotli
Content-Encoding are decoded first. A payload longer than ``max_page_bytes`` is cut there and
counted as ``pages_cut_at_limit``. A stream that ends inside a record, such as a partly
downloaded ``.warc.gz``, is read up to that record: the reader logs a warning with the byte
offset and keeps every complete record before it.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from fastwarc.warc import WarcRecord, WarcRecordType

from wit_builder.harvest.extract import extract_page
from wit_builder.harvest.reader import ArchiveReader
from wit_builder.harvest.stats import HarvestStats
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

HTML_MEDIA_TYPES = frozenset({"text/html", "application/xhtml+xml"})

#: Payload bytes parsed from one page. Longer payloads are cut and counted as ``pages_cut_at_limit``.
MAX_HTML_BYTES = 8 * 1024 * 1024

SOURCE = "warc"

_GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})


@dataclass
class WarcPage:
    """An HTML response read from a WARC file."""

    url: str
    body: bytes
    content_type: str | None
    content_language: str | None
    http_status: int | None
    offset: int


def clean_target_uri(value: str | None) -> str:
    """Return a WARC-Target-URI without the angle brackets that WARC 1.0 examples and some writers put around it."""
    uri = (value or "").strip()
    if uri.startswith("<") and uri.endswith(">"):
        uri = uri[1:-1].strip()
    return uri


def media_type(content_type: str | None) -> str:
    """Return the lowercase media type of a Content-Type value, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def dechunk(body: bytes) -> bytes | None:
    """Return the data of an HTTP/1.1 chunked body, or None when ``body`` is not validly chunked.

    A body cut inside its last chunk returns the data received, as browsers show it.
    """
    chunks = []
    position = 0
    while True:
        line_end = body.find(b"\n", position)
        if line_end == -1:
            return b"".join(chunks) if chunks else None
        size_field = body[position:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            return None
        if size == 0:
            return b"".join(chunks)
        start = line_end + 1
        chunks.append(body[start : start + size])
        position = start + size
        if position >= len(body):
            return b"".join(chunks)
        # Each chunk's data ends with CRLF, or a bare LF from sloppy servers.
        if body.startswith(b"\r\n", position):
            position += 2
        elif body.startswith(b"\n", position):
            position += 1
        else:
            return None


def decompress_payload(body: bytes, encoding: str, max_bytes: int) -> bytes | None:
    """Return a gzip, deflate or Brotli body decompressed to at most ``max_bytes``, or None when it fails.

    A body in another encoding is returned as it is.
    """
    if encoding == "br":
        return _decompress_brotli(body, max_bytes)
    if encoding in _GZIP_ENCODINGS:
        wbits = zlib.MAX_WBITS | 16
    elif encoding == "deflate":
        # "deflate" should be zlib-wrapped, but many servers send raw deflate data.
        wbits = zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS
    else:
        return body
    try:
        return zlib.decompressobj(wbits).decompress(body, max_bytes)
    except zlib.error as error:
        logger.debug("cannot decompress a %s payload: %s", encoding, error)
        return None


def _decompress_brotli(body: bytes, max_bytes: int) -> bytes | None:
    import brotli

    try:
        return brotli.decompress(body)[:max_bytes]
    except brotli.error as error:
        logger.debug("cannot decompress a br payload: %s", error)
        return None


def decode_payload(body: bytes, record: WarcRecord, max_bytes: int, stats: HarvestStats) -> bytes:
    """Undo a chunked Transfer-Encoding and a Content-Encoding that the WARC writer kept in the payload."""
    headers = record.http_headers
    transfer_encoding = (headers.get("Transfer-Encoding") or "").lower()
    if "chunked" in transfer_encoding:
        data = dechunk(body)
        if data is None:
            # Some writers decode the body but keep the header, so the body is used as it is.
            stats.extra["payloads_not_chunked"] += 1
        else:
            body = data

    content_encoding = (headers.get("Content-Encoding") or "").strip().lower()
    if content_encoding and content_encoding != "identity":
        data = decompress_payload(body, content_encoding, max_bytes)
        if data is None:
            stats.extra["payload_errors"] += 1
        else:
            body = data
    return body


def _http_status(record: WarcRecord) -> int | None:
    try:
        return record.http_headers.status_code
    except (TypeError, ValueError):
        return None


def iter_html_pages(reader: ArchiveReader, stats: HarvestStats, max_page_bytes: int = MAX_HTML_BYTES) -> Iterator[WarcPage]:
    """Yield the 2xx HTML responses of a WARC stream and count every record in ``stats``."""
    for record in reader:
        if record.record_type != WarcRecordType.response or not record.is_http:
            continue
        content_type = record.http_headers.get("Content-Type")
        is_html = media_type(content_type) in HTML_MEDIA_TYPES
        status = _http_status(record)
        is_ok = status is not None and 200 <= status < 300

        payload = None
        if is_html and is_ok:
            payload = reader.read_payload(record, max_page_bytes)
            if payload is None:
                # The stream ended inside this record, and the reader has recorded where.
                break

        stats.extra["responses"] += 1
        if not is_html:
            stats.extra["responses_not_html"] += 1
            continue
        stats.pages += 1
        if status is not None:
            stats.http_statuses[status] += 1
        if payload is None:
            stats.pages_by_status[FetchStatus.HTTP_ERROR.value] += 1
            continue

        body, cut = payload
        stats.pages_by_status[FetchStatus.OK.value] += 1
        if cut:
            stats.extra["pages_cut_at_limit"] += 1
        if record.headers.get("WARC-Truncated"):
            stats.extra["payloads_truncated"] += 1

        yield WarcPage(
            url=clean_target_uri(record.headers.get("WARC-Target-URI")),
            body=decode_payload(body, record, max_page_bytes, stats),
            content_type=content_type,
            content_language=record.http_headers.get("Content-Language"),
            http_status=status,
            offset=record.stream_pos,
        )
    stats.extra["records"] = reader.records


def harvest_warc_stream(reader: ArchiveReader, add_candidates, stats: HarvestStats, source: str = SOURCE,
                        max_page_bytes: int = MAX_HTML_BYTES) -> None:
    """Extract the candidates of every HTML page of a WARC stream and pass each page's list to ``add_candidates``."""
    # Imported here, not at the top, because the WAT harvest imports this module and never decodes HTML.
    from wit_builder.harvest.decode import decode_html

    for page in iter_html_pages(reader, stats, max_page_bytes):
        html = decode_html(page.body, page.content_type)
        extraction = extract_page(html, page.url, source, with_links=False, content_language=page.content_language)
        stats.add_page(extraction)
        add_candidates(extraction.candidates)


def harvest_warc(path: str | os.PathLike, out_path: str | os.PathLike, source: str = SOURCE,
                 max_page_bytes: int = MAX_HTML_BYTES) -> HarvestStats:
    """Write the candidates of every HTML response in one local WARC file to ``out_path`` (parquet).

    Raises FileNotFoundError when the file does not exist. A damaged file is read up to the damage.
    """
    from wit_builder.harvest.archives import ArchiveOptions, harvest_input
    from wit_builder.harvest.sources import ArchiveFormat, HarvestInput

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WARC file not found: {path}")
    options = ArchiveOptions(max_page_bytes=max_page_bytes, source=source)
    outcome = harvest_input(HarvestInput(str(path), ArchiveFormat.WARC), out_path, options)
    return outcome.stats


def harvest_warcs(paths: list[Path], out_dir: Path, source: str = SOURCE) -> HarvestStats:
    """Harvest each WARC file into ``out_dir/part-NNNNN.parquet`` and write ``out_dir/stats.json``.

    An input that fails is logged and listed in stats.json, and the others are still read.
    """
    from wit_builder.harvest.archives import ArchiveOptions, harvest_inputs
    from wit_builder.harvest.sources import ArchiveFormat, HarvestInput

    inputs = [HarvestInput(os.fspath(path), ArchiveFormat.WARC) for path in paths]
    run = harvest_inputs(inputs, Path(out_dir), ArchiveOptions(source=source))
    return run.total
