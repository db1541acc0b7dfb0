"""Tests of the streaming MediaWiki dump reader on inline XML and on real dumps."""

from __future__ import annotations

import bz2
import codecs
import gzip
import logging
import lzma
from pathlib import Path

import pytest

from wit_builder.queries import build_queries
from wit_builder.queries.dump import (
    CASE_SENSITIVE,
    FIRST_LETTER,
    DumpFormatError,
    DumpReader,
    Namespaces,
    SiteInfo,
    declared_encoding,
    normalize_title,
    read_siteinfo,
    redirect_target_of_text,
)
from wit_builder.queries.multistream import write_multistream

SAMPLE_DUMP = "wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

SITEINFO = """
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <namespaces>
      <namespace key="-2" case="first-letter">Medium</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="1" case="first-letter">Diskussion</namespace>
      <namespace key="6" case="first-letter">Datei</namespace>
      <namespace key="14" case="first-letter">Kategorie</namespace>
    </namespaces>
  </siteinfo>"""


def page_xml(title: str, text: str, *, ns: int = 0, page_id: int = 1, redirect: str | None = None) -> str:
    redirect_element = f'<redirect title="{redirect}" />' if redirect is not None else ""
    return f"""
  <page>
    <title>{title}</title>
    <ns>{ns}</ns>
    <id>{page_id}</id>
    {redirect_element}
    <revision>
      <id>{page_id * 10}</id>
      <model>wikitext</model>
      <format>text/x-wiki</format>
      <text bytes="{len(text)}" xml:space="preserve">{text}</text>
    </revision>
  </page>"""


def dump_xml(pages: list[str], *, version: str = "0.10", siteinfo: str = SITEINFO) -> str:
    return (
        f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-{version}/" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="{version}" xml:lang="en">'
        f"{siteinfo}{''.join(pages)}\n</mediawiki>\n"
    )


def write_dump(folder: Path, xml: str, name: str = "dump.xml") -> Path:
    path = folder / name
    if name.endswith(".bz2"):
        path.write_bytes(bz2.compress(xml.encode("utf-8")))
    else:
        path.write_text(xml, encoding="utf-8")
    return path


REDIRECT_TEXTS = [
    "#REDIRECT [[Target page]]",
    "#redirect [[Target page]]",
    "#REDIRECT[[Target page]]",
    "  #Redirect  [[Target page]]",
    "#REDIRECT:[[Target page]]",
    "#ReDiReCt [[Target page#Section]] {{R from move}}",
]


@pytest.mark.parametrize("with_element", [True, False], ids=["redirect-element", "text-only"])
@pytest.mark.parametrize("text", REDIRECT_TEXTS)
def test_redirects_skipped_in_all_spellings(tmp_path, text, with_element):
    pages = [
        page_xml("Redirect page", text, page_id=1, redirect="Target page" if with_element else None),
        page_xml("Target page", "An article about the '''target'''.", page_id=2),
    ]
    reader = DumpReader(write_dump(tmp_path, dump_xml(pages)))

    titles = [page.title for page in reader]

    assert titles == ["Target page"]
    assert reader.stats.redirects == 1
    assert reader.stats.articles == 1


def test_redirect_element_without_redirect_text(tmp_path):
    pages = [page_xml("Moved", "Some leftover text", page_id=3, redirect="New name")]
    reader = DumpReader(write_dump(tmp_path, dump_xml(pages)), include_redirects=True)

    (page,) = list(reader)

    assert page.redirect == "New name"
    assert reader.stats.articles == 0


def test_redirect_target_of_text():
    assert redirect_target_of_text("#REDIRECT [[Target page#Section|x]]") == "Target page"
    assert redirect_target_of_text("  #redirect[[Other]]") == "Other"
    assert redirect_target_of_text("#REDIRECTION is not a redirect") is None
    assert redirect_target_of_text("An article that mentions #REDIRECT later") is None


def test_article_mentioning_redirect_is_kept(tmp_path):
    pages = [page_xml("Wikitext", "A page starts with #REDIRECT [[X]] to forward readers.")]
    assert [page.title for page in DumpReader(write_dump(tmp_path, dump_xml(pages)))] == ["Wikitext"]


