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
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import make_dumps
from harness import (
    BENCH_DIR,
    MB,
    ToolRun,
    WitBuild,
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
    xml_bytes_of,
)
from measure import CommandFailed, pinned_cpus, run_measured, stop_on_sigterm

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

            load_before = os.getloadavg()
            try:
                measurement = run_measured(command, cpus=self.cpus, stdout_path=stdout_path, timeout_s=self.timeout_s)
            except CommandFailed as error:
                logger.error("%s on %s failed: %s", tool, bench_input.name, error)
                return ToolRun(bench_input.name, tool, repeat, None, {}, error=str(error), load_before=load_before)
            return ToolRun(bench_input.name, tool, repeat, measurement, _reported_work(tool, stdout_path, out_dir),
                           load_before=load_before)


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


def add_rates(summaries: list[dict], inputs: list[BenchInput]) -> None:
    """Add each summary's megabytes of XML per second of wall time."""
    by_name = {bench_input.name: bench_input for bench_input in inputs}
    for summary in summaries:
        if "error" not in summary:
            summary["mb_per_s"] = round(by_name[summary["input"]].xml_bytes / MB / summary["wall_s_median"], 2)


def throughput_table(inputs: list[BenchInput], summaries: list[dict]) -> str:
    """Render the summaries as a Markdown table, with each tool's speed relative to gensim on the same input."""
    header = ["input", "XML MB", "command", "wall s (median)", "MB/s", "vs gensim", "CPU s", "CPU/wall",
              "peak PSS MiB (tree)", "peak RSS MiB (largest process)"]
    by_input = {bench_input.name: bench_input for bench_input in inputs}
    rows = []
    for summary in summaries:
        bench_input = by_input[summary["input"]]
        first = [bench_input.name, f"{bench_input.xml_bytes / MB:.1f}", summary["tool"]]
        if "error" in summary:
            rows.append([*first, "failed"])
            continue
        gensim = reference_summary(summaries, summary["input"], "gensim")
        relative = f"{summary['mb_per_s'] / gensim['mb_per_s']:.2f}x" if gensim else ""
        rows.append([
            *first, f"{summary['wall_s_median']:.2f}", f"{summary['mb_per_s']:.2f}", relative, f"{summary['cpu_s_median']:.2f}",
            f"{summary['cpu_per_wall']:.2f}", f"{summary['peak_tree_pss_mib']:.0f}", f"{summary['max_process_hwm_mib']:.0f}",
        ])
    return markdown_table(header, rows)


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
    add_run_arguments(parser, INPUTS, TOOLS, DEFAULT_TIMEOUT_S)
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
        "--workers", type=int, default=2, help="gensim worker processes, and wit --workers if wit has it (default: 2)"
    )
    parser.add_argument("--gensim-python", type=Path, default=DEFAULT_GENSIM_PYTHON, help="Python of the gensim venv")
    add_data_arguments(parser, make_dumps.DEFAULT_SOURCE_DIR, "folder of the real source dumps")
    args = parser.parse_args(argv)

    check_run_arguments(parser, args, INPUTS, TOOLS)
    if args.copies is None and args.quick:
        args.copies = QUICK_COPIES
    if "gensim" in args.tools and not args.gensim_python.is_file():
        parser.error(f"gensim venv not found: {args.gensim_python}; run `make -C bench gensim-venv` first")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    stop_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")

    cpus = pinned_cpus(args.cpus or None)
    wit = WitBuild.probe(args.wit_command)
    bench = ThroughputBench(wit, args.gensim_python, args.workers, cpus, args.timeout)
    inputs = prepare_inputs(args)
    by_name = {bench_input.name: bench_input for bench_input in inputs}
    if not wit.has("--workers"):
        logger.warning("wit queries build has no --workers option: it runs in one process")
    for bench_input in inputs:
        logger.info("%s: %.1f MB of XML", bench_input.name, bench_input.xml_bytes / MB)
        if bench_input.index_path is not None and not wit.has("--index"):
            logger.warning("wit queries build has no --index option: it reads %s as one bz2 file", bench_input.name)

    runs = run_rounds(list(by_name), lambda _name: args.tools, args.repeats,
                      lambda name, tool, repeat: bench.run(tool, by_name[name], repeat))
    summaries = summarize_all(runs, list(by_name), args.tools)
    add_rates(summaries, inputs)

    table = throughput_table(inputs, summaries)
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
    print_result(write_result(args.results_dir, "queries_throughput", result), table)
    return 1 if any("error" in summary for summary in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
