"""The decode step as a table of cases: which formats are decoded, and how every Pillow mode becomes 8-bit RGB.

Formats, identified by their leading bytes (``sniff_format``) and opened only with
the matching Pillow plugin:

=========  ======================================  =========================================
Format     Identified by                           Notes
=========  ======================================  =========================================
JPEG       FF D8 FF                                CMYK inversion follows the Adobe marker
PNG        89 50 4E 47 0D 0A 1A 0A                 APNG: the default image
GIF        GIF87a, GIF89a                          animated: the first frame
WEBP       RIFF....WEBP                            lossy, lossless, animated (first frame)
BMP        BM
TIFF       II*0, MM0*, II+0, MM0+ (BigTIFF)        first page
ICO        00 00 01 00                             the largest icon
PPM        P1 to P6, Pf (PBM, PGM, PPM, PFM)
TGA        TGA 2.0 footer, or a TGA Content-Type   TGA 1.0 has no signature
JPEG2000   FF 4F FF 51, or the JP2 signature box
AVIF       ftyp box with brand avif or avis        animated: the first frame
=========  ======================================  =========================================

HEIF/HEIC (ftyp brands heic, heix, mif1 without avif) is recognised but not decoded,
because Pillow has no HEIF decoder. SVG is recognised and rejected, because it is
vector markup that would need a renderer. Every other body is not an image.

Modes, as ``to_rgb`` converts them:

=======================  ===============================================================
Mode                     Conversion
=======================  ===============================================================
RGB, L, CMYK             through the embedded ICC profile to sRGB when there is one,
                         else Pillow's conversion (CMYK: R = (255 - C)(255 - K) / 255)
RGBA, LA                 ICC on the colour bands, then composited on white
P, PA                    palette expanded, palette alpha or tRNS composited on white
1                        black and white
RGBa, La                 un-premultiplied, then composited on white
YCbCr, HSV, RGBX         Pillow's conversion (YCbCr uses the JPEG full-range equations)
LAB                      through an ICC Lab (D50) profile to sRGB
I;16, I;16L, I;16B       value / 257
I (32-bit integer)       value / 257 when all values fit 0-65535, else scaled to the max
F (32-bit float)         value * 255 when all values fit 0-1, else as for I
=======================  ===============================================================

Transparency is composited on white because the output is JPEG, which has no alpha,
and transparent web images (logos, icons, diagrams) are usually drawn for a white page.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops, ImageCms

WHITE = (255, 255, 255)

# Leading bytes of each format, with the Pillow plugin that reads it. Restricting
# Image.open to the sniffed format keeps Pillow from trying every other plugin on
# hostile data (EPS, for one, would start Ghostscript).
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
)
_PPM_MAGIC_NUMBERS = (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"Pf")
_TGA_FOOTER = b"TRUEVISION-XFILE.\x00"
_TGA_CONTENT_TYPES = ("image/x-tga", "image/tga", "image/x-targa", "image/targa", "application/x-tga")
_AVIF_BRANDS = (b"avif", b"avis")
_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1")

#: Name that ``sniff_format`` returns for HEIF/HEIC files, which are not decoded.
HEIF = "HEIF"


def media_type(content_type: str | None) -> str:
    """Return the lower-case media type of a Content-Type header, without parameters."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def sniff_format(data: bytes, content_type: str | None = None) -> str | None:
    """Return the Pillow format name that ``data``'s leading bytes announce, ``HEIF``, or None.

    ``content_type`` matters only for TGA 1.0 files, which have no signature at all.
    """
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:2] in _PPM_MAGIC_NUMBERS and data[2:3].isspace():
        return "PPM"
    if len(data) >= 16 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return _sniff_isobmff(data)
    if data.endswith(_TGA_FOOTER) or media_type(content_type) in _TGA_CONTENT_TYPES:
        return "TGA"
    return None


