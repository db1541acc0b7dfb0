"""fetch_partition and `wit fetch` end to end: real photos and broken URLs from a loopback server."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json

import pytest
from aiohttp import web
from PIL import Image

from wit_builder.fetch.cli import add_parser, fetch_folder
from wit_builder.fetch.downloader import download_all
from wit_builder.fetch.fetcher import FetchConfig, fetch_partition
from wit_builder.fetch.politeness import PolitenessConfig
from wit_builder import __version__
from wit_builder.localserver import BackgroundServer
from wit_builder.net.client import HttpConfig
from wit_builder.parquet import read_records, write_records
from wit_builder.records import FetchResult, FetchStatus, MatchedCandidate, candidate_id

PHOTO_COUNT = 50


@pytest.fixture(scope="module")
def photos(samples_dir):
    """The first PHOTO_COUNT flickr8k photos with their first caption, as (name, bytes, caption)."""
    folder = samples_dir / "flickr8k"
    captions = {}
    with (folder / "captions.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            captions.setdefault(row["image"], row["caption"])
    names = sorted(captions)[:PHOTO_COUNT]
    return [(name, (folder / "images" / name).read_bytes(), captions[name]) for name in names]


@pytest.fixture(scope="module")
def server(photos):
    by_name = {name: data for name, data, _ in photos}
    first_photo = photos[0][1]

    def make_app():
        async def photo(request):
            data = by_name.get(request.match_info["name"])
            if data is None:
                raise web.HTTPNotFound()
            return web.Response(body=data, content_type="image/jpeg")

        async def html_as_jpeg(request):
            return web.Response(body=b"<!doctype html><html><body>login</body></html>", content_type="image/jpeg")

        async def html_page(request):
            return web.Response(text="<html><body>not here</body></html>", content_type="text/html")

        async def loop(request):
            raise web.HTTPFound("/loop")

        async def redirect_to_photo(request):
            raise web.HTTPMovedPermanently(f"/photos/{photos[1][0]}")

        async def cut_photo(request):
            return web.Response(body=first_photo[: len(first_photo) // 2], content_type="image/jpeg")

        async def no_ai(request):
            return web.Response(body=first_photo, content_type="image/jpeg", headers={"X-Robots-Tag": "noai"})

        async def server_error(request):
            return web.Response(status=503)

        app = web.Application()
        app.router.add_get("/photos/{name}", photo)
        app.router.add_get("/html-as.jpg", html_as_jpeg)
        app.router.add_get("/page.jpg", html_page)
        app.router.add_get("/loop", loop)
        app.router.add_get("/moved.jpg", redirect_to_photo)
        app.router.add_get("/cut.jpg", cut_photo)
        app.router.add_get("/no-ai.jpg", no_ai)
        app.router.add_get("/error.jpg", server_error)
        return app

    with BackgroundServer(make_app) as running:
        yield running


def matched(url: str, text: str, query_ids: list[int]) -> MatchedCandidate:
    return MatchedCandidate(
        candidate_id=candidate_id(url, text),
        url=url,
        text=text,
        text_source="alt",
        page_url="http://example.org/page.html",
        source="test",
        query_ids=query_ids,
    )


def fetch_config(**fields) -> FetchConfig:
    http = HttpConfig(allow_private=True, timeout_s=5.0, retries=0, max_concurrency=16, max_per_host=8)
    return FetchConfig(http=http, image_size=64, processes=2, politeness=PolitenessConfig(host_delay_s=0.0), **fields)


# Broken URLs and the status each must end with.
BROKEN = [
    ("photos/does-not-exist.jpg", FetchStatus.HTTP_ERROR),
    ("html-as.jpg", FetchStatus.NOT_AN_IMAGE),
    ("page.jpg", FetchStatus.NOT_AN_IMAGE),
    ("loop", FetchStatus.TOO_MANY_REDIRECTS),
    ("cut.jpg", FetchStatus.TRUNCATED),
    ("no-ai.jpg", FetchStatus.ROBOTS_DISALLOWED),
    ("error.jpg", FetchStatus.HTTP_ERROR),
    ("moved.jpg", FetchStatus.OK),
]


def test_fetch_partition_end_to_end(tmp_path, server, photos):
    base = server.base_url
    rows = [matched(f"{base}photos/{name}", caption, [index]) for index, (name, _, caption) in enumerate(photos)]
    expected = {row.candidate_id: FetchStatus.OK for row in rows}

    # Broken rows go in between the photos, and one photo appears twice with another caption.
    for position, (path, status) in enumerate(BROKEN):
        row = matched(base + path, f"broken {path}", [1000 + position])
        rows.insert(position * 6 + 3, row)
        expected[row.candidate_id] = status
    duplicate = matched(rows[0].url, "the same photo with another caption", [7])
    rows.append(duplicate)
    expected[duplicate.candidate_id] = FetchStatus.OK
    for url in ("ftp://example.org/a.jpg", "not a url"):
        row = matched(url, "invalid", [])
        rows.append(row)
        expected[row.candidate_id] = FetchStatus.INVALID_URL

    in_path = tmp_path / "balanced" / "part-00000.parquet"
    out_path = tmp_path / "fetched" / "part-00000.parquet"
    write_records(in_path, rows, MatchedCandidate)

    stats = fetch_partition(in_path, out_path, fetch_config())
    results = read_records(out_path, FetchResult)

    assert len(results) == len(rows)
    assert [result.key for result in results] == [row.candidate_id for row in rows]
    for row, result in zip(rows, results):
        assert result.status == expected[row.candidate_id].value, (row.url, result.error)
        assert result.url == row.url
        assert result.caption == row.text
        assert result.query_ids == row.query_ids
        assert result.page_url == row.page_url
        assert result.text_source == "alt"
        if result.status == "ok":
            image = Image.open(io.BytesIO(result.image))
            assert image.format == "JPEG"
            assert image.size == (result.width, result.height)
            assert min(image.size) == 64
            assert (result.original_width, result.original_height) == (224, 224)
            assert result.error is None
        else:
            assert result.image is None
            assert result.error

    assert stats.rows == len(rows)
    assert stats.urls == len(rows) - 1
    assert stats.ok == PHOTO_COUNT + 2
    assert sum(stats.counts.values()) == len(rows)
    assert stats.counts["invalid_url"] == 2
    assert stats.counts["http_error"] == 2
    assert set(stats.counts) == {status.value for status in FetchStatus}
    assert stats.bytes_downloaded > sum(len(data) for _, data, _ in photos)


def test_fetch_cli_folder_and_resume(tmp_path, server, photos):
    base = server.base_url
    in_dir = tmp_path / "balanced"
    for part in range(2):
        chunk = photos[part * 3 : part * 3 + 3]
        rows = [matched(f"{base}photos/{name}", caption, [0]) for name, _, caption in chunk]
        rows.append(matched(base + "html-as.jpg", "html", [1]))
        write_records(in_dir / f"part-{part:05d}.parquet", rows, MatchedCandidate)

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["fetch", str(in_dir), "--out", str(tmp_path / "fetched"), "--image-size", "32", "--resize-mode", "center_crop",
         "--processes", "1", "--retries", "0", "--host-delay", "0", "--allow-private", "--user-agent-contact", "https://example.org/bot"]
    )
    assert args.func(args) == 0

    stats = json.loads((tmp_path / "fetched" / "stats.json").read_text())
    assert stats["stage"] == "fetch"
    assert stats["counts"]["rows"] == 8
    assert stats["counts"]["ok"] == 6
    assert stats["counts"]["not_an_image"] == 2
    assert stats["partitions"] == 2
    assert stats["user_agent"] == f"wit-builder/{__version__} (+https://example.org/bot)"
    for part in range(2):
        results = read_records(tmp_path / "fetched" / f"part-{part:05d}.parquet", FetchResult)
        assert [result.width for result in results if result.status == "ok"] == [32, 32, 32]

    # A second run keeps both partitions and reports the same counts.
    totals = fetch_folder(in_dir, tmp_path / "fetched", fetch_config())
    assert totals["ok"] == 6
    assert json.loads((tmp_path / "fetched" / "stats.json").read_text())["partitions_skipped"] == 2


def test_fetch_cli_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        fetch_folder(tmp_path / "nothing", tmp_path / "out", fetch_config())


def test_download_all_keeps_input_order(server, photos):
    urls = [f"{server.base_url}photos/{name}" for name, _, _ in photos[:12]]
    urls.insert(5, server.base_url + "error.jpg")
    http = HttpConfig(allow_private=True, retries=0, max_concurrency=4, max_per_host=2)
    results = asyncio.run(download_all(urls, http))
    assert [result.url for result in results] == urls
    assert results[5].status is FetchStatus.HTTP_ERROR
    assert all(result.body == data for result, (_, data, _) in zip(results[:5], photos[:5]))


def test_decode_pool_survives_killed_worker(photos):
    import os
    import signal
    import time

    from wit_builder.fetch.pool import DecodePool
    from wit_builder.fetch.resizer import ResizeOptions

    options = ResizeOptions(image_size=32)
    data = photos[0][1]

    async def resize():
        return await pool.resize(data, "image/jpeg", options)

    with DecodePool(processes=1) as pool:
        assert asyncio.run(resize()).status is FetchStatus.OK
        (pid,) = pool.worker_pids()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)  # let the kernel finish the killed worker

        result = asyncio.run(resize())
        assert result.status is FetchStatus.OK, result.error
        assert pool.restarts == 1
