"""Build the benchmark's input dumps from the real pages of a few small dumps.

The real dumps are too small to time on their own, so this script writes larger inputs
from their pages, deterministically:

- ``concat-pages-articles.xml.bz2``: the pages of every source dump, once, as one dump;
- ``repeated-kK-pages-articles.xml.bz2``: those pages K times, as one bz2 stream;
- ``repeated-kK-pages-articles-multistream.xml.bz2`` with
  ``repeated-kK-pages-articles-multistream-index.txt.bz2``: the same XML in Wikimedia's
  multistream layout (see ``write_multistream``);
- ``concat-prefix-PPP-pages-articles.xml.bz2``: the first PPP percent of the
  concatenation's page bytes, for the memory growth series. The 100 percent prefix is
  the concatenation itself.

Every output is one well-formed <mediawiki> document with the root tag and <siteinfo>
of the first source dump that has a <siteinfo>. Pages are copied byte for byte, except
that a repeated or clashing title gets a suffix and a clashing page id a fresh number, so
titles and ids are unique as in a real dump. Repetition multiplies every count but adds
no distinct word or word pair, so it changes totals and not the work per byte.

An output that exists already is reused, so pass ``--force`` after the sources change.
"""

from __future__ import annotations

import argparse
import bz2
import json
import logging
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from harness import DEFAULT_DATA_DIR, REPO_ROOT, add_data_arguments

logger = logging.getLogger(__name__)

DEFAULT_SOURCE_DIR = REPO_ROOT.parent / "shared" / "data" / "wikipedia"
#: The largest source first: its <siteinfo> and root tag head every output.
DEFAULT_SOURCE_NAMES = (
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "enwiki-20250201-tiny_dump-70pages.xml.bz2",
    "enwiki-table-markup.xml.bz2",
)
DEFAULT_TARGET_XML_MB = 60.0
DEFAULT_PREFIX_PERCENTS = (25, 50, 75, 100)
DEFAULT_WIT_COMMAND = [str(REPO_ROOT / ".venv" / "bin" / "wit")]
COMPRESS_LEVEL = 9

_PAGE = re.compile(rb"<page>.*?</page>", re.DOTALL)
_ROOT_START = re.compile(rb"<mediawiki\b[^>]*>")
_SITEINFO = re.compile(rb"<siteinfo>.*?</siteinfo>", re.DOTALL)
_TITLE = re.compile(rb"<title>(.*?)</title>", re.DOTALL)
_PAGE_ID = re.compile(rb"<id>\s*(\d+)\s*</id>")
_REVISION = b"<revision>"


@dataclass(frozen=True)
class SourcePage:
    """One <page> element of a source dump, as bytes, with its title (XML-escaped) and page id."""

    title: bytes
    page_id: int
    xml: bytes


@dataclass(frozen=True)
class SourceDumps:
    """Pages of the source dumps in order, with the root tag and <siteinfo> that head the outputs."""

    root_start: bytes
    siteinfo: bytes
    pages: list[SourcePage]
    paths: list[Path]

    @property
    def page_bytes(self) -> int:
        return sum(len(page.xml) for page in self.pages)


@dataclass(frozen=True)
class WrittenDump:
    """A dump this script wrote: its path, optional multistream index, XML size and page count."""

    path: Path
    xml_bytes: int
    pages: int
    index_path: Path | None = None
    streams: int = 1


def read_sources(paths: Iterable[Path]) -> SourceDumps:
    """Read every <page> of the bz2 dumps at ``paths``, in order.

    Raises FileNotFoundError for a missing dump and ValueError for a file without a
    <mediawiki> root, or when no source has a <siteinfo>.
    """
    root_start = b""
    siteinfo = b""
    pages: list[SourcePage] = []
    paths = [Path(path) for path in paths]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"source dump not found: {path}")
        data = bz2.decompress(path.read_bytes())
        root = _ROOT_START.search(data)
        if root is None:
            raise ValueError(f"invalid source dump {path}: no <mediawiki> root element")
        if not root_start:
            root_start = root.group(0)
        info = _SITEINFO.search(data)
        if info is not None and not siteinfo:
            siteinfo = info.group(0)
        count = 0
        for match in _PAGE.finditer(data):
            pages.append(_parse_page(match.group(0), path))
            count += 1
        logger.info("read %d pages (%d bytes of XML) from %s", count, len(data), path)
    if not siteinfo:
        raise ValueError(f"none of the source dumps has a <siteinfo>: {[str(path) for path in paths]}")
    return SourceDumps(root_start=root_start, siteinfo=siteinfo, pages=pages, paths=paths)


