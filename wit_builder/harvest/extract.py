"""Extract (image URL, text) candidates and outgoing links from one HTML page.

Each ``<img>`` yields up to three candidates that share its URL: the ``alt`` attribute,
the ``title`` attribute and the ``<figcaption>`` of the enclosing ``<figure>``. The image
URL is ``src``, else the largest ``srcset`` entry (``<picture><source>`` entries included),
else a lazy-loading attribute such as ``data-src``. Images without an http(s) URL, SVG
images and 1x1-style spacer or tracking images are dropped and counted by reason.
Decorative images with texts like "logo" are kept: filtering them is a later stage's job.
Image and link URLs are normalized as ``wit_builder.harvest.urls`` describes, so a candidate's
id (a hash of URL and text) is the same for every spelling of its URL.
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser, LexborNode

from wit_builder.harvest.urls import resolve_url
from wit_builder.records import Candidate, TextSource, candidate_id

#: An image whose declared width or height is at most this many pixels is a spacer or tracking pixel.
TINY_IMAGE_PX = 2

#: Lazy-loading attributes holding a single URL, in the order they are tried.
LAZY_SRC_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original")

#: Lazy-loading attributes holding a srcset.
LAZY_SRCSET_ATTRIBUTES = ("data-srcset", "data-lazy-srcset")

SVG_SUFFIXES = (".svg", ".svgz")

_UNUSABLE_SCHEMES = ("data:", "javascript:", "blob:")
_MAX_UNUSABLE_SCHEME_LENGTH = max(map(len, _UNUSABLE_SCHEMES))
_MAX_SVG_SUFFIX_LENGTH = max(map(len, SVG_SUFFIXES))
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CSS_SIZE = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*(\d+(?:\.\d+)?)\s*px", re.IGNORECASE)
_HTML_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$", re.IGNORECASE)
_DESCRIPTOR = re.compile(r"^(\d+(?:\.\d+)?)([wx])$", re.IGNORECASE)


@dataclass
class SrcsetEntry:
    """One image candidate of a ``srcset`` attribute."""

    url: str
    width: int | None = None
    density: float | None = None


@dataclass
class PageExtraction:
    """Candidates, links and counts from one HTML page."""

    candidates: list[Candidate] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    language: str | None = None
    images: int = 0
    images_with_text: int = 0
    duplicates: int = 0
    dropped: collections.Counter = field(default_factory=collections.Counter)


def normalize_text(text: str | None) -> str:
    """Remove control characters, collapse runs of whitespace to single spaces and strip the ends."""
    if not text:
        return ""
    # Control characters are never printable, so a printable text needs only the whitespace step.
    if not text.isprintable():
        text = _CONTROL_CHARACTERS.sub("", text)
    return " ".join(text.split())


def parse_srcset(value: str | None) -> list[SrcsetEntry]:
    """Parse a ``srcset`` attribute into its entries, skipping entries with invalid descriptors.

    URLs may contain commas, so a URL is a run of non-whitespace as in the HTML standard's
    srcset parser, and only a trailing comma ends it.
    """
    entries: list[SrcsetEntry] = []
    if not value:
        return entries

    position = 0
    length = len(value)
    while position < length:
        while position < length and (value[position].isspace() or value[position] == ","):
            position += 1
        if position >= length:
            break
        start = position
        while position < length and not value[position].isspace():
            position += 1
        url = value[start:position]

        descriptors: list[str] = []
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            end = value.find(",", position)
            if end == -1:
                end = length
            descriptors = value[position:end].split()
            position = end + 1
        if not url:
            continue

        entry = SrcsetEntry(url=url)
        valid = True
        for descriptor in descriptors:
            match = _DESCRIPTOR.match(descriptor)
            if match is None:
                # A height descriptor ("300h") may follow a width. Any other descriptor makes the entry invalid.
                valid = descriptor.lower().endswith("h")
                continue
            number, unit = match.groups()
            if unit.lower() == "w":
                entry.width = int(float(number))
            else:
                entry.density = float(number)
        if valid:
            entries.append(entry)
    return entries


def largest_srcset_entry(entries: list[SrcsetEntry]) -> SrcsetEntry | None:
    """Return the entry with the largest width descriptor, else the largest density (default 1x)."""
    if not entries:
        return None
    return max(entries, key=lambda entry: (entry.width or 0, entry.density or 1.0))


def _usable_reference(value: str | None) -> str | None:
    """Return a stripped URL reference, or None when it is empty or not fetchable over HTTP."""
    if value is None:
        return None
    value = value.strip()
    if not value or is_unusable_reference(value):
        return None
    return value


def _picture_sources(image: LexborNode) -> list[LexborNode]:
    parent = image.parent
    if parent is None or parent.tag != "picture":
        return []
    return [child for child in parent.iter() if child.tag == "source"]


def _srcset_reference(attribute_values: list[str | None]) -> str | None:
    entries: list[SrcsetEntry] = []
    for value in attribute_values:
        entries.extend(entry for entry in parse_srcset(value) if _usable_reference(entry.url))
    largest = largest_srcset_entry(entries)
    return largest.url if largest else None


def select_image_reference(image: LexborNode) -> str | None:
    """Return the unresolved URL reference of an ``<img>``: src, else largest srcset, else lazy-loading attributes."""
    attributes = image.attributes
    sources = _picture_sources(image)

    src = _usable_reference(attributes.get("src"))
    if src:
        return src

    srcset = _srcset_reference([attributes.get("srcset")] + [source.attributes.get("srcset") for source in sources])
    if srcset:
        return srcset

    for name in LAZY_SRC_ATTRIBUTES:
        lazy = _usable_reference(attributes.get(name))
        if lazy:
            return lazy

    lazy_srcsets = [attributes.get(name) for name in LAZY_SRCSET_ATTRIBUTES]
    for source in sources:
        lazy_srcsets.extend(source.attributes.get(name) for name in LAZY_SRCSET_ATTRIBUTES)
    return _srcset_reference(lazy_srcsets)


def _declared_size(value: str | None) -> float | None:
    if value is None:
        return None
    match = _HTML_SIZE.match(value)
    return float(match.group(1)) if match else None


def is_tiny_image(image: LexborNode) -> bool:
    """Return whether width/height attributes or inline CSS declare a spacer-sized image."""
    attributes = image.attributes
    sizes = [_declared_size(attributes.get("width")), _declared_size(attributes.get("height"))]
    for _name, number in _CSS_SIZE.findall(attributes.get("style") or ""):
        sizes.append(float(number))
    return any(size is not None and size <= TINY_IMAGE_PX for size in sizes)


def _enclosing_figcaption(image: LexborNode) -> str:
    node = image.parent
    while node is not None and node.tag not in ("figure", "body", "html"):
        node = node.parent
    if node is None or node.tag != "figure":
        return ""
    for child in node.iter():
        if child.tag == "figcaption":
            return normalize_text(child.text(separator=" "))
    return ""


def image_texts(image: LexborNode) -> list[tuple[str, TextSource]]:
    """Return the non-empty alt, title and figcaption texts of an ``<img>``, whitespace-normalized."""
    attributes = image.attributes
    texts = [
        (normalize_text(attributes.get("alt")), TextSource.ALT),
        (normalize_text(attributes.get("title")), TextSource.TITLE),
        (_enclosing_figcaption(image), TextSource.FIGCAPTION),
    ]
    return [(text, source) for text, source in texts if text]


# The syntax of RFC 5646 (BCP 47) language tags: language and extended language subtags,
# script, region, variants, extensions and private use, or a tag that starts with x- or i-.
_LANGUAGE_TAG = re.compile(
    r"^(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}"
    r"(?:-[a-z]{4})?"
    r"(?:-(?:[a-z]{2}|\d{3}))?"
    r"(?:-(?:[a-z0-9]{5,8}|\d[a-z0-9]{3}))*"
    r"(?:-[a-wyz0-9](?:-[a-z0-9]{2,8})+)*"
    r"(?:-x(?:-[a-z0-9]{1,8})+)?"
    r"|[ix](?:-[a-z0-9]{1,8})+)$",
    re.IGNORECASE,
)


def language_tag(value: str | None) -> str | None:
    """Return a declared BCP 47 language tag in its usual case ("en", "pt-BR", "zh-Hant-TW"), or None.

    ``_`` is read as ``-``. None is returned for an empty value, a list of several languages
    (which the HTML standard ignores) and a value that is not a tag, such as "UTF-8".
    """
    value = (value or "").strip().replace("_", "-")
    if not value or "," in value or not _LANGUAGE_TAG.match(value):
        return None

    # RFC 5646 case conventions: language lowercase, script title case, region uppercase.
    language, *subtags = value.split("-")
    formatted = [language.lower()]
    for subtag in subtags:
        if len(subtag) == 4 and subtag.isalpha():
            formatted.append(subtag.title())
        elif len(subtag) == 2 and subtag.isalpha() or len(subtag) == 3 and subtag.isdigit():
            formatted.append(subtag.upper())
        else:
            formatted.append(subtag.lower())
    return "-".join(formatted)


def page_language(tree: LexborHTMLParser, content_language: str | None = None) -> str | None:
    """Return the page's declared language, or None.

    The order follows the HTML standard: ``<html lang>`` (or ``xml:lang``), then a
    ``<meta http-equiv="Content-Language">`` pragma, then the HTTP Content-Language header.
    """
    root = tree.css_first("html")
    if root is not None:
        for name in ("lang", "xml:lang"):
            language = language_tag(root.attributes.get(name))
            if language:
                return language

    for meta in tree.css("meta[http-equiv]"):
        if (meta.attributes.get("http-equiv") or "").strip().lower() == "content-language":
            language = language_tag(meta.attributes.get("content"))
            if language:
                return language
    return language_tag(content_language)


def base_url_of(tree: LexborHTMLParser, page_url: str) -> str:
    """Return the URL that relative references resolve against: ``<base href>`` if present and valid."""
    base = tree.css_first("base[href]")
    if base is None:
        return page_url
    resolved = resolve_url(base.attributes.get("href") or "", page_url)
    return resolved or page_url


def is_unusable_reference(value: str | None) -> bool:
    """Return whether a URL reference uses a scheme that cannot be fetched (data:, javascript:, blob:)."""
    return (value or "").lstrip()[:_MAX_UNUSABLE_SCHEME_LENGTH].lower().startswith(_UNUSABLE_SCHEMES)


def is_svg_url(url: str) -> bool:
    """Return whether a normalized URL's path ends in .svg or .svgz."""
    path = url.partition("?")[0]
    return path[-_MAX_SVG_SUFFIX_LENGTH:].lower().endswith(SVG_SUFFIXES)


