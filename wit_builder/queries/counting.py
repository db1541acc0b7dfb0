"""Count passes over articles, and the query entries their counts select.

``WordPass`` is the first pass: word tokens, article titles with their lengths, links
and redirects. It also writes each article's token runs to a ``TokenCache``: gzip text
files with one run per line. ``PairPass`` is the second pass: it reads those files, not
the dump, and counts adjacent pairs of frequent words, so markup is stripped and text
tokenized once per build. Each pass keeps its counts in ``SpillCounter`` objects, so one
process keeps at most ``max_entries`` keys per counter and the rest waits on disk in
sorted runs that ``merge_runs`` adds up later, across every process of a build.

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

import gzip
import heapq
import math
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from wit_builder.queries.articles import ArticleMaker, ArticleText
from wit_builder.queries.dump import ARTICLE_NAMESPACE, SiteInfo, WikiPage
from wit_builder.queries.spill import SpillCounter
from wit_builder.queries.tokens import has_letter, iter_token_runs, join_tokens, token_run_texts
from wit_builder.records import QueryEntry, QueryKind

#: Priority of query kinds when one string qualifies as several: the first kind wins.
#: WordNet comes last, as in CLIP: synsets "not already in the list".
KIND_PRIORITY = (QueryKind.UNIGRAM, QueryKind.BIGRAM, QueryKind.TITLE, QueryKind.WORDNET)

#: Order in which ``trim_to_size`` removes entries when the list is over its target size:
#: the least linked or viewed titles go first, then the least frequent bigrams, then
#: WordNet names from the end of the files (adverbs before nouns). Unigrams, the core of
#: CLIP's list, go last, least frequent first.
TRIM_ORDER = (QueryKind.TITLE, QueryKind.BIGRAM, QueryKind.WORDNET, QueryKind.UNIGRAM)

_TITLE_QUALIFIER = re.compile(r"\s+\([^()]*\)\Z")

# A redirect is stored in the redirects counter as "title<NUL>target". NUL sorts before
# every character of a title, so the keys sort in the order of their titles.
REDIRECT_SEPARATOR = "\x00"


#: Characters of token runs a cache file takes before the next file starts.
TOKEN_CACHE_FILE_CHARS = 64 << 20


@dataclass
class PassCounters:
    """Spill folder of a pass, and the number of keys a counter keeps before it spills."""

    folder: Path
    max_entries: int

    def counter(self, name: str) -> SpillCounter:
        return SpillCounter(self.folder, name, self.max_entries)


class TokenCache:
    """Gzip text files of token runs, one run per line, tokens separated by spaces.

    A new file starts every ``TOKEN_CACHE_FILE_CHARS`` characters, so the second pass
    can share the files out among its workers.
    """

    def __init__(self, folder: Path, file_chars: int = TOKEN_CACHE_FILE_CHARS):
        self.folder = Path(folder)
        self.file_chars = file_chars
        self.files: list[Path] = []
        self._file = None
        self._chars = 0

    def write(self, runs: list[str]) -> None:
        """Append the runs of one article, each a string of tokens separated by whitespace."""
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"tokens-{os.getpid()}-{len(self.files):05d}.txt.gz"
            self._file = gzip.open(path, "wt", encoding="utf-8", compresslevel=1, newline="\n")
            self.files.append(path)
            self._chars = 0
        text = "\n".join(runs) + "\n" if runs else ""
        self._file.write(text)
        self._chars += len(text)
        if self._chars >= self.file_chars:
            self.close()

    def close(self) -> list[Path]:
        """Close the open file and return every file written."""
        if self._file is not None:
            self._file.close()
            self._file = None
        return list(self.files)


class WordPass:
    """First pass: tokens, titles (with plain-text length), links and redirects."""

    COUNTERS = ("unigrams", "titles", "links", "redirects")

    def __init__(
        self, counters: PassCounters, *, lowercase: bool = False, include_titles: bool = True, cache_tokens: bool = True
    ):
        self.lowercase = lowercase
        self.include_titles = include_titles
        self.cache = TokenCache(counters.folder / "tokens") if cache_tokens else None
        self.unigrams = counters.counter("unigrams")
        self.titles = counters.counter("titles")
        self.links = counters.counter("links")
        self.redirects = counters.counter("redirects")
        self.stats: Counter = Counter()
        self._maker: ArticleMaker | None = None

    def add_page(self, page: WikiPage, siteinfo: SiteInfo) -> None:
        """Count one dump page: an article, a redirect, or a page of another namespace (skipped)."""
        self.stats["pages"] += 1
        if page.namespace != ARTICLE_NAMESPACE:
            self.stats["other_namespaces"] += 1
            return
        if page.redirect is not None:
            self.stats["redirects"] += 1
            if self.include_titles and page.redirect:
                source = siteinfo.normalize_title(page.title)
                target = siteinfo.normalize_title(page.redirect.partition("#")[0])
                self.redirects.add(f"{source}{REDIRECT_SEPARATOR}{target}")
            return
        if self._maker is None or self._maker.siteinfo is not siteinfo:
            self._maker = ArticleMaker(siteinfo, with_links=self.include_titles)
        self.add_article(self._maker.make(page))

    def add_article(self, article: ArticleText) -> None:
        """Count the tokens, title and links of one article."""
        self.stats["articles"] += 1
        runs = token_run_texts(article.text, self.lowercase)
        if self.cache is not None:
            self.cache.write(runs)
        tokens = " ".join(runs).split()
        self.unigrams.update(tokens)
        self.stats["tokens"] += len(tokens)
        if not self.include_titles:
            return
        if article.disambiguation:
            self.stats["disambiguation_pages"] += 1
        else:
            self.titles.add(_clean_key(article.title), len(article.text))
        # A title's count is the number of other articles that link to it, so repeated
        # links from one article and links to itself count once or not at all.
        targets = {_clean_key(target) for target in article.links if target} - {_clean_key(article.title)}
        self.links.update(targets)
        self.stats["links"] += len(targets)

    def finish(self) -> dict[str, list[Path]]:
        """Spill every counter and return their runs by counter name, and the token cache files."""
        runs = {name: getattr(self, name).finish() for name in self.COUNTERS}
        runs["tokens"] = self.cache.close() if self.cache is not None else []
        return runs


class PairPass:
    """Second pass: adjacent pairs of ``words`` in the token cache, keyed "first second"."""

    COUNTERS = ("bigrams",)

    def __init__(self, counters: PassCounters, words: frozenset[str]):
        self.words = words
        self.bigrams = counters.counter("bigrams")
        self.stats: Counter = Counter()

    def add_cache_file(self, path: Path) -> None:
        """Count the pairs of every token run in one token cache file."""
        words = self.words
        # One counter update per batch of pairs, not per run, because most runs are short.
        # A batch is small next to max_entries, so the counter spills near its limit.
        batch_size = max(1_000, min(200_000, self.bigrams.max_entries // 4))
        pairs: list[str] = []
        with gzip.open(path, "rt", encoding="utf-8", newline="\n") as cache:
            for line in cache:
                run = line.split()
                if len(run) < 2:
                    continue
                pairs += [f"{first} {second}" for first, second in zip(run, run[1:]) if first in words and second in words]
                if len(pairs) >= batch_size:
                    self.bigrams.update(pairs)
                    pairs = []
        self.bigrams.update(pairs)
        self.stats["cache_files"] += 1

    def finish(self) -> dict[str, list[Path]]:
        return {"bigrams": self.bigrams.finish()}


def _clean_key(title: str) -> str:
    # Run files are tab-separated lines; a title with a tab or line break would break a line.
    return title.replace("\t", " ").replace("\n", " ").replace(REDIRECT_SEPARATOR, "")


def iter_bigrams(text: str, words: frozenset[str], lowercase: bool = False) -> Iterator[str]:
    """Yield the adjacent pairs of ``words`` in ``text``, keyed "first second".

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
                yield f"{previous} {token}"
            previous = token


