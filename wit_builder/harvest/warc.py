"""Harvest candidates from the HTML responses of WARC files such as Common Crawl's.

Only ``response`` records whose HTTP Content-Type is HTML (or XHTML) and whose HTTP status is
2xx are parsed. A file that ends inside a record, such as a partly downloaded ``.warc.gz``,
is read up to that record: the reader logs a warning with the byte offset and keeps what it read.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tqdm import tqdm
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord

from wit_builder.harvest.decode import decode_html
from wit_builder.harvest.extract import drop_repeated, extract_page
from wit_builder.harvest.stats import HarvestStats
from wit_builder.parquet import clear_parts, write_records
from wit_builder.records import Candidate, FetchStatus
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

HTML_MEDIA_TYPES = frozenset({"text/html", "application/xhtml+xml"})

#: Payload bytes read from one record. Longer payloads are cut and counted as ``payloads_truncated``.
MAX_HTML_BYTES = 8 * 1024 * 1024

SOURCE = "warc"

# Errors that warcio 1.8.1 can raise on a damaged file. A file that ends inside a record header
# raises AttributeError, because its record loader then reads a header without a target URI.
_TRUNCATION_ERRORS = (ArchiveLoadFailed, EOFError, OSError, zlib.error, ValueError, AttributeError)


@dataclass
class WarcPage:
    """An HTML response read from a WARC file."""

    url: str
    body: bytes
    content_type: str | None
    http_status: int | None
    offset: int


def target_uri(record: ArcWarcRecord) -> str:
    """Return the record's WARC-Target-URI without the angle brackets that some WARC 1.0 writers put around it."""
    uri = (record.rec_headers.get_header("WARC-Target-URI") or "").strip()
    if uri.startswith("<") and uri.endswith(">"):
        uri = uri[1:-1].strip()
    return uri


def media_type(content_type: str | None) -> str:
    """Return the lowercase media type of a Content-Type value, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def _http_status(record: ArcWarcRecord) -> int | None:
    try:
        return int(record.http_headers.get_statuscode())
    except (TypeError, ValueError):
        return None


def _unread_bytes(record: ArcWarcRecord) -> int:
    """Return how many bytes of the record's declared length the file did not contain."""
    stream = record.raw_stream
    while stream.read(65536):
        pass
    return getattr(stream, "limit", 0) or 0


def _read_html(record: ArcWarcRecord, stats: HarvestStats) -> bytes | None:
    """Return the decoded HTTP payload of a record, or None when it cannot be read."""
    try:
        body = record.content_stream().read(MAX_HTML_BYTES)
    except (OSError, zlib.error, ValueError) as error:
        logger.debug("cannot decode payload of %s: %s", target_uri(record), error)
        stats.extra["payload_errors"] += 1
        return None
    if record.rec_headers.get_header("WARC-Truncated") or len(body) == MAX_HTML_BYTES:
        stats.extra["payloads_truncated"] += 1
    return body


def iter_html_pages(path: str | os.PathLike, stats: HarvestStats) -> Iterator[WarcPage]:
    """Yield the 2xx HTML responses of a WARC file and count every record in ``stats``."""
    path = Path(path)
    with path.open("rb") as handle:
        records = ArchiveIterator(handle, arc2warc=True)
        progress = tqdm(desc=f"warc {path.name}", unit=" records", leave=False)
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except _TRUNCATION_ERRORS as error:
                stats.extra["truncated_files"] += 1
                logger.warning("%s: cannot read the record at byte offset %d (%s); keeping the records before it",
                               path, records.offset, error)
                break
            progress.update(1)
            stats.extra["records"] += 1
            # get_record_offset() would read the record to its end, so take the offset attribute.
            offset = records.offset

            page = _html_page(record, offset, stats)
            unread = _unread_bytes(record)
            if unread:
                stats.extra["truncated_files"] += 1
                logger.warning("%s: file ends inside the record at byte offset %d (%d bytes missing); "
                               "keeping the %d records before it", path, offset, unread, stats.extra["records"] - 1)
                break
            if page is not None:
                yield page
        progress.close()


def _html_page(record: ArcWarcRecord, offset: int, stats: HarvestStats) -> WarcPage | None:
    if record.rec_type != "response" or record.http_headers is None:
        return None
    stats.extra["responses"] += 1

    content_type = record.http_headers.get_header("Content-Type")
    if media_type(content_type) not in HTML_MEDIA_TYPES:
        stats.extra["responses_not_html"] += 1
        return None

    stats.pages += 1
    status = _http_status(record)
    if status is not None:
        stats.http_statuses[status] += 1
    if status is None or not 200 <= status < 300:
        stats.pages_by_status[FetchStatus.HTTP_ERROR.value] += 1
        return None
    stats.pages_by_status[FetchStatus.OK.value] += 1

    body = _read_html(record, stats)
    if body is None:
        return None
    return WarcPage(url=target_uri(record), body=body, content_type=content_type, http_status=status, offset=offset)


def harvest_warc(path: str | os.PathLike, out_path: str | os.PathLike, source: str = SOURCE) -> HarvestStats:
    """Write the candidates of every HTML response in one WARC file to ``out_path`` (parquet)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WARC file not found: {path}")
    started = time.monotonic()
    stats = HarvestStats(source=source)
    candidates: list[Candidate] = []

    for page in iter_html_pages(path, stats):
        html = decode_html(page.body, page.content_type)
        extraction = extract_page(html, page.url, source, with_links=False)
        stats.add_page(extraction)
        candidates.extend(extraction.candidates)

    candidates, repeats = drop_repeated(candidates)
    stats.candidates -= repeats
    stats.duplicate_candidates += repeats
    write_records(out_path, candidates, Candidate)
    logger.info("%s: %d candidates from %d HTML pages (%d images) in %.1f s",
                path.name, len(candidates), stats.pages_parsed, stats.images, time.monotonic() - started)
    return stats


def harvest_warcs(paths: list[Path], out_dir: Path, source: str = SOURCE) -> HarvestStats:
    """Harvest each WARC file into ``out_dir/part-NNNNN.parquet`` and write ``out_dir/stats.json``."""
    missing = [str(path) for path in paths if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"WARC files not found: {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_parts(out_dir)

    total = HarvestStats(source=source)
    for index, path in enumerate(paths):
        total.merge(harvest_warc(path, out_dir / f"part-{index:05d}.parquet", source=source))

    write_stage_stats(out_dir, "harvest", total.counts(), inputs=[str(path) for path in paths], **total.to_json())
    logger.info("harvested %d candidates from %d WARC files", total.candidates, len(paths))
    return total
