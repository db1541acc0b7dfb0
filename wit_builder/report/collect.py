"""Gather the figures of a run folder for the report, noting stages that are missing or unreadable."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_builder.parquet import list_parts
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

#: Stage folders of a run in pipeline order.
STAGES = ("queries", "candidates", "matched", "balanced", "fetched", "filtered", "final_balance", "shards", "train")


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
    matched_query_counts: list[int] | None = None
    balanced_query_counts: list[int] | None = None
    survivor_query_counts: list[int] | None = None
    final_query_counts: list[int] | None = None
    balance_cap: int | None = None
    balance_mode: str | None = None
    balance_oversample: float | None = None
    shard_files: list[Path] = field(default_factory=list)
    shard_bytes: int = 0
    train_result: dict | None = None
    loss_plot: Path | None = None


def read_columns(summary: RunSummary, stage: str, columns: list[str]) -> pa.Table | None:
    """Concatenate ``columns`` of a stage's part files, or return None and add a note.

    Unreadable part files are skipped with a note, so one bad file does not hide the rest.
    """
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
            tables.append(pq.read_table(part, columns=columns))
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


def per_query_counts(summary: RunSummary, stage: str, table: pa.Table | None) -> list[int] | None:
    """Return the number of rows that list each query id, in descending order."""
    if table is None:
        return None
    column = table.column("query_ids")
    if not pa.types.is_list(column.type):
        summary.notes.append(f"{stage}/: query_ids has type {column.type}, expected a list of ints; per-query counts skipped.")
        return None
    query_ids = pc.list_flatten(column)
    if len(query_ids) == 0:
        return []
    counts = pc.value_counts(query_ids).field("counts").to_pylist()
    return sorted(counts, reverse=True)


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


def read_queries(summary: RunSummary) -> None:
    path = summary.run_dir / "queries" / "queries.parquet"
    if not path.is_file():
        summary.notes.append("queries/queries.parquet not found, so the query stage did not run in this folder.")
        return
    try:
        kinds = pq.read_table(path, columns=["kind"]).column("kind").to_pylist()
    except (pa.ArrowException, OSError, KeyError) as error:
        summary.notes.append(f"queries/queries.parquet: unreadable ({error}).")
        return
    summary.query_kinds = Counter(kinds)


def read_fetch(summary: RunSummary) -> int | None:
    """Count fetch statuses and caption word counts, and return the number of ok fetches."""
    table = read_columns(summary, "fetched", ["status", "caption"])
    if table is None:
        return None
    statuses = table.column("status").to_pylist()
    summary.fetch_statuses = Counter(statuses)
    for caption, status in zip(table.column("caption").to_pylist(), statuses):
        if status == FetchStatus.OK.value and caption is not None:
            summary.caption_words_fetched.append(len(caption.split()))
    return summary.fetch_statuses.get(FetchStatus.OK.value, 0)


def read_filter(summary: RunSummary) -> int | None:
    """Count filter reasons, languages and caption lengths, and return the number of kept samples."""
    table = read_columns(summary, "filtered", ["keep", "reason", "language", "caption_words"])
    if table is None:
        return None
    keep = table.column("keep").to_pylist()
    reasons = table.column("reason").to_pylist()
    words = table.column("caption_words").to_pylist()
    summary.languages = Counter(table.column("language").to_pylist())
    summary.filter_reasons = Counter(reason or "unknown" for reason, kept in zip(reasons, keep) if not kept)
    summary.caption_words_kept = [count for count, kept in zip(words, keep) if kept and count is not None]
    return sum(1 for kept in keep if kept)


def read_shards(summary: RunSummary) -> int | None:
    """List the tar shards and return the number of samples in them."""
    folder = summary.run_dir / "shards"
    summary.shard_files = sorted(folder.glob("*.tar"))
    if not summary.shard_files:
        summary.notes.append("shards/: no .tar files, so the shard writer did not run or has not finished.")
        return None
    summary.shard_bytes = sum(path.stat().st_size for path in summary.shard_files)

    total = 0
    for shard in summary.shard_files:
        metadata = shard.with_suffix(".parquet")
        try:
            total += pq.ParquetFile(metadata).metadata.num_rows
        except (pa.ArrowException, OSError) as error:
            summary.notes.append(f"shards/{metadata.name}: unreadable or missing ({error}); its samples are not counted.")
    return total


def read_balance_cap(summary: RunSummary) -> None:
    stats = summary.stage_stats.get("balanced", {})
    cap = stats.get("cap")
    if isinstance(cap, (int, float)):
        summary.balance_cap = int(cap)
    if isinstance(stats.get("mode"), str):
        summary.balance_mode = stats["mode"]
    if isinstance(stats.get("oversample"), (int, float)):
        summary.balance_oversample = float(stats["oversample"])


def read_final_balance(summary: RunSummary) -> int | None:
    """Read the per-query counts of the final balancing pass and return the samples it kept.

    Runs written before the final pass existed have no final_balance folder, and get no note.
    """
    path = summary.run_dir / "final_balance" / "query_counts.parquet"
    if not path.is_file():
        return None
    try:
        table = pq.read_table(path, columns=["survivors", "kept"])
    except (pa.ArrowException, OSError, KeyError) as error:
        summary.notes.append(f"final_balance/query_counts.parquet: unreadable ({error}).")
        return None
    survivors = table.column("survivors").to_pylist()
    kept = table.column("kept").to_pylist()
    summary.survivor_query_counts = sorted((count for count in survivors if count), reverse=True)
    summary.final_query_counts = sorted((count for count in kept if count), reverse=True)

    counts = summary.stage_stats.get("final_balance", {}).get("counts")
    total = counts.get("kept") if isinstance(counts, dict) else None
    return total if isinstance(total, int) else None


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
    read_queries(summary)
    candidates = count_rows(summary, "candidates")
    if candidates is None:
        summary.notes.append("candidates/: no part-*.parquet files, so the harvest stage did not run in this folder.")
    matched_table = read_columns(summary, "matched", ["query_ids"])
    balanced_table = read_columns(summary, "balanced", ["query_ids"])
    summary.matched_query_counts = per_query_counts(summary, "matched", matched_table)
    summary.balanced_query_counts = per_query_counts(summary, "balanced", balanced_table)
    read_balance_cap(summary)
    fetched_ok = read_fetch(summary)
    kept = read_filter(summary)
    final_kept = read_final_balance(summary)
    in_shards = read_shards(summary)
    read_train(summary)

    summary.funnel = [
        FunnelStep("candidates", candidates),
        FunnelStep("matched", None if matched_table is None else matched_table.num_rows),
        FunnelStep("balanced", None if balanced_table is None else balanced_table.num_rows),
        FunnelStep("fetched ok", fetched_ok),
        FunnelStep("kept after filter", kept),
        FunnelStep("in shards", in_shards),
    ]
    if final_kept is not None:
        summary.funnel.insert(-1, FunnelStep("after final balance", final_kept))
    logger.info("collected %s: %d note(s)", run_dir, len(summary.notes))
    return summary
