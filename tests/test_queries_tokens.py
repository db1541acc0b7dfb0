"""Tests of tokenization across scripts: marks inside words, and ICU segmentation of
Chinese, Japanese and Thai, checked on real text."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import threading
import unicodedata
from collections import Counter

import pytest
from selectolax.lexbor import LexborHTMLParser
from warcio.archiveiterator import ArchiveIterator

from wit_builder.queries.dump import iter_articles
from wit_builder.queries.markup import MarkupStripper
from wit_builder.queries.tokens import has_letter, iter_token_runs, join_tokens, token_run_texts, tokenize

SAMPLE_DUMP = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
SAMPLE_WARC = "commoncrawl/warcfile.warc.gz"
JAPANESE_PAGES = (
    "web/scrapinghub_article_benchmark/html/85439e26c41c75901820d01a13e8cea7836abb58635ea3986f71a163ab0311d3.html.gz",
    "web/scrapinghub_article_benchmark/html/f105de6e63ca91ea482f60193f6252092557f969f2fd128ff68c0d4d6b90dd7d.html.gz",
)

# Japanese from a patent firm's article on selling modified iPhones
# (www.lhpat-tm.com/blog/decision-info/index-2726.html), page html/85439e26… of
# scrapinghub's article-extraction-benchmark.
JAPANESE_TRADEMARK = (
    "お客様のブランドをお守りします。商標登録出願で弁理士をお探しならライトハウス国際特許事務所［東京・千代田区］",
    "先日、不正に改造したiPhoneを販売したとして、商標法違反の疑いで20代の男性が逮捕されたというニュースを耳にしました。",
)
# Japanese from a blog post on the Kindle for PC hotkey (note100yen.com/en-180816.html),
# page html/f105de6e… of the same benchmark.
JAPANESE_KINDLE = (
    "Kindle for PCをインストールすると自動でホットキーが設定され、「Ctrl＋Alt＋K」で立ち上がるようになります。",
    "さて、このKindle for PC、Amazonがあまり力を入れていないのか操作性などあまりよくありません。"
    "設定で変更できる箇所も少なく、融通が効かない面も多々あります。",
    "困った挙げ句、色々調べた結果、別の方法でこの設定を変更することにしました。",
)
# Chinese from the Common Crawl excerpt samples/commoncrawl/warcfile.warc.gz: a news page
# (http://003338.cn/l41/481397.html) and a company's address (http://0615235.com/…).
CHINESE_NEWS = (
    "美国夏威夷一直升机坠毁已致6人死亡",
    "新华社香港4月22日电（记者张欢）香港金融管理局总裁余伟文22日撰文指出，新冠肺炎疫情为全球以至香港经济"
    "带来前所未见的挑战，不少企业被迫进入经营寒冬期，不少打工人员生计受到严重影响。",
)
CHINESE_ADDRESS = "香港办事处：香港九龙旺角登打士街32号欧美广场16楼1602室"
# Hindi from tweets quoted on www.indiapost.com/with-shattered-dreams-deportees-return-home-from-us/,
# page html/5f9c5ed5… of the same benchmark.
HINDI = (
    "पानी नहीं @BJP4Delhi की राजनीति गन्दी है",
    "एक सैम्पल पूजा शर्मा जी के घर से लिया गया है",
)

# Letters of the scripts that ICU segments, for checks written independently of the module.
HAN_KANA_RUN = re.compile(r"[\u3005\u3041-\u3096\u309d\u309e\u30a1-\u30fa\u30fc-\u30fe\u4e00-\u9fff]+")
PUNCTUATION_OR_SPACE = re.compile(r"[^\w'\-]|_")


def html_text(html: str) -> str:
    tree = LexborHTMLParser(html)
    for node in tree.css("script, style, noscript"):
        node.decompose()
    return tree.body.text(separator="\n") if tree.body else ""


def without_punctuation(text: str) -> str:
    return "".join(char for char in text if unicodedata.category(char)[0] in "LNM")


# Marks inside words --------------------------------------------------------------------


def test_devanagari_vowel_signs_stay_in_words():
    assert tokenize(HINDI[0]) == ["पानी", "नहीं", "BJP4Delhi", "की", "राजनीति", "गन्दी", "है"]
    assert tokenize(HINDI[1]) == HINDI[1].split()


def test_devanagari_runs_follow_spaces():
    assert list(iter_token_runs(HINDI[1])) == [HINDI[1].split()]
    assert all(has_letter(token) for token in tokenize(HINDI[1]))


def test_marks_in_bundled_dump_words():
    # Words from the bundled dump: Achilles (o with a combining macron below),
    # Allah (Gurmukhi), Adobe (Arabic with a shadda) and Alphabet (Thai "beer").
    assert tokenize("a shield called Akoúo̱. In") == ["a", "shield", "called", "Akoúo̱", "In"]
    assert tokenize("Punjabi (Gurmukhi): ਅੱਲਾਹ Allāh, archaic ਅਲਹੁ Alahu") == [
        "Punjabi", "Gurmukhi", "ਅੱਲਾਹ", "Allāh", "archaic", "ਅਲਹੁ", "Alahu",
    ]
    assert tokenize("(الطّوب al") == ["الطّوب", "al"]
    assert tokenize('the Thai word for "beer" [เบียร์] retains') == ["the", "Thai", "word", "for", "beer", "เบียร์", "retains"]


def test_decomposed_accents_stay_in_words():
    text = unicodedata.normalize("NFD", "Étienne de La Boétie, Zürich")
    assert tokenize(text) == [unicodedata.normalize("NFD", word) for word in ("Étienne", "de", "La", "Boétie", "Zürich")]


def test_orphan_mark_is_no_token():
    assert tokenize("a \u0301 b") == ["a", "b"]
    assert tokenize("\u0e34") == []


def test_joining_rules_hold_with_marks():
    assert tokenize("x_y well-known O'Brien नहीं-की") == ["x", "y", "well-known", "O'Brien", "नहीं-की"]


# Japanese -----------------------------------------------------------------------------


def test_japanese_known_words_are_tokens():
    tokens = set(tokenize(" ".join(JAPANESE_TRADEMARK)))
    for word in ("お客様", "ブランド", "商標", "登録", "出願", "国際", "特許", "事務所", "東京", "千代田", "販売", "逮捕", "ニュース"):
        assert word in tokens, word
    assert "iPhone" in tokens


def test_japanese_particles_are_separate_tokens():
    tokens = tokenize(JAPANESE_TRADEMARK[1])
    for particle in ("の", "を", "に", "で", "が"):
        assert particle in tokens, particle
    assert tokenize("お客様のブランドをお守りします")[:4] == ["お客様", "の", "ブランド", "を"]


def test_japanese_tokens_keep_every_letter():
    for sentence in JAPANESE_TRADEMARK + JAPANESE_KINDLE:
        assert "".join(tokenize(sentence)) == without_punctuation(sentence), sentence


def test_japanese_no_token_is_a_sentence():
    for sentence in JAPANESE_TRADEMARK + JAPANESE_KINDLE:
        tokens = tokenize(sentence)
        assert max(len(token) for token in tokens) <= 8, tokens
        assert len(tokens) >= len(without_punctuation(sentence)) / 4, tokens


def test_japanese_punctuation_is_never_a_token():
    for sentence in JAPANESE_TRADEMARK + JAPANESE_KINDLE:
        for token in tokenize(sentence):
            assert not PUNCTUATION_OR_SPACE.search(token), token
    assert tokenize("東京・千代田区") == ["東京", "千代田", "区"]


def test_japanese_iteration_marks_stay_in_words():
    tokens = tokenize(JAPANESE_KINDLE[1] + JAPANESE_KINDLE[2])
    assert "多々" in tokens
    assert "色々" in tokens
    assert "インストール" in tokenize(JAPANESE_KINDLE[0])
    # "こゝろ" (Natsume Sōseki's novel): ICU splits before ゝ, which then joins "こ".
    assert tokenize("こゝろ") == ["こゝ", "ろ"]
    assert tokenize("ーー") == []


def test_japanese_runs_break_at_punctuation_and_script_change():
    runs = list(iter_token_runs(JAPANESE_KINDLE[0]))
    assert runs[0] == ["Kindle", "for", "PC"]
    assert runs[1][0] == "を"
    assert ["Ctrl"] in runs
    assert all(run for run in runs)
    assert list(iter_token_runs("お客様のブランドをお守りします。商標登録出願")) == [
        ["お客様", "の", "ブランド", "を", "お守り", "し", "ます"],
        ["商標", "登録", "出願"],
    ]


def test_japanese_space_between_runs_breaks_run():
    assert list(iter_token_runs("商標 登録")) == [["商標"], ["登録"]]


def test_japanese_runs_match_tokens():
    for sentence in JAPANESE_TRADEMARK + JAPANESE_KINDLE:
        flattened = [token for run in iter_token_runs(sentence) for token in run]
        assert flattened == tokenize(sentence)


def test_japanese_characters_beyond_bmp():
    # 𠮷 (U+20BB7) is the variant of 吉 in the name of the Yoshinoya restaurant chain. ICU
    # reports offsets in UTF-16 code units, which must not shift the following tokens.
    tokens = tokenize("𠮷野家で食べた")
    assert "".join(tokens) == "𠮷野家で食べた"
    assert tokens[0].startswith("𠮷")
    assert "で" in tokens


# Chinese ------------------------------------------------------------------------------


def test_chinese_known_words_are_tokens():
    tokens = set(tokenize(" ".join(CHINESE_NEWS) + CHINESE_ADDRESS))
    for word in ("美国", "夏威夷", "直升机", "死亡", "新华社", "香港", "记者", "金融", "管理局", "经济", "全球", "企业", "影响", "九龙", "广场"):
        assert word in tokens, word


def test_chinese_tokens_keep_every_letter():
    for sentence in CHINESE_NEWS + (CHINESE_ADDRESS,):
        assert "".join(tokenize(sentence)) == without_punctuation(sentence), sentence
        assert max(len(token) for token in tokenize(sentence)) <= 4


def test_chinese_digits_split_runs():
    runs = list(iter_token_runs("新华社香港4月22日电"))
    assert runs == [["新华社", "香港"], ["4"], ["月"], ["22"], ["日", "电"]]


# Thai, Lao ----------------------------------------------------------------------------
# The real text at hand has Thai only as single words: "เบียร์" in the bundled dump and
# "ไทย" as a language link on the Wikipedia main page. The phrases below are well-known
# ones instead: "ภาษาไทย" (Thai language), "เร็วๆ นี้" (soon) and "ພາສາລາວ" (Lao language).


def test_thai_words_are_split():
    assert tokenize("ภาษาไทย") == ["ภาษา", "ไทย"]
    assert tokenize("ไทย") == ["ไทย"]
    assert tokenize("เบียร์") == ["เบียร์"]


def test_thai_repetition_mark_joins_word():
    assert tokenize("เร็วๆ นี้") == ["เร็วๆ", "นี้"]


def test_thai_space_ends_run():
    assert list(iter_token_runs("ภาษาไทย เร็วๆ นี้")) == [["ภาษา", "ไทย"], ["เร็วๆ"], ["นี้"]]


def test_lao_words_are_split():
    assert tokenize("ພາສາລາວ") == ["ພາສາ", "ລາວ"]


# Bigram queries -----------------------------------------------------------------------


def test_join_tokens_without_space_for_cjk():
    assert join_tokens("日本", "政府") == "日本政府"
    assert join_tokens("商標", "登録") == "商標登録"
    assert join_tokens("新华社", "香港") == "新华社香港"
    assert join_tokens("ภาษา", "ไทย") == "ภาษาไทย"


def test_join_tokens_with_space_otherwise():
    assert join_tokens("New", "York") == "New York"
    assert join_tokens("iPhone", "発売") == "iPhone 発売"
    assert join_tokens("発売", "iPhone") == "発売 iPhone"
    assert join_tokens("पानी", "नहीं") == "पानी नहीं"


def test_bigrams_of_runs_read_like_text():
    # Every adjacent pair of a run, joined, appears in the sentence it came from.
    for sentence in JAPANESE_TRADEMARK + JAPANESE_KINDLE + CHINESE_NEWS:
        for run in iter_token_runs(sentence):
            for first, second in zip(run, run[1:]):
                assert join_tokens(first, second) in sentence, (first, second)


# Fast path and full path --------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_texts(samples_dir) -> list[str]:
    stripper = MarkupStripper()
    return [stripper.strip(page.text) for page in iter_articles(samples_dir / SAMPLE_DUMP, max_articles=40)]


def test_fast_and_full_path_agree_on_sample(sample_texts):
    # An ideograph at the end sends the whole text down the full path.
    for text in sample_texts:
        assert tokenize(text + "\n東") == tokenize(text) + ["東"]
        assert list(iter_token_runs(text + "\n東")) == list(iter_token_runs(text)) + [["東"]]


def test_lowercase_on_both_paths():
    assert tokenize("The Fox 東京", lowercase=True) == ["the", "fox", "東京"]
    assert list(iter_token_runs("The Fox नहीं", lowercase=True)) == [["the", "fox", "नहीं"]]


def test_icu_not_imported_for_english():
    code = (
        "import sys\n"
        "from wit_builder.queries.tokens import tokenize\n"
        "assert tokenize('New York, café') == ['New', 'York', 'café']\n"
        "assert 'icu' not in sys.modules, 'icu imported'\n"
        "assert tokenize('東京') == ['東京']\n"
        "assert 'icu' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_icu_names_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "icu", None)
    errors: list[BaseException] = []

    def tokenize_japanese() -> None:
        # A new thread has no ICU break iterator yet, so it imports icu.
        try:
            tokenize("東京")
        except ImportError as error:
            errors.append(error)

    thread = threading.Thread(target=tokenize_japanese)
    thread.start()
    thread.join()
    assert len(errors) == 1
    assert "pyicu-wheels" in str(errors[0])


# Whole real files ---------------------------------------------------------------------


def check_han_kana_runs(text: str) -> Counter:
    """Check that every run of Han and kana splits into short tokens that keep its letters."""
    tokens: Counter = Counter()
    for run in HAN_KANA_RUN.findall(text):
        run_tokens = tokenize(run)
        assert "".join(run_tokens) == run.lstrip("ー々ゝゞヽヾ"), run
        assert all(len(token) <= 10 for token in run_tokens), run_tokens
        tokens.update(run_tokens)
    return tokens


def test_japanese_pages_whole(shared_data):
    tokens: Counter = Counter()
    for name in JAPANESE_PAGES:
        text = html_text(gzip.decompress((shared_data / name).read_bytes()).decode("utf-8"))
        tokens.update(check_han_kana_runs(text))
        for token in tokenize(text):
            assert not PUNCTUATION_OR_SPACE.search(token), token
    for word in ("東京", "商標", "販売", "インストール", "パスワード", "ショートカット", "設定"):
        assert tokens[word] > 0, word
    for particle in ("の", "を", "は", "が"):
        assert tokens[particle] >= 10, particle
    single = sum(count for token, count in tokens.items() if len(token) == 1)
    assert single < 0.6 * sum(tokens.values())


def test_chinese_pages_of_warc_whole(samples_dir):
    tokens: Counter = Counter()
    pages = 0
    long_run_chars = 0
    long_run_tokens = 0
    with open(samples_dir / SAMPLE_WARC, "rb") as stream:
        for record in ArchiveIterator(stream):
            if record.rec_type != "response":
                continue
            text = html_text(record.content_stream().read().decode("utf-8", "replace"))
            if len(HAN_KANA_RUN.findall(text)) < 20:
                continue
            pages += 1
            tokens.update(check_han_kana_runs(text))
            for run in HAN_KANA_RUN.findall(text):
                if len(run) >= 4:
                    long_run_chars += len(run)
                    long_run_tokens += len(tokenize(run))
    assert pages >= 5
    for word in ("香港", "中国", "新华社", "记者", "发展"):
        assert tokens[word] > 0, word
    # Runs of four or more ideographs are mostly words of two or more.
    assert long_run_tokens < 0.75 * long_run_chars


@pytest.mark.parametrize("lowercase", [False, True])
def test_run_texts_match_token_runs(sample_texts, lowercase):
    texts = [*sample_texts, *JAPANESE_TRADEMARK, *JAPANESE_KINDLE, *CHINESE_NEWS, *HINDI, "Paris, France\tand  New\nYork"]
    for text in texts:
        runs = [" ".join(run) for run in iter_token_runs(text, lowercase)]
        run_texts = [" ".join(run.split()) for run in token_run_texts(text, lowercase)]
        assert run_texts == runs
        assert " ".join(run_texts).split() == tokenize(text, lowercase)
