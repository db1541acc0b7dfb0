"""Per-query balancing with MetaCLIP's sampling rule.

A candidate matched by queries with counts c_1..c_k is kept with probability

    P(keep) = 1 - prod_i (1 - t / max(c_i, t))

so a candidate that matches any query with fewer than t candidates is always kept,
and a query with c > t candidates keeps about t of those that match it alone.
The draw for each candidate is a hash of (seed, candidate id), so a rerun, or the
same data split into any number of partitions, keeps exactly the same candidates.

``wit_builder.match.strict`` has the other mode, which caps the pairs credited to
each query at t exactly.
"""

from __future__ import annotations

import hashlib
import math
from typing import Mapping, Sequence

#: Default t of the balancing rule: CLIP kept at most 20,000 pairs per query.
DEFAULT_CAP = 20_000

#: Values of ``[balance] mode`` and ``wit balance --mode``.
BALANCE_MODES = ("metaclip", "strict")


def check_balance_options(cap: int, mode: str, oversample: float) -> None:
    """Raise ValueError for a cap, mode or oversampling factor that balancing cannot use."""
    if not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0:
        raise ValueError(f"cap must be a positive number of candidates per query, got {cap!r}")
    if mode not in BALANCE_MODES:
        raise ValueError(f"unknown balance mode {mode!r}; expected one of {', '.join(BALANCE_MODES)}")
    if not isinstance(oversample, (int, float)) or isinstance(oversample, bool) or not 1.0 <= oversample < math.inf:
        raise ValueError(f"oversample must be a finite number of at least 1.0, got {oversample!r}")


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


#: Hash stream of the final pass after fetch and filter. Its draws are independent of
#: the first pass's, which already selected the surviving candidates by their draws.
FINAL_STREAM = b"final"


def rank_hash(seed: int, candidate_id: str, stream: bytes = b"") -> int:
    """Return a 64-bit integer fixed by ``seed``, ``candidate_id`` and the hash ``stream`` (at most 16 bytes)."""
    digest = hashlib.blake2b(
        candidate_id.encode("utf-8"), digest_size=8, key=seed.to_bytes(8, "little", signed=True), person=stream
    )
    return int.from_bytes(digest.digest(), "little")


def uniform_draw(seed: int, candidate_id: str, stream: bytes = b"") -> float:
    """Return a number in [0, 1) fixed by ``seed``, ``candidate_id`` and the hash ``stream``."""
    return rank_hash(seed, candidate_id, stream) / 2**64


def should_keep(
    candidate_id: str, query_ids: Sequence[int], counts: Mapping[int, int], cap: int, seed: int, stream: bytes = b""
) -> bool:
    """Decide with a seeded hash draw whether balancing keeps one candidate."""
    return uniform_draw(seed, candidate_id, stream) < keep_probability(query_ids, counts, cap)
