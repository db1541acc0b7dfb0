"""Tests of counters that spill sorted runs to disk, their k-way merge and the sorted join."""

from __future__ import annotations

import gzip
import random
from collections import Counter

import pytest

from wit_builder.queries.spill import SpillCounter, join_sorted, merge_runs, read_run, remove_runs

# Letters from several scripts, a space, and characters that are line breaks to
# str.splitlines() but not to a run file, which splits lines on "\n" only.
ALPHABET = list("ab ") + ["é", "ß", "Ω", "ж", "한", "日", "本", "\u0301", "😀", "\r", "\x85", "\u2028", "\x0b", "\x00"]


def random_keys(rng: random.Random, count: int) -> list[str]:
    keys = []
    for _ in range(count):
        length = rng.choice([0, 1, 1, 2, 3, 5, 8])
        keys.append("".join(rng.choice(ALPHABET) for _ in range(length)))
    return keys


def test_spill_counter_matches_counter(tmp_path):
    rng = random.Random(7)
    keys = random_keys(rng, 20_000)
    counter = SpillCounter(tmp_path, "words", max_entries=97)

    for start in range(0, len(keys), 13):
        counter.update(keys[start : start + 13])
    counter.add("weighted", 1_000)
    counter.add("weighted", 5)
    runs = counter.finish()

    expected = Counter(keys)
    expected["weighted"] += 1_005
    merged = list(merge_runs(runs))
    assert len(runs) > 20
    assert dict(merged) == dict(expected)
    assert [key for key, _count in merged] == sorted(expected)
    assert counter.spilled_entries >= len(expected)


def test_prefix_keys_merge_in_order(tmp_path):
    # Keys that are prefixes of one another, spread over the runs in different mixes.
    keys = ["", "a", "a ", "a b", "ab", "abc", "abc\x00", "abcd", "b", "é", "éa"]
    runs = []
    for number in range(6):
        counter = SpillCounter(tmp_path, f"part{number}", max_entries=3)
        for index, key in enumerate(keys):
            if (index + number) % 2 == 0:
                counter.add(key, index + 1)
        runs.extend(counter.finish())

    expected: Counter = Counter()
    for number in range(6):
        for index, key in enumerate(keys):
            if (index + number) % 2 == 0:
                expected[key] += index + 1
    assert list(merge_runs(runs)) == sorted(expected.items())


def test_runs_from_several_counters(tmp_path):
    rng = random.Random(11)
    expected: Counter = Counter()
    runs = []
    for number in range(5):
        keys = random_keys(rng, 3_000)
        expected.update(keys)
        counter = SpillCounter(tmp_path / f"worker{number}", "unigrams", max_entries=rng.randint(1, 400))
        counter.update(keys)
        runs.extend(counter.finish())

    assert dict(merge_runs(runs)) == dict(expected)


def test_max_entries_one_spills_every_key(tmp_path):
    counter = SpillCounter(tmp_path, "words", max_entries=1)
    for key in ["b", "a", "b", "c"]:
        counter.add(key)
    runs = counter.finish()

    assert len(runs) == 4
    assert list(merge_runs(runs)) == [("a", 1), ("b", 2), ("c", 1)]


def test_run_file_is_sorted_gzip_text(tmp_path):
    counter = SpillCounter(tmp_path, "titles")
    counter.update(["Zebra", "apple", "Äpfel", "Zebra"])
    (run,) = counter.finish()

    with gzip.open(run, "rt", encoding="utf-8") as lines:
        assert lines.read() == "Zebra\t2\napple\t1\nÄpfel\t1\n"
    assert list(read_run(run)) == [("Zebra", 2), ("apple", 1), ("Äpfel", 1)]
    assert not list(tmp_path.glob(".*.tmp"))


def test_empty_counter_writes_no_run(tmp_path):
    counter = SpillCounter(tmp_path / "never-made", "words")
    assert counter.spill() is None
    assert counter.finish() == []
    assert list(merge_runs([])) == []


def test_invalid_max_entries_raises(tmp_path):
    with pytest.raises(ValueError, match="max_entries"):
        SpillCounter(tmp_path, "words", max_entries=0)


def test_remove_runs(tmp_path):
    counter = SpillCounter(tmp_path, "words", max_entries=1)
    counter.update(["a"])
    counter.update(["b"])
    runs = counter.finish()

    remove_runs(runs + [tmp_path / "already-gone.run.gz"])

    assert not any(path.exists() for path in runs)


def test_join_sorted_keeps_left_keys():
    left = iter([("a", 1), ("b", 2), ("d", 4), ("f", 6)])
    right = iter([("0", 9), ("b", 20), ("c", 30), ("d", 40), ("z", 99)])

    assert list(join_sorted(left, right)) == [("a", 1, 0), ("b", 2, 20), ("d", 4, 40), ("f", 6, 0)]


def test_join_sorted_empty_sides():
    assert list(join_sorted(iter([("a", 1)]), iter([]))) == [("a", 1, 0)]
    assert list(join_sorted(iter([]), iter([("a", 1)]))) == []


def test_join_sorted_matches_dicts(tmp_path):
    rng = random.Random(3)
    left = Counter(random_keys(rng, 2_000))
    right = Counter(random_keys(rng, 2_000))
    left_counter = SpillCounter(tmp_path, "left", max_entries=50)
    right_counter = SpillCounter(tmp_path, "right", max_entries=70)
    for key, count in left.items():
        left_counter.add(key, count)
    for key, count in right.items():
        right_counter.add(key, count)

    joined = list(join_sorted(merge_runs(left_counter.finish()), merge_runs(right_counter.finish())))

    assert joined == [(key, left[key], right.get(key, 0)) for key in sorted(left)]


def test_merge_runs_in_groups_past_open_limit(tmp_path):
    counter = SpillCounter(tmp_path, "words", max_entries=7)
    expected = Counter()
    rng = random.Random(3)
    for _ in range(3_000):
        key = f"w{rng.randint(0, 200)}"
        counter.add(key)
        expected[key] += 1
    runs = counter.finish()

    merged = dict(merge_runs(runs, max_open=5))

    assert len(runs) > 25
    assert merged == dict(expected)
    assert not list(tmp_path.glob("merged-*"))
