"""Counts of one harvest partition (a crawl or one WARC file)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from wit_builder.harvest.extract import PageExtraction


@dataclass
class HarvestStats:
    """Counts of pages, images and candidates of one harvest partition.

    ``pages`` counts the HTML responses of a WARC file, or the URLs a crawl decided on, and
    ``pages_by_status`` splits them by FetchStatus value (``robots_disallowed`` included).
    ``http_statuses`` counts the HTTP status codes received. ``dropped_images`` counts
    images without a candidate by reason (``svg``, ``tiny``, ``no_text``, ...), and
    ``extra`` contains counts specific to the source, such as ``records`` or ``links_offsite``.
    """

    source: str
    pages: int = 0
    pages_parsed: int = 0
    images: int = 0
    images_with_text: int = 0
    candidates: int = 0
    duplicate_candidates: int = 0
    pages_by_status: collections.Counter = field(default_factory=collections.Counter)
    http_statuses: collections.Counter = field(default_factory=collections.Counter)
    dropped_images: collections.Counter = field(default_factory=collections.Counter)
    text_sources: collections.Counter = field(default_factory=collections.Counter)
    page_languages: collections.Counter = field(default_factory=collections.Counter)
    extra: collections.Counter = field(default_factory=collections.Counter)

    def add_page(self, extraction: PageExtraction) -> None:
        """Count the images and candidates of one parsed page."""
        self.pages_parsed += 1
        self.images += extraction.images
        self.images_with_text += extraction.images_with_text
        self.candidates += len(extraction.candidates)
        self.duplicate_candidates += extraction.duplicates
        self.dropped_images.update(extraction.dropped)
        self.text_sources.update(candidate.text_source for candidate in extraction.candidates)
        self.page_languages[extraction.language or "undeclared"] += 1

    def merge(self, other: HarvestStats) -> None:
        """Add the counts of another partition to this one."""
        for name in ("pages", "pages_parsed", "images", "images_with_text", "candidates", "duplicate_candidates"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("pages_by_status", "http_statuses", "dropped_images", "text_sources", "page_languages", "extra"):
            getattr(self, name).update(getattr(other, name))

    def counts(self) -> dict[str, int]:
        """Return the flat counts for the ``counts`` field of stats.json."""
        counts = {
            "pages": self.pages,
            "pages_parsed": self.pages_parsed,
            "images": self.images,
            "images_with_text": self.images_with_text,
            "candidates": self.candidates,
            "duplicate_candidates": self.duplicate_candidates,
        }
        counts.update(self.extra)
        return counts

    def to_json(self) -> dict:
        """Return the fields that stats.json stores next to ``counts``."""
        return {
            "source": self.source,
            "pages_by_status": dict(sorted(self.pages_by_status.items())),
            "http_statuses": {str(code): count for code, count in sorted(self.http_statuses.items())},
            "dropped_images": dict(sorted(self.dropped_images.items())),
            "text_sources": dict(sorted(self.text_sources.items())),
            "page_languages": dict(self.page_languages.most_common()),
        }
