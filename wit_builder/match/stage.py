"""The match stage: keep the candidates whose text contains a query, with the ids of their queries.

The flow over a run's partitions is ``match_partition`` on every candidates part,
then ``reduce_query_counts`` once over all matched parts. The balance stage
(``wit_builder.match.balance_stage``) reads the reduced counts.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from wit_builder.match.cache import cache_key, load_or_compile, query_file, remove_other_caches
from wit_builder.match.matcher import BatchMatches, QueryMatcher
from wit_builder.match.tables import check_columns, conform_table
from wit_builder.parquet import atomic_write_table, clear_parts, list_parts
from wit_builder.queries.build import load_queries
from wit_builder.records import Candidate, MatchedCandidate
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

QUERY_COUNTS_FILE = "query_counts.parquet"

#: Candidates read and matched per batch.
BATCH_ROWS = 65_536


@dataclass
class MatchStats:
    """Counts of one match partition."""

    candidates: int = 0
    matched: int = 0
    unmatched: int = 0


@functools.lru_cache(maxsize=4)
def _cached_matcher(path: str, modified_ns: int, size: int, ignore_case: bool, cache_dir: str | None) -> QueryMatcher:
    return QueryMatcher.from_compiled(load_or_compile(path, ignore_case, cache_dir))


def get_matcher(
    queries_path: str | os.PathLike, ignore_case: bool = False, cache_dir: str | os.PathLike | None = None
) -> QueryMatcher:
    """Return the matcher of a query file, built or loaded once per process and file version.

    With ``cache_dir``, the automaton is read from or written to the cache there
    (see ``wit_builder.match.cache``).
    """
    path = query_file(queries_path)
    status = path.stat()
    cache = None if cache_dir is None else str(Path(cache_dir).resolve())
    return _cached_matcher(str(path), status.st_mtime_ns, status.st_size, ignore_case, cache)


def match_partition(
    candidates_path: Path,
    queries_path: Path,
    out_path: Path,
    ignore_case: bool = False,
    cache_dir: Path | None = None,
) -> MatchStats:
    """Write the candidates of one partition that match at least one query, with their query ids.

    Rows keep their input order. A row whose text is null matches nothing.
    """
    matcher = get_matcher(queries_path, ignore_case, cache_dir)
    parquet_file = pq.ParquetFile(candidates_path)
    check_columns(parquet_file.schema_arrow, Candidate, candidates_path)
    record_columns = {field.name for field in dataclasses.fields(Candidate)}
    columns = [name for name in parquet_file.schema_arrow.names if name in record_columns]

    stats = MatchStats()
    tables = []
    progress = tqdm(total=parquet_file.metadata.num_rows, desc=f"match {candidates_path.name}", unit=" candidates", leave=False)
    for batch in parquet_file.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        matches = matcher.match_batch(batch.column("text").to_pylist())
        matched = matches.lengths() > 0
        kept = pa.Table.from_batches([batch]).filter(pa.array(matched))
        kept = kept.append_column("query_ids", _query_ids_column(matches, matched))
        tables.append(conform_table(kept, MatchedCandidate))
        stats.candidates += batch.num_rows
        stats.matched += kept.num_rows
        progress.update(batch.num_rows)
    progress.close()
    stats.unmatched = stats.candidates - stats.matched

    matched = pa.concat_tables(tables) if tables else conform_table(pa.table({}), MatchedCandidate)
    atomic_write_table(matched, out_path)
    logger.info("%s: %d of %d candidates matched a query", candidates_path.name, stats.matched, stats.candidates)
    return stats


def _query_ids_column(matches: BatchMatches, matched: np.ndarray) -> pa.ListArray:
    """Build the query_ids column of the matched rows straight from the batch's CSR arrays.

    The rows left out match nothing, so the starts of the kept rows, then the end of
    the last one, are the offsets of the kept rows.
    """
    offsets = np.append(matches.offsets[:-1][matched], matches.offsets[-1]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matches.ids))


def count_queries(matched_path: Path) -> dict[int, int]:
    """Count the matched candidates per query id in one partition."""
    query_ids = pc.list_flatten(pq.read_table(matched_path, columns=["query_ids"]).column("query_ids"))
    if len(query_ids) == 0:
        return {}
    counts = pc.value_counts(query_ids)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))


def reduce_query_counts(
    matched_dir: Path, queries_path: Path, variant_ids: Mapping[int, Sequence[int]] | None = None
) -> dict[int, int]:
    """Sum per-query counts over all matched partitions and write query_counts.parquet.

    One row per matched query id, with its query text and count. The ``variants``
    column lists the queries of ``variant_ids`` (from ``CompiledQueries``) that were
    merged into that id because they have the same normal form.
    """
    totals: dict[int, int] = {}
    for part in list_parts(matched_dir):
        for query_id, count in count_queries(part).items():
            totals[query_id] = totals.get(query_id, 0) + count

    queries = load_queries(queries_path)
    variant_ids = variant_ids or {}
    query_ids = sorted(totals)
    table = pa.table(
        {
            "query_id": pa.array(query_ids, pa.int64()),
            "query": pa.array([queries[i] for i in query_ids], pa.string()),
            "count": pa.array([totals[i] for i in query_ids], pa.int64()),
            "variants": pa.array([[queries[v] for v in variant_ids.get(i, ())] for i in query_ids], pa.list_(pa.string())),
        }
    )
    atomic_write_table(table, matched_dir / QUERY_COUNTS_FILE)
    return totals


def read_query_counts(matched_dir: Path) -> dict[int, int]:
    """Read the reduced per-query counts written by ``reduce_query_counts``."""
    if not matched_dir.is_dir():
        raise FileNotFoundError(f"matched folder not found: {matched_dir}; pass the --out folder of `wit match`")
    path = matched_dir / QUERY_COUNTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the match stage over all partitions first")
    table = pq.read_table(path)
    if "variants" not in table.column_names:
        logger.warning(
            "%s has no variants column, so an older version wrote it and may count queries with one normal form "
            "(such as case variants) as separate queries; run `wit match` again to merge them",
            path,
        )
    return dict(zip(table.column("query_id").to_pylist(), table.column("count").to_pylist()))


def match_folder(
    candidates_dir: Path, queries: Path, out_dir: Path, ignore_case: bool, cache_dir: Path | None = None
) -> dict:
    """Match every partition of ``candidates_dir`` and reduce the per-query counts.

    The automaton is cached in ``cache_dir``, or in ``out_dir`` when it is None. In
    ``out_dir`` only the cache of the current query list and options is kept.
    """
    if not candidates_dir.is_dir():
        raise FileNotFoundError(f"candidates folder not found: {candidates_dir}")
    parts = list_parts(candidates_dir)
    if not parts:
        raise FileNotFoundError(f"no part-*.parquet files in {candidates_dir}")

    clear_parts(out_dir)
    if cache_dir is None:
        cache_dir = out_dir
        removed = remove_other_caches(out_dir, keep=cache_key(query_file(queries), ignore_case))
        if removed:
            logger.info("deleted %d automaton cache file(s) of other query lists or options from %s", removed, out_dir)
    matcher = get_matcher(queries, ignore_case, cache_dir)

    totals = {"candidates": 0, "matched": 0, "unmatched": 0}
    for part in parts:
        stats = match_partition(part, queries, out_dir / part.name, ignore_case=ignore_case, cache_dir=cache_dir)
        for name, value in dataclasses.asdict(stats).items():
            totals[name] += value

    variant_ids = matcher.compiled.variant_ids
    counts = reduce_query_counts(out_dir, queries, variant_ids)
    totals["queries_matched"] = len(counts)
    write_stage_stats(
        out_dir,
        "match",
        totals,
        ignore_case=ignore_case,
        automaton_keys=matcher.compiled.key_count,
        merged_queries=sum(len(ids) for ids in variant_ids.values()),
        queries=str(query_file(queries)),
    )
    logger.info("matched %d of %d candidates, %d distinct queries", totals["matched"], totals["candidates"], len(counts))
    return totals
