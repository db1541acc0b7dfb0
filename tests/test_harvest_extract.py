"""Extraction of (image URL, text) candidates and links from small HTML cases."""

from __future__ import annotations

import itertools
from urllib.parse import urljoin

import pytest

from wit_builder.harvest.decode import declared_charset, decode_html, sniff_charset
from wit_builder.harvest.extract import (
    extract_candidates,
    extract_links,
    extract_page,
    language_tag,
    largest_srcset_entry,
    parse_srcset,
)
from wit_builder.harvest.urls import normalize_url, resolve_url
from wit_builder.records import TextSource, candidate_id

PAGE = "http://example.com/blog/post.html"


def pairs(html: str, page_url: str = PAGE) -> set[tuple[str, str, str]]:
    return {(c.url, c.text, c.text_source) for c in extract_candidates(html, page_url, "test")}


def test_relative_src_resolved_against_page():
    assert pairs('<img src="images/a.jpg" alt="A cat">') == {("http://example.com/blog/images/a.jpg", "A cat", "alt")}
    assert pairs('<img src="../b.jpg" alt="B">') == {("http://example.com/b.jpg", "B", "alt")}
    assert pairs('<img src="/c.jpg" alt="C">') == {("http://example.com/c.jpg", "C", "alt")}
    assert pairs('<img src="//cdn.example.net/d.jpg" alt="D">') == {("http://cdn.example.net/d.jpg", "D", "alt")}


def test_base_href_respected():
    html = '<html><head><base href="https://static.example.org/photos/"></head><body><img src="e.jpg" alt="E"></body></html>'
    assert pairs(html) == {("https://static.example.org/photos/e.jpg", "E", "alt")}


def test_relative_base_href_joined_with_page_url():
    html = '<head><base href="/media/"></head><img src="f.jpg" alt="F">'
    assert pairs(html) == {("http://example.com/media/f.jpg", "F", "alt")}


def test_srcset_largest_width_when_no_src():
    html = '<img srcset="small.jpg 320w, large.jpg 1280w, medium.jpg 640w" alt="Sizes">'
    assert pairs(html) == {("http://example.com/blog/large.jpg", "Sizes", "alt")}


def test_srcset_largest_density_when_no_src():
    html = '<img srcset="one.jpg, three.jpg 3x, two.jpg 2x" alt="Densities">'
    assert pairs(html) == {("http://example.com/blog/three.jpg", "Densities", "alt")}


def test_src_preferred_over_srcset():
    html = '<img src="fallback.jpg" srcset="big.jpg 2000w" alt="Both">'
    assert pairs(html) == {("http://example.com/blog/fallback.jpg", "Both", "alt")}


def test_parse_srcset_keeps_commas_inside_urls():
    entries = parse_srcset("https://img.example.com/w_200,h_100/a.jpg 200w, https://img.example.com/w_800,h_400/a.jpg 800w")
    assert [entry.url for entry in entries] == [
        "https://img.example.com/w_200,h_100/a.jpg",
        "https://img.example.com/w_800,h_400/a.jpg",
    ]
    assert largest_srcset_entry(entries).width == 800


def test_parse_srcset_skips_invalid_descriptor():
    entries = parse_srcset("a.jpg 2x, b.jpg big, c.jpg 100w 50h")
    assert [entry.url for entry in entries] == ["a.jpg", "c.jpg"]


@pytest.mark.parametrize("attribute", ["data-src", "data-lazy-src", "data-original"])
def test_lazy_loading_attribute_used_when_src_is_placeholder(attribute):
    html = f'<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" {attribute}="/real.jpg" alt="Lazy">'
    assert pairs(html) == {("http://example.com/real.jpg", "Lazy", "alt")}


def test_lazy_data_srcset_largest():
    html = '<img data-srcset="/s.jpg 300w, /l.jpg 900w" alt="Lazy set">'
    assert pairs(html) == {("http://example.com/l.jpg", "Lazy set", "alt")}


def test_picture_source_when_img_lacks_url():
    html = (
        '<picture><source type="image/webp" srcset="/p-1x.webp 1x, /p-2x.webp 2x">'
        '<source srcset="/p-wide.jpg 1600w"><img alt="Picture"></picture>'
    )
    assert pairs(html) == {("http://example.com/p-wide.jpg", "Picture", "alt")}


