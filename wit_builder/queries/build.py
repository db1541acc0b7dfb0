"""Build a query list from a Wikipedia dump: unigrams, bigrams, titles and WordNet synsets.

``build_queries`` reads the dump twice, in worker processes when asked:

1. the first pass counts word tokens, article titles with their lengths, links and
   redirects;
2. the second pass counts adjacent pairs, but only of words frequent enough to form a
   pair that passes ``bigram_min_count``.

Counts spill to sorted run files under the output folder once a counter contains
``max_entries`` keys, and are merged from disk, so memory does not grow with the dump
(see ``wit_builder.queries.spill``). Titles are ranked by pageviews when pageview files
are given, otherwise by links or length. WordNet synset names are added last. When the
list is longer than ``target_size``, ``trim_to_size`` cuts it in a fixed order.

The output folder gets:

- ``queries.parquet``: ``QueryEntry`` rows, unigrams, bigrams, titles, then WordNet
  names, each kind best first. A query's id is its row index;
- ``queries.txt``: the same queries, one per line, in the same order;
- ``build.json``: the inputs, parameters, counts per kind, pass statistics and timing;
- ``stats.json``: the stage's counts and the top queries of each kind.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import resource
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import pyarrow.parquet as pq

from wit_builder import __version__
from wit_builder.parquet import iter_records, write_records
from wit_builder.queries.articles import ArticleText
from wit_builder.queries.counting import (
    KIND_PRIORITY,
    REDIRECT_SEPARATOR,
    TRIM_ORDER,
    PairPass,
    PassCounters,
    TitleRanking,
    WordPass,
    merge_kinds,
    resolve_redirects,
    scan_unigrams,
    select_bigrams,
    select_titles,
    select_wordnet,
    trim_to_size,
)
from wit_builder.queries.dump import read_siteinfo
from wit_builder.queries.passes import DumpSource, PassOutcome, run_cache_pass, run_pass
from wit_builder.queries.spill import APPROX_BYTES_PER_ENTRY, join_sorted, merge_runs
from wit_builder.records import QueryEntry, QueryKind
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

STAGE = "queries"
QUERIES_PARQUET = "queries.parquet"
QUERIES_TEXT = "queries.txt"
BUILD_JSON = "build.json"
SPILL_FOLDER = ".spill"

#: Defaults sized for a full English Wikipedia dump (about 4 billion tokens, an estimate).
DEFAULT_MIN_COUNT = 100
DEFAULT_BIGRAM_MIN_COUNT = 100
DEFAULT_PMI_THRESHOLD = 8.0
DEFAULT_TARGET_SIZE = 500_000
DEFAULT_MEMORY_LIMIT_GB = 8.0
TOP_QUERIES_IN_STATS = 20


@dataclass
class QueryParams:
    """Thresholds that make a word, pair, title or synset a query, and the size the list is cut to.

    ``title_rank`` is "pageviews", "links" or "length"; None picks pageviews when
    pageview counts are given and links otherwise. ``target_size`` None keeps every
    entry. ``max_entries`` is the number of keys a counter contains before it spills.
    """

    min_count: int = DEFAULT_MIN_COUNT
    bigram_min_count: int = DEFAULT_BIGRAM_MIN_COUNT
    pmi_threshold: float = DEFAULT_PMI_THRESHOLD
    include_bigrams: bool = True
    include_titles: bool = True
    title_rank: str | None = None
    title_min_links: int = 0
    title_min_pageviews: int = 0
    lowercase: bool = False
    target_size: int | None = DEFAULT_TARGET_SIZE
    max_entries: int = 10_000_000

    def validate(self) -> None:
        """Raise ValueError naming the first invalid parameter and its command-line option."""
        for name in ("min_count", "bigram_min_count", "max_entries"):
            if getattr(self, name) < 1:
                raise ValueError(f"invalid {_option(name)} {getattr(self, name)}: it must be at least 1")
        for name in ("title_min_links", "title_min_pageviews"):
            if getattr(self, name) < 0:
                raise ValueError(f"invalid {_option(name)} {getattr(self, name)}: it must be 0 or more")
        if not math.isfinite(self.pmi_threshold):
            raise ValueError(f"invalid {_option('pmi_threshold')} {self.pmi_threshold}: it must be a finite number of bits")
        if self.target_size is not None and self.target_size < 1:
            raise ValueError(
                f"invalid {_option('target_size')} {self.target_size}: it must be at least 1 "
                "(None in Python, or 0 on the command line, keeps every entry)"
            )
        if self.title_rank is not None:
            TitleRanking(rank=self.title_rank)

    def as_dict(self) -> dict:
        return {
            **dataclasses.asdict(self),
            "pmi_formula": "log2(count(a b) * tokens / (count(a) * count(b)))",
            "kind_priority": [kind.value for kind in KIND_PRIORITY],
            "trim_order": [kind.value for kind in TRIM_ORDER],
        }


def _option(name: str) -> str:
    """Return a parameter's name with its command-line option, such as "target_size (--target-size)"."""
    return f"{name} (--{name.replace('_', '-')})"


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