def _parse_page(xml: bytes, path: Path) -> SourcePage:
    head = xml[: xml.find(_REVISION)] if _REVISION in xml else xml
    title = _TITLE.search(head)
    page_id = _PAGE_ID.search(head)
    if title is None or page_id is None:
        raise ValueError(f"invalid page in {path}: no <title> or page <id> before <revision>: {xml[:200]!r}")
    return SourcePage(title=title.group(1), page_id=int(page_id.group(1)), xml=xml)


def unique_pages(sources: SourceDumps, copies: int) -> Iterator[SourcePage]:
    """Yield the source pages ``copies`` times, with titles and page ids made unique.

    Copy 1 keeps the original titles, and copy N > 1 appends " (copy N)". A title that
    still clashes (the same article in two source dumps) gets " (2)", " (3)" and so on.
    A clashing page id gets the next number above every source page id.
    """
    if copies < 1:
        raise ValueError(f"invalid copies {copies}: it must be at least 1")
    seen_titles: set[bytes] = set()
    seen_ids: set[int] = set()
    next_free_id = max(page.page_id for page in sources.pages) + 1
    for copy in range(1, copies + 1):
        for page in sources.pages:
            title = page.title if copy == 1 else page.title + b" (copy %d)" % copy
            candidate = title
            clash = 1
            while candidate in seen_titles:
                clash += 1
                candidate = title + b" (%d)" % clash
            seen_titles.add(candidate)

            page_id = page.page_id
            if page_id in seen_ids:
                page_id = next_free_id
                next_free_id += 1
            seen_ids.add(page_id)
            yield _renamed(page, candidate, page_id)


def _renamed(page: SourcePage, title: bytes, page_id: int) -> SourcePage:
    if title == page.title and page_id == page.page_id:
        return page
    split = page.xml.find(_REVISION)
    head, rest = (page.xml[:split], page.xml[split:]) if split >= 0 else (page.xml, b"")
    head = _TITLE.sub(lambda _match: b"<title>" + title + b"</title>", head, count=1)
    head = _PAGE_ID.sub(lambda _match: b"<id>%d</id>" % page_id, head, count=1)
    return SourcePage(title=title, page_id=page_id, xml=head + rest)


def _header(sources: SourceDumps) -> bytes:
    return sources.root_start + b"\n  " + sources.siteinfo + b"\n"


_FOOTER = b"</mediawiki>\n"


def _page_block(page: SourcePage) -> bytes:
    return b"  " + page.xml + b"\n"


def write_single_stream(path: Path, sources: SourceDumps, pages: Iterable[SourcePage]) -> WrittenDump:
    """Write ``pages`` as one dump compressed as a single bz2 stream, like pages-articles.xml.bz2."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    compressor = bz2.BZ2Compressor(COMPRESS_LEVEL)
    xml_bytes = 0
    count = 0
    with open(temporary, "wb") as out:
        for block in _blocks(sources, pages):
            xml_bytes += len(block)
            out.write(compressor.compress(block))
            count += 1
        out.write(compressor.flush())
    temporary.replace(path)
    return WrittenDump(path=path, xml_bytes=xml_bytes, pages=count - 2)


def _blocks(sources: SourceDumps, pages: Iterable[SourcePage]) -> Iterator[bytes]:
    yield _header(sources)
    for page in pages:
        yield _page_block(page)
    yield _FOOTER


def write_multistream(path: Path, index_path: Path, single: Path, wit_command: list[str]) -> None:
    """Recompress the single-stream dump ``single`` with wit-builder's own `wit queries multistream`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*wit_command, "queries", "multistream", str(single), "--out", str(path), "--index", str(index_path)], check=True)


