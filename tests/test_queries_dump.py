"""Tests of the streaming MediaWiki dump reader on inline XML and on real dumps."""

from __future__ import annotations

import bz2
import logging
from pathlib import Path

import pytest

from wit_builder.queries.dump import DumpFormatError, DumpReader, Namespaces, normalize_title, redirect_target_of_text

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
    assert "ends early" in reader.stats.stop_reason
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
