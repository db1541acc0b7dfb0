"""Shared parts of the benchmark scripts: the wit command, options, rounds of runs, summaries, tables and result files."""

from __future__ import annotations

import argparse
import bz2
import json
import logging
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from measure import Measurement

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_WIT_COMMAND = str(REPO_ROOT / ".venv" / "bin" / "wit")
DEFAULT_RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DATA_DIR = BENCH_DIR / "data"
MB = 1_000_000
MIB = 1024 * 1024

logger = logging.getLogger("harness")

_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


@dataclass(frozen=True)
class WitBuild:
    """How to start `wit queries build` and which of its options this version has."""

    command: list[str]
    options: frozenset[str]

    @classmethod
    def probe(cls, command_line: str) -> WitBuild:
        """Read the options of `wit queries build` from its --help output.

        ``command_line`` is split like a shell would, so a prefix such as
        ``env PYTHONPATH=/some/tree`` works. Raises RuntimeError when --help fails.
        """
        command = shlex.split(command_line)
        help_command = [*command, "queries", "build", "--help"]
        completed = subprocess.run(help_command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(help_command)}` failed with exit status {completed.returncode}; "
                f"check --wit-command:\n{completed.stderr[-2000:]}"
            )
        return cls(command=command, options=frozenset(_OPTION.findall(completed.stdout)))

    def has(self, option: str) -> bool:
        return option in self.options

    def build_command(self, dump: Path, out_dir: Path, *extra: str) -> list[str]:
        return [*self.command, "queries", "build", str(dump), "--out", str(out_dir), "--no-progress", *extra]


def xml_bytes_of(path: Path) -> int:
    """Return the size of the decompressed XML of a .bz2 dump (every stream), reading the whole file."""
    total = 0
    with bz2.open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    return total


def machine_facts(cpus: set[int] | None) -> dict:
    """Describe the machine, the Python and the checkout that produced a result."""
    model = ""
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    return {
        "cpu_model": model,
        "cpus_online": os.cpu_count(),
        "cpus_pinned": sorted(cpus) if cpus else None,
        "memory_gib": round(memory_kib / MIB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "harness_python": sys.executable,
        "git": git_facts(),
        "load_average_at_start": os.getloadavg(),
    }


def git_facts() -> dict:
    """Return the checkout's commit and whether wit_builder/ differs from it, without touching the index."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    diff = subprocess.run(
        ["git", "diff", "--quiet", "HEAD", "--", "wit_builder"], cwd=REPO_ROOT, capture_output=True, env=env
    )
    return {"commit": head.stdout.strip() or None, "wit_builder_modified": diff.returncode == 1}


def write_result(results_dir: Path, name: str, result: dict) -> Path:
    """Write ``result`` as ``NAME-YYYYMMDDTHHMMSSZ.json`` in ``results_dir`` and return the path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return path



def add_data_arguments(parser: argparse.ArgumentParser, default_source_dir: Path, source_help: str) -> None:
    """Add ``--source-dir`` (the real files that inputs are made from) and ``--data-dir`` (the generated inputs)."""
    parser.add_argument("--source-dir", type=Path, default=default_source_dir, help=source_help)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="folder of the generated inputs (default: bench/data)")


def add_run_arguments(parser: argparse.ArgumentParser, inputs: Sequence[str], tools: Sequence[str], default_timeout_s: float) -> None:
    """Add the options that every throughput script has: repeats, inputs, tools, CPUs, timeout, wit command, results."""
    parser.add_argument("--repeats", type=int, default=None, help="runs of each command on each input (default: 3)")
    parser.add_argument("--inputs", default=",".join(inputs), help=f"comma-separated inputs to time (default: {','.join(inputs)})")
    parser.add_argument("--tools", default=",".join(tools), help=f"comma-separated commands to time (default: {','.join(tools)})")
    parser.add_argument("--cpus", type=int, default=2, help="pin every command to this many CPUs; 0 turns pinning off (default: 2)")
    parser.add_argument(
        "--timeout", type=float, default=default_timeout_s, help=f"seconds before a run is killed (default: {default_timeout_s:g})"
    )
    parser.add_argument(
        "--wit-command",
        default=DEFAULT_WIT_COMMAND,
        help="command line that starts wit, split like a shell does (default: the project venv's wit)",
    )
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="folder of the JSON results")


def check_run_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, inputs: Sequence[str], tools: Sequence[str]) -> None:
    """Split ``--inputs`` and ``--tools`` into lists, check them, and set the default ``--repeats`` (1 with ``--quick``)."""
    args.inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    args.tools = [name.strip() for name in args.tools.split(",") if name.strip()]
    for name in args.inputs:
        if name not in inputs:
            parser.error(f"invalid input {name!r}: expected some of {', '.join(inputs)}")
    for name in args.tools:
        if name not in tools:
            parser.error(f"invalid tool {name!r}: expected some of {', '.join(tools)}")
    if args.repeats is None:
        args.repeats = 1 if getattr(args, "quick", False) else 3
    if args.repeats < 1:
        parser.error(f"invalid --repeats {args.repeats}: it must be at least 1")


@dataclass
class ToolRun:
    """One measured run of one command on one input, with the load before it and what the command reported."""

    input_name: str
    tool: str
    repeat: int
    measurement: Measurement | None
    reported: dict
    error: str | None = None
    load_before: tuple[float, float, float] | None = None

    def as_dict(self) -> dict:
        return {
            "input": self.input_name,
            "tool": self.tool,
            "repeat": self.repeat,
            "load_before": self.load_before,
            "measurement": self.measurement.as_dict() if self.measurement else None,
            "reported": self.reported,
            "error": self.error,
        }


def run_rounds(
    input_names: Sequence[str],
    tools_for: Callable[[str], Sequence[str]],
    repeats: int,
    run_one: Callable[[str, str, int], ToolRun],
) -> list[ToolRun]:
    """Run every tool on every input ``repeats`` times, one input after another.

    The tools alternate within each round, so that a change of machine load hits all of them
    alike. ``run_one(input_name, tool, repeat)`` runs and measures one command.
    """
    runs = []
    for input_name in input_names:
        for repeat in range(repeats):
            for tool in tools_for(input_name):
                run = run_one(input_name, tool, repeat)
                if run.measurement is not None:
                    load = f" (load {run.load_before[0]:.2f} before)" if run.load_before else ""
                    logger.info("  %s on %s, run %d: %.2f s%s", tool, input_name, repeat + 1, run.measurement.wall_s, load)
                runs.append(run)
    return runs


def summarize_runs(runs: list[ToolRun], input_name: str) -> dict:
    """Combine the runs of one tool on one input: medians of time, maximum of memory, the range of load.

    ``in_process_s_median`` is the median of the ``elapsed_s`` that the command reported, the
    time without start-up, when it reports one. A summary without a finished run has ``error``.
    """
    measured = [run.measurement for run in runs if run.measurement is not None]
    if not measured:
        return {"input": input_name, "tool": runs[0].tool, "error": runs[0].error}
    wall = statistics.median(m.wall_s for m in measured)
    cpu = statistics.median(m.cpu_s for m in measured)
    in_process = [run.reported.get("elapsed_s") for run in runs if run.reported.get("elapsed_s")]
    loads = [run.load_before[0] for run in runs if run.load_before is not None]
    summary = {
        "input": input_name,
        "tool": runs[0].tool,
        "runs": len(measured),
        "failed_runs": sum(run.error is not None for run in runs),
        "wall_s_median": round(wall, 3),
        "wall_s_all": [round(m.wall_s, 3) for m in measured],
        "cpu_s_median": round(cpu, 3),
        "cpu_per_wall": round(cpu / wall, 2),
        "in_process_s_median": round(statistics.median(in_process), 3) if in_process else None,
        "peak_tree_pss_mib": round(max(m.peak_tree_pss_bytes for m in measured) / MIB, 1),
        "peak_tree_rss_mib": round(max(m.peak_tree_rss_bytes for m in measured) / MIB, 1),
        "max_process_hwm_mib": round(max(m.max_process_hwm_bytes for m in measured) / MIB, 1),
        "rusage_maxrss_mib": round(max(m.rusage_maxrss_bytes for m in measured) / MIB, 1),
        "max_processes": max(m.max_processes for m in measured),
        "command": measured[-1].command,
        "reported": runs[-1].reported,
    }
    if loads:
        summary["load_1min_before"] = {"min": min(loads), "max": max(loads)}
    return summary


def summarize_all(runs: list[ToolRun], input_names: Sequence[str], tools: Sequence[str]) -> list[dict]:
    """Return one ``summarize_runs`` summary per input and tool that has runs, in input order."""
    summaries = []
    for input_name in input_names:
        for tool in tools:
            tool_runs = [run for run in runs if run.input_name == input_name and run.tool == tool]
            if tool_runs:
                summaries.append(summarize_runs(tool_runs, input_name))
    return summaries


def reference_summary(summaries: list[dict], input_name: str, tool: str) -> dict | None:
    """Return the summary of ``tool`` on ``input_name`` when it has one without an error, the reference of a ratio."""
    return next(
        (s for s in summaries if s["input"] == input_name and s["tool"] == tool and "error" not in s),
        None,
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Render a Markdown table; a row shorter than the header is padded with empty cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = list(row) + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def print_result(path: Path, table: str) -> None:
    print(table)
    print(f"\nresult written to {path}")
