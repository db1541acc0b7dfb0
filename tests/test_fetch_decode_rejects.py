"""Decode rejections: bodies that are not images, SVG, pixel bombs declared in headers, and cut files."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from wit_builder.fetch.decode_cases import HEIF, is_cut_short, is_svg, sniff_format
from wit_builder.fetch.resizer import ResizeOptions, configure_worker, resize_image
from wit_builder.records import FetchStatus

HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>login required</body></html>"
SVG_DOCUMENT = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def noise_image(width: int = 160, height: int = 120) -> Image.Image:
    """Return an RGB image of random pixels, so that every format stores many bytes."""
    pixels = np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


# --- Content-Type and magic bytes -------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "image/jpeg", None])
def test_html_served_as_jpeg_not_an_image(content_type):
    result = resize_image(HTML_PAGE, content_type, ResizeOptions())
    assert result.status is FetchStatus.NOT_AN_IMAGE
    assert "HTML" in result.error
    assert (content_type or "missing") in result.error
    assert result.jpeg is None


def test_jpeg_served_as_html_decodes():
    # The leading bytes decide, because servers mislabel real images too.
    data = encode(Image.new("RGB", (16, 16), (10, 120, 200)), "JPEG")
    result = resize_image(data, "text/html", ResizeOptions(image_size=16))
    assert result.status is FetchStatus.OK, result.error


@pytest.mark.parametrize(
    "body",
    [
        SVG_DOCUMENT,
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + SVG_DOCUMENT,
        b"\xef\xbb\xbf<!-- drawn by hand -->\n" + SVG_DOCUMENT,
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        + SVG_DOCUMENT,
    ],
)
@pytest.mark.parametrize("content_type", ["image/svg+xml", "image/jpeg", None])
def test_svg_rejected_with_own_status(body, content_type):
    result = resize_image(body, content_type, ResizeOptions())
    assert result.status is FetchStatus.UNSUPPORTED_SVG
    assert "SVG" in result.error
    assert result.jpeg is None


def test_gzipped_svg_by_content_type():
    result = resize_image(zlib.compress(SVG_DOCUMENT), "image/svg+xml; charset=utf-8", ResizeOptions())
    assert result.status is FetchStatus.UNSUPPORTED_SVG


def test_html_with_inline_svg_is_html():
    page = b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body>' + SVG_DOCUMENT + b"</body></html>"
    assert not is_svg(page, "application/xhtml+xml")
    result = resize_image(page, "image/png", ResizeOptions())
    assert result.status is FetchStatus.NOT_AN_IMAGE


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1", "AVIF"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "AVIF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", HEIF),
        (b"\x00\x00\x00\x14ftypmif1\x00\x00\x00\x00mif1", HEIF),
        (b"\x00\x00\x00\x14ftypisom\x00\x00\x00\x00isom", None),  # an MP4 video
        (b"P6\n2 2\n255\n", "PPM"),
        (b"Pf\n2 2\n-1.0\n", "PPM"),
        (b"PK\x03\x04", None),
        (b"%PDF-1.7", None),
        (b"8BPS\x00\x01", None),  # Photoshop
    ],
)
def test_sniff_format_table(body, expected):
    assert sniff_format(body) == expected


def test_heif_rejected_with_reason():
    body = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100
    result = resize_image(body, "image/heic", ResizeOptions())
    assert result.status is FetchStatus.DECODE_ERROR
    assert "HEIF" in result.error


# --- Pixel limits checked on the header --------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int) -> bytes:
    """Return a complete 1-bit grayscale PNG of side x side black pixels (a few KB)."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_with_size(width: int, height: int) -> bytes:
    """Return a small JPEG whose SOF0 header declares width x height."""
    data = bytearray(encode(Image.new("L", (8, 8), 128), "JPEG"))
    start = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, start + 5, height, width)
    return bytes(data)


