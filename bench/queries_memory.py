"""Measure the peak memory of `wit queries build` and how it grows with distinct n-grams.

Every measurement is a `wit queries build` pinned to ``--cpus`` CPUs:

1. Peak memory on the concatenation of the real source dumps (one dump with every page
   of all of them, once), with and without bigrams.
2. Growth: builds on prefixes of the concatenation (25, 50, 75 and 100 percent of its
   page bytes) in several series. ``default`` uses the build's own settings.
   ``all-pairs`` passes ``--bigram-min-count 1``, so the second pass counts every
   adjacent word pair, which gives a much wider range of distinct n-grams (see
   ``SERIES`` for why it also passes ``--pmi-threshold 99``). When the
   build has ``--max-entries``, a third series repeats ``all-pairs`` with the smallest
   ``--max-entries`` limit, where the counters spill to disk. Each series is fitted
   with ``peak memory = a + b * (distinct unigrams + distinct bigrams)``, with the
   distinct counts read from the build's build.json.
3. Repetition: the all-pairs build of the concatenation and of the dump that repeats
   its pages ``--copies`` times. Repetition adds no distinct word or word pair (only
   the renamed titles), so a counter with one entry per distinct n-gram needs the same
   memory for both. The ``default`` settings would not show this: repeated pages push
   more words over ``--bigram-min-count``, so more pairs are counted.
4. Spill limits: the all-pairs concatenation with each ``--max-entries`` limit.
5. Extrapolation to English Wikipedia: the fits of the all-pairs series applied to
   estimates of English Wikipedia's distinct n-grams. The estimates are a published count (see
   ``ENWIKI_UNIGRAMS_PUBLISHED``) and a power-law (Heaps' law) fit of the prefixes'
   distinct counts against their token counts. Both are rough: see bench/README.md.

Peak memory is the largest sum of proportional set size (PSS) over the build's process
tree (see measure.py). The script prints Markdown tables and writes the JSON result to
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import make_dumps
from harness import (
    DEFAULT_RESULTS_DIR,
    DEFAULT_WIT_COMMAND,
    MB,
    MIB,
    WitBuild,
    machine_facts,
    write_result,
    xml_bytes_of,
)
from measure import CommandFailed, Measurement, pinned_cpus, run_measured, stop_on_sigterm

logger = logging.getLogger("queries_memory")

DEFAULT_PERCENTS = (25, 50, 75, 100)
QUICK_PERCENTS = (50, 100)
DEFAULT_MAX_ENTRIES = (100_000, 20_000, 5_000)
QUICK_MAX_ENTRIES = (5_000,)
QUICK_COPIES = 2
DEFAULT_TIMEOUT_S = 900.0
#: ``all-pairs`` counts every adjacent word pair. Its PMI threshold of 99 bits is above
#: any pair's PMI (at most log2 of the token count), so no pair becomes a query and the
#: peak measures counting, not the selection of up to ``--target-size`` bigram queries.
SERIES = {"default": [], "all-pairs": ["--bigram-min-count", "1", "--pmi-threshold", "99"]}

#: English Wikipedia article words, "over 5 billion" on 26 July 2025 (Wikipedia:Size of Wikipedia).
ENWIKI_TOKENS = 5e9
#: Distinct 1-grams and 2-grams "for Wikipedia" in an answer to the Cross Validated question
#: "Number of ngrams for vocabulary" (2013). The dump date and tokenizer are not stated.
ENWIKI_UNIGRAMS_PUBLISHED = 7_955_768
ENWIKI_BIGRAMS_PUBLISHED = 95_650_278


@dataclass
class BuildPoint:
    """One measured build: what it read, the distinct n-grams it counted and its peak memory."""

    label: str
    dump: Path
    xml_bytes: int
    options: list[str]
    measurement: Measurement
    counts: dict
    build_info: dict

    @property
    def distinct_ngrams(self) -> int:
        return self.counts.get("distinct_tokens", 0) + self.counts.get("distinct_bigrams", 0)

    @property
    def peak_pss_mib(self) -> float:
        return self.measurement.peak_tree_pss_bytes / MIB

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "dump": str(self.dump),
            "xml_bytes": self.xml_bytes,
            "options": self.options,
            "measurement": self.measurement.as_dict(),
            "counts": self.counts,
            "distinct_ngrams": self.distinct_ngrams,
            "wit_peak_rss_mb": self.build_info.get("peak_rss_mb"),
            "spill": self.build_info.get("spill"),
            "parameters": self.build_info.get("parameters"),
        }


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line ``y = intercept + slope * x`` with its R² and the slope's standard error.

    The standard error is None for two points, which any line fits exactly.
    """

    intercept: float
    slope: float
    r_squared: float
    points: int
    slope_stderr: float | None

    @classmethod
    def of(cls, xs: list[float], ys: list[float]) -> LinearFit:
        """Fit ``ys`` against ``xs``. Raises ValueError for fewer than two distinct x values."""
        if len(set(xs)) < 2:
            raise ValueError(f"cannot fit a line to {len(xs)} points with {len(set(xs))} distinct x values")
        mean_x = statistics.fmean(xs)
        mean_y = statistics.fmean(ys)
        covariance = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys))
        variance = sum((x - mean_x) ** 2 for x in xs)
        slope = covariance / variance
        intercept = mean_y - slope * mean_x
        residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
        total = sum((y - mean_y) ** 2 for y in ys)
        r_squared = 1 - residual / total if total else 1.0
        slope_stderr = math.sqrt(residual / (len(xs) - 2) / variance) if len(xs) > 2 else None
        return cls(intercept=intercept, slope=slope, r_squared=r_squared, points=len(xs), slope_stderr=slope_stderr)

    def at(self, x: float) -> float:
        return self.intercept + self.slope * x


