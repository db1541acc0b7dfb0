"""Tests that case variants of a query count and balance as one query under ignore_case."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from wit_builder.cli import main
from wit_builder.match.balance import should_keep
from wit_builder.match.balance_stage import balance_folder, credited_counts
from wit_builder.match.final import QUERY_COUNTS_FILE, final_balance
from wit_builder.match.stage import match_folder, read_query_counts
from wit_builder.parquet import list_parts, read_records, write_records
from wit_builder.records import Candidate, FetchResult, FetchStatus, FilterDecision, MatchedCandidate, candidate_id

# "In" and "BY" fold to the keys of "in" and "by", which come first, so 0 and 2 are the
# canonical ids and 1 and 3 never appear in query_ids.
QUERIES = ["in", "In", "by", "BY", "dog"]
CAP = 10
SEED = 5


def caption_texts() -> list[str]:
    texts = [f"{'In' if i % 2 else 'in'} the park number {i}" for i in range(40)]
    texts += [f"painting {'BY' if i % 3 else 'by'} artist {i}" for i in range(30)]
    texts += [f"a dog number {i}" for i in range(6)]
    texts += [f"a photo in a frame by someone {i}" for i in range(4)]
    return texts


def write_candidates(folder: Path, texts: list[str], partitions: int = 2) -> None:
    rows = [
        Candidate(candidate_id(f"http://example.test/{i}.jpg", text), f"http://example.test/{i}.jpg", text, "alt", "http://example.test/", "test")
        for i, text in enumerate(texts)
    ]
    for index in range(partitions):
        write_records(folder / f"part-{index:05d}.parquet", rows[index::partitions], Candidate)


@pytest.fixture()
def matched(tmp_path: Path) -> Path:
    queries = tmp_path / "queries.txt"
    queries.write_text("".join(f"{query}\n" for query in QUERIES), encoding="utf-8")
    write_candidates(tmp_path / "candidates", caption_texts())
    match_folder(tmp_path / "candidates", queries, tmp_path / "matched", ignore_case=True, cache_dir=tmp_path / "cache")
    return tmp_path / "matched"


def matched_rows(folder: Path) -> list[MatchedCandidate]:
    return [row for part in list_parts(folder) for row in read_records(part, MatchedCandidate)]


def test_variants_emit_canonical_ids(matched):
    ids = {query_id for row in matched_rows(matched) for query_id in row.query_ids}

    assert ids == {0, 2, 4}


def test_query_counts_list_canonical_queries(matched):
    table = pq.read_table(matched / "query_counts.parquet").to_pylist()

    assert [row["query"] for row in table] == ["in", "by", "dog"]
    assert [row["count"] for row in table] == [44, 34, 6]
    assert [row["variants"] for row in table] == [["In"], ["BY"], []]
    assert read_query_counts(matched) == {0: 44, 2: 34, 4: 6}


def test_match_stats_record_merged_queries(matched):
    stats = json.loads((matched / "stats.json").read_text())

    assert stats["counts"]["queries_matched"] == 3
    assert stats["merged_queries"] == 2
    assert stats["queries"].endswith("queries.txt")


def test_metaclip_uses_one_query_probability(matched, tmp_path):
    balance_folder(matched, tmp_path / "balanced", cap=CAP, seed=SEED)

    kept = {row.candidate_id for row in matched_rows(tmp_path / "balanced")}
    counts = read_query_counts(matched)
    expected = {row.candidate_id for row in matched_rows(matched) if should_keep(row.candidate_id, row.query_ids, counts, CAP, SEED)}
    assert kept == expected
    # Counted as a second query, "In" would raise the keep probability of these rows
    # from 10/44 to 1 - (1 - 10/44)^2.
    assert sum(1 for row in matched_rows(matched) if row.query_ids == [0]) == 40


def test_strict_credits_canonical_ids_to_cap(matched, tmp_path):
    balance_folder(matched, tmp_path / "balanced", cap=CAP, seed=SEED, mode="strict")

    credited = credited_counts(list_parts(tmp_path / "balanced"))
    assert set(credited) <= {0, 2, 4}
    assert credited[4] == 6
    assert credited[0] <= CAP
    assert credited[2] <= CAP
    assert credited[0] + credited[2] >= 2 * CAP - 4


def write_survivors(run: Path, balanced: Path) -> tuple[list[Path], list[Path]]:
    """Write every balanced row as fetched ok and kept by the filter."""
    fetched_parts, decision_parts = [], []
    for part in list_parts(balanced):
        rows = read_records(part, MatchedCandidate)
        fetched = [FetchResult(row.candidate_id, row.url, row.text, FetchStatus.OK.value, query_ids=row.query_ids) for row in rows]
        decisions = [FilterDecision(row.candidate_id, True, None, "en", len(row.text), len(row.text.split())) for row in rows]
        fetched_parts.append(write_records(run / "fetched" / part.name, fetched, FetchResult))
        decision_parts.append(write_records(run / "filtered" / part.name, decisions, FilterDecision))
    return fetched_parts, decision_parts


@pytest.mark.parametrize("mode", ["metaclip", "strict"])
def test_final_pass_counts_canonical_ids(matched, tmp_path, mode):
    balance_folder(matched, tmp_path / "balanced", cap=CAP, seed=SEED, mode=mode)
    fetched_parts, decision_parts = write_survivors(tmp_path, tmp_path / "balanced")

    stats = final_balance(fetched_parts, decision_parts, tmp_path / "final_balance", CAP, SEED, mode)

    table = pq.read_table(tmp_path / "final_balance" / QUERY_COUNTS_FILE).to_pylist()
    assert {row["query_id"] for row in table} <= {0, 2, 4}
    balanced_rows = matched_rows(tmp_path / "balanced")
    survivors = {row["query_id"]: row["survivors"] for row in table}
    assert survivors[0] == sum(1 for row in balanced_rows if 0 in row.query_ids)
    if mode == "strict":
        # Same cap, same ranks and no losses, so the final pass keeps what strict
        # balancing kept. Credits can move between queries, because the final pass
        # picks the rarest query by the survivors' counts.
        credited = [row["credited"] for row in table]
        assert stats.dropped == 0
        assert sum(credited) == stats.kept == len(balanced_rows)
        assert max(credited) <= CAP


def test_balance_missing_folder_message(tmp_path, caplog):
    exit_code = main(["balance", str(tmp_path / "nonexist"), "--out", str(tmp_path / "x")])

    assert exit_code != 0
    assert f"matched folder not found: {tmp_path / 'nonexist'}" in caplog.text
    assert "query_counts.parquet" not in caplog.text


def test_match_missing_folder_message(tmp_path, caplog):
    queries = tmp_path / "queries.txt"
    queries.write_text("dog\n", encoding="utf-8")

    exit_code = main(["match", str(tmp_path / "nonexist"), "--queries", str(queries), "--out", str(tmp_path / "x")])

    assert exit_code != 0
    assert "candidates folder not found" in caplog.text


def test_old_query_counts_warn(matched, caplog):
    table = pq.read_table(matched / "query_counts.parquet").drop_columns(["variants"])
    pq.write_table(table, matched / "query_counts.parquet")

    assert read_query_counts(matched) == {0: 44, 2: 34, 4: 6}
    assert "has no variants column" in caplog.text
