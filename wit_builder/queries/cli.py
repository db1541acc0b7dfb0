"""`wit queries build` and `wit queries stats`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from wit_builder.queries.build import (
    BUILD_JSON,
    DEFAULT_BIGRAM_MIN_COUNT,
    DEFAULT_MEMORY_LIMIT_GB,
    DEFAULT_MIN_COUNT,
    DEFAULT_TARGET_SIZE,
    QUERIES_PARQUET,
    build_queries,
    read_build_info,
    top_queries_by_kind,
)
from wit_builder.queries.counting import TitleRanking
from wit_builder.queries.fetch_cli import add_fetch_parser
from wit_builder.queries.options import add_counting_options, counting_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `queries` command and its `build` and `stats` subcommands."""
    parser = subparsers.add_parser(
        "queries",
        help="build the query list from a Wikipedia dump or from pages fetched live",
        description="Build the query list (unigrams, high-PMI bigrams, article titles, WordNet synsets) "
        "from a MediaWiki XML dump, or from Wikipedia pages fetched through its API.",
    )
    commands = parser.add_subparsers(dest="queries_command", metavar="SUBCOMMAND")
    commands.required = True

    build = commands.add_parser(
        "build",
        help="count a dump's words, word pairs and titles and write the query list",
        description="Read a pages-articles dump (.xml, .xml.bz2, .xml.gz or .xml.xz) twice and write "
        f"{QUERIES_PARQUET}, queries.txt, {BUILD_JSON} and stats.json to --out. With the index of a "
        "multistream dump, each worker reads its own part of the file.",
    )
    build.add_argument("dump", type=Path, metavar="DUMP", help="MediaWiki pages-articles XML dump")
    build.add_argument(
        "--index",
        type=Path,
        default=None,
        help="index of a multistream dump (pages-articles-multistream-index.txt.bz2), for parallel reading",
    )
    build.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="counting processes (default: the number of CPUs, %(default)s here)",
    )
    build.add_argument("--out", type=Path, required=True, help="output folder")
    add_counting_options(
        build,
        min_count=DEFAULT_MIN_COUNT,
        bigram_min_count=DEFAULT_BIGRAM_MIN_COUNT,
        title_links_help="minimum number of other articles that link to an article for its title to be a query",
    )
    build.add_argument(
        "--title-rank",
        choices=TitleRanking.RANKS,
        default=None,
        help="rank titles by pageviews, links from other articles, or text length "
        "(default: pageviews when --pageviews is given, links otherwise)",
    )
    build.add_argument(
        "--pageviews",
        type=Path,
        action="append",
        default=None,
        metavar="FILE",
        help="Wikimedia hourly pageview file (pageviews-YYYYMMDD-HH0000.gz), a folder of them or a glob "
        "pattern; repeatable",
    )
    build.add_argument(
        "--pageviews-wiki",
        default=None,
        help="project code to read from the pageview files (default: the dump's language, such as en)",
    )
    build.add_argument(
        "--title-min-pageviews",
        type=int,
        default=0,
        help="minimum pageviews of an article for its title to be a query, with --pageviews (default: 0)",
    )
    build.add_argument(
        "--wordnet",
        default=None,
        metavar="FOLDER",
        help="add WordNet 3.0 synset names from FOLDER; 'auto' looks in $WORDNET_DIR, $WNSEARCHDIR and "
        "/usr/share/wordnet (Debian's wordnet-base)",
    )
    build.add_argument(
        "--target-size",
        type=int,
        default=DEFAULT_TARGET_SIZE,
        help="cut the list to this many queries: the weakest titles first, then bigrams, then WordNet names, "
        "then unigrams; 0 keeps all "
        f"(default: {DEFAULT_TARGET_SIZE})",
    )
    build.add_argument(
        "--memory-limit-gb",
        type=float,
        default=DEFAULT_MEMORY_LIMIT_GB,
        help="memory the counters may use before they spill sorted runs to disk, across all workers, in GB "
        f"(an estimate; default: {DEFAULT_MEMORY_LIMIT_GB})",
    )
    build.add_argument(
        "--max-entries",
        type=int,
        default=None,
        help="number of keys a counter keeps in memory before it spills to disk; overrides --memory-limit-gb, "
        "which never sets it below 10,000",
    )
    build.add_argument("--max-pages", type=int, default=None, help="read only the first N articles, for quick trials")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    build.set_defaults(func=run_build, interrupt_note="nothing was written; run the build again")

    add_fetch_parser(commands)

    multistream = commands.add_parser(
        "multistream",
        help="recompress a dump as a multistream .bz2 with its index, for parallel builds",
        description="Write DUMP's pages as Wikimedia's multistream layout (a <siteinfo> stream, streams of "
        "--pages-per-stream pages, a closing stream) and the bz2 index of 'offset:page_id:title' lines, "
        "so that `wit queries build --index` can split it among workers.",
    )
    multistream.add_argument("dump", type=Path, metavar="DUMP", help="pages-articles dump (.xml, .bz2, .gz or .xz)")
    multistream.add_argument("--out", type=Path, required=True, help="multistream .xml.bz2 file to write")
    multistream.add_argument("--index", type=Path, required=True, help="index .txt.bz2 file to write")
    multistream.add_argument(
        "--pages-per-stream", type=int, default=100, help="pages per bzip2 stream (default: 100, as Wikimedia's)"
    )
    multistream.set_defaults(func=run_multistream)

    stats = commands.add_parser(
        "stats",
        help="print the counts of a query build and its top queries per kind",
        description=f"Print the counts from {BUILD_JSON} and the most frequent queries of each kind.",
    )
    stats.add_argument("folder", type=Path, metavar="FOLDER", help="output folder of `wit queries build`")
    stats.add_argument("--top", type=int, default=10, help="number of queries to print per kind (default: 10)")
    stats.set_defaults(func=run_stats)


