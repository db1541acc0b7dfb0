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

Queries with one normal form are one query: the automaton maps the key to the first of
them in the list, its canonical id, and ``match`` returns only that id. With
``ignore_case`` this merges case variants such as "in" and "In", and in any mode it
merges repeats of a query. They match exactly the same captions, so counting them
apart would count each pair once per variant and make balancing treat one query as
several. ``CompiledQueries.variant_ids`` lists the ids merged into each canonical id.

Why one automaton for every script: the segmentation of step 2 only inserts spaces,
so queries of both kinds live in one key space, and each caption is scanned once.
A second automaton for the no-space scripts would scan such captions twice, and
would still miss Latin words written against kana or Han, as in "iPhoneを", which
step 2 separates ("iPhone を") so that the query "iPhone" matches.

Batches: ``QueryMatcher.match_batch`` gives the same ids as ``match`` on each text,
with less work per text. ``normalize_many`` joins the batch's ASCII texts with NUL and
applies each step of the normal form once to the joined string, the scan collects only
the values of pyahocorasick's (end, value) pairs, and numpy sorts and deduplicates the
ids of the whole batch at once.

Limits: ICU's dictionary can split a word differently in a caption than in the query
list (a compound such as "東京都" may stay one word), and then the query does not
match there. That is the same split the query build counted, so the query list and
the matches agree. Case folding follows Unicode's default, not a language's: the
Turkish "İ" folds to "i" plus a combining dot, so "İstanbul" does not match "istanbul".
"""

from __future__ import annotations

import itertools
import logging
import re
import unicodedata
from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable, Sequence

import ahocorasick
import numpy as np
from tqdm import tqdm

from wit_builder.queries import tokens

logger = logging.getLogger(__name__)

#: Version of the normal form and of the automaton's value layout. Cached automata
#: built under another version are rebuilt. Version 3 stores one canonical query id
#: per key in place of the list of every query with that key.
MATCHER_FORMAT = 3

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

#: Texts that ``QueryMatcher.match_batch`` normalizes and scans together. It bounds the
#: memory of a chunk's joined text and of its matches (one Python int per match).
CHUNK_TEXTS = 8_192

# normalize_many puts " NUL " between texts. NUL is not whitespace, so the bulk steps
# keep it until it becomes a newline, which no key contains, so no key spans two texts.
_BULK_SEPARATOR = "\x00"
_BULK_JOINER = f" {_BULK_SEPARATOR} "
# The ASCII whitespace that str.split() splits on becomes a space, and the separator a newline.
_BULK_TRANSLATION = {code: " " for code in b"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"} | {ord(_BULK_SEPARATOR): "\n"}
_SPACE_RUNS = re.compile("  +")


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
    if not folded:
        return " "
    if ignore_case:
        folded = _fold_case(folded)
    return f" {folded} "


def normalize_many(texts: Iterable[str | None], ignore_case: bool = False) -> list[str]:
    """Return ``normalize_for_matching`` of each text, normalizing the ASCII texts in bulk.

    None counts as an empty text. Texts with non-ASCII characters, or with a NUL of
    their own, go through ``normalize_for_matching`` one by one.
    NOTE: so a batch of mostly non-ASCII captions gains little; only the speed of
    mostly English batches was measured.
    """
    texts = [text or "" for text in texts]
    if not texts:
        return []
    joined = _BULK_JOINER.join(texts)
    if joined.isascii() and joined.count(_BULK_SEPARATOR) == len(texts) - 1:
        return _normalize_joined_ascii(joined, ignore_case)

    in_bulk = [text.isascii() and _BULK_SEPARATOR not in text for text in texts]
    forms = np.empty(len(texts), dtype=object)
    bulk_texts = list(itertools.compress(texts, in_bulk))
    if bulk_texts:
        forms[np.flatnonzero(in_bulk)] = _normalize_joined_ascii(_BULK_JOINER.join(bulk_texts), ignore_case)
    other_rows = [index for index, flag in enumerate(in_bulk) if not flag]
    forms[other_rows] = [normalize_for_matching(texts[index], ignore_case) for index in other_rows]
    return forms.tolist()


def _normalize_joined_ascii(joined: str, ignore_case: bool) -> list[str]:
    """Normalize ASCII texts joined with ``_BULK_JOINER``, with one pass over the joined string per step."""
    for mark, spaced in _ASCII_SPLITS:
        if mark in joined:
            joined = joined.replace(mark, spaced)
    joined = joined.translate(_BULK_TRANSLATION)
    if ignore_case:
        joined = joined.lower()

    # The joiner left a space on each side of every newline. With one more space at
    # each end, every text is padded, and the space collapse turns a blank text into " ".
    return _SPACE_RUNS.sub(" ", f" {joined} ").split("\n")


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

    The automaton stores one integer per key: the canonical query id, the first
    query in the list with that normal form. ``variant_ids`` maps a canonical id to
    the ids of the later queries with the same normal form (for example "In" after
    "in" with ``ignore_case``), which are never returned by the matcher.
    ``automaton`` is None for a list without any non-empty query.
    """

    automaton: ahocorasick.Automaton | None
    query_count: int
    variant_ids: dict[int, tuple[int, ...]]
    ignore_case: bool

    @property
    def key_count(self) -> int:
        """Number of distinct keys in the automaton."""
        return 0 if self.automaton is None else len(self.automaton)

    def canonical_ids(self) -> dict[int, int]:
        """Return a map from each merged variant id to its canonical id."""
        return {variant: canonical for canonical, variants in self.variant_ids.items() for variant in variants}


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

    variant_ids = {ids[0]: tuple(ids[1:]) for ids in ids_by_key.values() if len(ids) > 1}
    if variant_ids:
        merged = sum(len(ids) for ids in variant_ids.values())
        logger.info("merged %d queries into %d queries with the same normal form (the first in the list)", merged, len(variant_ids))

    automaton = None
    if ids_by_key:
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        # Keys go in sorted order because a trie node scans its children in insertion
        # order. With the entries of bench/match_throughput.py, keys added in random order
        # made matching about twice as slow.
        for key in sorted(ids_by_key):
            automaton.add_word(key, ids_by_key[key][0])
        automaton.make_automaton()
    logger.info("built an automaton with %d keys for %d queries", len(ids_by_key), len(queries))
    return CompiledQueries(automaton, len(queries), variant_ids, ignore_case)


