"""`wit match` and `wit balance` subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from wit_builder.match.stage import (
    balance_partition,
    match_partition,
    read_query_counts,
    reduce_query_counts,
)
from wit_builder.parquet import clear_parts, list_parts
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

#: CLIP's cap on pairs per query.
DEFAULT_CAP = 20_000


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``match`` and ``balance`` subcommands."""
    match = subparsers.add_parser(
        "match",
        help="keep candidates whose text contains a query as whole words",
        description="Match every candidates partition against a query list with an Aho-Corasick automaton.",
    )
    match.add_argument("candidates", type=Path, help="folder of candidates part-*.parquet files")
    match.add_argument("--queries", type=Path, required=True, help="queries.parquet or a text file, one query a line")
    match.add_argument("--out", type=Path, required=True, help="output folder for matched part-*.parquet files")
    match.add_argument("--ignore-case", action="store_true", help="match without regard to case (default: case-sensitive)")
    match.set_defaults(func=run_match)

    balance = subparsers.add_parser(
        "balance",
        help="subsample matched candidates so that no query dominates",
        description="Keep each candidate with MetaCLIP's probability 1 - prod(1 - t / max(count_i, t)).",
    )
    balance.add_argument("matched", type=Path, help="folder written by `wit match`")
    balance.add_argument("--out", type=Path, required=True, help="output folder for balanced part-*.parquet files")
    balance.add_argument("--cap", type=int, default=DEFAULT_CAP, help="t: the number of candidates a query keeps (default: %(default)s)")
    balance.add_argument("--seed", type=int, default=0, help="seed of the hash draws (default: %(default)s)")
    balance.set_defaults(func=run_balance)


def match_folder(candidates_dir: Path, queries: Path, out_dir: Path, ignore_case: bool) -> dict:
    """Match every partition of ``candidates_dir`` and reduce the per-query counts."""
    parts = list_parts(candidates_dir)
    if not parts:
        raise FileNotFoundError(f"no part-*.parquet files in {candidates_dir}")

    clear_parts(out_dir)
    totals = {"candidates": 0, "matched": 0, "unmatched": 0}
    for part in parts:
        stats = match_partition(part, queries, out_dir / part.name, ignore_case=ignore_case)
        for name, value in dataclasses.asdict(stats).items():
            totals[name] += value

    counts = reduce_query_counts(out_dir, queries)
    totals["queries_matched"] = len(counts)
    write_stage_stats(out_dir, "match", totals, ignore_case=ignore_case)
    logger.info("matched %d of %d candidates, %d distinct queries", totals["matched"], totals["candidates"], len(counts))
    return totals


def balance_folder(matched_dir: Path, out_dir: Path, cap: int, seed: int) -> dict:
    """Balance every partition of ``matched_dir`` with the counts reduced over all of them."""
    counts = read_query_counts(matched_dir)
    clear_parts(out_dir)
    totals = {"matched": 0, "kept": 0, "dropped": 0}
    for part in list_parts(matched_dir):
        stats = balance_partition(part, counts, out_dir / part.name, cap=cap, seed=seed)
        for name, value in dataclasses.asdict(stats).items():
            totals[name] += value

    over_cap = sum(1 for count in counts.values() if count > cap)
    totals["queries_over_cap"] = over_cap
    write_stage_stats(out_dir, "balance", totals, cap=cap, seed=seed)
    logger.info("balancing kept %d of %d candidates (cap %d, %d queries over it)", totals["kept"], totals["matched"], cap, over_cap)
    return totals


def run_match(args: argparse.Namespace) -> int:
    match_folder(args.candidates, args.queries, args.out, args.ignore_case)
    return 0


def run_balance(args: argparse.Namespace) -> int:
    balance_folder(args.matched, args.out, args.cap, args.seed)
    return 0
