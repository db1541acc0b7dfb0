"""`wit match` and `wit balance` subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from wit_builder.match.balance import BALANCE_MODES, DEFAULT_CAP


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
    match.add_argument(
        "--cache-dir",
        type=Path,
        help="folder for the pickled automaton, shared by runs with the same query list (default: the --out folder)",
    )
    match.set_defaults(func=run_match)

    balance = subparsers.add_parser(
        "balance",
        help="subsample matched candidates so that no query dominates",
        description=(
            "Balance matched candidates per query. metaclip keeps each candidate with MetaCLIP's probability "
            "1 - prod(1 - t / max(count_i, t)); strict credits each kept candidate to one query and no query "
            "to more than t."
        ),
    )
    balance.add_argument("matched", type=Path, help="folder written by `wit match`")
    balance.add_argument("--out", type=Path, required=True, help="output folder for balanced part-*.parquet files")
    balance.add_argument("--cap", type=int, default=DEFAULT_CAP, help="t: the number of candidates a query keeps (default: %(default)s)")
    balance.add_argument("--mode", choices=BALANCE_MODES, default="metaclip", help="balancing rule (default: %(default)s)")
    balance.add_argument(
        "--oversample",
        type=float,
        default=1.0,
        help="multiply t by this factor, so that failed downloads leave each query enough samples (default: %(default)s)",
    )
    balance.add_argument("--seed", type=int, default=0, help="seed of the hash draws (default: %(default)s)")
    balance.set_defaults(func=run_balance)


def run_match(args: argparse.Namespace) -> int:
    from wit_builder.match.stage import match_folder

    match_folder(args.candidates, args.queries, args.out, args.ignore_case, cache_dir=args.cache_dir)
    return 0


def run_balance(args: argparse.Namespace) -> int:
    from wit_builder.match.balance_stage import balance_folder

    balance_folder(args.matched, args.out, args.cap, args.seed, mode=args.mode, oversample=args.oversample)
    return 0
