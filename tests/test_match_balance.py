"""Statistical tests of the balance stage, MetaCLIP and strict modes, on Zipf-like query counts.

Query q has about HEAD_COUNT / (q + 1)^1.2 candidates, so with CAP = 60 about 25 of
the 400 queries are over the cap and the rest are under it. Most candidates match
one query. Some match a head query and a tail query, and some match two head queries.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from wit_builder.match import strict
from wit_builder.match.balance import rank_hash
from wit_builder.match.balance_stage import CREDIT_COLUMN, balance_folder, balance_partition, pass_cap
from wit_builder.match.stage import reduce_query_counts
from wit_builder.match.strict import LowestRanks, credit_query
from wit_builder.parquet import write_records
from wit_builder.records import MatchedCandidate

QUERY_COUNT = 400
HEAD_COUNT = 3000
CAP = 60
SEED = 11


@dataclass
class Synthetic:
    """Candidate ids with their query ids, and the per-query counts over all of them."""

    query_ids: dict[str, list[int]]
    counts: Counter


def zipf_candidates(seed: int = 0) -> Synthetic:
    rng = random.Random(seed)
    query_ids: dict[str, list[int]] = {}
    for query in range(QUERY_COUNT):
        for index in range(max(1, int(HEAD_COUNT / (query + 1) ** 1.2))):
            query_ids[f"q{query}-{index}"] = [query]
    for index in range(400):
        head, tail = rng.randrange(10), rng.randrange(100, QUERY_COUNT)
        query_ids[f"pair{index}"] = [head, tail]
    for index in range(300):
        first, second = rng.sample(range(10), 2)
        query_ids[f"heads{index}"] = sorted([first, second])
    counts = Counter(query for ids in query_ids.values() for query in ids)
    return Synthetic(query_ids, counts)


def write_matched(folder: Path, synthetic: Synthetic, partitions: int, seed: int = 0) -> Path:
    """Write the candidates to ``partitions`` matched parts in a shuffled order, with their reduced counts."""
    rng = random.Random(seed)
    keys = list(synthetic.query_ids)
    rng.shuffle(keys)
    parts: list[list[MatchedCandidate]] = [[] for _ in range(partitions)]
    for key in keys:
        row = MatchedCandidate(key, f"http://example.test/{key}.jpg", key, "alt", "http://example.test/", "crawl", query_ids=synthetic.query_ids[key])
        parts[rng.randrange(partitions)].append(row)
    for index, rows in enumerate(parts):
        write_records(folder / f"part-{index:05d}.parquet", rows, MatchedCandidate)
    queries = folder.parent / "queries.txt"
    queries.write_text("".join(f"query{query}\n" for query in range(QUERY_COUNT)), encoding="utf-8")
    reduce_query_counts(folder, queries)
    return folder


def read_balanced(folder: Path) -> dict[str, int | None]:
    """Return {candidate id: credited query id, or None without credits} of a balanced folder."""
    kept: dict[str, int | None] = {}
    for part in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(part)
        credits = table.column(CREDIT_COLUMN).to_pylist() if CREDIT_COLUMN in table.column_names else [None] * table.num_rows
        for key, credit in zip(table.column("candidate_id").to_pylist(), credits):
            assert key not in kept
            kept[key] = credit
    return kept


def run_balance(tmp_path: Path, synthetic: Synthetic, partitions: int, mode: str, oversample: float = 1.0) -> dict[str, int | None]:
    run = tmp_path / f"{mode}-{partitions}-{oversample}"
    matched = write_matched(run / "matched", synthetic, partitions, seed=partitions)
    balance_folder(matched, run / "balanced", cap=CAP, seed=SEED, mode=mode, oversample=oversample)
    return read_balanced(run / "balanced")


def strict_reference(query_ids: dict[str, list[int]], counts: Counter, cap: int, seed: int) -> dict[str, int]:
    """Strict balancing written directly from its definition: S_q is q's cap lowest-ranked candidates."""
    rank = {key: rank_hash(seed, key) for key in query_ids}
    members = defaultdict(list)
    for key, ids in query_ids.items():
        for query in ids:
            members[query].append(key)
    lowest = defaultdict(set)
    for query, keys in members.items():
        lowest[query] = set(sorted(keys, key=rank.__getitem__)[:cap])
    credited = {}
    for key, ids in query_ids.items():
        eligible = [query for query in ids if key in lowest[query]]
        if eligible:
            credited[key] = min(eligible, key=lambda query: (counts[query], query))
    return credited


