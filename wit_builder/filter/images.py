"""Image decoding, content hashes and the size and aspect-ratio filters."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import imagehash
from PIL import Image


@dataclass(frozen=True)
class ImageHashes:
    """Content hashes of one decoded image.

    ``pixel_hash`` is a BLAKE2b digest of the RGB pixels and the size, so it matches only
    pixel-identical images, whatever their JPEG encoding. ``phash`` is the 64-bit DCT
    perceptual hash from ``imagehash.phash`` as 16 hex digits.
    """

    width: int
    height: int
    pixel_hash: str
    phash: str


class ImageDecodeError(ValueError):
    """Raised when image bytes are missing or cannot be decoded."""


def hash_image(data: bytes | None) -> ImageHashes:
    """Decode image bytes and compute their pixel hash and perceptual hash.

    Raises ImageDecodeError when ``data`` is None, is not an image Pillow can read,
    is truncated, or exceeds Pillow's decompression-bomb limit.
    """
    if not data:
        raise ImageDecodeError("no image bytes")
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"{type(error).__name__}: {error}") from error

    width, height = rgb.size
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{width}x{height}:".encode("ascii"))
    digest.update(rgb.tobytes())
    return ImageHashes(
        width=width,
        height=height,
        pixel_hash=digest.hexdigest(),
        phash=str(imagehash.phash(rgb)),
    )


def check_image_size(
    width: int | None,
    height: int | None,
    *,
    min_side: int,
    max_aspect_ratio: float,
) -> str | None:
    """Return "image_too_small" or "aspect_ratio_too_large" for a rejected size, else None.

    The aspect ratio is the longer side over the shorter side, so 3.0 allows 3:1 and 1:3.
    A missing or non-positive size is "image_too_small".
    """
    if not width or not height or width <= 0 or height <= 0:
        return "image_too_small"
    if min(width, height) < min_side:
        return "image_too_small"
    if max(width, height) / min(width, height) > max_aspect_ratio:
        return "aspect_ratio_too_large"
    return None
