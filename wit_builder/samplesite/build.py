"""Generate a small photo club web site from captioned photos, with its ground truth.

The site looks like a real one to a crawler: an index page links to topic galleries with
pagination and breadcrumbs, each photo has its own page, and language pages show short
German, French and Spanish captions. Every photo appears in a gallery with at least one of
its human captions as alt text, title or figcaption.

Real-page noise is part of the design. There are decorative images with texts such as "logo"
and "icon", SVG images, 1x1 spacer and tracking images, and lazy-loaded and srcset-only images.
The same photo appears under several URLs. Some links and images return 404, one URL redirects,
and robots.txt disallows the ``/private/`` folder, whose pages contain captioned photos.
"""

from __future__ import annotations

import html
import posixpath
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from wit_builder.records import TextSource
from wit_builder.samplesite.assets import Asset, build_assets
from wit_builder.samplesite.content import (
    LANGUAGE_TITLES,
    SECTIONS,
    Section,
    load_captions,
    photo_concepts,
    section_for,
    translation_for,
)

SITE_NAME = "Lakeside Photo Club"
DISALLOWED_PREFIX = "/private/"

#: Generic alt texts of real pages that do not describe the photo.
GENERIC_ALTS = ("image", "photo", "picture", "thumbnail", "img")

#: Placeholder that lazy-loading scripts replace with ``data-src``.
PLACEHOLDER_SRC = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

#: Links on every page that return 404.
BROKEN_FOOTER_LINKS = ("/contact.html", "/archive/2019/", "/feed.xml")

EXTERNAL_LINK = "https://example.org/photo-club-network"


@dataclass(frozen=True)
class Appearance:
    """One (image URL path, text) pair that the extractor should find on a page.

    ``kind`` is ``caption`` (a human caption of the photo), ``translation`` (a phrase in
    another language), ``generic`` (text such as "image" or a section name), ``decorative``
    (logo and icons) or ``broken_image`` (a caption whose image URL returns 404).
    """

    page: str
    image: str
    photo: str | None
    text: str
    text_source: str
    language: str
    kind: str


@dataclass
class Site:
    """Pages, files and ground truth of a generated site. All keys are URL paths."""

    pages: dict[str, str]
    images: dict[str, Path]
    assets: dict[str, Asset]
    robots_txt: str
    redirects: dict[str, str]
    appearances: list[Appearance]
    captions: dict[str, list[str]]
    sections: dict[str, list[str]]
    links: dict[str, list[str]]
    depths: dict[str, int]
    broken_links: list[str]
    disallowed_prefix: str = DISALLOWED_PREFIX

    @property
    def photos(self) -> list[str]:
        """File names of the photos on the site."""
        return sorted(self.captions)

    def photo_for_path(self, path: str) -> str | None:
        """Return the photo file name served under a URL path, or None."""
        file = self.images.get(path)
        return file.name if file is not None else None

    def is_disallowed(self, path: str) -> bool:
        """Return whether robots.txt disallows a URL path."""
        return path.startswith(self.disallowed_prefix)

    def public_pages(self) -> list[str]:
        """Return the paths of pages that robots.txt allows."""
        return sorted(path for path in self.pages if not self.is_disallowed(path))


def relative_reference(page: str, target: str) -> str:
    """Return the relative URL reference from ``page`` to ``target`` (both URL paths)."""
    directory = page if page.endswith("/") else posixpath.dirname(page) + "/"
    reference = posixpath.relpath(target, directory)
    if target.endswith("/"):
        reference = "./" if reference == "." else reference + "/"
    return reference


def photo_urls(photo: str) -> dict[str, str]:
    """Return the URL paths that serve one photo, by variant name."""
    stem = Path(photo).stem
    return {
        "img": f"/img/{stem}.jpg",
        "large": f"/media/{stem}-large.jpg",
        "w320": f"/media/{stem}-320w.jpg",
        "w640": f"/media/{stem}-640w.jpg",
        "private": f"{DISALLOWED_PREFIX}img/{stem}.jpg",
    }


def photo_page(photo: str) -> str:
    return f"/photos/{Path(photo).stem}.html"