def test_picture_img_src_wins_over_sources():
    html = '<picture><source srcset="/p-2x.webp 2x"><img src="/p.jpg" alt="Picture"></picture>'
    assert pairs(html) == {("http://example.com/p.jpg", "Picture", "alt")}


def test_alt_title_figcaption_each_a_candidate():
    html = (
        '<figure><img src="/dog.jpg" alt="A dog" title="Rex">'
        "<figcaption>  Rex   runs on\n the <em>beach</em> </figcaption></figure>"
    )
    assert pairs(html) == {
        ("http://example.com/dog.jpg", "A dog", TextSource.ALT.value),
        ("http://example.com/dog.jpg", "Rex", TextSource.TITLE.value),
        ("http://example.com/dog.jpg", "Rex runs on the beach", TextSource.FIGCAPTION.value),
    }


def test_figcaption_from_enclosing_figure_through_link():
    html = '<figure class="card"><a href="/p"><img src="/x.jpg" alt=""></a><figcaption>Caption</figcaption></figure>'
    assert pairs(html) == {("http://example.com/x.jpg", "Caption", "figcaption")}


def test_figcaption_outside_figure_ignored():
    html = '<div><img src="/x.jpg" alt="Alt"></div><figure><figcaption>Other</figcaption></figure>'
    assert pairs(html) == {("http://example.com/x.jpg", "Alt", "alt")}


def test_empty_and_whitespace_texts_dropped():
    page = extract_page('<img src="/a.jpg" alt="  " title="">', PAGE, "test")
    assert page.candidates == []
    assert page.dropped["no_text"] == 1


@pytest.mark.parametrize(
    "html, reason",
    [
        ('<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">', "unsupported_scheme"),
        ('<img src="javascript:void(0)" alt="script">', "unsupported_scheme"),
        ('<img src="blob:http://example.com/1234" alt="blob">', "unsupported_scheme"),
        ('<img src="/logo.svg" alt="logo">', "svg"),
        ('<img src="/logo.SVG?v=2" alt="logo">', "svg"),
        ('<img src="/pixel.gif" width="1" height="1" alt="pixel">', "tiny"),
        ('<img src="/spacer.gif" width="600" height="2px" alt="spacer">', "tiny"),
        ('<img src="/track.gif" style="width:1px;height:1px" alt="track">', "tiny"),
        ('<img alt="no source">', "no_url"),
        ('<img src="ftp://example.com/a.jpg" alt="ftp">', "invalid_url"),
    ],
)
def test_unusable_images_dropped(html, reason):
    page = extract_page(html, PAGE, "test")
    assert page.candidates == []
    assert dict(page.dropped) == {reason: 1}


def test_small_but_not_tiny_image_kept():
    assert pairs('<img src="/icon.png" width="16" height="16" alt="icon">') == {("http://example.com/icon.png", "icon", "alt")}


def test_fragment_dropped_from_image_url():
    assert pairs('<img src="/a.jpg#section" alt="A">') == {("http://example.com/a.jpg", "A", "alt")}


def test_entities_and_whitespace_normalized():
    assert pairs('<img src="/a.jpg?x=1&amp;y=2" alt="Caf&eacute;\n\t au  lait">') == {
        ("http://example.com/a.jpg?x=1&y=2", "Café au lait", "alt")
    }


def test_exact_repeats_removed_within_page():
    html = '<img src="/a.jpg" alt="Same"><img src="/a.jpg#top" alt=" Same "><img src="/b.jpg" alt="Same">'
    page = extract_page(html, PAGE, "test")
    assert [(c.url, c.text) for c in page.candidates] == [
        ("http://example.com/a.jpg", "Same"),
        ("http://example.com/b.jpg", "Same"),
    ]
    assert page.duplicates == 1


def test_candidate_fields():
    (candidate,) = extract_candidates('<html lang="de-CH"><img src="/hund.jpg" alt="Ein Hund läuft im Schnee">', PAGE, "crawl")
    assert candidate.candidate_id == candidate_id("http://example.com/hund.jpg", "Ein Hund läuft im Schnee")
    assert candidate.page_url == PAGE
    assert candidate.source == "crawl"
    assert candidate.page_language == "de-CH"


def test_page_language_missing_is_none():
    (candidate,) = extract_candidates('<img src="/a.jpg" alt="A">', PAGE, "crawl")
    assert candidate.page_language is None