def gif_with_size(width: int, height: int) -> bytes:
    """Return a small GIF whose screen and image descriptors declare width x height."""
    data = bytearray(encode(Image.new("P", (8, 8), 0), "GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    descriptor = data.find(b"\x2c\x00\x00\x00\x00")
    struct.pack_into("<HH", data, descriptor + 5, width, height)
    return bytes(data)


def bmp_with_size(width: int, height: int) -> bytes:
    data = bytearray(encode(Image.new("RGB", (8, 8), (1, 2, 3)), "BMP"))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


BOMBS = {
    "png": lambda: png_bomb(14000),
    "jpeg": lambda: jpeg_with_size(14000, 14000),
    "gif": lambda: gif_with_size(14000, 14000),
    "bmp": lambda: bmp_with_size(14000, 14000),
}


@pytest.mark.parametrize("image_format", sorted(BOMBS))
@pytest.mark.parametrize("max_pixels", [None, 50_000_000])
def test_header_bomb_rejected_before_decode(image_format, max_pixels):
    data = BOMBS[image_format]()
    assert len(data) < 200_000
    options = ResizeOptions() if max_pixels is None else ResizeOptions(max_pixels=max_pixels)

    Image.core.reset_stats()
    started = time.perf_counter()
    result = resize_image(data, None, options)
    elapsed = time.perf_counter() - started

    assert result.status is FetchStatus.IMAGE_TOO_LARGE, result.error
    assert "14000" in result.error or "196000000" in result.error
    assert result.jpeg is None
    # No pixel buffer was allocated, so nothing was decoded.
    assert Image.core.get_stats()["new_count"] == 0
    assert elapsed < 0.5, f"rejecting took {elapsed:.3f} s"


def test_header_bomb_below_pillow_limit():
    # 9000x9000 is under twice Pillow's limit, so only the explicit max_pixels check rejects it.
    data = png_bomb(9000)
    Image.core.reset_stats()
    result = resize_image(data, "image/png", ResizeOptions(max_pixels=50_000_000))
    assert result.status is FetchStatus.IMAGE_TOO_LARGE
    assert "9000x9000" in result.error
    assert (result.original_width, result.original_height) == (9000, 9000)
    assert Image.core.get_stats()["new_count"] == 0


# --- Truncated files ------------------------------------------------------------------


def jpeg_baseline() -> bytes:
    return encode(noise_image(), "JPEG", quality=90)


def jpeg_progressive() -> bytes:
    return encode(noise_image(), "JPEG", quality=90, progressive=True)


def jpeg_header_length(data: bytes) -> int:
    """Return the offset of the first byte of entropy-coded data, after the top-level SOS segment."""
    offset = 2
    while True:
        marker = data[offset + 1]
        offset += 2 + struct.unpack(">H", data[offset + 2 : offset + 4])[0]
        if marker == 0xDA:
            return offset


@pytest.mark.parametrize("build", [jpeg_baseline, jpeg_progressive], ids=["baseline", "progressive"])
@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.9, 0.99])
def test_jpeg_cut_in_data_truncated(build, fraction):
    data = build()
    header_length = jpeg_header_length(data)
    cut = header_length + int((len(data) - header_length) * fraction)
    result = resize_image(data[:cut], "image/jpeg", ResizeOptions())
    assert result.status is FetchStatus.TRUNCATED, result.error
    assert result.jpeg is None


def test_jpeg_without_end_marker_truncated():
    data = jpeg_baseline()
    result = resize_image(data[:-2], "image/jpeg", ResizeOptions())
    assert result.status is FetchStatus.TRUNCATED, result.error


@pytest.mark.parametrize("cut", [3, 4, 10, 40, 100, 200, "before-sos", "in-sos"])
def test_jpeg_cut_in_header_truncated(cut):
    data = jpeg_baseline()
    sos = data.rfind(b"\xff\xda", 0, jpeg_header_length(data))
    length = {"before-sos": sos, "in-sos": sos + 6}.get(cut, cut)
    result = resize_image(data[:length], "image/jpeg", ResizeOptions())
    assert result.status is FetchStatus.TRUNCATED, result.error