@dataclass(frozen=True)
class PowerLaw:
    """Heaps' law ``distinct = k * tokens ** beta``, fitted in log-log space."""

    k: float
    beta: float
    points: int

    @classmethod
    def of(cls, tokens: list[float], distinct: list[float]) -> PowerLaw:
        line = LinearFit.of([math.log(t) for t in tokens], [math.log(d) for d in distinct])
        return cls(k=math.exp(line.intercept), beta=line.slope, points=line.points)

    def at(self, tokens: float) -> float:
        return self.k * tokens**self.beta


class MemoryBench:
    """Runs `wit queries build` with the memory measurement and reads back its build.json."""

    def __init__(self, wit: WitBuild, workers: int, cpus: set[int] | None, repeats: int, timeout_s: float):
        self.wit = wit
        self.timeout_s = timeout_s
        self.workers = workers
        self.cpus = cpus
        self.repeats = repeats

    def build(self, label: str, dump: Path, options: list[str]) -> BuildPoint:
        """Build ``repeats`` times and keep the run with the largest peak memory.

        Raises ``CommandFailed`` when a build fails.
        """
        extra = list(options)
        if self.wit.has("--workers"):
            extra += ["--workers", str(self.workers)]
        xml_bytes = xml_bytes_of(dump)
        worst: BuildPoint | None = None
        for _repeat in range(self.repeats):
            with tempfile.TemporaryDirectory(prefix="wit-bench-") as scratch:
                out_dir = Path(scratch) / "queries"
                command = self.wit.build_command(dump, out_dir, *extra)
                measurement = run_measured(command, cpus=self.cpus, timeout_s=self.timeout_s)
                info = json.loads((out_dir / "build.json").read_text(encoding="utf-8"))
            point = BuildPoint(label, dump, xml_bytes, extra, measurement, info.get("counts", {}), info)
            logger.info(
                "  %s: %.1f s, peak PSS %.0f MiB, %d distinct n-grams",
                label,
                measurement.wall_s,
                point.peak_pss_mib,
                point.distinct_ngrams,
            )
            if worst is None or point.measurement.peak_tree_pss_bytes > worst.measurement.peak_tree_pss_bytes:
                worst = point
        return worst


