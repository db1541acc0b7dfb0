"""The final balancing pass, after fetch, filter and dedup and before shards are written.

The balance stage before fetching may run with a cap raised by an oversampling
factor, so that failed downloads and filtered samples do not leave a query short.
This pass applies the rule of the run's mode with the cap t itself to the samples
that survived: fetched with status ok and kept by the filter.

- ``metaclip``: the counts are those of the survivors, and the draws come from a
  hash stream of their own (``FINAL_STREAM``). The survivors were selected by the
  first pass's draws, so reusing those would skew the rule.
- ``strict``: the ranks are the first pass's, so each query keeps its t
  lowest-ranked survivors. With no oversampling the pass drops nothing.

Outputs in the output folder:

    part-NNNNN.parquet    the filter's decisions, one file per filter part with the same
                          name, where the samples this pass drops get keep=False and
                          reason "balance_cap"; the shard writer reads these
    query_counts.parquet  per query: survivors, samples kept, and credited (strict only)
    stats.json            counts, mode, cap and seed

Like the balance stage, the result does not depend on how the samples are
partitioned. Memory is one partition's key, status and query columns at a time, plus
the per-query counts and, for strict, the thresholds pass (see
``wit_builder.match.strict``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from wit_builder.match.balance import FINAL_STREAM, check_balance_options, rank_hash, should_keep
from wit_builder.match.balance_stage import ranked_pairs
from wit_builder.match.strict import LowestRanks, credit_query
from wit_builder.match.tables import check_columns, conform_table
from wit_builder.parquet import atomic_write_table
from wit_builder.records import FetchStatus, FilterDecision
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

STAGE_NAME = "final_balance"
QUERY_COUNTS_FILE = "query_counts.parquet"

#: Filter reason of the samples that the final pass drops.
BALANCE_REASON = "balance_cap"


@dataclass
class FinalBalanceStats:
    """Counts of one final balancing pass."""

    survivors: int = 0
    kept: int = 0
    dropped: int = 0
    queries: int = 0
    max_per_query: int = 0
    max_credited: int = 0
    queries_short: int = 0
    partitions: int = 0


@dataclass
class _Partition:
    """The filter decisions of one fetched partition, with the query ids of its survivors."""

    decisions: pa.Table
    survivor_rows: np.ndarray  # indexes into ``decisions`` of the samples the filter kept
    keys: list[str]
    query_ids: list[list[int]]


def _read_partition(fetched_path: Path, decisions_path: Path) -> _Partition:
    """Pair the ok rows of a fetched part with the filter's decisions, which list them in order."""
    fetched = pq.read_table(fetched_path, columns=["key", "status", "query_ids"])
    ok = pc.equal(fetched.column("status"), FetchStatus.OK.value)
    fetched = fetched.filter(ok)
    decisions = pq.read_table(decisions_path)
    check_columns(decisions.schema, FilterDecision, decisions_path)

    fetched_keys = fetched.column("key").to_pylist()
    decision_keys = decisions.column("key").to_pylist()
    if fetched_keys != decision_keys:
        raise ValueError(
            f"the filter decisions {decisions_path} do not list the ok rows of {fetched_path} in order "
            f"({len(decision_keys)} decisions for {len(fetched_keys)} ok rows); run the filter stage on this fetched folder again"
        )
    keep = decisions.column("keep").to_numpy(zero_copy_only=False)
    survivor_rows = np.flatnonzero(keep == True)  # noqa: E712 - nulls count as not kept
    query_ids = fetched.column("query_ids").to_pylist()
    return _Partition(
        decisions=decisions,
        survivor_rows=survivor_rows,
        keys=[fetched_keys[row] for row in survivor_rows],
        query_ids=[query_ids[row] or [] for row in survivor_rows],
    )


def _count(query_ids: list[list[int]], counts: dict[int, int]) -> None:
    for ids in query_ids:
        for query_id in ids:
            counts[query_id] = counts.get(query_id, 0) + 1