def test_truncated_jpeg_not_loaded_with_grey_part():
    # With LOAD_TRUNCATED_IMAGES on, Pillow would fill the missing part with grey and
    # report success. configure_worker turns it off, as the decoder workers run it.
    data = jpeg_baseline()
    saved_flag, saved_limit = ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        configure_worker(Image.MAX_IMAGE_PIXELS)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
        result = resize_image(data[: len(data) // 2], "image/jpeg", ResizeOptions())
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS = saved_flag, saved_limit
    assert result.status is FetchStatus.TRUNCATED


def test_truncated_jpeg_rejected_even_if_pillow_loads_it():
    # Without configure_worker, a process with LOAD_TRUNCATED_IMAGES on still gets
    # truncated, from the missing end marker.
    data = jpeg_baseline()
    saved_flag = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        result = resize_image(data[: len(data) // 2], "image/jpeg", ResizeOptions())
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved_flag
    assert result.status is FetchStatus.TRUNCATED


def test_jpeg_with_data_after_end_marker_ok():
    # Motion photos append a video after the JPEG's end marker.
    data = jpeg_baseline() + b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4
    result = resize_image(data, "image/jpeg", ResizeOptions(image_size=32))
    assert result.status is FetchStatus.OK, result.error


def test_jpeg_cut_after_exif_thumbnail_truncated():
    # The EXIF thumbnail is a whole JPEG, end marker included, inside the APP1 segment.
    thumbnail = encode(Image.new("RGB", (16, 16), (200, 0, 0)), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 1
    data = encode(noise_image(), "JPEG", exif=exif.tobytes() + thumbnail, quality=90)
    assert data.find(b"\xff\xd9") < jpeg_header_length(data)
    cut = data[: jpeg_header_length(data) + 500]
    assert is_cut_short(cut, "JPEG")
    result = resize_image(cut, "image/jpeg", ResizeOptions())
    assert result.status is FetchStatus.TRUNCATED, result.error


CUT_FORMATS = {
    "png": lambda: encode(noise_image(), "PNG"),
    "gif": lambda: encode(noise_image(), "GIF"),
    "webp-lossy": lambda: encode(noise_image(), "WEBP", quality=90),
    "webp-lossless": lambda: encode(noise_image(), "WEBP", lossless=True),
    "bmp": lambda: encode(noise_image(), "BMP"),
    "tiff": lambda: encode(noise_image(), "TIFF"),
    "avif": lambda: encode(noise_image(), "AVIF", quality=80),
}


@pytest.mark.parametrize("image_format", sorted(CUT_FORMATS))
@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.9])
def test_other_formats_cut_truncated(image_format, fraction):
    if image_format == "avif" and not features.check("avif"):
        pytest.skip("this Pillow build lacks AVIF support")
    data = CUT_FORMATS[image_format]()
    result = resize_image(data[: int(len(data) * fraction)], None, ResizeOptions())
    assert result.status is FetchStatus.TRUNCATED, result.error
    assert result.jpeg is None


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "GIF", "WEBP", "BMP"])
def test_is_cut_short_complete_files(image_format):
    data = encode(noise_image(32, 16), image_format)
    assert not is_cut_short(data, image_format)
    assert is_cut_short(data[: len(data) - 20], image_format)


def test_corrupt_jpeg_header_decode_error():
    # A complete file (with its end marker) whose SOF declares 9 components is corrupt, not cut.
    data = bytearray(jpeg_baseline())
    start = data.find(b"\xff\xc0")
    data[start + 9] = 9
    result = resize_image(bytes(data), "image/jpeg", ResizeOptions())
    assert result.status is FetchStatus.DECODE_ERROR, result.error
