"""Whole-word query matching with an Aho-Corasick automaton.

A caption matches a query when the query occurs in it as whole words. As in
MetaCLIP's substr_matching.py, caption and query are both brought to one normal
form, in which words and punctuation marks are separated by single spaces and the
text is padded with one space each side. The automaton's keys are the normal forms
of the queries, so the key " york " never matches inside " yorkshire ".

The normal form, in order:

1. Text with any non-ASCII character is put in Unicode NFC, so a caption with
   decomposed accents ("e" + U+0301) matches a query written with "é".
2. Runs of letters of scripts written without spaces (Chinese, Japanese, Thai, Lao,
   Khmer, Burmese) are split into words by ICU, with the character classes and the
   segmentation of ``wit_builder.queries.tokens``, and a space is put between words.
   Queries go through the same step, so the query "写真" is the key " 写真 " and
   matches the caption "ストック写真" (segmented "ストック 写真"), while "真" does not.
   Text without such letters skips the step and never loads ICU.
3. Punctuation is split off into separate tokens. MetaCLIP splits off , . ; : ? !
   and the backtick. This module also splits off brackets, quotation marks, the
   slash, the vertical bar, dashes, the punctuation of Chinese and Japanese, and
   the full-width forms of ASCII punctuation and symbols ("Ctrl＋Alt" gives two
   words, as in the query build). Hyphens and apostrophes stay inside words, so
   "well-known" does not match the query "known". Other ASCII symbols stay too, so
   "C++" and "AT&T" are one word each.
4. Whitespace runs become one space, and the text is padded with one space each side.
5. With ``ignore_case``, the text is case-folded: ``str.lower`` for ASCII text,
   otherwise Unicode's canonical caseless form (NFD, ``str.casefold``, then NFC), so
   "STRASSE" matches "Straße" and "ΤΕΛΟΣ" matches "τελος".

Why one automaton for every script: the segmentation of step 2 only inserts spaces,
so queries of both kinds live in one key space, and each caption is scanned once.
A second automaton for the no-space scripts would scan such captions twice, and
would still miss Latin words written against kana or Han, as in "iPhoneを", which
step 2 separates ("iPhone を") so that the query "iPhone" matches.

Limits: ICU's dictionary can split a word differently in a caption than in the query
list (a compound such as "東京都" may stay one word), and then the query does not
match there. That is the same split the query build counted, so the query list and
the matches agree. Case folding follows Unicode's default, not a language's: the
Turkish "İ" folds to "i" plus a combining dot, so "İstanbul" does not match "istanbul".
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable, Sequence

import ahocorasick
from tqdm import tqdm

from wit_builder.queries import tokens

logger = logging.getLogger(__name__)

#: Version of the normal form and of the automaton's value layout. Cached automata
#: built under another version are rebuilt.
MATCHER_FORMAT = 2

# Punctuation split off into tokens. The ASCII marks are checked in every text, the
# others only in non-ASCII text.
_ASCII_PUNCTUATION = ",.;:?!\"()[]{}`/|"
_OTHER_PUNCTUATION = (
    "“”«»‘’„"  # typographic quotation marks
    "‐‑‒–—―−…"  # dashes (U+2010 to U+2015), the minus sign and the ellipsis
    "、。〈〉《》「」『』【】〔〕・"  # Chinese and Japanese punctuation
    + "".join(chr(code_point) for code_point in range(0xFF01, 0xFF66) if not chr(code_point).isalnum())
)  # the last line: full-width and half-width forms of ASCII punctuation and symbols ("＋", "（")
_ASCII_SPLITS = tuple((mark, f" {mark} ") for mark in _ASCII_PUNCTUATION)
_ALL_MARKS = frozenset(_ASCII_PUNCTUATION + _OTHER_PUNCTUATION)

_VALUE = itemgetter(1)


def normalize_for_matching(text: str, ignore_case: bool = False) -> str:
    """Return the normal form of ``text`` that automaton keys and captions share (see the module docstring)."""
    if text.isascii():
        for mark, spaced in _ASCII_SPLITS:
            if mark in text:
                text = text.replace(mark, spaced)
    else:
        text = _segment_no_space_runs(unicodedata.normalize("NFC", text))
        for mark in _ALL_MARKS.intersection(text):
            text = text.replace(mark, f" {mark} ")
    folded = " ".join(text.split())
    if ignore_case:
        folded = _fold_case(folded)
    return f" {folded} "


def _fold_case(text: str) -> str:
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())


def _segment_no_space_runs(text: str) -> str:
    """Put a space around every ICU word of the runs of scripts written without spaces."""
    # NOTE: this reads the query build's private character classes, so that both
    # stages find the same runs; tokens.tokenize then splits each run with ICU.
    pieces = tokens._patterns().nospace_run.split(text)
    if len(pieces) == 1:
        return text
    # With one capturing group, split() puts the runs at the odd indexes.
    for index in range(1, len(pieces), 2):
        pieces[index] = " " + " ".join(tokens.tokenize(pieces[index])) + " "
    return "".join(pieces)


@dataclass
class CompiledQueries:
    """A query list compiled for matching: what the automaton cache stores.

    The automaton stores one integer per key: the query id when one query has that
    normal form, or ``query_count + i`` when several do (for example "Apple" and
    "apple" with ``ignore_case``), where ``shared_ids[i]`` lists their ids.
    ``automaton`` is None for a list without any non-empty query.
    """

    automaton: ahocorasick.Automaton | None
    query_count: int
    shared_ids: list[tuple[int, ...]]
    ignore_case: bool

    @property
    def key_count(self) -> int:
        """Number of distinct keys in the automaton."""
        return 0 if self.automaton is None else len(self.automaton)


def compile_queries(queries: Sequence[str], ignore_case: bool = False) -> CompiledQueries:
    """Build the automaton of a query list; empty queries are skipped with a warning."""
    ids_by_key: dict[str, list[int]] = {}
    skipped = 0
    progress = tqdm(queries, desc="normalize queries", unit=" queries", leave=False, disable=len(queries) < 100_000)
    for query_id, query in enumerate(progress):
        key = normalize_for_matching(query, ignore_case)
        if not key.strip():
            skipped += 1
            continue
        ids_by_key.setdefault(key, []).append(query_id)
    if skipped:
        logger.warning("skipped %d empty queries", skipped)

    shared_ids: list[tuple[int, ...]] = []
    automaton = None
    if ids_by_key:
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        # Keys go in sorted order because a trie node scans its children in insertion
        # order. With the entries of bench/match_throughput.py, keys added in random order
        # made matching about twice as slow.
        for key in sorted(ids_by_key):
            ids = ids_by_key[key]
            if len(ids) == 1:
                value = ids[0]
            else:
                value = len(queries) + len(shared_ids)
                shared_ids.append(tuple(ids))
            automaton.add_word(key, value)
        automaton.make_automaton()
    logger.info("built an automaton with %d keys for %d queries", len(ids_by_key), len(queries))
    return CompiledQueries(automaton, len(queries), shared_ids, ignore_case)


class QueryMatcher:
    """Find which queries occur as whole words in a caption.

    Query ids are positions in the list given to the constructor.
    """

    def __init__(self, queries: Sequence[str], ignore_case: bool = False):
        self._use(compile_queries(queries, ignore_case))

    @classmethod
    def from_compiled(cls, compiled: CompiledQueries) -> QueryMatcher:
        """Wrap a compiled query list, such as one loaded from the automaton cache."""
        matcher = cls.__new__(cls)
        matcher._use(compiled)
        return matcher

    def _use(self, compiled: CompiledQueries) -> None:
        self.compiled = compiled
        self.ignore_case = compiled.ignore_case
        self._query_count = compiled.query_count
        self._shared_ids = compiled.shared_ids
        self._iter = compiled.automaton.iter if compiled.automaton is not None else None

    def match(self, text: str | None) -> list[int]:
        """Return the sorted ids of the queries that occur in ``text`` as whole words."""
        if self._iter is None or not text:
            return []
        found = set(map(_VALUE, self._iter(normalize_for_matching(text, self.ignore_case))))
        if not found:
            return []
        if self._shared_ids and max(found) >= self._query_count:
            found = self._expand_shared(found)
        return sorted(found)

    def match_many(self, texts: Iterable[str | None]) -> list[list[int]]:
        """Return ``match(text)`` for each text, in order."""
        match = self.match
        return [match(text) for text in texts]

    def _expand_shared(self, found: set[int]) -> set[int]:
        expanded = set()
        for value in found:
            if value < self._query_count:
                expanded.add(value)
            else:
                expanded.update(self._shared_ids[value - self._query_count])
        return expanded