@dataclass
class _Extras:
    """Query sources that do not come from the counted text."""

    pageviews: dict[str, int] | None = None
    wordnet: dict[str, int] | None = None
    inputs: dict = field(default_factory=dict)


def max_entries_for(memory_limit_gb: float, workers: int) -> int:
    """Return the keys per counter that keep ``workers`` first-pass workers near ``memory_limit_gb``.

    A first-pass worker keeps four counters (words, titles, links, redirects) of about
    ``APPROX_BYTES_PER_ENTRY`` bytes per key each. The estimate leaves a quarter of the
    limit to the parent's merge and the selected entries.
    """
    if memory_limit_gb <= 0:
        raise ValueError(f"invalid {_option('memory_limit_gb')} {memory_limit_gb}: it must be more than 0")
    budget = memory_limit_gb * 1e9 * 0.75
    return max(10_000, int(budget / (APPROX_BYTES_PER_ENTRY * len(WordPass.COUNTERS) * workers)))


def build_queries(
    dump_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    min_count: int = DEFAULT_MIN_COUNT,
    bigram_min_count: int = DEFAULT_BIGRAM_MIN_COUNT,
    pmi_threshold: float = DEFAULT_PMI_THRESHOLD,
    include_bigrams: bool = True,
    include_titles: bool = True,
    title_rank: str | None = None,
    title_min_links: int = 0,
    title_min_pageviews: int = 0,
    pageviews: list[str | os.PathLike] | None = None,
    pageviews_wiki: str | None = None,
    wordnet: str | os.PathLike | None = None,
    target_size: int | None = DEFAULT_TARGET_SIZE,
    lowercase: bool = False,
    index: str | os.PathLike | None = None,
    workers: int = 1,
    memory_limit_gb: float = DEFAULT_MEMORY_LIMIT_GB,
    max_entries: int | None = None,
    max_pages: int | None = None,
    progress: bool = True,
) -> QueryBuildResult:
    """Count the words, pairs and titles of the articles in ``dump_path`` and write the query list to ``out_dir``.

    ``min_count`` is the minimum count of a unigram query. A bigram query needs at least
    ``bigram_min_count`` occurrences and a PMI of at least ``pmi_threshold`` bits (see
    ``wit_builder.queries.counting``). Titles are ranked by ``title_rank`` and must pass
    ``title_min_links`` and, with ``pageviews`` files, ``title_min_pageviews``.
    ``wordnet`` is a WordNet 3.0 database folder whose synset names are added, or
    "auto" to look in the usual places (see ``wit_builder.queries.wordnet``).
    ``index`` is the multistream index of the dump, which lets ``workers`` processes
    read separate parts of it. ``memory_limit_gb`` sets the spill size unless
    ``max_entries`` is given. ``max_pages`` stops each pass after that many articles.

    Raises FileNotFoundError for a missing input, ``DumpFormatError`` (a ValueError)
    for a file that is not a MediaWiki XML dump and ValueError for invalid parameters.
    A dump cut off mid-page is read up to the cut, and ``truncated`` is set.
    """
    if workers < 1:
        raise ValueError(f"invalid {_option('workers')} {workers}: it must be at least 1")
    if max_pages is not None and max_pages < 1:
        raise ValueError(f"invalid {_option('max_pages')} {max_pages}: it must be at least 1, or None for all pages")
    if title_min_pageviews and not pageviews:
        logger.warning("title_min_pageviews (--title-min-pageviews) has no effect without pageview files (--pageviews)")
    params = QueryParams(
        min_count=min_count,
        bigram_min_count=bigram_min_count,
        pmi_threshold=pmi_threshold,
        include_bigrams=include_bigrams,
        include_titles=include_titles,
        title_rank=title_rank,
        title_min_links=title_min_links,
        title_min_pageviews=title_min_pageviews,
        lowercase=lowercase,
        target_size=target_size,
        max_entries=max_entries if max_entries is not None else max_entries_for(memory_limit_gb, workers),
    )
    params.validate()
    dump_path = Path(dump_path)
    siteinfo = read_siteinfo(dump_path)
    source = DumpSource(dump_path, siteinfo, Path(index) if index is not None else None, max_pages)
    extras = _read_extras(pageviews, pageviews_wiki or siteinfo.language or "en", title_min_pageviews, wordnet)
    extras.inputs.update(
        dump=str(dump_path.resolve()),
        dump_bytes=dump_path.stat().st_size,
        index=str(source.index.resolve()) if source.index is not None else None,
        sitename=siteinfo.sitename,
        dbname=siteinfo.dbname,
        language=siteinfo.language,
        case=siteinfo.case,
        encoding=siteinfo.encoding,
    )
    passes = 2 if include_bigrams else 1
    logger.info("building queries from %s into %s with %d workers", dump_path, out_dir, workers)

    def count_words(counters: PassCounters) -> PassOutcome:
        make = functools.partial(
            WordPass, counters, lowercase=lowercase, include_titles=include_titles, cache_tokens=include_bigrams
        )
        return run_pass(make, source, workers=workers, progress=progress, desc=f"queries pass 1/{passes}: words and titles")

    def count_pairs(counters: PassCounters, words: frozenset[str], files: list[Path]) -> PassOutcome:
        make = functools.partial(PairPass, counters, words)
        return run_cache_pass(make, files, workers=workers, progress=progress, desc=f"queries pass 2/{passes}: bigrams")

    run_parameters = {"workers": workers, "memory_limit_gb": memory_limit_gb, "max_pages": max_pages}
    return _build(count_words, count_pairs, Path(out_dir), params, extras, run_parameters)