def count_bigrams(text: str, words: frozenset[str], counts: Counter, lowercase: bool = False) -> None:
    """Add the adjacent pairs of ``words`` in ``text`` to ``counts`` (see ``iter_bigrams``)."""
    counts.update(iter_bigrams(text, words, lowercase))


def scan_unigrams(
    merged: Iterable[tuple[str, int]], min_count: int, bigram_min_count: int
) -> tuple[list[QueryEntry], dict[str, int], int]:
    """Read merged unigram counts once: the unigram queries, the bigram words and the distinct count.

    The queries are the words seen at least ``min_count`` times that contain a letter,
    most frequent first. The bigram words are those seen at least ``bigram_min_count``
    times, numbers included ("Apollo 11"): a pair never occurs more often than either of
    its words, so counting pairs of these words only loses no bigram that passes the
    threshold.
    """
    entries: list[QueryEntry] = []
    frequent: dict[str, int] = {}
    distinct = 0
    for word, count in merged:
        distinct += 1
        if count >= bigram_min_count:
            frequent[word] = count
        if count >= min_count and has_letter(word):
            entries.append(QueryEntry(query=word, kind=QueryKind.UNIGRAM.value, count=count))
    entries.sort(key=_by_count)
    return entries, frequent, distinct


def pmi(pair_count: int, first_count: int, second_count: int, total_tokens: int) -> float:
    """Return the pointwise mutual information of a word pair in bits (see the module docstring)."""
    return math.log2(pair_count * total_tokens / (first_count * second_count))


