"""The filter stage: one FilterDecision per fetched sample, written beside the fetched partitions."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from wit_builder.filter.captions import CaptionCheck, check_caption
from wit_builder.filter.config import FilterConfig
from wit_builder.filter.dedup import CaptionIndex, PhashIndex, PixelIndex
from wit_builder.filter.images import ImageDecodeError, ImageHashes, check_image_size, hash_image
from wit_builder.parquet import iter_records, write_records
from wit_builder.records import FetchResult, FetchStatus, FilterDecision
from wit_builder.stats import write_stage_stats

logger = logging.getLogger(__name__)

STAGE_NAME = "filter"

#: Rows per read from a fetched partition. Rows carry JPEG bytes, so small batches bound memory.
READ_BATCH_ROWS = 256


@dataclass
class FilterStats:
    """Counts of one filter run, as written to ``stats.json``."""

    input_rows: int = 0
    ok_rows: int = 0
    kept: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    partitions: int = 0
    seconds: float = 0.0

    @property
    def rejected(self) -> int:
        return self.ok_rows - self.kept


@dataclass
class _SampleFeatures:
    """Per-sample measurements that need no other sample, computed in worker processes."""

    key: str
    caption: str
    caption_check: CaptionCheck
    reason: str | None
    hashes: ImageHashes | None


def _measure_sample(result: FetchResult, config: FilterConfig) -> _SampleFeatures:
    """Apply the caption and image filters to one fetched sample.

    The image is decoded only when the caption passes, or when the fetch stage recorded
    no size, so rejected samples cost no decoding and get no hashes.
    """
    caption = result.caption or ""
    caption_check = check_caption(
        caption,
        min_chars=config.min_caption_chars,
        max_chars=config.max_caption_chars,
        min_words=config.min_caption_words,
        allowed_languages=config.languages,
    )
    reason = caption_check.reason

    # Sizes before the fetch stage resized the image, because an upscaled thumbnail
    # would otherwise pass the minimum-side check.
    width = result.original_width or result.width
    height = result.original_height or result.height

    hashes = None
    if reason is None or width is None or height is None:
        try:
            hashes = hash_image(result.image)
        except ImageDecodeError as error:
            logger.debug("sample %s: image decode failed: %s", result.key, error)
            reason = reason or "image_decode_error"
        if hashes is not None and (width is None or height is None):
            width, height = hashes.width, hashes.height

    if reason is None:
        reason = check_image_size(
            width,
            height,
            min_side=config.min_image_side,
            max_aspect_ratio=config.max_aspect_ratio,
        )
    return _SampleFeatures(
        key=result.key,
        caption=caption,
        caption_check=caption_check,
        reason=reason,
        hashes=hashes,
    )


def _measure_partition(path: Path, config: FilterConfig) -> tuple[int, list[_SampleFeatures]]:
    """Return the row count of one fetched partition and the features of its ok rows."""
    rows = 0
    features = []
    for result in iter_records(path, FetchResult, batch_size=READ_BATCH_ROWS):
        rows += 1
        if result.status == FetchStatus.OK.value:
            features.append(_measure_sample(result, config))
    return rows, features


def _iter_measured(
    fetched_parts: list[Path], config: FilterConfig, workers: int
) -> Iterator[tuple[int, list[_SampleFeatures]]]:
    """Measure partitions in input order, in ``workers`` processes when more than one."""
    if workers <= 1 or len(fetched_parts) <= 1:
        for path in fetched_parts:
            yield _measure_partition(path, config)
        return

    # spawn, because forking a process that already runs pyarrow threads can deadlock.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as executor:
        yield from executor.map(_measure_partition, fetched_parts, repeat(config))


def _caption_identity(caption: str) -> str:
    return " ".join(caption.casefold().split())


class _Deduplicator:
    """Exact and near-duplicate checks in input order, across all partitions of a run."""

    def __init__(self, config: FilterConfig) -> None:
        self.pixels = PixelIndex() if config.dedup_pixels else None
        self.max_captions_per_image = config.max_captions_per_image
        self.image_captions: dict[int, set[str]] = {}
        self.phashes = PhashIndex(config.phash_max_distance) if config.dedup_images else None
        self.captions = None
        if config.dedup_captions:
            self.captions = CaptionIndex(
                threshold=config.caption_dedup_threshold,
                num_perm=config.caption_num_perm,
                shingle_size=config.caption_shingle_size,
                min_shingles=config.caption_min_shingles,
            )

    def check(self, index: int, sample: _SampleFeatures) -> tuple[str, int] | None:
        """Return (reason, index of the kept original) for a duplicate, else keep the sample.

        A sample enters the indexes only when no check matched, so every match is a kept sample.
        """
        hashes = sample.hashes
        same_image = None
        if self.pixels is not None and hashes is not None:
            same_image = self.pixels.find(hashes.pixel_hash)
            if same_image is not None and not self._is_new_caption(same_image, sample.caption):
                return "duplicate_pixels", same_image

        # A further caption of a kept image skips the near-duplicate image check,
        # which would match the kept image itself.
        if self.phashes is not None and hashes is not None and same_image is None:
            original = self.phashes.find(hashes.phash)
            if original is not None:
                return "near_duplicate_image", original
        minhash = self.captions.minhash(sample.caption) if self.captions is not None else None
        if minhash is not None:
            original = self.captions.find(minhash)
            if original is not None:
                return "near_duplicate_caption", original

        if same_image is not None:
            self.image_captions[same_image].add(_caption_identity(sample.caption))
        elif self.pixels is not None and hashes is not None:
            self.pixels.add(index, hashes.pixel_hash)
            self.image_captions[index] = {_caption_identity(sample.caption)}
        if self.phashes is not None and hashes is not None and same_image is None:
            self.phashes.add(index, hashes.phash)
        if minhash is not None:
            self.captions.add(index, minhash)
        return None

    def _is_new_caption(self, image_index: int, caption: str) -> bool:
        """Tell whether a kept image may take ``caption`` as one more sample."""
        captions = self.image_captions[image_index]
        if len(captions) >= self.max_captions_per_image:
            return False
        return _caption_identity(caption) not in captions


def filter_partition(
    fetched_parts: list[Path],
    out_dir: str | os.PathLike,
    config: FilterConfig | None = None,
    *,
    workers: int = 1,
) -> FilterStats:
    """Filter and deduplicate fetched samples and write one FilterDecision per ok sample.

    Unlike other stages, this one takes every fetched partition of a run at once,
    because a duplicate can sit in any partition. The per-sample measurements
    (language, image decoding and hashes) run in ``workers`` processes, one partition
    at a time. Dedup then runs in this process in input order, so the first sample of a
    duplicate cluster is kept, whatever the number of workers.

    A sample's ``reason`` is the first check that fails. The checks run in this order:
    repeated key ("duplicate_key"), caption length, word count, language, image
    decoding, image size, aspect ratio, pixel duplicates, perceptual-hash near
    duplicates and caption near duplicates. Rows whose status is not "ok" get no
    decision. Only samples whose image was decoded carry ``pixel_hash`` and ``phash``.

    Writes ``out_dir/part-NNNNN.parquet`` for the i-th input partition (decisions in
    input order, empty partitions included) and ``out_dir/stats.json``, and deletes
    ``part-*.parquet`` files from an earlier run with more partitions.
    """
    config = config or FilterConfig()
    fetched_parts = [Path(path) for path in fetched_parts]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    stats = FilterStats(partitions=len(fetched_parts))
    reasons: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    deduplicator = _Deduplicator(config)
    seen_keys: set[str] = set()
    keys_by_index: list[str] = []
    written: set[Path] = set()

    progress = tqdm(total=len(fetched_parts), desc="filter", unit="part")
    measured = _iter_measured(fetched_parts, config, workers)
    for part_number, (rows, features) in enumerate(measured):
        stats.input_rows += rows
        stats.ok_rows += len(features)
        decisions = []

        for sample in features:
            index = len(keys_by_index)
            keys_by_index.append(sample.key)
            reason = sample.reason
            duplicate_of = None
            if sample.key in seen_keys:
                reason = "duplicate_key"
                duplicate_of = sample.key
            seen_keys.add(sample.key)

            if reason is None:
                duplicate = deduplicator.check(index, sample)
                if duplicate is not None:
                    reason, original = duplicate
                    duplicate_of = keys_by_index[original]

            decisions.append(
                FilterDecision(
                    key=sample.key,
                    keep=reason is None,
                    reason=reason,
                    language=sample.caption_check.language,
                    caption_chars=sample.caption_check.chars,
                    caption_words=sample.caption_check.words,
                    pixel_hash=sample.hashes.pixel_hash if sample.hashes else None,
                    phash=sample.hashes.phash if sample.hashes else None,
                    duplicate_of=duplicate_of,
                )
            )
            if reason is None:
                stats.kept += 1
                languages[sample.caption_check.language] += 1
            else:
                reasons[reason] += 1

        path = out_dir / f"part-{part_number:05d}.parquet"
        write_records(path, decisions, FilterDecision)
        written.add(path)
        progress.update(1)
    progress.close()

    for stale in sorted(set(out_dir.glob("part-*.parquet")) - written):
        logger.info("deleting %s, left by an earlier run with more partitions", stale)
        stale.unlink()

    stats.reasons = dict(sorted(reasons.items()))
    stats.languages = dict(languages.most_common())
    stats.seconds = round(time.monotonic() - started, 3)
    write_stage_stats(
        out_dir,
        STAGE_NAME,
        _stats_counts(stats),
        reasons=stats.reasons,
        kept_languages=stats.languages,
        partitions=stats.partitions,
        seconds=stats.seconds,
        config=dataclasses.asdict(config),
    )
    logger.info(
        "filter: kept %d of %d ok samples (%d input rows); rejected by reason: %s",
        stats.kept,
        stats.ok_rows,
        stats.input_rows,
        stats.reasons,
    )
    return stats


def _stats_counts(stats: FilterStats) -> dict[str, int]:
    """Return the flat counts of stats.json: row totals and one entry per rejection reason."""
    return {
        "input_rows": stats.input_rows,
        "ok_rows": stats.ok_rows,
        "kept": stats.kept,
        "rejected": stats.rejected,
        **stats.reasons,
    }
