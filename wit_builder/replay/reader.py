"""Read the status line, headers and payload of an indexed capture from its WARC file.

Every function here does blocking file I/O; the server calls them in a worker thread.
"""

from __future__ import annotations

from typing import BinaryIO

from warcio.archiveiterator import ArchiveIterator
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import StatusAndHeaders

from wit_builder.replay.archive import DAMAGED_FILE_ERRORS, Capture, RecordRef, payload_stream

#: Headers that describe one connection or one transfer, not the resource (RFC 9110 section 7.6.1),
#: plus Proxy-Connection, which old clients and proxies send. Content-Length is set by the server.
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


class ReplayReadError(Exception):
    """A capture that can no longer be read as it was indexed, for example because its file changed."""


def replay_headers(headers: StatusAndHeaders, content_encoding: str | None) -> list[tuple[str, str]]:
    """Return the archived headers to send: hop-by-hop headers dropped, Content-Encoding matching the payload.

    Headers named in the archived Connection header are hop-by-hop too. Repeated headers
    keep their order.
    """
    dropped = HOP_BY_HOP_HEADERS | _connection_tokens(headers) | {"content-encoding"}
    forwarded = [(name, value) for name, value in headers.headers if name.lower() not in dropped]
    if content_encoding:
        forwarded.append(("Content-Encoding", content_encoding))
    return forwarded


def _connection_tokens(headers: StatusAndHeaders) -> set[str]:
    tokens = set()
    for name, value in headers.headers:
        if name.lower() == "connection":
            tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return tokens


def reason_phrase(headers: StatusAndHeaders) -> str | None:
    """Return the reason phrase of the archived status line when it is plain printable ASCII."""
    parts = headers.statusline.split(" ", 1)
    if len(parts) < 2:
        return None
    reason = parts[1].strip()
    if not reason or not reason.isascii() or not reason.isprintable():
        return None
    return reason


class OpenCapture:
    """An open capture: status, headers to send, and a reader of exactly ``length`` payload bytes."""

    def __init__(self, status: int, reason: str | None, headers: list[tuple[str, str]],
                 handle: BinaryIO, record: ArcWarcRecord, capture: Capture):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.length = capture.payload_length
        self._handle = handle
        self._stream = payload_stream(record, capture.chunked)
        self._capture = capture
        self._remaining = capture.payload_length

    def read(self, size: int) -> bytes:
        """Return up to ``size`` payload bytes; b"" once ``length`` bytes were returned.

        Raises ReplayReadError when the payload cannot be read or ends before the indexed length.
        """
        if self._remaining <= 0:
            return b""
        ref = self._capture.payload_ref
        try:
            chunk = self._stream.read(min(size, self._remaining))
        except DAMAGED_FILE_ERRORS as error:
            raise ReplayReadError(f"{ref.path} offset {ref.offset}: cannot read the payload: {error}") from error
        if not chunk:
            raise ReplayReadError(
                f"{ref.path} offset {ref.offset}: payload ended after {self.length - self._remaining} "
                f"of {self.length} indexed bytes; was the file changed after the server started?"
            )
        self._remaining -= len(chunk)
        return chunk

    def close(self) -> None:
        self._handle.close()


def _read_record(handle: BinaryIO, ref: RecordRef) -> ArcWarcRecord:
    try:
        handle.seek(ref.offset)
        record = next(ArchiveIterator(handle, arc2warc=True))
    except StopIteration:
        record = None
    except DAMAGED_FILE_ERRORS as error:
        raise ReplayReadError(f"{ref.path} offset {ref.offset}: cannot read the record: {error}") from error
    if record is None or record.rec_type not in ("response", "revisit") or record.http_headers is None:
        raise ReplayReadError(f"{ref.path} offset {ref.offset}: no HTTP response record there; "
                              "was the file changed after the server started?")
    return record


def open_capture(capture: Capture) -> OpenCapture:
    """Open the records of ``capture`` and return its status, headers and payload reader.

    The caller must close the result. Raises ReplayReadError when a file cannot be opened
    or a record is no longer at the offset stored in the index.
    """
    try:
        if capture.headers_ref != capture.payload_ref:
            with capture.headers_ref.path.open("rb") as headers_handle:
                headers = _read_record(headers_handle, capture.headers_ref).http_headers
        handle = capture.payload_ref.path.open("rb")
    except OSError as error:
        raise ReplayReadError(f"cannot open the capture of {capture.key}: {error}") from error

    try:
        record = _read_record(handle, capture.payload_ref)
    except BaseException:
        handle.close()
        raise
    if capture.headers_ref == capture.payload_ref:
        headers = record.http_headers
    return OpenCapture(
        status=capture.status,
        reason=reason_phrase(headers),
        headers=replay_headers(headers, capture.content_encoding),
        handle=handle,
        record=record,
        capture=capture,
    )
