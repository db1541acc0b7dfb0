"""Tests of the automaton cache: build once, load after, rebuild stale or corrupt files."""

from __future__ import annotations

import json
import logging

import pytest

from wit_builder.match import stage
from wit_builder.match.cache import cache_key, cache_path, load_or_compile, read_cache
from wit_builder.match.matcher import MATCHER_FORMAT, QueryMatcher
from wit_builder.match.stage import get_matcher, match_folder
from wit_builder.parquet import write_records
from wit_builder.records import Candidate

QUERIES = "dog\nNew York\n写真\nDog\n"


@pytest.fixture()
def queries(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_text(QUERIES, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def fresh_process_cache():
    stage._cached_matcher.cache_clear()
    yield
    stage._cached_matcher.cache_clear()


def only_cache_file(folder):
    files = sorted(folder.glob("automaton-*.pickle"))
    assert len(files) == 1, files
    return files[0]


def check_matches(matcher: QueryMatcher) -> None:
    assert matcher.match("a dog in New York") == [0, 1]
    assert matcher.match("ストック写真") == [2]
    assert matcher.match_many(["a dog in New York", None, "ストック写真"]) == [[0, 1], [], [2]]


def test_cache_written_then_loaded(tmp_path, queries, caplog):
    caplog.set_level(logging.INFO, logger="wit_builder.match.cache")

    first = QueryMatcher.from_compiled(load_or_compile(queries, False, tmp_path / "cache"))
    path = only_cache_file(tmp_path / "cache")
    second = QueryMatcher.from_compiled(load_or_compile(queries, False, tmp_path / "cache"))

    check_matches(first)
    check_matches(second)
    assert "built the automaton" in caplog.text
    assert f"loaded the automaton of queries.txt from {path}" in caplog.text


def test_cache_key_depends_on_content_and_options(tmp_path, queries):
    plain = cache_key(queries, ignore_case=False)

    assert cache_key(queries, ignore_case=True) != plain
    queries.write_text(QUERIES + "cat\n", encoding="utf-8")
    assert cache_key(queries, ignore_case=False) != plain


def test_ignore_case_cache_separate(tmp_path, queries):
    load_or_compile(queries, False, tmp_path)
    folded = QueryMatcher.from_compiled(load_or_compile(queries, True, tmp_path))

    assert len(list(tmp_path.glob("automaton-*.pickle"))) == 2
    assert folded.match("DOG") == [0]


def test_cached_automaton_keeps_variants(tmp_path, queries):
    load_or_compile(queries, True, tmp_path)
    loaded = read_cache(only_cache_file(tmp_path), cache_key(queries, ignore_case=True))

    assert loaded is not None
    assert loaded.variant_ids == {0: (3,)}
    assert QueryMatcher.from_compiled(loaded).match_many(["Dog", "dog"]) == [[0], [0]]


def test_cache_key_depends_on_format(queries, monkeypatch):
    current = cache_key(queries, ignore_case=True)
    monkeypatch.setattr("wit_builder.match.cache.MATCHER_FORMAT", MATCHER_FORMAT - 1)

    assert cache_key(queries, ignore_case=True) != current


def test_corrupt_cache_rebuilt(tmp_path, queries, caplog):
    load_or_compile(queries, False, tmp_path)
    path = only_cache_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))

    matcher = QueryMatcher.from_compiled(load_or_compile(queries, False, tmp_path))

    check_matches(matcher)
    assert "is corrupt" in caplog.text
    assert read_cache(path, cache_key(queries, False)) is not None


def test_truncated_cache_rebuilt(tmp_path, queries, caplog):
    load_or_compile(queries, False, tmp_path)
    path = only_cache_file(tmp_path)
    path.write_bytes(path.read_bytes()[:100])

    check_matches(QueryMatcher.from_compiled(load_or_compile(queries, False, tmp_path)))
    assert "rebuilding it" in caplog.text


def test_garbage_cache_rebuilt(tmp_path, queries, caplog):
    key = cache_key(queries, False)
    cache_path(tmp_path, key).write_bytes(b"\x80\x04 not a header\n")

    check_matches(QueryMatcher.from_compiled(load_or_compile(queries, False, tmp_path)))
    assert "is unreadable" in caplog.text


def test_stale_cache_rebuilt(tmp_path, queries, caplog):
    load_or_compile(queries, False, tmp_path)
    path = only_cache_file(tmp_path)
    header, payload = path.read_bytes().split(b"\n", 1)
    fields = json.loads(header)
    fields["key"] = "0" * 32
    path.write_bytes(json.dumps(fields).encode() + b"\n" + payload)

    check_matches(QueryMatcher.from_compiled(load_or_compile(queries, False, tmp_path)))
    assert "written for another query list" in caplog.text


def test_cache_holding_other_object_rebuilt(tmp_path, queries, caplog):
    import hashlib
    import pickle

    payload = pickle.dumps({"not": "compiled"})
    header = {"key": cache_key(queries, False), "digest": hashlib.blake2b(payload, digest_size=16).hexdigest()}
    cache_path(tmp_path, header["key"]).write_bytes(json.dumps(header).encode() + b"\n" + payload)

    check_matches(QueryMatcher.from_compiled(load_or_compile(queries, False, tmp_path)))
    assert "not compiled queries" in caplog.text


def test_unwritable_cache_dir_still_matches(tmp_path, queries, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")

    check_matches(QueryMatcher.from_compiled(load_or_compile(queries, False, blocker / "cache")))
    assert "could not write the automaton cache" in caplog.text


def test_get_matcher_once_per_process(tmp_path, queries):
    first = get_matcher(queries, cache_dir=tmp_path)
    second = get_matcher(queries, cache_dir=tmp_path)
    queries.write_text(QUERIES + "cat\n", encoding="utf-8")
    third = get_matcher(queries, cache_dir=tmp_path)

    assert first is second
    assert third is not first
    assert third.match("a cat") == [4]


def test_get_matcher_reads_build_folder(tmp_path):
    (tmp_path / "queries.txt").write_text(QUERIES, encoding="utf-8")

    check_matches(get_matcher(tmp_path))
    with pytest.raises(FileNotFoundError, match="query list not found"):
        get_matcher(tmp_path / "absent.txt")


def test_match_folder_keeps_one_cache(tmp_path, queries):
    candidates = tmp_path / "candidates"
    row = Candidate("a", "http://example.test/a.jpg", "a dog", "alt", "http://example.test/", "crawl")
    write_records(candidates / "part-00000.parquet", [row], Candidate)

    match_folder(candidates, queries, tmp_path / "matched", ignore_case=False)
    first = only_cache_file(tmp_path / "matched")
    queries.write_text(QUERIES + "cat\n", encoding="utf-8")
    match_folder(candidates, queries, tmp_path / "matched", ignore_case=False)
    second = only_cache_file(tmp_path / "matched")

    assert first != second
