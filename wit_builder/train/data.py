"""Read webdataset shards into memory, split them, and build the train and eval datasets."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from tqdm import tqdm

logger = logging.getLogger(__name__)

#: Skipped samples that get their own warning line; later ones are only counted.
MAX_LOGGED_SKIPS = 5


@dataclass
class ShardSamples:
    """Decoded samples of a list of shards, in shard order.

    ``image_ids[i]`` numbers the distinct images in order of first appearance, so samples with
    pixel-identical images (one photo with several captions) share an id. ``digests`` maps
    each distinct image's pixel digest to its id. ``excluded`` counts samples left out because
    their image was in the ``exclude`` set passed to ``load_shards``.
    """

    shards: list[Path]
    keys: list[str]
    images: list[Image.Image]
    captions: list[str]
    image_ids: list[int]
    digests: dict[bytes, int]
    skipped: int
    excluded: int = 0

    def first_sample_of_images(self) -> list[int]:
        """Return the index of the first sample of every distinct image, in image id order."""
        first: dict[int, int] = {}
        for index, image_id in enumerate(self.image_ids):
            first.setdefault(image_id, index)
        return [first[image_id] for image_id in range(len(first))]


def split_shards(shard_dir: Path, eval_shards: int) -> tuple[list[Path], list[Path]]:
    """Return (train shards, eval shards) where the last ``eval_shards`` tar files are held out."""
    shards = sorted(Path(shard_dir).glob("*.tar"))
    if eval_shards < 1:
        raise ValueError(f"eval_shards must be at least 1, got {eval_shards}")
    if len(shards) <= eval_shards:
        raise ValueError(
            f"found {len(shards)} shard(s) in {shard_dir} but need at least {eval_shards + 1}: "
            f"{eval_shards} held out for evaluation and one or more for training; "
            "write smaller shards or lower --eval-shards"
        )
    return shards[:-eval_shards], shards[-eval_shards:]


def pixel_digest(image: Image.Image) -> bytes:
    """Return a digest of the decoded pixels and size, equal for pixel-identical images."""
    return hashlib.blake2b(image.tobytes(), digest_size=16).digest() + repr(image.size).encode()


def load_shards(
    shards: list[Path],
    max_side: int,
    desc: str,
    exclude: set[bytes] | frozenset[bytes] = frozenset(),
) -> ShardSamples:
    """Decode the jpg and txt members of every sample, in shard order.

    Images are shrunk so that their shortest side is at most ``max_side`` pixels, which keeps
    the training set in memory and lets every epoch skip JPEG decoding. Samples that lack a
    member or fail to decode are skipped and counted. Samples whose pixel digest is in
    ``exclude`` are left out and counted, which keeps held-out photos out of training.
    """
    # NOTE: every decoded image stays in memory, about 16 KB each at a 64 px shortest side or
    # 1.6 GB per 100k samples. Much larger runs need a streaming loader instead.
    skipped = 0

    def skip_sample(error: Exception) -> bool:
        nonlocal skipped
        skipped += 1
        if skipped <= MAX_LOGGED_SKIPS:
            logger.warning("skipping unreadable sample: %s", error)
        return True

    dataset = (
        wds.WebDataset([str(shard) for shard in shards], shardshuffle=False, handler=skip_sample, empty_check=False)
        .decode("pil", handler=skip_sample)
        .to_tuple("__key__", "jpg", "txt", handler=skip_sample)
    )

    keys: list[str] = []
    images: list[Image.Image] = []
    captions: list[str] = []
    image_ids: list[int] = []
    ids_by_digest: dict[bytes, int] = {}
    excluded = 0
    for key, image, caption in tqdm(dataset, desc=desc, unit="sample"):
        image = image.convert("RGB")
        digest = pixel_digest(image)
        if digest in exclude:
            excluded += 1
            continue
        image_ids.append(ids_by_digest.setdefault(digest, len(ids_by_digest)))

        scale = max_side / min(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.BICUBIC)
        keys.append(key)
        images.append(image)
        captions.append(caption)

    if skipped:
        logger.warning("skipped %d unreadable sample(s) in %d shard(s)", skipped, len(shards))
    if excluded:
        logger.info("left out %d sample(s) whose image is also in the held-out shards", excluded)
    return ShardSamples(
        shards=shards,
        keys=keys,
        images=images,
        captions=captions,
        image_ids=image_ids,
        digests=ids_by_digest,
        skipped=skipped,
        excluded=excluded,
    )


def shuffled_captions(captions: list[str], seed: int) -> list[str]:
    """Return the captions in a fixed random order, detaching each from its image.

    A random permutation may leave a few captions in place (about one on average).
    """
    permutation = np.random.default_rng(seed).permutation(len(captions))
    return [captions[index] for index in permutation]


def train_transform(image_size: int, crop_scale: tuple[float, float]) -> transforms.Compose:
    """Random resized crop and horizontal flip, then open_clip's normalisation."""
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(
                image_size, scale=crop_scale, interpolation=transforms.InterpolationMode.BICUBIC
            ),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD),
        ]
    )


def eval_transform(image_size: int) -> transforms.Compose:
    """open_clip's eval preprocessing: resize the shortest side, center crop, normalise."""
    return open_clip.image_transform(image_size, is_train=False)


class ImageTextDataset(Dataset):
    """In-memory (image tensor, token ids) pairs with a per-sample image transform."""

    def __init__(self, images: list[Image.Image], tokens: torch.Tensor, transform) -> None:
        if len(images) != len(tokens):
            raise ValueError(f"got {len(images)} images but {len(tokens)} token rows")
        self.images = images
        self.tokens = tokens
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.tokens[index]