@pytest.fixture(scope="module")
def synthetic() -> Synthetic:
    return zipf_candidates()


def test_synthetic_has_head_and_tail(synthetic):
    over = [query for query, count in synthetic.counts.items() if count > CAP]

    assert 15 <= len(over) <= 40
    assert max(synthetic.counts.values()) > 40 * CAP
    assert sum(1 for count in synthetic.counts.values() if count <= CAP) > 300


def test_metaclip_keeps_queries_under_cap(tmp_path, synthetic):
    kept = run_balance(tmp_path, synthetic, 1, "metaclip")

    for key, ids in synthetic.query_ids.items():
        if any(synthetic.counts[query] <= CAP for query in ids):
            assert key in kept, key


def test_metaclip_over_cap_near_expectation(tmp_path, synthetic):
    kept = run_balance(tmp_path, synthetic, 1, "metaclip")

    total_expected = total_variance = total_kept = 0.0
    for query, count in synthetic.counts.items():
        if count <= CAP:
            continue
        single = [key for key, ids in synthetic.query_ids.items() if ids == [query]]
        probability = CAP / count
        expected = len(single) * probability
        deviation = math.sqrt(len(single) * probability * (1 - probability))
        found = sum(1 for key in single if key in kept)
        # 4.5 standard deviations: about 7e-6 per query under the binomial model.
        assert abs(found - expected) <= 4.5 * deviation + 1, (query, found, expected)
        total_expected += expected
        total_variance += deviation**2
        total_kept += found
    assert abs(total_kept - total_expected) <= 4 * math.sqrt(total_variance)


def test_metaclip_oversample_scales_cap(tmp_path, synthetic):
    plain = run_balance(tmp_path, synthetic, 1, "metaclip")
    wider = run_balance(tmp_path, synthetic, 1, "metaclip", oversample=1.5)
    head = [key for key, ids in synthetic.query_ids.items() if ids == [0]]

    assert set(plain) <= set(wider)
    assert abs(sum(key in wider for key in head) - 1.5 * sum(key in plain for key in head)) < 0.3 * 1.5 * CAP


@pytest.mark.parametrize("mode", ["metaclip", "strict"])
def test_balance_same_for_1_3_7_partitions(tmp_path, synthetic, mode):
    one = run_balance(tmp_path, synthetic, 1, mode)
    three = run_balance(tmp_path, synthetic, 3, mode)
    seven = run_balance(tmp_path, synthetic, 7, mode)

    assert one == three
    assert one == seven
    assert 0 < len(one) < len(synthetic.query_ids)


def test_strict_credits_at_most_cap(tmp_path, synthetic):
    kept = run_balance(tmp_path, synthetic, 3, "strict")
    credits = Counter(kept.values())

    assert max(credits.values()) == CAP
    for key, credit in kept.items():
        assert credit in synthetic.query_ids[key]


def test_strict_exact_for_single_query_candidates(tmp_path, synthetic):
    kept = run_balance(tmp_path, synthetic, 3, "strict")
    credits = Counter(kept.values())
    shared = {query for ids in synthetic.query_ids.values() if len(ids) > 1 for query in ids}

    checked = Counter()
    for query, count in synthetic.counts.items():
        if query not in shared:
            assert credits[query] == min(count, CAP), query
            checked[count > CAP] += 1
    assert checked[True] >= 10
    assert checked[False] >= 100


def test_strict_keeps_queries_under_cap(tmp_path, synthetic):
    kept = run_balance(tmp_path, synthetic, 3, "strict")

    for key, ids in synthetic.query_ids.items():
        if any(synthetic.counts[query] <= CAP for query in ids):
            assert key in kept, key


def test_strict_matches_definition(tmp_path, synthetic):
    kept = run_balance(tmp_path, synthetic, 7, "strict")

    assert kept == strict_reference(synthetic.query_ids, synthetic.counts, CAP, SEED)


