"""Measure query matching with 500,000 entries: wit's matcher, MetaCLIP's substring loop and a floor.

Run it with the project venv, from the repository root:

    .venv/bin/python bench/match_throughput.py

Entries come from four sources, in this order and without repeats, cut at ``--entries``:
the bundled sample query list; ``wit queries build`` on each real dump in
``--source-dir`` with every threshold at its lowest (every word and adjacent word pair);
the words and adjacent word pairs of the captions; and the captions' runs of three
words. Word pairs of a script written without spaces are joined without a space, as
the query build writes them.

Captions: the alt texts of img2dataset's test_10000.parquet and the Flickr8k captions.

Methods, each on one process:

- ``floor``: a bare pyahocorasick iteration, ``for _ in automaton.iter(caption)``,
  over wit's automaton on the raw captions, without normalization;
- ``floor on normalized captions``: the same iteration on the normal forms of the
  captions, computed beforehand. It finds the matches wit finds, so it is the floor
  of any method that scans the normal form with this automaton;
- ``normalize_many alone``: wit's normal form of every caption, as a batch;
- ``wit``: ``QueryMatcher.match_batch`` on all captions (bulk normalization, the
  scan, and the sorted distinct query ids of each caption in numpy arrays), the
  path of the match stage;
- ``wit, one call per caption``: ``QueryMatcher.match`` on every caption, the
  per-caption path that ``match_batch`` must agree with (checked on every caption);
- ``wit stage``: ``match_partition`` on the captions as one Parquet partition of
  candidates, with reading and writing;
- ``substring loop``: MetaCLIP's method, a test ``entry in text`` of every padded
  entry on every padded caption, timed on the first ``--substring-captions``
  captions because it is slow. Its matches are checked against wit's.

Throughput is captions per second of the process's CPU time (one core), from the
median of ``--repeats`` rounds that alternate the methods. Wall-clock figures are in
the JSON, and so is the load average at the start and the end. The script also reports
the automaton's build time, the time to write and load its cache file, the file's
size, and the memory of a process that loads it.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import DEFAULT_RESULTS_DIR, REPO_ROOT, machine_facts, write_result

sys.path.insert(0, str(REPO_ROOT))

import pyarrow.parquet as pq  # noqa: E402

from wit_builder.match.cache import read_cache, write_cache  # noqa: E402
from wit_builder.match.matcher import QueryMatcher, compile_queries, normalize_for_matching, normalize_many  # noqa: E402
from wit_builder.match.stage import match_partition  # noqa: E402
from wit_builder.parquet import write_records  # noqa: E402
from wit_builder.queries.build import load_queries  # noqa: E402
from wit_builder.queries.tokens import join_tokens, tokenize, token_run_texts  # noqa: E402
from wit_builder.records import Candidate, candidate_id  # noqa: E402

logger = logging.getLogger("match_throughput")

DEFAULT_SOURCE_DIR = REPO_ROOT.parent / "shared" / "data"
SAMPLE_QUERIES = REPO_ROOT / "queries" / "sample" / "queries.txt"
DATA_DIR = REPO_ROOT / "bench" / "data"
DUMPS = (
    "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "wikipedia/enwiki-20250201-tiny_dump-70pages.xml.bz2",
    "wikipedia/enwiki-table-markup.xml.bz2",
)
ALT_TEXTS = "url-captions/test_10000.parquet"
FLICKR_CAPTIONS = "flickr8k/captions.csv"


def read_captions(source_dir: Path) -> list[str]:
    """Return the real alt texts, then the Flickr8k captions."""
    alt_texts = pq.read_table(source_dir / ALT_TEXTS, columns=["TEXT"]).column("TEXT").to_pylist()
    with open(source_dir / FLICKR_CAPTIONS, newline="", encoding="utf-8") as handle:
        flickr = [row["caption"] for row in csv.DictReader(handle)]
    return [text for text in alt_texts + flickr if text]


def build_dump_queries(source_dir: Path, wit_command: Path) -> list[Path]:
    """Run ``wit queries build`` on each real dump with every threshold at its lowest; reuse earlier outputs."""
    lists = []
    for dump in DUMPS:
        out = DATA_DIR / "match-queries" / Path(dump).name.split(".xml")[0]
        queries = out / "queries.txt"
        if not queries.is_file() or queries.stat().st_mtime < (source_dir / dump).stat().st_mtime:
            command = [
                str(wit_command), "--quiet", "queries", "build", str(source_dir / dump), "--out", str(out),
                "--min-count", "1", "--bigram-min-count", "1", "--pmi-threshold", "-1000",
                "--target-size", "10000000", "--no-progress",
            ]
            logger.info("building queries: %s", " ".join(command))
            subprocess.run(command, check=True)
        lists.append(queries)
    return lists


def caption_ngrams(captions: list[str], size: int) -> list[str]:
    """Return the distinct runs of ``size`` adjacent words of the captions, in first-seen order."""
    seen: dict[str, None] = {}
    for caption in captions:
        for run in token_run_texts(caption):
            words = run.split()
            for start in range(len(words) - size + 1):
                gram = words[start]
                for word in words[start + 1 : start + size]:
                    gram = join_tokens(gram, word)
                seen[gram] = None
    return list(seen)


def build_entries(source_dir: Path, captions: list[str], count: int, wit_command: Path) -> tuple[list[str], dict[str, int]]:
    """Return ``count`` distinct entries and how many came from each source."""
    sources = [("sample queries", load_queries(SAMPLE_QUERIES))]
    for path in build_dump_queries(source_dir, wit_command):
        sources.append((f"wit queries build {path.parent.name}", load_queries(path)))
    sources.append(("caption words", [word for caption in captions for word in tokenize(caption)]))
    sources.append(("caption word pairs", caption_ngrams(captions, 2)))
    sources.append(("caption word triples", caption_ngrams(captions, 3)))

    entries: dict[str, None] = {}
    composition: dict[str, int] = {}
    for name, items in sources:
        before = len(entries)
        for item in items:
            if len(entries) >= count:
                break
            if item.strip():
                entries.setdefault(item, None)
        composition[name] = len(entries) - before
    if len(entries) < count:
        raise SystemExit(f"only {len(entries):,} distinct entries from the real data; lower --entries")
    return list(entries), composition


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


LOAD_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from wit_builder.match.cache import read_cache
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
before = rss()
started = time.perf_counter()
compiled = read_cache(__import__("pathlib").Path(sys.argv[1]), sys.argv[2])
seconds = time.perf_counter() - started
assert compiled is not None
print(json.dumps({"load_s": seconds, "rss_growth_bytes": rss() - before, "keys": compiled.key_count}))
"""


