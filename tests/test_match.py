"""Tests of whole-word query matching across scripts, the match stage and MetaCLIP balancing."""

from __future__ import annotations

import csv
import gzip
import random
import unicodedata

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_queries_tokens import CHINESE_ADDRESS, CHINESE_NEWS, JAPANESE_KINDLE, JAPANESE_PAGES, JAPANESE_TRADEMARK, html_text

from wit_builder.match.balance import keep_probability, should_keep, uniform_draw
from wit_builder.match.balance_stage import balance_folder
from wit_builder.match import matcher as matcher_module
from wit_builder.match.matcher import QueryMatcher, normalize_for_matching, normalize_many
from wit_builder.match.stage import match_folder, match_partition
from wit_builder.parquet import read_records, write_records
from wit_builder.queries.tokens import join_tokens, tokenize
from wit_builder.records import Candidate, MatchedCandidate, candidate_id

# Real alt texts from the url-captions test file (rows of img2dataset's test_10000.parquet).
ALT_STOCK_PHOTO_JA = "Oklahoma on map of usa — ストック写真"
ALT_STOCK_VECTOR_ZH = "Christmas Seamless Background — 图库矢量图片"
ALT_ARCHIVE_JA = "CHIMERA GAMESのアーカイブ画像:Vol.7FMX NIGHT SESSION"
ALT_PHONE_CASE_JA = "SDAT iPhone Case(黒)"
ALT_HOTEL_ZH = "Delta Hotels by Marriott Bessborough(三角洲贝斯伯勒酒店)"
ALT_BOTTLE_TH = "Refresh Extra Care Deodorant Spray 1 ขวด 60 ml"
ALT_BOWL = "bordallo pinheiro・salad bowl aquagreen"


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


def test_matcher_ignore_case_merges_variants():
    matcher = QueryMatcher(["Apple", "apple"], ignore_case=True)
    assert matcher.match("APPLE pie") == [0]
    assert matcher.match_many(["apple pie"]) == [[0]]
    assert matcher.compiled.variant_ids == {0: (1,)}


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


def test_normalize_splits_other_punctuation():
    assert normalize_for_matching("“Paris”—France") == " “ Paris ” — France "
    assert normalize_for_matching("AC/DC | live") == " AC / DC | live "
    assert normalize_for_matching("rock'n'roll e-mail") == " rock'n'roll e-mail "


def test_normalize_composes_accents():
    decomposed = unicodedata.normalize("NFD", "Café Zürich")

    assert decomposed != "Café Zürich"
    assert normalize_for_matching(decomposed) == " Café Zürich "
    assert QueryMatcher(["Zürich"]).match(decomposed) == [0]


def test_matcher_punctuation_ends_words():
    matcher = QueryMatcher(["Paris", "Paris France", "salad", "DC"])

    assert matcher.match("Paris, France") == [0]
    assert matcher.match("“Paris France”") == [0, 1]
    assert matcher.match(ALT_BOWL) == [2]
    assert matcher.match("AC/DC") == [3]


def test_ignore_case_folds_non_ascii():
    matcher = QueryMatcher(["Straße", "τελος", "москва", "ÉCOLE"], ignore_case=True)

    assert matcher.match("STRASSE") == [0]
    assert matcher.match("ΤΕΛΟΣ") == [1]
    assert matcher.match("МОСКВА") == [2]
    assert matcher.match("école primaire") == [3]
    assert matcher.match(unicodedata.normalize("NFD", "École")) == [3]


def test_case_sensitive_keeps_non_ascii_case():
    matcher = QueryMatcher(["Straße", "ÉCOLE"])

    assert matcher.match("STRASSE") == []
    assert matcher.match("école") == []
    assert matcher.match("Straße") == [0]


def test_japanese_words_match_whole():
    matcher = QueryMatcher(["写真", "真", "ストック写真", "画像", "アーカイブ", "GAMES", "黒", "iPhone"])

    assert matcher.match(ALT_STOCK_PHOTO_JA) == [0, 2]
    assert matcher.match(ALT_ARCHIVE_JA) == [3, 4, 5]
    assert matcher.match(ALT_PHONE_CASE_JA) == [6, 7]


def test_japanese_word_next_to_latin():
    matcher = QueryMatcher(["iPhone", "販売", "商標", "標", "逮捕"])

    assert matcher.match(JAPANESE_TRADEMARK[1]) == [0, 1, 2, 4]


def test_japanese_compound_is_one_word():
    matcher = QueryMatcher(["東京", "京都", "都庁"])

    assert matcher.match("東京都庁") == [0, 2]
    assert matcher.match("京都") == [1]


def test_chinese_words_match_whole():
    matcher = QueryMatcher(["直升机", "升", "香港", "九龙", "图片", "矢量", "酒店", "Marriott"])

    assert matcher.match(CHINESE_NEWS[0]) == [0]
    assert matcher.match(CHINESE_ADDRESS) == [2, 3]
    assert matcher.match(ALT_STOCK_VECTOR_ZH) == [4, 5]
    assert matcher.match(ALT_HOTEL_ZH) == [6, 7]