def section_page(slug: str, number: int) -> str:
    return f"/{slug}/" if number == 1 else f"/{slug}/page/{number}/"


class _Page:
    """An HTML page under construction that records its links and expected candidates."""

    def __init__(self, path: str, title: str, language: str = "en", root_base: bool = False):
        self.path = path
        self.title = title
        self.language = language
        self.root_base = root_base
        self.links: list[str] = []
        self.appearances: list[Appearance] = []
        self.body: list[str] = []
        self.html = ""

    def ref(self, target: str) -> str:
        """Return a reference to a URL path as this page writes it: relative to its base."""
        if self.root_base:
            return target.lstrip("/") or "./"
        return relative_reference(self.path, target)

    def link(self, target: str, text: str, absolute: bool = False, rel: str | None = None) -> str:
        self.links.append(target)
        reference = target if absolute else self.ref(target)
        rel_attribute = f' rel="{rel}"' if rel else ""
        return f'<a href="{html.escape(reference)}"{rel_attribute}>{html.escape(text)}</a>'

    def expect(self, image: str, photo: str | None, text: str, source: TextSource, kind: str, language: str | None = None) -> None:
        self.appearances.append(
            Appearance(self.path, image, photo, text, source.value, language or self.language, kind)
        )


def _attribute(text: str) -> str:
    return html.escape(text, quote=True)