def measure_cache(compiled, folder: Path) -> dict:
    """Time writing the cache file, and loading it in a fresh process with its memory growth."""
    path = folder / "automaton.pickle"
    started = time.perf_counter()
    write_cache(path, "bench", compiled)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    assert read_cache(path, "bench") is not None
    load_here_s = time.perf_counter() - started
    output = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(path), "bench", str(REPO_ROOT)], check=True, capture_output=True, text=True
    ).stdout
    fresh = json.loads(output)
    return {
        "file_bytes": path.stat().st_size,
        "write_s": write_s,
        "load_in_process_s": load_here_s,
        "load_fresh_process_s": fresh["load_s"],
        "fresh_process_rss_growth_bytes": fresh["rss_growth_bytes"],
    }


def timed(function) -> tuple[float, float]:
    """Run ``function`` once after a garbage collection; return (CPU seconds, wall seconds)."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    function()
    return time.process_time() - cpu, time.perf_counter() - wall


def substring_loop(padded_entries: list[str], text: str) -> list[int]:
    """MetaCLIP's matching: every entry, padded with spaces, tested as a substring of the padded text."""
    return [index for index, entry in enumerate(padded_entries) if entry in text]


def run(args: argparse.Namespace) -> dict:
    captions = read_captions(args.source_dir)
    wit_command = REPO_ROOT / ".venv" / "bin" / "wit"
    entries, composition = build_entries(args.source_dir, captions, args.entries, wit_command)
    logger.info("%d entries, %d captions", len(entries), len(captions))

    rss_before = rss_bytes()
    gc.collect()
    started_cpu, started = time.process_time(), time.perf_counter()
    compiled = compile_queries(entries)
    build = {"cpu_s": time.process_time() - started_cpu, "wall_s": time.perf_counter() - started}
    gc.collect()
    build["rss_growth_bytes"] = rss_bytes() - rss_before
    build["keys"] = compiled.key_count
    build["automaton_bytes"] = compiled.automaton.get_stats()["total_size"]
    matcher = QueryMatcher.from_compiled(compiled)
    automaton = compiled.automaton

    with tempfile.TemporaryDirectory(prefix="match-bench-") as folder:
        cache = measure_cache(compiled, Path(folder))
        candidates = Path(folder) / "candidates.parquet"
        rows = [Candidate(candidate_id(f"http://example.test/{i}.jpg", text), f"http://example.test/{i}.jpg", text, "alt", "http://example.test/", "bench") for i, text in enumerate(captions)]
        write_records(candidates, rows, Candidate)
        entries_file = Path(folder) / "entries.txt"
        entries_file.write_text("\n".join(entries) + "\n", encoding="utf-8")
        # Warm the stage's per-process matcher, so that its rounds time matching and I/O only.
        match_partition(candidates, entries_file, Path(folder) / "matched.parquet", cache_dir=Path(folder) / "cache")

        normalized = normalize_many(captions)
        iterate = automaton.iter

        def run_wit() -> None:
            matcher.match_batch(captions)

        def run_wit_per_caption() -> None:
            match = matcher.match
            for text in captions:
                match(text)

        def run_stage() -> None:
            match_partition(candidates, entries_file, Path(folder) / "matched.parquet", cache_dir=Path(folder) / "cache")

        def run_floor() -> None:
            for text in captions:
                for _ in iterate(text):
                    pass

        def run_floor_normalized() -> None:
            for text in normalized:
                for _ in iterate(text):
                    pass

        def run_normalize() -> None:
            normalize_many(captions)

        methods = {
            "wit": run_wit,
            "wit, one call per caption": run_wit_per_caption,
            "wit stage": run_stage,
            "floor": run_floor,
            "floor on normalized captions": run_floor_normalized,
            "normalize_many alone": run_normalize,
        }
        rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
        for round_index in range(args.repeats):
            for name, function in methods.items():
                rounds[name].append(timed(function))
            logger.info("round %d of %d done", round_index + 1, args.repeats)

    sample = captions[: args.substring_captions]
    padded_entries = [normalize_for_matching(entry) for entry in entries]
    substring_cpu, substring_wall = timed(lambda: [substring_loop(padded_entries, normalize_for_matching(text)) for text in sample])
    disagreements = sum(substring_loop(padded_entries, normalize_for_matching(text)) != matcher.match(text) for text in sample)
    per_caption = [matcher.match(text) for text in captions]
    batch_disagreements = sum(got != expected for got, expected in zip(matcher.match_many(captions), per_caption))

    results = {}
    for name, times in rounds.items():
        cpu = statistics.median(t[0] for t in times)
        wall = statistics.median(t[1] for t in times)
        results[name] = {"captions": len(captions), "cpu_s_median": cpu, "wall_s_median": wall, "captions_per_cpu_s": len(captions) / cpu, "rounds": times}
    results["substring loop"] = {
        "captions": len(sample), "cpu_s_median": substring_cpu, "wall_s_median": substring_wall,
        "captions_per_cpu_s": len(sample) / substring_cpu, "disagreements_with_wit": disagreements,
    }
    matches = sum(map(len, per_caption))
    floor, floor_normalized = results["floor"]["captions_per_cpu_s"], results["floor on normalized captions"]["captions_per_cpu_s"]
    return {
        "entries": len(entries),
        "entry_sources": composition,
        "captions": len(captions),
        "mean_caption_chars": statistics.mean(len(text) for text in captions),
        "matches_per_caption": matches / len(captions),
        "build": build,
        "cache": cache,
        "methods": results,
        "match_batch_disagreements_with_match": batch_disagreements,
        "wit_over_floor": floor / results["wit"]["captions_per_cpu_s"],
        "wit_over_floor_on_normalized_captions": floor_normalized / results["wit"]["captions_per_cpu_s"],
        "wit_stage_over_floor": floor / results["wit stage"]["captions_per_cpu_s"],
    }


