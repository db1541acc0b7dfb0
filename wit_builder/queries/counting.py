"""Unigram, bigram and title counts of a Wikipedia dump, and the query entries they select.

Bigram association is pointwise mutual information in bits, the formula of NLTK's
``BigramAssocMeasures.pmi`` that MetaCLIP's build_metadata.py uses:

    PMI(a, b) = log2( count(a b) * N / (count(a) * count(b)) )

where N is the number of tokens in the corpus. A pair that occurs exactly as often as
independent words would scores 0. The maximum for a pair seen ``c`` times is
log2(N / c), so a fixed threshold is stricter on a small corpus than on a large one.
For example, no pair can reach MetaCLIP's threshold of 30 bits in a corpus of fewer
than 2**30 (about 1.07 billion) tokens.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from wit_builder.queries.tokens import has_letter, iter_token_runs, tokenize
from wit_builder.records import QueryEntry, QueryKind

#: Priority of query kinds when one string qualifies as several: the first kind wins.
KIND_PRIORITY = (QueryKind.UNIGRAM, QueryKind.BIGRAM, QueryKind.TITLE)

# Disambiguation pages list other articles and are not topics of their own. Matches
# {{Disambiguation}}, {{Human name disambiguation}}, {{Dab}}, {{Hndis}} and {{Geodis}}.
_DISAMBIGUATION_TEMPLATE = re.compile(
    r"\{\{\s*(?:[^{}|]*\bdisambiguation\b|disambig\b|dab\b|hndis\b|geodis\b)", re.IGNORECASE
)
_TITLE_QUALIFIER = re.compile(r"\s+\([^()]*\)\Z")


@dataclass
class UnigramCounts:
    """Token counts of the first pass over a dump, with article titles and link counts."""

    tokens: Counter = field(default_factory=Counter)
    total_tokens: int = 0
    titles: Counter = field(default_factory=Counter)
    disambiguation_pages: int = 0
    link_targets: Counter = field(default_factory=Counter)
    redirects: dict[str, str] = field(default_factory=dict)

    def add_text(self, text: str, lowercase: bool = False) -> None:
        """Count the tokens of one article's plain text."""
        tokens = tokenize(text, lowercase)
        self.tokens.update(tokens)
        self.total_tokens += len(tokens)

    def add_title(self, title: str, wikitext: str) -> None:
        """Record an article title, unless the article is a disambiguation page."""
        if title.endswith("(disambiguation)") or _DISAMBIGUATION_TEMPLATE.search(wikitext):
            self.disambiguation_pages += 1
            return
        self.titles[title] += 1

    def add_links(self, targets: list[str]) -> None:
        """Count links by target title (already normalized)."""
        self.link_targets.update(targets)

    def add_redirect(self, title: str, target: str) -> None:
        """Remember a redirect so links to ``title`` count for ``target``."""
        self.redirects[title] = target

    def links_to(self) -> Counter:
        """Return the number of links to each title, following one redirect hop."""
        resolved: Counter = Counter()
        for target, count in self.link_targets.items():
            resolved[self.redirects.get(target, target)] += count
        return resolved


def words_for_bigrams(unigrams: Counter, bigram_min_count: int) -> frozenset[str]:
    """Return the words that can be part of a bigram seen at least ``bigram_min_count`` times.

    A pair never occurs more often than either of its words, so restricting the second
    pass to these words loses no bigram that passes the count threshold.
    """
    return frozenset(
        word for word, count in unigrams.items() if count >= bigram_min_count and has_letter(word)
    )


def count_bigrams(text: str, words: frozenset[str], counts: Counter, lowercase: bool = False) -> None:
    """Add the adjacent pairs of ``words`` in ``text`` to ``counts``, keyed "first second".

    Pairs are counted within a run of tokens separated only by spaces (see
    ``iter_token_runs``). A token outside ``words`` breaks the chain.
    """
    for run in iter_token_runs(text, lowercase):
        previous: str | None = None
        for token in run:
            if token not in words:
                previous = None
                continue
            if previous is not None:
                counts[f"{previous} {token}"] += 1
            previous = token


def pmi(pair_count: int, first_count: int, second_count: int, total_tokens: int) -> float:
    """Return the pointwise mutual information of a word pair in bits (see the module docstring)."""
    return math.log2(pair_count * total_tokens / (first_count * second_count))


def select_unigrams(unigrams: Counter, min_count: int) -> list[QueryEntry]:
    """Return the words seen at least ``min_count`` times that contain a letter, most frequent first."""
    entries = [
        QueryEntry(query=word, kind=QueryKind.UNIGRAM.value, count=count)
        for word, count in unigrams.items()
        if count >= min_count and has_letter(word)
    ]
    entries.sort(key=lambda entry: (-entry.count, entry.query))
    return entries


def select_bigrams(
    bigrams: Counter, unigrams: Counter, total_tokens: int, min_count: int, pmi_threshold: float
) -> list[QueryEntry]:
    """Return the pairs seen at least ``min_count`` times whose PMI is at least ``pmi_threshold``."""
    entries = []
    for pair, count in bigrams.items():
        if count < min_count:
            continue
        first, second = pair.split(" ")
        score = pmi(count, unigrams[first], unigrams[second], total_tokens)
        if score >= pmi_threshold:
            entries.append(QueryEntry(query=pair, kind=QueryKind.BIGRAM.value, count=count, pmi=round(score, 4)))
    entries.sort(key=lambda entry: (-entry.count, entry.query))
    return entries


def title_query(title: str) -> str:
    """Return the query for an article title: the title without a trailing "(qualifier)".

    "Mercury (planet)" becomes "Mercury", because captions name the thing, not the
    disambiguated article.
    """
    return _TITLE_QUALIFIER.sub("", title).strip()


def select_titles(titles: Counter, links_to: Counter, min_links: int) -> list[QueryEntry]:
    """Return one entry per title query with at least ``min_links`` links to its articles.

    The count of an entry is the number of links from article text to the articles
    whose titles give this query, through one redirect hop. Titles without a letter,
    such as "1990", are skipped.
    """
    link_counts: Counter = Counter()
    for title in titles:
        query = title_query(title)
        if query and has_letter(query):
            link_counts[query] += links_to.get(title, 0)
    entries = [
        QueryEntry(query=query, kind=QueryKind.TITLE.value, count=count)
        for query, count in link_counts.items()
        if count >= min_links
    ]
    entries.sort(key=lambda entry: (-entry.count, entry.query))
    return entries


def merge_kinds(entries_by_kind: dict[QueryKind, list[QueryEntry]]) -> tuple[list[QueryEntry], dict[str, int]]:
    """Concatenate the entries of each kind in ``KIND_PRIORITY`` order, dropping repeated queries.

    A query that several kinds select keeps the entry of the first kind in
    ``KIND_PRIORITY``. Returns the entries and the number dropped per kind.
    """
    seen: set[str] = set()
    merged: list[QueryEntry] = []
    dropped: dict[str, int] = {}
    for kind in KIND_PRIORITY:
        dropped[kind.value] = 0
        for entry in entries_by_kind.get(kind, []):
            if entry.query in seen:
                dropped[kind.value] += 1
                continue
            seen.add(entry.query)
            merged.append(entry)
    return merged, dropped