def _drop_reason(image: LexborNode, reference: str | None, url: str | None) -> str | None:
    if reference is None:
        return "unsupported_scheme" if is_unusable_reference(image.attributes.get("src")) else "no_url"
    if url is None:
        return "invalid_url"
    if is_svg_url(url):
        return "svg"
    if is_tiny_image(image):
        return "tiny"
    return None


def add_candidates(
    result: PageExtraction,
    seen: set[str],
    url: str,
    texts: list[tuple[str, TextSource]],
    page_url: str,
    source: str,
) -> None:
    """Append one candidate per text of an image to ``result``, skipping exact repeats within the page."""
    for text, text_source in texts:
        identifier = candidate_id(url, text)
        if identifier in seen:
            result.duplicates += 1
            continue
        seen.add(identifier)
        result.candidates.append(
            Candidate(
                candidate_id=identifier,
                url=url,
                text=text,
                text_source=text_source.value,
                page_url=page_url,
                source=source,
                page_language=result.language,
            )
        )


def _decode(html: bytes) -> str:
    # Imported here because charset_normalizer takes about 10 ms to import and the WAT harvest never decodes HTML.
    from wit_builder.harvest.decode import decode_html

    return decode_html(html)


def extract_page(
    html: bytes | str,
    page_url: str,
    source: str,
    with_links: bool = True,
    content_language: str | None = None,
) -> PageExtraction:
    """Parse one page and return its candidates, its links and counts of dropped images.

    ``content_language`` is the HTTP Content-Language header, used when the page declares no language itself.
    """
    if isinstance(html, bytes):
        html = _decode(html)
    tree = LexborHTMLParser(html)
    result = PageExtraction(language=page_language(tree, content_language))
    base_url = base_url_of(tree, page_url)
    seen: set[str] = set()

    for image in tree.css("img"):
        result.images += 1
        reference = select_image_reference(image)
        url = resolve_url(reference, base_url) if reference is not None else None
        reason = _drop_reason(image, reference, url)
        if reason is not None:
            result.dropped[reason] += 1
            continue

        texts = image_texts(image)
        if not texts:
            result.dropped["no_text"] += 1
            continue
        result.images_with_text += 1
        add_candidates(result, seen, url, texts, page_url, source)

    if with_links:
        result.links = _links(tree, base_url)
    return result


