"""Strict balancing: every kept pair is credited to one query, and no query to more than t.

The rule, for a cap t and a seed:

1. Each candidate gets a rank, a 64-bit hash of (seed, candidate id).
2. For each query q, S_q is the set of the t lowest-ranked candidates that match q,
   or all of them when fewer than t do.
3. A candidate is kept when it is in S_q for at least one of its queries, and is
   credited to the rarest of those queries: the one with the smallest matched count,
   then the smallest id.

Each kept candidate is credited once, and q's credits all come from S_q, so no query
is credited with more than t candidates. A query matched by at most t candidates
keeps all of them. A query whose candidates match no other query is credited with
exactly min(count, t). A query over the cap can end with fewer than t credits when
some of its t lowest-ranked candidates are credited to a rarer query. Those
candidates are kept, and the shortfall is counted as ``queries_short`` in the stats.

Any partitioning gives the same result, because S_q depends only on the ranks. The
computation is two streaming passes over the partitions: the first keeps, for every
query, its t lowest ranks (``LowestRanks``), and the second decides each candidate
on its own from the per-query thresholds (the t-th lowest rank).

Memory of the first pass: 16 bytes per retained (query, rank) pair, and at most
sum over queries of min(count, t) pairs are retained. That sum is at most the number
of matched (candidate, query) pairs, and at most t times the number of queries. New
pairs wait for the next merge until they reach max(``MERGE_PAIRS``, retained pairs),
and a merge briefly needs about three copies of the arrays. The pass can be split by
query id over several machines, because queries do not interact in it.

Copies of one candidate id (the same URL and text harvested twice) count once: they
share a rank, so they are kept or dropped together and fill one place in S_q. Two
different ids with the same 64-bit rank among a query's t lowest also fill one place
and let that query keep t + 1; for t = 20,000 the chance is about 1e-11 per query.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

#: Minimum number of pairs added since the last merge that triggers the next merge.
MERGE_PAIRS = 1 << 21

_MAX_RANK = 2**64 - 1


class LowestRanks:
    """The ``cap`` lowest distinct ranks of every query, merged from batches of (query, rank) pairs."""

    def __init__(self, cap: int):
        if cap <= 0:
            raise ValueError(f"cap must be a positive number of candidates per query, got {cap}")
        self.cap = cap
        self._queries = np.empty(0, dtype=np.int64)
        self._ranks = np.empty(0, dtype=np.uint64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_pairs = 0

    def add(self, query_ids: np.ndarray, ranks: np.ndarray) -> None:
        """Add the (query, rank) pairs ``zip(query_ids, ranks)``."""
        if len(query_ids) != len(ranks):
            raise ValueError(f"got {len(query_ids)} query ids but {len(ranks)} ranks")
        self._pending.append((np.asarray(query_ids, dtype=np.int64), np.asarray(ranks, dtype=np.uint64)))
        self._pending_pairs += len(query_ids)
        if self._pending_pairs >= max(MERGE_PAIRS, len(self._queries)):
            self._merge()

    @property
    def retained_pairs(self) -> int:
        """Number of (query, rank) pairs retained by the last merge."""
        return len(self._queries)

    def _merge(self) -> None:
        if not self._pending:
            return
        queries = np.concatenate([self._queries, *(pair[0] for pair in self._pending)])
        ranks = np.concatenate([self._ranks, *(pair[1] for pair in self._pending)])
        self._pending = []
        self._pending_pairs = 0

        order = np.lexsort((ranks, queries))
        queries = queries[order]
        ranks = ranks[order]
        distinct = np.ones(len(queries), dtype=bool)
        distinct[1:] = (queries[1:] != queries[:-1]) | (ranks[1:] != ranks[:-1])
        queries = queries[distinct]
        ranks = ranks[distinct]

        # Position of each pair within its query's run, which is sorted by rank.
        starts = np.flatnonzero(np.concatenate(([True], queries[1:] != queries[:-1])))
        lengths = np.diff(np.append(starts, len(queries)))
        position = np.arange(len(queries)) - np.repeat(starts, lengths)
        within_cap = position < self.cap
        self._queries = queries[within_cap]
        self._ranks = ranks[within_cap]

    def thresholds(self) -> dict[int, int]:
        """Return the cap-th lowest rank of every query that has at least ``cap`` distinct ranks.

        A candidate of such a query is in its lowest ``cap`` when its rank is at most the
        threshold. Queries with fewer ranks are absent, because they keep every candidate.
        """
        self._merge()
        queries, ranks = self._queries, self._ranks
        if len(queries) == 0:
            return {}
        # After a merge every query has at most cap pairs, sorted by rank, so the last
        # pair of a query with exactly cap pairs is its threshold.
        ends = np.flatnonzero(np.concatenate((queries[1:] != queries[:-1], [True])))
        starts = np.concatenate(([0], ends[:-1] + 1))
        full = (ends - starts + 1) == self.cap
        return dict(zip(queries[ends[full]].tolist(), ranks[ends[full]].tolist()))


def credit_query(rank: int, query_ids: Sequence[int], thresholds: Mapping[int, int], counts: Mapping[int, int]) -> int | None:
    """Return the query that a candidate is credited to, or None when strict balancing drops it."""
    best = None
    best_order = None
    for query_id in query_ids:
        if rank > thresholds.get(query_id, _MAX_RANK):
            continue
        order = (counts.get(query_id, 0), query_id)
        if best_order is None or order < best_order:
            best, best_order = query_id, order
    return best