def _sniff_isobmff(data: bytes) -> str | None:
    """Tell AVIF from HEIF by the major and compatible brands of the leading ftyp box."""
    box_size = int.from_bytes(data[:4], "big")
    if not 16 <= box_size <= 4096:
        return None
    ftyp = data[8:box_size]
    # The major brand, then the minor version (skipped), then the compatible brands.
    brands = {ftyp[:4]} | {ftyp[offset : offset + 4] for offset in range(8, len(ftyp) - 3, 4)}
    if brands & set(_AVIF_BRANDS):
        return "AVIF"
    if brands & set(_HEIF_BRANDS):
        return HEIF
    return None


def is_svg(data: bytes, content_type: str | None) -> bool:
    """Return whether the body is an SVG document, by Content-Type or by its markup."""
    if media_type(content_type) == "image/svg+xml":
        return True
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<svg"):
        return True
    # An XML declaration or comment may come first. XHTML pages with inline SVG stay HTML.
    return head.startswith((b"<?xml", b"<!--", b"<!doctype svg")) and b"<svg" in head and b"<html" not in head


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


def is_cut_short(data: bytes, image_format: str) -> bool:
    """Return whether the container shows that ``data`` ends before the file does.

    Used to tell a truncated download from a corrupt file once decoding has failed.
    Returns False for formats without an end marker or a length field (TIFF, ICO,
    PPM, TGA, JPEG2000), so their cuts count as truncated only when Pillow's error
    message contains "truncated".
    """
    if image_format == "JPEG":
        return _jpeg_cut_short(data)
    if image_format == "PNG":
        return b"IEND" not in data[-16:]
    if image_format == "GIF":
        return not data.rstrip(b"\x00").endswith(b";")
    if image_format == "WEBP":
        return len(data) < 8 + int.from_bytes(data[4:8], "little")
    if image_format == "BMP":
        declared = int.from_bytes(data[2:6], "little") if len(data) >= 6 else 14
        return len(data) < declared
    if image_format in ("AVIF", HEIF):
        return _isobmff_cut_short(data)
    return False


def _jpeg_cut_short(data: bytes) -> bool:
    """Return whether a JPEG lacks its end: a header segment past the end, or no EOI after the scan.

    The header segments are walked one by one, so an EXIF thumbnail (a whole JPEG
    inside APP1) does not count. Data after the EOI marker is allowed, because
    phones append videos (motion photos) and MPO files append more pictures there.
    """
    offset = 2  # after SOI
    while True:
        if offset + 4 > len(data):
            return True
        if data[offset] != 0xFF:
            return False  # corrupt rather than cut
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        if offset + 2 + length > len(data):
            return True
        offset += 2 + length
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            # Entropy-coded data cannot contain FF D9, because an FF there is
            # followed by 00 or a restart marker.
            return data.find(b"\xff\xd9", offset) < 0


def _isobmff_cut_short(data: bytes) -> bool:
    """Return whether the last top-level ISO BMFF box extends past the end of ``data``."""
    offset = 0
    while offset < len(data):
        if offset + 8 > len(data):
            return True
        size = int.from_bytes(data[offset : offset + 4], "big")
        if size == 1:
            if offset + 16 > len(data):
                return True
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        elif size == 0:
            return False  # the box runs to the end of the file
        if size < 8:
            return False  # corrupt rather than cut
        offset += size
    return offset > len(data)


