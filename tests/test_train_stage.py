"""Tests for the train stage on tiny shards made from the bundled Flickr8k photos."""

from __future__ import annotations

import argparse
import csv
import io
import json
from pathlib import Path

import pytest
import torch
import webdataset as wds
from PIL import Image

from wit_builder.train import TrainConfig, train_and_evaluate
from wit_builder.train.cli import add_parser
from wit_builder.train.data import load_shards, shuffled_captions, split_shards
from wit_builder.train.retrieval import chance_recall, retrieval_recall

SAMPLES_PER_SHARD = 8


def write_shards(folder: Path, samples_dir: Path, shards: int, corrupt_sample: bool = False, shared_photo: bool = False) -> list[str]:
    """Write ``shards`` tar files of Flickr8k photos and first captions; return the captions.

    ``corrupt_sample`` adds an undecodable sample to the first shard. ``shared_photo`` adds the
    first photo again, with another caption, to the last shard.
    """
    captions: dict[str, str] = {}
    with open(samples_dir / "flickr8k" / "captions.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            captions.setdefault(row["image"], row["caption"])
    names = sorted(captions)[: shards * SAMPLES_PER_SHARD]

    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        with wds.TarWriter(str(folder / f"{shard:05d}.tar")) as sink:
            for index, name in enumerate(names[shard * SAMPLES_PER_SHARD:(shard + 1) * SAMPLES_PER_SHARD]):
                image = Image.open(samples_dir / "flickr8k" / "images" / name).convert("RGB")
                image.thumbnail((64, 64))
                buffer = io.BytesIO()
                image.save(buffer, format="JPEG")
                if shard == 0 and index == 0:
                    first_jpeg = buffer.getvalue()
                key = f"{shard:05d}{index:04d}"
                sink.write({"__key__": key, "jpg": buffer.getvalue(), "txt": captions[name], "json": {"key": key}})
            if shard == 0 and corrupt_sample:
                sink.write({"__key__": "corrupt", "jpg": b"not a jpeg", "txt": "broken sample"})
            if shard == shards - 1 and shared_photo:
                sink.write({"__key__": "shared", "jpg": first_jpeg, "txt": "the same photo with another caption"})
    return [captions[name] for name in names]


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("shards")
    write_shards(folder, samples_dir, shards=3, corrupt_sample=True, shared_photo=True)
    return folder


def tiny_config(**overrides) -> TrainConfig:
    settings = dict(epochs=6, batch_size=5, image_size=32, eval_shards=1, lr=1e-3, seed=0, device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(shard_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out_dir = tmp_path_factory.mktemp("train")
    train_and_evaluate(shard_dir, out_dir, tiny_config())
    return out_dir, json.loads((out_dir / "result.json").read_text())


def test_train_result_fields(trained: tuple[Path, dict]) -> None:
    _, result = trained

    assert result["model"] == "wit-tiny"
    assert result["device"] == "cpu"
    assert result["train_samples"] == 2 * SAMPLES_PER_SHARD - 1
    assert result["excluded_train_samples"] == 1
    assert result["eval_samples"] == SAMPLES_PER_SHARD + 1
    assert result["eval_images"] == SAMPLES_PER_SHARD + 1
    assert result["train_shards"] == ["00000.tar", "00001.tar"]
    assert result["eval_shards"] == ["00002.tar"]
    assert result["skipped_samples"] == 1
    assert result["epochs"] == 6
    assert result["steps"] == 6 * 3
    assert result["batch_size"] == 5
    assert result["seconds"] > 0
    assert result["chance"]["text_to_image"] == {"R@1": 1 / 9, "R@5": 5 / 9, "R@10": 1.0}
    assert result["chance"]["image_to_text"] == pytest.approx({"R@1": 1 / 9, "R@5": 5 / 9, "R@10": 1.0})


def test_train_outputs_written(trained: tuple[Path, dict]) -> None:
    out_dir, _ = trained

    assert (out_dir / "loss.png").stat().st_size > 0
    stats = json.loads((out_dir / "stats.json").read_text())
    assert stats["stage"] == "train"
    assert stats["counts"]["train_samples"] == 2 * SAMPLES_PER_SHARD - 1
    assert stats["counts"]["excluded_train_samples"] == 1


def test_train_loss_decreases(trained: tuple[Path, dict]) -> None:
    _, result = trained

    assert len(result["epoch_losses"]) == 6
    assert len(result["epoch_losses_control"]) == 6
    assert result["epoch_losses"][-1] < result["epoch_losses"][0]
    assert result["final_loss"] == result["epoch_losses"][-1]


def test_train_recall_in_range(trained: tuple[Path, dict]) -> None:
    _, result = trained

    for key in ("recall", "recall_control"):
        for direction in ("text_to_image", "image_to_text"):
            values = result[key][direction]
            assert set(values) == {"R@1", "R@5", "R@10"}
            for value in values.values():
                assert 0.0 <= value <= 1.0
            assert values["R@10"] == 1.0


def test_train_same_seed_same_losses(shard_dir: Path, tmp_path: Path) -> None:
    first = train_and_evaluate(shard_dir, tmp_path / "first", tiny_config(epochs=1))
    second = train_and_evaluate(shard_dir, tmp_path / "second", tiny_config(epochs=1))

    assert first.epoch_losses == second.epoch_losses
    assert first.epoch_losses_control == second.epoch_losses_control
    assert first.epoch_losses != first.epoch_losses_control


def test_epochs_for_sample_budget() -> None:
    config = TrainConfig()

    assert config.epochs_for(800) == 20
    assert config.epochs_for(4000) == 8
    assert config.epochs_for(1_000_000) == 1
    assert TrainConfig(epochs=3).epochs_for(800) == 3


def test_shuffled_captions_permutation() -> None:
    captions = [f"caption {index}" for index in range(50)]

    shuffled = shuffled_captions(captions, seed=0)

    assert sorted(shuffled) == sorted(captions)
    assert shuffled != captions
    assert shuffled == shuffled_captions(captions, seed=0)
    assert shuffled != shuffled_captions(captions, seed=1)


def test_load_shards_order_and_skips(shard_dir: Path, samples_dir: Path) -> None:
    train_shards, _ = split_shards(shard_dir, eval_shards=1)

    samples = load_shards(train_shards, max_side=40, desc="test")

    assert samples.skipped == 1
    assert samples.excluded == 0
    assert samples.keys[0] == "000000000"
    assert len(samples.keys) == len(samples.images) == len(samples.captions) == 2 * SAMPLES_PER_SHARD
    assert max(min(image.size) for image in samples.images) <= 40


def test_split_shards_too_few(tmp_path: Path, samples_dir: Path) -> None:
    write_shards(tmp_path, samples_dir, shards=2)

    with pytest.raises(ValueError, match="found 2 shard"):
        split_shards(tmp_path, eval_shards=2)
    with pytest.raises(ValueError, match="eval_shards must be at least 1"):
        split_shards(tmp_path, eval_shards=0)


def test_retrieval_recall_ties_count_against() -> None:
    one_caption_each = torch.arange(3)
    features = torch.eye(3)
    constant = torch.ones(3, 3)

    assert retrieval_recall(features, features, one_caption_each, (1, 2)) == {
        "text_to_image": {"R@1": 1.0, "R@2": 1.0},
        "image_to_text": {"R@1": 1.0, "R@2": 1.0},
    }
    assert retrieval_recall(constant, constant, one_caption_each, (1, 2)) == {
        "text_to_image": {"R@1": 0.0, "R@2": 0.0},
        "image_to_text": {"R@1": 0.0, "R@2": 0.0},
    }


def test_retrieval_recall_shared_images() -> None:
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    captions = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6]])
    image_of_text = torch.tensor([0, 0, 1, 1])

    recall = retrieval_recall(images, captions, image_of_text, (1,))

    assert recall["text_to_image"] == {"R@1": 0.5}
    assert recall["image_to_text"] == {"R@1": 1.0}


