"""Exact and near-duplicate detection over images and captions.

Each index finds the kept sample that a new sample duplicates, and records kept samples.
The caller offers samples in input order and adds only those it keeps, so the first
sample of a duplicate cluster is kept and every match is a kept sample.
"""

from __future__ import annotations

import numpy as np
from datasketch import MinHash, MinHashLSH

from wit_builder.filter.captions import caption_tokens, normalize_caption

PHASH_BITS = 64

#: datasketch's default permutation scheme since 2.0.0 (32-bit hash values).
MINHASH_SCHEME = "affine32"


class PixelIndex:
    """Index of kept samples by pixel hash, for exact duplicates."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def find(self, pixel_hash: str) -> int | None:
        """Return the kept sample with the same pixel hash, or None."""
        return self._first.get(pixel_hash)

    def add(self, index: int, pixel_hash: str) -> None:
        """Record sample ``index`` as kept."""
        self._first.setdefault(pixel_hash, index)


def _band_masks(max_distance: int) -> list[tuple[int, int]]:
    """Split the 64 hash bits into ``max_distance + 1`` contiguous bands of near-equal width.

    Two hashes within ``max_distance`` differing bits must agree exactly on at least one
    band (pigeonhole principle), so exact-match buckets per band find every such pair.
    Returns (shift, mask) per band.
    """
    bands = max_distance + 1
    widths = [PHASH_BITS // bands + (1 if band < PHASH_BITS % bands else 0) for band in range(bands)]
    masks = []
    shift = 0
    for width in widths:
        masks.append((shift, (1 << width) - 1))
        shift += width
    return masks


class PhashIndex:
    """Index of kept samples by 64-bit perceptual hash, for near-duplicate images by Hamming distance.

    Hashes go into exact-match buckets per band (see ``_band_masks``), and only hashes
    that share a bucket are compared bit by bit. The result is exact, not approximate,
    for any ``max_distance``. Larger distances mean narrower bands and fuller buckets,
    so lookups slow down. At 4, the hash splits into five bands of 12 or 13 bits, and a
    bucket contains about n / 2**13 of n kept hashes if the hashes are spread evenly.
    """

    def __init__(self, max_distance: int) -> None:
        if not 0 <= max_distance < PHASH_BITS:
            raise ValueError(f"phash max_distance must be in [0, {PHASH_BITS - 1}], got {max_distance}")
        self.max_distance = max_distance
        self._masks = _band_masks(max_distance)
        self._buckets: list[dict[int, list[tuple[int, int]]]] = [{} for _ in self._masks]

    def _band_values(self, value: int) -> list[int]:
        return [(value >> shift) & mask for shift, mask in self._masks]

    def find(self, phash: str) -> int | None:
        """Return the earliest kept sample within ``max_distance`` bits of ``phash``, or None."""
        value = int(phash, 16)
        best: int | None = None
        for buckets, band_value in zip(self._buckets, self._band_values(value)):
            for kept_value, kept_index in buckets.get(band_value, ()):
                if (value ^ kept_value).bit_count() <= self.max_distance:
                    if best is None or kept_index < best:
                        best = kept_index
        return best

    def add(self, index: int, phash: str) -> None:
        """Record sample ``index`` as kept."""
        value = int(phash, 16)
        for buckets, band_value in zip(self._buckets, self._band_values(value)):
            buckets.setdefault(band_value, []).append((value, index))


class CaptionIndex:
    """MinHash LSH index of kept captions over word shingles, for near-duplicate captions.

    A caption's shingles are its word n-grams (``shingle_size`` words, lowercase, from
    ``caption_tokens``). Two captions are duplicates when the MinHash estimate of the
    Jaccard similarity of their shingle sets is at least ``threshold``. LSH only proposes
    candidates, and each candidate is confirmed against the stored signature.

    Captions with fewer than ``min_shingles`` distinct shingles get no MinHash, so they
    are never indexed or matched. Otherwise every empty, emoji-only or numeric caption would have the same
    empty shingle set and form one large duplicate cluster.

    Memory: one signature of ``num_perm`` uint32 values per kept caption (512 bytes at
    128 permutations) plus the LSH tables.
    """

    def __init__(
        self,
        threshold: float,
        num_perm: int,
        shingle_size: int,
        min_shingles: int,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"caption dedup threshold must be in (0, 1], got {threshold}")
        if shingle_size < 1:
            raise ValueError(f"shingle size must be at least 1, got {shingle_size}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.min_shingles = max(1, min_shingles)

        # Generating permutations takes most of the time of MinHash(), so share one set.
        # datasketch 2.x requires the scheme whenever permutations are passed in.
        self._permutations = MinHash(num_perm=num_perm, scheme=MINHASH_SCHEME).permutations
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._signatures: dict[int, np.ndarray] = {}

    def shingles(self, caption: str) -> set[str]:
        """Return the set of word n-grams of a caption, joined by single spaces."""
        tokens = caption_tokens(normalize_caption(caption))
        size = min(self.shingle_size, len(tokens))
        if size == 0:
            return set()
        return {" ".join(tokens[start : start + size]) for start in range(len(tokens) - size + 1)}

    def minhash(self, caption: str) -> MinHash | None:
        """Return the MinHash of a caption's shingles, or None below ``min_shingles``."""
        shingles = self.shingles(caption)
        if len(shingles) < self.min_shingles:
            return None
        minhash = MinHash(
            num_perm=self.num_perm, permutations=self._permutations, scheme=MINHASH_SCHEME
        )
        minhash.update_batch([shingle.encode("utf-8") for shingle in sorted(shingles)])
        return minhash

    def find(self, minhash: MinHash) -> int | None:
        """Return the earliest kept sample whose caption is a near duplicate, or None."""
        signature = minhash.hashvalues
        matches = []
        for kept_index in self._lsh.query(minhash):
            similarity = float(np.mean(self._signatures[kept_index] == signature))
            if similarity >= self.threshold:
                matches.append(kept_index)
        return min(matches) if matches else None

    def add(self, index: int, minhash: MinHash) -> None:
        """Record sample ``index`` as kept."""
        self._lsh.insert(index, minhash, check_duplication=False)
        self._signatures[index] = minhash.hashvalues.copy()
