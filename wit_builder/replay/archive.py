"""Index of the HTTP captures in WARC files: normalized URL -> where its response is stored.

``ReplayIndex.build`` reads every record once. It keeps response records of GET requests
and revisit records whose original response it finds. For each URL it stores the file
offsets of the record with the status and headers and of the record with the payload,
plus the payload length with any chunked transfer-encoding undone. The server
reads payloads from those offsets on demand, so memory grows with the number of URLs,
not with the size of the payloads.
"""

from __future__ import annotations

import collections
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from tqdm import tqdm
from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders

from wit_builder.replay.urls import normalize_url, swap_scheme

logger = logging.getLogger(__name__)

READ_CHUNK_BYTES = 64 * 1024

GZIP_MAGIC = b"\x1f\x8b"

# Errors that warcio 1.8.1 raises on a damaged or cut file. A file that ends inside a
# record header raises AttributeError, because the loader then reads a header without a target URI.
DAMAGED_FILE_ERRORS = (ArchiveLoadFailed, EOFError, OSError, zlib.error, ValueError, AttributeError)


@dataclass(frozen=True, slots=True)
class RecordRef:
    """Location of one WARC record: its file and the byte offset where the record starts."""

    path: Path
    offset: int


@dataclass(slots=True)
class Capture:
    """The archived response that the server replays for one URL."""

    key: str
    #: WARC-Target-URI of the record as written in the file.
    url: str
    #: WARC-Date of the response or revisit record.
    date: str
    #: "response", or "revisit" when the payload comes from an earlier response record.
    record_type: str
    status: int
    content_type: str | None
    #: Record whose HTTP status line and headers are replayed.
    headers_ref: RecordRef
    #: Response record whose HTTP payload is replayed.
    payload_ref: RecordRef
    #: Payload bytes with chunked transfer-encoding undone, content-encoding kept.
    payload_length: int
    chunked: bool
    #: Content-Encoding of the payload bytes, or None when they are not encoded.
    content_encoding: str | None
    #: WARC-Truncated value of the payload record (such as "length"), or None.
    truncated: str | None = None


@dataclass
class _Response:
    """A response record seen while indexing, before revisits are resolved."""

    capture: Capture
    record_id: str | None
    concurrent_to: list[str]
    payload_digest: str | None


@dataclass
class _Revisit:
    """A revisit record seen while indexing, resolved against the responses afterwards."""

    key: str
    url: str
    date: str
    ref: RecordRef
    #: HTTP status of the revisit's own headers; None when it has none, which replays the original's.
    status: int | None
    content_type: str | None
    refers_to: str | None
    refers_to_key: str | None
    refers_to_date: str | None
    payload_digest: str | None


@dataclass
class IndexStats:
    """Counts of the records read by ``ReplayIndex.build``."""

    files: int = 0
    records: int = 0
    responses: int = 0
    revisits: int = 0
    #: Record counts by reason for records that are not replayed.
    skipped: collections.Counter = field(default_factory=collections.Counter)
    #: Files that ended inside a record or could not be read past some offset.
    damaged_files: int = 0

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "records": self.records,
            "responses": self.responses,
            "revisits": self.revisits,
            "skipped": dict(sorted(self.skipped.items())),
            "damaged_files": self.damaged_files,
        }


def parse_status(headers: StatusAndHeaders | None) -> int | None:
    """Return the status code of a response's status line, or None when it is not a valid HTTP status."""
    if headers is None:
        return None
    try:
        status = int(headers.get_statuscode())
    except (TypeError, ValueError):
        return None
    return status if 100 <= status <= 599 else None


def is_chunked(headers: StatusAndHeaders) -> bool:
    """Return whether the last transfer-coding of a response is chunked."""
    codings = [value.strip().lower() for value in (headers.get_header("Transfer-Encoding") or "").split(",")]
    return codings[-1] == "chunked"


def payload_stream(record: ArcWarcRecord, chunked: bool):
    """Return a reader of the record's HTTP payload with chunked transfer-encoding undone.

    Unlike warcio's ``content_stream()`` it leaves the content-encoding in place, so the
    bytes match the Content-Encoding header that the server sends with them. Data that
    is not valid chunked encoding is passed through as it is (warcio's fallback).
    """
    if chunked:
        return ChunkedDataReader(record.raw_stream)
    return record.raw_stream


def _target_uri(record: ArcWarcRecord) -> str:
    # Some WARC 1.0 writers put angle brackets around the URI.
    uri = (record.rec_headers.get_header("WARC-Target-URI") or "").strip()
    if uri.startswith("<") and uri.endswith(">"):
        uri = uri[1:-1].strip()
    return uri


def _header_values(record: ArcWarcRecord, name: str) -> list[str]:
    lowered = name.lower()
    return [value.strip() for key, value in record.rec_headers.headers if key.lower() == lowered]


