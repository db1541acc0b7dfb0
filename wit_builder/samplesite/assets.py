"""Decorative files of the sample web site: style sheet, logo, icons, spacer and tracking pixel."""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources

from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Asset:
    """A file served from memory."""

    body: bytes
    content_type: str


def _png(width: int, height: int, color: tuple[int, int, int], draw_mark: bool = False) -> bytes:
    image = Image.new("RGB", (width, height), color)
    if draw_mark:
        drawing = ImageDraw.Draw(image)
        drawing.ellipse((4, 4, height - 4, height - 4), fill=(255, 255, 255))
        drawing.rectangle((height + 4, height // 2 - 3, width - 8, height // 2 + 3), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _gif_1x1() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (1, 1), 0).save(buffer, format="GIF", transparency=0)
    return buffer.getvalue()


_LOGO_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="48" height="48" viewBox="0 0 48 48">'
    '<circle cx="24" cy="24" r="20" fill="#2a6f97"/><circle cx="24" cy="24" r="8" fill="#fff"/></svg>'
)
_RSS_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">'
    '<rect width="16" height="16" rx="3" fill="#f26522"/><circle cx="4" cy="12" r="2" fill="#fff"/></svg>'
)


def build_assets() -> dict[str, Asset]:
    """Return the decorative files keyed by URL path."""
    stylesheet = resources.files("wit_builder.samplesite").joinpath("site.css").read_bytes()
    spacer = _gif_1x1()
    return {
        "/static/site.css": Asset(stylesheet, "text/css"),
        "/static/logo.png": Asset(_png(160, 48, (42, 111, 151), draw_mark=True), "image/png"),
        "/static/logo.svg": Asset(_LOGO_SVG.encode(), "image/svg+xml"),
        "/static/icons/search.png": Asset(_png(16, 16, (80, 80, 80)), "image/png"),
        "/static/icons/camera.png": Asset(_png(24, 24, (200, 120, 40)), "image/png"),
        "/static/icons/rss.svg": Asset(_RSS_SVG.encode(), "image/svg+xml"),
        "/static/divider.png": Asset(_png(600, 8, (220, 220, 220)), "image/png"),
        "/static/spacer.gif": Asset(spacer, "image/gif"),
        "/pixel.gif": Asset(spacer, "image/gif"),
    }
