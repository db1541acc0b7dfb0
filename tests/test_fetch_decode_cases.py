"""Decode table: every (format, mode) case that Pillow opens comes out as 8-bit RGB with the right colours.

Each case builds a 64x32 image (ICO: 32x32) whose left and right halves differ. The
tests check the mode that Pillow opens it in, the output size, the output mode and
the colour at the centre of each half. They check both ``to_rgb`` and the JPEG that
``resize_image`` writes. The halves are 16-pixel aligned, so JPEG chroma blocks do
not mix them.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image, features

from wit_builder.fetch.decode_cases import fix_jpeg_cmyk, sniff_format, to_rgb
from wit_builder.fetch.resizer import ResizeOptions, resize_image
from wit_builder.records import FetchStatus

WIDTH, HEIGHT = 64, 32
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
BLACK, WHITE = (0, 0, 0), (255, 255, 255)
#: Extra difference allowed after the output JPEG's own compression (quality 95).
JPEG_OUTPUT_TOLERANCE = 10


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def halves(mode: str, left, right, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    """Return an image of ``mode`` whose left half is ``left`` and right half ``right``."""
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def array_halves(left, right, dtype, channels: int | None = None) -> np.ndarray:
    shape = (HEIGHT, WIDTH) if channels is None else (HEIGHT, WIDTH, channels)
    values = np.empty(shape, dtype=dtype)
    values[:, : WIDTH // 2] = left
    values[:, WIDTH // 2 :] = right
    return values


def over_white(rgb: tuple[int, int, int], alpha: int) -> tuple[int, ...]:
    """Return ``rgb`` at ``alpha`` (0-255) composited on white."""
    return tuple(round(channel * alpha / 255 + 255 * (1 - alpha / 255)) for channel in rgb)


def palette_image(size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    """Return a P image with palette index 1 (red) on the left and 2 (green) on the right."""
    image = halves("P", 1, 2, size)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
    return image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_16bit(values: np.ndarray, color_type: int, transparency: bytes | None = None) -> bytes:
    """Write a 16-bit PNG by hand, because Pillow writes only 16-bit grayscale."""
    height, width = values.shape[:2]
    raw = b"".join(b"\x00" + values[row].astype(">u2").tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    chunks = png_chunk(b"IHDR", header)
    if transparency is not None:
        chunks += png_chunk(b"tRNS", transparency)
    chunks += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def tiff_rgb_16bit(values: np.ndarray) -> bytes:
    """Write an uncompressed little-endian 16-bit RGB TIFF by hand (Pillow cannot save one)."""
    height, width, _ = values.shape
    pixels = values.astype("<u2").tobytes()
    short, long = 3, 4
    entry_count = 10
    bits_offset = 8 + 2 + entry_count * 12 + 4
    pixels_offset = bits_offset + 6
    entries = [
        (256, long, 1, width),  # ImageWidth
        (257, long, 1, height),  # ImageLength
        (258, short, 3, bits_offset),  # BitsPerSample, stored after the IFD
        (259, short, 1, 1),  # Compression: none
        (262, short, 1, 2),  # PhotometricInterpretation: RGB
        (273, long, 1, pixels_offset),  # StripOffsets
        (277, short, 1, 3),  # SamplesPerPixel
        (278, long, 1, height),  # RowsPerStrip
        (279, long, 1, len(pixels)),  # StripByteCounts
        (284, short, 1, 1),  # PlanarConfiguration: chunky
    ]
    ifd = struct.pack("<H", entry_count)
    for tag, kind, count, value in entries:
        packed = struct.pack("<HI", value, 0)[:4] if kind == short and count == 1 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<HHH", 16, 16, 16) + pixels


def animated(image_format: str, **params) -> bytes:
    """Return a two-frame animation: red, then blue."""
    first = Image.new("RGB", (WIDTH, HEIGHT), RED)
    second = Image.new("RGB", (WIDTH, HEIGHT), BLUE)
    return encode(first, image_format, save_all=True, append_images=[second], duration=100, loop=0, **params)


def ppm_ascii(magic: bytes, rows: np.ndarray, maxval: int | None) -> bytes:
    """Write a plain (ASCII) PBM, PGM or PPM file."""
    height, width = rows.shape[:2]
    header = magic + f"\n{width} {height}\n".encode() + (f"{maxval}\n".encode() if maxval else b"")
    return header + " ".join(str(int(value)) for value in rows.reshape(-1)).encode() + b"\n"


@dataclass
class Case:
    """One decode case: how to build the file, the mode Pillow opens it in, and the expected colours."""

    build: Callable[[], bytes]
    opened_mode: str
    left: tuple[int, int, int]
    right: tuple[int, int, int]
    #: Allowed difference per channel in ``to_rgb``'s output (lossy formats need more).
    tolerance: int = 2
    content_type: str | None = None
    size: tuple[int, int] = (WIDTH, HEIGHT)
    needs: str | None = None


GRAY_16 = array_halves(0x0000, 0x8080, np.uint16)
RGB_16 = array_halves((0xFFFF, 0x8080, 0x0000), (0x0000, 0x0000, 0xFFFF), np.uint16, channels=3)
RGBA_16 = array_halves((0xFFFF, 0x0000, 0x0000, 0xFFFF), (0x0000, 0x0000, 0xFFFF, 0x0000), np.uint16, channels=4)
# CIE Lab (D50) of sRGB red is about (54.3, 80.8, 69.9), from the sRGB and CIE formulas
# (srgb_to_lab in test_fetch_decode_color). Pillow stores L * 2.55, and a and b plus 128.
LAB_RED = (138, 128 + 81, 128 + 70)
# JPEG (JFIF) YCbCr of pure red.
YCBCR_RED = (76, 85, 255)

CASES: dict[str, Case] = {
    # PNG
    "png-1": Case(lambda: encode(halves("1", 0, 1), "PNG"), "1", BLACK, WHITE),
    "png-L": Case(lambda: encode(halves("L", 40, 200), "PNG"), "L", (40,) * 3, (200,) * 3),
    "png-LA": Case(lambda: encode(halves("LA", (40, 255), (40, 0)), "PNG"), "LA", (40,) * 3, WHITE),
    "png-LA-half-alpha": Case(
        lambda: encode(halves("LA", (0, 255), (0, 128)), "PNG"), "LA", BLACK, over_white(BLACK, 128)
    ),
    "png-P": Case(lambda: encode(palette_image(), "PNG"), "P", RED, GREEN),
    "png-P-tRNS-index": Case(lambda: encode(palette_image(), "PNG", transparency=2), "P", RED, WHITE),
    "png-P-palette-alpha": Case(
        lambda: encode(palette_image(), "PNG", transparency=bytes([255, 255, 128])),
        "P",
        RED,
        over_white(GREEN, 128),
    ),
    "png-RGB": Case(lambda: encode(halves("RGB", RED, BLUE), "PNG"), "RGB", RED, BLUE),
    "png-RGB-tRNS-colour": Case(
        lambda: encode(halves("RGB", RED, BLUE), "PNG", transparency=BLUE), "RGB", RED, WHITE
    ),
    "png-RGBA": Case(lambda: encode(halves("RGBA", RED + (255,), BLUE + (0,)), "PNG"), "RGBA", RED, WHITE),
    "png-RGBA-half-alpha": Case(
        lambda: encode(halves("RGBA", RED + (255,), BLUE + (128,)), "PNG"), "RGBA", RED, over_white(BLUE, 128)
    ),
    "png-I;16": Case(lambda: encode(Image.fromarray(GRAY_16), "PNG"), "I;16", BLACK, (128,) * 3),
    "png-I;16-from-I;16B": Case(
        lambda: encode(Image.fromarray(GRAY_16.astype(">u2")), "PNG"), "I;16", BLACK, (128,) * 3
    ),
    "png-I;16-tRNS": Case(
        lambda: png_16bit(GRAY_16, color_type=0, transparency=struct.pack(">H", 0x8080)), "I;16", BLACK, WHITE
    ),
    "png-RGB-16bit": Case(lambda: png_16bit(RGB_16, color_type=2), "RGB", (255, 128, 0), BLUE),
    "png-RGBA-16bit": Case(lambda: png_16bit(RGBA_16, color_type=6), "RGBA", RED, WHITE),
    "apng-first-frame": Case(lambda: animated("PNG"), "RGB", RED, RED),
    # GIF
    "gif-P": Case(lambda: encode(palette_image(), "GIF"), "P", RED, GREEN),
    "gif-P-transparency": Case(lambda: encode(palette_image(), "GIF", transparency=2), "P", RED, WHITE),
    "gif-animated-first-frame": Case(lambda: animated("GIF"), "P", RED, RED),
    # WebP
    "webp-lossy": Case(lambda: encode(halves("RGB", RED, BLUE), "WEBP", quality=95), "RGB", RED, BLUE, 12),
    "webp-lossless-RGBA": Case(
        lambda: encode(halves("RGBA", RED + (255,), BLUE + (0,)), "WEBP", lossless=True), "RGBA", RED, WHITE
    ),
    "webp-animated-first-frame": Case(lambda: animated("WEBP", lossless=True), "RGB", RED, RED),
    # BMP
    "bmp-1": Case(lambda: encode(halves("1", 0, 1), "BMP"), "1", BLACK, WHITE),
    "bmp-L": Case(lambda: encode(halves("L", 40, 200), "BMP"), "L", (40,) * 3, (200,) * 3),
    "bmp-P": Case(lambda: encode(palette_image(), "BMP"), "P", RED, GREEN),
    "bmp-RGB": Case(lambda: encode(halves("RGB", RED, BLUE), "BMP"), "RGB", RED, BLUE),
    # TIFF
    "tiff-1": Case(lambda: encode(halves("1", 0, 1), "TIFF"), "1", BLACK, WHITE),
    "tiff-L": Case(lambda: encode(halves("L", 40, 200), "TIFF"), "L", (40,) * 3, (200,) * 3),
    "tiff-LA": Case(lambda: encode(halves("LA", (40, 255), (40, 0)), "TIFF"), "LA", (40,) * 3, WHITE),
    "tiff-P": Case(lambda: encode(palette_image(), "TIFF"), "P", RED, GREEN),
    "tiff-PA": Case(
        lambda: encode(palette_image().convert("PA"), "TIFF"), "PA", RED, GREEN
    ),
    "tiff-RGB": Case(lambda: encode(halves("RGB", RED, BLUE), "TIFF"), "RGB", RED, BLUE),
    "tiff-RGBA": Case(lambda: encode(halves("RGBA", RED + (255,), BLUE + (0,)), "TIFF"), "RGBA", RED, WHITE),
    "tiff-CMYK": Case(lambda: encode(halves("CMYK", (0, 255, 255, 0), (0, 0, 0, 255)), "TIFF"), "CMYK", RED, BLACK),
    "tiff-CMYK-white": Case(lambda: encode(halves("CMYK", (0, 0, 0, 0), (255, 255, 255, 255)), "TIFF"), "CMYK", WHITE, BLACK),
    "tiff-YCbCr": Case(lambda: encode(halves("YCbCr", YCBCR_RED, (255, 128, 128)), "TIFF"), "YCbCr", RED, WHITE),
    "tiff-LAB": Case(lambda: encode(halves("LAB", LAB_RED, (255, 128, 128)), "TIFF"), "LAB", RED, WHITE, 8),
    "tiff-I;16": Case(lambda: encode(Image.fromarray(GRAY_16), "TIFF"), "I;16", BLACK, (128,) * 3),
    "tiff-I;16B": Case(lambda: encode(Image.fromarray(GRAY_16.astype(">u2")), "TIFF"), "I;16B", BLACK, (128,) * 3),
    "tiff-I-32bit": Case(
        lambda: encode(Image.fromarray(array_halves(0, 65535, np.int32), mode="I"), "TIFF"), "I", BLACK, WHITE
    ),
    "tiff-F-0-to-1": Case(
        lambda: encode(Image.fromarray(array_halves(0.5, 1.0, np.float32), mode="F"), "TIFF"), "F", (128,) * 3, WHITE
    ),
    "tiff-RGB-16bit": Case(lambda: tiff_rgb_16bit(RGB_16), "RGB", (255, 128, 0), BLUE),
    # ICO (square sizes only)
    "ico-RGBA": Case(
        lambda: encode(halves("RGBA", RED + (255,), BLUE + (0,), (32, 32)), "ICO", sizes=[(32, 32)]),
        "RGBA",
        RED,
        WHITE,
        size=(32, 32),
    ),
    # PPM family
    "pbm-binary": Case(lambda: encode(halves("1", 0, 1), "PPM"), "1", BLACK, WHITE),
    "pgm-binary": Case(lambda: encode(halves("L", 40, 200), "PPM"), "L", (40,) * 3, (200,) * 3),
    "ppm-binary": Case(lambda: encode(halves("RGB", RED, BLUE), "PPM"), "RGB", RED, BLUE),
    "pgm-16bit": Case(lambda: encode(Image.fromarray(GRAY_16), "PPM"), "I", BLACK, (128,) * 3),
    "pfm-float": Case(
        lambda: encode(Image.fromarray(array_halves(0.0, 1.0, np.float32), mode="F"), "PPM"), "F", BLACK, WHITE
    ),
    "ppm-ascii": Case(
        lambda: ppm_ascii(b"P3", array_halves(RED, BLUE, np.uint8, channels=3), 255), "RGB", RED, BLUE
    ),
    "pgm-ascii-maxval-1000": Case(
        lambda: ppm_ascii(b"P2", array_halves(0, 1000, np.uint16), 1000), "I", BLACK, WHITE
    ),
    # TGA: version 2 has a footer; version 1 is recognised only by its Content-Type.
    "tga-RGB": Case(lambda: encode(halves("RGB", RED, BLUE), "TGA"), "RGB", RED, BLUE),
    "tga-RGBA": Case(lambda: encode(halves("RGBA", RED + (255,), BLUE + (0,)), "TGA"), "RGBA", RED, WHITE),
    "tga-P": Case(lambda: encode(palette_image(), "TGA"), "P", RED, GREEN),
    "tga-no-footer": Case(
        lambda: encode(halves("RGB", RED, BLUE), "TGA")[:-26], "RGB", RED, BLUE, content_type="image/x-tga"
    ),
    # JPEG
    "jpeg-L": Case(lambda: encode(halves("L", 40, 200), "JPEG", quality=95), "L", (40,) * 3, (200,) * 3, 6),
    "jpeg-RGB": Case(lambda: encode(halves("RGB", RED, BLUE), "JPEG", quality=95), "RGB", RED, BLUE, 12),
    "jpeg-YCbCr": Case(
        lambda: encode(halves("YCbCr", YCBCR_RED, (255, 128, 128)), "JPEG", quality=95), "RGB", RED, WHITE, 12
    ),
    "jpeg-CMYK-Adobe": Case(
        lambda: encode(halves("CMYK", (0, 255, 255, 0), (0, 0, 0, 255)), "JPEG", quality=95), "CMYK", RED, BLACK, 12
    ),
    # AVIF and JPEG 2000, when this Pillow build has them
    "avif-RGB": Case(
        lambda: encode(halves("RGB", RED, BLUE), "AVIF", quality=90), "RGB", RED, BLUE, 16, needs="avif"
    ),
    "avif-RGBA": Case(
        lambda: encode(halves("RGBA", RED + (255,), BLUE + (0,)), "AVIF", quality=90), "RGBA", RED, WHITE, 16, needs="avif"
    ),
    "jpeg2000-RGB": Case(
        lambda: encode(halves("RGB", RED, BLUE), "JPEG2000", irreversible=False), "RGB", RED, BLUE, needs="jpg_2000"
    ),
}


def sample_points(size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    width, height = size
    return (width // 4, height // 2), (3 * width // 4, height // 2)


def assert_close(pixel, expected, tolerance: int, label: str) -> None:
    difference = max(abs(int(a) - int(b)) for a, b in zip(pixel, expected))
    assert difference <= tolerance, f"{label}: pixel {pixel} differs from {expected} by {difference}"


def build_case(case_id: str) -> tuple[Case, bytes]:
    case = CASES[case_id]
    if case.needs is not None and not features.check(case.needs):
        pytest.skip(f"this Pillow build lacks {case.needs} support")
    return case, case.build()


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_decode_case_opens_in_mode(case_id):
    case, data = build_case(case_id)
    image_format = sniff_format(data, case.content_type)
    assert image_format is not None, f"leading bytes {data[:8].hex()} not recognised"
    with Image.open(io.BytesIO(data), formats=[image_format]) as image:
        assert image.mode == case.opened_mode
        assert image.size == case.size


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_decode_case_to_rgb(case_id):
    case, data = build_case(case_id)
    with Image.open(io.BytesIO(data), formats=[sniff_format(data, case.content_type)]) as image:
        image.load()
        rgb = to_rgb(fix_jpeg_cmyk(image))
    assert rgb.mode == "RGB"
    assert rgb.size == case.size
    left_point, right_point = sample_points(case.size)
    assert_close(rgb.getpixel(left_point), case.left, case.tolerance, "left half")
    assert_close(rgb.getpixel(right_point), case.right, case.tolerance, "right half")


@pytest.mark.parametrize("case_id", sorted(CASES))
def test_decode_case_resize_image(case_id):
    case, data = build_case(case_id)
    result = resize_image(data, case.content_type, ResizeOptions(resize_mode="no", jpeg_quality=95))
    assert result.status is FetchStatus.OK, result.error
    assert (result.width, result.height) == case.size
    assert (result.original_width, result.original_height) == case.size

    output = Image.open(io.BytesIO(result.jpeg))
    assert output.format == "JPEG"
    assert output.mode == "RGB"
    left_point, right_point = sample_points(case.size)
    tolerance = case.tolerance + JPEG_OUTPUT_TOLERANCE
    assert_close(output.getpixel(left_point), case.left, tolerance, "left half")
    assert_close(output.getpixel(right_point), case.right, tolerance, "right half")


# Modes that no supported file format stores, but that Pillow can hand to to_rgb.
IN_MEMORY_MODES = [
    ("RGBa", (128, 0, 0, 128), over_white(RED, 128)),
    ("La", (64, 128), over_white((127, 127, 127), 128)),
    ("HSV", (0, 255, 255), RED),
    ("HSV", (85, 255, 255), GREEN),
    ("RGBX", (0, 0, 255, 0), BLUE),
    ("YCbCr", YCBCR_RED, RED),
    ("LAB", (255, 128, 128), WHITE),
    ("CMYK", (255, 255, 255, 255), BLACK),
    ("I;16L", 0xFFFF, WHITE),
    ("I;16B", 0x8080, (128,) * 3),
    ("I", -5, BLACK),
    ("I", 2_000_000, WHITE),
    ("F", 0.25, (64,) * 3),
    ("F", float("inf"), WHITE),
]


@pytest.mark.parametrize(("mode", "value", "expected"), IN_MEMORY_MODES)
def test_to_rgb_in_memory_modes(mode, value, expected):
    image = Image.new(mode, (8, 8), value)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert rgb.size == (8, 8)
    assert_close(rgb.getpixel((4, 4)), expected, 2, mode)
