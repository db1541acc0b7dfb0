"""Tests of multistream .bz2 dumps: writing them with their index, planning byte ranges and
reading each range on its own, checked against the single-stream reader on real dumps."""

from __future__ import annotations

import bz2
import logging
import math
import re
from pathlib import Path
from xml.sax.saxutils import unescape

import pytest

from wit_builder.queries import build_queries
from wit_builder.queries.dump import DumpFormatError, DumpReader, read_siteinfo
from wit_builder.queries.multistream import (
    ByteRange,
    RangeStats,
    iter_range_pages,
    plan_ranges,
    read_index_offsets,
    write_multistream,
)

SAMPLE_DUMP = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
SHARED_DUMPS = (
    "enwiki-20250201-tiny_dump-70pages.xml.bz2",
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "enwiki-table-markup.xml.bz2",
)
PAGES_PER_STREAM = 20


def page_tuples(pages) -> list[tuple]:
    return [(page.title, page.namespace, page.page_id, page.text, page.redirect) for page in pages]


def reader_pages(path: Path) -> list[tuple]:
    return page_tuples(DumpReader(path, keep_namespaces=None, include_redirects=True))


def range_pages(path: Path, ranges: list[ByteRange]) -> tuple[list[tuple], list[RangeStats]]:
    """Read every range on its own, as a worker does, and return the pages in order and the stats."""
    namespaces = read_siteinfo(path).namespaces
    pages: list[tuple] = []
    stats: list[RangeStats] = []
    for byte_range in ranges:
        range_stats = RangeStats()
        pages.extend(page_tuples(iter_range_pages(path, byte_range, namespaces, range_stats)))
        stats.append(range_stats)
    return pages, stats


def index_lines(index: Path) -> list[tuple[int, str, str]]:
    lines = bz2.decompress(index.read_bytes()).decode("utf-8").splitlines()
    entries = []
    for line in lines:
        offset, page_id, title = line.split(":", 2)
        entries.append((int(offset), page_id, title))
    return entries


def make_multistream(source: Path, folder: Path, pages_per_stream: int = PAGES_PER_STREAM) -> tuple[Path, Path, int]:
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / "pages-articles-multistream.xml.bz2"
    index = folder / "pages-articles-multistream-index.txt.bz2"
    count = write_multistream(source, dump, index, pages_per_stream=pages_per_stream)
    return dump, index, count


@pytest.fixture(scope="module")
def sample_multistream(samples_dir, tmp_path_factory) -> tuple[Path, Path, int]:
    return make_multistream(samples_dir / SAMPLE_DUMP, tmp_path_factory.mktemp("multistream"))


@pytest.fixture(scope="module")
def sample_reference(samples_dir) -> list[tuple]:
    return reader_pages(samples_dir / SAMPLE_DUMP)


# Writing ------------------------------------------------------------------------------


def check_multistream(source: Path, dump: Path, index: Path, count: int, pages_per_stream: int) -> None:
    """Check the index against the pages, every offset against a stream start, and the pages read back."""
    reference = DumpReader(source, keep_namespaces=None, include_redirects=True)
    expected = page_tuples(reference)
    entries = index_lines(index)

    assert count == reference.stats.pages_seen == len(expected)
    assert [(page_id, title) for _offset, page_id, title in entries] == [
        (str(page[2]), page[0]) for page in expected
    ]

    data = dump.read_bytes()
    offsets = read_index_offsets(index)
    assert offsets == sorted({offset for offset, _page_id, _title in entries})
    assert len(offsets) == math.ceil(count / pages_per_stream)
    for number, offset in enumerate(offsets):
        xml = bz2.BZ2Decompressor().decompress(data[offset:])
        titles = re.findall(rb"<title>(.*?)</title>", xml)
        first = number * pages_per_stream
        assert xml.lstrip().startswith(b"<page>"), offset
        assert len(titles) == min(pages_per_stream, count - first)
        assert unescape(titles[0].decode("utf-8")) == entries[first][2]

    # The single-stream reader reads the file as an ordinary .bz2 and yields the same pages.
    assert reader_pages(dump) == expected
    pages, stats = range_pages(dump, plan_ranges(offsets, dump.stat().st_size, 3))
    assert pages == expected
    assert not any(range_stats.truncated for range_stats in stats)


