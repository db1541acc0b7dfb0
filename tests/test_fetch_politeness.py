"""Per-host pacing, Retry-After, adaptive backoff and robots.txt of the image downloader.

Every test runs real aiohttp servers on 127.0.0.1, one port per simulated host. Request
times are taken by the server, so a gap can be a few milliseconds shorter than the
spacing at the client: the checks allow TOLERANCE_S for that.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time

import pytest

from fetch_servers import ImageSite, failing_first, image, matched, status, tiny_jpeg
from wit_builder import __version__
from wit_builder.fetch.downloader import Downloader, download_all
from wit_builder.fetch.fetcher import FetchConfig, fetch_partition
from wit_builder.fetch.politeness import HostScheduler, PolitenessConfig, Response
from wit_builder.net.client import HttpConfig, make_session
from wit_builder.parquet import read_records, write_records
from wit_builder.records import FetchResult, FetchStatus, MatchedCandidate

TOLERANCE_S = 0.05
JPEG = tiny_jpeg(1)


def http_config(**fields) -> HttpConfig:
    options = {"allow_private": True, "timeout_s": 10.0, "retries": 0, "max_concurrency": 16, "max_per_host": 4}
    options.update(fields)
    return HttpConfig(**options)


def gaps(times: list[float]) -> list[float]:
    times = sorted(times)
    return [later - earlier for earlier, later in zip(times, times[1:])]


async def timed_downloads(urls, http, politeness, **options):
    """Run a Downloader and return {index: (seconds from start to result, HttpResult)}."""
    finished = {}
    async with make_session(http) as session:
        downloader = Downloader(session, urls, http, politeness, **options)
        started = time.monotonic()
        async for index, result in downloader.results():
            finished[index] = (time.monotonic() - started, result)
    return finished, downloader.stats


def test_slow_host_does_not_block_fast_hosts():
    slow_routes = {f"/img/{number}.jpg": image(JPEG, delay_s=1.0) for number in range(8)}
    fast_routes = {f"/img/{number}.jpg": image(JPEG) for number in range(6)}
    sites = [ImageSite(slow_routes)] + [ImageSite(fast_routes) for _ in range(8)]
    for site in sites:
        site.__enter__()
    try:
        # The slow host's URLs come first, so a first-come scheduler would fill the
        # global slots with them.
        urls = [sites[0].url(path) for path in slow_routes]
        urls += [site.url(path) for site in sites[1:] for path in fast_routes]
        http = http_config(max_concurrency=8, max_per_host=2)
        finished, stats = asyncio.run(timed_downloads(urls, http, PolitenessConfig(host_delay_s=0.0)))
    finally:
        for site in sites:
            site.__exit__(None, None, None)

    assert len(finished) == len(urls)
    assert all(result.ok for _, result in finished.values())
    fast_times = [seconds for index, (seconds, _) in finished.items() if index >= len(slow_routes)]
    slow_times = [seconds for index, (seconds, _) in finished.items() if index < len(slow_routes)]
    # Eight slow URLs, two at a time, take four rounds of one second. The 48 fast URLs
    # must all be done before the first slow round ends.
    assert max(fast_times) < 1.0, max(fast_times)
    assert max(slow_times) >= 4.0 - TOLERANCE_S
    assert sites[0].max_in_flight == 2
    assert stats.hosts == 9


def test_per_host_concurrency_is_capped():
    routes = {f"/img/{number}.jpg": image(JPEG, delay_s=0.2) for number in range(12)}
    with ImageSite(routes) as site:
        urls = [site.url(path) for path in routes]
        results = asyncio.run(download_all(urls, http_config(max_per_host=3), politeness=PolitenessConfig(host_delay_s=0.0)))

    assert [result.status for result in results] == [FetchStatus.OK] * len(urls)
    assert site.max_in_flight == 3


def test_host_delay_spaces_request_starts():
    routes = {f"/img/{number}.jpg": image(JPEG) for number in range(6)}
    with ImageSite(routes) as site:
        urls = [site.url(path) for path in routes]
        results = asyncio.run(download_all(urls, http_config(), politeness=PolitenessConfig(host_delay_s=0.2)))

    assert all(result.ok for result in results)
    # robots.txt counts as a request of the host, so there are seven starts.
    assert len(site.paths()) == 7
    assert min(gaps(site.times())) >= 0.2 - TOLERANCE_S


def retry_after_date(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.parametrize(
    "code, retry_after, minimum_s",
    [(429, "2", 2.0), (503, "2", 2.0), (429, "date", 1.0)],
    ids=["429-seconds", "503-seconds", "429-http-date"],
)
def test_retry_after_pauses_whole_host(code, retry_after, minimum_s):
    header = retry_after_date(3) if retry_after == "date" else retry_after
    routes = {"/img/0.jpg": failing_first(1, status(code, {"Retry-After": header}), image(JPEG))}
    routes.update({f"/img/{number}.jpg": image(JPEG) for number in range(1, 4)})
    with ImageSite(routes) as site:
        urls = [site.url(path) for path in routes]
        politeness = PolitenessConfig(host_delay_s=0.0, throttle_delay_s=0.1)
        results = asyncio.run(download_all(urls, http_config(max_per_host=1, retries=2, backoff_s=0.1), politeness=politeness))
        arrivals = list(site.arrivals)

    assert all(result.ok for result in results), [result.error for result in results]
    assert results[0].attempts == 2
    rejected_at = next(arrival.time for arrival in arrivals if arrival.path == "/img/0.jpg")
    later = [arrival.time - rejected_at for arrival in arrivals if arrival.time > rejected_at]
    # Every later request of the host, not only the retry of the rejected URL, waits.
    assert len(later) == 4
    assert min(later) >= minimum_s - TOLERANCE_S, later


def test_repeated_429_slows_host_down():
    throttled = {"count": 0}

    async def throttle_first_four(request):
        throttled["count"] += 1
        if throttled["count"] <= 4:
            return await status(429)(request)
        return await image(JPEG)(request)

    routes = {f"/img/{number}.jpg": throttle_first_four for number in range(5)}
    with ImageSite(routes) as site:
        urls = [site.url(path) for path in routes]
        politeness = PolitenessConfig(host_delay_s=0.0, throttle_delay_s=0.1, max_host_delay_s=2.0)
        http = http_config(max_per_host=1, retries=4, backoff_s=0.01)
        finished, stats = asyncio.run(timed_downloads(urls, http, politeness, respect_robots_txt=False))
        image_times = site.times("/img/")

    assert all(result.ok for _, result in finished.values())
    assert stats.throttled == 4
    spacing = gaps(image_times)
    # Each 429 doubles the spacing of the host: 0.1, 0.2, 0.4 and 0.8 s, whatever URL comes next.
    for position, expected in enumerate([0.1, 0.2, 0.4, 0.8]):
        assert spacing[position] >= expected - TOLERANCE_S, spacing
    # After the 429s the spacing shrinks by 10 % per response instead of dropping at once.
    assert spacing[4] >= 0.8 * 0.9 - TOLERANCE_S, spacing


def test_host_stopped_after_throttles_in_row():
    throttling = {f"/img/{number}.jpg": status(429) for number in range(10)}
    healthy = {f"/img/{number}.jpg": image(JPEG) for number in range(3)}
    with ImageSite(throttling) as bad, ImageSite(healthy) as good:
        urls = [bad.url(path) for path in throttling] + [good.url(path) for path in healthy]
        politeness = PolitenessConfig(host_delay_s=0.0, throttle_delay_s=0.01, max_throttled_in_row=3)
        finished, stats = asyncio.run(timed_downloads(urls, http_config(max_per_host=1, retries=1, backoff_s=0.01), politeness))
        bad_requests = [path for path in bad.paths() if path.startswith("/img/")]

    results = [finished[index][1] for index in range(len(urls))]
    assert len(bad_requests) == 3
    assert [result.status for result in results[:10]] == [FetchStatus.HTTP_ERROR] * 10
    requested = len(set(bad_requests))
    not_requested = [result for result in results[:10] if result.error.startswith("not requested:")]
    assert len(not_requested) == 10 - requested
    assert stats.not_requested == 10 - requested
    assert all(result.http_status == 429 for result in results[:10] if result not in not_requested)
    assert all(result.ok for result in results[10:])
    assert stats.hosts_stopped == 1


def test_long_retry_after_stops_host():
    routes = {f"/img/{number}.jpg": status(429, {"Retry-After": "3600"}) for number in range(5)}
    with ImageSite(routes) as site:
        urls = [site.url(path) for path in routes]
        results = asyncio.run(download_all(urls, http_config(max_per_host=1, retries=3), politeness=PolitenessConfig(host_delay_s=0.0)))
        requested = len(site.times("/img/"))

    assert requested == 1
    assert results[0].http_status == 429
    assert "Retry-After 3600 s exceeds max_backoff_s" in results[0].error
    for result in results[1:]:
        assert result.status is FetchStatus.HTTP_ERROR
        assert result.error.startswith("not requested:")
        assert "Retry-After 3600 s" in result.error


ROBOTS = """\
User-agent: *
Disallow: /

