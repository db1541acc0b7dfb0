"""Harvest candidates from the JSON metadata records of Common Crawl WAT files.

A WAT file contains one JSON ``metadata`` record per WARC record. For an HTML response the JSON
lists the page's links under ``Envelope.Payload-Metadata.HTTP-Response-Metadata.HTML-Metadata``:
``Links`` entries whose ``path`` is ``IMG@/src`` carry the ``src`` of an ``<img>`` with its
``alt`` and ``title``, ``Head.Base`` holds a ``<base href>``, and ``Head.Metas`` holds the
``<html lang>`` as a meta entry named ``HTML@/lang``. The candidates follow the HTML
extractor's rules for URLs, texts, drops and candidate ids.

The WAT lists less than the page: no ``srcset``, lazy-loading attributes, figcaptions or image
sizes. So WAT candidates have no figcaption texts, an ``<img>`` whose ``src`` is a data: URL
placeholder is dropped instead of using its ``data-src``, and spacer images are not recognised.
"""

from __future__ import annotations

import logging
from typing import Iterator

import orjson
from fastwarc.warc import WarcRecordType

from wit_builder.harvest.extract import PageExtraction, add_candidates, is_svg_url, is_unusable_reference, normalize_text
from wit_builder.harvest.reader import ArchiveReader
from wit_builder.harvest.stats import HarvestStats
from wit_builder.harvest.urls import resolve_url
from wit_builder.harvest.warc import HTML_MEDIA_TYPES, media_type
from wit_builder.harvest.watjson import WatPage, parse_wat_page
from wit_builder.records import FetchStatus, TextSource

logger = logging.getLogger(__name__)

SOURCE = "wat"

#: Bytes read from one WAT record. Larger records are skipped and counted as ``wat_records_too_large``.
MAX_WAT_RECORD_BYTES = 64 * 1024 * 1024

# Records without the first key describe requests, crawl metadata or the warcinfo, and responses
# without the second are not HTML, so neither is parsed: JSON parsing is most of a WAT's cost.
_RESPONSE_KEY = b'"HTTP-Response-Metadata"'
_HTML_KEY = b'"HTML-Metadata"'


def extract_wat_page(page: WatPage, source: str = SOURCE) -> PageExtraction:
    """Return the candidates of a WAT page's ``IMG@/src`` links with the HTML extractor's rules."""
    result = PageExtraction(language=page.language)
    base_url = page.url
    if page.base:
        base_url = resolve_url(page.base, page.url) or page.url
    seen: set[str] = set()
    dropped = result.dropped

    for reference, alt, title in page.images:
        reference = reference.strip() if reference else ""
        if not reference:
            dropped["no_url"] += 1
            continue
        if is_unusable_reference(reference):
            dropped["unsupported_scheme"] += 1
            continue
        url = resolve_url(reference, base_url)
        if url is None:
            dropped["invalid_url"] += 1
            continue
        if is_svg_url(url):
            dropped["svg"] += 1
            continue

        texts = []
        if alt:
            alt = normalize_text(alt)
            if alt:
                texts.append((alt, TextSource.ALT))
        if title:
            title = normalize_text(title)
            if title:
                texts.append((title, TextSource.TITLE))
        if not texts:
            dropped["no_text"] += 1
            continue
        result.images_with_text += 1
        add_candidates(result, seen, url, texts, page.url, source)
    result.images = len(page.images)
    return result


def iter_wat_pages(reader: ArchiveReader, stats: HarvestStats) -> Iterator[WatPage]:
    """Yield the 2xx HTML pages of a WAT stream and count every record in ``stats``."""
    for record in reader:
        if record.record_type != WarcRecordType.metadata:
            continue
        payload = reader.read_payload(record, MAX_WAT_RECORD_BYTES)
        if payload is None:
            break
        data, cut = payload
        if _RESPONSE_KEY not in data:
            continue
        stats.extra["responses"] += 1
        if _HTML_KEY not in data:
            stats.extra["responses_not_html"] += 1
            continue
        if cut:
            stats.extra["wat_records_too_large"] += 1
            continue
        try:
            page = parse_wat_page(data, record.headers.get("WARC-Target-URI"))
        except orjson.JSONDecodeError:
            stats.extra["wat_json_errors"] += 1
            continue
        if page is None:
            stats.extra["wat_json_errors"] += 1
            continue
        if media_type(page.content_type) not in HTML_MEDIA_TYPES:
            stats.extra["responses_not_html"] += 1
            continue
        stats.pages += 1
        if page.http_status is not None:
            stats.http_statuses[page.http_status] += 1
        if page.http_status is None or not 200 <= page.http_status < 300:
            stats.pages_by_status[FetchStatus.HTTP_ERROR.value] += 1
            continue
        stats.pages_by_status[FetchStatus.OK.value] += 1
        yield page
    stats.extra["records"] = reader.records


def harvest_wat_stream(reader: ArchiveReader, add_candidates, stats: HarvestStats, source: str = SOURCE) -> None:
    """Extract the candidates of every HTML page of a WAT stream and pass each page's list to ``add_candidates``."""
    for page in iter_wat_pages(reader, stats):
        extraction = extract_wat_page(page, source)
        stats.add_page(extraction)
        add_candidates(extraction.candidates)