def test_write_multistream_sample(samples_dir, sample_multistream):
    dump, index, count = sample_multistream
    check_multistream(samples_dir / SAMPLE_DUMP, dump, index, count, PAGES_PER_STREAM)
    assert count == 206




@pytest.mark.parametrize(
    "name",
    SHARED_DUMPS,
)
def test_write_multistream_shared_dumps(shared_data, tmp_path, name):
    source = shared_data / "wikipedia" / name
    dump, index, count = make_multistream(source, tmp_path, pages_per_stream=7)
    check_multistream(source, dump, index, count, 7)


def test_write_multistream_siteinfo_stream(sample_multistream, samples_dir):
    dump, index, _count = sample_multistream
    header = bz2.BZ2Decompressor().decompress(dump.read_bytes()[: read_index_offsets(index)[0]])

    assert header.startswith(b"<mediawiki")
    assert b"</siteinfo>" in header
    assert b"<page>" not in header
    assert read_siteinfo(dump) == read_siteinfo(samples_dir / SAMPLE_DUMP)


def test_write_multistream_of_plain_xml(samples_dir, tmp_path):
    source = tmp_path / "dump.xml"
    source.write_bytes(bz2.decompress((samples_dir / SAMPLE_DUMP).read_bytes()))
    dump, index, count = make_multistream(source, tmp_path / "out", pages_per_stream=100)

    assert count == 206
    assert len(read_index_offsets(index)) == 3
    assert reader_pages(dump) == reader_pages(source)


def test_write_multistream_rejects_non_dump(tmp_path):
    source = tmp_path / "notes.xml"
    source.write_text("no pages here", encoding="utf-8")
    with pytest.raises(DumpFormatError, match="not a MediaWiki XML dump"):
        write_multistream(source, tmp_path / "out.xml.bz2", tmp_path / "index.txt.bz2")
    assert not list(tmp_path.glob(".*tmp*"))


ONE_LINE_DUMP = (
    '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/"><siteinfo><sitename>Wikipedia</sitename>'
    "</siteinfo><page><title>Fox</title><ns>0</ns><id>1</id><revision><id>2</id><text>The fox.</text>"
    "</revision></page><page><title>Wolf</title><ns>0</ns><id>3</id><revision><id>4</id><text>The wolf."
    "</text></revision></page></mediawiki>"
)


def test_write_multistream_dump_without_line_breaks(tmp_path):
    source = tmp_path / "one-line.xml"
    source.write_text(ONE_LINE_DUMP, encoding="utf-8")

    dump, index, count = make_multistream(source, tmp_path / "out")

    assert count == 2
    assert [title for _offset, _page_id, title in index_lines(index)] == ["Fox", "Wolf"]
    assert reader_pages(dump) == reader_pages(source)


RECODED_DUMP = (
    '<?xml version="1.0" encoding="{encoding}"?>\n'
    '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/">\n'
    "  <siteinfo><sitename>Wikipedia</sitename></siteinfo>\n"
    "  <page>\n    <title>Café</title><ns>0</ns><id>1</id>\n"
    "    <revision><id>2</id><text>Crème brûlée is a dessert.</text></revision>\n  </page>\n"
    "</mediawiki>\n"
)


@pytest.mark.parametrize("encoding", ["windows-1252", "UTF-16"])
def test_write_multistream_of_recoded_dump(tmp_path, encoding):
    source = tmp_path / "dump.xml"
    source.write_bytes(RECODED_DUMP.format(encoding=encoding).encode(encoding.lower()))
    assert [page[0] for page in reader_pages(source)] == ["Café"]

    try:
        dump, index, count = make_multistream(source, tmp_path / "out")
    except DumpFormatError:
        return  # Rejecting an encoding it cannot copy is acceptable. Writing a wrong file is not.
    assert count == 1
    pages, _stats = range_pages(dump, plan_ranges(read_index_offsets(index), dump.stat().st_size, 1))
    assert pages == reader_pages(source)


# Index --------------------------------------------------------------------------------


