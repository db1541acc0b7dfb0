"""Validate, decode, resize and re-encode one downloaded image.

``resize_image`` is a plain function of bytes so that it can run in worker processes
(``ProcessPoolExecutor``). The errors that Pillow raises for bad data (OSError,
ValueError, SyntaxError, struct.error and a few more) become a ``FetchStatus`` in the
returned ``ResizeResult``. The fetch stage records any other exception as decode_error.

Order of the checks, cheapest first:

1. magic bytes: the data must start like an image format we decode, whatever the
   Content-Type declares (HTML error pages are often served as image/jpeg);
2. header dimensions: Pillow reads the size without decoding pixels, and images over
   ``max_pixels`` are rejected before any pixel is decoded;
3. decode, EXIF orientation, conversion to 8-bit RGB on white, resize, JPEG encode.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageFile, ImageOps, UnidentifiedImageError

from wit_builder.records import FetchStatus

RESIZE_MODES = ("keep_ratio", "center_crop", "border", "no")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS (about 0.25 GiB of 24-bit pixels)
WHITE = (255, 255, 255)

# Leading bytes of each format decoded here, with the Pillow plugin that reads it.
# Restricting Image.open to the sniffed format keeps Pillow from trying every other
# plugin on hostile data (EPS, for one, would start Ghostscript).
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


@dataclass
class ResizeOptions:
    """Validation and resize settings of ``resize_image``. Sizes are in pixels."""

    image_size: int = 256
    #: keep_ratio: shortest side becomes image_size. center_crop: image_size square
    #: cut from the center. border: longest side becomes image_size, padded with white
    #: to a square. no: keep the size and only re-encode.
    resize_mode: str = "keep_ratio"
    #: Maximum width * height of the source image, checked before decoding.
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_quality: int = 95
    #: Enlarge images smaller than image_size. If False they keep their size
    #: (border mode still pads them to the square).
    upscale: bool = True

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"invalid resize_mode {self.resize_mode!r}; expected one of {', '.join(RESIZE_MODES)}")
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be positive, got {self.max_pixels}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be between 1 and 100, got {self.jpeg_quality}")


@dataclass
class ResizeResult:
    """Outcome of ``resize_image``. ``jpeg`` is set only when ``status`` is ok.

    Original sizes are those of the source image as displayed, after EXIF orientation.
    """

    status: FetchStatus
    error: str | None = None
    width: int | None = None
    height: int | None = None
    original_width: int | None = None
    original_height: int | None = None
    jpeg: bytes | None = None


def sniff_format(data: bytes) -> str | None:
    """Return the Pillow format name that ``data``'s magic bytes announce, or None."""
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        return "AVIF"
    return None


def describe_start(data: bytes) -> str:
    """Describe the first bytes of a rejected body for an error message."""
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "HTML"
    if head.startswith((b"<?xml", b"<svg")):
        return "SVG or XML" if b"<svg" in data[:4096].lower() else "XML"
    if head.startswith((b"{", b"[")):
        return "JSON"
    if not data:
        return "an empty body"
    return f"bytes {data[:8].hex()}"