def _content_encoding(headers: StatusAndHeaders, head: bytes, length: int) -> str | None:
    """Return the Content-Encoding to send with the payload, or None when it is not encoded.

    Some crawlers store the decoded body but keep the Content-Encoding header. A gzip
    header on a payload without the gzip magic bytes is dropped for that reason.
    """
    encoding = (headers.get_header("Content-Encoding") or "").strip().lower()
    if not encoding or encoding == "identity" or length == 0:
        return None
    if encoding in ("gzip", "x-gzip") and not head.startswith(GZIP_MAGIC):
        return None
    return encoding


class ReplayIndex:
    """Captures of WARC files by normalized URL, built once with ``ReplayIndex.build``."""

    def __init__(self, captures: dict[str, Capture], paths: list[Path], stats: IndexStats):
        self.captures = captures
        self.paths = paths
        self.stats = stats

    def __len__(self) -> int:
        return len(self.captures)

    def lookup(self, url: str) -> tuple[Capture, bool] | None:
        """Return the capture of ``url`` and whether it matched only with the other scheme (http/https).

        Raises ValueError when ``url`` is not a valid http(s) URL.
        """
        key = normalize_url(url)
        capture = self.captures.get(key)
        if capture is not None:
            return capture, False
        capture = self.captures.get(swap_scheme(key))
        if capture is not None:
            return capture, True
        return None

    @classmethod
    def build(cls, paths: Iterable[str | os.PathLike]) -> "ReplayIndex":
        """Read the WARC (or ARC) files and index their replayable captures.

        Raises FileNotFoundError when a file is missing. A file that is damaged or cut
        off is indexed up to the damaged record, with a warning.
        """
        paths = [Path(path) for path in paths]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"WARC files not found: {', '.join(missing)}")

        scan = _Scan()
        for path in paths:
            scan.read_file(path)
        captures = scan.resolve()
        logger.info(
            "indexed %d URLs from %d files (%d responses, %d revisits, %d records skipped)",
            len(captures), len(paths), scan.stats.responses, scan.stats.revisits, sum(scan.stats.skipped.values()),
        )
        return cls(captures, paths, scan.stats)