def fix_jpeg_cmyk(image: Image.Image) -> Image.Image:
    """Undo Pillow's inversion of CMYK JPEGs that carry no Adobe APP14 marker.

    Photoshop stores CMYK JPEGs inverted (0 means full ink) and marks them with an
    Adobe APP14 segment. Pillow 13 assumes that convention for every CMYK JPEG, so a
    file without the marker, which stores 0 as no ink, would come out as a negative.
    """
    if image.mode != "CMYK" or image.format not in ("JPEG", "MPO") or "adobe" in image.info:
        return image
    return ImageChops.invert(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert an image of any Pillow mode to 8-bit sRGB, compositing transparency on white.

    The mode table in the module docstring lists each conversion.
    """
    converter = _MODE_CONVERTERS.get(image.mode)
    if converter is not None:
        image = converter(image)

    if image.mode in ("RGB", "RGBA", "L", "LA", "CMYK"):
        image = _apply_icc_profile(image)

    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _high_depth_to_8bit(image: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit integer or float grayscale image to mode L (LA with tRNS)."""
    values = np.asarray(image, dtype=np.float64)
    finite = values[np.isfinite(values)]
    peak = float(finite.max()) if finite.size else 0.0
    floor = float(finite.min()) if finite.size else 0.0

    if image.mode.startswith("I;16"):
        divisor = 257.0
    elif image.mode == "F" and floor >= 0.0 and peak <= 1.0:
        divisor = 1.0 / 255.0
    elif peak <= 65535.0:
        # Pillow opens 16-bit PPM/PGM files as mode I with values in 0-65535.
        divisor = 257.0
    else:
        # NOTE: 32-bit integer and float data has no standard range, so the image is
        # stretched to its own maximum. An HDR image with a few bright highlights
        # comes out darker than intended.
        divisor = peak / 255.0

    scaled = np.nan_to_num(values / divisor, nan=0.0, posinf=255.0, neginf=0.0)
    gray = Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")
    gray.info = {key: value for key, value in image.info.items() if key != "transparency"}

    # A PNG tRNS chunk names one 16-bit gray value as transparent.
    transparent = image.info.get("transparency")
    if isinstance(transparent, int):
        alpha = np.where(values == transparent, 0, 255).astype(np.uint8)
        gray = Image.merge("LA", (gray, Image.fromarray(alpha, mode="L")))
    return gray


_LAB_PROFILE: ImageCms.ImageCmsProfile | None = None
_SRGB_PROFILE: ImageCms.ImageCmsProfile | None = None


def _srgb_profile() -> ImageCms.ImageCmsProfile:
    global _SRGB_PROFILE
    if _SRGB_PROFILE is None:
        _SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB_PROFILE


def _lab_to_srgb(image: Image.Image) -> Image.Image:
    """Convert mode LAB (L 0-255 for 0-100, a and b offset by 128, D50) to sRGB."""
    global _LAB_PROFILE
    if _LAB_PROFILE is None:
        _LAB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB"))
    return ImageCms.profileToProfile(image, _LAB_PROFILE, _srgb_profile(), outputMode="RGB")


def _apply_icc_profile(image: Image.Image) -> Image.Image:
    """Convert the colour bands through the embedded ICC profile to sRGB and keep any alpha band.

    Returns the image unchanged when it has no profile, an sRGB profile, or a profile
    that does not fit its mode (then Pillow's plain conversion follows).
    """
    icc = image.info.get("icc_profile")
    if not icc:
        return image
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA") else None
    colour = image.convert(image.mode[:-1]) if alpha is not None else image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(source) or ""
        if colour.mode == "RGB" and "srgb" in description.lower():
            return image
        # Black point compensation maps the profile's darkest colour to sRGB black, so
        # that a print (CMYK) black does not turn into a dark grey.
        converted = ImageCms.profileToProfile(
            colour, source, _srgb_profile(), outputMode="RGB", flags=ImageCms.Flags.BLACKPOINTCOMPENSATION
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image
    if converted is None:
        return image
    if alpha is not None:
        converted.putalpha(alpha)
    return converted


def _expand_palette(image: Image.Image) -> Image.Image:
    return image.convert("RGBA" if image.has_transparency_data else "RGB")


_MODE_CONVERTERS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "I;16": _high_depth_to_8bit,
    "I;16L": _high_depth_to_8bit,
    "I;16B": _high_depth_to_8bit,
    "I;16N": _high_depth_to_8bit,
    "I": _high_depth_to_8bit,
    "F": _high_depth_to_8bit,
    "LAB": _lab_to_srgb,
    "P": _expand_palette,
    "PA": _expand_palette,
    "RGBa": lambda image: image.convert("RGBA"),
    "La": lambda image: image.convert("LA"),
}
