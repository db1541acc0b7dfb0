"""resize_image: format sniffing, pixel limits, EXIF orientation, mode conversion and resize modes."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from wit_builder.fetch.resizer import (
    RESIZE_MODES,
    ResizeOptions,
    configure_worker,
    describe_start,
    resize_image,
    sniff_format,
    to_rgb,
)
from wit_builder.fetch.robots_tag import robots_tag_disallows
from wit_builder.records import FetchStatus

HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>gone</body></html>"


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def decode(result) -> Image.Image:
    assert result.jpeg is not None, result.error
    image = Image.open(io.BytesIO(result.jpeg))
    assert image.format == "JPEG"
    return image.convert("RGB")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def close_to(pixel, expected, tolerance=12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected))


@pytest.fixture(scope="module")
def photo_bytes(samples_dir) -> bytes:
    path = sorted((samples_dir / "flickr8k" / "images").glob("*.jpg"))[0]
    return path.read_bytes()


@pytest.mark.parametrize("content_type", ["text/html", "image/jpeg", None])
def test_html_is_not_an_image(content_type):
    result = resize_image(HTML_PAGE, content_type, ResizeOptions())
    assert result.status is FetchStatus.NOT_AN_IMAGE
    assert "HTML" in result.error
    assert result.jpeg is None


@pytest.mark.parametrize("body", [b"", b"{\"error\": 1}", b"%PDF-1.7 ...", b"\x1f\x8b\x08\x00"])
def test_other_bodies_not_an_image(body):
    result = resize_image(body, "image/jpeg", ResizeOptions())
    assert result.status is FetchStatus.NOT_AN_IMAGE


def test_describe_start_names_formats():
    assert describe_start(HTML_PAGE) == "HTML"
    assert describe_start(b"") == "an empty body"
    assert describe_start(b"\x00\x01") == "bytes 0001"


def test_sniff_format_signatures():
    pixel = Image.new("RGB", (4, 4), (1, 2, 3))
    for image_format in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"):
        assert sniff_format(encode(pixel, image_format)) == image_format
    assert sniff_format(HTML_PAGE) is None


def png_header_only(width: int, height: int) -> bytes:
    """Return a PNG with an RGB IHDR of this size and no pixel data at all."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


def test_png_header_over_limit_rejected_before_decode():
    # Decoding would fail for lack of pixel data, so image_too_large proves that the size
    # check ran first. 14000x14000 is also over twice Pillow's default MAX_IMAGE_PIXELS,
    # so Image.open itself raises DecompressionBombError.
    result = resize_image(png_header_only(14000, 14000), "image/png", ResizeOptions(max_pixels=50_000_000))
    assert result.status is FetchStatus.IMAGE_TOO_LARGE, result.error
    assert result.jpeg is None

    result = resize_image(png_header_only(9000, 9000), "image/png", ResizeOptions(max_pixels=50_000_000))
    assert result.status is FetchStatus.IMAGE_TOO_LARGE, result.error
    assert "9000x9000" in result.error
    assert (result.original_width, result.original_height) == (9000, 9000)


def test_worker_limits_reject_bombs_at_open():
    # configure_worker turns Pillow's decompression-bomb warning into an error, which
    # Image.open raises from the header alone.
    data = png_header_only(5000, 5000)
    saved_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        configure_worker(1_000_000)
        try:
            result = resize_image(data, "image/png", ResizeOptions(max_pixels=10**9))
        finally:
            Image.MAX_IMAGE_PIXELS = saved_limit
    assert result.status is FetchStatus.IMAGE_TOO_LARGE, result.error
    assert result.jpeg is None


def test_max_pixels_on_real_photo(photo_bytes):
    result = resize_image(photo_bytes, "image/jpeg", ResizeOptions(max_pixels=10_000))
    assert result.status is FetchStatus.IMAGE_TOO_LARGE
    assert result.original_width == 224
    assert "max_pixels 10000" in result.error


def test_exif_orientation_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=95)

    result = resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no"))
    assert result.status is FetchStatus.OK
    assert (result.width, result.height) == (20, 40)
    assert (result.original_width, result.original_height) == (20, 40)
    output = decode(result)
    assert close_to(output.getpixel((10, 5)), (255, 0, 0), 40)
    assert close_to(output.getpixel((10, 35)), (0, 0, 255), 40)


