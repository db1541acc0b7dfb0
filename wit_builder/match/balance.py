"""Per-query balancing with MetaCLIP's sampling rule.

A candidate matched by queries with counts c_1..c_k is kept with probability

    P(keep) = 1 - prod_i (1 - t / max(c_i, t))

so a candidate that matches any query with fewer than t candidates is always kept,
and a query with c > t candidates keeps about t of those that match it alone.
The draw for each candidate is a hash of (seed, candidate id), so a rerun, or the
same data split into any number of partitions, keeps exactly the same candidates.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence


def keep_probability(query_ids: Sequence[int], counts: Mapping[int, int], cap: int) -> float:
    """Return P(keep) for a candidate matched by ``query_ids`` under the cap ``cap``."""
    if cap <= 0:
        raise ValueError(f"cap must be a positive number of candidates per query, got {cap}")
    if not query_ids:
        return 0.0
    drop_probability = 1.0
    for query_id in query_ids:
        count = counts.get(query_id, 0)
        drop_probability *= 1.0 - cap / max(count, cap)
    return 1.0 - drop_probability


def uniform_draw(seed: int, candidate_id: str) -> float:
    """Return a number in [0, 1) fixed by ``seed`` and ``candidate_id``."""
    digest = hashlib.blake2b(candidate_id.encode("utf-8"), digest_size=8, key=seed.to_bytes(8, "little", signed=True))
    return int.from_bytes(digest.digest(), "little") / 2**64


def should_keep(candidate_id: str, query_ids: Sequence[int], counts: Mapping[int, int], cap: int, seed: int) -> bool:
    """Decide with a seeded hash draw whether balancing keeps one candidate."""
    return uniform_draw(seed, candidate_id) < keep_probability(query_ids, counts, cap)
