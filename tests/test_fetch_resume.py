"""One status per input row, resuming a killed fetch, --retry-failed, and output that does not depend on concurrency."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from aiohttp import web

from fetch_servers import ImageSite, failing_first, image, matched, reset_connection, status, tiny_jpeg
from wit_builder.fetch.cli import fetch_folder
from wit_builder.fetch import fetcher
from wit_builder.fetch.fetcher import FetchConfig, PartJob, fetch_partition, fetch_parts
from wit_builder.fetch.politeness import PolitenessConfig
from wit_builder.fetch.pool import DecodePool
from wit_builder.fetch.retry import is_retryable
from wit_builder.net.client import HttpConfig
from wit_builder.parquet import list_parts, read_records, write_records
from wit_builder.records import FetchResult, FetchStatus, FilterDecision, MatchedCandidate
from wit_builder.shards.writer import write_shards

REPO_ROOT = Path(__file__).resolve().parents[1]


def fetch_config(concurrency: int = 16, per_host: int = 4, timeout_s: float = 5.0, retries: int = 1) -> FetchConfig:
    http = HttpConfig(
        allow_private=True,
        contact_url="https://example.org/contact",
        timeout_s=timeout_s,
        retries=retries,
        backoff_s=0.05,
        max_concurrency=concurrency,
        max_per_host=per_host,
    )
    return FetchConfig(http=http, image_size=16, processes=1, politeness=PolitenessConfig(host_delay_s=0.0))


@pytest.fixture(scope="module")
def pool():
    with DecodePool(processes=1) as shared:
        yield shared


async def _html(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"<!doctype html><p>login</p>", content_type="image/jpeg")


async def truncated_body(request: web.Request) -> web.StreamResponse:
    data = tiny_jpeg(9)
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    response.content_length = len(data) * 2
    await response.prepare(request)
    await response.write(data)
    request.transport.close()
    return response


def hanging(delay_s: float):
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(delay_s)
        return web.Response(body=tiny_jpeg(1), content_type="image/jpeg")

    return handler


def test_every_row_gets_one_status(tmp_path, pool):
    main_routes = {f"/img/{number}.jpg": image(tiny_jpeg(number)) for number in range(6)}
    main_routes.update(
        {
            "/missing.jpg": status(404),
            "/always-500.jpg": status(500),
            "/flaky-503.jpg": failing_first(1, status(503), image(tiny_jpeg(20))),
            "/slow.jpg": hanging(3.0),
            "/reset.jpg": reset_connection,
            "/truncated.jpg": truncated_body,
            "/html.jpg": _html,
            "/no-ai.jpg": image(tiny_jpeg(21), headers={"X-Robots-Tag": "noai"}),
            "/private/secret.jpg": image(tiny_jpeg(22)),
        }
    )
    unreachable_routes = {"/robots.txt": status(503), "/img/a.jpg": image(tiny_jpeg(23))}
    throttling_routes = {f"/img/{number}.jpg": status(429, {"Retry-After": "3600"}) for number in range(8)}

    with ImageSite(main_routes, robots="User-agent: *\nDisallow: /private/\n") as main, ImageSite(
        unreachable_routes
    ) as unreachable, ImageSite(throttling_routes) as throttling:
        cases = [(main.url(f"/img/{number}.jpg"), FetchStatus.OK) for number in range(6)]
        cases += [
            (main.url("/missing.jpg"), FetchStatus.HTTP_ERROR),
            (main.url("/always-500.jpg"), FetchStatus.HTTP_ERROR),
            (main.url("/flaky-503.jpg"), FetchStatus.OK),
            (main.url("/slow.jpg"), FetchStatus.TIMEOUT),
            (main.url("/reset.jpg"), FetchStatus.CONNECTION_ERROR),
            (main.url("/truncated.jpg"), FetchStatus.TRUNCATED),
            (main.url("/html.jpg"), FetchStatus.NOT_AN_IMAGE),
            (main.url("/no-ai.jpg"), FetchStatus.ROBOTS_DISALLOWED),
            (main.url("/private/secret.jpg"), FetchStatus.ROBOTS_DISALLOWED),
            (unreachable.url("/img/a.jpg"), FetchStatus.ROBOTS_UNREACHABLE),
            ("not a url", FetchStatus.INVALID_URL),
            ("ftp://example.org/a.jpg", FetchStatus.INVALID_URL),
        ]
        cases += [(throttling.url(f"/img/{number}.jpg"), FetchStatus.HTTP_ERROR) for number in range(8)]
        # The same URL under another caption shares one download and its status.
        cases.insert(3, (cases[0][0], FetchStatus.OK))
        cases.append((main.url("/missing.jpg"), FetchStatus.HTTP_ERROR))
        rows = [matched(url, f"caption {position}") for position, (url, _) in enumerate(cases)]

        in_path = tmp_path / "in" / "part-00000.parquet"
        out_path = tmp_path / "out" / "part-00000.parquet"
        write_records(in_path, rows, MatchedCandidate)
        stats = fetch_partition(in_path, out_path, fetch_config(timeout_s=0.5), pool=pool)
        throttling_requests = [path for path in throttling.paths() if path.startswith("/img/")]

    results = read_records(out_path, FetchResult)
    assert len(results) == len(rows)
    assert [result.key for result in results] == [row.candidate_id for row in rows]
    for (url, expected), result in zip(cases, results):
        assert result.status == expected.value, (url, result.status, result.error)
        assert (result.image is not None) == (result.status == "ok")
        assert result.status == "ok" or result.error
    assert stats.rows == len(rows)
    assert sum(stats.counts.values()) == len(rows)
    # The host that asked to wait an hour got only the requests already in flight.
    assert len(throttling_requests) <= 4
    not_requested = [result for result in results if result.error and result.error.startswith("not requested:")]
    assert len(not_requested) == 8 - len(throttling_requests)


def test_retryable_statuses():
    assert is_retryable("timeout", None)
    assert is_retryable("connection_error", None)
    assert is_retryable("truncated", 200)
    assert is_retryable("dns_error", None)
    assert is_retryable("robots_unreachable", None)
    assert is_retryable("http_error", 429)
    assert is_retryable("http_error", 503)
    assert is_retryable("http_error", None)  # not requested: its host was stopped
    assert not is_retryable("protocol_error", 200)
    assert not is_retryable("http_error", 404)
    assert not is_retryable("http_error", 403)
    assert not is_retryable("not_an_image", 200)
    assert not is_retryable("robots_disallowed", None)
    assert not is_retryable("ok", 200)
    assert not is_retryable("too_large", 200)


class SwitchableSite:
    """Routes that fail while ``broken`` is set and serve images after."""

    def __init__(self) -> None:
        self.broken = True

    def route(self, failure, data: bytes):
        async def handler(request: web.Request) -> web.StreamResponse:
            if self.broken:
                return await failure(request)
            return web.Response(body=data, content_type="image/jpeg")

        return handler


def test_retry_failed_refetches_only_retryable(tmp_path, pool):
    switch = SwitchableSite()
    routes = {f"/img/{number}.jpg": image(tiny_jpeg(number)) for number in range(8)}
    routes.update(
        {
            "/busy.jpg": switch.route(status(503), tiny_jpeg(30)),
            "/limited.jpg": switch.route(status(429), tiny_jpeg(31)),
            "/slow.jpg": switch.route(hanging(2.0), tiny_jpeg(32)),
            "/reset.jpg": switch.route(reset_connection, tiny_jpeg(33)),
            "/missing.jpg": status(404),
            "/html.jpg": _html,
        }
    )
    retryable_paths = {"/busy.jpg", "/limited.jpg", "/slow.jpg", "/reset.jpg"}
    config = fetch_config(timeout_s=0.5, retries=0)
    config.politeness = PolitenessConfig(host_delay_s=0.0, throttle_delay_s=0.0, max_host_delay_s=0.0)

    with ImageSite(routes) as site:
        paths = list(routes)
        random.Random(3).shuffle(paths)
        in_dir = tmp_path / "in"
        write_records(in_dir / "part-00000.parquet", [matched(site.url(path)) for path in paths], MatchedCandidate)

        fetch_folder(in_dir, tmp_path / "out", config)
        first = read_records(tmp_path / "out" / "part-00000.parquet", FetchResult)
        assert {path for path, result in zip(paths, first) if result.status != "ok"} == retryable_paths | {
            "/missing.jpg",
            "/html.jpg",
        }

        switch.broken = False
        before = len(site.arrivals)
        totals = fetch_folder(in_dir, tmp_path / "out", config, retry_failed=True)
        second_run = [path for path in site.paths()[before:] if path != "/robots.txt"]

        fetch_folder(in_dir, tmp_path / "fresh", config)

    assert sorted(second_run) == sorted(retryable_paths)
    merged = read_records(tmp_path / "out" / "part-00000.parquet", FetchResult)
    assert [result.key for result in merged] == [result.key for result in first]
    for path, old, new in zip(paths, first, merged):
        if path in retryable_paths:
            assert new.status == "ok", (path, new.error)
        else:
            assert new == old
    assert totals["ok"] == len(routes) - 2
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["partitions_retried"] == 1
    assert stats["retried_rows"] == len(retryable_paths)
    # Retrying gives the same file as fetching everything from the healthy server.
    fresh_bytes = (tmp_path / "fresh" / "part-00000.parquet").read_bytes()
    assert (tmp_path / "out" / "part-00000.parquet").read_bytes() == fresh_bytes


def test_retry_failed_rejects_overwrite(tmp_path):
    with pytest.raises(ValueError, match="exclude each other"):
        fetch_folder(tmp_path, tmp_path / "out", fetch_config(), overwrite=True, retry_failed=True)


def test_stale_output_fetched_again(tmp_path, pool, caplog):
    routes = {f"/img/{number}.jpg": image(tiny_jpeg(number)) for number in range(3)}
    with ImageSite(routes) as site:
        in_dir = tmp_path / "in"
        rows = [matched(site.url(path)) for path in routes]
        write_records(in_dir / "part-00000.parquet", rows, MatchedCandidate)
        # Output of another input: the first row differs.
        stale = [FetchResult(key="other", url="x", caption="x", status="ok")] + [
            FetchResult(key=row.candidate_id, url=row.url, caption=row.text, status="ok") for row in rows[1:]
        ]
        write_records(tmp_path / "out" / "part-00000.parquet", stale, FetchResult)
        leftover = tmp_path / "out" / ".part-00001.parquet.tmp-12345"
        leftover.write_bytes(b"partial")

        fetch_folder(in_dir, tmp_path / "out", fetch_config())

    results = read_records(tmp_path / "out" / "part-00000.parquet", FetchResult)
    assert [result.key for result in results] == [row.candidate_id for row in rows]
    assert all(result.image for result in results)
    assert "row 0 has key 'other'" in caplog.text
    assert not leftover.exists()


def test_killed_fetch_resumes_without_refetching(tmp_path):
    hang = {"on": True}

    async def hang_while_on(request: web.Request) -> web.StreamResponse:
        while hang["on"]:
            await asyncio.sleep(0.05)
        return web.Response(body=tiny_jpeg(40), content_type="image/jpeg")

    routes = {f"/first/{number}.jpg": image(tiny_jpeg(number)) for number in range(5)}
    routes.update({f"/second/{number}.jpg": hang_while_on for number in range(5)})
    with ImageSite(routes) as site:
        in_dir = tmp_path / "in"
        out_dir = tmp_path / "out"
        for part, folder in enumerate(("first", "second")):
            rows = [matched(site.url(f"/{folder}/{number}.jpg")) for number in range(5)]
            write_records(in_dir / f"part-{part:05d}.parquet", rows, MatchedCandidate)

        command = [
            sys.executable, "-m", "wit_builder.cli", "fetch", str(in_dir), "--out", str(out_dir), "--allow-private",
            "--processes", "1", "--host-delay", "0", "--timeout", "60", "--user-agent-contact", "https://example.org/contact",
        ]
        process = subprocess.Popen(command, cwd=REPO_ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while not (out_dir / "part-00000.parquet").exists():
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "the first partition was not written in time"
                time.sleep(0.1)
            while not [path for path in site.paths() if path.startswith("/second/")]:
                assert time.monotonic() < deadline, "the second partition was not requested in time"
                time.sleep(0.05)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            process.stderr.close()

        assert not (out_dir / "part-00001.parquet").exists()
        first_written = (out_dir / "part-00000.parquet").read_bytes()
        hang["on"] = False
        killed_run = len(site.arrivals)
        fetch_folder(in_dir, out_dir, fetch_config())
        paths = site.paths()

    # The finished partition is not requested again; the killed one is fetched whole.
    for number in range(5):
        assert paths.count(f"/first/{number}.jpg") == 1
        assert paths[killed_run:].count(f"/second/{number}.jpg") == 1
    assert (out_dir / "part-00000.parquet").read_bytes() == first_written
    second = read_records(out_dir / "part-00001.parquet", FetchResult)
    assert [result.status for result in second] == ["ok"] * 5
    stats = json.loads((out_dir / "stats.json").read_text())
    assert stats["partitions_skipped"] == 1
    assert stats["counts"]["ok"] == 10
    assert not list(out_dir.glob(".*tmp*"))


def random_latency(data: bytes, seed: int):
    generator = random.Random(seed)

    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(generator.uniform(0.0, 0.03))
        return web.Response(body=data, content_type="image/jpeg")

    return handler


def write_all_kept_decisions(fetched_dir: Path, decisions_dir: Path) -> None:
    decisions = []
    for part in list_parts(fetched_dir):
        for result in read_records(part, FetchResult):
            if result.status == "ok":
                decisions.append(
                    FilterDecision(key=result.key, keep=True, reason=None, language="en", caption_chars=len(result.caption), caption_words=3)
                )
    write_records(decisions_dir / "part-00000.parquet", decisions, FilterDecision)


def test_output_independent_of_concurrency(tmp_path, pool, monkeypatch):
    # Small row groups, so that each output is written in several pieces as rows complete.
    monkeypatch.setattr(fetcher, "ROW_GROUP_ROWS", 4)
    sites = []
    for site_number in range(3):
        routes = {f"/img/{number}.jpg": random_latency(tiny_jpeg(site_number * 20 + number), number) for number in range(15)}
        routes["/html.jpg"] = _html
        sites.append(ImageSite(routes))
    for site in sites:
        site.__enter__()
    try:
        rows = []
        for number in range(15):
            for site in sites:
                rows.append(matched(site.url(f"/img/{number}.jpg")))
        rows.insert(7, matched(sites[1].url("/missing.jpg")))
        rows.insert(20, matched(sites[2].url("/html.jpg")))
        rows.append(matched(rows[0].url, "the first photo again"))
        in_dir = tmp_path / "in"
        write_records(in_dir / "part-00000.parquet", rows[:25], MatchedCandidate)
        write_records(in_dir / "part-00001.parquet", rows[25:], MatchedCandidate)

        # One partition at a time, one request at a time; then both partitions in one
        # stream of downloads with many requests in flight.
        for part in list_parts(in_dir):
            fetch_partition(part, tmp_path / "serial" / part.name, fetch_config(1, 1), pool=pool)
        jobs = [PartJob(part, tmp_path / "parallel" / part.name) for part in list_parts(in_dir)]
        fetch_parts(jobs, fetch_config(32, 8), pool=pool)
        max_in_flight = max(site.max_in_flight for site in sites)
    finally:
        for site in sites:
            site.__exit__(None, None, None)

    assert max_in_flight > 1
    for part in list_parts(in_dir):
        assert pq.ParquetFile(tmp_path / "parallel" / part.name).num_row_groups > 1
        serial = (tmp_path / "serial" / part.name).read_bytes()
        assert serial == (tmp_path / "parallel" / part.name).read_bytes(), part.name
    statuses = [result.status for part in list_parts(tmp_path / "serial") for result in read_records(part, FetchResult)]
    assert statuses.count("ok") == 46
    assert len(statuses) == len(rows)

    # The shard writer keeps input order, so the shards are byte-identical as well.
    write_all_kept_decisions(tmp_path / "serial", tmp_path / "decisions")
    for name in ("serial", "parallel"):
        write_shards(list_parts(tmp_path / name), list_parts(tmp_path / "decisions"), tmp_path / f"shards-{name}", samples_per_shard=10)
    shard_files = sorted(path.name for path in (tmp_path / "shards-serial").iterdir() if path.name != "stats.json")
    assert len([name for name in shard_files if name.endswith(".tar")]) == 5
    for file_name in shard_files:
        serial = (tmp_path / "shards-serial" / file_name).read_bytes()
        assert serial == (tmp_path / "shards-parallel" / file_name).read_bytes(), file_name


def test_parts_share_robots_txt_and_host_stops(tmp_path, pool):
    """One run requests robots.txt once per origin, and a throttled host stays stopped in later parts."""
    routes = {f"/img/{number}.jpg": image(tiny_jpeg(number), delay_s=0.02) for number in range(12)}
    routes["/private/a.jpg"] = image(tiny_jpeg(40))
    throttled_routes = {f"/img/{number}.jpg": status(429) for number in range(6)}
    with ImageSite(routes, robots="User-agent: *\nDisallow: /private/\n") as site, ImageSite(throttled_routes, robots="") as busy:
        in_dir = tmp_path / "in"
        jobs = []
        for number in range(3):
            rows = [matched(site.url(f"/img/{number * 4 + offset}.jpg")) for offset in range(4)]
            rows.append(matched(site.url("/private/a.jpg")))
            rows += [matched(busy.url(f"/img/{number * 2 + offset}.jpg")) for offset in range(2)]
            part = in_dir / f"part-{number:05d}.parquet"
            write_records(part, rows, MatchedCandidate)
            jobs.append(PartJob(part, tmp_path / "out" / part.name))
        config = fetch_config(concurrency=4, per_host=2, retries=0)
        config.politeness = PolitenessConfig(host_delay_s=0.0, max_throttled_in_row=2)
        run = fetch_parts(jobs, config, pool=pool)
        site_paths, busy_paths = site.paths(), busy.paths()

    assert site_paths.count("/robots.txt") == 1
    assert busy_paths.count("/robots.txt") == 1
    assert "/private/a.jpg" not in site_paths
    # The busy host returned 429 twice in a row and was stopped, so later parts do not request it.
    assert len([path for path in busy_paths if path != "/robots.txt"]) == 2
    assert run.download.hosts_stopped == 1
    assert run.download.robots_requests == 2
    for job, stats in zip(jobs, run.parts):
        results = read_records(job.out_path, FetchResult)
        assert [result.key for result in results] == [row.candidate_id for row in read_records(job.in_path, MatchedCandidate)]
        assert [result.status for result in results[:5]] == ["ok"] * 4 + ["robots_disallowed"]
        assert [result.status for result in results[5:]] == ["http_error"] * 2
        assert stats.counts["ok"] == 4
