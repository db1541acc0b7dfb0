"""`wit report`: write an HTML summary of a run folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="write RUN_DIR/report/index.html with plots of every stage found in RUN_DIR",
        description=(
            "Read the stage folders of RUN_DIR (queries, candidates, matched, balanced, fetched, "
            "filtered, final_balance, shards, train) and run.json, and write RUN_DIR/report/index.html "
            "with PNG plots and per-query counts. Missing stages are listed as notes on the page."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="run folder written by `wit run` or the single stages")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Write the report and return the exit code."""
    from wit_builder.report.page import write_report

    try:
        path = write_report(args.run_dir)
    except FileNotFoundError as error:
        logger.error("report failed: %s", error)
        return 2
    print(f"wrote {path}")
    return 0
