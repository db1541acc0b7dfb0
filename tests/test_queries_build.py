"""Tests of the query build on the bundled sample dump and the shared real dumps."""

from __future__ import annotations

import argparse
import bz2
import json
import re
from collections import Counter

import pytest

from wit_builder.parquet import read_records
from wit_builder.queries import build_queries, load_queries
from wit_builder.queries.cli import add_parser
from wit_builder.queries.counting import pmi, title_query
from wit_builder.queries.dump import DumpReader
from wit_builder.queries.markup import MarkupStripper
from wit_builder.queries.tokens import has_letter, tokenize
from wit_builder.records import QueryEntry

SAMPLE_DUMP = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

# Text that only wiki markup produces. None of it may reach the counted tokens or the queries.
MARKUP_FRAGMENTS = ("{{", "}}", "{|", "|}", "[[", "]]", "<ref", "&nbsp;", "|thumb", "thumb|", "upright=", "px|")
MARKUP_TOKENS = {"jpg", "JPG", "png", "svg", "px", "thumbnail", "frameless", "cellpadding", "wikitable", "colspan", "rowspan"}


@pytest.fixture(scope="module")
def sample_build(samples_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("queries")
    result = build_queries(
        samples_dir / SAMPLE_DUMP, out_dir, min_count=20, bigram_min_count=5, pmi_threshold=8.0, progress=False
    )
    return result


@pytest.fixture(scope="module")
def sample_entries(sample_build) -> list[QueryEntry]:
    return read_records(sample_build.queries_path, QueryEntry)


@pytest.fixture(scope="module")
def sample_tokens(samples_dir) -> Counter:
    reader = DumpReader(samples_dir / SAMPLE_DUMP)
    stripper = None
    tokens: Counter = Counter()
    for page in reader:
        stripper = stripper or MarkupStripper(reader.namespaces)
        text = stripper.strip(page.text)
        for fragment in MARKUP_FRAGMENTS:
            assert fragment not in text, f"{fragment!r} left in the text of {page.title!r}"
        tokens.update(tokenize(text))
    return tokens


def test_sample_build_writes_all_files(sample_build):
    for path in (sample_build.queries_path, sample_build.text_path, sample_build.build_path, sample_build.stats_path):
        assert path.is_file(), path
    assert sample_build.out_dir.joinpath("queries.parquet") == sample_build.queries_path


def test_sample_build_counts(sample_build):
    build_info = json.loads(sample_build.build_path.read_text())
    counts = build_info["counts"]

    assert counts["pages_read"] == 206
    assert counts["articles"] == 106
    assert counts["redirects_skipped"] == 99
    assert counts["other_namespaces_skipped"] == 1
    assert counts["tokens"] == sample_build.tokens
    assert 300_000 < counts["tokens"] < 900_000
    assert counts["queries"] == counts["unigram"] + counts["bigram"] + counts["title"]
    assert 2_000 <= counts["queries"] <= 6_000
    assert build_info["parameters"]["min_count"] == 20
    assert build_info["truncated"] is False
    assert sample_build.counts == {key: counts[key] for key in ("unigram", "bigram", "title", "wordnet", "queries")}


def test_sample_stats_json(sample_build):
    stats = json.loads(sample_build.stats_path.read_text())
    assert stats["stage"] == "queries"
    assert stats["counts"]["queries"] == sample_build.counts["queries"]
    assert stats["top_queries"]["unigram"][0]["query"] == "the"
    assert stats["top_queries"]["bigram"][0]["query"] == "United States"


def test_sample_known_queries(sample_entries):
    by_query = {entry.query: entry for entry in sample_entries}

    assert "Anarchism" in by_query
    assert by_query["the"].kind == "unigram"
    assert by_query["the"].count > 10_000
    for word in ("anarchism", "philosophy", "state", "Aristotle", "Lincoln"):
        assert word in by_query, word
    assert by_query["United States"].kind == "bigram"
    assert by_query["United States"].pmi >= 8.0
    assert by_query["Appellate court"].kind == "title"


def test_sample_titles_drop_qualifier_and_disambiguation(sample_entries):
    title_queries = {entry.query for entry in sample_entries if entry.kind == "title"}
    assert all("(disambiguation)" not in query for query in title_queries)
    assert all(not query.endswith(")") for query in title_queries)
    assert title_query("Mercury (planet)") == "Mercury"


def test_sample_queries_are_clean(sample_entries):
    queries = [entry.query for entry in sample_entries]

    assert len(queries) == len(set(queries))
    for query in queries:
        assert has_letter(query), query
        assert not any(fragment in query for fragment in MARKUP_FRAGMENTS), query
        assert not re.search(r"[|{}\[\]<>=]", query), query
        assert not MARKUP_TOKENS.intersection(query.split()), query


def test_sample_counted_tokens_have_no_markup(sample_tokens):
    assert sample_tokens["the"] > 10_000
    assert not MARKUP_TOKENS.intersection(sample_tokens)
    assert not [token for token in sample_tokens if re.fullmatch(r"\d+(?:x\d+)?px", token)]
    assert sample_tokens["upright"] <= 5  # "walk upright", "ears upright": prose, not image options


def test_sample_kinds_ordered_and_sorted(sample_entries):
    kinds = [entry.kind for entry in sample_entries]
    assert kinds == sorted(kinds, key=["unigram", "bigram", "title"].index)
    for kind in ("unigram", "bigram", "title"):
        counts = [entry.count for entry in sample_entries if entry.kind == kind]
        assert counts == sorted(counts, reverse=True), kind


def test_sample_unigram_threshold(sample_entries):
    unigrams = [entry for entry in sample_entries if entry.kind == "unigram"]
    assert min(entry.count for entry in unigrams) >= 20
    bigrams = [entry for entry in sample_entries if entry.kind == "bigram"]
    assert min(entry.count for entry in bigrams) >= 5
    assert min(entry.pmi for entry in bigrams) >= 8.0


def test_unigrams_match_counted_tokens(sample_entries, sample_tokens):
    unigrams = {entry.query: entry.count for entry in sample_entries if entry.kind == "unigram"}
    expected = {token: count for token, count in sample_tokens.items() if count >= 20 and has_letter(token)}
    assert unigrams == expected

    frequent = [query for query, count in unigrams.items() if count >= 100]
    assert 400 <= len(frequent) <= 600


def test_load_queries_from_every_form(sample_build):
    from_parquet = load_queries(sample_build.queries_path)
    assert load_queries(sample_build.text_path) == from_parquet
    assert load_queries(sample_build.out_dir) == from_parquet
    assert len(from_parquet) == sample_build.counts["queries"]


def test_load_queries_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="query list not found"):
        load_queries(tmp_path / "missing.parquet")
    with pytest.raises(FileNotFoundError):
        load_queries(tmp_path)