class _SiteBuilder:
    def __init__(self, captions: dict[str, list[str]], seed: int, per_page: int, related: int):
        self.captions = captions
        self.rng = random.Random(seed)
        self.per_page = per_page
        self.related = related
        self.pages: list[_Page] = []
        self.broken_links: set[str] = set(BROKEN_FOOTER_LINKS)
        self.concepts = {photo: photo_concepts(texts) for photo, texts in captions.items()}
        self.sections: dict[str, list[str]] = {section.slug: [] for section in SECTIONS}
        self.section_of: dict[str, Section] = {}

    # Layout shared by all pages.

    def header(self, page: _Page) -> str:
        logo = "/static/logo.png"
        search_icon = "/static/icons/search.png"
        page.expect(logo, None, "logo", TextSource.ALT, "decorative", language="en")
        page.expect(search_icon, None, "icon", TextSource.ALT, "decorative", language="en")
        navigation = "".join(
            f"<li>{page.link(section_page(section.slug, 1), section.title, absolute=True)}</li>"
            for section in SECTIONS
            if self.sections[section.slug]
        )
        return (
            '<header class="site-header">\n'
            f'  <a class="brand" href="{page.ref("/")}"><img src="{page.ref(logo)}" alt="logo" width="160" height="48"></a>\n'
            f'  <img src="/static/logo.svg" alt="{SITE_NAME}" width="48" height="48">\n'
            f'  <nav class="main-nav"><ul>{navigation}</ul></nav>\n'
            '  <form class="search" action="/search" method="get"><input name="q" type="search" placeholder="Search photos">'
            f'<button type="submit"><img src="{search_icon}" alt="icon" width="16" height="16"></button></form>\n'
            "</header>\n"
        )

    def breadcrumb(self, page: _Page, trail: list[tuple[str, str | None]]) -> str:
        items = []
        for text, target in trail:
            if target is None:
                items.append(f'<li aria-current="page">{html.escape(text)}</li>')
            else:
                items.append(f"<li>{page.link(target, text)}</li>")
        return f'<nav class="breadcrumb" aria-label="Breadcrumb"><ol>{"".join(items)}</ol></nav>\n'

    def footer(self, page: _Page) -> str:
        links = [
            page.link("/about.html", "About us", absolute=True),
            page.link("/contact.html", "Contact", absolute=True),
            page.link("/archive/2019/", "2019 archive", absolute=True),
            page.link(DISALLOWED_PREFIX, "Members area", absolute=True),
            page.link(EXTERNAL_LINK, "Photo club network", absolute=True, rel="external"),
            '<a href="mailto:info@example.org">Write to us</a>',
            '<a href="#top">Back to top</a>',
        ]
        page.links.append("/feed.xml")
        return (
            '<img class="divider" src="/static/divider.png" alt="" width="600" height="8">\n'
            "<footer>\n"
            f'  <ul>{"".join(f"<li>{link}</li>" for link in links)}</ul>\n'
            '  <a href="/feed.xml"><img src="/static/icons/rss.svg" alt="RSS feed" width="16" height="16"></a>\n'
            '  <img src="/static/spacer.gif" width="1" height="1" alt="spacer">\n'
            f'  <img class="pixel" src="/pixel.gif?page={html.escape(page.path)}" width="1" height="1" alt="">\n'
            f"  <p>&copy; 2024 {SITE_NAME}. Photos from the Flickr8k data set.</p>\n"
            "</footer>\n"
        )

    def render(self, page: _Page, trail: list[tuple[str, str | None]] | None = None) -> str:
        header = self.header(page)
        crumbs = self.breadcrumb(page, trail) if trail else ""
        footer = self.footer(page)
        base = '<base href="/">\n' if page.root_base else ""
        return (
            "<!DOCTYPE html>\n"
            f'<html lang="{page.language}">\n'
            "<head>\n"
            '<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"{base}"
            f"<title>{html.escape(page.title)} · {SITE_NAME}</title>\n"
            f'<link rel="stylesheet" href="{page.ref("/static/site.css")}">\n'
            "</head>\n"
            '<body id="top">\n'
            f"{header}{crumbs}"
            f"<main>\n<h1>{html.escape(page.title)}</h1>\n{''.join(page.body)}</main>\n"
            f"{footer}"
            "</body>\n</html>\n"
        )

    # Gallery cards: each shows one photo with at least one real caption.

    def card(self, page: _Page, photo: str) -> str:
        urls = photo_urls(photo)
        first, second = self.rng.sample(self.captions[photo], 2)
        link = page.ref(photo_page(photo))
        page.links.append(photo_page(photo))
        variant = self.rng.choice(("figure", "figure", "srcset", "lazy", "picture", "title", "generic"))

        if variant == "figure":
            page.expect(urls["img"], photo, first, TextSource.ALT, "caption")
            page.expect(urls["img"], photo, second, TextSource.FIGCAPTION, "caption")
            return (
                f'<figure class="card"><a href="{link}"><img src="{page.ref(urls["img"])}" alt="{_attribute(first)}" '
                f'width="224" height="224"></a><figcaption>{html.escape(second)}</figcaption></figure>\n'
            )
        if variant == "srcset":
            page.expect(urls["w640"], photo, first, TextSource.ALT, "caption")
            srcset = f'{page.ref(urls["w320"])} 320w, {page.ref(urls["w640"])} 640w'
            return (
                f'<div class="card"><a href="{link}"><img srcset="{srcset}" sizes="(max-width: 600px) 320px, 640px" '
                f'alt="{_attribute(first)}"></a></div>\n'
            )
        if variant == "lazy":
            page.expect(urls["large"], photo, first, TextSource.ALT, "caption")
            page.expect(urls["large"], photo, second, TextSource.TITLE, "caption")
            large = page.ref(urls["large"])
            return (
                f'<div class="card"><a href="{link}"><img class="lazyload" src="{PLACEHOLDER_SRC}" data-src="{large}" '
                f'alt="{_attribute(first)}" title="{_attribute(second)}" loading="lazy">'
                f'<noscript><img src="{large}" alt="{_attribute(first)}"></noscript></a></div>\n'
            )
        if variant == "picture":
            page.expect(urls["large"], photo, first, TextSource.ALT, "caption")
            page.expect(urls["large"], photo, second, TextSource.FIGCAPTION, "caption")
            srcset = f'{page.ref(urls["w640"])} 1x, {page.ref(urls["large"])} 2x'
            return (
                f'<figure class="card"><a href="{link}"><picture><source media="(min-width: 800px)" srcset="{srcset}">'
                f'<img alt="{_attribute(first)}"></picture></a><figcaption>{html.escape(second)}</figcaption></figure>\n'
            )
        if variant == "title":
            page.expect(urls["img"], photo, first, TextSource.TITLE, "caption")
            return (
                f'<div class="card"><a href="{link}"><img src="{page.ref(urls["img"])}" alt="" title="{_attribute(first)}" '
                'width="224" height="224"></a></div>\n'
            )
        generic = self.rng.choice(GENERIC_ALTS)
        page.expect(urls["large"], photo, generic, TextSource.ALT, "generic")
        page.expect(urls["large"], photo, first, TextSource.FIGCAPTION, "caption")
        return (
            f'<figure class="card"><a href="{link}"><img src="{page.ref(urls["large"])}" alt="{generic}"></a>'
            f"<figcaption>{html.escape(first)}</figcaption></figure>\n"
        )

    # Pages.

    def assign_sections(self) -> None:
        for photo in self.captions:
            section = section_for(self.concepts[photo])
            self.section_of[photo] = section
            self.sections[section.slug].append(photo)
        for photos in self.sections.values():
            self.rng.shuffle(photos)

    def build_sections(self) -> None:
        for section in SECTIONS:
            photos = self.sections[section.slug]
            page_count = max(1, -(-len(photos) // self.per_page))
            if not photos:
                continue
            for number in range(1, page_count + 1):
                path = section_page(section.slug, number)
                title = section.title if number == 1 else f"{section.title}, page {number}"
                page = _Page(path, title)
                chunk = photos[(number - 1) * self.per_page : number * self.per_page]
                page.body.append(f'<p class="intro">{len(photos)} photos from our members.</p>\n<div class="gallery">\n')
                page.body.extend(self.card(page, photo) for photo in chunk)
                page.body.append("</div>\n")
                page.body.append(self.pagination(page, section.slug, number, page_count))
                trail = [("Home", "/"), (section.title, None if number == 1 else section_page(section.slug, 1))]
                if number > 1:
                    trail.append((f"Page {number}", None))
                self.pages.append(page)
                page.html = self.render(page, trail)

    def pagination(self, page: _Page, slug: str, number: int, page_count: int) -> str:
        if page_count == 1:
            return ""
        items = []
        if number > 1:
            items.append(page.link(section_page(slug, number - 1), "‹ Previous", rel="prev"))
        for other in range(1, page_count + 1):
            if other == number:
                items.append(f'<span aria-current="page">{other}</span>')
            else:
                items.append(page.link(section_page(slug, other), str(other)))
        if number < page_count:
            items.append(page.link(section_page(slug, number + 1), "Next ›", rel="next"))
        return f'<nav class="pagination">{" ".join(items)}</nav>\n'

    def build_photo_pages(self) -> None:
        for photo, captions in self.captions.items():
            section = self.section_of[photo]
            page = _Page(photo_page(photo), captions[0].rstrip(" ."))
            large = photo_urls(photo)["large"]
            main, caption = self.rng.sample(captions, 2)
            page.expect(large, photo, main, TextSource.ALT, "caption")
            page.expect(large, photo, caption, TextSource.FIGCAPTION, "caption")
            page.body.append(
                f'<figure class="photo"><img src="{page.ref(large)}" alt="{_attribute(main)}" width="224" height="224">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>\n"
                f'<ul class="details"><li>Section: {page.link(section_page(section.slug, 1), section.title)}</li>'
                f"<li>Size: 224 × 224 pixels</li></ul>\n"
            )
            page.body.append(self.related_strip(page, photo, section))
            # Some breadcrumbs link to the section without its trailing slash, which the server redirects.
            section_target = f"/{section.slug}" if self.rng.random() < 0.3 else section_page(section.slug, 1)
            trail = [("Home", "/"), (section.title, section_target), (page.title, None)]
            self.pages.append(page)
            page.html = self.render(page, trail)

    def related_strip(self, page: _Page, photo: str, section: Section) -> str:
        others = [other for other in self.sections[section.slug] if other != photo]
        chosen = self.rng.sample(others, min(self.related, len(others)))
        items = []
        for other in chosen:
            thumbnail = photo_urls(other)["img"]
            text = self.rng.choice(self.captions[other])
            page.expect(thumbnail, other, text, TextSource.ALT, "caption")
            items.append(
                f'<a href="{page.ref(photo_page(other))}"><img src="{PLACEHOLDER_SRC}" data-src="{page.ref(thumbnail)}" '
                f'alt="{_attribute(text)}" loading="lazy"></a>'
            )
            page.links.append(photo_page(other))

        if self.rng.random() < 0.1:
            missing = f"{self.rng.getrandbits(40):010x}"
            missing_page = f"/photos/{missing}.html"
            missing_image = f"/img/{missing}.jpg"
            text = self.rng.choice(self.captions[photo])
            self.broken_links.add(missing_page)
            page.expect(missing_image, None, text, TextSource.ALT, "broken_image")
            page.links.append(missing_page)
            items.append(f'<a href="{page.ref(missing_page)}"><img src="{page.ref(missing_image)}" alt="{_attribute(text)}"></a>')

        if not items:
            return ""
        return f'<section class="related"><h2>More photos like this</h2>{"".join(items)}</section>\n'

    def build_index(self, featured: str) -> None:
        page = _Page("/", "Photos from our members")
        urls = photo_urls(featured)
        caption = self.rng.choice(self.captions[featured])
        page.expect(urls["img"], featured, caption, TextSource.FIGCAPTION, "caption")
        page.links.append(photo_page(featured))
        page.body.append(
            f'<figure class="featured"><a href="{page.ref(photo_page(featured))}"><img src="{page.ref(urls["img"])}" alt="" '
            f'width="224" height="224"></a><figcaption>{html.escape(caption)}</figcaption></figure>\n'
            '<h2>Galleries</h2>\n<div class="gallery">\n'
        )
        for section in SECTIONS:
            photos = self.sections[section.slug]
            if not photos:
                continue
            cover = photo_urls(photos[0])["w320"]
            page.expect(cover, photos[0], section.title, TextSource.ALT, "generic")
            page.links.append(section_page(section.slug, 1))
            page.body.append(
                f'<div class="card"><a href="{page.ref(section_page(section.slug, 1))}"><img src="{page.ref(cover)}" '
                f'alt="{_attribute(section.title)}" width="320" height="320"></a>'
                f"<p>{html.escape(section.title)} ({len(photos)} photos)</p></div>\n"
            )
        page.body.append("</div>\n<h2>In other languages</h2>\n<ul>")
        for language, title in LANGUAGE_TITLES.items():
            page.body.append(f"<li>{page.link(f'/{language}/', title)}</li>")
        page.body.append("</ul>\n")
        self.pages.append(page)
        page.html = self.render(page)

    def build_language_pages(self) -> None:
        for language, title in LANGUAGE_TITLES.items():
            page = _Page(f"/{language}/", title, language=language, root_base=True)
            translated = [(photo, translation_for(self.concepts[photo], language)) for photo in self.captions]
            translated = [(photo, phrase) for photo, phrase in translated if phrase]
            chosen = self.rng.sample(translated, min(self.per_page, len(translated)))
            page.body.append('<div class="gallery">\n')
            for photo, phrase in chosen:
                image = photo_urls(photo)["img"]
                source = TextSource.ALT if self.rng.random() < 0.7 else TextSource.TITLE
                alt = phrase if source is TextSource.ALT else ""
                title_attribute = f' title="{_attribute(phrase)}"' if source is TextSource.TITLE else ""
                page.expect(image, photo, phrase, source, "translation")
                page.links.append(photo_page(photo))
                page.body.append(
                    f'<div class="card"><a href="{page.ref(photo_page(photo))}"><img src="{page.ref(image)}" '
                    f'alt="{_attribute(alt)}"{title_attribute} width="224" height="224"></a></div>\n'
                )
            page.body.append("</div>\n")
            self.pages.append(page)
            page.html = self.render(page, [("Home", "/"), (title, None)])

    def build_about_page(self) -> None:
        page = _Page("/about.html", "About us")
        camera = "/static/icons/camera.png"
        page.expect(camera, None, "camera icon", TextSource.ALT, "decorative")
        page.body.append(
            f'<p><img src="{page.ref(camera)}" alt="camera icon" width="24" height="24"> '
            f"{SITE_NAME} shares photos taken by its members. "
            f"Our old home page {page.link('/home.html', 'still works')}.</p>\n"
        )
        self.pages.append(page)
        page.html = self.render(page, [("Home", "/"), ("About us", None)])

    def build_private_pages(self, photos: list[str]) -> None:
        index = _Page(DISALLOWED_PREFIX, "Members area")
        drafts = _Page(f"{DISALLOWED_PREFIX}drafts.html", "Drafts")
        index.body.append(f"<p>Photos waiting for review: {index.link(drafts.path, 'drafts')}.</p>\n")
        for page, chunk in ((index, photos[: len(photos) // 2]), (drafts, photos[len(photos) // 2 :])):
            for photo in chunk:
                image = photo_urls(photo)["private"]
                text = self.rng.choice(self.captions[photo])
                page.expect(image, photo, text, TextSource.ALT, "caption")
                page.body.append(f'<img src="{page.ref(image)}" alt="{_attribute(text)}" width="224" height="224">\n')
            self.pages.append(page)
            page.html = self.render(page, [("Home", "/"), (page.title, None)])


def _link_depths(pages: dict[str, list[str]], redirects: dict[str, str], start: str = "/") -> dict[str, int]:
    """Return the number of links from ``start`` to each page that can be reached."""
    depths = {start: 0}
    queue = deque([start])
    while queue:
        path = queue.popleft()
        for target in pages.get(path, ()):
            target = redirects.get(target, target)
            if target in pages and target not in depths:
                depths[target] = depths[path] + 1
                queue.append(target)
    return depths


def build_site(
    images_dir: str | Path,
    captions_csv: str | Path,
    seed: int = 0,
    photos: int | None = None,
    per_page: int = 12,
    related: int = 3,
    private_photos: int = 6,
) -> Site:
    """Generate the site from the photos in ``images_dir`` and their captions.

    ``photos`` limits the site to a seeded sample of that many photos (all when None).
    ``per_page`` sets the photos per gallery page and ``related`` the thumbnails on each
    photo page. The same arguments always produce the same site.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"photo folder not found: {images_dir}")
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, got {per_page}")
    all_captions = load_captions(captions_csv)
    available = sorted(name for name, texts in all_captions.items() if len(texts) >= 2 and (images_dir / name).is_file())
    if not available:
        raise ValueError(f"no photo of {captions_csv} with two or more captions exists in {images_dir}")

    rng = random.Random(seed)
    if photos is not None:
        if photos < 1:
            raise ValueError(f"photos must be at least 1, got {photos}")
        available = sorted(rng.sample(available, min(photos, len(available))))
    captions = {name: all_captions[name] for name in available}

    builder = _SiteBuilder(captions, seed=rng.randrange(2**32), per_page=per_page, related=related)
    builder.assign_sections()
    builder.build_index(featured=builder.rng.choice(available))
    builder.build_sections()
    builder.build_photo_pages()
    builder.build_language_pages()
    builder.build_about_page()
    builder.build_private_pages(builder.rng.sample(available, min(private_photos, len(available))))

    images: dict[str, Path] = {}
    for name in available:
        for url in photo_urls(name).values():
            images[url] = images_dir / name

    redirects = {"/home.html": "/"}
    redirects.update({f"/{section.slug}": section_page(section.slug, 1) for section in SECTIONS if builder.sections[section.slug]})
    pages = {page.path: page.html for page in builder.pages}
    links = {page.path: list(dict.fromkeys(page.links)) for page in builder.pages}
    return Site(
        pages=pages,
        images=images,
        assets=build_assets(),
        robots_txt=(
            f"# robots.txt of {SITE_NAME}\n"
            "User-agent: *\n"
            f"Disallow: {DISALLOWED_PREFIX}\n"
            "\n"
            "User-agent: BadBot\n"
            "Disallow: /\n"
        ),
        redirects=redirects,
        appearances=[appearance for page in builder.pages for appearance in page.appearances],
        captions=captions,
        sections={slug: list(photos) for slug, photos in builder.sections.items() if photos},
        links=links,
        depths=_link_depths(links, redirects),
        broken_links=sorted(builder.broken_links),
    )