def _links(tree: LexborHTMLParser, base_url: str) -> list[str]:
    links: dict[str, None] = {}
    for anchor in tree.css("a[href]"):
        url = resolve_url(anchor.attributes.get("href") or "", base_url)
        if url is not None:
            links[url] = None
    return list(links)


def extract_candidates(html: bytes | str, page_url: str, source: str) -> list[Candidate]:
    """Return the (image URL, text) candidates of one HTML page, without exact repeats."""
    return extract_page(html, page_url, source, with_links=False).candidates


def extract_links(html: bytes | str, page_url: str) -> list[str]:
    """Return the distinct http(s) targets of the page's ``<a href>`` links, fragments removed, in page order."""
    if isinstance(html, bytes):
        html = _decode(html)
    tree = LexborHTMLParser(html)
    return _links(tree, base_url_of(tree, page_url))


def drop_repeated(candidates: list[Candidate]) -> tuple[list[Candidate], int]:
    """Keep the first of the candidates that share a candidate_id; return them and how many were dropped.

    A site repeats the same image with the same text on many pages (a header photo,
    a gallery shown on every page), and one partition needs it once.
    """
    seen: set[str] = set()
    unique: list[Candidate] = []
    for candidate in candidates:
        if candidate.candidate_id in seen:
            continue
        seen.add(candidate.candidate_id)
        unique.append(candidate)
    return unique, len(candidates) - len(unique)
