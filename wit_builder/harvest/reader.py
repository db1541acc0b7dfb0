"""Iterate over the records of one WARC stream with FastWARC and notice where the stream is damaged.

FastWARC 2.0 reads old versions (WARC/0.17, 0.18) and new ones (1.0, 1.1) alike, and in quirks
mode it also reads headers with bare LF line ends. It stops silently at the end of a truncated
gzip member, so this module checks the end of the stream itself. After the last record, the
compressed bytes from the start of that record on must form complete gzip members (or, for an
uncompressed file, complete records). A problem becomes an ``ArchiveDamage`` with the byte
offset of the first incomplete record. A stream that fails to read (a dropped connection) or to
decompress stops the iteration with such a damage too, and every record before it stays usable.

A regular local file is read by FastWARC from its path, without Python in between, and the
check reads the file's last bytes again once at the end. Any other stream (HTTP, pyarrow file
systems) goes through ``TrackedStream``, which keeps the bytes since the start of the last
record for the check.
"""

from __future__ import annotations

import collections
import io
import logging
import os
import re
import stat
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from fastwarc.warc import ArchiveIterator, WarcRecord

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"

#: Bytes kept for the end-of-stream check. Only a record larger than this goes unchecked.
MAX_TAIL_BYTES = 64 * 1024 * 1024

_INFLATE_STEP_BYTES = 1024 * 1024
_CONTENT_LENGTH = re.compile(rb"^content-length:[ \t]*(\d+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


class StreamReadError(OSError):
    """The underlying input failed while the archive was read (a dropped connection, a timeout)."""


@dataclass
class ArchiveDamage:
    """Place and cause of the problem that stopped reading an archive before its end.

    ``kind`` is ``truncated`` (the stream ends inside a record), ``corrupt`` (bytes that do not
    decompress or parse) or ``read_error`` (the input failed). ``offset`` is a byte offset in the
    stream as stored, compressed for a .gz file.
    """

    kind: str
    offset: int
    message: str


class TrackedStream(io.RawIOBase):
    """A read-only wrapper that counts the bytes read and keeps those from offset ``keep_from`` on.

    The reader sets ``keep_from`` to the start of each record. Older bytes are dropped on the
    next read, and so are the oldest ones when more than ``max_tail_bytes`` are kept.
    """

    def __init__(self, raw: BinaryIO, max_tail_bytes: int = MAX_TAIL_BYTES):
        super().__init__()
        self.keep_from = 0
        self.position = 0
        self.head = b""
        self._raw = raw
        self._max_tail_bytes = max_tail_bytes
        self._chunks: collections.deque[tuple[int, bytes]] = collections.deque()
        self._kept_bytes = 0
        self._dropped_until = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def read(self, size: int = -1) -> bytes:
        try:
            chunk = self._raw.read(size)
        except Exception as error:
            raise StreamReadError(f"{type(error).__name__}: {error}") from error
        if not chunk:
            return b""
        if self.position == 0:
            self.head = chunk[:64]
        self._chunks.append((self.position, chunk))
        self._kept_bytes += len(chunk)
        self.position += len(chunk)
        self._trim()
        return chunk

    def readinto(self, buffer) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _trim(self) -> None:
        chunks = self._chunks
        while chunks:
            start, chunk = chunks[0]
            end = start + len(chunk)
            if end > self.keep_from and self._kept_bytes <= self._max_tail_bytes:
                break
            chunks.popleft()
            self._kept_bytes -= len(chunk)
            self._dropped_until = max(self._dropped_until, end)

    def tail(self) -> tuple[int, bytes] | None:
        """Return ``keep_from`` and the bytes read from there on, or None when some of them were dropped."""
        self._trim()
        if self.keep_from < self._dropped_until:
            return None
        data = b"".join(chunk for _start, chunk in self._chunks)
        first_start = self._chunks[0][0] if self._chunks else self.position
        skip = self.keep_from - first_start
        return self.keep_from, data[skip:]


class LocalFile:
    """A regular file that FastWARC reads from its path, with the head and tail reads of the end check.

    It offers the same ``head``, ``keep_from``, ``position`` and ``tail`` as ``TrackedStream``,
    but reads the tail from the file only when the reader asks for it, after the last record.
    """

    def __init__(self, handle: BinaryIO, max_tail_bytes: int = MAX_TAIL_BYTES):
        self.path = os.fsdecode(handle.name)
        self.keep_from = 0
        self._handle = handle
        self._max_tail_bytes = max_tail_bytes
        self.head = self._read_at(0, 64)
        self.position = 0

    def finish(self, end: int | None = None) -> None:
        """Set ``position`` to ``end``, or to the size of the file when the reading reached its end."""
        if end is None:
            try:
                end = self._size()
            except StreamReadError:
                end = self.keep_from
        self.position = end

    def tail(self) -> tuple[int, bytes] | None:
        """Return ``keep_from`` and the file's bytes from there on, or None when they are more than the limit."""
        offset, data, complete = self.window()
        return (offset, data) if complete else None

    def window(self) -> tuple[int, bytes, bool]:
        """Return ``keep_from``, up to the limit of bytes from there on, and whether they reach the end of the file."""
        remaining = self._size() - self.keep_from
        data = self._read_at(self.keep_from, min(remaining, self._max_tail_bytes))
        return self.keep_from, data, remaining <= self._max_tail_bytes

    def _size(self) -> int:
        try:
            return os.fstat(self._handle.fileno()).st_size
        except OSError as error:
            raise StreamReadError(f"{type(error).__name__}: {error}") from error

    def _read_at(self, offset: int, size: int) -> bytes:
        try:
            self._handle.seek(offset)
            return self._handle.read(max(size, 0))
        except OSError as error:
            raise StreamReadError(f"{type(error).__name__}: {error}") from error


def regular_file(stream: BinaryIO) -> bool:
    """Return whether ``stream`` is a seekable regular file opened by path, which FastWARC can open itself."""
    name = getattr(stream, "name", None)
    if not isinstance(name, (str, bytes)) or not hasattr(stream, "fileno"):
        return False
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode) and stream.seekable()
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