def test_rgba_transparent_becomes_white():
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    image.paste((0, 128, 0, 255), (0, 0, 16, 32))
    result = resize_image(encode(image, "PNG"), "image/png", ResizeOptions(resize_mode="no"))
    output = decode(result)
    assert close_to(output.getpixel((28, 16)), (255, 255, 255))
    assert close_to(output.getpixel((4, 16)), (0, 128, 0))


def test_cmyk_jpeg_to_rgb():
    image = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red in CMYK
    data = encode(image, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    result = resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no"))
    assert result.status is FetchStatus.OK
    output = decode(result)
    assert output.mode == "RGB"
    assert close_to(output.getpixel((16, 16)), (255, 0, 0), 20)


def test_truncated_jpeg(photo_bytes):
    cut = photo_bytes[: len(photo_bytes) // 2]
    result = resize_image(cut, "image/jpeg", ResizeOptions())
    assert result.status is FetchStatus.TRUNCATED
    assert result.jpeg is None
    assert result.error


def test_corrupt_png_decode_error():
    data = encode(Image.new("RGB", (16, 16), (9, 9, 9)), "PNG")
    corrupt = data[:40] + b"\x00" * 20 + data[60:]
    result = resize_image(corrupt, "image/png", ResizeOptions())
    assert result.status in (FetchStatus.DECODE_ERROR, FetchStatus.TRUNCATED)
    assert result.jpeg is None


def test_palette_with_transparency():
    image = Image.new("P", (16, 16), 0)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    image.paste(1, (0, 0, 8, 16))
    data = encode(image, "PNG", transparency=0)
    output = decode(resize_image(data, "image/png", ResizeOptions(resize_mode="no")))
    assert close_to(output.getpixel((12, 8)), (255, 255, 255))
    assert close_to(output.getpixel((3, 8)), (200, 30, 30))


def test_gif_palette_to_rgb():
    image = Image.new("P", (16, 16), 1)
    image.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    output = decode(resize_image(encode(image, "GIF"), "image/gif", ResizeOptions(resize_mode="no")))
    assert close_to(output.getpixel((8, 8)), (10, 200, 10), 20)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [("L", 77, 77), ("LA", (77, 255), 77), ("1", 1, 255)],
)
def test_gray_modes_to_rgb(mode, value, expected):
    image = Image.new(mode, (8, 8), value)
    output = decode(resize_image(encode(image, "PNG"), "image/png", ResizeOptions(resize_mode="no")))
    assert close_to(output.getpixel((4, 4)), (expected,) * 3, 3)


def test_16bit_gray_scaled_not_clipped():
    values = np.array([[0, 32768], [49152, 65535]], dtype=np.uint16).repeat(8, axis=0).repeat(8, axis=1)
    image = Image.fromarray(values)
    data = encode(image, "PNG")
    reopened = Image.open(io.BytesIO(data))
    assert reopened.mode in ("I;16", "I")

    output = decode(resize_image(data, "image/png", ResizeOptions(resize_mode="no", jpeg_quality=100)))
    assert close_to(output.getpixel((4, 4)), (0, 0, 0), 3)
    assert close_to(output.getpixel((12, 4)), (128, 128, 128), 3)
    assert close_to(output.getpixel((4, 12)), (191, 191, 191), 3)
    assert close_to(output.getpixel((12, 12)), (255, 255, 255), 3)


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I;16", [[1000, 65535]], [4, 255]),
        ("I", [[0, 65535]], [0, 255]),
        ("I", [[0, 51400]], [0, 200]),
        ("I", [[0, 200]], [0, 1]),
        ("I", [[0, 1_000_000]], [0, 255]),
        ("F", [[0.0, 1.0]], [0, 255]),
        ("F", [[0.0, float("nan")]], [0, 0]),
    ],
)
def test_to_rgb_high_depth_modes(mode, values, expected):
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    image = Image.fromarray(np.array(values, dtype=dtype), mode=mode) if mode != "I;16" else Image.fromarray(np.array(values, dtype=dtype))
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0))[0] for x in range(len(expected))] == expected


