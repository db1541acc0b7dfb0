"""Per-host spacing, concurrency and page limits of the crawler, measured on loopback servers.

Request times are taken by the server when a request arrives, so a gap can be a few
milliseconds shorter than the spacing at the client. The checks allow 50 ms for that.
"""

from __future__ import annotations

import json
import time

from test_harvest_crawler_sites import ScriptedSite, gaps, html, local_config, page, run_crawl, slow

TOLERANCE_S = 0.05


def chain_site(count: int, robots: str | None = None) -> dict:
    """Routes of pages /0.html ... linked in a row, each with one captioned image."""
    routes = {}
    for index in range(count):
        links = [f"/{index + 1}.html"] if index + 1 < count else []
        routes[f"/{index}.html"] = page(images={f"/img/{index}.jpg": f"Photo number {index}"}, links=links)
    routes["/"] = routes["/0.html"]
    if robots is not None:
        routes["/robots.txt"] = html(robots, "text/plain")
    return routes


def test_host_delay_spaces_requests(tmp_path):
    config = local_config(host_delay_s=0.3, max_depth=10)
    with ScriptedSite(chain_site(4)) as site:
        stats, rows = run_crawl([site.url("/0.html")], tmp_path, config)

    assert len(site.paths()) == 5  # robots.txt and four pages
    assert min(gaps(site.times())) >= 0.3 - TOLERANCE_S
    assert len(rows) == 4
    assert stats.pages_by_status["ok"] == 4


def test_crawl_delay_spaces_requests(tmp_path):
    config = local_config(host_delay_s=0.1, max_depth=10)
    with ScriptedSite(chain_site(3, robots="User-agent: *\nCrawl-delay: 0.6\n")) as site:
        stats, _rows = run_crawl([site.url("/0.html")], tmp_path, config)
    written = json.loads((tmp_path / "stats.json").read_text())

    assert site.paths()[0] == "/robots.txt"
    assert len(site.page_paths()) == 3
    assert min(gaps(site.times())) >= 0.6 - TOLERANCE_S
    assert written["crawl_delay_applied_s"] == {site.base_url.rstrip("/"): 0.6}
    assert stats.extra["hosts_crawl_delay_applied"] == 1


def test_host_delay_larger_than_crawl_delay_kept(tmp_path):
    config = local_config(host_delay_s=0.4, max_depth=10)
    with ScriptedSite(chain_site(3, robots="User-agent: *\nCrawl-delay: 0.1\n")) as site:
        run_crawl([site.url("/0.html")], tmp_path, config)

    assert min(gaps(site.times())) >= 0.4 - TOLERANCE_S


def test_hostile_crawl_delay_skips_host(tmp_path):
    config = local_config(max_depth=10, max_crawl_delay_s=5.0)
    hostile_routes = chain_site(3, robots="User-agent: *\nCrawl-delay: 100000\n")
    with ScriptedSite(hostile_routes) as hostile, ScriptedSite(chain_site(2)) as other:
        started = time.monotonic()
        stats, rows = run_crawl([hostile.url("/0.html"), hostile.url("/1.html"), other.url("/0.html")], tmp_path, config)
        elapsed = time.monotonic() - started
    written = json.loads((tmp_path / "stats.json").read_text())

    assert hostile.paths() == ["/robots.txt"]
    assert len(other.page_paths()) == 2
    assert elapsed < 5.0
    assert stats.pages_by_status["crawl_delay_too_long"] == 2
    assert stats.extra["hosts_crawl_delay_too_long"] == 1
    assert written["crawl_delay_too_long_s"] == {hostile.base_url.rstrip("/"): 100000.0}
    assert len(rows) == 2


def test_crawl_delay_ignored_when_turned_off(tmp_path):
    config = local_config(max_depth=10, respect_crawl_delay=False)
    with ScriptedSite(chain_site(3, robots="User-agent: *\nCrawl-delay: 100000\n")) as site:
        stats, _rows = run_crawl([site.url("/0.html")], tmp_path, config)

    assert len(site.page_paths()) == 3
    assert stats.extra["hosts_crawl_delay_too_long"] == 0


def test_hosts_spaced_independently(tmp_path):
    config = local_config(host_delay_s=0.5, max_depth=10)
    with ScriptedSite(chain_site(3)) as first, ScriptedSite(chain_site(3)) as second:
        started = time.monotonic()
        run_crawl([first.url("/0.html"), second.url("/0.html")], tmp_path, config)
        elapsed = time.monotonic() - started

    assert min(gaps(first.times())) >= 0.5 - TOLERANCE_S
    assert min(gaps(second.times())) >= 0.5 - TOLERANCE_S
    # One host alone needs 4 x 0.5 s from its robots.txt to its last page; in turn both would need twice that.
    assert elapsed < 3.5


def test_per_host_concurrency_limit(tmp_path):
    routes = {f"/{index}.html": slow(0.4, page(images={f"/{index}.jpg": f"Slow photo {index}"})) for index in range(6)}
    routes["/"] = page(links=[f"/{index}.html" for index in range(6)])
    config = local_config(http={"max_per_host": 2})
    with ScriptedSite(routes) as site:
        stats, rows = run_crawl([site.base_url], tmp_path, config)

    assert site.max_concurrent == 2
    assert len(rows) == 6
    assert stats.pages_by_status["ok"] == 7


def test_per_host_page_limit(tmp_path):
    config = local_config(max_depth=10, max_pages_per_host=3)
    with ScriptedSite(chain_site(6)) as first, ScriptedSite(chain_site(2)) as second:
        stats, rows = run_crawl([first.url("/0.html"), second.url("/0.html")], tmp_path, config)
    written = json.loads((tmp_path / "stats.json").read_text())

    assert first.page_paths() == ["/0.html", "/1.html", "/2.html"]
    assert second.page_paths() == ["/0.html", "/1.html"]
    assert stats.extra["pages_requested"] == 5
    assert stats.extra["hosts_limit_hit"] == 1
    assert written["hosts_limit_hit"] == [first.base_url.rstrip("/")]
    assert stats.extra["links_beyond_host_limit"] == 1
    assert len(rows) == 5


def test_global_page_limit_over_hosts(tmp_path):
    config = local_config(max_depth=10, max_pages=4)
    with ScriptedSite(chain_site(5)) as first, ScriptedSite(chain_site(5)) as second:
        stats, _rows = run_crawl([first.url("/0.html"), second.url("/0.html")], tmp_path, config)

    assert len(first.page_paths()) + len(second.page_paths()) == 4
    assert stats.extra["pages_requested"] == 4
