"""Gather the figures of a run folder for the report, noting stages that are missing or unreadable."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.parquet import list_parts
from wit_builder.records import FetchStatus
from wit_builder.report.per_query import (
    QueryNames,
    QueryStep,
    count_query_ids,
    read_final_counts,
    read_query_names,
    survivor_counts,
    top_query_ids,
)

logger = logging.getLogger(__name__)

#: Stage folders of a run in pipeline order.
STAGES = ("queries", "candidates", "matched", "balanced", "fetched", "filtered", "final_balance", "shards", "train")

#: Type of the query_ids column, for files written before the column existed.
QUERY_IDS_TYPE = pa.list_(pa.int64())

#: Labels of the per-query steps, in pipeline order.
MATCHED_STEP = "matched"
BALANCED_STEP = "first balance"
SURVIVORS_STEP = "after fetch and filter"
FINAL_STEP = "after the final pass"
SHARDS_STEP = "in shards"


@dataclass
class FunnelStep:
    """Number of samples left after one pipeline step; None when the stage output is missing."""

    label: str
    count: int | None


@dataclass
class RunSummary:
    """Figures read from a run folder. Fields stay empty or None for stages that are missing."""

    run_dir: Path
    notes: list[str] = field(default_factory=list)
    stage_stats: dict[str, dict] = field(default_factory=dict)
    query_kinds: Counter = field(default_factory=Counter)
    funnel: list[FunnelStep] = field(default_factory=list)
    fetch_statuses: Counter = field(default_factory=Counter)
    filter_reasons: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)
    caption_words_fetched: list[int] = field(default_factory=list)
    caption_words_kept: list[int] = field(default_factory=list)
    query_list: Path | None = None
    query_list_origin: str | None = None
    query_list_size: int | None = None
    run_record: dict | None = None
    query_steps: list[QueryStep] = field(default_factory=list)
    top_queries: list[int] = field(default_factory=list)
    query_names: QueryNames = field(default_factory=QueryNames)
    final_balance_ran: bool = False
    final_balance_mode: str | None = None
    final_balance_cap: int | None = None
    balance_cap: int | None = None
    balance_mode: str | None = None
    balance_oversample: float | None = None
    shard_files: list[Path] = field(default_factory=list)
    shard_bytes: int = 0
    train_result: dict | None = None
    loss_plot: Path | None = None


def read_columns(
    summary: RunSummary, stage: str, columns: list[str], optional: dict[str, pa.DataType] | None = None
) -> pa.Table | None:
    """Concatenate ``columns`` of a stage's part files, or return None and add a note.

    Unreadable part files are skipped with a note, so one bad file does not hide the rest.
    The ``optional`` columns are read where present and are null in files without them.
    """
    optional = optional or {}
    folder = summary.run_dir / stage
    parts = list_parts(folder)
    if not parts:
        summary.notes.append(f"{stage}/: no part-*.parquet files, so the {stage} stage did not run or has not finished.")
        return None

    tables = []
    for part in parts:
        try:
            schema = pq.read_schema(part)
            missing = [column for column in columns if column not in schema.names]
            if missing:
                summary.notes.append(f"{stage}/{part.name}: missing column(s) {', '.join(missing)}; file skipped.")
                continue
            present = [name for name in optional if name in schema.names]
            table = pq.read_table(part, columns=columns + present)
            for name, data_type in optional.items():
                if name in present:
                    table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(data_type))
                else:
                    table = table.append_column(pa.field(name, data_type), pa.nulls(table.num_rows, data_type))
            tables.append(table)
        except (pa.ArrowException, OSError) as error:
            summary.notes.append(f"{stage}/{part.name}: unreadable parquet file ({error}); file skipped.")
    if not tables:
        return None
    return pa.concat_tables(tables)


def count_rows(summary: RunSummary, stage: str) -> int | None:
    """Return the number of rows in a stage's part files from their parquet footers."""
    parts = list_parts(summary.run_dir / stage)
    if not parts:
        return None
    total = 0
    for part in parts:
        try:
            total += pq.ParquetFile(part).metadata.num_rows
        except (pa.ArrowException, OSError) as error:
            summary.notes.append(f"{stage}/{part.name}: unreadable parquet file ({error}); not counted.")
    return total