@pytest.mark.parametrize(
    ("mode", "size", "expected"),
    [
        ("keep_ratio", (300, 200), (150, 100)),
        ("keep_ratio", (200, 300), (100, 150)),
        ("center_crop", (300, 200), (100, 100)),
        ("border", (300, 200), (100, 100)),
        ("no", (300, 200), (300, 200)),
        ("keep_ratio", (50, 40), (125, 100)),
    ],
)
def test_resize_modes(mode, size, expected):
    image = Image.new("RGB", size, (20, 90, 160))
    result = resize_image(encode(image, "PNG"), "image/png", ResizeOptions(image_size=100, resize_mode=mode))
    assert result.status is FetchStatus.OK
    assert (result.width, result.height) == expected
    assert (result.original_width, result.original_height) == size
    assert decode(result).size == expected


def test_border_pads_with_white():
    image = Image.new("RGB", (300, 150), (20, 90, 160))
    output = decode(resize_image(encode(image, "PNG"), "image/png", ResizeOptions(image_size=100, resize_mode="border")))
    assert close_to(output.getpixel((50, 5)), (255, 255, 255))
    assert close_to(output.getpixel((50, 50)), (20, 90, 160))


@pytest.mark.parametrize(("mode", "expected"), [("keep_ratio", (50, 40)), ("center_crop", (40, 40)), ("border", (100, 100))])
def test_no_upscale_keeps_small_images(mode, expected):
    image = Image.new("RGB", (50, 40), (200, 10, 10))
    options = ResizeOptions(image_size=100, resize_mode=mode, upscale=False)
    result = resize_image(encode(image, "PNG"), "image/png", options)
    assert (result.width, result.height) == expected


def test_large_jpeg_uses_draft_and_exact_size():
    gradient = np.linspace(0, 255, 1600, dtype=np.uint8)[None, :].repeat(1200, axis=0)
    image = Image.fromarray(np.stack([gradient, gradient[::-1], gradient], axis=-1))
    result = resize_image(encode(image, "JPEG", quality=90), "image/jpeg", ResizeOptions(image_size=256))
    assert result.status is FetchStatus.OK
    assert (result.width, result.height) == (341, 256)
    assert (result.original_width, result.original_height) == (1600, 1200)


def test_real_photos_every_mode(samples_dir):
    paths = sorted((samples_dir / "flickr8k" / "images").glob("*.jpg"))[:5]
    for mode in RESIZE_MODES:
        for path in paths:
            result = resize_image(path.read_bytes(), "image/jpeg", ResizeOptions(image_size=128, resize_mode=mode))
            assert result.status is FetchStatus.OK, (path.name, result.error)
            assert min(result.width, result.height) == (224 if mode == "no" else 128)


def test_shared_misc_images_decode(shared_data):
    paths = sorted((shared_data / "images-misc").glob("*/*"))
    decoded = 0
    for path in paths:
        if path.suffix.lower() not in (".png", ".jpg", ".gif", ".tif"):
            continue
        result = resize_image(path.read_bytes(), None, ResizeOptions(image_size=64))
        if path.name == "multipage_rgb.tif":
            continue  # a TIFF layout that Pillow cannot open; any non-ok status is fine
        assert result.status is FetchStatus.OK, (path.name, result.error)
        assert decode(result).mode == "RGB"
        decoded += 1
    assert decoded >= 25


def test_options_reject_invalid_values():
    with pytest.raises(ValueError, match="resize_mode"):
        ResizeOptions(resize_mode="stretch")
    with pytest.raises(ValueError, match="jpeg_quality"):
        ResizeOptions(jpeg_quality=0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("noindex", "noindex"),
        ("noai, noimageai", "noai"),
        ("nofollow, noarchive", None),
        ("googlebot: noindex", None),
        ("wit-builder: noimageai", "noimageai"),
        ("googlebot: noindex, nofollow, wit-builder: noai", "noai"),
        ("unavailable_after: 25 Jun 2010 15:00:00 PST, noimageindex", "noimageindex"),
        ("max-image-preview: large", None),
    ],
)
def test_robots_tag_directives(header, expected):
    assert robots_tag_disallows(header) == expected
