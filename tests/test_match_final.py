"""Tests of the final balancing pass after simulated download failures and filtering, and of its report."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_match_balance import CAP, SEED, Synthetic, read_balanced, strict_reference, write_matched, zipf_candidates

from wit_builder.match.balance import FINAL_STREAM, rank_hash, should_keep
from wit_builder.match.balance_stage import balance_folder
from wit_builder.match.final import BALANCE_REASON, QUERY_COUNTS_FILE, final_balance
from wit_builder.parquet import read_records, write_records
from wit_builder.records import FetchResult, FetchStatus, FilterDecision
from wit_builder.report import write_report

#: Share of downloads that fail, and of fetched samples that the filter drops.
FAILURE_RATE = 0.25
FILTERED_RATE = 0.05


def fetch_fails(key: str) -> bool:
    return rank_hash(101, key) < FAILURE_RATE * 2**64


def filter_drops(key: str) -> bool:
    return rank_hash(202, key) < FILTERED_RATE * 2**64


def write_fetched_and_filtered(run: Path, kept: dict, synthetic: Synthetic, partitions: int) -> tuple[list[Path], list[Path]]:
    """Write fetched parts with simulated failures and the filter's decisions for their ok rows."""
    rng = random.Random(partitions)
    keys = sorted(kept)
    rng.shuffle(keys)
    fetched: list[list[FetchResult]] = [[] for _ in range(partitions)]
    for key in keys:
        status = FetchStatus.TIMEOUT if fetch_fails(key) else FetchStatus.OK
        result = FetchResult(key, f"http://example.test/{key}.jpg", key, status.value, query_ids=synthetic.query_ids[key])
        fetched[rng.randrange(partitions)].append(result)

    fetched_parts, decision_parts = [], []
    for index, rows in enumerate(fetched):
        name = f"part-{index:05d}.parquet"
        decisions = [
            FilterDecision(row.key, not filter_drops(row.key), "near_duplicate_caption" if filter_drops(row.key) else None, "en", 10, 2)
            for row in rows
            if row.status == FetchStatus.OK.value
        ]
        fetched_parts.append(write_records(run / "fetched" / name, rows, FetchResult))
        decision_parts.append(write_records(run / "filtered" / name, decisions, FilterDecision))
    return fetched_parts, decision_parts


def survivors_of(kept: dict, synthetic: Synthetic) -> dict[str, list[int]]:
    return {key: synthetic.query_ids[key] for key in kept if not fetch_fails(key) and not filter_drops(key)}


def read_final(folder: Path) -> set[str]:
    return {decision.key for part in sorted(folder.glob("part-*.parquet")) for decision in read_records(part, FilterDecision) if decision.keep}


def run_pipeline(tmp_path: Path, synthetic: Synthetic, mode: str, oversample: float, partitions: int = 3) -> tuple[Path, dict, set[str]]:
    run = tmp_path / f"{mode}-{oversample}-{partitions}"
    write_matched(run / "matched", synthetic, 3)
    balance_folder(run / "matched", run / "balanced", cap=CAP, seed=SEED, mode=mode, oversample=oversample)
    kept = read_balanced(run / "balanced")
    fetched_parts, decision_parts = write_fetched_and_filtered(run, kept, synthetic, partitions)
    final_balance(fetched_parts, decision_parts, run / "final_balance", CAP, SEED, mode)
    return run, kept, read_final(run / "final_balance")


@pytest.fixture(scope="module")
def synthetic() -> Synthetic:
    return zipf_candidates()


def test_strict_final_is_rule_on_survivors(tmp_path, synthetic):
    _, kept, final = run_pipeline(tmp_path, synthetic, "strict", 1.5)
    survivors = survivors_of(kept, synthetic)

    expected = strict_reference(survivors, Counter(query for ids in survivors.values() for query in ids), CAP, SEED)
    assert final == set(expected)
    assert max(Counter(expected.values()).values()) == CAP


def test_strict_final_exact_per_query(tmp_path, synthetic):
    run, kept, final = run_pipeline(tmp_path, synthetic, "strict", 1.5)
    survivors = survivors_of(kept, synthetic)
    counts = pq.read_table(run / "final_balance" / QUERY_COUNTS_FILE).to_pydict()
    credited = dict(zip(counts["query_id"], counts["credited"]))
    shared = {query for ids in synthetic.query_ids.values() if len(ids) > 1 for query in ids}
    survivor_counts = Counter(query for ids in survivors.values() for query in ids)

    assert max(credited.values()) == CAP
    full = 0
    for query, count in survivor_counts.items():
        if query not in shared:
            assert credited[query] == min(count, CAP), query
            full += count >= CAP
    assert full >= 5