def test_pmi_formula():
    assert pmi(10, 10, 10, 100) == pytest.approx(3.321928, rel=1e-6)
    assert pmi(1, 10, 10, 100) == 0.0


def test_invalid_parameters_raise(samples_dir, tmp_path):
    with pytest.raises(ValueError, match="min_count"):
        build_queries(samples_dir / SAMPLE_DUMP, tmp_path, min_count=0)
    with pytest.raises(ValueError, match="max_pages"):
        build_queries(samples_dir / SAMPLE_DUMP, tmp_path, max_pages=0)


def test_truncated_dump_build(samples_dir, tmp_path):
    xml = bz2.decompress((samples_dir / SAMPLE_DUMP).read_bytes())
    cut = xml.index(b"<title>Autism</title>") + 20_000
    dump = tmp_path / "cut.xml"
    dump.write_bytes(xml[:cut])

    result = build_queries(dump, tmp_path / "out", min_count=5, bigram_min_count=5, progress=False)

    assert result.truncated
    assert result.articles == 1
    assert "Anarchism" in load_queries(result.queries_path)
    assert json.loads(result.build_path.read_text())["truncated"] is True


def test_no_titles_no_bigrams(samples_dir, tmp_path):
    result = build_queries(
        samples_dir / SAMPLE_DUMP, tmp_path, min_count=50, include_titles=False, include_bigrams=False,
        max_pages=10, progress=False,
    )
    assert result.counts["title"] == 0
    assert result.counts["bigram"] == 0
    assert result.articles == 10


def test_cli_build_and_stats(samples_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="wit")
    add_parser(parser.add_subparsers(dest="command"))
    out_dir = tmp_path / "cli"

    args = parser.parse_args([
        "queries", "build", str(samples_dir / SAMPLE_DUMP), "--out", str(out_dir), "--min-count", "10",
        "--bigram-min-count", "3", "--pmi-threshold", "6", "--max-pages", "5", "--no-progress",
    ])
    assert args.func(args) == 0
    assert "queries.parquet" in capsys.readouterr().out

    args = parser.parse_args(["queries", "stats", str(out_dir), "--top", "3"])
    assert args.func(args) == 0
    output = capsys.readouterr().out
    assert "articles: 5" in output
    assert "top unigram queries:" in output
    assert "top bigram queries:" in output
    assert "  the  (count" in output


@pytest.mark.parametrize(
    ("name", "expected_titles", "absent_tokens"),
    [
        ("enwiki-20250201-tiny_dump-70pages.xml.bz2", {"Anarchism", "Albedo", "Abraham Lincoln"}, MARKUP_TOKENS),
        (
            "enwiki-table-markup.xml.bz2",
            {"Constructive vote of no confidence", "Economy of Estonia", "Brahui language"},
            MARKUP_TOKENS | {"FFDEAD", "FFF8DC", "style", "align", "sortable"},
        ),
    ],
)
def test_shared_dump_builds(shared_data, tmp_path, name, expected_titles, absent_tokens):
    result = build_queries(shared_data / "wikipedia" / name, tmp_path, min_count=1, bigram_min_count=2, progress=False)
    entries = read_records(result.queries_path, QueryEntry)
    queries = {entry.query for entry in entries}

    assert expected_titles <= queries
    assert not absent_tokens.intersection(queries)
    assert not [query for query in queries if re.search(r"[|{}\[\]=]", query)]
    assert not result.truncated


def test_build_without_articles(tmp_path):
    dump = tmp_path / "redirects.xml"
    dump.write_text(
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/">'
        "<page><title>Fox</title><ns>0</ns><id>1</id><redirect title=\"Red fox\" />"
        "<revision><id>2</id><text>#REDIRECT [[Red fox]]</text></revision></page></mediawiki>",
        encoding="utf-8",
    )

    result = build_queries(dump, tmp_path / "out", min_count=1, progress=False)

    assert result.counts["queries"] == 0
    assert result.redirects_skipped == 1
    assert load_queries(result.queries_path) == []
    assert load_queries(result.text_path) == []
