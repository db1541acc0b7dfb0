"""Validate, decode, resize and re-encode one downloaded image.

``resize_image`` is a plain function of bytes so that it can run in worker processes
(see ``wit_builder.fetch.pool``, which also enforces a CPU time limit per image). The
errors that Pillow raises for bad data (OSError, ValueError, SyntaxError, struct.error
and a few more) become a ``FetchStatus`` in the returned ``ResizeResult``.

Order of the checks, cheapest first:

1. magic bytes: the data must start like an image format that is decoded here
   (``decode_cases`` lists them). The leading bytes decide, whatever the Content-Type
   declares: HTML error pages are often served as image/jpeg, and real images are
   often served as application/octet-stream or even text/html. An SVG body, or any
   body served as image/svg+xml, is rejected as unsupported_svg;
2. header dimensions: Pillow reads the size without decoding pixels, and images over
   ``max_pixels`` are rejected before any pixel buffer is allocated;
3. decode, EXIF orientation, conversion to 8-bit RGB on white, resize, JPEG encode.
   Decoding relies on Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` being False (the
   default, which ``configure_worker`` enforces), so a cut file fails as truncated
   instead of decoding with a grey bottom part.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps

from wit_builder.fetch.decode_cases import (
    HEIF,
    WHITE,
    describe_start,
    fix_jpeg_cmyk,
    is_cut_short,
    is_svg,
    sniff_format,
    to_rgb,
)
from wit_builder.records import FetchStatus

RESIZE_MODES = ("keep_ratio", "center_crop", "border", "no")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default MAX_IMAGE_PIXELS (about 0.25 GiB of 24-bit pixels)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "RESIZE_MODES",
    "ResizeOptions",
    "ResizeResult",
    "configure_worker",
    "describe_start",
    "resize_image",
    "sniff_format",
    "to_rgb",
]


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
    image_format = sniff_format(data, content_type)
    if image_format is None:
        if is_svg(data, content_type):
            return ResizeResult(FetchStatus.UNSUPPORTED_SVG, "body is an SVG document; SVG images are not rasterized")
        return ResizeResult(
            FetchStatus.NOT_AN_IMAGE,
            f"body is {describe_start(data)}, not a supported image (Content-Type {content_type or 'missing'})",
        )
    if image_format == HEIF:
        return ResizeResult(FetchStatus.DECODE_ERROR, "HEIF/HEIC images are not supported: Pillow has no HEIF decoder")

    with warnings.catch_warnings():
        # Pillow warns about corrupt EXIF and similar recoverable damage once per image,
        # which would flood the workers' stderr. DecompressionBombWarning is a
        # RuntimeWarning, so the filter that configure_worker sets still applies.
        warnings.simplefilter("ignore", UserWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[image_format]) as image:
                return _resize_open_image(image, data, options)
        except Image.DecompressionBombError as error:
            return ResizeResult(FetchStatus.IMAGE_TOO_LARGE, str(error))
        except Image.DecompressionBombWarning as error:
            return ResizeResult(FetchStatus.IMAGE_TOO_LARGE, str(error))
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, MemoryError) as error:
            # Pillow raises OSError ("image file is truncated") for cut pixel data, and a
            # mix of UnidentifiedImageError (an OSError), SyntaxError, ValueError and
            # struct.error for corrupt or cut headers.
            return _failure_result(data, image_format, error)


def _failure_result(data: bytes, image_format: str, error: Exception) -> ResizeResult:
    """Map a decoder error to truncated when the data is cut short, else to decode_error."""
    message = f"{image_format}: {type(error).__name__}: {error}"
    if isinstance(error, EOFError) or "truncated" in str(error).lower() or is_cut_short(data, image_format):
        return ResizeResult(FetchStatus.TRUNCATED, message)
    return ResizeResult(FetchStatus.DECODE_ERROR, message)


def _resize_open_image(image: Image.Image, data: bytes, options: ResizeOptions) -> ResizeResult:
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

    # JPEG can decode at 1/2, 1/4 or 1/8 scale (DCT scaling), which is much faster than
    # decoding full size and resizing. draft() keeps the result at least as large as
    # the requested size, so the final resize still has enough pixels.
    scale = _scale_factor(width, height, options)
    if image.format in ("JPEG", "MPO") and scale < 1.0:
        image.draft(None, (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))))

    image.load()
    if image.format in ("JPEG", "MPO") and is_cut_short(data, "JPEG"):
        # libjpeg decodes a file whose end marker is missing when all of its scan
        # data arrived, but the file is still incomplete.
        return ResizeResult(FetchStatus.TRUNCATED, "JPEG: end of image marker missing")
    image = fix_jpeg_cmyk(image)

    # Read the orientation after load(), because Pillow's TIFF plugin applies the
    # tag itself while loading (and already reports the rotated size at open).
    orientation = image.getexif().get(0x0112, 1)
    if orientation in (5, 6, 7, 8):
        original_width, original_height = height, width
    else:
        original_width, original_height = width, height
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