def select_bigrams(
    merged: Iterable[tuple[str, int]],
    word_counts: dict[str, int],
    total_tokens: int,
    min_count: int,
    pmi_threshold: float,
    limit: int | None = None,
) -> tuple[list[QueryEntry], int]:
    """Return the pairs seen at least ``min_count`` times whose PMI is at least ``pmi_threshold``.

    At most ``limit`` entries are kept, the most frequent. Also returns the number of
    distinct pairs read.
    """
    kept: list[tuple[int, str, float]] = []
    distinct = 0
    for pair, count in merged:
        distinct += 1
        if count < min_count:
            continue
        first, _space, second = pair.partition(" ")
        # A number may end a bigram ("Apollo 11") but not start one: "000 men" comes from "10,000 men".
        if not has_letter(first):
            continue
        score = pmi(count, word_counts[first], word_counts[second], total_tokens)
        if score < pmi_threshold:
            continue
        item = (count, pair, score)
        if limit is None or len(kept) < limit:
            heapq.heappush(kept, item)
        elif item > kept[0]:
            heapq.heapreplace(kept, item)
    entries = [
        QueryEntry(query=join_tokens(*pair.split(" ", 1)), kind=QueryKind.BIGRAM.value, count=count, pmi=round(score, 4))
        for count, pair, score in kept
    ]
    entries.sort(key=_by_count)
    return entries, distinct


def resolve_redirects(
    links: Iterator[tuple[str, int]], redirects: Iterator[tuple[str, int]]
) -> Iterator[tuple[str, int]]:
    """Yield ``(title, links)`` with each link to a redirect credited to the redirect's target.

    Both inputs are sorted merged runs: link counts by target title, and redirects as
    "title<NUL>target" keys. Follows one redirect hop, as MediaWiki does.
    """
    redirect = _next_redirect(redirects)
    for target, count in links:
        while redirect is not None and redirect[0] < target:
            redirect = _next_redirect(redirects)
        if redirect is not None and redirect[0] == target:
            yield redirect[1], count
        else:
            yield target, count


def _next_redirect(redirects: Iterator[tuple[str, int]]) -> tuple[str, str] | None:
    item = next(redirects, None)
    if item is None:
        return None
    source, _separator, target = item[0].partition(REDIRECT_SEPARATOR)
    return source, target


def title_query(title: str) -> str:
    """Return the query for an article title: the title without a trailing "(qualifier)".

    "Mercury (planet)" becomes "Mercury", because captions name the thing, not the
    disambiguated article.
    """
    return _TITLE_QUALIFIER.sub("", title).strip()