def print_tables(result: dict) -> None:
    methods = result["methods"]
    print(f"\n{result['entries']:,} entries, {result['captions']:,} captions "
          f"({result['mean_caption_chars']:.0f} characters and {result['matches_per_caption']:.1f} matched entries on average)\n")
    print("| method | captions | captions/s per core | time relative to floor | to floor on normalized captions |")
    print("|---|---:|---:|---:|---:|")
    floor = methods["floor"]["captions_per_cpu_s"]
    floor_normalized = methods["floor on normalized captions"]["captions_per_cpu_s"]
    names = ("floor", "floor on normalized captions", "normalize_many alone", "wit", "wit, one call per caption", "wit stage", "substring loop")
    for name in names:
        rate = methods[name]["captions_per_cpu_s"]
        print(f"| {name} | {methods[name]['captions']:,} | {rate:,.0f} | {floor / rate:.2f}x | {floor_normalized / rate:.2f}x |")
    build, cache = result["build"], result["cache"]
    print("\n| automaton | value |")
    print("|---|---:|")
    print(f"| keys | {build['keys']:,} |")
    print(f"| build (normalize and add every entry, make_automaton), CPU | {build['cpu_s']:.1f} s |")
    print(f"| automaton size (pyahocorasick get_stats total_size) | {build['automaton_bytes'] / 2**20:,.0f} MiB |")
    print(f"| memory growth of the building process | {build['rss_growth_bytes'] / 2**20:,.0f} MiB |")
    print(f"| cache file | {cache['file_bytes'] / 2**20:,.0f} MiB |")
    print(f"| cache write | {cache['write_s']:.2f} s |")
    print(f"| cache load, fresh process | {cache['load_fresh_process_s']:.2f} s |")
    print(f"| memory growth of a process that loads the cache | {cache['fresh_process_rss_growth_bytes'] / 2**20:,.0f} MiB |")
    print(f"\nsubstring loop disagreements with wit: {methods['substring loop']['disagreements_with_wit']}")
    print(f"captions where match_batch and match disagree: {result['match_batch_disagreements_with_match']}")
    print(f"load average (1, 5, 15 min) at start {result['load_average_at_start']}, at end {result['load_average_at_end']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=500_000, help="number of entries (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of every method (default: %(default)s)")
    parser.add_argument("--substring-captions", type=int, default=50, help="captions timed with the substring loop (default: %(default)s)")
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE_DIR, help="the real data folder (default: %(default)s)")
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, help="folder for the JSON result (default: %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("wit_builder").setLevel(logging.WARNING)

    machine = machine_facts(None)
    load_at_start = os.getloadavg()
    result = run(args)
    result["load_average_at_start"] = load_at_start
    result["machine"] = machine
    result["command"] = [sys.executable, *sys.argv]
    result["load_average_at_end"] = os.getloadavg()
    print_tables(result)
    path = write_result(args.results_dir, "match-throughput", result)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
