"""`wit match` and `wit balance` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from wit_builder.match.stage import DEFAULT_CAP, balance_folder, match_folder


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


def run_match(args: argparse.Namespace) -> int:
    match_folder(args.candidates, args.queries, args.out, args.ignore_case)
    return 0


def run_balance(args: argparse.Namespace) -> int:
    balance_folder(args.matched, args.out, args.cap, args.seed)
    return 0