def test_bytes_input_decoded_with_meta_charset():
    html = '<meta charset="windows-1252"><img src="/a.jpg" alt="Crème brûlée">'.encode("cp1252")
    assert pairs(html) == {("http://example.com/a.jpg", "Crème brûlée", "alt")}


def test_links_resolved_deduplicated_and_filtered():
    html = (
        '<base href="/docs/"><a href="intro.html#part2">Intro</a><a href="intro.html">Again</a>'
        '<a href="https://other.example.net/">Other</a><a href="mailto:me@example.com">Mail</a>'
        '<a href="javascript:void(0)">Script</a><a href="#top">Top</a><a>No href</a>'
    )
    assert extract_links(html, PAGE) == [
        "http://example.com/docs/intro.html",
        "https://other.example.net/",
        "http://example.com/docs/",
    ]


def test_charset_header_wins_over_meta():
    body = '<meta charset="utf-8"><p>Привет</p>'.encode("cp1251")
    assert sniff_charset(body, "text/html; charset=windows-1251") == "cp1251"
    assert "Привет" in decode_html(body, "text/html; charset=windows-1251")


def test_charset_aliases_and_fallbacks():
    assert sniff_charset(b"<meta http-equiv='Content-Type' content='text/html; charset=gb2312'>") == "gb18030"
    assert sniff_charset(b"<p>plain</p>", "text/html; charset=iso-8859-1") == "cp1252"
    assert sniff_charset(b"<p>plain</p>", "text/html; charset=no-such-charset") == "utf-8"
    assert sniff_charset(b"\xef\xbb\xbf<p>bom</p>", "text/html; charset=iso-8859-1") == "utf-8"
    assert decode_html(b"<p>\xff broken</p>", "text/html; charset=utf-8") == "<p>\ufffd broken</p>"


@pytest.mark.parametrize(
    "reference, expected",
    [
        ("/a.jpg#section", "http://example.com/a.jpg"),
        ("HTTP://Bücher.Example/x.jpg", "http://xn--bcher-kva.example/x.jpg"),
        ("http://EXAMPLE.org/Photo.JPG", "http://example.org/Photo.JPG"),
        ("http://example.org:80/a.jpg", "http://example.org/a.jpg"),
        ("https://example.org:443/a.jpg", "https://example.org/a.jpg"),
        ("https://example.org:8443/a.jpg", "https://example.org:8443/a.jpg"),
        ("/photos/my cat.jpg", "http://example.com/photos/my%20cat.jpg"),
        ("/fotos/gâteau.jpg?größe=groß", "http://example.com/fotos/g%C3%A2teau.jpg?gr%C3%B6%C3%9Fe=gro%C3%9F"),
        ("/%e4%b8%ad.jpg", "http://example.com/%E4%B8%AD.jpg"),
        ("/%E4%B8%AD%20x.jpg", "http://example.com/%E4%B8%AD%20x.jpg"),
        ("/100%.jpg", "http://example.com/100%.jpg"),
        ("/a/%2Fb.jpg", "http://example.com/a/%2Fb.jpg"),
        ("/a/./b/../c.jpg", "http://example.com/a/c.jpg"),
        ("http://example.org/a/../../b.jpg", "http://example.org/b.jpg"),
        ("..\\img\\d.jpg", "http://example.com/img/d.jpg"),
        ("//cdn.example.net/x.jpg", "http://cdn.example.net/x.jpg"),
        ("http://example.org", "http://example.org/"),
        ('/q.jpg?a="b"&c=<d>', "http://example.com/q.jpg?a=%22b%22&c=%3Cd%3E"),
        ("http://my_host.例え.jp/a.jpg", "http://my_host.xn--r8jz45g.jp/a.jpg"),
        ("http://[2001:DB8::1]:80/a.jpg", "http://[2001:db8::1]/a.jpg"),
    ],
)
def test_image_urls_normalized(reference, expected):
    assert resolve_url(reference, PAGE) == expected
    # A normalized URL is its own normal form.
    assert normalize_url(expected) == expected


@pytest.mark.parametrize("reference", ["http://exa mple.com/a.jpg", "http://example.com:99999/a.jpg", "http://:80/a.jpg",
                                       "mailto:someone@example.com", "ftp://example.com/a.jpg"])
def test_invalid_urls_rejected(reference):
    assert resolve_url(reference, PAGE) is None