def build_queries_from_articles(
    articles: Iterable[ArticleText],
    out_dir: str | os.PathLike,
    *,
    params: QueryParams | None = None,
    inputs: dict | None = None,
    pageviews: dict[str, int] | None = None,
    wordnet: dict[str, int] | None = None,
) -> QueryBuildResult:
    """Build a query list from articles already in plain text, such as pages fetched from the API.

    Counts in this process; the articles are held in memory for the second pass.
    ``inputs`` is recorded in build.json as it is.
    """
    params = params or QueryParams()
    params.validate()
    articles = list(articles)
    extras = _Extras(pageviews=pageviews, wordnet=wordnet, inputs=dict(inputs or {}))

    def count(counting) -> PassOutcome:
        for article in articles:
            counting.add_article(article)
        outcome = PassOutcome()
        outcome.add_runs(counting.finish())
        outcome.stats.update(counting.stats)
        return outcome

    def count_words(counters: PassCounters) -> PassOutcome:
        return count(
            WordPass(
                counters,
                lowercase=params.lowercase,
                include_titles=params.include_titles,
                cache_tokens=params.include_bigrams,
            )
        )

    def count_pairs(counters: PassCounters, words: frozenset[str], files: list[Path]) -> PassOutcome:
        return run_cache_pass(functools.partial(PairPass, counters, words), files, progress=False)

    return _build(count_words, count_pairs, Path(out_dir), params, extras, {"articles_given": len(articles)})


def _read_extras(pageviews: list | None, wiki: str, min_views: int, wordnet: str | os.PathLike | None) -> _Extras:
    extras = _Extras()
    if pageviews:
        from wit_builder.queries.pageviews import read_pageviews

        # NOTE: the sums keep one entry per viewed title of the wiki, about 130 bytes each.
        # A high title_min_pageviews drops most of them as the files are read.
        counted = read_pageviews(pageviews, wiki=wiki, min_views=min_views)
        if counted.lines_read and counted.lines_malformed == counted.lines_read:
            raise ValueError(
                f"no line of the pageview files {[str(path) for path in pageviews]} has the format "
                "'domain_code page_title count_views total_response_size': are they Wikimedia pageview files?"
            )
        if not counted.views:
            seen = sorted(counted.lines_by_domain_code, key=counted.lines_by_domain_code.get, reverse=True)[:10]
            logger.warning(
                "the pageview files have no views of wiki %r (--pageviews-wiki); the most frequent project codes "
                "in them are %s",
                wiki,
                ", ".join(seen) or "none",
            )
        extras.pageviews = counted.views
        extras.inputs["pageviews"] = {
            "files": [str(path) for path in pageviews],
            "wiki": wiki,
            "titles": len(counted.views),
        }
    if wordnet is not None:
        from wit_builder.queries.wordnet import find_wordnet_folder, read_synset_names

        if str(wordnet) == "auto":
            wordnet = find_wordnet_folder()
            if wordnet is None:
                raise FileNotFoundError(
                    "no WordNet 3.0 folder found in $WORDNET_DIR, $WNSEARCHDIR or /usr/share/wordnet: "
                    "install it with `apt-get install --no-install-recommends wordnet-base` or pass a folder"
                )
        names = read_synset_names(wordnet)
        extras.wordnet = names.names
        extras.inputs["wordnet"] = {"folder": str(wordnet), "names": len(names.names)}
    return extras