class _Scan:
    """Records collected from all files, before revisits are resolved and duplicates dropped."""

    def __init__(self) -> None:
        self.stats = IndexStats()
        #: Request method by the request's record ID and by the record IDs it is concurrent to.
        self.request_methods: dict[str, str] = {}
        self.responses: list[_Response] = []
        self.revisits: list[_Revisit] = []

    def read_file(self, path: Path) -> None:
        self.stats.files += 1
        with path.open("rb") as handle:
            records = ArchiveIterator(handle, arc2warc=True)
            progress = tqdm(desc=f"index {path.name}", unit=" records", leave=False)
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    # NOTE: warcio 1.8.1 also stops here, without an error, when a gzip member
                    # is cut inside the WARC header, so such a cut goes unreported.
                    break
                except DAMAGED_FILE_ERRORS as error:
                    self.stats.damaged_files += 1
                    logger.warning("%s: cannot read the record at byte offset %d (%s); replaying the records before it",
                                   path, records.offset, error)
                    break
                progress.update(1)
                self.stats.records += 1
                # get_record_offset() would read the record to its end, so take the offset attribute.
                ref = RecordRef(path, records.offset)
                try:
                    complete = self._add(record, ref)
                except DAMAGED_FILE_ERRORS as error:
                    self.stats.damaged_files += 1
                    logger.warning("%s: cannot read the record at byte offset %d (%s); replaying the records before it",
                                   path, ref.offset, error)
                    break
                if not complete:
                    self.stats.damaged_files += 1
                    logger.warning("%s: file ends inside the record at byte offset %d; replaying the records before it",
                                   path, ref.offset)
                    break
            progress.close()

    def _add(self, record: ArcWarcRecord, ref: RecordRef) -> bool:
        """Collect one record; return False when the file ends inside it."""
        if record.rec_type == "request":
            # Writers link a request and its response with WARC-Concurrent-To in either direction.
            if record.http_headers is not None:
                method = (record.http_headers.protocol or "GET").upper()
                linked = [record.rec_headers.get_header("WARC-Record-ID")] + _header_values(record, "WARC-Concurrent-To")
                for record_id in linked:
                    if record_id:
                        self.request_methods[record_id] = method
            return _drain(record)
        if record.rec_type == "response":
            response = self._response(record, ref)
            complete = _drain(record)
            if response is not None and complete:
                self.responses.append(response)
            return complete
        if record.rec_type == "revisit":
            revisit = self._revisit(record, ref)
            complete = _drain(record)
            if revisit is not None and complete:
                self.revisits.append(revisit)
            return complete
        return _drain(record)

    def _response(self, record: ArcWarcRecord, ref: RecordRef) -> _Response | None:
        url = _target_uri(record)
        try:
            key = normalize_url(url)
        except ValueError:
            self.stats.skipped["not_http"] += 1
            return None
        headers = record.http_headers
        status = parse_status(headers)
        if status is None:
            self.stats.skipped["invalid_http_response"] += 1
            return None

        chunked = is_chunked(headers)
        stream = payload_stream(record, chunked)
        head = b""
        length = 0
        while chunk := stream.read(READ_CHUNK_BYTES):
            if len(head) < len(GZIP_MAGIC):
                head += chunk[: len(GZIP_MAGIC)]
            length += len(chunk)

        self.stats.responses += 1
        capture = Capture(
            key=key,
            url=url,
            date=record.rec_headers.get_header("WARC-Date") or "",
            record_type="response",
            status=status,
            content_type=headers.get_header("Content-Type"),
            headers_ref=ref,
            payload_ref=ref,
            payload_length=length,
            chunked=chunked,
            content_encoding=_content_encoding(headers, head, length),
            truncated=record.rec_headers.get_header("WARC-Truncated"),
        )
        return _Response(
            capture=capture,
            record_id=record.rec_headers.get_header("WARC-Record-ID"),
            concurrent_to=_header_values(record, "WARC-Concurrent-To"),
            payload_digest=record.rec_headers.get_header("WARC-Payload-Digest"),
        )

    def _revisit(self, record: ArcWarcRecord, ref: RecordRef) -> _Revisit | None:
        url = _target_uri(record)
        try:
            key = normalize_url(url)
        except ValueError:
            self.stats.skipped["not_http"] += 1
            return None
        self.stats.revisits += 1

        refers_to_uri = (record.rec_headers.get_header("WARC-Refers-To-Target-URI") or "").strip("<> ")
        try:
            refers_to_key = normalize_url(refers_to_uri) if refers_to_uri else None
        except ValueError:
            refers_to_key = None
        headers = record.http_headers
        status = parse_status(headers)
        # A "server-not-modified" revisit stores the 304 that the crawler received; replay
        # the original response instead, as a client without a cached copy would need.
        own_headers = status is not None and status != 304
        return _Revisit(
            key=key,
            url=url,
            date=record.rec_headers.get_header("WARC-Date") or "",
            ref=ref,
            status=status if own_headers else None,
            content_type=headers.get_header("Content-Type") if own_headers else None,
            refers_to=record.rec_headers.get_header("WARC-Refers-To"),
            refers_to_key=refers_to_key,
            refers_to_date=record.rec_headers.get_header("WARC-Refers-To-Date"),
            payload_digest=record.rec_headers.get_header("WARC-Payload-Digest"),
        )

    def resolve(self) -> dict[str, Capture]:
        """Return one capture per URL: the latest GET response or resolved revisit, by WARC-Date."""
        candidates: list[Capture] = []
        for response in self.responses:
            method = self._request_method(response)
            if method != "GET":
                self.stats.skipped[f"method_{method.lower()}"] += 1
                continue
            candidates.append(response.capture)

        by_id = {response.record_id: response for response in self.responses if response.record_id}
        by_url_date = {(response.capture.key, response.capture.date): response for response in self.responses}
        by_digest: dict[str, _Response] = {}
        by_url_digest: dict[tuple[str, str], _Response] = {}
        for response in self.responses:
            if response.payload_digest:
                by_digest.setdefault(response.payload_digest, response)
                by_url_digest.setdefault((response.capture.key, response.payload_digest), response)

        unresolved = 0
        for revisit in self.revisits:
            original = by_id.get(revisit.refers_to or "")
            if original is None and revisit.refers_to_key and revisit.refers_to_date:
                original = by_url_date.get((revisit.refers_to_key, revisit.refers_to_date))
            if original is None and revisit.payload_digest:
                original = by_url_digest.get((revisit.key, revisit.payload_digest)) or by_digest.get(revisit.payload_digest)
            if original is None:
                unresolved += 1
                self.stats.skipped["revisit_without_original"] += 1
                continue
            candidates.append(_revisit_capture(revisit, original.capture))
        if unresolved:
            logger.warning("%d revisit records refer to responses that are not in these files; they are not replayed", unresolved)

        captures: dict[str, Capture] = {}
        for capture in candidates:
            current = captures.get(capture.key)
            if current is not None:
                self.stats.skipped["older_capture"] += 1
            # Later candidates win ties, so the last capture in file order is kept.
            if current is None or capture.date >= current.date:
                captures[capture.key] = capture
        return captures

    def _request_method(self, response: _Response) -> str:
        """Return the method of the request record linked to a response, GET when none is linked."""
        for record_id in [response.record_id, *response.concurrent_to]:
            method = self.request_methods.get(record_id)
            if method:
                return method
        return "GET"


def _revisit_capture(revisit: _Revisit, original: Capture) -> Capture:
    """Combine a revisit's status and headers (if it has its own) with the original's payload."""
    own_headers = revisit.status is not None
    return Capture(
        key=revisit.key,
        url=revisit.url,
        date=revisit.date,
        record_type="revisit",
        status=revisit.status if own_headers else original.status,
        content_type=revisit.content_type if own_headers else original.content_type,
        headers_ref=revisit.ref if own_headers else original.headers_ref,
        payload_ref=original.payload_ref,
        payload_length=original.payload_length,
        chunked=original.chunked,
        content_encoding=original.content_encoding,
        truncated=original.truncated,
    )


def _drain(record: ArcWarcRecord) -> bool:
    """Read the rest of the record; return False when the file ends before its declared length."""
    stream = record.raw_stream
    while stream.read(READ_CHUNK_BYTES):
        pass
    return not getattr(stream, "limit", 0)
