"""write_shards on real Flickr8k photos: layout, webdataset round trip, kill and resume."""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import signal
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from wit_builder.parquet import read_records, write_records
from wit_builder.records import FetchResult, FetchStatus, FilterDecision
from wit_builder.shards import make_key, write_shards
from wit_builder.shards.cli import add_parser

SAMPLES_PER_SHARD = 4


@pytest.fixture(scope="module")
def run_input(tmp_path_factory, samples_dir) -> tuple[list[Path], list[Path]]:
    """Two fetched partitions of 15 rows (13 ok, 11 kept) and their filter decisions."""
    lines = (samples_dir / "flickr8k" / "captions.csv").read_text(encoding="utf-8").splitlines()[1:]
    captions: dict[str, str] = {}
    for line in lines:
        name, caption = line.split(",", 1)
        captions.setdefault(name, caption)
    names = sorted(captions)[:15]
    folder = tmp_path_factory.mktemp("run")

    results = []
    decisions = []
    for number, name in enumerate(names):
        key = ["St. Louis", "a.b.c", "x/y", "über"][number] if number < 4 else f"{number:04d}"
        status = FetchStatus.OK.value if number not in (5, 9) else FetchStatus.HTTP_ERROR.value
        image = (samples_dir / "flickr8k" / "images" / name).read_bytes()
        with Image.open(io.BytesIO(image)) as decoded:
            width, height = decoded.size
        results.append(
            FetchResult(
                key=key,
                url=f"http://127.0.0.1:8000/{name}",
                caption=captions[name],
                status=status,
                width=width if status == "ok" else None,
                height=height if status == "ok" else None,
                original_width=width if status == "ok" else None,
                original_height=height if status == "ok" else None,
                image=image if status == "ok" else None,
                query_ids=[number, number + 1],
                page_url="http://127.0.0.1:8000/page.html",
                text_source="alt",
            )
        )
        if status == "ok":
            keep = number not in (7, 12)
            decisions.append(
                FilterDecision(
                    key=key,
                    keep=keep,
                    reason=None if keep else "near_duplicate_image",
                    language="en",
                    caption_chars=len(captions[name]),
                    caption_words=len(captions[name].split()),
                )
            )

    fetched = [
        write_records(folder / "fetched" / "part-00000.parquet", results[:8], FetchResult),
        write_records(folder / "fetched" / "part-00001.parquet", results[8:], FetchResult),
    ]
    filtered = [
        write_records(folder / "filtered" / "part-00000.parquet", decisions[:5], FilterDecision),
        write_records(folder / "filtered" / "part-00001.parquet", decisions[5:], FilterDecision),
    ]
    return fetched, filtered


def _kept_keys(run_input) -> list[str]:
    fetched, filtered = run_input
    keep = {}
    for path in filtered:
        for decision in read_records(path, FilterDecision):
            keep[decision.key] = decision.keep
    keys = []
    for path in fetched:
        for result in read_records(path, FetchResult):
            if result.status == "ok" and keep[result.key]:
                keys.append(result.key)
    return keys


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.name != "stats.json"}


def test_shard_layout(tmp_path, run_input):
    fetched, filtered = run_input
    out = tmp_path / "shards"

    stats = write_shards(fetched, filtered, out, samples_per_shard=SAMPLES_PER_SHARD)

    assert stats.samples == 11
    assert stats.shards == 3
    assert stats.written_shards == 3
    assert sorted(path.name for path in out.iterdir()) == [
        "00000.parquet", "00000.tar", "00000_stats.json",
        "00001.parquet", "00001.tar", "00001_stats.json",
        "00002.parquet", "00002.tar", "00002_stats.json",
        "sizes.json", "stats.json",
    ]
    assert json.loads((out / "sizes.json").read_text()) == {"00000.tar": 4, "00001.tar": 4, "00002.tar": 3}
    run_stats = json.loads((out / "stats.json").read_text())
    assert run_stats["stage"] == "shards"
    assert run_stats["counts"]["samples"] == 11

    table = pq.read_table(out / "00000.parquet")
    assert "jpg" not in table.column_names
    assert "image" not in table.column_names
    rows = table.to_pylist()
    assert [row["source_key"] for row in rows] == _kept_keys(run_input)[:4]
    assert rows[0]["key"] == make_key("St. Louis")
    assert rows[0]["query_ids"] == [0, 1]
    assert rows[0]["language"] == "en"

    shard_stats = json.loads((out / "00002_stats.json").read_text())
    assert shard_stats["count"] == 3


def test_shards_read_back_with_webdataset(tmp_path, run_input):
    fetched, filtered = run_input
    out = tmp_path / "shards"
    write_shards(fetched, filtered, out, samples_per_shard=SAMPLES_PER_SHARD)
    urls = [str(out / f"{number:05d}.tar") for number in range(3)]

    samples = list(wds.WebDataset(urls, shardshuffle=False))

    kept = _kept_keys(run_input)
    assert [sample["__key__"] for sample in samples] == [make_key(key) for key in kept]
    for sample in samples:
        assert set(sample) >= {"__key__", "jpg", "txt", "json"}
        metadata = json.loads(sample["json"])
        assert metadata["key"] == sample["__key__"]
        assert metadata["caption"] == sample["txt"].decode("utf-8")
        with Image.open(io.BytesIO(sample["jpg"])) as image:
            assert image.size == (metadata["width"], metadata["height"])
    assert [json.loads(sample["json"])["source_key"] for sample in samples[:4]] == [
        "St. Louis", "a.b.c", "x/y", "über",
    ]