User-agent: wit-builder
Disallow: /private/
Allow: /
"""


def test_robots_txt_fetched_once_and_honoured():
    routes = {f"/img/{number}.jpg": image(JPEG, delay_s=0.05) for number in range(10)}
    routes.update({f"/private/{number}.jpg": image(JPEG) for number in range(5)})
    with ImageSite(routes, robots=ROBOTS) as site:
        urls = [site.url(path) for path in routes]
        http = http_config(max_per_host=8, contact_url="https://example.org/contact")
        results = asyncio.run(download_all(urls, http, politeness=PolitenessConfig(host_delay_s=0.0)))
        arrivals = list(site.arrivals)

    assert [arrival.path for arrival in arrivals].count("/robots.txt") == 1
    assert arrivals[0].path == "/robots.txt"
    assert not any(arrival.path.startswith("/private/") for arrival in arrivals)
    assert all(result.ok for result in results[:10])
    for result in results[10:]:
        assert result.status is FetchStatus.ROBOTS_DISALLOWED
        assert "disallows this URL for wit-builder" in result.error
        assert result.attempts == 0
    expected_agent = f"wit-builder/{__version__} (+https://example.org/contact)"
    assert {arrival.user_agent for arrival in arrivals} == {expected_agent}


def test_robots_txt_for_other_agents_ignored():
    robots = "User-agent: BadBot\nDisallow: /\n\nUser-agent: wit-builder-extra\nDisallow: /\n"
    routes = {f"/img/{number}.jpg": image(JPEG) for number in range(3)}
    with ImageSite(routes, robots=robots) as site:
        results = asyncio.run(download_all([site.url(path) for path in routes], http_config(), politeness=PolitenessConfig(host_delay_s=0.0)))

    assert all(result.ok for result in results)


def test_unreachable_robots_txt_disallows_origin():
    routes = {"/robots.txt": status(503)}
    routes.update({f"/img/{number}.jpg": image(JPEG) for number in range(4)})
    with ImageSite(routes) as site:
        urls = [site.url(f"/img/{number}.jpg") for number in range(4)]
        results = asyncio.run(download_all(urls, http_config(), politeness=PolitenessConfig(host_delay_s=0.0)))
        paths = site.paths()

    assert paths == ["/robots.txt"]
    assert [result.status for result in results] == [FetchStatus.ROBOTS_UNREACHABLE] * 4


def test_crawl_delay_spacing_and_limit():
    spaced_routes = {f"/img/{number}.jpg": image(JPEG) for number in range(4)}
    with ImageSite(spaced_routes, robots="User-agent: *\nCrawl-delay: 0.3\n") as spaced, ImageSite(
        spaced_routes, robots="User-agent: *\nCrawl-delay: 60\n"
    ) as slow:
        urls = [spaced.url(path) for path in spaced_routes] + [slow.url(path) for path in spaced_routes]
        politeness = PolitenessConfig(host_delay_s=0.0, max_crawl_delay_s=10.0)
        results = asyncio.run(download_all(urls, http_config(), politeness=politeness))
        spaced_times = spaced.times()
        slow_paths = slow.paths()

    assert all(result.ok for result in results[:4])
    assert min(gaps(spaced_times[1:])) >= 0.3 - TOLERANCE_S
    assert slow_paths == ["/robots.txt"]
    for result in results[4:]:
        assert result.status is FetchStatus.ROBOTS_DISALLOWED
        assert "Crawl-delay 60 s" in result.error


def test_ignore_robots_txt_fetches_disallowed(caplog):
    routes = {f"/private/{number}.jpg": image(JPEG) for number in range(3)}
    with ImageSite(routes, robots=ROBOTS) as site:
        urls = [site.url(path) for path in routes]
        results = asyncio.run(
            download_all(urls, http_config(), politeness=PolitenessConfig(host_delay_s=0.0), respect_robots_txt=False)
        )
        paths = site.paths()

    assert "/robots.txt" not in paths
    assert all(result.ok for result in results)


def fetch_config(**fields) -> FetchConfig:
    return FetchConfig(
        http=http_config(contact_url="https://example.org/contact"),
        image_size=16,
        processes=1,
        politeness=PolitenessConfig(host_delay_s=0.0),
        **fields,
    )


def test_opt_outs_default_and_disabled(tmp_path, caplog):
    routes = {
        "/private/a.jpg": image(tiny_jpeg(2)),
        "/img/no-ai.jpg": image(tiny_jpeg(3), headers={"X-Robots-Tag": "wit-builder: noimageai"}),
        "/img/other-bot.jpg": image(tiny_jpeg(4), headers={"X-Robots-Tag": "otherbot: noai"}),
        "/img/plain.jpg": image(tiny_jpeg(5)),
    }
    with ImageSite(routes, robots=ROBOTS) as site:
        rows = [matched(site.url(path)) for path in routes]
        in_path = tmp_path / "in" / "part-00000.parquet"
        write_records(in_path, rows, MatchedCandidate)

        with caplog.at_level(logging.WARNING, logger="wit_builder.fetch"):
            fetch_partition(in_path, tmp_path / "honoured" / "part-00000.parquet", fetch_config())
        assert not [record for record in caplog.records if "ignored" in record.getMessage()]

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wit_builder.fetch"):
            ignoring = fetch_config(respect_robots_txt=False, respect_robots_tag=False)
            fetch_partition(in_path, tmp_path / "ignored" / "part-00000.parquet", ignoring)
        warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]

    honoured = read_records(tmp_path / "honoured" / "part-00000.parquet", FetchResult)
    assert [result.status for result in honoured] == ["robots_disallowed", "robots_disallowed", "ok", "ok"]
    assert honoured[1].error == "X-Robots-Tag contains noimageai"
    ignored = read_records(tmp_path / "ignored" / "part-00000.parquet", FetchResult)
    assert [result.status for result in ignored] == ["ok"] * 4
    assert any("--ignore-robots-txt" in message for message in warnings), warnings
    assert any("--ignore-robots-tag" in message for message in warnings), warnings


def test_scheduler_round_robin_and_capacity():
    scheduler: HostScheduler[str] = HostScheduler(PolitenessConfig(host_delay_s=0.0), max_per_host=2)
    for order, (host, job) in enumerate([("a", "a1"), ("a", "a2"), ("a", "a3"), ("b", "b1"), ("c", "c1"), ("b", "b2")]):
        scheduler.add(host, job, order, now=0.0)

    started = []
    while (ready := scheduler.pop_ready(0.0)) is not None:
        started.append(ready[1])
    assert started == ["a1", "b1", "c1", "a2", "b2"]  # a3 waits: a has two in flight
    assert scheduler.queued == 1

    scheduler.finish("a", 0.0, Response.ANSWERED)
    assert scheduler.pop_ready(0.0) == ("a", "a3")


def test_scheduler_throttle_pauses_and_recovers():
    config = PolitenessConfig(host_delay_s=0.1, throttle_delay_s=1.0, max_host_delay_s=4.0)
    scheduler: HostScheduler[int] = HostScheduler(config, max_per_host=4)
    for job in range(4):
        scheduler.add("h", job, job, now=0.0)
    state = scheduler.hosts["h"]
    assert scheduler.pop_ready(0.0) == ("h", 0)
    assert scheduler.pop_ready(0.0) is None  # spacing of 0.1 s
    assert scheduler.next_wakeup() == pytest.approx(0.1)

    # A 429 with Retry-After 2.5 s pauses the host for 2.5 s and raises its delay to 1 s.
    scheduler.finish("h", 0.05, Response.THROTTLED, retry_after_s=2.5)
    assert state.delay_s == 1.0
    assert scheduler.pop_ready(2.5) is None
    assert scheduler.pop_ready(2.56) == ("h", 1)

    scheduler.finish("h", 2.6, Response.THROTTLED)
    assert state.delay_s == 2.0
    assert state.throttled_in_row == 2
    assert scheduler.pop_ready(4.59) is None
    assert scheduler.pop_ready(4.6) == ("h", 2)

    # A timeout leaves the pacing as it is, and a response shrinks the delay by 10 %.
    scheduler.finish("h", 4.7, Response.NO_ANSWER)
    assert (state.delay_s, state.throttled_in_row) == (2.0, 2)
    assert scheduler.pop_ready(6.6) == ("h", 3)
    scheduler.finish("h", 6.7, Response.ANSWERED)
    assert state.delay_s == pytest.approx(1.8)
    assert state.throttled_in_row == 0


def test_scheduler_stops_host_at_throttle_limit():
    scheduler: HostScheduler[int] = HostScheduler(PolitenessConfig(host_delay_s=0.0, throttle_delay_s=0.0, max_throttled_in_row=2), 1)
    for job in range(5):
        scheduler.add("h", job, job, now=0.0)
    assert scheduler.pop_ready(0.0) == ("h", 0)
    assert scheduler.finish("h", 0.0, Response.THROTTLED) is False
    assert scheduler.pop_ready(0.0) == ("h", 1)
    assert scheduler.finish("h", 0.0, Response.THROTTLED) is True

    assert scheduler.stop("h", "too many 429") == [2, 3, 4]
    assert scheduler.stopped_reason("h") == "too many 429"
    assert scheduler.pop_ready(10.0) is None
    assert scheduler.queued == 0
