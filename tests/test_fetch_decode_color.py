"""Decode geometry and colour: EXIF orientation, CMYK JPEG conventions and ICC profiles."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from wit_builder.fetch.resizer import ResizeOptions, resize_image
from wit_builder.records import FetchStatus

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
BLACK, WHITE = (0, 0, 0), (255, 255, 255)
# CMYK values as Pillow stores them in memory, where 0 means no ink.
CMYK_WHITE = (0, 0, 0, 0)
CMYK_BLACK = (0, 0, 0, 255)
CMYK_RICH_BLACK = (255, 255, 255, 255)
CMYK_RED = (0, 255, 255, 0)
SYSTEM_ICC_FOLDERS = (Path("/usr/share/color/icc"), Path("/usr/share/ghostscript"))


def encode(image: Image.Image, image_format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def output_image(result) -> Image.Image:
    assert result.status is FetchStatus.OK, result.error
    image = Image.open(io.BytesIO(result.jpeg))
    assert image.mode == "RGB"
    return image


def assert_close(pixel, expected, tolerance: int, label: str = "pixel") -> None:
    difference = max(abs(int(a) - int(b)) for a, b in zip(pixel, expected))
    assert difference <= tolerance, f"{label}: {pixel} differs from {expected} by {difference}"


# --- EXIF orientation -------------------------------------------------------------


def orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def test_exif_orientation_6_red_on_top():
    image = Image.new("RGB", (40, 20), BLUE)
    image.paste(RED, (0, 0, 20, 20))  # left half red
    data = encode(image, "JPEG", exif=orientation_exif(6), quality=95)

    result = resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no"))
    output = output_image(result)
    assert output.size == (20, 40)
    assert (result.original_width, result.original_height) == (20, 40)
    assert_close(output.getpixel((10, 8)), RED, 40, "top")
    assert_close(output.getpixel((10, 32)), BLUE, 40, "bottom")


# The stored 2x2 grid of quadrant colours, and how each EXIF orientation displays it.
STORED_GRID = np.array([[RED, GREEN], [BLUE, YELLOW]], dtype=np.uint8)
DISPLAYED_GRID = {
    1: STORED_GRID,
    2: STORED_GRID[:, ::-1],  # mirrored left to right
    3: STORED_GRID[::-1, ::-1],  # rotated 180 degrees
    4: STORED_GRID[::-1, :],  # mirrored top to bottom
    5: STORED_GRID.transpose(1, 0, 2),  # mirrored along the top-left to bottom-right diagonal
    6: np.rot90(STORED_GRID, k=-1),  # rotated 90 degrees clockwise
    7: STORED_GRID.transpose(1, 0, 2)[::-1, ::-1],  # mirrored along the other diagonal
    8: np.rot90(STORED_GRID, k=1),  # rotated 90 degrees counter-clockwise
}


def quadrant_image() -> Image.Image:
    """Return a 64x32 image with red, green (top) and blue, yellow (bottom) quadrants."""
    pixels = STORED_GRID.repeat(16, axis=0).repeat(32, axis=1)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_all_eight(orientation):
    data = encode(quadrant_image(), "JPEG", exif=orientation_exif(orientation), quality=95)
    result = resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no"))
    output = output_image(result)

    expected_size = (64, 32) if orientation <= 4 else (32, 64)
    assert output.size == expected_size
    assert (result.original_width, result.original_height) == expected_size

    grid = DISPLAYED_GRID[orientation]
    width, height = expected_size
    for row in range(2):
        for column in range(2):
            point = (width // 4 + column * width // 2, height // 4 + row * height // 2)
            assert_close(output.getpixel(point), tuple(grid[row, column]), 40, f"quadrant {row},{column}")


def test_exif_orientation_applied_once():
    # The output carries no EXIF, so no viewer rotates it a second time.
    data = encode(quadrant_image(), "JPEG", exif=orientation_exif(6), quality=95)
    output = output_image(resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no")))
    assert output.getexif().get(0x0112) is None
    assert output.size == (32, 64)


@pytest.mark.parametrize(("image_format", "params"), [("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})])
def test_exif_orientation_other_formats(image_format, params):
    data = encode(quadrant_image(), image_format, exif=orientation_exif(6), **params)
    result = resize_image(data, None, ResizeOptions(resize_mode="no"))
    output = output_image(result)
    assert output.size == (32, 64)
    assert (result.original_width, result.original_height) == (32, 64)
    assert_close(output.getpixel((8, 16)), BLUE, 40, "top left")
    assert_close(output.getpixel((24, 16)), RED, 40, "top right")


def test_exif_orientation_with_jpeg_draft():
    # Large JPEGs decode at a reduced DCT scale first; orientation must still apply.
    image = quadrant_image().resize((1024, 512), Image.Resampling.NEAREST)
    data = encode(image, "JPEG", exif=orientation_exif(8), quality=90)
    result = resize_image(data, "image/jpeg", ResizeOptions(image_size=64))
    output = output_image(result)
    assert output.size == (64, 128)
    assert (result.original_width, result.original_height) == (512, 1024)
    assert_close(output.getpixel((16, 32)), GREEN, 40, "top left")
    assert_close(output.getpixel((48, 96)), BLUE, 40, "bottom right")


# --- CMYK JPEG ----------------------------------------------------------------------


def cmyk_patches() -> Image.Image:
    """Return a 64x16 CMYK image of four 16x16 patches: white, K-only black, rich black, red."""
    image = Image.new("CMYK", (64, 16), CMYK_WHITE)
    for index, value in enumerate((CMYK_WHITE, CMYK_BLACK, CMYK_RICH_BLACK, CMYK_RED)):
        image.paste(value, (index * 16, 0, index * 16 + 16, 16))
    return image


def patch_colours(output: Image.Image) -> list[tuple[int, int, int]]:
    return [output.getpixel((index * 16 + 8, 8)) for index in range(4)]


def remove_adobe_segment(data: bytes) -> bytes:
    """Drop the APP14 "Adobe" segment from a JPEG."""
    start = data.find(b"\xff\xee")
    assert data[start + 4 : start + 9] == b"Adobe"
    length = struct.unpack(">H", data[start + 2 : start + 4])[0]
    return data[:start] + data[start + 2 + length :]


def test_cmyk_jpeg_adobe_inverted():
    # Pillow writes CMYK JPEGs the way Photoshop does: inverted, with an Adobe APP14 segment.
    data = encode(cmyk_patches(), "JPEG", quality=95)
    assert b"Adobe" in data
    output = output_image(resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no")))
    white, black, rich_black, red = patch_colours(output)
    assert_close(white, WHITE, 12, "white")
    assert_close(black, BLACK, 12, "black")
    assert_close(rich_black, BLACK, 12, "rich black")
    assert_close(red, RED, 20, "red")


def test_cmyk_jpeg_without_adobe_marker():
    # A file without the marker stores 0 as no ink. Encode the inverted image, so that
    # Pillow's encoder inversion writes plain values, then drop the marker.
    inverted = Image.eval(cmyk_patches(), lambda value: 255 - value)
    data = remove_adobe_segment(encode(inverted, "JPEG", quality=95))
    assert b"Adobe" not in data
    assert Image.open(io.BytesIO(data)).mode == "CMYK"

    output = output_image(resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no")))
    white, black, rich_black, red = patch_colours(output)
    assert_close(white, WHITE, 12, "white")
    assert_close(black, BLACK, 12, "black")
    assert_close(rich_black, BLACK, 12, "rich black")
    assert_close(red, RED, 20, "red")


# --- CMYK with an ICC profile ------------------------------------------------------

# sRGB to XYZ (D50, Bradford-adapted), as ICC profile connection spaces use D50.
SRGB_TO_XYZ_D50 = np.array(
    [
        [0.4360747, 0.3850649, 0.1430804],
        [0.2225045, 0.7168786, 0.0606169],
        [0.0139322, 0.0971045, 0.7141733],
    ]
)
D50_WHITE = np.array([0.9642, 1.0, 0.8249])


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert sRGB values in 0-1 to CIE Lab (D50), by the sRGB (IEC 61966-2-1) and CIE 1976 formulas."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = SRGB_TO_XYZ_D50 @ linear / D50_WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def naive_cmyk_to_srgb(cmyk: np.ndarray, cyan_strength: float = 1.0) -> np.ndarray:
    cyan, magenta, yellow, black = cmyk
    return np.array([(1 - cyan * cyan_strength), (1 - magenta), (1 - yellow)]) * (1 - black)


def s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def text_description_tag(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\x00"
    return b"desc" + b"\x00" * 4 + struct.pack(">I", len(ascii_text)) + ascii_text + b"\x00" * (8 + 2 + 1 + 67)


def cmyk_icc_profile(description: str, cyan_strength: float = 1.0) -> bytes:
    """Build an ICC v2 output profile for CMYK with a 2-point A2B0 table (a lut16Type).

    The table contains the Lab colour of each of the 16 corners of the CMYK cube, computed
    from the naive conversion (1 - C)(1 - K) and so on. A ``cyan_strength`` below 1
    makes cyan ink absorb less red, which lets a test tell a profile conversion from
    Pillow's plain one.
    """
    clut = b""
    for cyan in (0, 1):  # the first input channel varies slowest
        for magenta in (0, 1):
            for yellow in (0, 1):
                for black in (0, 1):
                    rgb = naive_cmyk_to_srgb(np.array([cyan, magenta, yellow, black], dtype=float), cyan_strength)
                    lightness, a, b = srgb_to_lab(rgb)
                    # ICC v2 16-bit Lab: L 0-100 to 0-0xFF00; a and b -128-127.996 to 0-0xFFFF.
                    encoded = [lightness * 0xFF00 / 100, (a + 128) * 256, (b + 128) * 256]
                    clut += struct.pack(">3H", *(min(0xFFFF, max(0, round(value))) for value in encoded))
    identity = b"".join(s15fixed16(1.0 if row == column else 0.0) for row in range(3) for column in range(3))
    lut = (
        b"mft2" + b"\x00" * 4 + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2)
        + struct.pack(">2H", 0, 0xFFFF) * 4 + clut + struct.pack(">2H", 0, 0xFFFF) * 3
    )
    white_point = b"XYZ " + b"\x00" * 4 + b"".join(s15fixed16(value) for value in D50_WHITE)
    copyright_text = b"text" + b"\x00" * 4 + b"no copyright, test data\x00"
    tags = [(b"desc", text_description_tag(description)), (b"wtpt", white_point), (b"cprt", copyright_text), (b"A2B0", lut)]

    offset = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    body = b""
    for signature, data in tags:
        padded = data + b"\x00" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += padded
    size = offset + len(body)
    header = (
        struct.pack(">I", size) + b"\x00" * 4 + struct.pack(">I", 0x02100000) + b"prtrCMYKLab "
        + b"\x00" * 12 + b"acsp" + b"\x00" * 24 + struct.pack(">I", 0)
        + b"".join(s15fixed16(value) for value in D50_WHITE) + b"\x00" * 48
    )
    assert len(header) == 128
    return header + table + body


def test_handmade_cmyk_profile_loads():
    profile = ImageCms.ImageCmsProfile(io.BytesIO(cmyk_icc_profile("test CMYK")))
    assert ImageCms.getProfileDescription(profile).strip() == "test CMYK"


def test_cmyk_jpeg_with_icc_profile():
    data = encode(cmyk_patches(), "JPEG", quality=95, icc_profile=cmyk_icc_profile("test CMYK"))
    assert Image.open(io.BytesIO(data)).info.get("icc_profile")
    output = output_image(resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no")))
    white, black, rich_black, red = patch_colours(output)
    assert_close(white, WHITE, 12, "white")
    assert_close(black, BLACK, 12, "black")
    assert_close(rich_black, BLACK, 12, "rich black")
    assert_close(red, RED, 25, "red")


def test_cmyk_icc_profile_is_applied():
    # With a profile whose cyan ink absorbs only half of the red light, full cyan comes
    # out light blue-green; Pillow's plain CMYK conversion would give (0, 255, 255).
    profile = cmyk_icc_profile("weak cyan", cyan_strength=0.5)
    image = Image.new("CMYK", (32, 32), (255, 0, 0, 0))
    data = encode(image, "JPEG", quality=95, icc_profile=profile)
    output = output_image(resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no")))
    red, green, blue = output.getpixel((16, 16))
    assert 100 < red < 160, f"cyan came out {(red, green, blue)}"
    assert green > 235
    assert blue > 235


def test_cmyk_tiff_with_icc_profile():
    data = encode(cmyk_patches(), "TIFF", icc_profile=cmyk_icc_profile("test CMYK"))
    output = output_image(resize_image(data, "image/tiff", ResizeOptions(resize_mode="no")))
    white, black, _, red = patch_colours(output)
    assert_close(white, WHITE, 12, "white")
    assert_close(black, BLACK, 12, "black")
    assert_close(red, RED, 25, "red")


def test_mismatched_icc_profile_falls_back():
    # A CMYK profile on an RGB image cannot apply; the plain conversion is used.
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    data = encode(image, "PNG", icc_profile=cmyk_icc_profile("wrong space"))
    output = output_image(resize_image(data, "image/png", ResizeOptions(resize_mode="no")))
    assert_close(output.getpixel((16, 16)), (200, 30, 30), 10)


def system_cmyk_profiles() -> list[Path]:
    """Return CMYK ICC profiles installed on this system (Debian: icc-profiles-free, libgs-common)."""
    found = []
    for folder in SYSTEM_ICC_FOLDERS:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in (".icc", ".icm") and path.is_file():
                header = path.read_bytes()[:20]
                if header[16:20] == b"CMYK":
                    found.append(path)
    return found


def test_cmyk_jpeg_with_system_profile():
    profiles = system_cmyk_profiles()
    if not profiles:
        pytest.skip("no CMYK ICC profile installed under /usr/share/color/icc or /usr/share/ghostscript")
    data = encode(cmyk_patches(), "JPEG", quality=95, icc_profile=profiles[0].read_bytes())
    output = output_image(resize_image(data, "image/jpeg", ResizeOptions(resize_mode="no")))
    white, black, rich_black, _ = patch_colours(output)
    # Real presses print K-only black as a very dark grey, and black point
    # compensation maps the darkest ink mix to sRGB black.
    assert min(white) > 230, f"{profiles[0].name}: white came out {white}"
    assert max(black) < 70, f"{profiles[0].name}: K-only black came out {black}"
    assert max(rich_black) < 20, f"{profiles[0].name}: rich black came out {rich_black}"