def final_balance(
    fetched_parts: list[Path], decisions_parts: list[Path], out_dir: Path, cap: int, seed: int, mode: str = "metaclip"
) -> FinalBalanceStats:
    """Balance the samples that survived fetch and filter to the rule with ``cap``; see the module docstring."""
    check_balance_options(cap, mode, 1.0)
    if len(fetched_parts) != len(decisions_parts):
        raise ValueError(
            f"got {len(fetched_parts)} fetched parts but {len(decisions_parts)} filter parts; run the filter stage on this fetched folder again"
        )
    pairs = list(zip(fetched_parts, decisions_parts))
    stats = FinalBalanceStats(partitions=len(pairs))

    survivor_counts: dict[int, int] = {}
    lowest = LowestRanks(cap) if mode == "strict" else None
    for fetched_path, decisions_path in tqdm(pairs, desc="final balance: count", unit=" parts", leave=False):
        partition = _read_partition(fetched_path, decisions_path)
        _count(partition.query_ids, survivor_counts)
        stats.survivors += len(partition.keys)
        if lowest is not None:
            lowest.add(*ranked_pairs(partition.keys, partition.query_ids, seed))
    thresholds = lowest.thresholds() if lowest is not None else {}

    kept_counts: dict[int, int] = {}
    credited: dict[int, int] = {}
    written = set()
    for fetched_path, decisions_path in tqdm(pairs, desc="final balance: select", unit=" parts", leave=False):
        partition = _read_partition(fetched_path, decisions_path)
        selected = _select(partition, survivor_counts, thresholds, cap, seed, mode, credited)
        _count([ids for ids, chosen in zip(partition.query_ids, selected) if chosen], kept_counts)
        stats.kept += int(selected.sum())

        dropped_rows = partition.survivor_rows[~selected]
        out_path = out_dir / decisions_path.name
        atomic_write_table(_drop_rows(partition.decisions, dropped_rows), out_path)
        written.add(out_path)

    for stale in sorted(set(out_dir.glob("part-*.parquet")) - written):
        stale.unlink()
    stats.dropped = stats.survivors - stats.kept
    stats.queries = len(survivor_counts)
    stats.max_per_query = max(kept_counts.values(), default=0)
    stats.max_credited = max(credited.values(), default=0)
    stats.queries_short = sum(1 for query_id in thresholds if credited.get(query_id, 0) < cap)

    _write_query_counts(out_dir / QUERY_COUNTS_FILE, survivor_counts, kept_counts, credited if mode == "strict" else None)
    counts = {"survivors": stats.survivors, "kept": stats.kept, "dropped": stats.dropped, "queries": stats.queries, "max_per_query": stats.max_per_query}
    if mode == "strict":
        counts.update(max_credited=stats.max_credited, queries_short=stats.queries_short)
    write_stage_stats(out_dir, STAGE_NAME, counts, mode=mode, cap=cap, seed=seed, partitions=stats.partitions)
    logger.info("final %s balancing kept %d of %d surviving samples (cap %d)", mode, stats.kept, stats.survivors, cap)
    return stats


def _select(
    partition: _Partition,
    counts: Mapping[int, int],
    thresholds: Mapping[int, int],
    cap: int,
    seed: int,
    mode: str,
    credited: dict[int, int],
) -> np.ndarray:
    """Return which survivors of a partition the final pass keeps, and add strict credits to ``credited``."""
    selected = np.zeros(len(partition.keys), dtype=bool)
    for index, (key, ids) in enumerate(zip(partition.keys, partition.query_ids)):
        if mode == "metaclip":
            selected[index] = should_keep(key, ids, counts, cap, seed, FINAL_STREAM)
            continue
        credit = credit_query(rank_hash(seed, key), ids, thresholds, counts)
        if credit is not None:
            selected[index] = True
            credited[credit] = credited.get(credit, 0) + 1
    return selected


def _drop_rows(decisions: pa.Table, rows: np.ndarray) -> pa.Table:
    """Return the decisions with keep=False and reason BALANCE_REASON at ``rows``."""
    dropped = np.zeros(decisions.num_rows, dtype=bool)
    dropped[rows] = True
    mask = pa.array(dropped)
    keep = pc.if_else(mask, False, decisions.column("keep"))
    reason = pc.if_else(mask, BALANCE_REASON, decisions.column("reason"))
    table = decisions.set_column(decisions.schema.get_field_index("keep"), "keep", keep)
    table = table.set_column(table.schema.get_field_index("reason"), "reason", reason)
    return conform_table(table, FilterDecision)


def _write_query_counts(path: Path, survivors: dict[int, int], kept: dict[int, int], credited: dict[int, int] | None) -> None:
    query_ids = sorted(survivors)
    columns = {
        "query_id": pa.array(query_ids, pa.int64()),
        "survivors": pa.array([survivors[i] for i in query_ids], pa.int64()),
        "kept": pa.array([kept.get(i, 0) for i in query_ids], pa.int64()),
        "credited": pa.array([None if credited is None else credited.get(i, 0) for i in query_ids], pa.int64()),
    }
    atomic_write_table(pa.table(columns), path)
