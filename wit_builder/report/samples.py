"""Thumbnails and captions of the first samples in a run's tar shards."""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds
from PIL import Image

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 160


@dataclass
class SampleThumbnail:
    """One shard sample as a JPEG data URI with its caption."""

    key: str
    shard: str
    caption: str
    data_uri: str


def thumbnail_data_uri(image: Image.Image, side: int = THUMBNAIL_SIDE) -> str:
    """Shrink ``image`` to fit in ``side`` x ``side`` pixels and return it as a base64 JPEG data URI."""
    image = image.convert("RGB")
    image.thumbnail((side, side), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def read_thumbnails(shards: list[Path], limit: int) -> tuple[list[SampleThumbnail], int]:
    """Return up to ``limit`` thumbnails from the first shards and the number of unreadable samples."""
    errors = 0

    def skip(error: Exception) -> bool:
        nonlocal errors
        errors += 1
        logger.warning("skipping unreadable shard sample: %s", error)
        return True

    thumbnails: list[SampleThumbnail] = []
    if not shards or limit <= 0:
        return thumbnails, errors
    dataset = (
        wds.WebDataset([str(shard) for shard in shards], shardshuffle=False, handler=skip, empty_check=False)
        .decode("pil", handler=skip)
        .to_tuple("__key__", "__url__", "jpg", "txt", handler=skip)
    )
    for key, url, image, caption in dataset:
        thumbnails.append(SampleThumbnail(key=key, shard=Path(url).name, caption=caption, data_uri=thumbnail_data_uri(image)))
        if len(thumbnails) >= limit:
            break
    return thumbnails, errors
