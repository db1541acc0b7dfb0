"""`wit queries build` and `wit queries stats`."""

from __future__ import annotations

import argparse
from pathlib import Path

from wit_builder.queries.build import (
    BUILD_JSON,
    DEFAULT_BIGRAM_MIN_COUNT,
    DEFAULT_MIN_COUNT,
    DEFAULT_PMI_THRESHOLD,
    QUERIES_PARQUET,
    build_queries,
    read_build_info,
    top_queries_by_kind,
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `queries` command and its `build` and `stats` subcommands."""
    parser = subparsers.add_parser(
        "queries",
        help="build the query list from a Wikipedia dump",
        description="Build the query list (unigrams, high-PMI bigrams, article titles) from a MediaWiki XML dump.",
    )
    commands = parser.add_subparsers(dest="queries_command", metavar="SUBCOMMAND")
    commands.required = True

    build = commands.add_parser(
        "build",
        help="count a dump's words, word pairs and titles and write the query list",
        description="Read a pages-articles dump (.xml, .xml.bz2 or .xml.gz) twice and write "
        f"{QUERIES_PARQUET}, queries.txt, {BUILD_JSON} and stats.json to --out.",
    )
    build.add_argument("dump", type=Path, metavar="DUMP", help="MediaWiki pages-articles XML dump")
    build.add_argument("--out", type=Path, required=True, help="output folder")
    build.add_argument(
        "--min-count",
        type=int,
        default=DEFAULT_MIN_COUNT,
        help=f"minimum number of occurrences of a unigram query (default: {DEFAULT_MIN_COUNT})",
    )
    build.add_argument(
        "--bigram-min-count",
        type=int,
        default=DEFAULT_BIGRAM_MIN_COUNT,
        help=f"minimum number of occurrences of a bigram query (default: {DEFAULT_BIGRAM_MIN_COUNT})",
    )
    build.add_argument(
        "--pmi-threshold",
        type=float,
        default=DEFAULT_PMI_THRESHOLD,
        help="minimum pointwise mutual information of a bigram query, in bits: "
        f"log2(count(a b) * tokens / (count(a) * count(b))) (default: {DEFAULT_PMI_THRESHOLD})",
    )
    build.add_argument("--no-bigrams", action="store_true", help="skip bigrams and the second pass over the dump")
    build.add_argument("--no-titles", action="store_true", help="leave article titles out of the query list")
    build.add_argument(
        "--title-min-links",
        type=int,
        default=0,
        help="minimum number of links from article text to an article for its title to be a query (default: 0)",
    )
    build.add_argument("--lowercase", action="store_true", help="lowercase tokens before counting")
    build.add_argument("--max-pages", type=int, default=None, help="read only the first N articles, for quick trials")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    build.set_defaults(func=run_build)

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
        min_count=args.min_count,
        bigram_min_count=args.bigram_min_count,
        pmi_threshold=args.pmi_threshold,
        include_bigrams=not args.no_bigrams,
        include_titles=not args.no_titles,
        title_min_links=args.title_min_links,
        lowercase=args.lowercase,
        max_pages=args.max_pages,
        progress=not args.no_progress,
    )
    counts = ", ".join(f"{count} {kind}" for kind, count in result.counts.items())
    print(f"{result.queries_path}: {counts} from {result.articles} articles in {result.elapsed_s:.1f} s")
    if result.truncated:
        print("warning: the dump ends early; the counts cover only the complete pages before the cut")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    """Run `wit queries stats` and return the exit code."""
    info = read_build_info(args.folder)
    print(f"dump: {info['inputs']['dump']}")
    if info.get("truncated"):
        print("warning: the dump ended early; counts cover only the complete pages before the cut")
    for name, value in info["counts"].items():
        print(f"  {name}: {value}")

    for kind, entries in top_queries_by_kind(Path(args.folder) / QUERIES_PARQUET, args.top).items():
        print(f"top {kind} queries:")
        for entry in entries:
            detail = f"count {entry.count}" if entry.pmi is None else f"count {entry.count}, PMI {entry.pmi:.2f}"
            print(f"  {entry.query}  ({detail})")
    return 0