def per_query_counts(summary: RunSummary, stage: str, table: pa.Table | None) -> dict[int, int] | None:
    """Return the number of rows that list each query id, or None without a usable query_ids column."""
    if table is None:
        return None
    column = table.column("query_ids")
    if not pa.types.is_list(column.type):
        summary.notes.append(f"{stage}/: query_ids has type {column.type}, expected a list of ints; per-query counts skipped.")
        return None
    return count_query_ids(column)


def read_stage_stats(summary: RunSummary) -> None:
    """Load every stage's stats.json that exists and parses."""
    for stage in STAGES:
        path = summary.run_dir / stage / "stats.json"
        if not path.is_file():
            continue
        try:
            stats = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            summary.notes.append(f"{stage}/stats.json: unreadable ({error}).")
            continue
        if not isinstance(stats, dict):
            summary.notes.append(f"{stage}/stats.json: expected a JSON object, found {type(stats).__name__}.")
            continue
        summary.stage_stats[stage] = stats


def read_run_record(summary: RunSummary) -> None:
    """Load RUN_DIR/run.json, which `wit run` writes with its config path, query list and stages."""
    path = summary.run_dir / "run.json"
    if not path.is_file():
        return
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        summary.notes.append(f"run.json: unreadable ({error}).")
        return
    if not isinstance(record, dict):
        summary.notes.append(f"run.json: expected a JSON object, found {type(record).__name__}.")
        return
    summary.run_record = record


def find_query_list(summary: RunSummary) -> tuple[Path, str] | None:
    """Return the query list that a run used and where the report found its path, or None when unknown.

    The sources, in order: the list that matched/stats.json records (the one behind
    the query ids of matched/), the query list that run.json records, the [queries]
    list of the config that run.json names, and the list the query stage built here.
    """
    built = summary.run_dir / "queries" / "queries.parquet"
    found = _recorded_query_list(summary)
    if found is not None:
        path, origin = found
        if path.resolve() == built.resolve():
            return path, f"built by the query stage of this run, {origin}"
        return found
    if built.is_file():
        return built, "built by the query stage of this run"
    return None


def _recorded_query_list(summary: RunSummary) -> tuple[Path, str] | None:
    queries = summary.stage_stats.get("matched", {}).get("queries")
    if isinstance(queries, str):
        return Path(queries), "recorded in matched/stats.json"

    record = summary.run_record or {}
    if isinstance(record.get("query_list"), str):
        return Path(record["query_list"]), "recorded in run.json"
    config_path = record.get("config")
    if not isinstance(config_path, str):
        return None
    from wit_builder.pipeline.config import load_config

    try:
        config = load_config(config_path)
    except (OSError, ValueError) as error:
        summary.notes.append(f"run.json names the config {config_path}, which could not be read ({error}).")
        return None
    if config.queries.list is None:
        return None
    return config.queries.list, f"[queries] list of {config_path}, named in run.json"


def read_queries(summary: RunSummary) -> None:
    """Find the query list of the run and count its queries, by kind where the list records kinds."""
    found = find_query_list(summary)
    if found is None:
        summary.notes.append(
            "queries/queries.parquet not found, and neither run.json nor matched/stats.json names a query list, "
            "so the query stage did not run in this folder and the query list is unknown."
        )
        return
    path, origin = found
    summary.query_list, summary.query_list_origin = path, origin
    if not path.is_file():
        summary.notes.append(f"the query list {path} ({origin}) is not found, so its queries are not counted.")
        return
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path, columns=["kind"]) if "kind" in pq.read_schema(path).names else None
            summary.query_list_size = pq.ParquetFile(path).metadata.num_rows
            if table is not None:
                summary.query_kinds = Counter(table.column("kind").to_pylist())
        else:
            from wit_builder.queries.build import load_queries

            summary.query_list_size = len(load_queries(path))
    except (pa.ArrowException, OSError, UnicodeDecodeError, ValueError) as error:
        summary.notes.append(f"query list {path}: unreadable ({error}).")