def peak_table(points: list[BuildPoint]) -> str:
    lines = [
        "| build | XML MB | wall s | peak PSS MiB (tree) | peak RSS MiB (largest process) | distinct unigrams | "
        "distinct bigrams | spill runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for point in points:
        spill = point.build_info.get("spill")
        spill_text = ", ".join(f"{key} {value}" for key, value in spill.items()) if isinstance(spill, dict) else ""
        lines.append(
            f"| {point.label} | {point.xml_bytes / MB:.1f} | {point.measurement.wall_s:.1f} | "
            f"{point.peak_pss_mib:.0f} | {point.measurement.max_process_hwm_bytes / MIB:.0f} | "
            f"{point.counts.get('distinct_tokens', 0):,} | {point.counts.get('distinct_bigrams', 0):,} | {spill_text} |"
        )
    return "\n".join(lines)


def growth_table(series_points: dict[str, list[BuildPoint]], fits: dict[str, LinearFit]) -> str:
    lines = [
        "| series | prefix | tokens | distinct unigrams | distinct bigrams | distinct n-grams | peak PSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for series, points in series_points.items():
        for point in points:
            lines.append(
                f"| {series} | {point.label} | {point.counts.get('tokens', 0):,} | "
                f"{point.counts.get('distinct_tokens', 0):,} | {point.counts.get('distinct_bigrams', 0):,} | "
                f"{point.distinct_ngrams:,} | {point.peak_pss_mib:.0f} |"
            )
    lines.append("")
    lines.append("| series | a (MiB) | b (bytes per distinct n-gram) | standard error of b | R² | points |")
    lines.append("|---|---|---|---|---|---|")
    for series, fit in fits.items():
        stderr = f"{fit.slope_stderr:.0f}" if fit.slope_stderr is not None else "n/a (2 points)"
        lines.append(
            f"| {series} | {fit.intercept / MIB:.0f} | {fit.slope:.0f} | {stderr} | {fit.r_squared:.3f} | "
            f"{fit.points} |"
        )
    return "\n".join(lines)


def extrapolation_rows(
    fits: dict[str, LinearFit], unigram_law: PowerLaw, bigram_law: PowerLaw, tokens: float
) -> list[dict]:
    """Apply each all-pairs fit to estimates of English Wikipedia's distinct n-grams.

    Only the all-pairs series count every distinct bigram, as the estimates do. The
    default series counts only pairs of frequent words, so its fit does not apply.
    """
    estimates = [
        ("published counts (Cross Validated answer, 2013)", ENWIKI_UNIGRAMS_PUBLISHED, ENWIKI_BIGRAMS_PUBLISHED),
        (f"Heaps' law fit of the prefixes at {tokens:.2g} tokens", unigram_law.at(tokens), bigram_law.at(tokens)),
    ]
    rows = []
    for series, fit in fits.items():
        if not series.startswith("all-pairs"):
            continue
        for source, unigrams, bigrams in estimates:
            rows.append(
                {
                    "series": series,
                    "source": source,
                    "distinct_unigrams": round(unigrams),
                    "distinct_bigrams": round(bigrams),
                    "estimated_peak_gib": round(fit.at(unigrams + bigrams) / 2**30, 1),
                }
            )
    return rows


def extrapolation_table(rows: list[dict]) -> str:
    lines = [
        "| fit of series | distinct n-gram estimate | distinct unigrams | distinct bigrams | "
        "peak PSS, linear extrapolation |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['series']} | {row['source']} | {row['distinct_unigrams']:,} | {row['distinct_bigrams']:,} | "
            f"{row['estimated_peak_gib']:.1f} GiB |"
        )
    return "\n".join(lines)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=1, help="builds per measurement; the largest peak is kept (default: 1)"
    )
    parser.add_argument(
        "--copies",
        type=int,
        default=None,
        help="copies K of the real pages in the repeated dump (default: the K closest to "
        f"{make_dumps.DEFAULT_TARGET_XML_MB:g} MB of XML)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"trial run: prefixes {QUICK_PERCENTS}, K={QUICK_COPIES} and one spill limit unless given otherwise",
    )
    parser.add_argument(
        "--percents", default=None, help=f"comma-separated prefix sizes in percent (default: {DEFAULT_PERCENTS})"
    )
    parser.add_argument(
        "--max-entries",
        default=None,
        help=f"comma-separated --max-entries limits for the spill check (default: {DEFAULT_MAX_ENTRIES})",
    )
    parser.add_argument("--workers", type=int, default=2, help="wit --workers, if wit has it (default: 2)")
    parser.add_argument(
        "--cpus", type=int, default=2, help="pin every build to this many CPUs; 0 turns pinning off (default: 2)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds before a build is killed (default: {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--enwiki-tokens",
        type=float,
        default=ENWIKI_TOKENS,
        help=f"tokens of English Wikipedia for the Heaps' law extrapolation (default: {ENWIKI_TOKENS:g})",
    )
    parser.add_argument(
        "--wit-command",
        default=DEFAULT_WIT_COMMAND,
        help="command line that starts wit, split like a shell does (default: the project venv's wit)",
    )
    parser.add_argument("--source-dir", type=Path, default=make_dumps.DEFAULT_SOURCE_DIR, help="real source dumps")
    parser.add_argument("--data-dir", type=Path, default=make_dumps.DEFAULT_DATA_DIR, help="generated dumps")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="folder of the JSON results")
    args = parser.parse_args(argv)

    if args.percents is None:
        args.percents = QUICK_PERCENTS if args.quick else DEFAULT_PERCENTS
    else:
        args.percents = tuple(int(value) for value in args.percents.split(","))
    if args.max_entries is None:
        args.max_entries = QUICK_MAX_ENTRIES if args.quick else DEFAULT_MAX_ENTRIES
    else:
        args.max_entries = tuple(int(value) for value in args.max_entries.split(",") if value.strip())
    if args.copies is None and args.quick:
        args.copies = QUICK_COPIES
    if args.repeats < 1:
        parser.error(f"invalid --repeats {args.repeats}: it must be at least 1")
    if len(args.percents) < 2:
        parser.error(f"invalid --percents {args.percents}: the fit needs at least two prefixes")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    stop_on_sigterm()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")

    cpus = pinned_cpus(args.cpus or None)
    wit = WitBuild.probe(args.wit_command)
    bench = MemoryBench(wit, args.workers, cpus, args.repeats, args.timeout)
    sources = make_dumps.read_sources(make_dumps.source_paths(args.source_dir))
    copies = args.copies or make_dumps.default_copies(sources, make_dumps.DEFAULT_TARGET_XML_MB)
    concat = make_dumps.ensure_concat(sources, args.data_dir)
    repeated, _multistream, _index = make_dumps.ensure_repeated(sources, args.data_dir, copies)
    prefixes = make_dumps.ensure_prefixes(sources, args.data_dir, args.percents)

    series = dict(SERIES)
    if wit.has("--max-entries"):
        spill_limit = min(args.max_entries)
        series[f"all-pairs, --max-entries {spill_limit:,}"] = [*SERIES["all-pairs"], "--max-entries", str(spill_limit)]
    else:
        logger.warning("wit queries build has no --max-entries option: skipped the spill checks")

    try:
        logger.info("peak memory on the concatenation")
        peaks = [bench.build("concat", concat, []), bench.build("concat --no-bigrams", concat, ["--no-bigrams"])]

        logger.info("growth with distinct n-grams on prefixes of the concatenation")
        series_points: dict[str, list[BuildPoint]] = {}
        for name, options in series.items():
            series_points[name] = [
                bench.build(f"{percent}%", path, options) for percent, path in zip(args.percents, prefixes)
            ]

        logger.info("repetition: the same distinct n-grams in a %d times longer dump", copies)
        repetition = [
            bench.build("concat, all-pairs", concat, SERIES["all-pairs"]),
            bench.build(f"repeated-k{copies}, all-pairs", repeated, SERIES["all-pairs"]),
        ]

        spill_points: list[BuildPoint] = []
        if wit.has("--max-entries"):
            logger.info("spill limits on the all-pairs concatenation")
            for limit in args.max_entries:
                options = [*SERIES["all-pairs"], "--max-entries", str(limit)]
                spill_points.append(bench.build(f"concat, all-pairs, --max-entries {limit:,}", concat, options))
    except CommandFailed as error:
        logger.error("a build failed, so no result was written: %s", error)
        return 1

    fits = {
        series: LinearFit.of(
            [point.distinct_ngrams for point in points], [point.measurement.peak_tree_pss_bytes for point in points]
        )
        for series, points in series_points.items()
    }
    fit_points = series_points["all-pairs"]
    tokens = [point.counts["tokens"] for point in fit_points]
    unigram_law = PowerLaw.of(tokens, [point.counts["distinct_tokens"] for point in fit_points])
    bigram_law = PowerLaw.of(tokens, [point.counts["distinct_bigrams"] for point in fit_points])
    rows = extrapolation_rows(fits, unigram_law, bigram_law, args.enwiki_tokens)

    sections = [
        "Peak memory on the concatenation:\n\n" + peak_table(peaks),
        "Growth with distinct n-grams:\n\n" + growth_table(series_points, fits),
        "Repetition (all-pairs):\n\n" + peak_table(repetition),
        "Spill limits (all-pairs concatenation):\n\n" + peak_table([repetition[0], *spill_points])
        if spill_points
        else "",
        f"Heaps' law fit of the all-pairs prefixes: distinct unigrams = {unigram_law.k:.3g} * tokens^"
        f"{unigram_law.beta:.3f}, distinct bigrams = {bigram_law.k:.3g} * tokens^{bigram_law.beta:.3f}\n\n"
        + extrapolation_table(rows),
    ]
    markdown = "\n\n".join(section for section in sections if section)
    result = {
        "benchmark": "queries_memory",
        "machine": machine_facts(cpus),
        "settings": {
            "repeats": args.repeats,
            "copies": copies,
            "percents": list(args.percents),
            "max_entries": list(args.max_entries),
            "workers": args.workers,
            "timeout_s": args.timeout,
            "series": series,
            "wit_command": wit.command,
            "wit_options_found": {option: wit.has(option) for option in ("--workers", "--max-entries")},
            "enwiki_tokens": args.enwiki_tokens,
        },
        "peaks": [point.as_dict() for point in peaks],
        "growth": {series: [point.as_dict() for point in points] for series, points in series_points.items()},
        "fits": {
            series: {
                "a_bytes": fit.intercept,
                "b_bytes_per_ngram": fit.slope,
                "b_standard_error": fit.slope_stderr,
                "r_squared": fit.r_squared,
                "points": fit.points,
            }
            for series, fit in fits.items()
        },
        "heaps_law": {
            "unigrams": {"k": unigram_law.k, "beta": unigram_law.beta},
            "bigrams": {"k": bigram_law.k, "beta": bigram_law.beta},
        },
        "repetition": [point.as_dict() for point in repetition],
        "spill": [point.as_dict() for point in spill_points],
        "extrapolation": rows,
        "markdown": markdown,
    }
    path = write_result(args.results_dir, "queries_memory", result)
    print(markdown)
    print(f"\nresult written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