def _build(
    count_words: Callable[[PassCounters], PassOutcome],
    count_pairs: Callable[[PassCounters, frozenset[str], list[Path]], PassOutcome],
    out_dir: Path,
    params: QueryParams,
    extras: _Extras,
    run_parameters: dict,
) -> QueryBuildResult:
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _prepare_output_folder(out_dir)
    spill = out_dir / SPILL_FOLDER
    shutil.rmtree(spill, ignore_errors=True)
    counters = PassCounters(spill, params.max_entries)
    timings: dict[str, float] = {}

    try:
        words = count_words(counters)
        timings["pass_1_s"] = round(words.elapsed_s or time.monotonic() - started, 3)
        total_tokens = words.stats["tokens"]
        unigram_entries, frequent, distinct_tokens = scan_unigrams(
            merge_runs(words.runs["unigrams"]), params.min_count, params.bigram_min_count
        )
        logger.info(
            "pass 1: %d articles, %d redirects, %d tokens, %d distinct tokens, %d unigram queries",
            words.stats["articles"],
            words.stats["redirects"],
            total_tokens,
            distinct_tokens,
            len(unigram_entries),
        )
        entries_by_kind = {QueryKind.UNIGRAM: unigram_entries}

        titles_seen = 0
        if params.include_titles:
            entries_by_kind[QueryKind.TITLE], titles_seen = _select_titles(words, counters, params, extras)

        distinct_bigrams = 0
        pairs: PassOutcome | None = None
        if params.include_bigrams:
            pass_started = time.monotonic()
            pairs = count_pairs(counters, frozenset(frequent), words.runs["tokens"])
            timings["pass_2_s"] = round(time.monotonic() - pass_started, 3)
            entries_by_kind[QueryKind.BIGRAM], distinct_bigrams = select_bigrams(
                merge_runs(pairs.runs["bigrams"]),
                frequent,
                total_tokens,
                params.bigram_min_count,
                params.pmi_threshold,
                limit=params.target_size,
            )
            logger.info("pass 2: %d distinct bigrams of %d candidate words", distinct_bigrams, len(frequent))

        if extras.wordnet is not None:
            entries_by_kind[QueryKind.WORDNET] = select_wordnet(extras.wordnet)
    finally:
        shutil.rmtree(spill, ignore_errors=True)

    unique, duplicates = merge_kinds(entries_by_kind)
    before_trim = {kind.value: len(entries) for kind, entries in unique.items()}
    trimmed = trim_to_size(unique, params.target_size)
    entries = [entry for kind in KIND_PRIORITY for entry in unique[kind]]

    counts = {kind.value: len(unique[kind]) for kind in KIND_PRIORITY}
    counts["queries"] = len(entries)
    elapsed = time.monotonic() - started
    stats = words.stats
    pass_counts = {
        "pages_read": stats["pages"] or stats["articles"],
        "articles": stats["articles"],
        "redirects_skipped": stats["redirects"],
        "other_namespaces_skipped": stats["other_namespaces"],
        "disambiguation_pages": stats["disambiguation_pages"],
        "tokens": total_tokens,
        "distinct_tokens": distinct_tokens,
        "bigram_candidate_words": len(frequent) if params.include_bigrams else 0,
        "distinct_bigrams": distinct_bigrams,
        "titles_seen": titles_seen,
        "links_counted": stats["links"],
    }
    spilled = {
        "pass_1_runs": sum(len(paths) for name, paths in words.runs.items() if name != "tokens"),
        "token_cache_files": len(words.runs["tokens"]),
    }
    if pairs is not None:
        spilled["pass_2_runs"] = len(pairs.runs["bigrams"])
    truncated = words.truncated or (pairs is not None and pairs.truncated)
    build_info = {
        "stage": STAGE,
        "wit_builder_version": __version__,
        "inputs": extras.inputs,
        "parameters": {**params.as_dict(), "title_rank": effective_title_rank(params, extras), **run_parameters},
        "counts": {**counts, **pass_counts},
        "before_trim": before_trim,
        "trimmed": trimmed,
        "duplicates_dropped": duplicates,
        "spill": spilled,
        "truncated": truncated,
        "stop_reasons": words.stop_reasons + (pairs.stop_reasons if pairs is not None else []),
        "peak_rss_mb": _peak_rss_mb(words, pairs),
        "timings": timings,
        "started_at": started_at,
        "elapsed_s": round(elapsed, 3),
    }
    paths = _write_outputs(out_dir, entries, build_info)

    logger.info(
        "wrote %d queries (%s) to %s in %.1f s",
        len(entries),
        ", ".join(f"{counts[kind.value]} {kind.value}" for kind in KIND_PRIORITY),
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
        pages_read=pass_counts["pages_read"],
        articles=stats["articles"],
        redirects_skipped=stats["redirects"],
        tokens=total_tokens,
        truncated=truncated,
        elapsed_s=elapsed,
    )


