"""Command-line options that `wit queries build` and `wit queries fetch` share: what makes a query."""

from __future__ import annotations

import argparse

from wit_builder.queries.build import DEFAULT_PMI_THRESHOLD


def add_counting_options(
    group: argparse._ActionsContainer, *, min_count: int, bigram_min_count: int, title_links_help: str
) -> None:
    """Add the unigram, bigram and title thresholds, --no-bigrams, --no-titles and --lowercase."""
    group.add_argument(
        "--min-count",
        type=int,
        default=min_count,
        help=f"minimum number of occurrences of a unigram query (default: {min_count})",
    )
    group.add_argument(
        "--bigram-min-count",
        type=int,
        default=bigram_min_count,
        help=f"minimum number of occurrences of a bigram query (default: {bigram_min_count})",
    )
    group.add_argument(
        "--pmi-threshold",
        type=float,
        default=DEFAULT_PMI_THRESHOLD,
        help="minimum pointwise mutual information of a bigram query, in bits: "
        f"log2(count(a b) * tokens / (count(a) * count(b))) (default: {DEFAULT_PMI_THRESHOLD:g})",
    )
    group.add_argument("--no-bigrams", action="store_true", help="leave bigrams out of the query list")
    group.add_argument("--no-titles", action="store_true", help="leave article titles out of the query list")
    group.add_argument("--title-min-links", type=int, default=0, help=f"{title_links_help} (default: 0)")
    group.add_argument("--lowercase", action="store_true", help="lowercase tokens before counting")


def counting_arguments(args: argparse.Namespace) -> dict:
    """Return the options of ``add_counting_options`` as keyword arguments of ``QueryParams``."""
    return {
        "min_count": args.min_count,
        "bigram_min_count": args.bigram_min_count,
        "pmi_threshold": args.pmi_threshold,
        "include_bigrams": not args.no_bigrams,
        "include_titles": not args.no_titles,
        "title_min_links": args.title_min_links,
        "lowercase": args.lowercase,
    }