def test_retrieval_recall_rejects_orphan_image() -> None:
    with pytest.raises(ValueError, match="every image needs at least one caption"):
        retrieval_recall(torch.eye(3), torch.eye(2), torch.tensor([0, 1]), (1,))


def test_chance_recall_shared_images() -> None:
    chance = chance_recall(torch.tensor([0, 0, 1, 1]), (1, 2, 10))

    assert chance["text_to_image"] == {"R@1": 0.5, "R@2": 1.0, "R@10": 1.0}
    assert chance["image_to_text"]["R@1"] == pytest.approx(0.5)
    assert chance["image_to_text"]["R@2"] == pytest.approx(1 - 1 / 6)
    assert chance["image_to_text"]["R@10"] == 1.0


def test_load_shards_groups_identical_images(tmp_path: Path, samples_dir: Path) -> None:
    photo = sorted((samples_dir / "flickr8k" / "images").glob("*.jpg"))[0].read_bytes()
    other = sorted((samples_dir / "flickr8k" / "images").glob("*.jpg"))[1].read_bytes()
    with wds.TarWriter(str(tmp_path / "00000.tar")) as sink:
        sink.write({"__key__": "a", "jpg": photo, "txt": "first caption"})
        sink.write({"__key__": "b", "jpg": other, "txt": "other photo"})
        sink.write({"__key__": "c", "jpg": photo, "txt": "second caption"})

    samples = load_shards([tmp_path / "00000.tar"], max_side=32, desc="test")

    assert samples.image_ids == [0, 1, 0]
    assert samples.first_sample_of_images() == [0, 1]


def test_train_cli_too_few_shards(tmp_path: Path, samples_dir: Path) -> None:
    write_shards(tmp_path / "shards", samples_dir, shards=1)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())

    args = parser.parse_args(["train", str(tmp_path / "shards"), "--out", str(tmp_path / "train"), "--device", "cpu"])

    assert args.out == tmp_path / "train"
    assert args.epochs == TrainConfig().epochs
    assert args.func(args) == 2
    assert not (tmp_path / "train" / "result.json").exists()