def test_non_article_namespaces_skipped(tmp_path):
    pages = [
        page_xml("Diskussion:Fox", "Talk text", ns=1, page_id=1),
        page_xml("Datei:Fox.jpg", "File description", ns=6, page_id=2),
        page_xml("Template:Infobox", "{{{name}}}", ns=10, page_id=3),
        page_xml("Kategorie:Animals", "Category text", ns=14, page_id=4),
        page_xml("Fox", "The fox is an animal.", ns=0, page_id=5),
    ]
    reader = DumpReader(write_dump(tmp_path, dump_xml(pages)))

    pages_read = list(reader)

    assert [(page.title, page.namespace, page.page_id) for page in pages_read] == [("Fox", 0, 5)]
    assert pages_read[0].text == "The fox is an animal."
    assert reader.stats.other_namespaces == 4
    assert reader.stats.pages_seen == 5


def test_keep_all_namespaces(tmp_path):
    pages = [page_xml("Diskussion:Fox", "Talk", ns=1, page_id=1), page_xml("Fox", "Fox", page_id=2)]
    reader = DumpReader(write_dump(tmp_path, dump_xml(pages)), keep_namespaces=None)
    assert [page.namespace for page in reader] == [1, 0]


@pytest.mark.parametrize("version", ["0.10", "0.11"])
@pytest.mark.parametrize("name", ["dump.xml", "dump.xml.bz2"])
def test_schema_versions_and_compression(tmp_path, version, name):
    pages = [page_xml("Fox", "Text one", page_id=7), page_xml("Wolf", "Text two", page_id=8)]
    reader = DumpReader(write_dump(tmp_path, dump_xml(pages, version=version), name))

    pages_read = list(reader)

    assert [(page.title, page.page_id, page.text) for page in pages_read] == [
        ("Fox", 7, "Text one"),
        ("Wolf", 8, "Text two"),
    ]


def test_siteinfo_namespaces_add_local_names(tmp_path):
    reader = DumpReader(write_dump(tmp_path, dump_xml([page_xml("Fox", "Text")])))
    list(reader)

    assert reader.namespaces.key_for("Datei") == 6
    assert reader.namespaces.key_for("kategorie") == 14
    assert reader.namespaces.key_for("Image") == 6
    assert reader.namespaces.key_for("File") == 6
    assert reader.namespaces.key_for("Fox") is None


def test_dump_without_siteinfo_uses_canonical_names(tmp_path):
    reader = DumpReader(write_dump(tmp_path, dump_xml([page_xml("Fox", "Text")], siteinfo="")))
    assert [page.title for page in reader] == ["Fox"]
    assert reader.namespaces.key_for("image") == 6


def test_missing_ns_element_inferred_from_title(tmp_path):
    xml = dump_xml([page_xml("Talk:Fox", "Talk"), page_xml("Fox", "Fox")]).replace("<ns>0</ns>", "")
    reader = DumpReader(write_dump(tmp_path, xml))
    assert [page.title for page in reader] == ["Fox"]
    assert reader.stats.other_namespaces == 1


def test_last_revision_text_is_read(tmp_path):
    history = """
  <page>
    <title>Fox</title><ns>0</ns><id>5</id>
    <revision><id>1</id><text>Old text</text></revision>
    <revision><id>2</id><text>Current text</text></revision>
  </page>"""
    (page,) = list(DumpReader(write_dump(tmp_path, dump_xml([history]))))
    assert page.text == "Current text"


def test_deleted_text_is_empty(tmp_path):
    xml = dump_xml([page_xml("Fox", "placeholder")]).replace(
        '<text bytes="11" xml:space="preserve">placeholder</text>', '<text deleted="deleted" />'
    )
    (page,) = list(DumpReader(write_dump(tmp_path, xml)))
    assert page.text == ""


def test_max_articles_stops_early(tmp_path):
    pages = [page_xml(f"Page {index}", "Text", page_id=index) for index in range(1, 6)]
    reader = DumpReader(write_dump(tmp_path, dump_xml(pages)), max_articles=2)
    assert [page.title for page in reader] == ["Page 1", "Page 2"]
    assert reader.stats.stop_reason == "reached max_articles=2"


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="dump not found"):
        DumpReader(tmp_path / "missing.xml.bz2")