def configure_worker(max_pixels: int) -> None:
    """Set Pillow's decompression-bomb limits in a worker process.

    Pillow warns above MAX_IMAGE_PIXELS and raises DecompressionBombError above twice
    that. The explicit header check in ``resize_image`` rejects first, so this is a
    second line for code paths that open images elsewhere.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def resize_image(data: bytes, content_type: str | None, options: ResizeOptions) -> ResizeResult:
    """Validate, decode and resize one image and return the result with its status.

    Raises only for errors outside the handled Pillow errors, which are bugs or
    unusual decoder failures.
    """
    image_format = sniff_format(data)
    if image_format is None:
        return ResizeResult(
            FetchStatus.NOT_AN_IMAGE,
            f"body is {describe_start(data)}, not a supported image (Content-Type {content_type or 'missing'})",
        )

    try:
        with Image.open(io.BytesIO(data), formats=[image_format]) as image:
            return _resize_open_image(image, options)
    except Image.DecompressionBombError as error:
        return ResizeResult(FetchStatus.IMAGE_TOO_LARGE, str(error))
    except Image.DecompressionBombWarning as error:
        return ResizeResult(FetchStatus.IMAGE_TOO_LARGE, str(error))
    except UnidentifiedImageError as error:
        return ResizeResult(FetchStatus.DECODE_ERROR, f"{image_format} header not readable: {error}")
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, MemoryError) as error:
        # Pillow raises OSError ("image file is truncated") for cut data and a mix of
        # OSError, SyntaxError, ValueError and struct.error for corrupt headers.
        message = f"{image_format}: {type(error).__name__}: {error}"
        if "truncated" in str(error).lower() or isinstance(error, EOFError):
            return ResizeResult(FetchStatus.TRUNCATED, message)
        return ResizeResult(FetchStatus.DECODE_ERROR, message)


def _resize_open_image(image: Image.Image, options: ResizeOptions) -> ResizeResult:
    width, height = image.size
    if width <= 0 or height <= 0:
        return ResizeResult(FetchStatus.DECODE_ERROR, f"invalid image size {width}x{height}")
    if width * height > options.max_pixels:
        return ResizeResult(
            FetchStatus.IMAGE_TOO_LARGE,
            f"{width}x{height} = {width * height} pixels exceeds max_pixels {options.max_pixels}",
            original_width=width,
            original_height=height,
        )

    orientation = image.getexif().get(0x0112, 1)
    if orientation in (5, 6, 7, 8):
        original_width, original_height = height, width
    else:
        original_width, original_height = width, height

    # JPEG can decode at 1/2, 1/4 or 1/8 scale (DCT scaling), which is much faster than
    # decoding full size and resizing. draft() keeps the result at least as large as
    # the requested size, so the final resize still has enough pixels.
    scale = _scale_factor(width, height, options)
    if image.format == "JPEG" and scale < 1.0:
        image.draft(None, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))

    image.load()
    image = ImageOps.exif_transpose(image)
    image = to_rgb(image)
    image = _resize(image, options)

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=options.jpeg_quality)
    return ResizeResult(
        FetchStatus.OK,
        width=image.width,
        height=image.height,
        original_width=original_width,
        original_height=original_height,
        jpeg=buffer.getvalue(),
    )


def _scale_factor(width: int, height: int, options: ResizeOptions) -> float:
    """Return the factor that ``_resize`` applies to an image of this size."""
    if options.resize_mode == "no":
        return 1.0
    if options.resize_mode == "border":
        scale = options.image_size / max(width, height)
    else:
        scale = options.image_size / min(width, height)
    if not options.upscale:
        scale = min(scale, 1.0)
    return scale


def _resize(image: Image.Image, options: ResizeOptions) -> Image.Image:
    size = options.image_size
    width, height = image.size
    if _scale_factor(width, height, options) != 1.0:
        # Set the side that the mode fixes to exactly image_size, so that rounding
        # cannot leave it one pixel off, and scale the other side to keep the aspect.
        fix_shortest = options.resize_mode in ("keep_ratio", "center_crop")
        if (width <= height) == fix_shortest:
            new_size = (size, max(1, round(height * size / width)))
        else:
            new_size = (max(1, round(width * size / height)), size)
        image = image.resize(new_size, Image.Resampling.LANCZOS, reducing_gap=3.0)

    if options.resize_mode == "center_crop":
        side = min(size, image.width, image.height)
        left = (image.width - side) // 2
        top = (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    elif options.resize_mode == "border" and image.size != (size, size):
        canvas = Image.new("RGB", (size, size), WHITE)
        canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
        image = canvas
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency on white.

    16-bit and float modes are scaled to 0-255 rather than clipped. CMYK and images
    with an embedded non-sRGB ICC profile are converted to sRGB through the profile.
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _to_8bit_gray(image)

    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")

    if image.mode in ("RGB", "CMYK"):
        converted = _convert_icc_to_srgb(image)
        if converted is not None:
            return converted

    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _to_8bit_gray(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float grayscale image to mode L."""
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    peak = float(finite.max()) if finite.size else 0.0
    if image.mode.startswith("I;16"):
        divisor = 257.0
    elif image.mode == "F" and peak <= 1.0:
        divisor = 1.0 / 255.0
    elif peak <= 255.0:
        divisor = 1.0
    elif peak <= 65535.0:
        # Typical for 16-bit PNG and TIFF files that Pillow opens as mode I.
        divisor = 257.0
    else:
        divisor = peak / 255.0
    scaled = np.nan_to_num(values / divisor, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


_SRGB_PROFILE = None


def _convert_icc_to_srgb(image: Image.Image) -> Image.Image | None:
    """Convert through the embedded ICC profile to sRGB; None when there is none to apply."""
    global _SRGB_PROFILE
    icc = image.info.get("icc_profile")
    if not icc:
        return None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(source) or ""
        if image.mode == "RGB" and "srgb" in description.lower():
            return image
        if _SRGB_PROFILE is None:
            _SRGB_PROFILE = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(image, source, _SRGB_PROFILE, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken or mismatched profile: fall back to Pillow's plain conversion.
        return None