@dataclass
class TitleRanking:
    """Ranking of titles as queries: the score that orders them and the thresholds they must pass.

    ``rank`` is "pageviews" (needs pageview counts), "links" (links from other articles,
    through one redirect hop) or "length" (characters of plain text).
    """

    rank: str = "links"
    min_links: int = 0
    min_pageviews: int = 0
    limit: int | None = None

    RANKS = ("pageviews", "links", "length")

    def __post_init__(self) -> None:
        if self.rank not in self.RANKS:
            raise ValueError(f"invalid title rank {self.rank!r}: choose one of {', '.join(self.RANKS)}")


def select_titles(
    titles: Iterable[tuple[str, int, int]], ranking: TitleRanking, pageviews: dict[str, int] | None = None
) -> list[QueryEntry]:
    """Return title queries from ``(title, length, links)`` rows, best first by ``ranking.rank``.

    An article passes when it has at least ``min_links`` links and, with pageviews
    given, at least ``min_pageviews`` views. Titles that give the same query ("Mercury
    (planet)" and "Mercury (element)") add up their links, views and lengths. Titles
    without a letter, such as "1990", are skipped.
    """
    if ranking.rank == "pageviews" and pageviews is None:
        raise ValueError("ranking titles by pageviews needs pageview files")
    totals: dict[str, list[int]] = {}
    for title, length, links in titles:
        views = pageviews.get(title, 0) if pageviews is not None else 0
        if links < ranking.min_links or (pageviews is not None and views < ranking.min_pageviews):
            continue
        query = title_query(title)
        if not query or not has_letter(query):
            continue
        total = totals.setdefault(query, [0, 0, 0])
        total[0] += links
        total[1] += views
        total[2] += length

    score_index = {"links": 0, "pageviews": 1, "length": 2}[ranking.rank]
    best = heapq.nlargest(
        ranking.limit if ranking.limit is not None else len(totals),
        totals.items(),
        key=lambda item: (item[1][score_index], item[1][0], item[0]),
    )
    return [
        QueryEntry(
            query=query,
            kind=QueryKind.TITLE.value,
            count=links,
            pageviews=views if pageviews is not None else None,
        )
        for query, (links, views, _length) in best
    ]


def select_wordnet(names: dict[str, int]) -> list[QueryEntry]:
    """Return one entry per WordNet synset name, in WordNet's order; the count is its number of synsets."""
    return [QueryEntry(query=name, kind=QueryKind.WORDNET.value, count=count) for name, count in names.items() if name]


def merge_kinds(entries_by_kind: dict[QueryKind, list[QueryEntry]]) -> tuple[dict[QueryKind, list[QueryEntry]], dict[str, int]]:
    """Drop each query that an earlier kind in ``KIND_PRIORITY`` already has.

    Returns the entries of each kind without repeats, in their own order, and the
    number dropped per kind.
    """
    seen: set[str] = set()
    unique: dict[QueryKind, list[QueryEntry]] = {}
    dropped: dict[str, int] = {}
    for kind in KIND_PRIORITY:
        dropped[kind.value] = 0
        unique[kind] = []
        for entry in entries_by_kind.get(kind, []):
            if entry.query in seen:
                dropped[kind.value] += 1
                continue
            seen.add(entry.query)
            unique[kind].append(entry)
    return unique, dropped


def trim_to_size(entries_by_kind: dict[QueryKind, list[QueryEntry]], target_size: int | None) -> dict[str, int]:
    """Cut the lists, best first within each kind, until they hold ``target_size`` entries in all.

    Kinds are cut in ``TRIM_ORDER``: a kind is emptied from its weakest entry up before
    the next kind loses any. Returns the number removed per kind.
    """
    removed = {kind.value: 0 for kind in KIND_PRIORITY}
    if target_size is None:
        return removed
    excess = sum(len(entries) for entries in entries_by_kind.values()) - target_size
    for kind in TRIM_ORDER:
        if excess <= 0:
            break
        entries = entries_by_kind.get(kind, [])
        cut = min(excess, len(entries))
        if cut:
            del entries[len(entries) - cut :]
            removed[kind.value] = cut
            excess -= cut
    return removed


def _by_count(entry: QueryEntry) -> tuple[int, str]:
    return -entry.count, entry.query
