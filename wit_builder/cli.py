"""The `wit` command: one subcommand per pipeline stage, plus `wit run PIPELINE.toml`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from wit_builder import __version__

# Modules with an add_parser(subparsers) function, in pipeline order.
STAGE_CLI_MODULES = (
    "wit_builder.queries.cli",
    "wit_builder.harvest.cli",
    "wit_builder.match.cli",
    "wit_builder.fetch.cli",
    "wit_builder.filter.cli",
    "wit_builder.shards.cli",
    "wit_builder.train.cli",
    "wit_builder.report.cli",
    "wit_builder.pipeline.cli",
    "wit_builder.replay.cli",
)

# The module that registers each command. Running one command imports only its module,
# because some stages import heavy libraries (scipy through datasketch, torch) at start.
COMMAND_MODULES = {
    "queries": "wit_builder.queries.cli",
    "harvest": "wit_builder.harvest.cli",
    "match": "wit_builder.match.cli",
    "balance": "wit_builder.match.cli",
    "fetch": "wit_builder.fetch.cli",
    "filter": "wit_builder.filter.cli",
    "shards": "wit_builder.shards.cli",
    "train": "wit_builder.train.cli",
    "report": "wit_builder.report.cli",
    "run": "wit_builder.pipeline.cli",
    "replay": "wit_builder.replay.cli",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with every stage's subcommand, or only with ``command``'s."""
    parser = argparse.ArgumentParser(
        prog="wit",
        description="Build CLIP-style image-text datasets: queries, harvest, match, balance, fetch, filter, shards, train, report.",
    )
    parser.add_argument("--version", action="version", version=f"wit-builder {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    module_names = [COMMAND_MODULES[command]] if command in COMMAND_MODULES else STAGE_CLI_MODULES
    for module_name in module_names:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """Return the first argument that is not an option: the command, when argv has one."""
    return next((argument for argument in argv if not argument.startswith("-")), None)


def configure_logging(verbose: bool, quiet: bool) -> None:
    """Send log records to standard error with a timestamp and the logger name."""
    level = logging.INFO
    if verbose:
        level = logging.DEBUG
    elif quiet:
        level = logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def disable_progress_bars(quiet: bool) -> None:
    """Turn tqdm's bars off without a terminal and with --quiet.

    Progress bars redraw one terminal line. Without a terminal they glue onto the log
    lines. tqdm reads TQDM_DISABLE when it is imported, so this must run before the
    command's module is imported. Worker processes inherit the variable.
    """
    if quiet or not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")


def main(argv: list[str] | None = None) -> int:
    """Run the `wit` command line and return its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    disable_progress_bars("-q" in argv or "--quiet" in argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except (FileNotFoundError, ValueError) as error:
        logging.getLogger("wit").error("%s", error)
        return 2
    except KeyboardInterrupt:
        note = getattr(args, "interrupt_note", "finished files are kept and a rerun resumes from them")
        logging.getLogger("wit").error("interrupted; %s", note)
        return 130
    except BrokenPipeError:
        # The reader of the output went away (`wit queries stats DIR | head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