def test_strict_oversample_cap(tmp_path, synthetic):
    kept = run_balance(tmp_path, synthetic, 3, "strict", oversample=1.5)

    assert max(Counter(kept.values()).values()) == pass_cap(CAP, 1.5) == 90
    assert kept == strict_reference(synthetic.query_ids, synthetic.counts, 90, SEED)


def test_strict_stats_record_shortfall(tmp_path, synthetic):
    import json

    run_balance(tmp_path, synthetic, 1, "strict")
    stats = json.loads((tmp_path / "strict-1-1.0" / "balanced" / "stats.json").read_text())

    assert stats["mode"] == "strict"
    assert stats["counts"]["max_credited"] == CAP
    assert stats["counts"]["queries_short"] >= 1
    assert stats["retained_rank_pairs"] <= sum(min(count, CAP) for count in synthetic.counts.values())


def test_lowest_ranks_merge_order_free(monkeypatch):
    rng = np.random.default_rng(3)
    queries = rng.integers(0, 50, size=20_000)
    ranks = rng.integers(0, 2**63, size=20_000, dtype=np.uint64)
    whole = LowestRanks(7)
    whole.add(queries, ranks)

    monkeypatch.setattr(strict, "MERGE_PAIRS", 16)
    pieces = LowestRanks(7)
    for start in range(0, 20_000, 333):
        pieces.add(queries[start : start + 333], ranks[start : start + 333])

    assert pieces.thresholds() == whole.thresholds()
    expected = {int(query): int(np.sort(ranks[queries == query])[6]) for query in range(50)}
    assert whole.thresholds() == expected


def test_lowest_ranks_copies_count_once():
    lowest = LowestRanks(2)
    lowest.add(np.array([1, 1, 1, 2]), np.array([5, 5, 9, 4], dtype=np.uint64))

    assert lowest.thresholds() == {1: 9}


def test_credit_query_prefers_rarest():
    counts = {1: 500, 2: 30, 3: 30}

    assert credit_query(10, [1, 2, 3], {1: 100}, counts) == 2
    assert credit_query(10, [1, 3], {3: 5}, counts) == 1
    assert credit_query(200, [1], {1: 100}, counts) is None


def test_strict_needs_thresholds(tmp_path, synthetic):
    matched = write_matched(tmp_path / "matched", synthetic, 1)

    with pytest.raises(ValueError, match="needs the thresholds"):
        balance_partition(matched / "part-00000.parquet", synthetic.counts, tmp_path / "out.parquet", CAP, mode="strict")


@pytest.mark.parametrize(
    ("options", "message"),
    [({"cap": 0}, "cap must be"), ({"mode": "fair"}, "unknown balance mode"), ({"oversample": 0.5}, "oversample must be"), ({"oversample": float("inf")}, "oversample must be")],
)
def test_balance_rejects_bad_options(tmp_path, synthetic, options, message):
    matched = write_matched(tmp_path / "matched", synthetic, 1)
    arguments = {"cap": CAP, "seed": 0, "mode": "metaclip", "oversample": 1.0, **options}

    with pytest.raises(ValueError, match=message):
        balance_folder(matched, tmp_path / "balanced", **arguments)


def test_config_reads_balance_and_match_options(tmp_path):
    from wit_builder.pipeline.config import load_config

    path = tmp_path / "run.toml"
    path.write_text(
        '[queries]\nlist = "q.txt"\n[harvest]\nseeds = ["https://example.org/"]\n'
        '[match]\ncache_dir = "cache"\n[balance]\ncap = 50\nmode = "strict"\noversample = 1.5\n',
        encoding="utf-8",
    )

    config = load_config(path)

    assert (config.balance.mode, config.balance.oversample, config.balance.cap) == ("strict", 1.5, 50)
    assert config.match.cache_dir == tmp_path / "cache"


@pytest.mark.parametrize("table", ['mode = "fair"', "oversample = 0.9", "cap = -1"])
def test_config_rejects_bad_balance(tmp_path, table):
    from wit_builder.pipeline.config import load_config

    path = tmp_path / "run.toml"
    path.write_text(f'[queries]\nlist = "q.txt"\n[harvest]\nseeds = ["https://example.org/"]\n[balance]\n{table}\n', encoding="utf-8")

    with pytest.raises(ValueError, match=r"invalid \[balance\]"):
        load_config(path)
