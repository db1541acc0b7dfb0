"""The balance stage: subsample matched candidates so that no query dominates.

Two modes, chosen with ``mode``:

- ``metaclip``: MetaCLIP's rule (``wit_builder.match.balance``). One pass, with the
  per-query counts that the match stage reduced.
- ``strict``: every kept pair is credited to one query and no query to more than the
  cap (``wit_builder.match.strict``). A first pass over all matched partitions finds
  each query's threshold rank, and balanced parts get a ``credited_query_id`` column.

Both modes give the same result for any partitioning of the matched candidates.
``oversample`` raises the cap of this pass to ceil(cap * oversample), so that failed
downloads still leave each query its t samples. The final pass after fetch and
filter (``wit_builder.match.final``) then applies the rule with the cap itself.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from wit_builder.match.balance import check_balance_options, rank_hash, should_keep
from wit_builder.match.stage import read_query_counts
from wit_builder.match.strict import LowestRanks, credit_query
from wit_builder.match.tables import check_columns, conform_table
from wit_builder.parquet import atomic_write_table, clear_parts, list_parts
from wit_builder.records import MatchedCandidate
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

#: Column that strict balancing adds to its output: the query a pair is credited to.
CREDIT_COLUMN = "credited_query_id"
CREDIT_SCHEMA = pa.schema([pa.field(CREDIT_COLUMN, pa.int64())])


@dataclass
class BalanceStats:
    """Counts of one balance partition."""

    matched: int = 0
    kept: int = 0
    dropped: int = 0


def pass_cap(cap: int, oversample: float) -> int:
    """Return the cap of the balancing pass before fetching: ceil(cap * oversample)."""
    return math.ceil(cap * oversample)


def ranked_pairs(
    candidate_ids: Sequence[str], query_ids: Sequence[Sequence[int]], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (query ids, ranks) arrays with one element for every (candidate, query) pair."""
    ranks = np.fromiter((rank_hash(seed, key) for key in candidate_ids), dtype=np.uint64, count=len(candidate_ids))
    lengths = np.fromiter(map(len, query_ids), dtype=np.int64, count=len(query_ids))
    flat = np.fromiter((query_id for ids in query_ids for query_id in ids), dtype=np.int64, count=int(lengths.sum()))
    return flat, np.repeat(ranks, lengths)


def strict_thresholds(matched_parts: list[Path], cap: int, seed: int) -> tuple[dict[int, int], int]:
    """Run the first pass of strict balancing; return the per-query thresholds and the retained pairs."""
    lowest = LowestRanks(cap)
    for part in tqdm(matched_parts, desc="strict balance: thresholds", unit=" parts", leave=False):
        table = pq.read_table(part, columns=["candidate_id", "query_ids"])
        lowest.add(*ranked_pairs(table.column("candidate_id").to_pylist(), table.column("query_ids").to_pylist(), seed))
    thresholds = lowest.thresholds()
    return thresholds, lowest.retained_pairs


def balance_partition(
    matched_path: Path,
    counts: Mapping[int, int],
    out_path: Path,
    cap: int,
    seed: int = 0,
    mode: str = "metaclip",
    thresholds: Mapping[int, int] | None = None,
) -> BalanceStats:
    """Keep the candidates of one matched partition that balancing selects, in input order.

    ``cap`` is the cap of this pass (already multiplied by any oversampling factor).
    Strict mode needs the ``thresholds`` of ``strict_thresholds`` over all partitions.
    """
    check_balance_options(cap, mode, 1.0)
    if mode == "strict" and thresholds is None:
        raise ValueError("strict balancing needs the thresholds of strict_thresholds() over all matched partitions")
    table = pq.read_table(matched_path)
    check_columns(table.schema, MatchedCandidate, matched_path)
    candidate_ids = table.column("candidate_id").to_pylist()
    query_ids = table.column("query_ids").to_pylist()

    if mode == "metaclip":
        keep = [should_keep(key, ids, counts, cap, seed) for key, ids in zip(candidate_ids, query_ids)]
        kept = conform_table(table.filter(pa.array(keep, pa.bool_())), MatchedCandidate)
    else:
        credits = [credit_query(rank_hash(seed, key), ids, thresholds, counts) for key, ids in zip(candidate_ids, query_ids)]
        keep = [credit is not None for credit in credits]
        kept = table.filter(pa.array(keep, pa.bool_()))
        kept = kept.append_column(CREDIT_COLUMN, pa.array([credit for credit in credits if credit is not None], pa.int64()))
        kept = conform_table(kept, MatchedCandidate, extra=CREDIT_SCHEMA)

    atomic_write_table(kept, out_path)
    return BalanceStats(matched=len(keep), kept=kept.num_rows, dropped=len(keep) - kept.num_rows)


def credited_counts(parts: list[Path]) -> dict[int, int]:
    """Count the pairs credited to each query in strict-balanced partitions."""
    totals: dict[int, int] = {}
    for part in parts:
        column = pq.read_table(part, columns=[CREDIT_COLUMN]).column(CREDIT_COLUMN).drop_null()
        if len(column) == 0:
            continue
        counts = pc.value_counts(column)
        for query_id, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
            totals[query_id] = totals.get(query_id, 0) + count
    return totals


def balance_folder(
    matched_dir: Path, out_dir: Path, cap: int, seed: int, mode: str = "metaclip", oversample: float = 1.0
) -> dict:
    """Balance every partition of ``matched_dir`` with the counts reduced over all of them."""
    check_balance_options(cap, mode, oversample)
    counts = read_query_counts(matched_dir)
    parts = list_parts(matched_dir)
    first_pass_cap = pass_cap(cap, oversample)
    clear_parts(out_dir)

    thresholds = None
    extra: dict = {}
    if mode == "strict":
        thresholds, retained = strict_thresholds(parts, first_pass_cap, seed)
        extra["retained_rank_pairs"] = retained

    totals = {"matched": 0, "kept": 0, "dropped": 0}
    for part in tqdm(parts, desc="balance", unit=" parts", leave=False):
        stats = balance_partition(part, counts, out_dir / part.name, cap=first_pass_cap, seed=seed, mode=mode, thresholds=thresholds)
        totals["matched"] += stats.matched
        totals["kept"] += stats.kept
        totals["dropped"] += stats.dropped

    totals["queries_over_cap"] = sum(1 for count in counts.values() if count > first_pass_cap)
    if mode == "strict":
        credited = credited_counts(list_parts(out_dir))
        totals["max_credited"] = max(credited.values(), default=0)
        totals["queries_short"] = sum(1 for query_id in thresholds if credited.get(query_id, 0) < first_pass_cap)
    write_stage_stats(out_dir, "balance", totals, mode=mode, cap=cap, oversample=oversample, pass_cap=first_pass_cap, seed=seed, **extra)
    logger.info(
        "%s balancing kept %d of %d candidates (cap %d, %d queries over it)",
        mode, totals["kept"], totals["matched"], first_pass_cap, totals["queries_over_cap"],
    )
    return totals
