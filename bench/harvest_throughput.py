"""Measure the throughput of `wit harvest wat` and `wit harvest warc` against cc2dataset and `gzip -dc`.

For each input file, the script runs each command ``--repeats`` times, alternating
commands within a round so that a change of machine load hits all of them alike:

- ``gzip``: ``gzip -dc FILE > /dev/null``, the floor that every reader of a .gz file
  pays (one process);
- ``cc2dataset``: cc2dataset_wat.py in the cc2dataset venv, which calls cc2dataset's
  ``process_wat(FILE, "image")``, drops repeated uids and writes one Parquet file
  (WAT inputs only);
- ``wit-wat``: ``wit harvest wat FILE --out TMP`` (WAT inputs only);
- ``wit-warc``: ``wit harvest warc FILE --out TMP`` (the WARC input only).

Throughput is WARC records, compressed megabytes and uncompressed megabytes (10**6
bytes) per second of wall time, from the median of the repeats. Every command is pinned
to the same ``--cpus`` CPUs, and the 1-minute load average is recorded before each run.
Before the timed runs, each command runs once, untimed, on a small real file, so that
both tools start with their libraries in the page cache and with compiled bytecode.
The timed commands run without ``PYTHONDONTWRITEBYTECODE``, as after a normal install.
The script prints a Markdown table and writes the JSON result (every run, machine facts,
command lines) to bench/results/.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import logging
import os
import pstats
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import make_web_inputs
from harness import (
    BENCH_DIR,
    MB,
    ToolRun,
    add_data_arguments,
    add_run_arguments,
    check_run_arguments,
    machine_facts,
    markdown_table,
    print_result,
    reference_summary,
    run_rounds,
    summarize_all,
    write_result,
)
from measure import CommandFailed, pinned_cpus, run_measured, stop_on_sigterm

logger = logging.getLogger("harvest_throughput")

TOOLS = ("gzip", "cc2dataset", "wit-wat", "wit-warc")
INPUTS = ("wat-real", "wat-derived", "warc")
# The commands that can read each kind of input.
TOOLS_FOR_INPUT = {
    "wat-real": ("gzip", "cc2dataset", "wit-wat"),
    "wat-derived": ("gzip", "cc2dataset", "wit-wat"),
    "warc": ("gzip", "wit-warc"),
}
DEFAULT_CC2DATASET_PYTHON = BENCH_DIR / ".venv-cc2dataset" / "bin" / "python"
CC2DATASET_SCRIPT = BENCH_DIR / "cc2dataset_wat.py"
QUICK_TARGET_MB = 5.0
DEFAULT_TIMEOUT_S = 900.0
PROFILE_TOP = 20


@dataclass(frozen=True)
class BenchInput:
    """One input file to time, with its WARC records and decompressed size."""

    name: str
    path: Path
    copies: int
    compressed_bytes: int
    uncompressed_bytes: int
    records_by_type: dict[str, int]

    @property
    def records(self) -> int:
        return sum(self.records_by_type.values())

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "copies": self.copies,
            "compressed_bytes": self.compressed_bytes,
            "uncompressed_bytes": self.uncompressed_bytes,
            "records": self.records,
            "records_by_type": self.records_by_type,
        }


def count_records(path: Path) -> tuple[dict[str, int], int]:
    """Count the WARC records of a (multi-member) .gz file by WARC-Type, and return them with its decompressed size.

    Reads the records' headers and skips their blocks by Content-Length. Raises ValueError
    on a record without a valid Content-Length.
    """
    counts: collections.Counter[str] = collections.Counter()
    with gzip.open(path, "rb") as stream:
        while line := stream.readline():
            if not line.startswith(b"WARC/"):
                continue
            record_type = "unknown"
            length = None
            while (header := stream.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = header.partition(b":")
                name = name.strip().lower()
                if name == b"warc-type":
                    record_type = value.strip().decode("ascii", "replace")
                elif name == b"content-length":
                    length = int(value.strip())
            if length is None:
                raise ValueError(f"{path}: WARC record without Content-Length at decompressed offset {stream.tell()}")
            stream.seek(length, os.SEEK_CUR)
            counts[record_type] += 1
        uncompressed = stream.tell()
    return dict(sorted(counts.items())), uncompressed


class WitHarvest:
    """How to start `wit harvest SOURCE` and which sources this version has."""

    def __init__(self, command_line: str):
        self.command = shlex.split(command_line)
        self.sources = {source for source in ("wat", "warc") if self._has_source(source)}

    def _has_source(self, source: str) -> bool:
        help_command = [*self.command, "harvest", source, "--help"]
        try:
            completed = subprocess.run(help_command, capture_output=True, text=True)
        except OSError as error:
            logger.error("cannot start `%s`: %s", " ".join(help_command), error)
            return False
        return completed.returncode == 0

    def build_command(self, source: str, path: Path, out_dir: Path, extra: list[str]) -> list[str]:
        return [*self.command, "harvest", source, str(path), "--out", str(out_dir), *extra]

    def profile_command(self, source: str, path: Path, out_dir: Path, extra: list[str], profile_path: Path) -> list[str]:
        """Return the command line that runs the same harvest under cProfile, with the Python of wit's entry script.

        Raises ValueError when the last word of the wit command is not a script with a ``#!`` line.
        """
        script = Path(self.command[-1])
        try:
            first_line = script.read_text(encoding="utf-8").splitlines()[0]
        except (OSError, UnicodeDecodeError, IndexError) as error:
            raise ValueError(f"cannot read the Python of {script}: {error}; --profile needs a wit entry script") from error
        if not first_line.startswith("#!"):
            raise ValueError(f"{script} has no #! line; --profile needs a wit entry script")
        python = first_line[2:].strip()
        profiler = [python, "-m", "cProfile", "-o", str(profile_path), str(script)]
        return [*self.command[:-1], *profiler, "harvest", source, str(path), "--out", str(out_dir), *extra]


def command_environment() -> dict[str, str]:
    """Return the environment of the timed commands: this one without PYTHONDONTWRITEBYTECODE.

    A normal install (pip) compiles the bytecode of every package, but wit's editable install
    compiles it on first import, and with that variable set on every run.
    """
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


class HarvestBench:
    """Builds the command line of each tool and runs it on one input."""

    def __init__(self, wit: WitHarvest, cc2dataset_python: Path, wit_extra: list[str], cpus: set[int] | None, timeout_s: float):
        self.wit = wit
        self.cc2dataset_python = cc2dataset_python
        self.wit_extra = wit_extra
        self.cpus = cpus
        self.timeout_s = timeout_s
        self.env = command_environment()

    def command(self, tool: str, path: Path, out_dir: Path) -> list[str]:
        if tool == "gzip":
            return ["gzip", "-dc", str(path)]
        if tool == "cc2dataset":
            return [str(self.cc2dataset_python), str(CC2DATASET_SCRIPT), str(path), "--out", str(out_dir)]
        if tool == "wit-wat":
            return self.wit.build_command("wat", path, out_dir, self.wit_extra)
        if tool == "wit-warc":
            return self.wit.build_command("warc", path, out_dir, self.wit_extra)
        raise ValueError(f"unknown tool {tool!r}: expected one of {TOOLS}")

    def warm_up(self, tool: str, path: Path) -> None:
        """Run ``tool`` once on a small file, untimed, so that its libraries are cached and its bytecode is written."""
        with tempfile.TemporaryDirectory(prefix="wit-bench-") as scratch:
            command = self.command(tool, path, Path(scratch) / "out")
            completed = subprocess.run(command, capture_output=True, env=self.env, timeout=self.timeout_s)
            if completed.returncode != 0:
                logger.warning("warm-up of %s on %s failed with exit status %d", tool, path, completed.returncode)

    def run(self, tool: str, bench_input: BenchInput, repeat: int) -> ToolRun:
        """Run ``tool`` once on ``bench_input``. A failed command is recorded in ``error``, not raised."""
        with tempfile.TemporaryDirectory(prefix="wit-bench-") as scratch:
            scratch_dir = Path(scratch)
            stdout_path = scratch_dir / "stdout"
            out_dir = scratch_dir / "out"
            command = self.command(tool, bench_input.path, out_dir)
            load_before = os.getloadavg()
            try:
                measurement = run_measured(
                    command, cpus=self.cpus, stdout_path=stdout_path, timeout_s=self.timeout_s, env=self.env
                )
            except CommandFailed as error:
                logger.error("%s on %s failed: %s", tool, bench_input.name, error)
                return ToolRun(bench_input.name, tool, repeat, None, {}, error=str(error), load_before=load_before)
            reported = _reported_work(tool, stdout_path, out_dir)
            return ToolRun(bench_input.name, tool, repeat, measurement, reported, load_before=load_before)


def profile_wit(bench: HarvestBench, tool: str, bench_input: BenchInput, results_dir: Path, top: int) -> dict:
    """Run one wit command under cProfile, keep the profile in ``results_dir`` and return its top functions by own time."""
    source = tool.removeprefix("wit-")
    results_dir.mkdir(parents=True, exist_ok=True)
    profile_path = results_dir / f"harvest_profile-{bench_input.name}-{tool}.prof"
    with tempfile.TemporaryDirectory(prefix="wit-bench-") as scratch:
        command = bench.wit.profile_command(source, bench_input.path, Path(scratch) / "out", bench.wit_extra, profile_path)
        # `python -m` puts the working folder first on sys.path, so run from the scratch folder: from the
        # repository root, the checkout's wit_builder would shadow the one that --wit-command selects.
        preexec = (lambda: os.sched_setaffinity(0, bench.cpus)) if bench.cpus else None
        completed = subprocess.run(
            command, cwd=scratch, capture_output=True, text=True, timeout=bench.timeout_s, preexec_fn=preexec, env=bench.env
        )
        if completed.returncode != 0:
            raise CommandFailed(f"profiled command failed with exit status {completed.returncode}: "
                                f"{' '.join(command)}\n{completed.stderr[-2000:]}")

    stats = pstats.Stats(str(profile_path))
    rows = []
    for (filename, line, function), (_primitive_calls, calls, own_s, cumulative_s, _callers) in stats.stats.items():
        rows.append({"function": f"{filename}:{line}({function})", "calls": calls,
                     "own_s": round(own_s, 3), "cumulative_s": round(cumulative_s, 3)})
    rows.sort(key=lambda row: row["own_s"], reverse=True)
    return {"input": bench_input.name, "tool": tool, "profile": str(profile_path),
            "total_s": round(stats.total_tt, 3), "top_by_own_time": rows[:top]}


def _reported_work(tool: str, stdout_path: Path, out_dir: Path) -> dict:
    """Read what a command reported: cc2dataset_wat.py's JSON line, or the counts in wit's stats.json."""
    if tool == "cc2dataset":
        return json.loads(stdout_path.read_text(encoding="utf-8").strip().splitlines()[-1])
    if tool.startswith("wit"):
        stats = json.loads((out_dir / "stats.json").read_text(encoding="utf-8"))
        reported = dict(stats.get("counts", {}))
        for key in ("dropped_images", "text_sources"):
            if key in stats:
                reported[key] = stats[key]
        # Each input's seconds cover reading it and writing its part file, without start-up.
        seconds = [item["seconds"] for item in stats.get("inputs", []) if isinstance(item, dict) and "seconds" in item]
        if seconds:
            reported["elapsed_s"] = round(sum(seconds), 3)
        return reported
    return {}


def candidates_of(summary: dict) -> tuple[int | None, int | None]:
    """Return (candidates written, candidates before dropping repeats) of a summary, or Nones."""
    reported = summary.get("reported") or {}
    if summary["tool"] == "cc2dataset":
        return reported.get("unique_uids"), reported.get("rows")
    if summary["tool"].startswith("wit") and "candidates" in reported:
        return reported["candidates"], reported["candidates"] + reported.get("duplicate_candidates", 0)
    return None, None


def add_rates(summaries: list[dict], inputs: list[BenchInput]) -> None:
    """Add each summary's records, compressed MB and uncompressed MB per second of wall time."""
    by_name = {bench_input.name: bench_input for bench_input in inputs}
    for summary in summaries:
        if "error" in summary:
            continue
        bench_input = by_name[summary["input"]]
        wall = summary["wall_s_median"]
        summary["records_per_s"] = round(bench_input.records / wall, 1)
        summary["compressed_mb_per_s"] = round(bench_input.compressed_bytes / MB / wall, 2)
        summary["uncompressed_mb_per_s"] = round(bench_input.uncompressed_bytes / MB / wall, 2)