def test_tar_members_adjacent_and_fixed(tmp_path, run_input):
    fetched, filtered = run_input
    out = tmp_path / "shards"
    write_shards(fetched, filtered, out, samples_per_shard=SAMPLES_PER_SHARD)

    with tarfile.open(out / "00000.tar") as tar:
        members = tar.getmembers()

    first = make_key("St. Louis")
    assert [member.name for member in members[:3]] == [f"{first}.jpg", f"{first}.json", f"{first}.txt"]
    assert {member.mtime for member in members} == {0}
    assert {member.uname for member in members} == {"wit"}


def _write_and_kill(fetched, filtered, out, kill_shard, kill_after):
    def kill_mid_shard(shard_index: int, samples_in_shard: int) -> None:
        if shard_index == kill_shard and samples_in_shard == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    write_shards(fetched, filtered, out, samples_per_shard=SAMPLES_PER_SHARD, on_sample_written=kill_mid_shard)


def test_killed_run_resumes_identically(tmp_path, run_input):
    fetched, filtered = run_input
    reference = tmp_path / "reference"
    write_shards(fetched, filtered, reference, samples_per_shard=SAMPLES_PER_SHARD)

    out = tmp_path / "resumed"
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_write_and_kill, args=(fetched, filtered, out, 1, 3))
    process.start()
    process.join(timeout=60)

    assert process.exitcode == -signal.SIGKILL
    assert (out / "00000.tar").is_file()
    assert not (out / "00001.tar").exists()
    assert (out / ".00001.tar.tmp").is_file()
    assert not (out / "sizes.json").exists()
    finished = (out / "00000.tar").stat()

    stats = write_shards(fetched, filtered, out, samples_per_shard=SAMPLES_PER_SHARD)

    assert stats.skipped_shards == 1
    assert stats.written_shards == 2
    assert (out / "00000.tar").stat().st_mtime_ns == finished.st_mtime_ns
    assert (out / "00000.tar").stat().st_ino == finished.st_ino
    assert _folder_bytes(out) == _folder_bytes(reference)


def test_failed_run_resumes_identically(tmp_path, run_input):
    fetched, filtered = run_input
    reference = tmp_path / "reference"
    write_shards(fetched, filtered, reference, samples_per_shard=SAMPLES_PER_SHARD)

    def fail_mid_shard(shard_index: int, samples_in_shard: int) -> None:
        if shard_index == 2 and samples_in_shard == 2:
            raise OSError("disk full")

    out = tmp_path / "resumed"
    with pytest.raises(OSError, match="disk full"):
        write_shards(fetched, filtered, out, samples_per_shard=SAMPLES_PER_SHARD, on_sample_written=fail_mid_shard)
    assert sorted(path.name for path in out.glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert not list(out.glob(".*"))

    stats = write_shards(fetched, filtered, out, samples_per_shard=SAMPLES_PER_SHARD)

    assert stats.skipped_shards == 2
    assert _folder_bytes(out) == _folder_bytes(reference)


def test_changed_shard_size_rewrites_and_deletes(tmp_path, run_input):
    fetched, filtered = run_input
    out = tmp_path / "shards"
    write_shards(fetched, filtered, out, samples_per_shard=SAMPLES_PER_SHARD)

    stats = write_shards(fetched, filtered, out, samples_per_shard=6)

    assert stats.shards == 2
    assert stats.written_shards == 2
    assert stats.deleted_stale_shards == 1
    assert not (out / "00002.tar").exists()
    assert not (out / "00002.parquet").exists()
    assert json.loads((out / "sizes.json").read_text()) == {"00000.tar": 6, "00001.tar": 5}


def test_missing_decision_rejected(tmp_path, run_input):
    fetched, filtered = run_input

    with pytest.raises(ValueError, match="has no filter decision"):
        write_shards(fetched, filtered[:1], tmp_path / "shards", samples_per_shard=SAMPLES_PER_SHARD)


def test_no_kept_samples(tmp_path, run_input):
    fetched, _ = run_input
    decisions = [
        FilterDecision(key=key, keep=False, reason="caption_too_short", language="en", caption_chars=1, caption_words=1)
        for key in _kept_keys(run_input) + ["0007", "0012"]
    ]
    filtered = [write_records(tmp_path / "filtered" / "part-00000.parquet", decisions, FilterDecision)]

    stats = write_shards(fetched, filtered, tmp_path / "shards")

    assert stats.shards == 0
    assert json.loads((tmp_path / "shards" / "sizes.json").read_text()) == {}


def test_cli_shards(tmp_path, run_input):
    fetched, filtered = run_input
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "shards",
            "--fetched", str(fetched[0].parent),
            "--filtered", str(filtered[0].parent),
            "--out", str(tmp_path / "shards"),
            "--samples-per-shard", "5",
        ]
    )

    assert args.func(args) == 0
    assert json.loads((tmp_path / "shards" / "sizes.json").read_text()) == {
        "00000.tar": 5, "00001.tar": 5, "00002.tar": 1,
    }
