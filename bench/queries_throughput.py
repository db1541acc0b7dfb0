"""Measure the throughput of `wit queries build` against gensim's WikiCorpus and `bzip2 -dc`.

For each input dump, the script runs each command ``--repeats`` times, alternating
commands within a round so that a change of machine load hits all of them alike:

- ``bzip2``: ``bzip2 -dc DUMP > /dev/null``, the floor that every reader of a .bz2
  dump pays (one process);
- ``gensim``: gensim_wikicorpus.py in the gensim venv, which iterates
  ``WikiCorpus(DUMP, processes=W, dictionary={}).get_texts()`` to the end;
- ``wit``: the full ``wit queries build`` (titles, links, unigrams, and a second pass
  for bigrams);
- ``wit-no-bigrams``: ``wit queries build --no-bigrams``, one pass over the dump.

Throughput is megabytes (10**6 bytes) of uncompressed XML per second of wall time. Every
command is pinned to the same ``--cpus`` CPUs. The script prints a Markdown table and
writes the JSON result (every run, machine facts, command lines) to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import make_dumps
from harness import (
    BENCH_DIR,
    DEFAULT_RESULTS_DIR,
    DEFAULT_WIT_COMMAND,
    MB,
    MIB,
    WitBuild,
    machine_facts,
    write_result,
    xml_bytes_of,
)
from measure import CommandFailed, Measurement, pinned_cpus, run_measured

logger = logging.getLogger("queries_throughput")

TOOLS = ("bzip2", "gensim", "wit", "wit-no-bigrams")
INPUTS = ("main", "concat", "repeated", "multistream")
DEFAULT_GENSIM_PYTHON = BENCH_DIR / ".venv-gensim" / "bin" / "python"
GENSIM_SCRIPT = BENCH_DIR / "gensim_wikicorpus.py"
QUICK_COPIES = 2
DEFAULT_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class BenchInput:
    """One dump to time, with the size of its decompressed XML."""

    name: str
    path: Path
    xml_bytes: int
    index_path: Path | None = None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "index_path": str(self.index_path) if self.index_path else None,
            "compressed_bytes": self.path.stat().st_size,
            "xml_bytes": self.xml_bytes,
        }


@dataclass
class ToolRun:
    """One measured run of one command on one input, with what the command reported about its work."""

    input_name: str
    tool: str
    repeat: int
    measurement: Measurement | None
    reported: dict
    error: str | None = None

    def as_dict(self) -> dict:
        return {
            "input": self.input_name,
            "tool": self.tool,
            "repeat": self.repeat,
            "measurement": self.measurement.as_dict() if self.measurement else None,
            "reported": self.reported,
            "error": self.error,
        }


class ThroughputBench:
    """Builds the command line of each tool and runs it on one input."""

    def __init__(self, wit: WitBuild, gensim_python: Path, workers: int, cpus: set[int] | None, timeout_s: float):
        self.wit = wit
        self.timeout_s = timeout_s
        self.gensim_python = gensim_python
        self.workers = workers
        self.cpus = cpus

    def wit_extra_options(self, bench_input: BenchInput) -> list[str]:
        extra: list[str] = []
        if self.wit.has("--workers"):
            extra += ["--workers", str(self.workers)]
        if bench_input.index_path is not None and self.wit.has("--index"):
            extra += ["--index", str(bench_input.index_path)]
        return extra

    def run(self, tool: str, bench_input: BenchInput, repeat: int) -> ToolRun:
        """Run ``tool`` once on ``bench_input``. A failed command is recorded in ``error``, not raised."""
        with tempfile.TemporaryDirectory(prefix="wit-bench-") as scratch:
            scratch_dir = Path(scratch)
            stdout_path = scratch_dir / "stdout"
            out_dir = scratch_dir / "queries"
            if tool == "bzip2":
                command = ["bzip2", "-dc", str(bench_input.path)]
            elif tool == "gensim":
                command = [str(self.gensim_python), str(GENSIM_SCRIPT), str(bench_input.path)]
                command += ["--processes", str(self.workers)]
            elif tool == "wit":
                command = self.wit.build_command(bench_input.path, out_dir, *self.wit_extra_options(bench_input))
            elif tool == "wit-no-bigrams":
                extra = ["--no-bigrams", *self.wit_extra_options(bench_input)]
                command = self.wit.build_command(bench_input.path, out_dir, *extra)
            else:
                raise ValueError(f"unknown tool {tool!r}: expected one of {TOOLS}")

            try:
                measurement = run_measured(command, cpus=self.cpus, stdout_path=stdout_path, timeout_s=self.timeout_s)
            except CommandFailed as error:
                logger.error("%s on %s failed: %s", tool, bench_input.name, error)
                return ToolRun(bench_input.name, tool, repeat, None, {}, error=str(error))
            return ToolRun(bench_input.name, tool, repeat, measurement, _reported_work(tool, stdout_path, out_dir))


def _reported_work(tool: str, stdout_path: Path, out_dir: Path) -> dict:
    """Read what a command reported about its work: gensim's JSON line, or the counts in wit's build.json."""
    if tool == "gensim":
        return json.loads(stdout_path.read_text(encoding="utf-8").strip().splitlines()[-1])
    if tool.startswith("wit"):
        info = json.loads((out_dir / "build.json").read_text(encoding="utf-8"))
        counts = info["counts"]
        keys = ("articles", "tokens", "distinct_tokens", "distinct_bigrams", "queries")
        reported = {key: counts.get(key) for key in keys}
        for key in ("elapsed_s", "timings", "peak_rss_mb", "spill", "parameters"):
            reported[key] = info.get(key)
        return reported
    return {}


def summarize(runs: list[ToolRun], bench_input: BenchInput) -> dict:
    """Combine the runs of one tool on one input: medians of time, maximum of memory."""
    measured = [run.measurement for run in runs if run.measurement is not None]
    if not measured:
        return {"input": bench_input.name, "tool": runs[0].tool, "error": runs[0].error}
    wall = statistics.median(m.wall_s for m in measured)
    cpu = statistics.median(m.cpu_s for m in measured)
    in_process = [run.reported.get("elapsed_s") for run in runs if run.reported.get("elapsed_s")]
    return {
        "input": bench_input.name,
        "tool": runs[0].tool,
        "runs": len(measured),
        "failed_runs": sum(run.error is not None for run in runs),
        "wall_s_median": round(wall, 3),
        "wall_s_all": [round(m.wall_s, 3) for m in measured],
        "mb_per_s": round(bench_input.xml_bytes / MB / wall, 2),
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


def markdown_table(inputs: list[BenchInput], summaries: list[dict]) -> str:
    """Render the summaries as a Markdown table, with each tool's speed relative to gensim on the same input."""
    lines = [
        "| input | XML MB | command | wall s (median) | MB/s | vs gensim | CPU s | CPU/wall | peak PSS MiB (tree) | "
        "peak RSS MiB (largest process) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_input = {bench_input.name: bench_input for bench_input in inputs}
    for summary in summaries:
        bench_input = by_input[summary["input"]]
        xml_mb = f"{bench_input.xml_bytes / MB:.1f}"
        if "error" in summary:
            lines.append(f"| {bench_input.name} | {xml_mb} | {summary['tool']} | failed | | | | | | |")
            continue
        gensim = next(
            (s for s in summaries if s["input"] == summary["input"] and s["tool"] == "gensim" and "error" not in s),
            None,
        )
        relative = f"{summary['mb_per_s'] / gensim['mb_per_s']:.2f}x" if gensim else ""
        lines.append(
            f"| {bench_input.name} | {xml_mb} | {summary['tool']} | {summary['wall_s_median']:.2f} | "
            f"{summary['mb_per_s']:.2f} | {relative} | {summary['cpu_s_median']:.2f} | {summary['cpu_per_wall']:.2f} | "
            f"{summary['peak_tree_pss_mib']:.0f} | {summary['max_process_hwm_mib']:.0f} |"
        )
    return "\n".join(lines)


def prepare_inputs(args: argparse.Namespace) -> list[BenchInput]:
    """Write the generated dumps that are missing and return the selected inputs with their XML sizes."""
    source_paths = make_dumps.source_paths(args.source_dir)
    sources = make_dumps.read_sources(source_paths)
    copies = args.copies or make_dumps.default_copies(sources, make_dumps.DEFAULT_TARGET_XML_MB)
    # (input kind, name, dump, multistream index) in the order they are timed.
    candidates: list[tuple[str, str, Path, Path | None]] = [("main", "main", source_paths[0], None)]
    if "concat" in args.inputs:
        candidates.append(("concat", "concat", make_dumps.ensure_concat(sources, args.data_dir), None))
    if "repeated" in args.inputs or "multistream" in args.inputs:
        single, multistream, index = make_dumps.ensure_repeated(sources, args.data_dir, copies)
        candidates.append(("repeated", f"repeated-k{copies}", single, None))
        candidates.append(("multistream", f"repeated-k{copies}-multistream", multistream, index))

    selected = []
    for kind, name, path, index_path in candidates:
        if kind not in args.inputs:
            continue
        # Decompressing once also puts the file in the page cache before the first timed run.
        selected.append(BenchInput(name=name, path=path, xml_bytes=xml_bytes_of(path), index_path=index_path))
    return selected


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="runs of each command on each input (default: 3)")
    parser.add_argument(
        "--copies",
        type=int,
        default=None,
        help="copies K of the real pages in the repeated dumps (default: the K closest to "
        f"{make_dumps.DEFAULT_TARGET_XML_MB:g} MB of XML)",
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"trial run: 1 repeat and K={QUICK_COPIES} unless given otherwise"
    )
    parser.add_argument(
        "--inputs", default=",".join(INPUTS), help=f"comma-separated inputs to time (default: {','.join(INPUTS)})"
    )
    parser.add_argument(
        "--tools", default=",".join(TOOLS), help=f"comma-separated commands to time (default: {','.join(TOOLS)})"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gensim worker processes, and wit --workers if wit has it (default: 2)"
    )
    parser.add_argument(
        "--cpus", type=int, default=2, help="pin every command to this many CPUs; 0 turns pinning off (default: 2)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds before a run is killed (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--wit-command",
        default=DEFAULT_WIT_COMMAND,
        help="command line that starts wit, split like a shell does (default: the project venv's wit)",
    )
    parser.add_argument("--gensim-python", type=Path, default=DEFAULT_GENSIM_PYTHON, help="Python of the gensim venv")
    parser.add_argument("--source-dir", type=Path, default=make_dumps.DEFAULT_SOURCE_DIR, help="real source dumps")
    parser.add_argument("--data-dir", type=Path, default=make_dumps.DEFAULT_DATA_DIR, help="generated dumps")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="folder of the JSON results")
    args = parser.parse_args(argv)

    args.inputs = [name.strip() for name in args.inputs.split(",") if name.strip()]
    args.tools = [name.strip() for name in args.tools.split(",") if name.strip()]
    for name in args.inputs:
        if name not in INPUTS:
            parser.error(f"invalid input {name!r}: expected some of {', '.join(INPUTS)}")
    for name in args.tools:
        if name not in TOOLS:
            parser.error(f"invalid tool {name!r}: expected some of {', '.join(TOOLS)}")
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.copies is None and args.quick:
        args.copies = QUICK_COPIES
    if args.repeats < 1:
        parser.error(f"invalid --repeats {args.repeats}: it must be at least 1")
    if "gensim" in args.tools and not args.gensim_python.is_file():
        parser.error(f"gensim venv not found: {args.gensim_python}; run `make -C bench gensim-venv` first")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")

    cpus = pinned_cpus(args.cpus or None)
    wit = WitBuild.probe(args.wit_command)
    bench = ThroughputBench(wit, args.gensim_python, args.workers, cpus, args.timeout)
    inputs = prepare_inputs(args)
    if not wit.has("--workers"):
        logger.warning("wit queries build has no --workers option: it runs in one process")

    runs: list[ToolRun] = []
    for bench_input in inputs:
        logger.info("timing %s (%.1f MB of XML)", bench_input.name, bench_input.xml_bytes / MB)
        if bench_input.index_path is not None and not wit.has("--index"):
            logger.warning("wit queries build has no --index option: it reads %s as one bz2 file", bench_input.name)
        for repeat in range(args.repeats):
            for tool in args.tools:
                run = bench.run(tool, bench_input, repeat)
                if run.measurement is not None:
                    logger.info("  %s run %d: %.2f s", tool, repeat + 1, run.measurement.wall_s)
                runs.append(run)

    summaries = []
    for bench_input in inputs:
        for tool in args.tools:
            tool_runs = [run for run in runs if run.input_name == bench_input.name and run.tool == tool]
            summaries.append(summarize(tool_runs, bench_input))

    table = markdown_table(inputs, summaries)
    result = {
        "benchmark": "queries_throughput",
        "machine": machine_facts(cpus),
        "settings": {
            "repeats": args.repeats,
            "copies": args.copies,
            "workers": args.workers,
            "timeout_s": args.timeout,
            "wit_command": wit.command,
            "wit_options_found": {option: wit.has(option) for option in ("--workers", "--index", "--no-bigrams")},
            "gensim_python": str(args.gensim_python),
        },
        "inputs": [bench_input.as_dict() for bench_input in inputs],
        "summaries": summaries,
        "runs": [run.as_dict() for run in runs],
        "markdown": table,
    }
    path = write_result(args.results_dir, "queries_throughput", result)
    print(table)
    print(f"\nresult written to {path}")
    return 1 if any("error" in summary for summary in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