def ratio(reference: dict | None, summary: dict, key: str) -> str:
    """Return ``reference[key] / summary[key]`` as ``1.23x``, or an empty cell without both values."""
    if reference is None or not reference.get(key) or not summary.get(key):
        return ""
    return f"{reference[key] / summary[key]:.2f}x"


def throughput_table(inputs: list[BenchInput], summaries: list[dict]) -> str:
    """Render the summaries as a Markdown table, with wit's speed relative to cc2dataset on the same input.

    The three ratios divide cc2dataset's median wall time, CPU time and time without start-up
    by the command's own.
    """
    header = ["input", "records", "MB gz / raw", "command", "wall s (median)", "records/s", "MB/s gz", "MB/s raw",
              "vs cc2dataset: wall", "CPU", "in-process", "CPU s", "peak PSS MiB", "candidates (before dedup)",
              "load before"]
    by_input = {bench_input.name: bench_input for bench_input in inputs}
    rows = []
    for summary in summaries:
        bench_input = by_input[summary["input"]]
        sizes = f"{bench_input.compressed_bytes / MB:.1f} / {bench_input.uncompressed_bytes / MB:.1f}"
        first = [bench_input.name, f"{bench_input.records:,}", sizes, summary["tool"]]
        if "error" in summary:
            rows.append([*first, "failed"])
            continue
        reference = reference_summary(summaries, summary["input"], "cc2dataset")
        written, before = candidates_of(summary)
        candidates = f"{written:,} ({before:,})" if written is not None else ""
        load = summary["load_1min_before"]
        rows.append([
            *first, f"{summary['wall_s_median']:.2f}", f"{summary['records_per_s']:,.0f}",
            f"{summary['compressed_mb_per_s']:.1f}", f"{summary['uncompressed_mb_per_s']:.1f}",
            ratio(reference, summary, "wall_s_median"), ratio(reference, summary, "cpu_s_median"),
            ratio(reference, summary, "in_process_s_median"), f"{summary['cpu_s_median']:.2f}",
            f"{summary['peak_tree_pss_mib']:.0f}", candidates, f"{load['min']:.1f}-{load['max']:.1f}",
        ])
    return markdown_table(header, rows)


