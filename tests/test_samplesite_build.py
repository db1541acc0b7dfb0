"""The generated sample web site: ground truth, noise and the server."""

from __future__ import annotations

import collections
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from wit_builder.harvest.extract import extract_page
from wit_builder.samplesite import build_site, serve_site
from wit_builder.samplesite.build import relative_reference
from wit_builder.samplesite.content import TRANSLATIONS

PHOTOS = 60


@pytest.fixture(scope="module")
def site(samples_dir):
    flickr = samples_dir / "flickr8k"
    return build_site(flickr / "images", flickr / "captions.csv", seed=0, photos=PHOTOS)


@pytest.fixture(scope="module")
def served(site):
    """The site on a loopback port, with the log of requested paths."""
    request_log: list[str] = []
    with serve_site(site, request_log) as server:
        yield server, request_log


@pytest.fixture()
def http():
    session = requests.Session()
    session.trust_env = False  # never send loopback requests through a proxy from the environment
    with session:
        yield session


def expected_pairs(site, page):
    return {(a.image, a.text, a.text_source) for a in site.appearances if a.page == page}


def test_same_seed_builds_same_site(samples_dir, site):
    flickr = samples_dir / "flickr8k"
    again = build_site(flickr / "images", flickr / "captions.csv", seed=0, photos=PHOTOS)
    other = build_site(flickr / "images", flickr / "captions.csv", seed=1, photos=PHOTOS)

    assert again.pages == site.pages
    assert again.appearances == site.appearances
    assert other.pages != site.pages


def test_extraction_matches_ground_truth_on_every_page(site):
    for path, html in site.pages.items():
        extraction = extract_page(html, f"http://127.0.0.1:8000{path}", "crawl")
        found = {(urlsplit(c.url).path, c.text, c.text_source) for c in extraction.candidates}
        assert found == expected_pairs(site, path), path


def test_every_photo_has_a_public_caption(site):
    for photo in site.photos:
        captions = {
            a.text
            for a in site.appearances
            if a.photo == photo and a.kind == "caption" and not site.is_disallowed(a.page)
        }
        assert captions, photo
        assert captions <= set(site.captions[photo]), photo


def test_every_bundled_photo_used_without_limit(samples_dir):
    flickr = samples_dir / "flickr8k"
    full = build_site(flickr / "images", flickr / "captions.csv", seed=0)
    with_caption = {a.photo for a in full.appearances if a.kind == "caption" and not full.is_disallowed(a.page)}

    assert len(full.photos) == 1000
    assert with_caption == set(full.photos)


def test_all_pages_reachable_from_index(site):
    assert set(site.depths) == set(site.pages)
    assert site.depths["/"] == 0
    assert max(site.depths.values()) >= 2


def test_noise_present(site):
    kinds = collections.Counter(a.kind for a in site.appearances)
    languages = {a.language for a in site.appearances if a.kind == "translation"}
    texts = {a.text for a in site.appearances}
    index = site.pages["/"]

    assert kinds["decorative"] > 0
    assert kinds["generic"] > 0
    assert kinds["broken_image"] > 0
    assert {"logo", "icon"} <= texts
    assert languages == set(TRANSLATIONS)
    assert 'width="1" height="1"' in index
    assert ".svg" in index
    assert "data-src=" in "".join(site.pages.values())
    assert "srcset=" in "".join(site.pages.values())
    assert "<figcaption>" in index


def test_same_photo_under_several_urls(site):
    urls_per_photo = collections.defaultdict(set)
    for appearance in site.appearances:
        if appearance.photo:
            urls_per_photo[appearance.photo].add(appearance.image)

    assert max(len(urls) for urls in urls_per_photo.values()) >= 3
    for urls in urls_per_photo.values():
        assert len({site.photo_for_path(url) for url in urls}) == 1


def test_private_folder_has_captioned_images(site):
    private = [a for a in site.appearances if site.is_disallowed(a.page)]
    assert len(private) >= 2
    assert all(a.image.startswith(site.disallowed_prefix) for a in private if a.kind == "caption")
    assert "Disallow: /private/" in site.robots_txt


@pytest.mark.parametrize(
    "page, target, reference",
    [
        ("/", "/img/a.jpg", "img/a.jpg"),
        ("/dogs/", "/img/a.jpg", "../img/a.jpg"),
        ("/dogs/page/2/", "/dogs/", "../../"),
        ("/photos/a.html", "/media/a-large.jpg", "../media/a-large.jpg"),
        ("/dogs/", "/dogs/", "./"),
        ("/photos/a.html", "/", "../"),
    ],
)
def test_relative_reference(page, target, reference):
    assert relative_reference(page, target) == reference
    assert urljoin(f"http://h{page}", reference) == f"http://h{target}"


def test_server_pages_images_and_errors(site, served, http):
    server, request_log = served
    base = server.base_url
    photo = site.photos[0]
    image_path = next(a.image for a in site.appearances if a.photo == photo)

    page = http.get(urljoin(base, "/"), timeout=10)
    image = http.get(urljoin(base, image_path), timeout=10)
    robots = http.get(urljoin(base, "/robots.txt"), timeout=10)
    missing = http.get(urljoin(base, "/contact.html"), timeout=10)
    redirect = http.get(urljoin(base, "/home.html"), timeout=10, allow_redirects=False)
    pixel = http.get(urljoin(base, "/pixel.gif?page=/"), timeout=10)

    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.text == site.pages["/"]
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/jpeg"
    assert image.content == site.images[image_path].read_bytes()
    assert robots.text == site.robots_txt
    assert missing.status_code == 404
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == "/"
    assert pixel.headers["Content-Type"] == "image/gif"
    assert "/pixel.gif?page=/" in request_log


def test_build_site_rejects_bad_arguments(samples_dir, tmp_path):
    flickr = samples_dir / "flickr8k"
    with pytest.raises(FileNotFoundError, match="photo folder not found"):
        build_site(tmp_path / "none", flickr / "captions.csv")
    with pytest.raises(FileNotFoundError, match="captions file not found"):
        build_site(flickr / "images", tmp_path / "none.csv")
    with pytest.raises(ValueError, match="no photo"):
        build_site(tmp_path, flickr / "captions.csv")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("file,text\na.jpg,hello\n")
    with pytest.raises(ValueError, match="image,caption"):
        build_site(flickr / "images", bad_csv)
