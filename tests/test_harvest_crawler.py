"""The crawler against real aiohttp servers on 127.0.0.1: the sample site and a small site.

These tests use ``crawl``, which writes one parquet file, as the pipeline runner calls it.
"""

from __future__ import annotations

import collections
import json
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from test_harvest_crawler_sites import local_config

from wit_builder.harvest.crawler import CrawlConfig, crawl
from wit_builder.localserver import BackgroundServer
from wit_builder.parquet import list_parts, read_records
from wit_builder.records import Candidate
from wit_builder.samplesite import build_site, serve_site

PHOTOS = 60


@pytest.fixture(scope="module")
def site(samples_dir):
    flickr = samples_dir / "flickr8k"
    return build_site(flickr / "images", flickr / "captions.csv", seed=0, photos=PHOTOS)


@pytest.fixture(scope="module")
def full_crawl(site, tmp_path_factory):
    """One crawl of the whole public site, deep enough to reach every page."""
    out_path = tmp_path_factory.mktemp("crawl") / "part-00000.parquet"
    request_log: list[str] = []
    with serve_site(site, request_log) as server:
        stats = crawl([server.base_url], out_path, local_config(max_depth=max(site.depths.values()), max_pages=1000))
    return stats, read_records(out_path, Candidate), request_log, out_path


def requested_paths(request_log):
    return [urlsplit(entry).path for entry in request_log]


def test_crawl_finds_ground_truth_candidates(site, full_crawl):
    _stats, rows, _log, _path = full_crawl
    found = {(urlsplit(row.url).path, row.text) for row in rows}
    expected = {(a.image, a.text) for a in site.appearances if not site.is_disallowed(a.page)}
    assert found == expected


def test_crawl_drops_repeated_candidates(full_crawl):
    stats, rows, _log, _path = full_crawl
    ids = [row.candidate_id for row in rows]

    assert len(ids) == len(set(ids))
    assert stats.duplicate_candidates > 0
    assert stats.candidates == len(rows)


def test_crawl_harvests_every_photo_caption(site, full_crawl):
    _stats, rows, _log, _path = full_crawl
    captions_found = collections.defaultdict(set)
    for row in rows:
        photo = site.photo_for_path(urlsplit(row.url).path)
        if photo is not None:
            captions_found[photo].add(row.text)

    missing = [photo for photo in site.photos if not captions_found[photo] & set(site.captions[photo])]
    assert missing == []


def test_robots_disallowed_folder_never_fetched(site, full_crawl):
    stats, rows, request_log, _path = full_crawl
    paths = requested_paths(request_log)

    assert "/robots.txt" in paths
    assert paths.count("/robots.txt") == 1
    assert not [path for path in paths if site.is_disallowed(path)]
    assert not [row for row in rows if site.is_disallowed(urlsplit(row.page_url).path)]
    assert stats.pages_by_status["robots_disallowed"] >= 1


def test_broken_links_counted(site, full_crawl):
    stats, _rows, request_log, _path = full_crawl
    paths = set(requested_paths(request_log))

    assert set(site.broken_links) <= paths
    assert stats.http_statuses[404] == len(site.broken_links)
    assert stats.pages_by_status["http_error"] == len(site.broken_links)


def test_each_page_requested_once(site, full_crawl):
    stats, _rows, request_log, _path = full_crawl
    counts = collections.Counter(requested_paths(request_log))
    redirects_requested = [path for path in counts if path in site.redirects]

    assert {path: count for path, count in counts.items() if count > 1} == {}
    assert stats.pages_parsed == len(site.public_pages())
    assert redirects_requested
    assert stats.extra["redirects"] == len(redirects_requested)
    assert stats.pages_by_status["redirect"] == len(redirects_requested)


def test_decorative_noise_kept(full_crawl):
    _stats, rows, _log, _path = full_crawl
    texts = collections.Counter(row.text for row in rows)

    assert texts["logo"] >= 1
    assert texts["icon"] >= 1
    assert {"image", "picture", "photo", "thumbnail", "img"} & set(texts)


def test_svg_and_spacer_images_dropped(full_crawl):
    stats, rows, _log, _path = full_crawl
    urls = {urlsplit(row.url).path for row in rows}

    assert not [url for url in urls if url.endswith(".svg") or url in ("/static/spacer.gif", "/pixel.gif")]
    assert stats.dropped_images["svg"] > 0
    assert stats.dropped_images["tiny"] > 0


def test_other_languages_with_page_language(site, full_crawl):
    _stats, rows, _log, _path = full_crawl
    translations = {a.text: a.language for a in site.appearances if a.kind == "translation"}
    found = {row.text: row.page_language for row in rows if row.text in translations}

    assert found == translations
    assert {"de", "fr", "es"} == set(found.values())


def test_offsite_links_not_followed(full_crawl):
    stats, _rows, request_log, _path = full_crawl
    assert stats.extra["links_offsite"] > 0
    assert all(entry.startswith("/") for entry in request_log)


def test_stats_file_written(full_crawl):
    stats, rows, _log, out_path = full_crawl
    written = json.loads((out_path.parent / "stats.json").read_text())

    assert written["stage"] == "harvest"
    assert written["source"] == "crawl"
    assert written["counts"]["candidates"] == len(rows) == stats.candidates
    assert written["counts"]["pages"] == sum(written["pages_by_status"].values())
    assert written["pages_by_status"]["ok"] == stats.pages_by_status["ok"]
    assert written["pages_by_content_type"]["text/html"] == stats.pages_parsed
    assert written["robots_txt"] == {"parsed": 1}
    assert written["frontier"]["done"] > 0