def test_metaclip_final_is_rule_on_survivors(tmp_path, synthetic):
    _, kept, final = run_pipeline(tmp_path, synthetic, "metaclip", 1.5)
    survivors = survivors_of(kept, synthetic)
    counts = Counter(query for ids in survivors.values() for query in ids)

    expected = {key for key, ids in survivors.items() if should_keep(key, ids, counts, CAP, SEED, FINAL_STREAM)}
    assert final == expected
    for query, count in counts.items():
        if count <= CAP:
            assert all(key in final for key, ids in survivors.items() if query in ids)


def test_metaclip_final_near_cap(tmp_path, synthetic):
    _, kept, final = run_pipeline(tmp_path, synthetic, "metaclip", 1.5)
    survivors = survivors_of(kept, synthetic)
    counts = Counter(query for ids in survivors.values() for query in ids)

    for query in range(10, 20):
        single = [key for key, ids in survivors.items() if ids == [query]]
        if counts[query] <= CAP:
            continue
        probability = CAP / counts[query]
        expected = len(single) * probability
        deviation = (len(single) * probability * (1 - probability)) ** 0.5
        assert abs(sum(key in final for key in single) - expected) <= 4.5 * deviation + 1, query


@pytest.mark.parametrize("mode", ["metaclip", "strict"])
def test_final_same_for_1_3_7_partitions(tmp_path, synthetic, mode):
    finals = [run_pipeline(tmp_path, synthetic, mode, 1.5, partitions)[2] for partitions in (1, 3, 7)]

    assert finals[0] == finals[1] == finals[2]
    assert finals[0]


def test_oversample_fills_queries_after_failures(tmp_path, synthetic):
    full = {}
    for oversample in (1.0, 1.5):
        run, _, _ = run_pipeline(tmp_path, synthetic, "strict", oversample)
        counts = pq.read_table(run / "final_balance" / QUERY_COUNTS_FILE).to_pydict()
        full[oversample] = sum(1 for credited in counts["credited"] if credited == CAP)

    assert full[1.0] <= 2, full
    assert full[1.5] >= 6, full


def test_final_marks_dropped_decisions(tmp_path, synthetic):
    run, _, final = run_pipeline(tmp_path, synthetic, "strict", 1.5)

    for name in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        before = read_records(run / "filtered" / name, FilterDecision)
        after = read_records(run / "final_balance" / name, FilterDecision)
        assert [row.key for row in after] == [row.key for row in before]
        for old, new in zip(before, after):
            if not old.keep or new.key in final:
                assert new == old
            else:
                assert (new.keep, new.reason) == (False, BALANCE_REASON)
    stats = json.loads((run / "final_balance" / "stats.json").read_text())
    assert stats["counts"]["kept"] == len(final)
    assert stats["counts"]["max_credited"] == CAP


def test_final_without_oversample_strict_drops_nothing(tmp_path, synthetic):
    _, kept, final = run_pipeline(tmp_path, synthetic, "strict", 1.0)

    assert final == set(survivors_of(kept, synthetic))


def test_final_rejects_unpaired_decisions(tmp_path, synthetic):
    run, _, _ = run_pipeline(tmp_path, synthetic, "strict", 1.5)
    decisions = read_records(run / "filtered" / "part-00000.parquet", FilterDecision)
    write_records(run / "filtered" / "part-00000.parquet", decisions[1:], FilterDecision)
    parts = sorted((run / "fetched").glob("part-*.parquet"))

    with pytest.raises(ValueError, match="do not list the ok rows"):
        final_balance(parts, sorted((run / "filtered").glob("part-*.parquet")), run / "again", CAP, SEED, "strict")
    with pytest.raises(ValueError, match="fetched parts but"):
        final_balance(parts, parts[:1], run / "again", CAP, SEED, "strict")


def test_report_shows_three_distributions(tmp_path, synthetic):
    run, _, final = run_pipeline(tmp_path, synthetic, "metaclip", 1.5)

    text = write_report(run).read_text()

    assert "<td>matched</td>" in text
    assert "<td>first balance</td>" in text
    assert "<td>after fetch and filter</td>" in text
    assert "<td>after the final pass</td>" in text
    assert f"<td>after final balance</td><td>{len(final):,}</td>" in text
    assert "t x 1.5" in text
    assert (run / "report" / "query_counts.png").stat().st_size > 0