def test_not_xml_raises_format_error(tmp_path):
    path = tmp_path / "notes.xml"
    path.write_text("this is not XML at all", encoding="utf-8")
    with pytest.raises(DumpFormatError, match="not a MediaWiki XML dump"):
        list(DumpReader(path))


def test_other_root_element_raises_format_error(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_text("<rss><channel><title>x</title></channel></rss>", encoding="utf-8")
    with pytest.raises(DumpFormatError, match="root element is <rss>"):
        list(DumpReader(path))


def test_not_bz2_raises_format_error(tmp_path):
    path = tmp_path / "dump.xml.bz2"
    path.write_text(dump_xml([page_xml("Fox", "Text")]), encoding="utf-8")
    with pytest.raises(DumpFormatError, match="cannot be decompressed"):
        list(DumpReader(path))


def test_normalize_title():
    assert normalize_title("red_fox") == "Red fox"
    assert normalize_title("  New   York ") == "New York"
    assert normalize_title("iPhone") == "IPhone"


def test_namespace_lookup_ignores_case_and_underscores():
    namespaces = Namespaces.default()
    assert namespaces.key_for("user_TALK") == 3
    assert namespaces.namespace_of_title("Category:Foxes") == 14
    assert namespaces.namespace_of_title("Star Wars: A New Hope") == 0


# Real dumps --------------------------------------------------------------------------


def cut_sample_xml(samples_dir: Path, page_number: int) -> tuple[bytes, list[str]]:
    """Return the sample dump's XML cut in the middle of page ``page_number`` and the titles before it."""
    xml = bz2.decompress((samples_dir / SAMPLE_DUMP).read_bytes())
    offset = -1
    for _ in range(page_number):
        offset = xml.index(b"<page>", offset + 1)
    text_start = xml.index(b"<text", offset)
    cut = (text_start + xml.index(b"</text>", text_start)) // 2
    return xml[:cut], titles_in(xml[:offset])


def titles_in(xml: bytes) -> list[str]:
    return [chunk.split(b"</title>")[0].decode("utf-8") for chunk in xml.split(b"<title>")[1:]]


def test_truncated_dump_yields_complete_pages(tmp_path, samples_dir, caplog):
    xml, titles_before = cut_sample_xml(samples_dir, page_number=40)
    path = tmp_path / "cut.xml"
    path.write_bytes(xml)
    reader = DumpReader(path, keep_namespaces=None, include_redirects=True)

    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.dump"):
        pages = list(reader)

    assert [page.title for page in pages] == titles_before
    assert len(pages) == 39
    assert reader.stats.truncated
    assert "line" in reader.stats.stop_reason
    assert titles_before[-1] in caplog.text
    assert "stopped after page" in caplog.text


def test_truncated_bz2_yields_complete_pages(tmp_path, samples_dir, caplog):
    compressed = (samples_dir / SAMPLE_DUMP).read_bytes()
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(compressed[: len(compressed) // 2])
    reader = DumpReader(path, keep_namespaces=None, include_redirects=True)

    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.dump"):
        pages = list(reader)

    assert 10 < len(pages) < 206
    assert pages[0].title == "AccessibleComputing"
    assert reader.stats.truncated
    assert "cut off" in reader.stats.stop_reason
    assert pages[-1].title in caplog.text


def test_sample_dump_counts(samples_dir):
    reader = DumpReader(samples_dir / SAMPLE_DUMP, keep_namespaces=None, include_redirects=True)
    pages = list(reader)

    assert reader.stats.pages_seen == 206
    assert reader.stats.redirects == 100
    assert sum(1 for page in pages if page.namespace != 0) == 1
    articles = [page for page in pages if page.redirect is None and page.namespace == 0]
    assert articles[0].title == "Anarchism"
    assert articles[0].page_id == 12
    assert "anarchism" in articles[0].text.lower()


@pytest.mark.parametrize(
    ("name", "pages_seen", "articles", "redirects"),
    [
        ("enwiki-20250201-tiny_dump-70pages.xml.bz2", 70, 6, 64),
        ("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2", 206, 106, 99),
        ("enwiki-table-markup.xml.bz2", 5, 5, 0),
    ],
)
def test_shared_dumps_counts(shared_data, name, pages_seen, articles, redirects):
    reader = DumpReader(shared_data / "wikipedia" / name)
    titles = [page.title for page in reader]

    assert reader.stats.pages_seen == pages_seen
    assert reader.stats.articles == articles
    assert reader.stats.redirects == redirects
    assert len(titles) == articles
    assert not reader.stats.truncated


# Compression, truncation and corruption -------------------------------------------------


def page_tuples(reader: DumpReader) -> list[tuple]:
    return [(page.title, page.namespace, page.page_id, page.text, page.redirect) for page in reader]


def all_pages(path: Path) -> list[tuple]:
    return page_tuples(DumpReader(path, keep_namespaces=None, include_redirects=True))


@pytest.fixture(scope="module")
def sample_xml(samples_dir) -> bytes:
    return bz2.decompress((samples_dir / SAMPLE_DUMP).read_bytes())


@pytest.fixture(scope="module")
def sample_pages(samples_dir) -> list[tuple]:
    return all_pages(samples_dir / SAMPLE_DUMP)


@pytest.mark.parametrize("name", ["dump.xml", "dump.xml.gz", "dump.xml.xz", "multistream.xml.bz2"])
def test_compressed_forms_give_same_pages(tmp_path, sample_xml, sample_pages, name):
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(sample_xml, compresslevel=1))
    elif name.endswith(".xz"):
        path.write_bytes(lzma.compress(sample_xml, preset=0))
    elif name.startswith("multistream"):
        plain = tmp_path / "source.xml"
        plain.write_bytes(sample_xml)
        write_multistream(plain, path, tmp_path / "index.txt.bz2", pages_per_stream=50)
    else:
        path.write_bytes(sample_xml)
    reader = DumpReader(path, keep_namespaces=None, include_redirects=True)

    assert page_tuples(reader) == sample_pages
    assert reader.stats.pages_seen == 206
    assert not reader.stats.truncated
    assert read_siteinfo(path).sitename == "Wikipedia"


@pytest.mark.parametrize("suffix", [".gz", ".xz"])
def test_truncated_gz_and_xz_yield_complete_pages(tmp_path, sample_xml, sample_pages, caplog, suffix):
    if suffix == ".gz":
        data = gzip.compress(sample_xml, compresslevel=1)
    else:
        data = lzma.compress(sample_xml, preset=0)
    path = tmp_path / f"cut.xml{suffix}"
    path.write_bytes(data[: len(data) // 2])
    reader = DumpReader(path, keep_namespaces=None, include_redirects=True)

    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.dump"):
        pages = page_tuples(reader)

    assert 10 < len(pages) < 206
    assert pages == sample_pages[: len(pages)]
    assert reader.stats.truncated
    assert "cut off" in reader.stats.stop_reason
    assert f"stopped after page {pages[-1][0]!r}" in caplog.text


def complete_pages_in_cut_bz2(data: bytes) -> int:
    """Return the number of complete pages that the bzip2 blocks before the cut decode to."""
    return bz2.BZ2Decompressor().decompress(data).count(b"</page>")


def test_truncated_bz2_keeps_every_decodable_page(samples_dir, tmp_path, sample_pages):
    data = (samples_dir / SAMPLE_DUMP).read_bytes()
    cut = data[: int(len(data) * 0.3)]
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes(cut)

    pages = all_pages(path)

    assert complete_pages_in_cut_bz2(cut) == 97
    assert pages == sample_pages[:97]


def test_corrupt_bz2_block_stops_with_warning(tmp_path, sample_xml, sample_pages, caplog):
    data = bytearray(bz2.compress(sample_xml, compresslevel=1))
    middle = len(data) // 2
    data[middle : middle + 64] = b"\x55" * 64
    path = tmp_path / "corrupt.xml.bz2"
    path.write_bytes(bytes(data))
    reader = DumpReader(path, keep_namespaces=None, include_redirects=True)

    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.dump"):
        pages = page_tuples(reader)

    assert 10 < len(pages) < 206
    assert pages == sample_pages[: len(pages)]
    assert reader.stats.truncated
    assert "stopped after page" in caplog.text


def corrupt_gz(xml: bytes) -> bytes:
    """Return ``xml`` as two gzip members, the second with an invalid deflate block type."""
    half = len(xml) // 2
    second = bytearray(gzip.compress(xml[half:], compresslevel=1, mtime=0))
    # Byte 10 starts the deflate data, and 0x07 marks a final block of the reserved type 3.
    second[10] = 0x07
    return gzip.compress(xml[:half], compresslevel=1, mtime=0) + bytes(second)


def corrupt_xz(xml: bytes) -> bytes:
    """Return ``xml`` as .xz whose stream footer is damaged, so the error comes after all the data."""
    data = bytearray(lzma.compress(xml, preset=0))
    data[-11] ^= 0xFF  # A byte of the footer's backward size.
    return bytes(data)


@pytest.mark.parametrize("suffix", [".gz", ".xz"])
def test_corrupt_gz_and_xz_stop_with_warning(tmp_path, sample_xml, sample_pages, caplog, suffix):
    path = tmp_path / f"corrupt.xml{suffix}"
    path.write_bytes(corrupt_gz(sample_xml) if suffix == ".gz" else corrupt_xz(sample_xml))
    reader = DumpReader(path, keep_namespaces=None, include_redirects=True)

    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.dump"):
        pages = page_tuples(reader)

    assert len(pages) > 100
    assert pages == sample_pages[: len(pages)]
    assert reader.stats.truncated
    assert "stopped after page" in caplog.text


def test_cut_before_first_block_raises(samples_dir, tmp_path):
    path = tmp_path / "cut.xml.bz2"
    path.write_bytes((samples_dir / SAMPLE_DUMP).read_bytes()[:50_000])
    with pytest.raises(DumpFormatError, match="cannot be decompressed"):
        list(DumpReader(path))


# Encodings ----------------------------------------------------------------------------

# (name in the XML declaration, Python codec) of the encodings a dump may declare.
DECLARED_ENCODINGS = [
    ("windows-1252", "cp1252"),
    ("ISO-8859-1", "latin-1"),
    ("UTF-16", "utf-16"),
    ("EUC-KR", "euc_kr"),
    ("Shift_JIS", "shift_jis"),
]


def encode_xml(text: str, codec: str) -> bytes:
    """Encode XML text in ``codec``, writing each character the codec cannot round-trip as a character reference.

    Shift_JIS, for one, writes "¥" as the byte that decodes to a backslash.
    """
    escaped = {
        char: f"&#{ord(char)};"
        for char in set(text)
        if ord(char) > 127 and char.encode(codec, errors="replace").decode(codec, errors="replace") != char
    }
    if escaped:
        text = "".join(escaped.get(char, char) for char in text)
    return text.encode(codec)


def declared(xml: str, encoding: str) -> str:
    return f'<?xml version="1.0" encoding="{encoding}"?>\n{xml}'


@pytest.mark.parametrize(("encoding", "codec"), DECLARED_ENCODINGS)
def test_recoded_sample_gives_same_pages(tmp_path, sample_xml, sample_pages, encoding, codec):
    path = tmp_path / "recoded.xml"
    path.write_bytes(encode_xml(declared(sample_xml.decode("utf-8"), encoding), codec))
    reader = DumpReader(path, keep_namespaces=None, include_redirects=True)

    assert page_tuples(reader) == sample_pages
    assert reader.siteinfo.encoding == codecs.lookup(codec).name
    assert read_siteinfo(path).encoding == codecs.lookup(codec).name


# Korean from an entermedia.co.kr column (news_view.html?idx=8576), page html/0ec95c72…
# of scrapinghub's article-extraction-benchmark.
KOREAN_TITLE = "엘제이의 리벤지인가, 류화영의 코스프레인가"
KOREAN_SENTENCES = (
    "시작은 엘제이의 일방적인 사진 공개로부터 비롯됐다.",
    "그래서 처음 이러한 사진 공개에 대한 대중들의 반응은 엘제이의 행동에 대한 비난으로 이어졌다.",
)
# Japanese from a blog post on the Kindle for PC hotkey (note100yen.com/en-180816.html),
# page html/f105de6e… of the same benchmark.
JAPANESE_TITLE = "Kindle for PCの起動ホットキーがKeePassと被る"
JAPANESE_SENTENCES = (
    "そんな用途を考慮してか、Kindleや楽天koboにはデスクトップアプリが用意されています。",
    "これが非常に困ったもの。",
)

KOREAN_SITEINFO = """
  <siteinfo>
    <sitename>위키백과</sitename>
    <dbname>kowiki</dbname>
    <case>first-letter</case>
    <namespaces>
      <namespace key="0" case="first-letter" />
      <namespace key="6" case="first-letter">파일</namespace>
      <namespace key="14" case="first-letter">분류</namespace>
    </namespaces>
  </siteinfo>"""


def cjk_dump(title: str, sentences: tuple[str, ...], siteinfo: str, category: str) -> str:
    # The long page runs past the recoder's 64 KiB reads, so some multi-byte characters straddle two reads.
    long_text = "\n".join(sentences * 1_500)
    pages = [
        page_xml(title, "\n".join(sentences), page_id=1),
        page_xml(sentences[1][:8], long_text, page_id=2),
        page_xml(f"{category}:{title[:4]}", sentences[0], ns=14, page_id=3),
    ]
    return dump_xml(pages, siteinfo=siteinfo)


@pytest.mark.parametrize(
    ("encoding", "codec", "title", "sentences", "siteinfo", "category"),
    [
        ("EUC-KR", "euc_kr", KOREAN_TITLE, KOREAN_SENTENCES, KOREAN_SITEINFO, "분류"),
        ("Shift_JIS", "shift_jis", JAPANESE_TITLE, JAPANESE_SENTENCES, SITEINFO, "Kategorie"),
        ("UTF-16", "utf-16", JAPANESE_TITLE, JAPANESE_SENTENCES, KOREAN_SITEINFO, "분류"),
        ("windows-1252", "cp1252", "Crème brûlée", ("Crème brûlée is a dessert.", "Œuvres — “quoted” ½ €5."), SITEINFO, "Kategorie"),
    ],
    ids=["EUC-KR", "Shift_JIS", "UTF-16", "windows-1252"],
)
def test_cjk_pages_in_declared_encoding(tmp_path, encoding, codec, title, sentences, siteinfo, category):
    xml = declared(cjk_dump(title, sentences, siteinfo, category), encoding)
    utf8_path = tmp_path / "utf8.xml"
    utf8_path.write_bytes(xml.replace(f'encoding="{encoding}"', 'encoding="UTF-8"').encode("utf-8"))
    recoded_path = tmp_path / "recoded.xml.bz2"
    recoded_path.write_bytes(bz2.compress(xml.encode(codec)))

    expected = all_pages(utf8_path)
    pages = all_pages(recoded_path)

    assert pages == expected
    assert [page[0] for page in pages] == [title, sentences[1][:8], f"{category}:{title[:4]}"]
    assert [page[1] for page in pages] == [0, 0, 14]
    assert len(pages[1][3].encode(codec)) > 1 << 16
    assert [page.title for page in DumpReader(recoded_path)] == [title, sentences[1][:8]]
    assert read_siteinfo(recoded_path).sitename == read_siteinfo(utf8_path).sitename


@pytest.mark.parametrize("name", ["UTF8", "utf_8"])
def test_utf8_alias_declaration(tmp_path, name):
    path = write_dump(tmp_path, declared(dump_xml([page_xml("Café", "Crème brûlée")]), name))
    assert [(page.title, page.text) for page in DumpReader(path)] == [("Café", "Crème brûlée")]


@pytest.mark.parametrize("name", ["x-no-such-encoding", "utf-9"])
def test_unknown_encoding_raises_format_error(tmp_path, name):
    path = write_dump(tmp_path, declared(dump_xml([page_xml("Fox", "Text")]), name))

    with pytest.raises(DumpFormatError, match=f"unknown encoding '{name}'"):
        list(DumpReader(path))
    with pytest.raises(DumpFormatError, match="unknown encoding"):
        read_siteinfo(path)
    with pytest.raises(DumpFormatError, match="unknown encoding"):
        build_queries(path, tmp_path / "out", progress=False)


@pytest.mark.parametrize("name", ["base64", "rot13"])
def test_non_text_codec_raises_format_error(tmp_path, name):
    path = write_dump(tmp_path, declared(dump_xml([page_xml("Fox", "Text")]), name))
    with pytest.raises(DumpFormatError, match="encoding"):
        list(DumpReader(path))


def test_declared_encoding():
    assert declared_encoding(b"<mediawiki>") == "utf-8"
    assert declared_encoding(b'<?xml version="1.0"?><mediawiki>') == "utf-8"
    assert declared_encoding(b"<?xml version='1.0' encoding='Shift_JIS'?>") == "shift_jis"
    assert declared_encoding(b'<?xml version="1.0" encoding = "EUC-KR" ?>') == "euc_kr"
    assert declared_encoding(b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>') == "utf-8"
    assert declared_encoding('<?xml version="1.0" encoding="UTF-16"?>'.encode("utf-16")) == "utf-16"
    with pytest.raises(DumpFormatError, match="unknown encoding 'klingon'"):
        declared_encoding(b'<?xml version="1.0" encoding="klingon"?>')


# Siteinfo: local namespace names and the case rule -------------------------------------


def korean_pages(with_ns: bool) -> list[str]:
    pages = [
        page_xml("고양이", "고양이는 작은 포유류이다. [[파일:Cat.jpg|섬네일|잠자는 고양이]] [[분류:포유류]]", page_id=1),
        page_xml("파일:Cat.jpg", "사진 설명", ns=6, page_id=2),
        page_xml("분류:포유류", "포유류 분류", ns=14, page_id=3),
        page_xml("개", "개는 포유류이다.", page_id=4),
    ]
    if not with_ns:
        pages = [page.replace("<ns>0</ns>", "").replace("<ns>6</ns>", "").replace("<ns>14</ns>", "") for page in pages]
    return pages


@pytest.mark.parametrize("with_ns", [True, False], ids=["ns-element", "title-prefix"])
def test_korean_namespaces_are_not_articles(tmp_path, with_ns):
    path = write_dump(tmp_path, dump_xml(korean_pages(with_ns), siteinfo=KOREAN_SITEINFO), "kowiki.xml.bz2")
    reader = DumpReader(path)

    titles = [page.title for page in reader]

    assert titles == ["고양이", "개"]
    assert reader.stats.other_namespaces == 2
    assert reader.namespaces.key_for("파일") == 6
    assert reader.namespaces.key_for("분류") == 14
    assert reader.namespaces.key_for("File") == 6


def test_read_siteinfo_korean(tmp_path):
    path = write_dump(tmp_path, dump_xml(korean_pages(True), siteinfo=KOREAN_SITEINFO), "kowiki.xml.bz2")

    info = read_siteinfo(path)

    assert info.sitename == "위키백과"
    assert info.dbname == "kowiki"
    assert info.language == "en"
    assert info.case == FIRST_LETTER
    assert info.namespaces.names_of(6) >= {"파일", "file", "image"}
    assert info.namespaces.names_of(14) >= {"분류", "category"}


def test_read_siteinfo_case_sensitive(tmp_path):
    siteinfo = KOREAN_SITEINFO.replace("<case>first-letter</case>", "<case>case-sensitive</case>")
    path = write_dump(tmp_path, dump_xml([page_xml("iPhone", "Text")], siteinfo=siteinfo))

    info = read_siteinfo(path)

    assert info.case == CASE_SENSITIVE
    assert not info.first_letter_case
    assert info.normalize_title("iPhone_14") == "iPhone 14"
    assert SiteInfo().normalize_title("iPhone_14") == "IPhone 14"
    assert normalize_title(" ébène  noire ", first_letter=False) == "ébène noire"
    assert normalize_title("ébène") == "Ébène"