def run_build(args: argparse.Namespace) -> int:
    """Run `wit queries build` and return the exit code."""
    result = build_queries(
        args.dump,
        args.out,
        **counting_arguments(args),
        title_rank=args.title_rank,
        title_min_pageviews=args.title_min_pageviews,
        pageviews=args.pageviews,
        pageviews_wiki=args.pageviews_wiki,
        wordnet=args.wordnet,
        target_size=args.target_size or None,
        index=args.index,
        workers=args.workers,
        memory_limit_gb=args.memory_limit_gb,
        max_entries=args.max_entries,
        max_pages=args.max_pages,
        progress=not args.no_progress,
    )
    counts = ", ".join(f"{count} {kind}" for kind, count in result.counts.items())
    print(f"{result.queries_path}: {counts} from {result.articles} articles in {result.elapsed_s:.1f} s")
    if result.truncated:
        print("warning: the dump ends early; the counts cover only the complete pages before the cut")
    if result.articles == 0:
        print(f"error: no article was read from {args.dump}; the query list is empty")
        return 1
    return 0


def run_multistream(args: argparse.Namespace) -> int:
    """Run `wit queries multistream` and return the exit code."""
    from wit_builder.queries.multistream import write_multistream

    pages = write_multistream(args.dump, args.out, args.index, pages_per_stream=args.pages_per_stream)
    print(f"{args.out}: {pages} pages; index {args.index}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    """Run `wit queries stats` and return the exit code."""
    info = read_build_info(args.folder)
    inputs = info.get("inputs", {})
    for name in ("dump", "index", "api_url"):
        if inputs.get(name):
            print(f"{name}: {inputs[name]}")
    for name in ("pageviews", "wordnet"):
        if inputs.get(name):
            print(f"{name}: {json.dumps(inputs[name])}")
    if info.get("truncated"):
        print("warning: the dump ended early; counts cover only the complete pages before the cut")
        for reason in info.get("stop_reasons", []):
            print(f"  {reason}")
    print("counts:")
    for name, value in info["counts"].items():
        print(f"  {name}: {value}")
    extend = info.get("extend")
    if extend:
        print(
            f"extended {extend['extended_from']}: {extend['existing']} entries kept, {extend['added']} added, "
            f"{extend['already_present']} already present"
        )
    trimmed = {kind: count for kind, count in info.get("trimmed", {}).items() if count}
    if trimmed:
        print("cut to the target size: " + ", ".join(f"{count} {kind}" for kind, count in trimmed.items()))
    if "elapsed_s" in info:
        peak = info.get("peak_rss_mb", {})
        memory = ", ".join(f"{name.replace('_', ' ')} {megabytes} MB" for name, megabytes in peak.items())
        print(f"elapsed: {info['elapsed_s']} s; peak memory: {memory or 'not recorded'}")

    for kind, entries in top_queries_by_kind(Path(args.folder) / QUERIES_PARQUET, args.top).items():
        if not entries:
            continue
        print(f"top {kind} queries:")
        for entry in entries:
            details = [f"count {entry.count}"]
            if entry.pmi is not None:
                details.append(f"PMI {entry.pmi:.2f}")
            if entry.pageviews is not None:
                details.append(f"pageviews {entry.pageviews}")
            print(f"  {entry.query}  ({', '.join(details)})")
    return 0