def test_read_index_plain_and_bz2(tmp_path):
    text = "600:10:AccessibleComputing\n600:12:Anarchism\n\n9000:25:Autism: a title with: colons\n"
    (tmp_path / "index.txt").write_text(text, encoding="utf-8")
    (tmp_path / "index.txt.bz2").write_bytes(bz2.compress(text.encode("utf-8")))

    assert read_index_offsets(tmp_path / "index.txt") == [600, 9000]
    assert read_index_offsets(tmp_path / "index.txt.bz2") == [600, 9000]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("600:10:Fox\nabc:11:Wolf\n", "line 2 is not 'offset:page_id:title'"),
        ("600:10:Fox\n12345\n", "line 2 is not 'offset:page_id:title'"),
        ("\n\n", "lists no streams"),
        ("", "lists no streams"),
    ],
)
def test_read_index_bad_lines(tmp_path, text, message):
    path = tmp_path / "index.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DumpFormatError, match=message):
        read_index_offsets(path)


def test_read_index_negative_offset(tmp_path):
    path = tmp_path / "index.txt"
    path.write_text("600:10:Fox\n-5:11:Wolf\n", encoding="utf-8")
    with pytest.raises(DumpFormatError, match="line 2"):
        read_index_offsets(path)


def test_read_index_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="multistream index not found"):
        read_index_offsets(tmp_path / "missing-index.txt.bz2")


# Ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize("parts", range(1, 9))
def test_plan_ranges_cover_all_streams(sample_multistream, parts):
    dump, index, _count = sample_multistream
    offsets = read_index_offsets(index)
    size = dump.stat().st_size

    ranges = plan_ranges(offsets, size, parts)

    assert 1 <= len(ranges) <= parts
    assert ranges[0].start == offsets[0]
    assert ranges[-1].end == size
    for before, after in zip(ranges, ranges[1:]):
        assert before.end == after.start
    assert all(byte_range.start in offsets for byte_range in ranges)
    assert all(byte_range.size > 0 for byte_range in ranges)
    assert sum(byte_range.size for byte_range in ranges) == size - offsets[0]


def test_plan_ranges_balances_sizes(sample_multistream):
    dump, index, _count = sample_multistream
    ranges = plan_ranges(read_index_offsets(index), dump.stat().st_size, 2)

    assert len(ranges) == 2
    assert max(byte_range.size for byte_range in ranges) < 0.8 * sum(byte_range.size for byte_range in ranges)


def test_plan_ranges_more_parts_than_streams():
    ranges = plan_ranges([100, 200, 300], 400, 8)
    assert ranges == [ByteRange(100, 200), ByteRange(200, 300), ByteRange(300, 400)]


def test_plan_ranges_drops_offsets_past_end(caplog):
    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.multistream"):
        ranges = plan_ranges([100, 200, 300, 400], 250, 4)
    assert ranges == [ByteRange(100, 200), ByteRange(200, 250)]
    assert "2 streams past the end of the dump" in caplog.text

    assert plan_ranges([100, 200], 50, 2) == []


def test_plan_ranges_invalid_parts():
    with pytest.raises(ValueError, match="invalid parts 0"):
        plan_ranges([100], 200, 0)


@pytest.mark.parametrize("parts", [1, 3, 8])
def test_range_pages_equal_reader_pages(sample_multistream, sample_reference, parts):
    dump, index, _count = sample_multistream

    pages, stats = range_pages(dump, plan_ranges(read_index_offsets(index), dump.stat().st_size, parts))

    assert pages == sample_reference
    assert sum(range_stats.pages for range_stats in stats) == 206
    assert not any(range_stats.truncated for range_stats in stats)
    assert sum(range_stats.compressed_bytes for range_stats in stats) == dump.stat().st_size - read_index_offsets(index)[0]


def test_range_pages_use_local_namespaces(sample_multistream):
    dump, index, _count = sample_multistream
    namespaces = read_siteinfo(dump).namespaces
    byte_range = plan_ranges(read_index_offsets(index), dump.stat().st_size, 1)[0]

    pages = list(iter_range_pages(dump, byte_range, namespaces))

    assert [(page.title, page.namespace) for page in pages if page.namespace != 0] == [
        ("Wikipedia:Adding Wikipedia articles to Nupedia", 4)
    ]
    assert pages[0].title == "AccessibleComputing"
    assert pages[0].redirect == "Computer accessibility"


# Cut and corrupt files ----------------------------------------------------------------


def decode_streams(data: bytes) -> bytes:
    """Return what a chain of bzip2 streams decodes to, up to where the data ends."""
    decoded = []
    while data:
        decompressor = bz2.BZ2Decompressor()
        decoded.append(decompressor.decompress(data))
        data = decompressor.unused_data if decompressor.eof else b""
    return b"".join(decoded)


