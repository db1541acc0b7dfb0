"""filter_partition on real Flickr8k photos: filters, exact and near-duplicate images, outputs."""

from __future__ import annotations

import argparse
import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from wit_builder.filter import FilterConfig, filter_partition
from wit_builder.filter.cli import add_parser
from wit_builder.filter.dedup import PhashIndex
from wit_builder.parquet import read_records, write_records
from wit_builder.records import FetchResult, FetchStatus, FilterDecision


@pytest.fixture(scope="module")
def flickr(samples_dir) -> list[tuple[str, bytes, str]]:
    """First 12 Flickr8k photos as (name, JPEG bytes, first caption)."""
    lines = (samples_dir / "flickr8k" / "captions.csv").read_text(encoding="utf-8").splitlines()[1:]
    captions: dict[str, str] = {}
    for line in lines:
        name, caption = line.split(",", 1)
        captions.setdefault(name, caption)
    names = sorted(captions)[:12]
    images = samples_dir / "flickr8k" / "images"
    return [(name, (images / name).read_bytes(), captions[name]) for name in names]


def _result(key: str, caption: str, image: bytes | None, status: str = "ok") -> FetchResult:
    width = height = None
    if image is not None:
        try:
            with Image.open(io.BytesIO(image)) as decoded:
                width, height = decoded.size
        except OSError:
            pass
    return FetchResult(
        key=key,
        url=f"http://127.0.0.1:8000/{key}.jpg",
        caption=caption,
        status=status,
        original_width=width,
        original_height=height,
        width=width,
        height=height,
        image=image if status == "ok" else None,
        query_ids=[1],
    )


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _near_duplicate(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    resized = rgb.resize((rgb.width * 7 // 10, rgb.height * 7 // 10), Image.Resampling.BICUBIC)
    return _jpeg(resized, quality=60)


def _write_parts(folder: Path, parts: list[list[FetchResult]]) -> list[Path]:
    paths = []
    for number, results in enumerate(parts):
        paths.append(write_records(folder / f"part-{number:05d}.parquet", results, FetchResult))
    return paths


def _decisions(folder: Path) -> dict[str, FilterDecision]:
    decisions = {}
    for path in sorted(folder.glob("part-*.parquet")):
        for decision in read_records(path, FilterDecision):
            decisions[decision.key] = decision
    return decisions


def test_duplicates_across_partitions(tmp_path, flickr):
    (name_a, photo_a, caption_a), (name_b, photo_b, caption_b), (name_c, photo_c, caption_c) = flickr[:3]
    part_one = [
        _result("a", caption_a, photo_a),
        _result("b", caption_b, photo_b),
        _result("failed", caption_c, None, status=FetchStatus.TIMEOUT.value),
    ]
    part_two = [
        _result("a-copy", "A completely different caption about a copied photo", photo_a),
        _result("b-small", "Another caption for a resized and recompressed photo", _near_duplicate(photo_b)),
        _result("c", caption_c, photo_c),
        _result("c-caption", caption_c, flickr[3][1]),
    ]
    parts = _write_parts(tmp_path / "fetched", [part_one, part_two])

    stats = filter_partition(parts, tmp_path / "filtered", FilterConfig())

    decisions = _decisions(tmp_path / "filtered")
    assert sorted(decisions) == ["a", "a-copy", "b", "b-small", "c", "c-caption"]
    assert decisions["a"].keep
    assert decisions["b"].keep
    assert decisions["c"].keep

    assert decisions["a-copy"].reason == "duplicate_pixels"
    assert decisions["a-copy"].duplicate_of == "a"
    assert decisions["a-copy"].pixel_hash == decisions["a"].pixel_hash

    assert decisions["b-small"].reason == "near_duplicate_image"
    assert decisions["b-small"].duplicate_of == "b"
    assert decisions["b-small"].pixel_hash != decisions["b"].pixel_hash

    assert decisions["c-caption"].reason == "near_duplicate_caption"
    assert decisions["c-caption"].duplicate_of == "c"

    assert stats.input_rows == 7
    assert stats.ok_rows == 6
    assert stats.kept == 3
    assert stats.reasons == {
        "duplicate_pixels": 1,
        "near_duplicate_caption": 1,
        "near_duplicate_image": 1,
    }


def test_pixel_duplicates_with_different_encoding(tmp_path, flickr):
    _, photo, caption = flickr[4]
    with Image.open(io.BytesIO(photo)) as image:
        pixels = image.convert("RGB")
    # A PNG round trip keeps the pixels but changes every byte of the file.
    png = io.BytesIO()
    pixels.save(png, "PNG")
    parts = _write_parts(
        tmp_path / "fetched",
        [[_result("jpeg", caption, photo), _result("png", "Same pixels stored as a PNG file", png.getvalue())]],
    )

    filter_partition(parts, tmp_path / "filtered")

    decisions = _decisions(tmp_path / "filtered")
    assert decisions["png"].reason == "duplicate_pixels"
    assert decisions["png"].duplicate_of == "jpeg"


def test_distinct_photos_all_kept(tmp_path, flickr):
    results = [_result(name, caption, photo) for name, photo, caption in flickr]
    parts = _write_parts(tmp_path / "fetched", [results[:6], results[6:]])

    stats = filter_partition(parts, tmp_path / "filtered")

    assert stats.kept == len(flickr)
    assert all(decision.keep for decision in _decisions(tmp_path / "filtered").values())


def test_hard_captions_not_collapsed(tmp_path, flickr):
    captions = ["", "   ", "1234", "🙂🙂🙂", "猫", "", "🙂🙂🙂"]
    results = [_result(f"k{number}", caption, flickr[number][1]) for number, caption in enumerate(captions)]
    parts = _write_parts(tmp_path / "fetched", [results])
    config = FilterConfig(min_caption_chars=0, min_caption_words=0)

    stats = filter_partition(parts, tmp_path / "filtered", config)

    decisions = _decisions(tmp_path / "filtered")
    assert stats.kept == len(captions)
    for key, decision in decisions.items():
        assert decision.keep, key
        assert decision.duplicate_of is None, key
    assert decisions["k2"].language == "unknown"
    assert decisions["k3"].caption_words == 0


def test_caption_and_image_filters(tmp_path, flickr):
    _, photo, caption = flickr[0]
    with Image.open(io.BytesIO(photo)) as image:
        rgb = image.convert("RGB")
    tiny = _jpeg(rgb.resize((40, 30)))
    banner = _jpeg(rgb.resize((800, 100)))
    results = [
        _result("empty", "", flickr[1][1]),
        _result("emoji", "🙂🙂🙂", flickr[2][1]),
        _result("label", "Paris", flickr[3][1]),
        _result("tiny", "A tiny thumbnail of a dog", tiny),
        _result("banner", "A wide banner made from a dog photo", banner),
        _result("corrupt", "A truncated JPEG file of a dog", photo[: len(photo) // 3]),
        _result("garbage", "Bytes that are not an image at all", b"not an image"),
        _result("good", caption, photo),
    ]
    parts = _write_parts(tmp_path / "fetched", [results])

    stats = filter_partition(parts, tmp_path / "filtered")

    decisions = _decisions(tmp_path / "filtered")
    assert decisions["empty"].reason == "caption_too_short"
    assert decisions["emoji"].reason == "caption_too_short"
    assert decisions["label"].reason == "too_few_words"
    assert decisions["tiny"].reason == "image_too_small"
    assert decisions["banner"].reason == "aspect_ratio_too_large"
    assert decisions["corrupt"].reason == "image_decode_error"
    assert decisions["garbage"].reason == "image_decode_error"
    assert decisions["good"].keep
    assert decisions["empty"].pixel_hash is None
    assert decisions["good"].phash is not None
    assert stats.kept == 1

    stats_file = json.loads((tmp_path / "filtered" / "stats.json").read_text())
    assert stats_file["stage"] == "filter"
    assert stats_file["counts"]["kept"] == 1
    assert stats_file["counts"]["caption_too_short"] == 2
    assert stats_file["counts"]["image_decode_error"] == 2
    assert stats_file["config"]["min_image_side"] == 64


def test_repeated_key_rejected(tmp_path, flickr):
    results = [
        _result("same", flickr[0][2], flickr[0][1]),
        _result("same", flickr[1][2], flickr[1][1]),
    ]
    parts = _write_parts(tmp_path / "fetched", [results])

    filter_partition(parts, tmp_path / "filtered")

    decisions = read_records(tmp_path / "filtered" / "part-00000.parquet", FilterDecision)
    assert [decision.keep for decision in decisions] == [True, False]
    assert decisions[1].reason == "duplicate_key"


def test_stale_partitions_deleted(tmp_path, flickr):
    results = [_result(name, caption, photo) for name, photo, caption in flickr[:3]]
    three_parts = _write_parts(tmp_path / "fetched", [results[:1], results[1:2], results[2:]])
    filter_partition(three_parts, tmp_path / "filtered")
    assert len(list((tmp_path / "filtered").glob("part-*.parquet"))) == 3

    filter_partition(three_parts[:1], tmp_path / "filtered")

    assert [path.name for path in (tmp_path / "filtered").glob("part-*.parquet")] == ["part-00000.parquet"]


def test_phash_index_matches_brute_force():
    generator = random.Random(7)
    max_distance = 4
    index = PhashIndex(max_distance)
    kept: list[tuple[int, int]] = []
    for number in range(600):
        if kept and generator.random() < 0.5:
            # Flip up to max_distance + 2 bits of a kept hash, to test both sides of the limit.
            value = generator.choice(kept)[1]
            for bit in generator.sample(range(64), generator.randint(0, max_distance + 2)):
                value ^= 1 << bit
        else:
            value = generator.getrandbits(64)
        phash = f"{value:016x}"

        expected = [index_ for index_, other in kept if (value ^ other).bit_count() <= max_distance]
        found = index.find(phash)
        assert found == (min(expected) if expected else None)
        if found is None:
            index.add(number, phash)
            kept.append((number, value))


def test_workers_give_same_decisions(tmp_path, flickr):
    results = [_result(name, caption, photo) for name, photo, caption in flickr[:4]]
    results.append(_result("copy", "A caption for the copied photo", flickr[0][1]))
    parts = _write_parts(tmp_path / "fetched", [results[:2], results[2:4], results[4:]])

    filter_partition(parts, tmp_path / "serial")
    filter_partition(parts, tmp_path / "parallel", workers=2)

    assert _decisions(tmp_path / "serial") == _decisions(tmp_path / "parallel")


def test_cli_filter(tmp_path, flickr):
    results = [_result(name, caption, photo) for name, photo, caption in flickr[:2]]
    _write_parts(tmp_path / "fetched", [results])
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())

    args = parser.parse_args(
        [
            "filter",
            "--fetched", str(tmp_path / "fetched"),
            "--out", str(tmp_path / "filtered"),
            "--languages", "de",
            "--no-image-dedup",
        ]
    )
    exit_code = args.func(args)

    assert exit_code == 0
    decisions = _decisions(tmp_path / "filtered")
    assert all(decision.reason == "language_not_allowed" for decision in decisions.values())


def test_cli_rejects_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["filter", "--fetched", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])

    assert args.func(args) == 2


def test_config_validation():
    assert FilterConfig(languages=["en", "de"]).languages == ("en", "de")
    with pytest.raises(ValueError, match="max_aspect_ratio"):
        FilterConfig(max_aspect_ratio=0.5)
    with pytest.raises(ValueError, match="phash_max_distance"):
        FilterConfig(phash_max_distance=64)
    with pytest.raises(ValueError, match="caption_dedup_threshold"):
        FilterConfig(caption_dedup_threshold=0.0)
    with pytest.raises(ValueError, match="min_caption_chars"):
        FilterConfig(min_caption_chars=10, max_caption_chars=5)


def test_cli_rejects_invalid_threshold(tmp_path, flickr):
    _write_parts(tmp_path / "fetched", [[_result("a", flickr[0][2], flickr[0][1])]])
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["filter", "--fetched", str(tmp_path / "fetched"), "--out", str(tmp_path / "out"), "--max-aspect-ratio", "0.5"]
    )

    assert args.func(args) == 2
    assert not (tmp_path / "out").exists()


def test_several_captions_per_image(tmp_path, flickr):
    _, photo, _ = flickr[5]
    captions = [
        "A dog runs across the snowy field",
        "A brown dog is running through snow",
        "a dog runs across the snowy field",
        "The animal plays outside in winter weather",
        "A dog leaps over a snowdrift near trees",
    ]
    results = [_result(f"copy{index}", caption, photo) for index, caption in enumerate(captions)]
    parts = _write_parts(tmp_path / "fetched", [results])

    filter_partition(parts, tmp_path / "filtered", FilterConfig(max_captions_per_image=3))

    decisions = _decisions(tmp_path / "filtered")
    kept = [key for key, decision in decisions.items() if decision.keep]
    assert kept == ["copy0", "copy1", "copy3"]
    assert decisions["copy2"].reason == "duplicate_pixels"
    assert decisions["copy4"].reason == "duplicate_pixels"
    assert decisions["copy1"].pixel_hash == decisions["copy0"].pixel_hash


def test_one_caption_per_image_by_default(tmp_path, flickr):
    _, photo, _ = flickr[5]
    results = [_result("first", "A dog runs across the snowy field", photo), _result("second", "A brown dog is running through snow", photo)]
    parts = _write_parts(tmp_path / "fetched", [results])

    filter_partition(parts, tmp_path / "filtered")

    decisions = _decisions(tmp_path / "filtered")
    assert decisions["first"].keep
    assert decisions["second"].reason == "duplicate_pixels"
