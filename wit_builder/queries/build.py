"""Build a query list (unigrams, bigrams, article titles) from one Wikipedia dump.

``build_queries`` reads the dump twice. The first pass counts word tokens, article
titles, links and redirects. The second pass counts adjacent word pairs, but only of
words frequent enough to form a pair that passes ``bigram_min_count``. The output folder
gets:

- ``queries.parquet``: ``QueryEntry`` rows, unigrams then bigrams then titles, each kind
  most frequent first. A query's id is its row index;
- ``queries.txt``: the same queries, one per line, in the same order;
- ``build.json``: the input, parameters, counts and timing of the build;
- ``stats.json``: the stage's counts and the top queries of each kind.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq

from wit_builder import __version__
from wit_builder.parquet import iter_records, write_records
from wit_builder.queries.counting import (
    KIND_PRIORITY,
    UnigramCounts,
    count_bigrams,
    merge_kinds,
    select_bigrams,
    select_titles,
    select_unigrams,
    words_for_bigrams,
)
from wit_builder.queries.dump import DumpReader, normalize_title
from wit_builder.queries.markup import MarkupStripper
from wit_builder.records import QueryEntry, QueryKind
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

STAGE = "queries"
QUERIES_PARQUET = "queries.parquet"
QUERIES_TEXT = "queries.txt"
BUILD_JSON = "build.json"

#: Defaults sized for a full English Wikipedia dump (about 4 billion tokens, an estimate).
DEFAULT_MIN_COUNT = 100
DEFAULT_BIGRAM_MIN_COUNT = 100
DEFAULT_PMI_THRESHOLD = 8.0
TOP_QUERIES_IN_STATS = 20


@dataclass
class QueryBuildResult:
    """Paths and counts of one finished query build."""

    out_dir: Path
    queries_path: Path
    text_path: Path
    build_path: Path
    stats_path: Path
    counts: dict[str, int]
    pages_read: int
    articles: int
    redirects_skipped: int
    tokens: int
    truncated: bool
    elapsed_s: float


def build_queries(
    dump_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    min_count: int = DEFAULT_MIN_COUNT,
    bigram_min_count: int = DEFAULT_BIGRAM_MIN_COUNT,
    pmi_threshold: float = DEFAULT_PMI_THRESHOLD,
    include_bigrams: bool = True,
    include_titles: bool = True,
    title_min_links: int = 0,
    lowercase: bool = False,
    max_pages: int | None = None,
    progress: bool = True,
) -> QueryBuildResult:
    """Count words, word pairs and titles of the articles in ``dump_path`` and write the query list to ``out_dir``.

    ``min_count`` is the minimum count of a unigram query. A bigram query needs at least
    ``bigram_min_count`` occurrences and a PMI of at least ``pmi_threshold`` bits (see
    ``wit_builder.queries.counting``). A title query needs ``title_min_links`` links from
    article text. ``max_pages`` stops each pass after that many articles, for quick trials.

    Raises FileNotFoundError for a missing dump, ``DumpFormatError`` (a ValueError) for a
    file that is not a MediaWiki XML dump and ValueError for invalid parameters. A dump
    cut off mid-page is read up to the cut, and ``truncated`` is set in the result.
    """
    _validate_parameters(min_count, bigram_min_count, title_min_links, max_pages)
    dump_path = Path(dump_path)
    out_dir = Path(out_dir)
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    passes = 2 if include_bigrams else 1

    logger.info("building queries from %s into %s", dump_path, out_dir)
    first_pass = DumpReader(
        dump_path,
        include_redirects=include_titles,
        max_articles=max_pages,
        progress=progress,
        progress_desc=f"queries pass 1/{passes}: words and titles",
    )
    unigrams = _count_unigrams(first_pass, include_titles, lowercase)
    dump_stats = first_pass.stats
    logger.info(
        "pass 1: %d articles, %d redirects skipped, %d tokens, %d distinct tokens",
        dump_stats.articles,
        dump_stats.redirects,
        unigrams.total_tokens,
        len(unigrams.tokens),
    )

    bigrams: Counter = Counter()
    bigram_words: frozenset[str] = frozenset()
    if include_bigrams:
        bigram_words = words_for_bigrams(unigrams.tokens, bigram_min_count)
        second_pass = DumpReader(
            dump_path,
            max_articles=max_pages,
            progress=progress,
            progress_desc=f"queries pass 2/{passes}: bigrams",
        )
        # TODO: spill bigram counts to sorted files on disk once they outgrow memory. A full
        # English dump has on the order of 10**8 distinct pairs of frequent words (an estimate).
        _count_bigram_pass(second_pass, bigram_words, bigrams, lowercase)
        logger.info("pass 2: %d distinct bigrams of %d candidate words", len(bigrams), len(bigram_words))

    entries_by_kind = {QueryKind.UNIGRAM: select_unigrams(unigrams.tokens, min_count)}
    if include_bigrams:
        entries_by_kind[QueryKind.BIGRAM] = select_bigrams(
            bigrams, unigrams.tokens, unigrams.total_tokens, bigram_min_count, pmi_threshold
        )
    if include_titles:
        entries_by_kind[QueryKind.TITLE] = select_titles(unigrams.titles, unigrams.links_to(), title_min_links)
    entries, duplicates = merge_kinds(entries_by_kind)

    counts = {kind.value: 0 for kind in KIND_PRIORITY}
    for entry in entries:
        counts[entry.kind] += 1
    counts["queries"] = len(entries)
    elapsed = time.monotonic() - started

    parameters = {
        "min_count": min_count,
        "bigram_min_count": bigram_min_count,
        "pmi_threshold": pmi_threshold,
        "pmi_formula": "log2(count(a b) * tokens / (count(a) * count(b)))",
        "include_bigrams": include_bigrams,
        "include_titles": include_titles,
        "title_min_links": title_min_links,
        "lowercase": lowercase,
        "max_pages": max_pages,
        "kind_priority": [kind.value for kind in KIND_PRIORITY],
    }
    pass_counts = {
        "pages_read": dump_stats.pages_seen,
        "articles": dump_stats.articles,
        "redirects_skipped": dump_stats.redirects,
        "other_namespaces_skipped": dump_stats.other_namespaces,
        "disambiguation_pages": unigrams.disambiguation_pages,
        "tokens": unigrams.total_tokens,
        "distinct_tokens": len(unigrams.tokens),
        "bigram_candidate_words": len(bigram_words),
        "distinct_bigrams": len(bigrams),
        "titles_seen": sum(unigrams.titles.values()),
        "links_counted": sum(unigrams.link_targets.values()),
    }
    build_info = {
        "stage": STAGE,
        "wit_builder_version": __version__,
        "inputs": {"dump": str(dump_path.resolve()), "dump_bytes": dump_path.stat().st_size},
        "parameters": parameters,
        "counts": {**counts, **pass_counts},
        "duplicates_dropped": duplicates,
        "dump": dump_stats.as_dict(),
        "truncated": dump_stats.truncated,
        "started_at": started_at,
        "elapsed_s": round(elapsed, 3),
    }
    paths = _write_outputs(out_dir, entries, build_info)

    logger.info(
        "wrote %d queries (%s) to %s in %.1f s",
        len(entries),
        ", ".join(f"{counts[kind.value]} {kind.value}s" for kind in KIND_PRIORITY),
        out_dir,
        elapsed,
    )
    return QueryBuildResult(
        out_dir=out_dir,
        queries_path=paths[QUERIES_PARQUET],
        text_path=paths[QUERIES_TEXT],
        build_path=paths[BUILD_JSON],
        stats_path=paths["stats.json"],
        counts=counts,
        pages_read=dump_stats.pages_seen,
        articles=dump_stats.articles,
        redirects_skipped=dump_stats.redirects,
        tokens=unigrams.total_tokens,
        truncated=dump_stats.truncated,
        elapsed_s=elapsed,
    )


def _validate_parameters(
    min_count: int, bigram_min_count: int, title_min_links: int, max_pages: int | None
) -> None:
    if min_count < 1:
        raise ValueError(f"invalid min_count {min_count}: it must be at least 1")
    if bigram_min_count < 1:
        raise ValueError(f"invalid bigram_min_count {bigram_min_count}: it must be at least 1")
    if title_min_links < 0:
        raise ValueError(f"invalid title_min_links {title_min_links}: it must be 0 or more")
    if max_pages is not None and max_pages < 1:
        raise ValueError(f"invalid max_pages {max_pages}: it must be at least 1, or None for all pages")


def _count_unigrams(reader: DumpReader, include_titles: bool, lowercase: bool) -> UnigramCounts:
    counts = UnigramCounts()
    stripper: MarkupStripper | None = None
    for page in reader:
        if page.redirect is not None:
            if page.redirect:
                counts.add_redirect(normalize_title(page.title), normalize_title(page.redirect.partition("#")[0]))
            continue

        # <siteinfo> comes before the first page, so the namespace names are known here.
        if stripper is None:
            stripper = MarkupStripper(reader.namespaces)
        link_targets: list[str] | None = [] if include_titles else None
        counts.add_text(stripper.strip(page.text, link_targets), lowercase)
        if include_titles:
            counts.add_title(normalize_title(page.title), page.text)
            counts.add_links([normalize_title(target) for target in link_targets])
    return counts


def _count_bigram_pass(reader: DumpReader, words: frozenset[str], bigrams: Counter, lowercase: bool) -> None:
    stripper: MarkupStripper | None = None
    for page in reader:
        if stripper is None:
            stripper = MarkupStripper(reader.namespaces)
        count_bigrams(stripper.strip(page.text), words, bigrams, lowercase)


def _write_outputs(out_dir: Path, entries: list[QueryEntry], build_info: dict) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        QUERIES_PARQUET: write_records(out_dir / QUERIES_PARQUET, entries, QueryEntry),
        QUERIES_TEXT: _write_text_atomically(out_dir / QUERIES_TEXT, "".join(f"{entry.query}\n" for entry in entries)),
        BUILD_JSON: _write_text_atomically(out_dir / BUILD_JSON, json.dumps(build_info, indent=2) + "\n"),
    }
    top = {kind: [dataclasses.asdict(entry) for entry in entries if entry.kind == kind][:TOP_QUERIES_IN_STATS]
           for kind in (kind.value for kind in KIND_PRIORITY)}
    paths["stats.json"] = write_stage_stats(
        out_dir,
        STAGE,
        build_info["counts"],
        truncated=build_info["truncated"],
        elapsed_s=build_info["elapsed_s"],
        parameters=build_info["parameters"],
        top_queries=top,
    )
    return paths


def _write_text_atomically(path: Path, text: str) -> Path:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    return path


def load_queries(path: str | os.PathLike) -> list[str]:
    """Read a query list in query-id order from queries.parquet, a text file or a build folder.

    A text file has one query per line. Blank lines are skipped, so give every line a
    query when ids must match another file. A folder is read through its
    queries.parquet, or its queries.txt when there is no parquet file.
    """
    path = Path(path)
    if path.is_dir():
        parquet_path = path / QUERIES_PARQUET
        path = parquet_path if parquet_path.is_file() else path / QUERIES_TEXT
    if not path.is_file():
        raise FileNotFoundError(f"query list not found: {path}")

    if path.suffix == ".parquet":
        table = pq.read_table(path)
        if "query" not in table.column_names:
            raise ValueError(f"invalid query list {path}: it has no 'query' column (columns: {table.column_names})")
        return table.column("query").to_pylist()

    with open(path, encoding="utf-8") as lines:
        return [line.rstrip("\r\n") for line in lines if line.strip()]


def read_build_info(out_dir: str | os.PathLike) -> dict:
    """Read the build.json of a query build folder."""
    path = Path(out_dir) / BUILD_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{BUILD_JSON} not found in {out_dir}: run `wit queries build` first")
    return json.loads(path.read_text(encoding="utf-8"))


def top_queries_by_kind(queries_path: str | os.PathLike, limit: int) -> dict[str, list[QueryEntry]]:
    """Return the first ``limit`` entries of each kind of a queries.parquet, which are the most frequent."""
    top: dict[str, list[QueryEntry]] = {kind.value: [] for kind in KIND_PRIORITY}
    for entry in iter_records(queries_path, QueryEntry):
        entries = top.setdefault(entry.kind, [])
        if len(entries) < limit:
            entries.append(entry)
    return top