def test_thai_word_between_spaces():
    assert QueryMatcher(["ขวด", "ml"]).match(ALT_BOTTLE_TH) == [0, 1]


def test_query_build_bigrams_match_their_text():
    # Queries as the query build writes them: ICU words, and adjacent pairs joined.
    texts = list(JAPANESE_TRADEMARK + JAPANESE_KINDLE + CHINESE_NEWS)
    queries = []
    for text in texts:
        words = tokenize(text)
        queries += words
        queries += [join_tokens(first, second) for first, second in zip(words, words[1:])]
    queries = list(dict.fromkeys(queries))
    matcher = QueryMatcher(queries)

    for text in texts:
        found = {queries[query_id] for query_id in matcher.match(text)}
        words = tokenize(text)
        assert set(words) <= found, text
        assert len(found) >= len(set(words)), text


def test_cjk_alt_texts_match_their_words(shared_data):
    table = pq.read_table(shared_data / "url-captions" / "test_10000.parquet", columns=["TEXT"])
    texts = [text for text in table.column("TEXT").to_pylist() if text and not text.isascii()]
    cjk = [text for text in texts if any("\u3040" <= char <= "\u9fff" for char in text)]
    words = sorted({word for text in cjk for word in tokenize(text) if not word.isascii()})
    matcher = QueryMatcher(words)

    missed = 0
    for text in cjk:
        found = {words[query_id] for query_id in matcher.match(text)}
        expected = {word for word in tokenize(text) if not word.isascii()}
        missed += len(expected - found)
        for word in found:
            assert word in text, (word, text)
    assert len(cjk) >= 30
    assert missed <= 0.02 * sum(len(set(tokenize(text))) for text in cjk)


def test_japanese_pages_lines_match_their_words(shared_data):
    lines = []
    for name in JAPANESE_PAGES:
        text = html_text(gzip.decompress((shared_data / name).read_bytes()).decode("utf-8"))
        lines += [line for line in text.splitlines() if any("\u3040" <= char <= "\u30ff" for char in line)]
    words = sorted({word for line in lines for word in tokenize(line) if not word.isascii()})
    matcher = QueryMatcher(words)

    expected_total = missed = 0
    for line in lines:
        found = {words[query_id] for query_id in matcher.match(line)}
        expected = {word for word in tokenize(line) if not word.isascii()}
        expected_total += len(expected)
        missed += len(expected - found)
    assert len(lines) >= 50
    # ICU can split a word alone differently from the same word in its line, so a few
    # misses are allowed. With ICU 77.1 there are none.
    assert missed <= 0.02 * expected_total
    assert "特許" in words
    assert QueryMatcher(["特許", "許"]).match("ライトハウス国際特許事務所") == [0]


def test_matcher_duplicate_and_shared_keys():
    matcher = QueryMatcher(["dog", "dog", "Dog", "cat"], ignore_case=True)

    assert matcher.match("DOG and CAT") == [0, 3]
    assert matcher.match("a cat") == [3]
    assert matcher.match(None) == []
    assert matcher.compiled.variant_ids == {0: (1, 2)}
    assert matcher.compiled.canonical_ids() == {1: 0, 2: 0}


def test_case_sensitive_merges_only_repeats():
    matcher = QueryMatcher(["dog", "Dog", "dog", "new  york", "new york"])

    assert matcher.match("Dog and dog in new york") == [0, 1, 3]
    assert matcher.compiled.variant_ids == {0: (2,), 3: (4,)}


def test_matcher_without_queries():
    matcher = QueryMatcher(["", "  "])

    assert matcher.match("anything") == []


# Texts that take each branch of normalize_many: blank, None, ASCII whitespace other
# than the space, a NUL of the text's own, punctuation, and non-ASCII scripts.
BATCH_EDGE_TEXTS = [
    "A dog, running.",
    None,
    "",
    "   ",
    "new\tyork\ncity \x0b\x1f end",
    "  leading and trailing  ",
    "a\x00b dog",
    "“Paris”—France",
    "AC/DC | live",
    "STRASSE Dog",
    ALT_STOCK_PHOTO_JA,
    ALT_BOTTLE_TH,
    "(known) [dog]; {cat}? `x`!",
]


def test_normalize_blank_text():
    assert normalize_for_matching("") == " "
    assert normalize_for_matching(" \t\n") == " "


@pytest.mark.parametrize("ignore_case", [False, True])
def test_normalize_many_equals_one_by_one(ignore_case):
    expected = [normalize_for_matching(text or "", ignore_case) for text in BATCH_EDGE_TEXTS]

    assert normalize_many(BATCH_EDGE_TEXTS, ignore_case) == expected
    ascii_texts = [text for text in BATCH_EDGE_TEXTS if text is None or (text.isascii() and "\x00" not in text)]
    assert normalize_many(ascii_texts, ignore_case) == [normalize_for_matching(text or "", ignore_case) for text in ascii_texts]
    assert normalize_many([], ignore_case) == []