def cut_copy(dump: Path, folder: Path, size: int) -> Path:
    path = folder / "cut-multistream.xml.bz2"
    path.write_bytes(dump.read_bytes()[:size])
    return path


def test_cut_multistream_yields_complete_pages(sample_multistream, sample_reference, tmp_path, caplog):
    dump, index, _count = sample_multistream
    offsets = read_index_offsets(index)
    cut = cut_copy(dump, tmp_path, (offsets[5] + offsets[6]) // 2)

    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.multistream"):
        ranges = plan_ranges(offsets, cut.stat().st_size, 3)
        pages, _stats = range_pages(cut, ranges)

    # Every page whose bzip2 blocks are complete can be decoded.
    decodable = decode_streams(cut.read_bytes()[offsets[0] :]).count(b"</page>")
    assert "5 streams past the end of the dump" in caplog.text
    assert decodable >= 5 * PAGES_PER_STREAM
    assert pages == sample_reference[:decodable]


def test_corrupt_stream_stops_only_its_range(sample_multistream, sample_reference, tmp_path, caplog):
    dump, index, _count = sample_multistream
    offsets = read_index_offsets(index)
    data = bytearray(dump.read_bytes())
    middle = (offsets[2] + offsets[3]) // 2
    data[middle : middle + 64] = b"\x55" * 64
    corrupt = tmp_path / "corrupt-multistream.xml.bz2"
    corrupt.write_bytes(bytes(data))
    ranges = [ByteRange(offsets[0], offsets[4]), ByteRange(offsets[4], corrupt.stat().st_size)]

    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.multistream"):
        pages, stats = range_pages(corrupt, ranges)

    assert stats[0].truncated
    # libbz2 checks a block's CRC at its end, so garbage may reach the XML parser first.
    assert re.match(r"corrupt bzip2 data|malformed XML", stats[0].stop_reason)
    assert 2 * PAGES_PER_STREAM <= stats[0].pages < 3 * PAGES_PER_STREAM
    assert not stats[1].truncated
    assert pages == sample_reference[: stats[0].pages] + sample_reference[4 * PAGES_PER_STREAM :]
    assert f"bytes {offsets[0]}-{offsets[4]}" in caplog.text
    assert "stopped after" in caplog.text


def test_range_past_end_of_file(sample_multistream, sample_reference, tmp_path):
    dump, index, _count = sample_multistream
    offsets = read_index_offsets(index)
    cut = cut_copy(dump, tmp_path, offsets[3])

    pages, stats = range_pages(cut, [ByteRange(offsets[0], offsets[4])])

    assert pages == sample_reference[: 3 * PAGES_PER_STREAM]
    assert stats[0].truncated
    assert "before the range does" in stats[0].stop_reason


def test_cut_multistream_build_reads_complete_pages(sample_multistream, tmp_path):
    dump, index, _count = sample_multistream
    offsets = read_index_offsets(index)
    cut = cut_copy(dump, tmp_path, (offsets[1] + offsets[2]) // 2 + 3_000)

    result = build_queries(cut, tmp_path / "out", index=index, workers=2, min_count=5, bigram_min_count=5, progress=False)

    assert result.articles >= 1
    assert "Anarchism" in (tmp_path / "out" / "queries.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("where", ["middle-of-stream", "stream-boundary", "after-siteinfo"])
def test_cut_multistream_build_truncated(sample_multistream, tmp_path, where):
    dump, index, _count = sample_multistream
    offsets = read_index_offsets(index)
    size = {
        "middle-of-stream": (offsets[2] + offsets[3]) // 2,
        "stream-boundary": offsets[3],
        "after-siteinfo": offsets[0],
    }[where]
    cut = cut_copy(dump, tmp_path, size)

    result = build_queries(cut, tmp_path / "out", index=index, workers=2, min_count=5, bigram_min_count=5, progress=False)

    assert result.truncated


def test_index_of_other_file_is_rejected(samples_dir, sample_multistream, tmp_path):
    _dump, index, _count = sample_multistream
    single = samples_dir / SAMPLE_DUMP

    with pytest.raises(DumpFormatError, match="the index does not match"):
        build_queries(single, tmp_path / "out", index=index, workers=2, progress=False)