RELATIVE_REFERENCES = ["a.jpg", "./a.jpg", "../a.jpg", "../../../../a.jpg", ".", "..", "?q=1", "?", "#f", "#",
                       "a?b#c", "a/b/../c", ";p", "a;p/b", "%2e%2e/x", "~u/x", "1a:b", "x:80", "img.png:large",
                       "foo/bar:baz", "a:b", "http:foo", "HTTP://Ex.com/x", "mailto:x", "a b.jpg"]
BASE_URLS = ["http://h", "http://h/", "http://h/a/b", "http://h/a/b/", "http://h/a/b?x=1#f", "https://u:p@h:8080/a;p/b;q?x",
             "HTTP://H/a/b", "http://h/a/../b/c", "http://[::1]/a/b", "ftp://h/a/b", "http://h?x", "http://h/a/b#frag"]


@pytest.mark.parametrize(("reference", "base_url"), list(itertools.product(RELATIVE_REFERENCES, BASE_URLS)))
def test_relative_join_agrees_with_urljoin(reference, base_url):
    # resolve_url joins references without a scheme itself, so it must give what urljoin gives.
    assert resolve_url(reference, base_url) == normalize_url(urljoin(base_url, reference))


def test_spellings_of_one_url_give_one_candidate():
    html = (
        '<img src="HTTP://Example.com:80/photos/my%20cat.jpg#top" alt="My cat">'
        '<img src="/photos/my cat.jpg" alt="My cat">'
        '<img src="../photos/./my%20cat.jpg" alt="My cat">'
    )
    page = extract_page(html, PAGE, "test")
    assert [(c.url, c.text) for c in page.candidates] == [("http://example.com/photos/my%20cat.jpg", "My cat")]
    assert page.candidates[0].candidate_id == candidate_id("http://example.com/photos/my%20cat.jpg", "My cat")
    assert page.duplicates == 2


def test_alt_equal_to_title_kept_once():
    page = extract_page('<img src="/a.jpg" alt="Lake" title="Lake">', PAGE, "test")
    assert [(c.text, c.text_source) for c in page.candidates] == [("Lake", "alt")]


def test_language_from_meta_pragma_without_html_lang():
    html = '<html><head><meta http-equiv="Content-Language" content="pt-BR"></head><img src="/a.jpg" alt="A"></html>'
    assert extract_page(html, PAGE, "test", content_language="es").language == "pt-BR"


def test_language_from_header_without_html_lang_or_pragma():
    assert extract_page('<img src="/a.jpg" alt="A">', PAGE, "test", content_language=" de_AT ").language == "de-AT"


def test_html_lang_wins_over_pragma_and_header():
    html = '<html lang="fr"><meta http-equiv="content-language" content="en"><img src="/a.jpg" alt="A">'
    assert extract_page(html, PAGE, "test", content_language="es").language == "fr"


def test_language_lists_ignored():
    html = '<meta http-equiv="content-language" content="en, fr"><img src="/a.jpg" alt="A">'
    assert extract_page(html, PAGE, "test", content_language="de, it").language is None
    assert language_tag("en, fr") is None
    assert language_tag("  ") is None


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("en", "en"),
        ("EN_us", "en-US"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("de-DE-1996", "de-DE-1996"),
        ("x-klingon", "x-klingon"),
        ("UTF-8", None),
        ("iso-8859-1", None),
        ("english", None),
    ],
)
def test_language_tag_syntax_and_case(declared, expected):
    assert language_tag(declared) == expected


def test_charset_in_content_language_pragma_ignored():
    html = '<meta http-equiv="Content-Language" content="UTF-8"><img src="/a.jpg" alt="A">'
    assert extract_page(html, PAGE, "test").language is None


def test_base_without_href_ignored():
    html = '<base target="_blank"><img src="pics/a.jpg" alt="A">'
    assert pairs(html) == {("http://example.com/blog/pics/a.jpg", "A", "alt")}


def test_undeclared_legacy_charset_detected():
    body = "<html><p>Стратегия пожарной безопасности и защиты населения</p></html>".encode("cp1251")
    assert declared_charset(body) is None
    assert "Стратегия пожарной безопасности" in decode_html(body)


def test_undeclared_utf8_cut_inside_character_stays_utf8():
    body = "<p>Grüße aus Köln</p>".encode("utf-8") + "ü".encode("utf-8")[:1]
    assert decode_html(body) == "<p>Grüße aus Köln</p>\ufffd"
