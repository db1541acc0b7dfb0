"""Tests of the query build on the bundled sample dump and the shared real dumps."""

from __future__ import annotations

import argparse
import bz2
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from wit_builder.parquet import read_records
from wit_builder.queries import build_queries, load_queries
from wit_builder.queries import passes
from wit_builder.queries.articles import ArticleText
from wit_builder.queries.build import QueryParams, build_queries_from_articles, max_entries_for, read_build_info
from wit_builder.queries.cli import add_parser
from wit_builder.queries.counting import TRIM_ORDER, pmi, title_query
from wit_builder.queries.multistream import write_multistream
from wit_builder.queries.dump import DumpReader
from wit_builder.queries.markup import MarkupStripper
from wit_builder.queries.tokens import has_letter, tokenize
from wit_builder.records import QueryEntry, QueryKind

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


# Reading modes give the same list -----------------------------------------------------


def entries_of(result) -> list[tuple]:
    return [
        (entry.query, entry.kind, entry.count, entry.pmi, entry.pageviews)
        for entry in read_records(result.queries_path, QueryEntry)
    ]


def first_pages_xml(samples_dir, pages: int) -> bytes:
    """Return the sample dump's XML with only its first ``pages`` pages."""
    xml = bz2.decompress((samples_dir / SAMPLE_DUMP).read_bytes())
    starts = [match.start() for match in re.finditer(rb"  <page>", xml)]
    return xml[: starts[pages]] + b"</mediawiki>\n"


@pytest.fixture(scope="module")
def subset_dumps(samples_dir, tmp_path_factory) -> dict[str, Path]:
    """The first 80 pages of the sample (16 articles) as a single-stream .bz2, and as a multistream .bz2 with its index."""
    folder = tmp_path_factory.mktemp("subset")
    single = folder / "subset.xml.bz2"
    single.write_bytes(bz2.compress(first_pages_xml(samples_dir, 80), compresslevel=1))
    multistream = folder / "subset-multistream.xml.bz2"
    index = folder / "subset-multistream-index.txt.bz2"
    write_multistream(single, multistream, index, pages_per_stream=5)
    return {"single": single, "multistream": multistream, "index": index}


SUBSET_PARAMS = dict(min_count=5, bigram_min_count=3, pmi_threshold=6.0, progress=False)


@pytest.mark.parametrize("max_entries", [None, 50], ids=["in-memory", "spilled"])
def test_reading_modes_give_same_queries(subset_dumps, tmp_path, monkeypatch, max_entries):
    # Small batches and ranges, so each worker gets several of them.
    monkeypatch.setattr(passes, "BATCH_TEXT_BYTES", 1 << 16)
    results = {
        "inline": build_queries(subset_dumps["single"], tmp_path / "inline", max_entries=max_entries, **SUBSET_PARAMS),
        "batches": build_queries(
            subset_dumps["single"], tmp_path / "batches", workers=2, max_entries=max_entries, **SUBSET_PARAMS
        ),
        "ranges": build_queries(
            subset_dumps["multistream"],
            tmp_path / "ranges",
            index=subset_dumps["index"],
            workers=2,
            max_entries=max_entries,
            **SUBSET_PARAMS,
        ),
    }
    inline = results["inline"]
    text = inline.text_path.read_bytes()

    assert inline.counts["unigram"] > 500
    assert inline.counts["bigram"] > 50
    assert inline.counts["title"] >= 3
    for mode, result in results.items():
        assert result.text_path.read_bytes() == text, mode
        assert entries_of(result) == entries_of(inline), mode
        assert result.counts == inline.counts, mode
        assert (result.articles, result.redirects_skipped, result.tokens) == (
            inline.articles,
            inline.redirects_skipped,
            inline.tokens,
        ), mode
        assert not result.truncated, mode
        assert not (result.out_dir / ".spill").exists(), mode

    for mode, result in results.items():
        spill = read_build_info(result.out_dir)["spill"]
        if max_entries is None:
            # One run per counter and worker: four first-pass counters, one bigram counter.
            assert spill["pass_1_runs"] <= 4 * 2, mode
            assert spill["pass_2_runs"] <= 2, mode
        else:
            # A counter checks its size after each article (pass 1) or megabyte of token runs
            # (pass 2), so with 50 keys nearly every article gives a run file.
            assert spill["pass_1_runs"] > 20, mode
            assert spill["pass_2_runs"] >= 1, mode


# Trimming to a target size ------------------------------------------------------------


