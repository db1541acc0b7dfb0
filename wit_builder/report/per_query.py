"""Per-query sample counts at each step of a run, and the names of the queries behind the ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_builder.queries.build import load_queries
from wit_builder.records import FetchStatus

#: Rows of the top-queries table.
TOP_QUERIES = 30


@dataclass
class QueryStep:
    """Samples per query id after one step. A sample that lists several queries counts once for each."""

    label: str
    counts: dict[int, int]

    def sorted_counts(self) -> list[int]:
        """Return the non-zero counts in descending order."""
        return sorted((count for count in self.counts.values() if count), reverse=True)


@dataclass
class QueryNames:
    """Query text of each id, with the queries merged into it (case variants and repeats)."""

    names: dict[int, str] = field(default_factory=dict)
    variants: dict[int, list[str]] = field(default_factory=dict)

    def label(self, query_id: int) -> str:
        """Return the query text with its merged variants, or a placeholder when the name is unknown."""
        name = self.names.get(query_id)
        if name is None:
            return f"(query id {query_id}, name unknown)"
        variants = self.variants.get(query_id)
        return f"{name} (also: {', '.join(variants)})" if variants else name


def count_query_ids(column: pa.ChunkedArray | pa.Array) -> dict[int, int]:
    """Count how many rows list each query id in a list<int> column."""
    query_ids = pc.list_flatten(column)
    if len(query_ids) == 0:
        return {}
    counts = pc.value_counts(query_ids)
    return dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()))


def survivor_counts(fetched: pa.Table, filtered: pa.Table) -> dict[int, int]:
    """Count per query the fetched samples with status ok whose key the filter kept."""
    kept_keys = filtered.filter(pc.equal(filtered.column("keep"), True)).column("key")
    ok = pc.equal(fetched.column("status"), FetchStatus.OK.value)
    survivors = pc.and_(ok, pc.is_in(fetched.column("key"), value_set=kept_keys.combine_chunks()))
    return count_query_ids(fetched.filter(survivors).column("query_ids"))


def read_final_counts(path: Path, notes: list[str]) -> tuple[dict[int, int], dict[int, int]] | None:
    """Read (survivors, kept) per query id from the final pass's query_counts.parquet, or None when absent."""
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path, columns=["query_id", "survivors", "kept"])
    except (pa.ArrowException, OSError, KeyError) as error:
        notes.append(f"final_balance/{path.name}: unreadable ({error}).")
        return None
    query_ids = table.column("query_id").to_pylist()
    survivors = dict(zip(query_ids, table.column("survivors").to_pylist()))
    kept = dict(zip(query_ids, table.column("kept").to_pylist()))
    return survivors, kept


def read_query_names(matched_counts: Path, query_list: Path | None, query_ids: list[int], notes: list[str]) -> QueryNames:
    """Return the names of ``query_ids`` from the match stage's query_counts.parquet.

    Ids missing there are looked up in ``query_list``. The match stage records the
    merged variants of each id in a ``variants`` column; files written before that
    column existed give names without variants.
    """
    result = QueryNames()
    if matched_counts.is_file():
        try:
            table = pq.read_table(matched_counts)
        except (pa.ArrowException, OSError) as error:
            notes.append(f"matched/{matched_counts.name}: unreadable ({error}); query names are read from the query list.")
            table = None
        if table is not None and {"query_id", "query"} <= set(table.column_names):
            ids = table.column("query_id").to_pylist()
            result.names = dict(zip(ids, table.column("query").to_pylist()))
            if "variants" in table.column_names:
                result.variants = {key: value for key, value in zip(ids, table.column("variants").to_pylist()) if value}

    missing = [query_id for query_id in query_ids if query_id not in result.names]
    if missing and query_list is not None and query_list.exists():
        try:
            queries = load_queries(query_list)
        except (OSError, ValueError, pa.ArrowException) as error:
            notes.append(f"query list {query_list}: unreadable ({error}); some query names are unknown.")
            return result
        for query_id in missing:
            if 0 <= query_id < len(queries):
                result.names[query_id] = queries[query_id]
    return result


def top_query_ids(steps: list[QueryStep], limit: int = TOP_QUERIES) -> list[int]:
    """Return the ``limit`` ids with the most samples at the first step that has counts, ties by id."""
    for step in steps:
        if step.counts:
            return sorted(step.counts, key=lambda query_id: (-step.counts[query_id], query_id))[:limit]
    return []
