"""Reader of Wikimedia hourly pageview dump files, summed by page title.

Wikimedia publishes one file an hour at https://dumps.wikimedia.org/other/pageviews/,
named ``pageviews-YYYYMMDD-HH0000.gz``. Each line contains four space-separated fields::

    domain_code page_title count_views total_response_size

``domain_code`` is the wiki, abbreviated: "en" is en.wikipedia.org and "en.m" its
mobile site, while sister projects add a suffix ("en.b" for Wikibooks, "en.d" for
Wiktionary). ``page_title`` is the title as it appears in the URL, with underscores
for spaces. ``count_views`` is the number of views in that hour, and
``total_response_size`` is 0 in these files because Wikimedia stopped filling it.
Wikitech documents the format on its page "Data Platform/Data Lake/Traffic/Pageviews".

``read_pageviews`` sums the views of a Wikipedia's desktop and mobile sites over any
number of such files (gzip, bzip2 or plain text), by title as MediaWiki stores it.
"""

from __future__ import annotations

import bz2
import glob
import gzip
import logging
import os
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from wit_builder.queries.dump import normalize_title

logger = logging.getLogger(__name__)

#: Name prefix of the page-level files in a folder. The same folders on
#: dumps.wikimedia.org also hold "projectviews-*" files, whose lines are per wiki.
PAGEVIEWS_FILE_PREFIX = "pageviews-"
#: Title of the lines that count a whole wiki, not one page (project-level files).
NO_TITLE = "-"
MOBILE_SUFFIX = ".m"

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"
_GLOB_CHARACTERS = frozenset("*?[")
# A Wikipedia language code as domain codes spell it ("en", "zh-min-nan", "simple").
_WIKI_CODE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


class PageViewFileError(OSError):
    """A pageview file could not be read to its end."""


@dataclass
class PageViews:
    """Views per page title of one Wikipedia, summed over pageview files.

    ``views`` maps each title, normalized like ``normalize_title`` does, to its desktop
    plus mobile views, most viewed first. NOTE: titles of every namespace are kept
    ("Special:Search", "Talk:Cat") unless ``only_titles`` restricts them. ``lines_by_domain_code`` counts the
    well-formed lines of every wiki seen, including the wikis that were not summed.
    """

    wiki: str
    views: dict[str, int] = field(default_factory=dict)
    files_read: list[Path] = field(default_factory=list)
    lines_read: int = 0
    lines_malformed: int = 0
    lines_without_title: int = 0
    lines_of_other_titles: int = 0
    lines_by_domain_code: dict[str, int] = field(default_factory=dict)
    titles_below_min_views: int = 0

    @property
    def total_views(self) -> int:
        """Sum of the views of the titles kept."""
        return sum(self.views.values())


def pageview_files(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Return the pageview files that ``paths`` name, in the order given.

    A folder contributes its files named ``pageviews-*`` and a pattern such as
    ``dumps/pageviews-20240101-*.gz`` the files it matches, both sorted by name. A file
    given twice is listed once. Raises FileNotFoundError for a path or pattern that matches no file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]

    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(p for p in path.glob(f"{PAGEVIEWS_FILE_PREFIX}*") if p.is_file())
            if not matches:
                raise FileNotFoundError(f"no {PAGEVIEWS_FILE_PREFIX}* files in folder {path}")
        elif _GLOB_CHARACTERS & set(str(item)):
            matches = sorted(Path(p) for p in glob.glob(str(item)) if Path(p).is_file())
            if not matches:
                raise FileNotFoundError(f"no files match the pattern {item}")
        else:
            raise FileNotFoundError(f"pageview file not found: {path}")
        files.extend(matches)

    unique_files = list(dict.fromkeys(files))
    if len(unique_files) < len(files):
        logger.info("%d pageview files were given more than once and are read once", len(files) - len(unique_files))
    return unique_files


