"""Tests of whole-word query matching and MetaCLIP balancing."""

from __future__ import annotations

import random

import pytest

from wit_builder.match.balance import keep_probability, should_keep, uniform_draw
from wit_builder.match.stage import balance_folder, match_folder
from wit_builder.match.matcher import QueryMatcher, normalize_for_matching
from wit_builder.parquet import read_records, write_records
from wit_builder.records import Candidate, MatchedCandidate, candidate_id


def test_normalize_splits_punctuation():
    assert normalize_for_matching("A dog, running.") == " A dog , running . "


def test_matcher_whole_words_only():
    matcher = QueryMatcher(["York", "New York", "dog"])
    assert matcher.match("I love New York.") == [0, 1]
    assert matcher.match("Yorkshire terriers") == []
    assert matcher.match("hotdog stand") == []


def test_matcher_case_sensitive_by_default():
    matcher = QueryMatcher(["Apple"])
    assert matcher.match("an apple a day") == []
    assert matcher.match("Apple released") == [0]


def test_matcher_ignore_case_shares_keys():
    matcher = QueryMatcher(["Apple", "apple"], ignore_case=True)
    assert matcher.match("APPLE pie") == [0, 1]


def test_matcher_overlapping_queries():
    matcher = QueryMatcher(["new york", "york city", "city"])
    assert matcher.match("a new york city street") == [0, 1, 2]


def test_matcher_hyphen_stays_inside_word():
    matcher = QueryMatcher(["known"])
    assert matcher.match("a well-known place") == []
    assert matcher.match("(known)") == [0]


def test_matcher_non_latin_and_empty():
    matcher = QueryMatcher(["", "猫", "chien"])
    assert matcher.match("le chien dort") == [2]
    assert matcher.match("猫 が いる") == [1]
    assert matcher.match("") == []


def test_keep_probability_rule():
    counts = {0: 10, 1: 1000}
    assert keep_probability([0], counts, cap=100) == 1.0
    assert keep_probability([1], counts, cap=100) == pytest.approx(0.1)
    assert keep_probability([1, 1], {1: 200}, cap=100) == pytest.approx(0.75)
    assert keep_probability([], counts, cap=100) == 0.0
    with pytest.raises(ValueError):
        keep_probability([0], counts, cap=0)


def test_uniform_draw_seeded():
    assert uniform_draw(0, "abc") == uniform_draw(0, "abc")
    assert uniform_draw(0, "abc") != uniform_draw(1, "abc")
    assert 0.0 <= uniform_draw(-5, "abc") < 1.0


def test_balance_statistics():
    cap = 200
    rng = random.Random(0)
    counts = {0: 50, 1: 5000}
    ids_small = [f"s{i}" for i in range(50)]
    ids_large = [f"l{i}" for i in range(5000)]
    kept_small = sum(should_keep(key, [0], counts, cap, seed=3) for key in ids_small)
    kept_large = sum(should_keep(key, [1], counts, cap, seed=3) for key in ids_large)
    assert kept_small == 50
    # Binomial(5000, 0.04): mean 200, standard deviation about 13.9.
    assert 150 <= kept_large <= 250
    mixed = rng.sample(ids_large, 100)
    assert all(should_keep(key, [0, 1], counts, cap, seed=3) for key in mixed)


def _write_candidates(path, numbered_texts):
    rows = [
        Candidate(candidate_id(f"http://example.test/{i}.jpg", text), f"http://example.test/{i}.jpg", text, "alt", "http://example.test/", "test")
        for i, text in numbered_texts
    ]
    write_records(path, rows, Candidate)


def _run(tmp_path, name, partitions, texts, queries_path):
    candidates_dir = tmp_path / name / "candidates"
    numbered = list(enumerate(texts))
    size = -(-len(texts) // partitions)
    for index in range(partitions):
        _write_candidates(candidates_dir / f"part-{index:05d}.parquet", numbered[index * size : (index + 1) * size])
    match_folder(candidates_dir, queries_path, tmp_path / name / "matched", ignore_case=False)
    totals = balance_folder(tmp_path / name / "matched", tmp_path / name / "balanced", cap=30, seed=7)
    kept = []
    for part in sorted((tmp_path / name / "balanced").glob("part-*.parquet")):
        kept.extend(row.candidate_id for row in read_records(part, MatchedCandidate))
    return totals, kept


def test_balance_same_for_any_partitioning(tmp_path):
    queries_path = tmp_path / "queries.txt"
    queries_path.write_text("dog\ncat\nbird\n", encoding="utf-8")
    rng = random.Random(1)
    texts = [f"a {rng.choice(['dog', 'dog', 'dog', 'cat', 'bird', 'tree'])} number {i}" for i in range(600)]
    totals_one, kept_one = _run(tmp_path, "one", 1, texts, queries_path)
    totals_four, kept_four = _run(tmp_path, "four", 4, texts, queries_path)
    assert kept_one == kept_four
    assert totals_one["kept"] == totals_four["kept"] == len(kept_one)
    assert totals_one["matched"] < len(texts)