def effective_title_rank(params: QueryParams, extras: _Extras) -> str:
    """Return the title rank a build uses: the one asked for, else pageviews when given, else links."""
    return params.title_rank or ("pageviews" if extras.pageviews is not None else "links")


def _credit_redirect_views(views: dict[str, int], redirect_runs: list[Path]) -> None:
    """Add the views of each redirect title to its target, as links to redirects are credited."""
    for key, _count in merge_runs(redirect_runs):
        source, _separator, target = key.partition(REDIRECT_SEPARATOR)
        redirected = views.pop(source, 0)
        if redirected:
            views[target] = views.get(target, 0) + redirected


def _prepare_output_folder(out_dir: Path) -> None:
    """Create ``out_dir``, or raise ValueError saying why it cannot hold the build's files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"invalid output folder {out_dir}: it exists and is not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to the output folder {out_dir}: {error}") from error


def _select_titles(
    words: PassOutcome, counters: PassCounters, params: QueryParams, extras: _Extras
) -> tuple[list[QueryEntry], int]:
    """Credit links through redirects, join them with titles and lengths, and rank the titles."""
    inlinks = counters.counter("inlinks")
    for title, count in resolve_redirects(merge_runs(words.runs["links"]), merge_runs(words.runs["redirects"])):
        inlinks.add(title, count)
    rank = effective_title_rank(params, extras)
    if extras.pageviews is not None:
        _credit_redirect_views(extras.pageviews, words.runs["redirects"])
    ranking = TitleRanking(
        rank=rank,
        min_links=params.title_min_links,
        min_pageviews=params.title_min_pageviews,
        limit=params.target_size,
    )
    seen = Counter()

    def rows() -> Iterable[tuple[str, int, int]]:
        for title, length, links in join_sorted(merge_runs(words.runs["titles"]), merge_runs(inlinks.finish())):
            seen["titles"] += 1
            yield title, length, links

    entries = select_titles(rows(), ranking, extras.pageviews)
    return entries, seen["titles"]


def _peak_rss_mb(*outcomes: PassOutcome | None) -> dict[str, float]:
    """Return the peak resident memory of this process and of the largest worker process, in MB.

    Each worker measures its own peak, because the kernel's figure for finished children
    can start from the size of the parent that started them.
    """
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = max((outcome.worker_peak_rss_kb for outcome in outcomes if outcome is not None), default=0) / 1024
    return {"main": round(own, 1), "largest_worker": round(workers, 1)}


def _write_outputs(out_dir: Path, entries: list[QueryEntry], build_info: dict) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        QUERIES_PARQUET: write_records(out_dir / QUERIES_PARQUET, entries, QueryEntry),
        QUERIES_TEXT: _write_text_atomically(out_dir / QUERIES_TEXT, "".join(f"{entry.query}\n" for entry in entries)),
        BUILD_JSON: _write_text_atomically(out_dir / BUILD_JSON, json.dumps(build_info, indent=2) + "\n"),
    }
    top: dict[str, list[dict]] = {kind.value: [] for kind in KIND_PRIORITY}
    for entry in entries:
        if len(top[entry.kind]) < TOP_QUERIES_IN_STATS:
            top[entry.kind].append(dataclasses.asdict(entry))
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
