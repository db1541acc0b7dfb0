"""Articles as plain text: the unit every query source counts.

A dump page becomes an ``ArticleText`` once its markup is stripped and its links are
collected. ``wit queries fetch`` makes them from the plain text that the Wikipedia API
returns. Counting works on ``ArticleText`` alone, so both sources count the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from wit_builder.queries.dump import SiteInfo, WikiPage
from wit_builder.queries.markup import MarkupStripper

# Disambiguation pages list other articles and are not topics of their own. Matches
# {{Disambiguation}}, {{Human name disambiguation}}, {{Dab}}, {{Hndis}} and {{Geodis}}.
_DISAMBIGUATION_TEMPLATE = re.compile(
    r"\{\{\s*(?:[^{}|]*\bdisambiguation\b|disambig\b|dab\b|hndis\b|geodis\b)", re.IGNORECASE
)


@dataclass
class ArticleText:
    """One article: its title, its plain text and the titles it links to (normalized)."""

    title: str
    text: str
    links: list[str] = field(default_factory=list)
    disambiguation: bool = False


def is_disambiguation(title: str, wikitext: str) -> bool:
    """Return True for a disambiguation page, by its title or its templates."""
    return title.endswith("(disambiguation)") or _DISAMBIGUATION_TEMPLATE.search(wikitext) is not None


class ArticleMaker:
    """Turn dump pages of one wiki into ``ArticleText``, with that wiki's namespaces and case rule."""

    def __init__(self, siteinfo: SiteInfo, with_links: bool = True):
        self.siteinfo = siteinfo
        self.with_links = with_links
        self.stripper = MarkupStripper(siteinfo.namespaces)

    def make(self, page: WikiPage) -> ArticleText:
        """Strip the markup of an article page and normalize its title and link targets."""
        links: list[str] | None = [] if self.with_links else None
        text = self.stripper.strip(page.text, links)
        normalize = self.siteinfo.normalize_title
        targets = (normalize(target.partition("#")[0]) for target in links or ())
        return ArticleText(
            title=normalize(page.title),
            text=text,
            links=[target for target in targets if target],
            disambiguation=is_disambiguation(page.title, page.text),
        )
