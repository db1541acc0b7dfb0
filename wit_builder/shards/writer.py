"""Write kept samples to webdataset tar shards with parquet metadata, resumably.

Layout of the output folder:

    NNNNN.tar         key.jpg, key.json, key.txt per sample, in input order
    NNNNN.parquet     one ShardSample row per sample of the shard (no image bytes)
    NNNNN_stats.json  count, bytes, languages and a digest of the shard's keys
    sizes.json        {"NNNNN.tar": count}, read by open_clip to size the data set
    stats.json        run-level counts

Shard i contains kept samples [i * samples_per_shard, (i + 1) * samples_per_shard) in input
order. A shard is first written to ``.NNNNN.tar.tmp``. Its parquet and stats files are
renamed into place next, and the tar is renamed last, so a tar under its final name
implies complete metadata, and a killed run leaves no truncated tar under a final name.
The tar headers have a fixed mtime, owner and mode, so equal samples give equal bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pyarrow.parquet as pq
import webdataset as wds
from tqdm import tqdm

from wit_builder.parquet import iter_records, write_records
from wit_builder.records import FetchResult, FetchStatus, FilterDecision
from wit_builder.stats import write_stage_stats
from wit_builder.shards.keys import make_key
from wit_builder.shards.samples import DEFAULT_SAMPLES_PER_SHARD, ShardSample, build_sample, tar_members

logger = logging.getLogger(__name__)

STAGE_NAME = "shards"

#: Rows per read from a fetched partition. Rows carry JPEG bytes, so small batches bound memory.
READ_BATCH_ROWS = 256

#: Tar header fields shared by every member, fixed so that shards are byte-reproducible.
TAR_MTIME = 0
TAR_USER = "wit"
TAR_MODE = 0o444


@dataclass
class ShardStats:
    """Counts of one shard-writing run, as written to ``stats.json``."""

    samples: int = 0
    shards: int = 0
    written_shards: int = 0
    skipped_shards: int = 0
    deleted_stale_shards: int = 0
    image_bytes: int = 0
    sizes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class _KeptSample:
    """Position of a kept sample in the fetched partitions, with its filter decision."""

    part_index: int
    row_index: int
    key: str
    decision: FilterDecision


def shard_name(shard_index: int) -> str:
    """Return the five-digit name stem of a shard, such as "00042"."""
    return f"{shard_index:05d}"


def _write_json(path: Path, payload: dict) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def _read_decisions(decisions_parts: list[Path]) -> dict[str, deque[FilterDecision]]:
    decisions: dict[str, deque[FilterDecision]] = defaultdict(deque)
    for path in decisions_parts:
        for decision in iter_records(path, FilterDecision):
            decisions[decision.key].append(decision)
    return decisions


def _plan_samples(fetched_parts: list[Path], decisions_parts: list[Path]) -> list[_KeptSample]:
    """Return the kept samples in input order, reading only the key and status columns.

    Each ok row takes the next unused decision with its key, which pairs repeated keys in
    order. Raises ValueError when an ok row has no decision (the decisions come from a
    different fetch run) or when two kept samples map to the same shard key.
    """
    decisions = _read_decisions(decisions_parts)
    kept: list[_KeptSample] = []
    shard_keys: dict[str, str] = {}

    for part_index, path in enumerate(fetched_parts):
        row_index = 0
        for batch in pq.ParquetFile(path).iter_batches(columns=["key", "status"]):
            for key, status in zip(batch.column("key").to_pylist(), batch.column("status").to_pylist()):
                row = row_index
                row_index += 1
                if status != FetchStatus.OK.value:
                    continue
                queue = decisions.get(key)
                if not queue:
                    raise ValueError(
                        f"fetched sample {key!r} in {path} has no filter decision; "
                        "run the filter stage on the same fetched folder first"
                    )
                decision = queue.popleft()
                if not decision.keep:
                    continue

                shard_key = make_key(key)
                if shard_key in shard_keys:
                    raise ValueError(
                        f"kept samples {shard_keys[shard_key]!r} and {key!r} both map to shard key "
                        f"{shard_key!r}; the filter stage should have rejected repeated keys"
                    )
                shard_keys[shard_key] = key
                kept.append(_KeptSample(part_index, row, key, decision))

    unused = sum(len(queue) for queue in decisions.values())
    if unused:
        logger.warning("%d filter decisions match no fetched sample with status ok", unused)
    return kept


def _keys_digest(keys: list[str]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for key in keys:
        digest.update(key.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.hexdigest()


def _shard_paths(out_dir: Path, shard_index: int) -> tuple[Path, Path, Path]:
    name = shard_name(shard_index)
    return out_dir / f"{name}.tar", out_dir / f"{name}.parquet", out_dir / f"{name}_stats.json"


def _shard_is_complete(out_dir: Path, shard_index: int, keys: list[str]) -> bool:
    """Return whether a finished shard with exactly these source keys is on disk."""
    tar_path, parquet_path, stats_path = _shard_paths(out_dir, shard_index)
    if not (tar_path.is_file() and parquet_path.is_file() and stats_path.is_file()):
        return False
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("rewriting shard %s: cannot read %s: %s", shard_index, stats_path, error)
        return False
    if stats.get("count") != len(keys) or stats.get("keys_digest") != _keys_digest(keys):
        logger.warning("rewriting shard %s: its samples differ from this run's input", shard_index)
        return False
    return True


def _delete_leftovers(out_dir: Path, shard_count: int) -> int:
    """Delete temporary files of killed runs and shards past ``shard_count``; return the shards deleted."""
    for temporary in sorted(out_dir.glob(".*.tmp*")):
        logger.info("deleting %s, left by an interrupted run", temporary)
        temporary.unlink()

    stale: set[int] = set()
    for path in out_dir.glob("[0-9][0-9][0-9][0-9][0-9]*"):
        stem = path.name[:5]
        if path.name in (f"{stem}.tar", f"{stem}.parquet", f"{stem}_stats.json") and int(stem) >= shard_count:
            stale.add(int(stem))
    for shard_index in sorted(stale):
        logger.info("deleting shard %s, beyond the %d shards of this run", shard_name(shard_index), shard_count)
        # The tar goes first, so a tar never stays without its metadata.
        for path in _shard_paths(out_dir, shard_index):
            path.unlink(missing_ok=True)
    return len(stale)


def _iter_fetched(
    fetched_parts: list[Path], kept: list[_KeptSample], ordinals: list[int]
) -> Iterator[tuple[int, FetchResult]]:
    """Yield (ordinal, FetchResult) for the kept samples at ``ordinals``, in ascending order.

    Partitions that contain none of the requested samples are not read.
    """
    requested: dict[int, dict[int, int]] = defaultdict(dict)
    for ordinal in ordinals:
        sample = kept[ordinal]
        requested[sample.part_index][sample.row_index] = ordinal

    for part_index in sorted(requested):
        rows = requested[part_index]
        last_row = max(rows)
        results = iter_records(fetched_parts[part_index], FetchResult, batch_size=READ_BATCH_ROWS)
        for row_index, result in enumerate(results):
            ordinal = rows.get(row_index)
            if ordinal is not None:
                yield ordinal, result
            if row_index >= last_row:
                break


class _ShardWriter:
    """One shard being written to its temporary tar."""

    def __init__(self, out_dir: Path, shard_index: int) -> None:
        self.out_dir = out_dir
        self.shard_index = shard_index
        self.tar_path, self.parquet_path, self.stats_path = _shard_paths(out_dir, shard_index)
        self.temporary_path = out_dir / f".{self.tar_path.name}.tmp"
        self.samples: list[ShardSample] = []
        self.image_bytes = 0
        self._file = open(self.temporary_path, "wb")
        self._tar = wds.TarWriter(
            self._file,
            user=TAR_USER,
            group=TAR_USER,
            mode=TAR_MODE,
            encoder=False,
            mtime=TAR_MTIME,
        )

    def add(self, sample: ShardSample, image: bytes) -> None:
        self._tar.write(tar_members(sample, image))
        self.samples.append(sample)
        self.image_bytes += len(image)

    def abort(self) -> None:
        """Close and delete the temporary tar after an error."""
        try:
            self._tar.close()
        except (OSError, ValueError) as error:
            logger.debug("closing the partial tar of shard %s failed: %s", self.shard_index, error)
        finally:
            self._file.close()
            self.temporary_path.unlink(missing_ok=True)

    def finish(self) -> int:
        """Close the tar, write parquet and stats, then rename the tar; return the sample count."""
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

        write_records(self.parquet_path, self.samples, ShardSample)
        languages = Counter(sample.language or "unknown" for sample in self.samples)
        _write_json(
            self.stats_path,
            {
                "shard": shard_name(self.shard_index),
                "count": len(self.samples),
                "image_bytes": self.image_bytes,
                "tar_bytes": self.temporary_path.stat().st_size,
                "first_key": self.samples[0].key,
                "last_key": self.samples[-1].key,
                "keys_digest": _keys_digest([sample.source_key for sample in self.samples]),
                "languages": dict(sorted(languages.items())),
            },
        )
        os.replace(self.temporary_path, self.tar_path)
        return len(self.samples)


def write_shards(
    fetched_parts: list[Path],
    decisions_parts: list[Path],
    out_dir: str | os.PathLike,
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD,
    *,
    on_sample_written: Callable[[int, int], None] | None = None,
) -> ShardStats:
    """Write the samples that the filter stage kept to webdataset shards in ``out_dir``.

    Joins FetchResult rows with status ok to their FilterDecision by key and keeps
    ``keep=True`` rows in input order (see the module docstring for the layout).
    Rerunning on the same input resumes: a shard whose tar, parquet and stats exist and
    whose keys match this run is skipped and not rewritten, and any other shard is
    rewritten from the start. Shards numbered past this run's last shard are deleted.

    ``on_sample_written(shard_index, samples_in_shard)`` is called after each sample is
    added to a shard's temporary tar, for progress reporting or fault injection.
    """
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be at least 1, got {samples_per_shard}")
    fetched_parts = [Path(path) for path in fetched_parts]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    kept = _plan_samples(fetched_parts, [Path(path) for path in decisions_parts])
    shard_count = (len(kept) + samples_per_shard - 1) // samples_per_shard
    stats = ShardStats(samples=len(kept), shards=shard_count)
    stats.deleted_stale_shards = _delete_leftovers(out_dir, shard_count)

    pending: list[int] = []
    for shard_index in range(shard_count):
        start = shard_index * samples_per_shard
        ordinals = range(start, min(start + samples_per_shard, len(kept)))
        keys = [kept[ordinal].key for ordinal in ordinals]
        if _shard_is_complete(out_dir, shard_index, keys):
            stats.skipped_shards += 1
        else:
            pending.extend(ordinals)
    if stats.skipped_shards:
        logger.info("skipping %d finished shards of %d", stats.skipped_shards, shard_count)

    progress = tqdm(total=len(kept), initial=len(kept) - len(pending), desc="shards", unit="sample")
    writer: _ShardWriter | None = None
    try:
        for ordinal, result in _iter_fetched(fetched_parts, kept, pending):
            shard_index = ordinal // samples_per_shard
            if writer is None:
                writer = _ShardWriter(out_dir, shard_index)

            writer.add(build_sample(result, kept[ordinal].decision), result.image or b"")
            progress.update(1)
            if on_sample_written is not None:
                on_sample_written(shard_index, len(writer.samples))

            if ordinal + 1 == min((shard_index + 1) * samples_per_shard, len(kept)):
                writer.finish()
                stats.written_shards += 1
                writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        progress.close()
    if writer is not None:
        raise RuntimeError(
            f"internal error: shard {writer.shard_index} got {len(writer.samples)} samples "
            "but the fetched partitions ended before it was full"
        )

    for shard_index in range(shard_count):
        stats_path = _shard_paths(out_dir, shard_index)[2]
        shard_stats = json.loads(stats_path.read_text())
        stats.sizes[f"{shard_name(shard_index)}.tar"] = shard_stats["count"]
        stats.image_bytes += shard_stats["image_bytes"]
    stats.seconds = round(time.monotonic() - started, 3)

    _write_json(out_dir / "sizes.json", stats.sizes)
    write_stage_stats(
        out_dir,
        STAGE_NAME,
        {
            "samples": stats.samples,
            "shards": stats.shards,
            "written_shards": stats.written_shards,
            "skipped_shards": stats.skipped_shards,
            "deleted_stale_shards": stats.deleted_stale_shards,
        },
        samples_per_shard=samples_per_shard,
        image_bytes=stats.image_bytes,
        seconds=stats.seconds,
    )
    logger.info(
        "shards: %d samples in %d shards (%d written, %d skipped as finished)",
        stats.samples,
        stats.shards,
        stats.written_shards,
        stats.skipped_shards,
    )
    return stats