def test_work_folder_removed(full_crawl):
    _stats, _rows, _log, out_path = full_crawl
    leftovers = [path.name for path in out_path.parent.iterdir() if path.name not in (out_path.name, "stats.json")]

    assert leftovers == []
    assert list_parts(out_path.parent) == [out_path]


def test_depth_limit_honoured(site, tmp_path):
    request_log: list[str] = []
    with serve_site(site, request_log) as server:
        stats = crawl([server.base_url], tmp_path / "part.parquet", local_config(max_depth=1))
    paths = set(requested_paths(request_log))
    depth_one = {path for path, depth in site.depths.items() if depth <= 1 and not site.is_disallowed(path)}

    assert depth_one <= paths
    assert [path for path in paths if site.depths.get(path, 0) > 1] == []
    assert stats.extra["links_beyond_max_depth"] > 0


def test_seed_only_at_depth_zero(site, tmp_path):
    request_log: list[str] = []
    with serve_site(site, request_log) as server:
        stats = crawl([server.base_url], tmp_path / "part.parquet", local_config(max_depth=0))

    assert requested_paths(request_log) == ["/robots.txt", "/"]
    assert stats.pages_parsed == 1


def test_max_pages_honoured(site, tmp_path):
    request_log: list[str] = []
    with serve_site(site, request_log) as server:
        stats = crawl([server.base_url], tmp_path / "part.parquet", local_config(max_depth=3, max_pages=5))

    page_requests = [path for path in requested_paths(request_log) if path != "/robots.txt"]

    assert stats.extra["pages_requested"] == 5
    assert len(page_requests) == 5
    assert stats.extra["links_beyond_max_pages"] > 0
    assert stats.extra["urls_queued"] > 0


def test_default_config_blocks_loopback_seed(site, tmp_path):
    request_log: list[str] = []
    out_path = tmp_path / "candidates" / "part-00000.parquet"
    with serve_site(site, request_log) as server:
        stats = crawl([server.base_url], out_path, CrawlConfig())

    assert request_log == []
    assert dict(stats.pages_by_status) == {"blocked_address": 1}
    assert read_records(out_path, Candidate) == []
    written = json.loads((out_path.parent / "stats.json").read_text())
    assert written["pages_by_status"] == {"blocked_address": 1}
    assert written["counts"]["candidates"] == 0


def test_invalid_seeds_counted(tmp_path):
    stats = crawl(["not a url", "ftp://example.org/file"], tmp_path / "part.parquet", local_config())

    assert dict(stats.pages_by_status) == {"invalid_url": 2}
    assert read_records(tmp_path / "part.parquet", Candidate) == []


def small_site(robots: tuple[int, str] | None, request_log: list[str]):
    """A three-page site whose robots.txt returns the given status and text (404 when None)."""
    pages = {
        "/": '<html lang="en"><img src="/a.jpg" alt="Front page photo"><a href="/two.html">two</a><a href="/notes.txt">notes</a>',
        "/two.html": '<img src="/b.jpg" alt="Second page photo"><a href="/three.html">three</a>',
        "/three.html": '<img src="/c.jpg" alt="Third page photo">',
    }

    async def handle(request: web.Request) -> web.Response:
        request_log.append(request.path)
        if request.path == "/robots.txt":
            if robots is None:
                return web.Response(status=404, text="not found")
            return web.Response(status=robots[0], text=robots[1], content_type="text/plain")
        if request.path == "/notes.txt":
            return web.Response(text="<img src='/x.jpg' alt='not parsed'>", content_type="text/plain")
        if request.path in pages:
            return web.Response(text=pages[request.path], content_type="text/html")
        return web.Response(status=404, text="missing")

    def make_app() -> web.Application:
        app = web.Application()
        app.router.add_get("/{path:.*}", handle)
        return app

    return BackgroundServer(make_app)


@pytest.fixture()
def crawl_without_robots(tmp_path):
    """A crawl of the small site, whose robots.txt returns 404."""
    request_log: list[str] = []
    with small_site(None, request_log) as server:
        stats = crawl([server.base_url], tmp_path / "part.parquet", local_config(max_depth=3))
    return stats, read_records(tmp_path / "part.parquet", Candidate), request_log


def test_missing_robots_allows_all(crawl_without_robots):
    stats, rows, request_log = crawl_without_robots

    assert {row.text for row in rows} == {"Front page photo", "Second page photo", "Third page photo"}
    assert stats.pages_parsed == 3
    assert request_log.count("/robots.txt") == 1


def test_non_html_page_not_parsed(crawl_without_robots):
    stats, rows, request_log = crawl_without_robots

    assert "/notes.txt" in request_log
    assert stats.extra["pages_not_html"] == 1
    assert "not parsed" not in {row.text for row in rows}


def test_robots_server_error_disallows_all(tmp_path):
    request_log: list[str] = []
    with small_site((503, "unavailable"), request_log) as server:
        stats = crawl([server.base_url], tmp_path / "part.parquet", local_config())

    assert request_log == ["/robots.txt"]
    assert dict(stats.pages_by_status) == {"robots_unreachable": 1}


def test_robots_group_for_wit_builder(tmp_path):
    robots = "User-agent: *\nDisallow: /\n\nUser-agent: wit-builder\nDisallow: /three.html\n"
    request_log: list[str] = []
    with small_site((200, robots), request_log) as server:
        crawl([server.base_url], tmp_path / "part.parquet", local_config(max_depth=3))

    assert "/two.html" in request_log
    assert "/three.html" not in request_log
