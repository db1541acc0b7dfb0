"""`wit run PIPELINE.toml`: run every stage of a pipeline config."""

from __future__ import annotations

import argparse
from pathlib import Path

from wit_builder.pipeline.config import STAGES


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run",
        help="run a whole pipeline from a TOML config",
        description="Run the pipeline stages of a TOML config in order: " + ", ".join(STAGES) + ".",
    )
    parser.add_argument("config", type=Path, help="pipeline TOML file, such as pipelines/sample.toml")
    parser.add_argument("--from", dest="first", choices=STAGES, help="first stage to run; earlier stages' outputs must exist in the run folder")
    parser.add_argument("--to", dest="last", choices=STAGES, help="last stage to run")
    parser.add_argument("--run-dir", type=Path, help="run folder (default: [run] dir in the config)")
    parser.set_defaults(func=run_pipeline)


def run_pipeline(args: argparse.Namespace) -> int:
    from wit_builder.pipeline.config import load_config
    from wit_builder.pipeline.runner import PipelineRunner, select_stages

    config = load_config(args.config)
    if args.run_dir is not None:
        config.run_dir = args.run_dir.resolve()
    PipelineRunner(config).run(select_stages(args.first, args.last))
    return 0