@dataclass(eq=False)
class BatchMatches:
    """The query ids matched in a batch of texts, in CSR layout.

    The ids of text ``i`` are ``ids[offsets[i]:offsets[i + 1]]``, sorted and distinct.
    Both arrays are int64, and ``offsets`` has one entry more than the batch has texts.
    """

    offsets: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        """Number of matched ids of each text."""
        return np.diff(self.offsets)

    def to_lists(self) -> list[list[int]]:
        """Return the ids of each text as a list of Python ints."""
        ids = self.ids.tolist()
        bounds = self.offsets.tolist()
        return [ids[start:stop] for start, stop in zip(bounds, bounds[1:])]

    @classmethod
    def empty(cls, count: int) -> BatchMatches:
        """Return the matches of ``count`` texts that match nothing."""
        return cls(np.zeros(count + 1, dtype=np.int64), np.zeros(0, dtype=np.int64))

    @classmethod
    def concatenate(cls, parts: Sequence[BatchMatches]) -> BatchMatches:
        """Join the matches of consecutive chunks of texts into the matches of all of them."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.empty(0)
        shifts = np.cumsum([0] + [len(part.ids) for part in parts[:-1]])
        offsets = [parts[0].offsets[:1]] + [part.offsets[1:] + shift for part, shift in zip(parts, shifts)]
        return cls(np.concatenate(offsets), np.concatenate([part.ids for part in parts]))


class QueryMatcher:
    """Find which queries occur as whole words in a caption.

    Query ids are positions in the list given to the constructor. Of the queries
    with one normal form, only the first one's id is returned (see the module docstring).
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
        self._iter = compiled.automaton.iter if compiled.automaton is not None else None

    def match(self, text: str | None) -> list[int]:
        """Return the sorted canonical ids of the queries that occur in ``text`` as whole words."""
        if self._iter is None or not text:
            return []
        return sorted(set(map(_VALUE, self._iter(normalize_for_matching(text, self.ignore_case)))))

    def match_many(self, texts: Iterable[str | None]) -> list[list[int]]:
        """Return ``match(text)`` for each text, in order, computed with ``match_batch``."""
        return self.match_batch(texts).to_lists()

    def match_batch(self, texts: Iterable[str | None]) -> BatchMatches:
        """Find the queries of every text, with the same ids as ``match`` but less work per text.

        Texts are processed in chunks of ``CHUNK_TEXTS``. A chunk is normalized with
        ``normalize_many``, each normal form is scanned, and numpy sorts and
        deduplicates the ids of the whole chunk.
        """
        texts = texts if isinstance(texts, list) else list(texts)
        if self._iter is None:
            return BatchMatches.empty(len(texts))
        chunks = [self._match_chunk(texts[start : start + CHUNK_TEXTS]) for start in range(0, len(texts), CHUNK_TEXTS)]
        return BatchMatches.concatenate(chunks)

    def _match_chunk(self, texts: list[str | None]) -> BatchMatches:
        iterate = self._iter
        values: list[int] = []
        extend = values.extend
        ends: list[int] = []
        append = ends.append
        for form in normalize_many(texts, self.ignore_case):
            extend(map(_VALUE, iterate(form)))
            append(len(values))

        found = np.fromiter(values, dtype=np.int64, count=len(values))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), np.diff(np.array(ends, dtype=np.int64), prepend=0))

        # One sort of row * query_count + id orders the ids of each row, and equal
        # neighbours are the repeats within a row.
        keys = np.sort(rows * self._query_count + found)
        if len(keys):
            distinct = np.empty(len(keys), dtype=bool)
            distinct[0] = True
            np.not_equal(keys[1:], keys[:-1], out=distinct[1:])
            keys = keys[distinct]
        rows, ids = np.divmod(keys, self._query_count)
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(texts)), out=offsets[1:])
        return BatchMatches(offsets, ids)