def test_target_size_trims_titles_first(subset_dumps, tmp_path):
    full = build_queries(subset_dumps["single"], tmp_path / "full", target_size=None, **SUBSET_PARAMS)
    counts = full.counts
    by_kind = {kind: [entry for entry in entries_of(full) if entry[1] == kind] for kind in ("unigram", "bigram", "title")}
    assert TRIM_ORDER[:2] == (QueryKind.TITLE, QueryKind.BIGRAM)

    half_titles = counts["unigram"] + counts["bigram"] + counts["title"] // 2
    trimmed = build_queries(subset_dumps["single"], tmp_path / "titles", target_size=half_titles, **SUBSET_PARAMS)
    build_info = read_build_info(trimmed.out_dir)

    assert trimmed.counts["queries"] == half_titles
    assert len(load_queries(trimmed.text_path)) == half_titles
    assert trimmed.counts["unigram"] == counts["unigram"]
    assert trimmed.counts["bigram"] == counts["bigram"]
    assert [entry for entry in entries_of(trimmed) if entry[1] == "title"] == by_kind["title"][: counts["title"] // 2]
    assert build_info["trimmed"]["title"] == counts["title"] - counts["title"] // 2
    assert build_info["before_trim"]["title"] == counts["title"]
    assert build_info["parameters"]["target_size"] == half_titles

    half_bigrams = counts["unigram"] + counts["bigram"] // 2
    trimmed = build_queries(subset_dumps["single"], tmp_path / "bigrams", target_size=half_bigrams, **SUBSET_PARAMS)

    assert trimmed.counts == {
        "unigram": counts["unigram"],
        "bigram": counts["bigram"] // 2,
        "title": 0,
        "wordnet": 0,
        "queries": half_bigrams,
    }
    # The most frequent bigrams stay.
    assert [entry for entry in entries_of(trimmed) if entry[1] == "bigram"] == by_kind["bigram"][: counts["bigram"] // 2]


# Local namespaces and the case rule through a build ------------------------------------


def wiki_page(title: str, text: str, *, ns: int = 0, page_id: int = 1, redirect: str | None = None) -> str:
    redirect_element = f'<redirect title="{redirect}" />' if redirect is not None else ""
    return (
        f"  <page>\n    <title>{title}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n    {redirect_element}\n"
        f'    <revision><id>{page_id * 10}</id><text xml:space="preserve">{text}</text></revision>\n  </page>\n'
    )


def wiki_dump(folder: Path, pages: list[str], *, case: str = "first-letter", names: dict[int, str] | None = None) -> Path:
    namespaces = "".join(f'<namespace key="{key}" case="{case}">{name}</namespace>' for key, name in (names or {}).items())
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="ko">\n'
        f"  <siteinfo><sitename>Wiki</sitename><case>{case}</case><namespaces>{namespaces}</namespaces></siteinfo>\n"
        + "".join(f"{page}" for page in pages)
        + "</mediawiki>\n"
    )
    path = folder / "dump.xml.bz2"
    path.write_bytes(bz2.compress(xml.encode("utf-8")))
    return path


def title_counts(result) -> dict[str, int]:
    return {entry.query: entry.count for entry in read_records(result.queries_path, QueryEntry) if entry.kind == "title"}


# Titles only: no unigram reaches this count, so no title is dropped as a repeat of one.
TITLES_ONLY = dict(min_count=10**9, include_bigrams=False, progress=False)

KOREAN_PAGES = [
    wiki_page(
        "고양이",
        "고양이는 작은 포유류이다. [[파일:Cat.jpg|섬네일|잠자는 고양이 사진]] [[분류:포유류]] [[개]]와 다르다.",
        page_id=1,
    ),
    wiki_page("개", "개는 포유류이다. [[고양이]]를 쫓는다. [[File:Dog.png|thumb|달리는 개 사진]]", page_id=2),
    wiki_page("파일:Cat.jpg", "저작권 설명 문서", ns=6, page_id=3),
    wiki_page("분류:포유류", "포유류 분류 문서", ns=14, page_id=4),
]


def test_korean_namespaces_through_build(tmp_path):
    dump = wiki_dump(tmp_path, KOREAN_PAGES, names={6: "파일", 14: "분류"})

    result = build_queries(dump, tmp_path / "words", min_count=1, include_bigrams=False, progress=False)
    unigrams = {entry.query for entry in read_records(result.queries_path, QueryEntry) if entry.kind == "unigram"}
    counts = read_build_info(result.out_dir)["counts"]

    # File captions stay, in the local and the English namespace.
    assert {"잠자는", "사진", "달리는", "고양이는", "개는"} <= unigrams
    # Image names, options, category links and pages of other namespaces do not.
    assert not {"Cat", "jpg", "Dog", "png", "섬네일", "thumb", "파일", "분류", "포유류", "저작권", "설명", "문서"} & unigrams
    assert counts["articles"] == 2
    assert counts["other_namespaces_skipped"] == 2

    titles = build_queries(dump, tmp_path / "titles", **TITLES_ONLY)
    assert title_counts(titles) == {"고양이": 1, "개": 1}


CASE_PAGES = [
    wiki_page("iPhone", "A phone made by Apple.", page_id=1),
    wiki_page("IPhone", "A different page.", page_id=2),
    wiki_page("Phones", "See [[iPhone]] and [[IPhone]].", page_id=3),
    wiki_page("Apple", "Maker of the [[iPhone|phone]].", page_id=4),
    wiki_page("Gadgets", "One is the [[iphone]].", page_id=5),
    wiki_page("iphone", "#REDIRECT [[iPhone]]", page_id=6, redirect="iPhone"),
]


def test_case_sensitive_titles_stay_apart(tmp_path):
    dump = wiki_dump(tmp_path, CASE_PAGES, case="case-sensitive")

    result = build_queries(dump, tmp_path / "out", **TITLES_ONLY)

    # [[iphone]] reaches "iPhone" through the redirect.
    assert title_counts(result) == {"iPhone": 3, "IPhone": 1, "Phones": 0, "Apple": 0, "Gadgets": 0}


def test_first_letter_titles_fold(tmp_path):
    pages = [
        wiki_page("IPhone", "A phone made by Apple.", page_id=2),
        wiki_page("Phones", "See [[IPhone]].", page_id=3),
        wiki_page("Apple", "Maker of the [[iPhone|phone]].", page_id=4),
        wiki_page("Gadgets", "One is the [[iphone]].", page_id=5),
    ]
    dump = wiki_dump(tmp_path, pages, case="first-letter")

    result = build_queries(dump, tmp_path / "out", **TITLES_ONLY)

    # [[IPhone]] and [[iPhone]] both reach "IPhone". [[iphone]] is "Iphone", a page this wiki lacks.
    assert title_counts(result) == {"IPhone": 2, "Phones": 0, "Apple": 0, "Gadgets": 0}


def test_links_through_redirects_and_qualifiers(tmp_path):
    pages = [
        wiki_page("Red fox", "The red fox.", page_id=1),
        wiki_page("Vulpes vulpes", "#REDIRECT [[Red fox]]", page_id=2, redirect="Red fox"),
        wiki_page("Mercury (planet)", "A planet. [[Mercury (element)]]", page_id=3),
        wiki_page("Mercury (element)", "An element. [[Mercury (planet)]] [[Red_fox#Range|foxes]]", page_id=4),
        wiki_page("Fox", "[[Vulpes vulpes]] and [[Mercury (planet)]].", page_id=5),
        wiki_page("Den", "A [[red fox]] den.", page_id=6),
        wiki_page("Hunting", "Hunting the [[Red fox]].", page_id=7),
        wiki_page("Fox (disambiguation)", "Fox may mean a red fox.", page_id=8),
    ]
    dump = wiki_dump(tmp_path, pages)

    result = build_queries(dump, tmp_path / "out", **TITLES_ONLY)
    titles = title_counts(result)

    assert titles == {"Red fox": 4, "Mercury": 3, "Fox": 0, "Den": 0, "Hunting": 0}
    assert list(titles)[:2] == ["Red fox", "Mercury"]


def test_title_links_count_linking_articles(tmp_path):
    pages = [
        wiki_page("Red fox", "The [[red fox]] is a fox.", page_id=1),
        wiki_page("Den", "A [[red fox]] den. Another [[Red fox|fox]]. [[Red_fox#Range]].", page_id=2),
    ]
    dump = wiki_dump(tmp_path, pages)

    result = build_queries(dump, tmp_path / "out", **TITLES_ONLY)

    assert title_counts(result)["Red fox"] == 1


# Known content of the real dumps -------------------------------------------------------


SHARED_EXPECTATIONS = {
    "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2": {
        "params": dict(min_count=20, bigram_min_count=5, pmi_threshold=8.0),
        "words": {"anarchism", "Autism", "albedo", "Aristotle", "philosophy", "Lincoln", "Alabama"},
        "bigrams": {"United States", "New York", "Los Angeles", "Supreme Court", "Civil War", "Atlas Shrugged"},
        "titles": {"Anarchism", "Autism", "Albedo", "Abraham Lincoln", "Aristotle", "Appellate court", "Amphibian"},
        "linked_titles": {"Appellate court", "Amphibian", "Apollo 8"},
    },
    "enwiki-20250201-tiny_dump-70pages.xml.bz2": {
        "params": dict(min_count=2, bigram_min_count=3, pmi_threshold=6.0),
        "words": {"anarchism", "albedo", "Lincoln", "Alabama", "Achilles", "slavery"},
        "bigrams": {"United States", "Supreme Court", "Civil War"},
        "titles": {"Anarchism", "Albedo", "Abraham Lincoln", "Achilles", "Alabama"},
        "linked_titles": set(),
    },
    "enwiki-table-markup.xml.bz2": {
        "params": dict(min_count=2, bigram_min_count=3, pmi_threshold=6.0),
        "words": {"confidence", "Estonia", "Whistler", "motion", "prison"},
        "bigrams": {"Prime Minister", "National Assembly"},
        "titles": {"Economy of Estonia", "Constructive vote of no confidence", "List of Prison Break characters"},
        "linked_titles": set(),  # its only links to itself come from its own page
    },
}
# Text that table and template markup leaves when it is not stripped.
MARKUP_REMNANTS = ("{|", "|-", "|}", "}}", "{{", "px")


@pytest.mark.parametrize("name", sorted(SHARED_EXPECTATIONS))
def test_shared_dump_known_content(shared_data, tmp_path, name):
    expected = SHARED_EXPECTATIONS[name]
    dump = shared_data / "wikipedia" / name

    result = build_queries(dump, tmp_path / "all", progress=False, **expected["params"])
    entries = read_records(result.queries_path, QueryEntry)
    by_kind = {kind: {entry.query: entry for entry in entries if entry.kind == kind} for kind in ("unigram", "bigram")}

    assert expected["words"] <= set(by_kind["unigram"]), expected["words"] - set(by_kind["unigram"])
    assert expected["bigrams"] <= set(by_kind["bigram"]), expected["bigrams"] - set(by_kind["bigram"])
    for bigram in expected["bigrams"]:
        assert by_kind["bigram"][bigram].pmi >= expected["params"]["pmi_threshold"], bigram
    for word in by_kind["unigram"]:
        assert not any(remnant in word for remnant in MARKUP_REMNANTS), word
        assert not re.fullmatch(r"\d*px", word), word
    assert not result.truncated

    titles = title_counts(build_queries(dump, tmp_path / "titles", **TITLES_ONLY))
    assert expected["titles"] <= set(titles), expected["titles"] - set(titles)
    for title in expected["linked_titles"]:
        assert titles[title] >= 1, title


# Plain-text articles ------------------------------------------------------------------


FOX_ARTICLES = [
    ArticleText("Red fox", "The red fox lives in Europe. The red fox hunts at night.", links=["Fox", "Europe"]),
    ArticleText("Fox", "A fox is a small animal. The red fox is a fox.", links=["Red fox"]),
    ArticleText("Europe", "Europe is a continent. The red fox lives there.", links=["Red fox", "Fox"]),
    ArticleText("Fox (disambiguation)", "Fox may mean the red fox.", disambiguation=True),
]


def test_build_from_articles(tmp_path):
    params = QueryParams(min_count=3, bigram_min_count=3, pmi_threshold=1.0, target_size=None)

    result = build_queries_from_articles(
        FOX_ARTICLES, tmp_path, params=params, inputs={"source": "test"}, wordnet={"red fox": 1, "fox": 2, "vixen": 1}
    )
    entries = {entry.query: entry for entry in read_records(result.queries_path, QueryEntry)}
    build_info = read_build_info(tmp_path)

    assert entries["red"].kind == "unigram"
    assert entries["red"].count == 5
    assert entries["fox"].count == 7
    assert entries["red fox"].kind == "bigram"
    assert entries["red fox"].count == 5
    assert entries["red fox"].pmi == pytest.approx(pmi(5, 5, 7, result.tokens), abs=1e-4)
    assert (entries["Red fox"].kind, entries["Red fox"].count) == ("title", 2)
    assert (entries["Europe"].kind, entries["Europe"].count) == ("title", 1)
    assert "Fox (disambiguation)" not in entries
    # WordNet names come last and only when no other kind has them.
    assert [query for query, entry in entries.items() if entry.kind == "wordnet"] == ["vixen"]
    assert result.articles == 4
    assert result.tokens == sum(len(article.text.replace(".", "").split()) for article in FOX_ARTICLES)
    assert build_info["inputs"] == {"source": "test"}
    assert build_info["parameters"]["articles_given"] == 4
    assert build_info["duplicates_dropped"]["wordnet"] == 2


def test_build_from_articles_ranks_titles_by_pageviews(tmp_path):
    params = QueryParams(min_count=100, include_bigrams=False, target_size=None)
    views = {"Red fox": 10, "Fox": 500, "Europe": 90_000}

    result = build_queries_from_articles(FOX_ARTICLES, tmp_path, params=params, pageviews=views)
    titles = [entry for entry in read_records(result.queries_path, QueryEntry) if entry.kind == "title"]

    assert [(entry.query, entry.pageviews, entry.count) for entry in titles] == [
        ("Europe", 90_000, 1),
        ("Fox", 500, 2),
        ("Red fox", 10, 2),
    ]


# Parameters ---------------------------------------------------------------------------


def test_max_entries_for():
    # Three quarters of 8 GB over four counters of 180 bytes a key, shared by the workers.
    assert max_entries_for(8.0, 1) == 8_333_333
    assert max_entries_for(8.0, 4) == 2_083_333
    assert max_entries_for(0.001, 1) == 10_000
    with pytest.raises(ValueError, match="memory_limit_gb"):
        max_entries_for(0, 1)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"target_size": 0}, "target_size"),
        ({"bigram_min_count": 0}, "bigram_min_count"),
        ({"max_entries": 0}, "max_entries"),
        ({"title_min_links": -1}, "title_min_links"),
        ({"title_rank": "clicks"}, "title rank"),
    ],
)
def test_query_params_validate(changes, message):
    with pytest.raises(ValueError, match=message):
        QueryParams(**changes).validate()


