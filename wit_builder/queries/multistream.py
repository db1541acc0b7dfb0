"""Parallel reading of multistream .bz2 dumps through their index file.

Wikimedia's ``pages-articles-multistream.xml.bz2`` is a chain of independent bzip2
streams. The first contains ``<mediawiki>`` and ``<siteinfo>``, each of the next contains
up to 100 ``<page>`` elements, and the last contains ``</mediawiki>``. The companion
``pages-articles-multistream-index.txt.bz2`` has one line per page,
``offset:page_id:title``, where ``offset`` is the byte position of the stream that contains
the page. So the page streams can be cut into byte ranges at stream starts, and each
worker can decompress and parse its own range with no shared reader.

``write_multistream`` makes such a file and its index from any dump the reader accepts,
so a single-stream download can be recompressed once for parallel builds.
"""

from __future__ import annotations

import bz2
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from wit_builder.queries.dump import (
    DumpFormatError,
    Namespaces,
    WikiPage,
    _local_name,
    _open_compressed,
    read_page_element,
    xml_byte_stream,
)

logger = logging.getLogger(__name__)

READ_CHUNK = 1 << 20
_CLOSING_ROOT = b"</mediawiki>"


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``[start, end)`` of a multistream dump, starting and ending at stream starts."""

    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass
class RangeStats:
    """Counts of one byte range read: pages, bytes, and where it stopped early."""

    pages: int = 0
    compressed_bytes: int = 0
    xml_bytes: int = 0
    truncated: bool = False
    stop_reason: str | None = None


def read_index_offsets(index_path: str | os.PathLike) -> list[int]:
    """Return the distinct stream offsets of a multistream index (.txt or .txt.bz2), in order.

    Raises DumpFormatError when a line is not ``offset:page_id:title``.
    """
    index_path = Path(index_path)
    if not index_path.is_file():
        raise FileNotFoundError(f"multistream index not found: {index_path}")
    offsets: set[int] = set()
    with open(index_path, "rb") as raw, _open_compressed(raw, index_path) as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            offset, colon, _rest = line.partition(b":")
            try:
                if not colon or not offset.strip().isdigit():
                    raise ValueError
                offsets.add(int(offset))
            except ValueError:
                raise DumpFormatError(
                    f"{index_path} line {number} is not 'offset:page_id:title': {line[:80]!r}"
                ) from None
    if not offsets:
        raise DumpFormatError(f"{index_path} lists no streams")
    return sorted(offsets)


_BZIP2_STREAM_START = b"BZh"
_BZIP2_BLOCK_MAGIC = b"\x31\x41\x59\x26\x53\x59"


def check_index(path: str | os.PathLike, offsets: list[int]) -> None:
    """Raise DumpFormatError unless a bzip2 stream starts at every offset of ``offsets`` inside ``path``.

    An index that belongs to another file, or a single-stream dump given an index, fails
    here before any worker starts. Offsets past the end of the file are left to
    ``plan_ranges``, which reports a cut file.
    """
    with open(path, "rb") as dump:
        size = os.fstat(dump.fileno()).st_size
        for offset in offsets:
            if offset >= size:
                continue
            dump.seek(offset)
            head = dump.read(10)
            if head[:3] != _BZIP2_STREAM_START or head[4:10] != _BZIP2_BLOCK_MAGIC:
                raise DumpFormatError(
                    f"the index does not match {path}: no bzip2 stream starts at offset {offset}. "
                    "Give the index of this multistream file, or leave out --index"
                )


def plan_ranges(offsets: list[int], file_size: int, parts: int) -> list[ByteRange]:
    """Cut the page streams into at most ``parts`` ranges of about equal compressed size.

    The ranges start at the first indexed stream (after the <siteinfo> stream) and the
    last one runs to the end of the file, so it also contains the closing stream. Offsets
    past the end of the file (a cut download) are dropped with a warning.
    """
    if parts < 1:
        raise ValueError(f"invalid parts {parts}: it must be at least 1")
    inside = [offset for offset in offsets if offset < file_size]
    if len(inside) < len(offsets):
        logger.warning(
            "the index lists %d streams past the end of the dump (%d bytes); the dump is cut short",
            len(offsets) - len(inside),
            file_size,
        )
    if not inside:
        return []

    target = max(1, (file_size - inside[0]) // parts)
    ranges: list[ByteRange] = []
    start = inside[0]
    for offset in inside[1:]:
        if offset - start >= target and len(ranges) < parts - 1:
            ranges.append(ByteRange(start, offset))
            start = offset
    ranges.append(ByteRange(start, file_size))
    return ranges


def iter_range_pages(
    path: str | os.PathLike, byte_range: ByteRange, namespaces: Namespaces, stats: RangeStats | None = None
) -> Iterator[WikiPage]:
    """Yield the pages of the streams in ``byte_range`` of a multistream dump.

    A range cut off by the end of the file, or one with corrupt data, yields every
    complete page before the fault, sets ``stats.truncated`` and logs a warning.
    """
    stats = stats if stats is not None else RangeStats()
    parser = ET.XMLPullParser(events=("start", "end"))
    parser.feed(b"<mediawiki>")
    root: ET.Element | None = None
    closed = False

    def pages_so_far() -> Iterator[WikiPage]:
        nonlocal root
        for event, element in parser.read_events():
            if event == "start":
                if root is None:
                    root = element
                continue
            if _local_name(element.tag) == "page":
                stats.pages += 1
                yield read_page_element(element, namespaces)
                root.clear()

    in_stream = False
    with open(path, "rb") as dump:
        at_end_of_file = byte_range.end >= os.fstat(dump.fileno()).st_size
        dump.seek(byte_range.start)
        remaining = byte_range.size
        decompressor = bz2.BZ2Decompressor()
        try:
            while remaining > 0 and not closed:
                chunk = dump.read(min(READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                stats.compressed_bytes += len(chunk)
                while chunk and not closed:
                    in_stream = True
                    xml = decompressor.decompress(chunk)
                    chunk = b""
                    if decompressor.eof:
                        chunk = decompressor.unused_data
                        decompressor = bz2.BZ2Decompressor()
                        in_stream = False
                    end_of_root = xml.find(_CLOSING_ROOT)
                    if end_of_root >= 0:
                        xml = xml[:end_of_root]
                        closed = True
                    stats.xml_bytes += len(xml)
                    parser.feed(xml)
                    yield from pages_so_far()
        except OSError as error:
            _stop_range(path, byte_range, stats, f"corrupt bzip2 data ({error})")
            return
        except ET.ParseError as error:
            _stop_range(path, byte_range, stats, f"malformed XML ({error})")
            return

    if remaining > 0 and not closed:
        _stop_range(path, byte_range, stats, f"the file ends {remaining} bytes before the range does")
        return
    if in_stream and not closed:
        yield from pages_so_far()
        _stop_range(path, byte_range, stats, "the range ends inside a bzip2 stream")
        return
    if at_end_of_file and not closed:
        try:
            parser.feed(b"</mediawiki>")
            yield from pages_so_far()
        except ET.ParseError:
            pass
        _stop_range(path, byte_range, stats, "the dump ends without </mediawiki>: it is cut short")
        return
    try:
        parser.feed(b"</mediawiki>")
        parser.close()
        yield from pages_so_far()
    except ET.ParseError as error:
        _stop_range(path, byte_range, stats, f"the last stream ends inside a page ({error})")


def _stop_range(path: str | os.PathLike, byte_range: ByteRange, stats: RangeStats, reason: str) -> None:
    stats.truncated = True
    stats.stop_reason = reason
    logger.warning(
        "dump %s, bytes %d-%d: stopped after %d complete pages: %s",
        path,
        byte_range.start,
        byte_range.end,
        stats.pages,
        reason,
    )


def write_multistream(
    source: str | os.PathLike, out_path: str | os.PathLike, index_path: str | os.PathLike, pages_per_stream: int = 100
) -> int:
    """Recompress the dump ``source`` as a multistream .bz2 with its .bz2 index; return the page count.

    The layout is Wikimedia's: a <siteinfo> stream, streams of ``pages_per_stream``
    pages, and a closing stream. Page ids and titles in the index come from the XML.
    """
    if pages_per_stream < 1:
        raise ValueError(f"invalid pages_per_stream {pages_per_stream}: it must be at least 1")
    source = Path(source)
    out_path = Path(out_path)
    index_path = Path(index_path)
    temporary = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    temporary_index = index_path.with_name(f".{index_path.name}.tmp-{os.getpid()}")
    page_count = 0

    with open(source, "rb") as raw, _open_compressed(raw, source) as compressed, open(temporary, "wb") as out:
        stream, _encoding = xml_byte_stream(compressed, force_utf8=True)
        index = bz2.BZ2File(temporary_index, "wb")
        pending: list[bytes] = []
        entries: list[tuple[str, str]] = []
        header_written = False
        for kind, data in _split_pages(stream):
            if kind == "header":
                if b"<mediawiki" not in data:
                    break
                out.write(bz2.compress(data))
                header_written = True
            elif kind == "page":
                pending.append(data)
                entries.append(_page_id_and_title(data))
                if len(pending) == pages_per_stream:
                    _write_stream(out, index, pending, entries)
                    page_count += len(pending)
                    pending, entries = [], []
            else:
                if pending:
                    _write_stream(out, index, pending, entries)
                    page_count += len(pending)
                out.write(bz2.compress(data))
        index.close()
    if not header_written:
        index.close()
        temporary.unlink(missing_ok=True)
        temporary_index.unlink(missing_ok=True)
        raise DumpFormatError(f"{source} is not a MediaWiki XML dump: no <mediawiki> element before the first page")
    os.replace(temporary, out_path)
    os.replace(temporary_index, index_path)
    return page_count


def _write_stream(out, index, pages: list[bytes], entries: list[tuple[str, str]]) -> None:
    offset = out.tell()
    out.write(bz2.compress(b"".join(pages)))
    index.write("".join(f"{offset}:{page_id}:{title}\n" for page_id, title in entries).encode("utf-8"))


def _page_id_and_title(page: bytes) -> tuple[str, str]:
    element = ET.fromstring(page.strip())
    title = element.findtext("title") or ""
    page_id = element.findtext("id") or "0"
    return page_id.strip(), title


def _split_pages(stream) -> Iterator[tuple[str, bytes]]:
    """Yield ("header", bytes), then ("page", bytes) per page, then ("footer", bytes) of a dump's XML."""
    buffer = b""
    in_header = True
    while True:
        chunk = stream.read(READ_CHUNK)
        buffer += chunk
        while True:
            if in_header:
                start = buffer.find(b"<page>")
                if start < 0:
                    break
                # The indentation before <page> stays with the page, as in Wikimedia's files.
                line_start = buffer.rfind(b"\n", 0, start) + 1
                if buffer[line_start:start].strip():
                    line_start = start
                yield "header", buffer[:line_start]
                buffer = buffer[line_start:]
                in_header = False
                continue
            end = buffer.find(b"</page>")
            if end < 0:
                break
            end += len(b"</page>")
            if buffer[end : end + 1] == b"\n":
                end += 1
            yield "page", buffer[:end]
            buffer = buffer[end:]
        if not chunk:
            break
    if in_header:
        yield "header", buffer
        buffer = b""
    yield "footer", buffer

