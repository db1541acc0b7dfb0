"""Tests of the count passes and of the selection of unigram, bigram, title and WordNet queries."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pytest

from wit_builder.queries.articles import ArticleMaker, ArticleText
from wit_builder.queries.counting import (
    KIND_PRIORITY,
    REDIRECT_SEPARATOR,
    TRIM_ORDER,
    PairPass,
    PassCounters,
    TitleRanking,
    WordPass,
    iter_bigrams,
    merge_kinds,
    pmi,
    resolve_redirects,
    scan_unigrams,
    select_bigrams,
    select_titles,
    select_wordnet,
    title_query,
    trim_to_size,
)
from wit_builder.queries.dump import CASE_SENSITIVE, DumpReader, SiteInfo, WikiPage
from wit_builder.queries.spill import SpillCounter, merge_runs
from wit_builder.records import QueryEntry, QueryKind

SAMPLE_DUMP = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def entry(query: str, kind: QueryKind, count: int = 1) -> QueryEntry:
    return QueryEntry(query=query, kind=kind.value, count=count)


def sorted_run(tmp_path: Path, name: str, counts: dict[str, int]) -> list[Path]:
    counter = SpillCounter(tmp_path, name, max_entries=2)
    for key, count in counts.items():
        counter.add(key, count)
    return counter.finish()


# Unigrams -----------------------------------------------------------------------------


MERGED_WORDS = [("1990", 50), ("Paris", 30), ("a", 10), ("cat", 5), ("dog", 2), ("x-ray", 7), ("€", 9)]


def test_scan_unigrams_thresholds():
    entries, frequent, distinct = scan_unigrams(iter(MERGED_WORDS), min_count=5, bigram_min_count=7)

    assert [(item.query, item.count) for item in entries] == [("Paris", 30), ("a", 10), ("x-ray", 7), ("cat", 5)]
    assert {item.kind for item in entries} == {"unigram"}
    assert frequent == {"1990": 50, "Paris": 30, "a": 10, "x-ray": 7, "€": 9}
    assert distinct == len(MERGED_WORDS)


def test_scan_unigrams_low_bigram_threshold():
    entries, frequent, _distinct = scan_unigrams(iter(MERGED_WORDS), min_count=20, bigram_min_count=2)

    assert [item.query for item in entries] == ["Paris"]
    assert frequent == {"1990": 50, "Paris": 30, "a": 10, "cat": 5, "dog": 2, "x-ray": 7, "€": 9}


def test_scan_unigrams_ties_sorted_by_query():
    entries, _frequent, _distinct = scan_unigrams(iter([("b", 3), ("c", 4), ("a", 3)]), 1, 1)
    assert [item.query for item in entries] == ["c", "a", "b"]


# Bigrams ------------------------------------------------------------------------------


WORD_COUNTS = {"New": 10, "York": 8, "the": 100, "city": 20}


def test_select_bigrams_pmi_values():
    merged = [("New York", 8), ("the New", 2), ("the city", 10)]

    entries, distinct = select_bigrams(iter(merged), WORD_COUNTS, 1_000, min_count=2, pmi_threshold=2.0)

    assert distinct == 3
    assert [(item.query, item.count) for item in entries] == [("the city", 10), ("New York", 8)]
    by_query = {item.query: item for item in entries}
    assert by_query["New York"].pmi == pytest.approx(math.log2(8 * 1_000 / (10 * 8)), abs=1e-4)
    assert by_query["the city"].pmi == pytest.approx(math.log2(10 * 1_000 / (100 * 20)), abs=1e-4)
    assert by_query["New York"].kind == "bigram"


def test_select_bigrams_thresholds_are_inclusive():
    # PMI("the New") = log2(2 * 1000 / (100 * 10)) = 1 bit exactly.
    assert pmi(2, 100, 10, 1_000) == 1.0
    entries, _distinct = select_bigrams(iter([("the New", 2)]), WORD_COUNTS, 1_000, min_count=2, pmi_threshold=1.0)
    assert [item.query for item in entries] == ["the New"]

    entries, _distinct = select_bigrams(iter([("the New", 2)]), WORD_COUNTS, 1_000, min_count=3, pmi_threshold=0.0)
    assert entries == []


def test_select_bigrams_limit_keeps_most_frequent():
    words = {f"w{index}": 100 for index in range(20)}
    merged = sorted((f"w{index} w{index + 1}", 10 + index) for index in range(19))

    entries, distinct = select_bigrams(iter(merged), words, 10**9, min_count=1, pmi_threshold=0.0, limit=4)

    assert distinct == 19
    assert [item.count for item in entries] == [28, 27, 26, 25]
    assert [item.query for item in entries] == ["w18 w19", "w17 w18", "w16 w17", "w15 w16"]


def test_iter_bigrams_chain_breaks():
    words = frozenset({"New", "York", "is", "big"})
    text = "New York, New York is big.\nbig New"

    assert list(iter_bigrams(text, words)) == ["New York", "New York", "York is", "is big", "big New"]
    assert list(iter_bigrams("New Jersey York is", words)) == ["York is"]


# Passes -------------------------------------------------------------------------------


def test_word_pass_counts_article(tmp_path):
    counting = WordPass(PassCounters(tmp_path, 1_000))
    counting.add_article(ArticleText("Red fox", "The red fox is a fox.", links=["Fox", "Fox", "Canidae"]))
    counting.add_article(ArticleText("Fox", "A fox.", links=["Red fox"]))
    counting.add_article(ArticleText("Fox (disambiguation)", "Fox may mean", links=["Fox"], disambiguation=True))
    runs = counting.finish()

    assert dict(merge_runs(runs["unigrams"]))["fox"] == 3
    assert dict(merge_runs(runs["titles"])) == {"Fox": len("A fox."), "Red fox": len("The red fox is a fox.")}
    assert dict(merge_runs(runs["links"])) == {"Canidae": 1, "Fox": 2, "Red fox": 1}
    assert counting.stats["articles"] == 3
    assert counting.stats["disambiguation_pages"] == 1
    assert counting.stats["tokens"] == 6 + 2 + 3


def test_word_pass_records_normalized_redirects(tmp_path):
    counting = WordPass(PassCounters(tmp_path, 1_000))
    siteinfo = SiteInfo()
    counting.add_page(WikiPage("red_fox", 0, 1, "#REDIRECT [[fox#Habitat]]", redirect="fox#Habitat"), siteinfo)
    counting.add_page(WikiPage("Talk:Fox", 1, 2, "Talk text"), siteinfo)
    counting.add_page(WikiPage("Broken", 0, 3, "#REDIRECT", redirect=""), siteinfo)

    runs = counting.finish()

    assert [key for key, _count in merge_runs(runs["redirects"])] == [f"Red fox{REDIRECT_SEPARATOR}Fox"]
    assert counting.stats["redirects"] == 2
    assert counting.stats["other_namespaces"] == 1
    assert counting.stats.get("articles", 0) == 0


def test_word_pass_case_sensitive_wiki(tmp_path):
    counting = WordPass(PassCounters(tmp_path, 1_000))
    siteinfo = SiteInfo(case=CASE_SENSITIVE)
    counting.add_page(WikiPage("iphone", 0, 1, "#REDIRECT [[iPhone]]", redirect="iPhone"), siteinfo)
    counting.add_page(WikiPage("iPad", 0, 2, "See [[iPhone]] and [[IPhone]]."), siteinfo)

    runs = counting.finish()

    assert [key for key, _count in merge_runs(runs["redirects"])] == [f"iphone{REDIRECT_SEPARATOR}iPhone"]
    assert dict(merge_runs(runs["links"])) == {"IPhone": 1, "iPhone": 1}
    assert [title for title, _length in merge_runs(runs["titles"])] == ["iPad"]


def test_pair_pass_cache_matches_iter_bigrams(samples_dir, tmp_path):
    reader = DumpReader(samples_dir / SAMPLE_DUMP, max_articles=4)
    counters = PassCounters(tmp_path, 500)
    words_pass = WordPass(counters)
    texts = []
    for page in reader:
        words_pass.add_page(page, reader.siteinfo)
        texts.append(ArticleMaker(reader.siteinfo, with_links=False).make(page).text)
    first = words_pass.finish()
    words = frozenset(word for word, count in merge_runs(first["unigrams"]) if count >= 5)

    pairs_pass = PairPass(counters, words)
    for path in first["tokens"]:
        pairs_pass.add_cache_file(path)
    pairs = dict(merge_runs(pairs_pass.finish()["bigrams"]))

    expected: Counter = Counter()
    for text in texts:
        expected.update(iter_bigrams(text, words))
    assert pairs == dict(expected)
    assert pairs["United States"] >= 5


# Redirects ----------------------------------------------------------------------------


def test_resolve_redirects_one_hop(tmp_path):
    links = sorted_run(tmp_path, "links", {"Fox": 2, "Red fox": 3, "Vulpes": 1, "Wolf": 4})
    redirects = sorted_run(
        tmp_path,
        "redirects",
        {
            f"Red fox{REDIRECT_SEPARATOR}Fox": 1,
            f"Vulpes{REDIRECT_SEPARATOR}Red fox": 1,
            f"Zorro{REDIRECT_SEPARATOR}Fox": 1,
        },
    )

    resolved = list(resolve_redirects(merge_runs(links), merge_runs(redirects)))

    # MediaWiki follows one redirect hop only, so a link to "Vulpes" stays on the redirect "Red fox".
    assert resolved == [("Fox", 2), ("Fox", 3), ("Red fox", 1), ("Wolf", 4)]


def test_resolve_redirects_prefix_titles():
    # "A" sorts before "A b" although the key "A b<NUL>..." is longer.
    links = iter([("A", 1), ("A b", 2), ("Ab", 3)])
    redirects = iter([(f"A{REDIRECT_SEPARATOR}Alpha", 1), (f"Ab{REDIRECT_SEPARATOR}Abbey", 1)])

    assert list(resolve_redirects(links, redirects)) == [("Alpha", 1), ("A b", 2), ("Abbey", 3)]


# Titles -------------------------------------------------------------------------------


PLANETS = [
    ("1990", 100, 50),
    ("Mars", 900, 3),
    ("Mercury (element)", 300, 7),
    ("Mercury (planet)", 500, 10),
    ("Pluto", 50, 0),
    ("Venus", 2000, 12),
]
VIEWS = {"Mercury (planet)": 100, "Mercury (element)": 50, "Venus": 120, "Mars": 400}


def test_title_query_drops_qualifier():
    assert title_query("Mercury (planet)") == "Mercury"
    assert title_query("Apollo 11") == "Apollo 11"
    assert title_query("(What's the Story) Morning Glory?") == "(What's the Story) Morning Glory?"
    assert title_query("Boston (band) (album)") == "Boston (band)"


def test_select_titles_by_links_merges_qualifiers():
    entries = select_titles(iter(PLANETS), TitleRanking(rank="links"))

    assert [(item.query, item.count) for item in entries] == [("Mercury", 17), ("Venus", 12), ("Mars", 3), ("Pluto", 0)]
    assert {item.kind for item in entries} == {"title"}
    assert all(item.pageviews is None for item in entries)


def test_select_titles_by_length():
    entries = select_titles(iter(PLANETS), TitleRanking(rank="length"))
    assert [item.query for item in entries] == ["Venus", "Mars", "Mercury", "Pluto"]


def test_select_titles_min_links_per_article():
    entries = select_titles(iter(PLANETS), TitleRanking(rank="links", min_links=8))
    assert [(item.query, item.count) for item in entries] == [("Venus", 12), ("Mercury", 10)]


def test_select_titles_by_pageviews():
    entries = select_titles(iter(PLANETS), TitleRanking(rank="pageviews"), VIEWS)

    assert [(item.query, item.pageviews) for item in entries] == [
        ("Mars", 400),
        ("Mercury", 150),
        ("Venus", 120),
        ("Pluto", 0),
    ]


def test_select_titles_min_pageviews_and_limit():
    ranking = TitleRanking(rank="pageviews", min_pageviews=100)
    entries = select_titles(iter(PLANETS), ranking, VIEWS)
    assert [(item.query, item.pageviews, item.count) for item in entries] == [
        ("Mars", 400, 3),
        ("Venus", 120, 12),
        ("Mercury", 100, 10),
    ]

    ranking = TitleRanking(rank="links", min_pageviews=100, limit=2)
    entries = select_titles(iter(PLANETS), ranking, VIEWS)
    assert [item.query for item in entries] == ["Venus", "Mercury"]


def test_title_ranking_errors():
    with pytest.raises(ValueError, match="invalid title rank 'clicks'"):
        TitleRanking(rank="clicks")
    with pytest.raises(ValueError, match="pageview"):
        select_titles(iter(PLANETS), TitleRanking(rank="pageviews"))


def test_select_wordnet_keeps_order():
    entries = select_wordnet({"dog": 7, "": 1, "hot dog": 2, "cat": 8})
    assert [(item.query, item.count, item.kind) for item in entries] == [
        ("dog", 7, "wordnet"),
        ("hot dog", 2, "wordnet"),
        ("cat", 8, "wordnet"),
    ]


# Merging and trimming -----------------------------------------------------------------


def test_merge_kinds_priority():
    assert KIND_PRIORITY == (QueryKind.UNIGRAM, QueryKind.BIGRAM, QueryKind.TITLE, QueryKind.WORDNET)
    entries_by_kind = {
        QueryKind.WORDNET: [entry("dog", QueryKind.WORDNET), entry("Mercury", QueryKind.WORDNET), entry("cat", QueryKind.WORDNET)],
        QueryKind.TITLE: [entry("New York", QueryKind.TITLE), entry("Mercury", QueryKind.TITLE), entry("dog", QueryKind.TITLE)],
        QueryKind.UNIGRAM: [entry("Paris", QueryKind.UNIGRAM), entry("dog", QueryKind.UNIGRAM)],
        QueryKind.BIGRAM: [entry("New York", QueryKind.BIGRAM), entry("Paris", QueryKind.BIGRAM)],
    }

    unique, dropped = merge_kinds(entries_by_kind)

    assert {kind: [item.query for item in items] for kind, items in unique.items()} == {
        QueryKind.UNIGRAM: ["Paris", "dog"],
        QueryKind.BIGRAM: ["New York"],
        QueryKind.TITLE: ["Mercury"],
        QueryKind.WORDNET: ["cat"],
    }
    assert dropped == {"unigram": 0, "bigram": 1, "title": 2, "wordnet": 2}


def test_merge_kinds_missing_kinds():
    unique, dropped = merge_kinds({QueryKind.UNIGRAM: [entry("a", QueryKind.UNIGRAM)]})
    assert unique[QueryKind.TITLE] == []
    assert unique[QueryKind.WORDNET] == []
    assert dropped["title"] == 0


def five_of_each() -> dict[QueryKind, list[QueryEntry]]:
    return {
        kind: [entry(f"{kind.value}{rank}", kind, count=100 - rank) for rank in range(5)] for kind in KIND_PRIORITY
    }


def test_trim_order_starts_with_titles():
    assert TRIM_ORDER[0] is QueryKind.TITLE
    assert sorted(TRIM_ORDER) == sorted(KIND_PRIORITY)


@pytest.mark.parametrize("target", [20, 19, 16, 15, 11, 7, 3, 1])
def test_trim_to_size_follows_trim_order(target):
    entries_by_kind = five_of_each()

    removed = trim_to_size(entries_by_kind, target)

    assert sum(len(items) for items in entries_by_kind.values()) == target
    excess = 20 - target
    for kind in TRIM_ORDER:
        cut = min(excess, 5)
        excess -= cut
        assert removed[kind.value] == cut, kind
        # The weakest entries go first, so the rest is the head of the best-first list.
        assert [item.query for item in entries_by_kind[kind]] == [f"{kind.value}{rank}" for rank in range(5 - cut)]


def test_trim_to_size_without_target():
    entries_by_kind = five_of_each()
    assert trim_to_size(entries_by_kind, None) == {kind.value: 0 for kind in KIND_PRIORITY}
    assert trim_to_size(entries_by_kind, 50) == {kind.value: 0 for kind in KIND_PRIORITY}
    assert sum(len(items) for items in entries_by_kind.values()) == 20
