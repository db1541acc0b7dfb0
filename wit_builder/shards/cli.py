"""The ``wit shards`` subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wit_builder.parquet import list_parts
from wit_builder.shards.samples import DEFAULT_SAMPLES_PER_SHARD


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``shards`` subcommand on ``subparsers``."""
    parser = subparsers.add_parser(
        "shards",
        help="write kept samples to webdataset tar shards",
        description=(
            "Write the fetched samples that the filter stage kept to OUT/NNNNN.tar webdataset shards, "
            "with NNNNN.parquet metadata, NNNNN_stats.json, sizes.json and stats.json. "
            "Rerunning resumes: finished shards are skipped."
        ),
    )
    parser.add_argument("--fetched", type=Path, required=True, help="folder of fetched part-*.parquet files")
    parser.add_argument(
        "--filtered", type=Path, required=True, help="folder of filter decision part-*.parquet files"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder for the shards")
    parser.add_argument(
        "--samples-per-shard",
        type=int,
        default=DEFAULT_SAMPLES_PER_SHARD,
        help="samples per tar shard; the last shard may hold fewer (default: %(default)s)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the shard writer from parsed arguments and return the exit code."""
    fetched_parts = list_parts(args.fetched)
    decisions_parts = list_parts(args.filtered)
    if not fetched_parts:
        print(f"error: no part-*.parquet files found in {args.fetched}", file=sys.stderr)
        return 2
    if not decisions_parts:
        print(
            f"error: no part-*.parquet files found in {args.filtered}; run `wit filter` first",
            file=sys.stderr,
        )
        return 2

    try:
        from wit_builder.shards.writer import write_shards

        stats = write_shards(fetched_parts, decisions_parts, args.out, args.samples_per_shard)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"shards: {stats.samples} samples in {stats.shards} shards "
        f"({stats.written_shards} written, {stats.skipped_shards} skipped) in {args.out}"
    )
    return 0