def read_fetch(summary: RunSummary, table: pa.Table | None) -> int | None:
    """Count fetch statuses and caption word counts, and return the number of ok fetches."""
    if table is None:
        return None
    statuses = table.column("status").to_pylist()
    summary.fetch_statuses = Counter(statuses)
    for caption, status in zip(table.column("caption").to_pylist(), statuses):
        if status == FetchStatus.OK.value and caption is not None:
            summary.caption_words_fetched.append(len(caption.split()))
    return summary.fetch_statuses.get(FetchStatus.OK.value, 0)


def read_filter(summary: RunSummary, table: pa.Table | None) -> int | None:
    """Count filter reasons, languages and caption lengths, and return the number of kept samples."""
    if table is None:
        return None
    keep = table.column("keep").to_pylist()
    reasons = table.column("reason").to_pylist()
    words = table.column("caption_words").to_pylist()
    summary.languages = Counter(table.column("language").to_pylist())
    summary.filter_reasons = Counter(reason or "unknown" for reason, kept in zip(reasons, keep) if not kept)
    summary.caption_words_kept = [count for count, kept in zip(words, keep) if kept and count is not None]
    return sum(1 for kept in keep if kept)


def read_shards(summary: RunSummary) -> tuple[int | None, dict[int, int] | None]:
    """List the tar shards, and return the number of samples in them with their per-query counts.

    The per-query counts are None when no shard's metadata has a query_ids column.
    """
    folder = summary.run_dir / "shards"
    summary.shard_files = sorted(folder.glob("*.tar"))
    if not summary.shard_files:
        summary.notes.append("shards/: no .tar files, so the shard writer did not run or has not finished.")
        return None, None
    summary.shard_bytes = sum(path.stat().st_size for path in summary.shard_files)

    total = 0
    per_query: dict[int, int] | None = None
    for shard in summary.shard_files:
        metadata = shard.with_suffix(".parquet")
        try:
            parquet_file = pq.ParquetFile(metadata)
            total += parquet_file.metadata.num_rows
            if "query_ids" in parquet_file.schema_arrow.names:
                per_query = per_query or {}
                column = parquet_file.read(columns=["query_ids"]).column("query_ids")
                for query_id, count in count_query_ids(column).items():
                    per_query[query_id] = per_query.get(query_id, 0) + count
        except (pa.ArrowException, OSError) as error:
            summary.notes.append(f"shards/{metadata.name}: unreadable or missing ({error}); its samples are not counted.")
    return total, per_query


def read_balance_cap(summary: RunSummary) -> None:
    stats = summary.stage_stats.get("balanced", {})
    cap = stats.get("cap")
    if isinstance(cap, (int, float)):
        summary.balance_cap = int(cap)
    if isinstance(stats.get("mode"), str):
        summary.balance_mode = stats["mode"]
    if isinstance(stats.get("oversample"), (int, float)):
        summary.balance_oversample = float(stats["oversample"])