def prefix_pages(sources: SourceDumps, percent: float) -> list[SourcePage]:
    """Return the first pages of the concatenation that make up ``percent`` of its page bytes."""
    if not 0 < percent <= 100:
        raise ValueError(f"invalid prefix percent {percent}: it must be in (0, 100]")
    limit = sources.page_bytes * percent / 100
    pages = list(unique_pages(sources, 1))
    prefix_bytes = 0
    for count, page in enumerate(pages, start=1):
        prefix_bytes += len(page.xml)
        if prefix_bytes >= limit:
            return pages[:count]
    return pages


def default_copies(sources: SourceDumps, target_xml_mb: float) -> int:
    """Return the number of copies whose XML is closest to ``target_xml_mb`` megabytes (10**6 bytes)."""
    return max(1, round(target_xml_mb * 1e6 / sources.page_bytes))


def concat_path(data_dir: Path) -> Path:
    return data_dir / "concat-pages-articles.xml.bz2"


def repeated_path(data_dir: Path, copies: int) -> Path:
    return data_dir / f"repeated-k{copies}-pages-articles.xml.bz2"


def multistream_paths(data_dir: Path, copies: int) -> tuple[Path, Path]:
    stem = f"repeated-k{copies}-pages-articles-multistream"
    return data_dir / f"{stem}.xml.bz2", data_dir / f"{stem}-index.txt.bz2"


def prefix_path(data_dir: Path, percent: int) -> Path:
    if percent == 100:
        return concat_path(data_dir)
    return data_dir / f"concat-prefix-{percent:03d}-pages-articles.xml.bz2"


def ensure_concat(sources: SourceDumps, data_dir: Path, force: bool = False) -> Path:
    """Write the concatenation of the source dumps unless it exists, and return its path."""
    path = concat_path(data_dir)
    if force or not path.is_file():
        written = write_single_stream(path, sources, unique_pages(sources, 1))
        logger.info("wrote %s: %d pages, %d bytes of XML", path, written.pages, written.xml_bytes)
    return path


def ensure_repeated(
    sources: SourceDumps, data_dir: Path, copies: int, force: bool = False, wit_command: list[str] | None = None
) -> tuple[Path, Path, Path]:
    """Write the repeated dump and its multistream form unless they exist, and return (dump, multistream, index)."""
    single = repeated_path(data_dir, copies)
    multistream, index = multistream_paths(data_dir, copies)
    wit_command = wit_command or DEFAULT_WIT_COMMAND
    if force or not single.is_file():
        written = write_single_stream(single, sources, unique_pages(sources, copies))
        logger.info("wrote %s: %d pages, %d bytes of XML", single, written.pages, written.xml_bytes)
    if force or not (multistream.is_file() and index.is_file()):
        write_multistream(multistream, index, single, wit_command)
        logger.info("wrote %s and its index %s", multistream, index)
    return single, multistream, index


def ensure_prefixes(sources: SourceDumps, data_dir: Path, percents: Iterable[int], force: bool = False) -> list[Path]:
    """Write the prefix dumps of the concatenation unless they exist, and return their paths in order."""
    paths = []
    for percent in percents:
        path = prefix_path(data_dir, percent)
        if force or not path.is_file():
            written = write_single_stream(path, sources, prefix_pages(sources, percent))
            logger.info("wrote %s: %d pages, %d bytes of XML", path, written.pages, written.xml_bytes)
        paths.append(path)
    return paths


def source_paths(source_dir: Path, names: Iterable[str] = DEFAULT_SOURCE_NAMES) -> list[Path]:
    return [source_dir / name for name in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser, DEFAULT_SOURCE_DIR, "folder of the real source dumps")
    parser.add_argument(
        "--copies",
        type=int,
        default=None,
        help=f"copies K of the pages in the repeated dump (default: the K whose XML is closest to "
        f"{DEFAULT_TARGET_XML_MB:g} MB)",
    )
    parser.add_argument("--force", action="store_true", help="rewrite outputs that exist already")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    sources = read_sources(source_paths(args.source_dir))
    copies = args.copies or default_copies(sources, DEFAULT_TARGET_XML_MB)
    ensure_concat(sources, args.data_dir, args.force)
    ensure_repeated(sources, args.data_dir, copies, args.force)
    ensure_prefixes(sources, args.data_dir, DEFAULT_PREFIX_PERCENTS, args.force)
    summary = {
        "sources": [str(path) for path in sources.paths],
        "source_pages": len(sources.pages),
        "source_page_bytes": sources.page_bytes,
        "copies": copies,
    }
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