def prepare_inputs(args: argparse.Namespace) -> list[BenchInput]:
    """Write the missing inputs and return the selected ones with their record counts and sizes."""
    web_inputs = make_web_inputs.ensure_inputs(args.source_dir, args.data_dir, args.target_mb, args.copies)
    selected = []
    for web_input in web_inputs:
        if web_input.kind not in args.inputs:
            continue
        # Counting the records also puts the file in the page cache before the first timed run.
        records_by_type, uncompressed = count_records(web_input.path)
        selected.append(
            BenchInput(
                name=f"{web_input.kind}-k{web_input.copies}",
                path=web_input.path,
                copies=web_input.copies,
                compressed_bytes=web_input.path.stat().st_size,
                uncompressed_bytes=uncompressed,
                records_by_type=records_by_type,
            )
        )
    return selected


def kind_of(input_name: str) -> str:
    return input_name.rsplit("-k", 1)[0]


def warm_up_file(tool: str, source_dir: Path) -> Path:
    """Return the small real file that ``tool`` runs on before the timed runs."""
    if tool == "wit-warc":
        return source_dir / make_web_inputs.REAL_WARCS[0]
    return source_dir / make_web_inputs.REAL_WAT


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, INPUTS, TOOLS, DEFAULT_TIMEOUT_S)
    make_web_inputs.add_size_arguments(parser, make_web_inputs.DEFAULT_TARGET_MBS)
    parser.set_defaults(target_mb=None)
    parser.add_argument(
        "--quick", action="store_true", help=f"trial run: 1 repeat and inputs of {QUICK_TARGET_MB:g} MB unless given otherwise"
    )
    parser.add_argument("--wit-args", default="", help="extra options for both wit harvest commands, split like a shell does")
    parser.add_argument(
        "--cc2dataset-python", type=Path, default=DEFAULT_CC2DATASET_PYTHON, help="Python of the cc2dataset venv"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed runs, run each wit command once more under cProfile, save the profile in the "
        "results folder and print its top functions by own time",
    )
    add_data_arguments(parser, make_web_inputs.DEFAULT_SOURCE_DIR, "folder of the real WARC and WAT files")
    args = parser.parse_args(argv)

    check_run_arguments(parser, args, INPUTS, TOOLS)
    if args.target_mb is None:
        args.target_mb = [QUICK_TARGET_MB] if args.quick else make_web_inputs.DEFAULT_TARGET_MBS
    if "cc2dataset" in args.tools and not args.cc2dataset_python.is_file():
        parser.error(f"cc2dataset venv not found: {args.cc2dataset_python}; run `make -C bench cc2dataset-venv` first")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    stop_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")

    cpus = pinned_cpus(args.cpus or None)
    wit = WitHarvest(args.wit_command)
    for tool, source in (("wit-wat", "wat"), ("wit-warc", "warc")):
        if tool in args.tools and source not in wit.sources:
            logger.warning("`wit harvest %s --help` failed: %s is left out", source, tool)
            args.tools.remove(tool)
    if not args.tools:
        logger.error("no command left to time: check --tools and --wit-command")
        return 2
    bench = HarvestBench(wit, args.cc2dataset_python, shlex.split(args.wit_args), cpus, args.timeout)
    inputs = prepare_inputs(args)
    by_name = {bench_input.name: bench_input for bench_input in inputs}
    for bench_input in inputs:
        logger.info("%s: %d records, %.1f MB compressed, %.1f MB uncompressed", bench_input.name, bench_input.records,
                    bench_input.compressed_bytes / MB, bench_input.uncompressed_bytes / MB)

    def tools_for(input_name: str) -> list[str]:
        return [tool for tool in args.tools if tool in TOOLS_FOR_INPUT[kind_of(input_name)]]

    for tool in args.tools:
        bench.warm_up(tool, warm_up_file(tool, args.source_dir))
    runs = run_rounds(list(by_name), tools_for, args.repeats, lambda name, tool, repeat: bench.run(tool, by_name[name], repeat))
    summaries = summarize_all(runs, list(by_name), args.tools)
    add_rates(summaries, inputs)

    profiles = []
    if args.profile:
        for bench_input in inputs:
            for tool in tools_for(bench_input.name):
                if tool.startswith("wit"):
                    logger.info("profiling %s on %s", tool, bench_input.name)
                    try:
                        profiles.append(profile_wit(bench, tool, bench_input, args.results_dir, PROFILE_TOP))
                    except (CommandFailed, ValueError, OSError, subprocess.TimeoutExpired) as error:
                        logger.error("profiling %s on %s failed: %s", tool, bench_input.name, error)
                        profiles.append({"input": bench_input.name, "tool": tool, "error": str(error)})

    table = throughput_table(inputs, summaries)
    result = {
        "benchmark": "harvest_throughput",
        "machine": machine_facts(cpus),
        "settings": {
            "repeats": args.repeats,
            "target_mb": args.target_mb,
            "copies": args.copies,
            "timeout_s": args.timeout,
            "wit_command": wit.command,
            "wit_args": args.wit_args,
            "wit_sources_found": sorted(wit.sources),
            "cc2dataset_python": str(args.cc2dataset_python),
            "environment_removed": ["PYTHONDONTWRITEBYTECODE"],
            "warm_up": {tool: str(warm_up_file(tool, args.source_dir)) for tool in args.tools},
        },
        "inputs": [bench_input.as_dict() for bench_input in inputs],
        "summaries": summaries,
        "runs": [run.as_dict() for run in runs],
        "markdown": table,
        "profiles": profiles,
    }
    path = write_result(args.results_dir, "harvest_throughput", result)
    for profile in profiles:
        if "error" in profile:
            continue
        print(f"\n{profile['tool']} on {profile['input']} under cProfile: {profile['total_s']:.2f} s, top functions by own time")
        for row in profile["top_by_own_time"]:
            print(f"  {row['own_s']:7.3f} s own {row['cumulative_s']:7.3f} s cumulative {row['calls']:9,} calls  {row['function']}")
    print_result(path, table)
    return 1 if any("error" in summary for summary in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