def first_bad_member(data: bytes) -> tuple[int, str] | None:
    """Return the position of the first gzip member in ``data`` that is cut short or corrupt, with that kind.

    The kind is ``truncated`` for a member that the data ends inside and ``corrupt`` for one that
    does not decompress. Bytes after the last member that are not NUL or whitespace padding count
    as corrupt. Returns None when every member is complete.
    """
    position = 0
    while position < len(data):
        if data[position : position + 2] != GZIP_MAGIC:
            padding = data[position:].strip(b"\x00\r\n \t")
            return (position, "corrupt") if padding else None
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        pending = data[position:]
        try:
            while pending and not inflater.eof:
                inflater.decompress(pending, _INFLATE_STEP_BYTES)
                pending = inflater.unconsumed_tail
        except zlib.error:
            return position, "corrupt"
        if not inflater.eof:
            return position, "truncated"
        position = len(data) - len(inflater.unused_data)
    return None


def inflate_prefix(data: bytes, max_bytes: int) -> bytes:
    """Return up to ``max_bytes`` decompressed from the start of a gzip member, complete or not."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    try:
        return inflater.decompress(data, max_bytes)
    except zlib.error:
        return b""


def first_incomplete_record(data: bytes) -> int | None:
    """Return the position of the first record in uncompressed WARC ``data`` that does not end, or None."""
    position = 0
    while position < len(data):
        rest = data[position:]
        if not rest.strip(b"\x00\r\n \t"):
            return None
        header_end = rest.find(b"\r\n\r\n")
        separator = 4
        if header_end == -1:
            header_end = rest.find(b"\n\n")
            separator = 2
        if header_end == -1:
            return position
        match = _CONTENT_LENGTH.search(rest, 0, header_end)
        if match is None:
            return position
        end = header_end + separator + int(match.group(1))
        if end > len(rest):
            return position
        position += end
        # Records end with two line breaks, which the next record's start check skips.
        while position < len(data) and data[position] in b"\r\n":
            position += 1
    return None


class ArchiveReader:
    """Records of one WARC stream, with counts and the damage that stopped the reading, if any.

    Iterate over the reader for FastWARC records, and read payloads with ``read_payload``,
    which notices records cut short. After the iteration ``damage`` is None for a stream read
    to a clean end.
    """

    def __init__(self, stream: BinaryIO, name: str, parse_http: bool = True):
        self.name = name
        self.parse_http = parse_http
        self.records = 0
        self.damage: ArchiveDamage | None = None
        self._stream: TrackedStream | LocalFile
        if regular_file(stream):
            self._stream = LocalFile(stream)
            self._source: BinaryIO | str = self._stream.path
        else:
            self._stream = TrackedStream(stream)
            self._source = self._stream
        self._record_offset = 0

    @property
    def bytes_read(self) -> int:
        """Bytes read from the input so far, compressed for a .gz file."""
        return self._stream.position

    def __iter__(self) -> Iterator[WarcRecord]:
        # A tracked stream keeps the bytes from the start of the current record on; a local file is read again at the end.
        tracked = self._stream if isinstance(self._stream, TrackedStream) else None
        records = iter(ArchiveIterator(self._source, parse_http=self.parse_http, quirks_mode=True))
        try:
            while self.damage is None:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except StreamReadError as error:
                    self._set_damage("read_error", self._record_offset, f"reading the input failed: {error}")
                    break
                except OSError as error:
                    self._stream.keep_from = self._record_offset
                    self._on_parse_error(error)
                    break

                self._record_offset = record.stream_pos
                if tracked is not None:
                    tracked.keep_from = self._record_offset
                self.records += 1
                yield record

            if self.damage is None:
                self._stream.keep_from = self._record_offset
                self._finish_local()
                self._check_end()
        except StreamReadError as error:
            # Reading the head or tail of a local file again failed.
            self._set_damage("read_error", self._record_offset, f"reading the input failed: {error}")
        finally:
            self._finish_local()

    def _finish_local(self) -> None:
        """Set a local file's ``position``: its size, unless reading stopped early at corrupt bytes."""
        if isinstance(self._stream, LocalFile):
            stopped_early = self.damage is not None and self.damage.kind != "truncated"
            self._stream.finish(self.damage.offset if stopped_early else None)

    def read_payload(self, record: WarcRecord, max_bytes: int) -> tuple[bytes, bool] | None:
        """Return up to ``max_bytes`` of a record's payload and whether it was cut there.

        Returns None, and records the damage, when the stream ends or fails before the payload does.
        """
        expected = record.content_length
        try:
            # FastWARC allocates the size passed to read(), so a small record is read without one.
            payload = record.reader.read() if expected <= max_bytes else record.reader.read(max_bytes + 1)
        except StreamReadError as error:
            self._set_damage("read_error", record.stream_pos, f"reading the input failed: {error}")
            return None
        except OSError as error:
            self._set_damage("corrupt", record.stream_pos, f"cannot decompress the record: {error}")
            return None

        if len(payload) < min(expected, max_bytes + 1):
            self._set_damage("truncated", record.stream_pos,
                             f"the input ends inside the record ({len(payload)} of {expected} payload bytes)")
            self.records -= 1
            return None
        if len(payload) > max_bytes:
            return payload[:max_bytes], True
        return payload, False

    def _on_parse_error(self, error: OSError) -> None:
        """Record where FastWARC failed, at the exact bad gzip member when the kept bytes show it."""
        if self.records == 0:
            self._set_damage("corrupt", 0, f"{self._describe_unreadable_start()} ({error})")
            return

        if isinstance(self._stream, LocalFile):
            # The rest of a large file can be long, so only its start is checked: the bad member follows the last record.
            offset, data, complete = self._stream.window()
        else:
            tail = self._stream.tail()
            offset, data, complete = (tail[0], tail[1], True) if tail is not None else (0, b"", False)
        if data and self._stream.head.startswith(GZIP_MAGIC):
            bad = first_bad_member(data)
            if bad is None and complete:
                # Only padding follows the last member, which is a clean end.
                return
            if bad is not None:
                position, kind = bad
                if kind == "corrupt":
                    self._set_damage("corrupt", offset + position, f"cannot decompress the archive: {error}")
                    return
                if complete:
                    self._on_truncation(offset + position, data[position:])
                    return
        self._set_damage("corrupt", self._record_offset, f"cannot decompress or parse the archive: {error}")

    def _check_end(self) -> None:
        """Check that the bytes after the last record's start form complete records."""
        if self.records == 0:
            if self._stream.position > 0:
                self._set_damage("corrupt", 0, self._describe_unreadable_start())
            return

        tail = self._stream.tail()
        if tail is None:
            # NOTE: a record larger than MAX_TAIL_BYTES at the very end is not checked.
            logger.debug("%s: last record is too large to check the end of the stream", self.name)
            return
        offset, data = tail
        if self._stream.head.startswith(GZIP_MAGIC):
            bad = first_bad_member(data)
            if bad is None:
                return
            position, kind = bad
            if kind == "truncated":
                self._on_truncation(offset + position, data[position:])
            else:
                self._set_damage("corrupt", offset + position, "bytes after the last record are not gzip data")
            return

        incomplete = first_incomplete_record(data)
        if incomplete is not None:
            self._on_truncation(offset + incomplete, None)

    def _on_truncation(self, position: int, member: bytes | None) -> None:
        """Record a stream that ends inside the gzip member or record starting at ``position``."""
        self._set_damage("truncated", position, "the input ends inside the record")
        if not self.records or position != self._record_offset:
            return
        # A member cut inside its gzip trailer can still contain the whole record, which was then read in full.
        if member is not None and first_incomplete_record(inflate_prefix(member, MAX_TAIL_BYTES)) is None:
            return
        self.records -= 1

    def _describe_unreadable_start(self) -> str:
        head = self._stream.head
        if head.startswith(GZIP_MAGIC):
            try:
                head = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head)
            except zlib.error:
                return "not a readable gzip file"
        if head.startswith(b"filedesc:"):
            return "this is an ARC file, which is not supported: convert it to WARC first (for example with warcio)"
        return "no WARC record found at the start of the input"

    def _set_damage(self, kind: str, offset: int, message: str) -> None:
        self.damage = ArchiveDamage(kind=kind, offset=offset, message=message)