def read_final_balance(summary: RunSummary) -> tuple[int | None, dict[int, int] | None]:
    """Read the outputs of the final balancing pass, and return the samples it kept with their per-query counts.

    Runs with stages run one by one, and runs written before the final pass existed,
    have no final_balance folder and get no note.
    """
    folder = summary.run_dir / "final_balance"
    stats = summary.stage_stats.get("final_balance", {})
    summary.final_balance_ran = folder.is_dir() and (bool(stats) or (folder / "query_counts.parquet").is_file())
    if not summary.final_balance_ran:
        return None, None
    if isinstance(stats.get("mode"), str):
        summary.final_balance_mode = stats["mode"]
    if isinstance(stats.get("cap"), int):
        summary.final_balance_cap = stats["cap"]

    counts = read_final_counts(folder / "query_counts.parquet", summary.notes)
    kept = stats.get("counts", {}).get("kept") if isinstance(stats.get("counts"), dict) else None
    return (kept if isinstance(kept, int) else None), (None if counts is None else counts[1])


def read_train(summary: RunSummary) -> None:
    folder = summary.run_dir / "train"
    path = folder / "result.json"
    if not path.is_file():
        summary.notes.append("train/result.json not found, so the train stage did not run in this folder.")
        return
    try:
        result = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        summary.notes.append(f"train/result.json: unreadable ({error}).")
        result = None
    if result is not None and not isinstance(result, dict):
        summary.notes.append(f"train/result.json: expected a JSON object, found {type(result).__name__}.")
        result = None
    summary.train_result = result
    if (folder / "loss.png").is_file():
        summary.loss_plot = folder / "loss.png"


def collect_run(run_dir: str | Path) -> RunSummary:
    """Read every stage output of ``run_dir`` that exists.

    Missing or unreadable stage outputs become notes. Raises FileNotFoundError when ``run_dir``
    does not exist.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    summary = RunSummary(run_dir=run_dir)

    read_stage_stats(summary)
    read_run_record(summary)
    read_queries(summary)
    candidates = count_rows(summary, "candidates")
    if candidates is None:
        summary.notes.append("candidates/: no part-*.parquet files, so the harvest stage did not run in this folder.")
    matched_table = read_columns(summary, "matched", ["query_ids"])
    balanced_table = read_columns(summary, "balanced", ["query_ids"])
    read_balance_cap(summary)
    fetched_table = read_columns(summary, "fetched", ["key", "status", "caption"], optional={"query_ids": QUERY_IDS_TYPE})
    filtered_table = read_columns(summary, "filtered", ["key", "keep", "reason", "language", "caption_words"])
    fetched_ok = read_fetch(summary, fetched_table)
    kept = read_filter(summary, filtered_table)
    final_kept, final_counts = read_final_balance(summary)
    in_shards, shard_counts = read_shards(summary)
    read_train(summary)

    # Fetched files written before the query_ids column existed give no per-query counts.
    survivors = None
    if fetched_table is not None and filtered_table is not None and fetched_table.column("query_ids").null_count < fetched_table.num_rows:
        survivors = survivor_counts(fetched_table, filtered_table)
    steps = [
        (MATCHED_STEP, per_query_counts(summary, "matched", matched_table)),
        (BALANCED_STEP, per_query_counts(summary, "balanced", balanced_table)),
        (SURVIVORS_STEP, survivors),
        (FINAL_STEP, final_counts),
        (SHARDS_STEP, shard_counts),
    ]
    summary.query_steps = [QueryStep(label, counts) for label, counts in steps if counts is not None]
    summary.top_queries = top_query_ids(summary.query_steps)
    summary.query_names = read_query_names(
        summary.run_dir / "matched" / "query_counts.parquet", summary.query_list, summary.top_queries, summary.notes
    )

    summary.funnel = [
        FunnelStep("candidates", candidates),
        FunnelStep("matched", None if matched_table is None else matched_table.num_rows),
        FunnelStep("balanced", None if balanced_table is None else balanced_table.num_rows),
        FunnelStep("fetched ok", fetched_ok),
        FunnelStep("kept after filter", kept),
        FunnelStep("in shards", in_shards),
    ]
    if summary.final_balance_ran:
        summary.funnel.insert(-1, FunnelStep("after final balance", final_kept))
    logger.info("collected %s: %d note(s)", run_dir, len(summary.notes))
    return summary
