"""Whole-word query matching with an Aho-Corasick automaton.

A caption matches a query when the query occurs in it as whole words. As in
MetaCLIP's substr_matching.py, both texts get punctuation split off into separate
tokens and are padded with one space each side, and matching is case-sensitive
unless ``ignore_case`` is set. MetaCLIP splits off , . ; : ? ! and the backtick;
this module also splits off brackets and quotation marks, so "(dog)" matches "dog".
The key " york " never matches inside " yorkshire ".
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import ahocorasick

logger = logging.getLogger(__name__)

# Punctuation that ends a word. Hyphens, apostrophes and slashes stay inside words,
# so "well-known" does not match the query "known".
_WORD_END_PUNCTUATION = re.compile(r"""([,.;:?!"()\[\]{}“”«»‘’„]|`)""")
_WHITESPACE = re.compile(r"\s+")


def normalize_for_matching(text: str, ignore_case: bool = False) -> str:
    """Split punctuation off words, fold whitespace and pad with one space each side."""
    spaced = _WORD_END_PUNCTUATION.sub(r" \1 ", text)
    folded = _WHITESPACE.sub(" ", spaced).strip()
    if ignore_case:
        folded = folded.casefold()
    return f" {folded} "


@dataclass
class MatchConfig:
    """Options of the matching stage."""

    ignore_case: bool = False


class QueryMatcher:
    """Find which queries occur as whole words in a caption.

    Query ids are positions in the list given to the constructor. Several queries
    can share one automaton key (for example "Apple" and "apple" with
    ``ignore_case``), so each key maps to a tuple of ids.
    """

    def __init__(self, queries: list[str], ignore_case: bool = False):
        self.queries = queries
        self.ignore_case = ignore_case
        self._automaton = ahocorasick.Automaton()

        ids_by_key: dict[str, list[int]] = {}
        skipped = 0
        for query_id, query in enumerate(queries):
            key = normalize_for_matching(query, ignore_case)
            if not key.strip():
                skipped += 1
                continue
            ids_by_key.setdefault(key, []).append(query_id)

        for key, ids in ids_by_key.items():
            self._automaton.add_word(key, tuple(ids))
        if ids_by_key:
            self._automaton.make_automaton()
        self._empty = not ids_by_key
        if skipped:
            logger.warning("skipped %d empty queries", skipped)
        logger.info("built automaton with %d keys for %d queries", len(ids_by_key), len(queries))

    def match(self, text: str) -> list[int]:
        """Return the sorted ids of the queries that occur in ``text`` as whole words."""
        if self._empty or not text:
            return []
        padded = normalize_for_matching(text, self.ignore_case)
        found: set[int] = set()
        for _end, ids in self._automaton.iter(padded):
            found.update(ids)
        return sorted(found)