def test_match_batch_edge_texts():
    matcher = QueryMatcher(["dog", "new york city", "写真", "ขวด", "known", "a\x00b", "Paris", "DC"])

    matches = matcher.match_batch(BATCH_EDGE_TEXTS)

    assert len(matches) == len(BATCH_EDGE_TEXTS)
    assert matches.to_lists() == [matcher.match(text) for text in BATCH_EDGE_TEXTS]
    assert matches.to_lists()[4] == [1]
    assert matches.to_lists()[6] == [0, 5]
    assert matcher.match_many([]) == []


def test_match_batch_without_queries():
    matches = QueryMatcher([""]).match_batch(["dog", None])

    assert matches.to_lists() == [[], []]
    assert matches.offsets.tolist() == [0, 0, 0]


def _real_captions(shared_data) -> list[str]:
    table = pq.read_table(shared_data / "url-captions" / "test_10000.parquet", columns=["TEXT"])
    with open(shared_data / "flickr8k" / "captions.csv", newline="", encoding="utf-8") as handle:
        flickr = [row["caption"] for row in csv.DictReader(handle)]
    return table.column("TEXT").to_pylist() + flickr[:5000]


@pytest.mark.parametrize("ignore_case", [False, True])
def test_match_batch_agrees_on_real_captions(shared_data, monkeypatch, ignore_case):
    captions = _real_captions(shared_data)
    queries = []
    for text in captions[::3]:
        words = tokenize(text or "")
        queries += words
        queries += [join_tokens(first, second) for first, second in zip(words, words[1:])]
    queries = list(dict.fromkeys(queries))
    matcher = QueryMatcher(queries, ignore_case=ignore_case)
    # A small chunk size puts many chunk boundaries into the batch.
    monkeypatch.setattr(matcher_module, "CHUNK_TEXTS", 997)

    expected = [matcher.match(text) for text in captions]
    got = matcher.match_batch(captions).to_lists()

    assert len(captions) >= 10_000
    assert sum(not text.isascii() for text in captions if text) >= 100
    assert sum(map(len, expected)) >= 10 * len(captions)
    if ignore_case:
        assert matcher.compiled.variant_ids
        canonical = matcher.compiled.canonical_ids()
        assert not any(query_id in canonical for ids in got for query_id in ids)
    mismatches = [index for index in range(len(captions)) if got[index] != expected[index]]
    assert mismatches == [], [captions[index] for index in mismatches[:5]]


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


def test_match_partition_keeps_order_and_nulls(tmp_path):
    rows = [
        Candidate("a", "http://example.test/a.jpg", "a dog", "alt", "http://example.test/", "crawl"),
        Candidate("b", "http://example.test/b.jpg", "nothing here", "alt", "http://example.test/", "crawl"),
        Candidate("c", "http://example.test/c.jpg", None, "alt", "http://example.test/", "crawl"),
        Candidate("d", "http://example.test/d.jpg", "cat and dog", "alt", "http://example.test/", "crawl", "en"),
    ]
    write_records(tmp_path / "in.parquet", rows, Candidate)
    queries = tmp_path / "queries.txt"
    queries.write_text("dog\ncat\n", encoding="utf-8")

    stats = match_partition(tmp_path / "in.parquet", queries, tmp_path / "out.parquet")

    matched = read_records(tmp_path / "out.parquet", MatchedCandidate)
    assert [row.candidate_id for row in matched] == ["a", "d"]
    assert [row.query_ids for row in matched] == [[0], [0, 1]]
    assert matched[1].page_language == "en"
    assert (stats.candidates, stats.matched, stats.unmatched) == (4, 2, 2)


def test_match_partition_old_file_without_optional_column(tmp_path):
    table = pa.table({
        "candidate_id": ["a"], "url": ["http://example.test/a.jpg"], "text": ["a dog"],
        "text_source": ["alt"], "page_url": ["http://example.test/"], "source": ["crawl"],
    })
    pq.write_table(table, tmp_path / "in.parquet")
    queries = tmp_path / "queries.txt"
    queries.write_text("dog\n", encoding="utf-8")

    match_partition(tmp_path / "in.parquet", queries, tmp_path / "out.parquet")

    matched = read_records(tmp_path / "out.parquet", MatchedCandidate)
    assert matched[0].page_language is None
    assert matched[0].query_ids == [0]


def test_match_partition_rejects_missing_text(tmp_path):
    pq.write_table(pa.table({"candidate_id": ["a"], "url": ["u"]}), tmp_path / "in.parquet")
    queries = tmp_path / "queries.txt"
    queries.write_text("dog\n", encoding="utf-8")

    with pytest.raises(ValueError, match="missing the column"):
        match_partition(tmp_path / "in.parquet", queries, tmp_path / "out.parquet")


def test_match_partition_writes_empty_file(tmp_path):
    _write_candidates(tmp_path / "in.parquet", [(0, "no match")])
    queries = tmp_path / "queries.txt"
    queries.write_text("dog\n", encoding="utf-8")

    match_partition(tmp_path / "in.parquet", queries, tmp_path / "out.parquet")

    assert read_records(tmp_path / "out.parquet", MatchedCandidate) == []