def read_pageviews(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    wiki: str = "en",
    min_views: int = 0,
    *,
    only_titles: Collection[str] | None = None,
    progress: bool = False,
) -> PageViews:
    """Sum the views of one Wikipedia's articles over hourly pageview files.

    ``paths`` is a file, a folder, a glob pattern or a list of these (see
    ``pageview_files``). ``wiki`` is the Wikipedia's language code: lines of domain
    code ``wiki`` (desktop) and ``wiki + ".m"`` (mobile) are summed, all others are
    only counted. Titles with fewer than ``min_views`` views in total are dropped at
    the end. ``only_titles``, if given, contains the normalized titles to count, for
    example the article titles of a dump, and bounds memory to that set.

    Lines with other than four fields, with a count that is not a non-negative integer
    or with a title that is not UTF-8 are skipped, counted and reported in one warning.
    Raises ValueError for an invalid ``wiki`` or ``min_views``, FileNotFoundError for
    missing files and PageViewFileError for a file that is cut short or damaged.
    """
    # NOTE: only Wikipedias are handled. Sister projects ("en.b", "en.m.b") and
    # wikimedia.org sites such as commons code their sites differently.
    if not _WIKI_CODE.fullmatch(wiki):
        raise ValueError(f"invalid wiki {wiki!r}: expected a Wikipedia language code such as 'en' or 'zh-min-nan'")
    if min_views < 0:
        raise ValueError(f"invalid min_views {min_views}: expected 0 or more")
    files = pageview_files(paths)

    summer = _ViewSummer(
        domain_codes=frozenset({wiki.encode("ascii"), (wiki + MOBILE_SUFFIX).encode("ascii")}),
        only_titles=only_titles,
    )
    result = PageViews(wiki=wiki)
    for path in tqdm(files, desc="reading pageviews", unit="file", disable=not progress):
        try:
            summer.add_file(path)
        except (OSError, EOFError) as error:
            # A cut download ends in EOFError, a damaged one in gzip.BadGzipFile or OSError.
            raise PageViewFileError(f"failed to read pageview file {path}: {error}. Download it again.") from error
        result.files_read.append(path)
        logger.debug("read %s: %d lines in total so far", path, summer.lines_read)

    result.lines_read = summer.lines_read
    result.lines_malformed = summer.lines_malformed
    result.lines_without_title = summer.lines_without_title
    result.lines_of_other_titles = summer.lines_of_other_titles
    if result.lines_malformed:
        logger.warning(
            "skipped %d malformed lines of %d in %d pageview files; the first is %s",
            result.lines_malformed,
            result.lines_read,
            len(files),
            summer.first_malformed,
        )

    titles_kept = [(title, count) for title, count in summer.views.items() if count >= min_views]
    result.titles_below_min_views = len(summer.views) - len(titles_kept)
    summer.views.clear()
    titles_kept.sort(key=lambda item: (-item[1], item[0]))
    result.views = dict(titles_kept)
    result.lines_by_domain_code = {
        code.decode("ascii", errors="backslashreplace"): count
        for code, count in sorted(summer.lines_by_domain_code.items(), key=lambda item: -item[1])
    }
    logger.info(
        "read %d lines from %d pageview files: %d titles of %s with %d views kept, %d below %d views",
        result.lines_read,
        len(files),
        len(result.views),
        wiki,
        result.total_views,
        result.titles_below_min_views,
        min_views,
    )
    return result


@dataclass
class _ViewSummer:
    """Running sums of views by normalized title, and the line counts, over the files added so far."""

    domain_codes: frozenset[bytes]
    only_titles: Collection[str] | None
    # NOTE: without only_titles, views has one entry per distinct title viewed in any
    # file, so memory grows with the number of hours read.
    views: dict[str, int] = field(default_factory=dict)
    lines_by_domain_code: dict[bytes, int] = field(default_factory=dict)
    lines_read: int = 0
    lines_malformed: int = 0
    lines_without_title: int = 0
    lines_of_other_titles: int = 0
    first_malformed: str | None = None

    def add_file(self, path: Path) -> None:
        """Add the views of one pageview file."""
        # The loop runs once per line, millions of times per file, so it uses local names only.
        views = self.views
        lines_by_domain_code = self.lines_by_domain_code
        domain_codes = self.domain_codes
        only_titles = self.only_titles
        malformed = without_title = other_titles = 0
        line_number = 0
        with _open_pageview_file(path) as lines:
            for line_number, line in enumerate(lines, start=1):
                fields = line.rstrip(b"\r\n").split(b" ")
                if len(fields) != 4 or not fields[2].isdigit() or not fields[3].isdigit():
                    malformed += 1
                    self._note_malformed(path, line_number, line)
                    continue

                domain_code = fields[0]
                lines_by_domain_code[domain_code] = lines_by_domain_code.get(domain_code, 0) + 1
                if domain_code not in domain_codes:
                    continue

                try:
                    raw_title = fields[1].decode("utf-8")
                except UnicodeDecodeError:
                    malformed += 1
                    self._note_malformed(path, line_number, line)
                    continue
                title = normalize_title(raw_title)
                if not title or raw_title == NO_TITLE:
                    without_title += 1
                    continue
                if only_titles is not None and title not in only_titles:
                    other_titles += 1
                    continue
                views[title] = views.get(title, 0) + int(fields[2])

        self.lines_read += line_number
        self.lines_malformed += malformed
        self.lines_without_title += without_title
        self.lines_of_other_titles += other_titles

    def _note_malformed(self, path: Path, line_number: int, line: bytes) -> None:
        if self.first_malformed is None:
            self.first_malformed = f"{path}:{line_number}: {line[:120]!r}"


def _open_pageview_file(path: Path) -> BinaryIO:
    """Open a pageview file for reading bytes, decompressing it when its magic bytes mark gzip or bzip2."""
    with path.open("rb") as raw:
        magic = raw.read(3)
    if magic.startswith(_GZIP_MAGIC):
        return gzip.open(path, "rb")
    if magic.startswith(_BZIP2_MAGIC):
        return bz2.open(path, "rb")
    return path.open("rb")
