"""Match and balance stage functions, each working on one partition file.

The flow over a run's partitions is: ``match_partition`` on every candidates part,
``reduce_query_counts`` once over all matched parts, then ``balance_partition`` on
every matched part with the reduced counts. Only the reduce step reads every partition.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from wit_builder.match.balance import should_keep
from wit_builder.match.matcher import QueryMatcher
from wit_builder.parquet import atomic_write_table, clear_parts, iter_records, list_parts, write_records
from wit_builder.queries.build import load_queries
from wit_builder.records import Candidate, MatchedCandidate
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

QUERY_COUNTS_FILE = "query_counts.parquet"

#: Default t of the balancing rule: CLIP kept at most 20,000 pairs per query.
DEFAULT_CAP = 20_000


@dataclass
class MatchStats:
    """Counts of one match partition."""

    candidates: int = 0
    matched: int = 0
    unmatched: int = 0


@dataclass
class BalanceStats:
    """Counts of one balance partition."""

    matched: int = 0
    kept: int = 0
    dropped: int = 0


@functools.lru_cache(maxsize=4)
def _cached_matcher(queries_path: str, modified_ns: int, ignore_case: bool) -> QueryMatcher:
    return QueryMatcher(load_queries(queries_path), ignore_case=ignore_case)


def get_matcher(queries_path: str | Path, ignore_case: bool = False) -> QueryMatcher:
    """Return the automaton for a query file, built once per process and file version."""
    path = Path(queries_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"query list not found: {path} (expected queries.parquet or a text file with one query a line)")
    return _cached_matcher(str(path), path.stat().st_mtime_ns, ignore_case)


def match_partition(
    candidates_path: Path, queries_path: Path, out_path: Path, ignore_case: bool = False
) -> MatchStats:
    """Write the candidates of one partition that match at least one query, with their query ids."""
    matcher = get_matcher(queries_path, ignore_case)
    stats = MatchStats()
    matched: list[MatchedCandidate] = []

    rows = iter_records(candidates_path, Candidate)
    for candidate in tqdm(rows, desc=f"match {candidates_path.name}", unit=" candidates", leave=False):
        stats.candidates += 1
        query_ids = matcher.match(candidate.text)
        if not query_ids:
            stats.unmatched += 1
            continue
        stats.matched += 1
        matched.append(MatchedCandidate(**dataclasses.asdict(candidate), query_ids=query_ids))

    write_records(out_path, matched, MatchedCandidate)
    logger.info("%s: %d of %d candidates matched a query", candidates_path.name, stats.matched, stats.candidates)
    return stats


def count_queries(matched_path: Path) -> collections.Counter:
    """Count the matched candidates per query id in one partition."""
    counts: collections.Counter = collections.Counter()
    table = pq.read_table(matched_path, columns=["query_ids"])
    for query_ids in table.column("query_ids").to_pylist():
        counts.update(query_ids)
    return counts


def reduce_query_counts(matched_dir: Path, queries_path: Path) -> dict[int, int]:
    """Sum per-query counts over all matched partitions and write query_counts.parquet."""
    totals: collections.Counter = collections.Counter()
    for part in list_parts(matched_dir):
        totals.update(count_queries(part))

    queries = load_queries(queries_path)
    query_ids = sorted(totals)
    table = pa.table(
        {
            "query_id": pa.array(query_ids, pa.int64()),
            "query": pa.array([queries[i] for i in query_ids], pa.string()),
            "count": pa.array([totals[i] for i in query_ids], pa.int64()),
        }
    )
    atomic_write_table(table, matched_dir / QUERY_COUNTS_FILE)
    return dict(totals)


def read_query_counts(matched_dir: Path) -> dict[int, int]:
    """Read the reduced per-query counts written by ``reduce_query_counts``."""
    path = matched_dir / QUERY_COUNTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the match stage over all partitions first")
    table = pq.read_table(path)
    return dict(zip(table.column("query_id").to_pylist(), table.column("count").to_pylist()))


def balance_partition(
    matched_path: Path, counts: dict[int, int], out_path: Path, cap: int, seed: int = 0
) -> BalanceStats:
    """Keep the candidates of one matched partition that balancing draws, in input order."""
    stats = BalanceStats()
    kept: list[MatchedCandidate] = []

    for candidate in iter_records(matched_path, MatchedCandidate):
        stats.matched += 1
        if should_keep(candidate.candidate_id, candidate.query_ids, counts, cap, seed):
            kept.append(candidate)
            stats.kept += 1
        else:
            stats.dropped += 1

    write_records(out_path, kept, MatchedCandidate)
    return stats


def match_folder(candidates_dir: Path, queries: Path, out_dir: Path, ignore_case: bool) -> dict:
    """Match every partition of ``candidates_dir`` and reduce the per-query counts."""
    parts = list_parts(candidates_dir)
    if not parts:
        raise FileNotFoundError(f"no part-*.parquet files in {candidates_dir}")

    clear_parts(out_dir)
    totals = {"candidates": 0, "matched": 0, "unmatched": 0}
    for part in parts:
        stats = match_partition(part, queries, out_dir / part.name, ignore_case=ignore_case)
        for name, value in dataclasses.asdict(stats).items():
            totals[name] += value

    counts = reduce_query_counts(out_dir, queries)
    totals["queries_matched"] = len(counts)
    write_stage_stats(out_dir, "match", totals, ignore_case=ignore_case)
    logger.info("matched %d of %d candidates, %d distinct queries", totals["matched"], totals["candidates"], len(counts))
    return totals


def balance_folder(matched_dir: Path, out_dir: Path, cap: int, seed: int) -> dict:
    """Balance every partition of ``matched_dir`` with the counts reduced over all of them."""
    counts = read_query_counts(matched_dir)
    clear_parts(out_dir)
    totals = {"matched": 0, "kept": 0, "dropped": 0}
    for part in list_parts(matched_dir):
        stats = balance_partition(part, counts, out_dir / part.name, cap=cap, seed=seed)
        for name, value in dataclasses.asdict(stats).items():
            totals[name] += value

    over_cap = sum(1 for count in counts.values() if count > cap)
    totals["queries_over_cap"] = over_cap
    write_stage_stats(out_dir, "balance", totals, cap=cap, seed=seed)
    logger.info("balancing kept %d of %d candidates (cap %d, %d queries over it)", totals["kept"], totals["matched"], cap, over_cap)
    return totals
