"""Query builds from dumps of wikis in other languages: Japanese siteinfo, text and file links."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

from selectolax.lexbor import LexborHTMLParser
from test_queries_tokens import JAPANESE_KINDLE, JAPANESE_PAGES, JAPANESE_TRADEMARK

from wit_builder.parquet import read_records
from wit_builder.queries import build_queries
from wit_builder.records import QueryEntry

JA_SITEINFO = """
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>jawiki</dbname>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="6" case="first-letter">ファイル</namespace>
      <namespace key="10" case="first-letter">Template</namespace>
      <namespace key="14" case="first-letter">Category</namespace>
    </namespaces>
  </siteinfo>"""


def ja_dump(folder: Path, texts: list[str]) -> Path:
    """Write a jawiki-style dump with one article per text, each with a file link and a category."""
    pages = []
    for number, text in enumerate(texts, start=1):
        wikitext = (
            f"[[ファイル:Photo{number}.jpg|サムネイル|右|220px|東京の写真]]\n"
            f"{{{{出典の明記|date=2024年1月}}}}\n{text}\n[[Category:日本]]"
        )
        escaped = wikitext.replace("&", "&amp;").replace("<", "&lt;")
        pages.append(
            f"<page><title>記事{number}</title><ns>0</ns><id>{number}</id>"
            f'<revision><id>{number * 10}</id><text xml:space="preserve">{escaped}</text></revision></page>'
        )
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="ja">'
        f"{JA_SITEINFO}{''.join(pages)}</mediawiki>"
    )
    path = folder / "jawiki.xml.bz2"
    path.write_bytes(bz2.compress(xml.encode("utf-8")))
    return path


def build_japanese(folder: Path, texts: list[str]) -> list[QueryEntry]:
    dump = ja_dump(folder, texts)
    result = build_queries(
        dump, folder / "out", min_count=2, bigram_min_count=2, pmi_threshold=0.0, progress=False
    )
    return read_records(result.queries_path, QueryEntry)


def test_japanese_build_gives_words_and_joined_bigrams(tmp_path):
    texts = [*JAPANESE_TRADEMARK, *JAPANESE_KINDLE] * 2
    entries = build_japanese(tmp_path, texts)
    unigrams = {entry.query for entry in entries if entry.kind == "unigram"}
    bigrams = {entry.query for entry in entries if entry.kind == "bigram"}
    joined = "".join(texts) + "東京の写真"

    assert {"商標", "販売", "設定", "変更"} <= unigrams
    assert all(len(word) <= 8 for word in unigrams)
    japanese_bigrams = [pair for pair in bigrams if not pair.isascii()]
    assert japanese_bigrams
    assert all(" " not in pair for pair in japanese_bigrams)
    assert all(pair in joined for pair in japanese_bigrams)


def test_japanese_file_link_keeps_only_caption(tmp_path):
    entries = build_japanese(tmp_path, list(JAPANESE_KINDLE) * 2)
    queries = {entry.query for entry in entries}

    assert "東京" in queries
    assert "写真" in queries
    assert "サムネイル" not in queries
    assert "220px" not in queries
    assert "px" not in queries
    assert not any(query.startswith("Photo") for query in queries)
    assert "出典" not in queries


def test_japanese_build_from_real_pages(shared_data, tmp_path):
    texts = []
    for page in JAPANESE_PAGES:
        html = gzip.decompress((shared_data / page).read_bytes()).decode("utf-8", "replace")
        body = LexborHTMLParser(html).body
        texts.extend(line for line in body.text(separator="\n").splitlines() if line.strip())
    entries = build_japanese(tmp_path, texts)
    unigrams = {entry.query for entry in entries if entry.kind == "unigram"}
    bigrams = [entry.query for entry in entries if entry.kind == "bigram" and " " not in entry.query]

    assert len(unigrams) > 100
    assert {"商標", "登録"} <= unigrams
    assert "の" in unigrams
    assert max(len(word) for word in unigrams if not word.isascii()) <= 12
    assert len(bigrams) > 10


def test_japanese_titles_keep_script(tmp_path):
    entries = build_japanese(tmp_path, ["東京の写真", "東京の写真"])
    titles = {entry.query for entry in entries if entry.kind == "title"}

    assert titles == {"記事1", "記事2"}