# Checks before the build starts -----------------------------------------------------------


def test_output_folder_that_is_a_file(samples_dir, tmp_path):
    out = tmp_path / "out"
    out.write_text("not a folder", encoding="utf-8")

    with pytest.raises(ValueError, match="is not a folder"):
        build_queries(samples_dir / SAMPLE_DUMP, out, progress=False)


def test_pmi_threshold_must_be_finite(samples_dir, tmp_path):
    with pytest.raises(ValueError, match="--pmi-threshold"):
        build_queries(samples_dir / SAMPLE_DUMP, tmp_path / "out", pmi_threshold=float("nan"), progress=False)


def test_pageview_file_of_wrong_format(tmp_path):
    dump = wiki_dump(tmp_path, [wiki_page("Red fox", "A fox.", page_id=1)])
    views = tmp_path / "views.txt"
    views.write_text("1:2:Red fox\n3:4:Den\n", encoding="utf-8")

    with pytest.raises(ValueError, match="Wikimedia pageview files"):
        build_queries(dump, tmp_path / "out", pageviews=[views], **TITLES_ONLY)


def test_views_of_redirect_go_to_target(tmp_path):
    pages = [
        wiki_page("Red fox", "The fox.", page_id=1),
        wiki_page("Vulpes vulpes", "#REDIRECT [[Red fox]]", page_id=2, redirect="Red fox"),
        wiki_page("Den", "A den.", page_id=3),
    ]
    dump = wiki_dump(tmp_path, pages)
    views = tmp_path / "pageviews-20240101-000000"
    views.write_text("en Red_fox 5 0\nen Vulpes_vulpes 70 0\nen.m Den 30 0\n", encoding="utf-8")

    result = build_queries(dump, tmp_path / "out", pageviews=[views], pageviews_wiki="en", **TITLES_ONLY)
    entries = {entry.query: entry.pageviews for entry in read_records(result.queries_path, QueryEntry)}

    assert entries == {"Red fox": 75, "Den": 30}
    assert read_build_info(result.out_dir)["parameters"]["title_rank"] == "pageviews"


def test_cli_exits_1_without_articles(tmp_path, capsys):
    dump = tmp_path / "cut.xml"
    dump.write_text("<mediawiki><page><title>A", encoding="utf-8")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["queries", "build", str(dump), "--out", str(tmp_path / "out"), "--no-progress"])

    assert args.func(args) == 1
    assert "no article was read" in capsys.readouterr().out
