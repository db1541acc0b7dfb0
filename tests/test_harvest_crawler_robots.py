"""robots.txt parsing, and how the crawler treats robots.txt files that loopback servers send."""

from __future__ import annotations

import json
import time

import pytest
from test_harvest_crawler_sites import ScriptedSite, html, local_config, page, redirect, run_crawl, slow, status

from wit_builder.harvest.robots import MAX_ROBOTS_BYTES, RobotsOutcome, normalize_path, parse_robots

ORIGIN = "http://example.test:80"


def allows(robots: str, path: str) -> bool:
    return parse_robots(ORIGIN, robots.encode()).allows(ORIGIN + path)


def test_parse_longest_match_wins():
    robots = "User-agent: *\nDisallow: /shop\nAllow: /shop/public\n"

    assert not allows(robots, "/shop/cart")
    assert allows(robots, "/shop/public/item")
    assert allows(robots, "/other")


def test_parse_allow_wins_tie():
    robots = "User-agent: *\nDisallow: /page\nAllow: /page\n"

    assert allows(robots, "/page")


def test_parse_wildcards_and_end_anchor():
    robots = "User-agent: *\nDisallow: /*.pdf$\nDisallow: /*?session=\n"

    assert not allows(robots, "/files/report.pdf")
    assert allows(robots, "/files/report.pdf.html")
    assert not allows(robots, "/list?session=12")
    assert allows(robots, "/list?page=2")


def test_parse_percent_encoding_normalized():
    robots = "User-agent: *\nDisallow: /caf%C3%A9\nDisallow: /%7Euser\n"

    assert not allows(robots, "/café/menu")
    assert not allows(robots, "/caf%c3%a9/menu")
    assert not allows(robots, "/~user/home")
    assert normalize_path("/a%2fb%41") == "/a%2FbA"


def test_parse_product_token_group():
    robots = (
        "User-agent: *\nDisallow: /\n\n"
        "User-agent: Wit-Builder/2.0\nDisallow: /private/\n\n"
        "User-agent: wit\nDisallow: /short-token/\n"
    )

    assert allows(robots, "/public")
    assert not allows(robots, "/private/x")
    assert allows(robots, "/short-token/x")


def test_parse_groups_for_token_merged():
    robots = "User-agent: wit-builder\nDisallow: /a/\n\nUser-agent: other\nUser-agent: wit-builder\nDisallow: /b/\n"

    assert not allows(robots, "/a/1")
    assert not allows(robots, "/b/1")


def test_parse_rules_before_user_agent_ignored():
    robots = "Disallow: /\nUser-agent: *\nDisallow: /private/\n"

    assert allows(robots, "/public")
    assert not allows(robots, "/private/x")


def test_parse_empty_disallow_allows_all():
    assert allows("User-agent: *\nDisallow:\n", "/anything")


def test_parse_robots_txt_always_allowed():
    assert allows("User-agent: *\nDisallow: /\n", "/robots.txt")


def test_parse_crawl_delay():
    rules = parse_robots(ORIGIN, b"User-agent: *\nCrawl-delay: 0.5\nCrawl-delay: 2\nCrawl-delay: soon\n")
    invalid = parse_robots(ORIGIN, b"User-agent: *\nCrawl-delay: -1\nCrawl-delay: nan\n")
    other_group = parse_robots(ORIGIN, b"User-agent: otherbot\nCrawl-delay: 9\n")

    assert rules.crawl_delay_s == 2.0
    assert invalid.crawl_delay_s is None
    assert other_group.crawl_delay_s is None


def test_parse_bom_and_comments():
    rules = parse_robots(ORIGIN, "\ufeffUser-agent: * # all\nDisallow: /x # not y\n".encode())

    assert not rules.allows(ORIGIN + "/x")
    assert rules.allows(ORIGIN + "/y")


def test_parse_cuts_long_file_at_line():
    head = b"User-agent: *\nDisallow: /private/\n"
    padding = b"# " + b"p" * 98 + b"\n"
    body = head + padding * (MAX_ROBOTS_BYTES // len(padding) + 1) + b"Disallow: /\n"
    rules = parse_robots(ORIGIN, body)

    assert rules.truncated
    assert rules.allows(ORIGIN + "/page")
    assert not rules.allows(ORIGIN + "/private/x")


SMALL_PAGES = {
    "/": page(images={"/a.jpg": "Front photo"}, links=["/two.html", "/private/secret.html"]),
    "/two.html": page(images={"/b.jpg": "Second photo"}),
    "/private/secret.html": page(images={"/c.jpg": "Secret photo"}),
}


def test_robots_not_found_allows_all(tmp_path):
    with ScriptedSite(dict(SMALL_PAGES)) as site:
        stats, rows = run_crawl([site.base_url], tmp_path, local_config())
    written = json.loads((tmp_path / "stats.json").read_text())

    assert {row.text for row in rows} == {"Front photo", "Second photo", "Secret photo"}
    assert site.paths().count("/robots.txt") == 1
    assert written["robots_txt"] == {RobotsOutcome.UNAVAILABLE.value: 1}


@pytest.mark.parametrize("code", [500, 503, 429])
def test_robots_server_error_disallows_host(tmp_path, code):
    routes = {**SMALL_PAGES, "/robots.txt": status(code)}
    with ScriptedSite(routes) as site:
        stats, rows = run_crawl([site.base_url], tmp_path, local_config())

    assert site.paths() == ["/robots.txt"]
    assert dict(stats.pages_by_status) == {"robots_unreachable": 1}
    assert rows == []


def test_robots_unreachable_retried_on_resume(tmp_path):
    routes = {**SMALL_PAGES, "/robots.txt": status(503)}
    with ScriptedSite(routes) as site:
        run_crawl([site.base_url], tmp_path, local_config())
        site.routes["/robots.txt"] = html("User-agent: *\nDisallow: /private/\n", "text/plain")
        stats, rows = run_crawl([site.base_url], tmp_path, local_config())

    assert site.paths() == ["/robots.txt", "/robots.txt", "/", "/two.html"]
    assert {row.text for row in rows} == {"Front photo", "Second photo"}
    assert stats.pages_by_status["robots_unreachable"] == 0
    assert stats.pages_by_status["robots_disallowed"] == 1


def test_robots_timeout_disallows_host(tmp_path):
    routes = {**SMALL_PAGES, "/robots.txt": slow(5.0, html("User-agent: *\nDisallow:\n", "text/plain"))}
    config = local_config(http={"timeout_s": 0.5})
    with ScriptedSite(routes) as site:
        started = time.monotonic()
        stats, _rows = run_crawl([site.base_url], tmp_path, config)
        elapsed = time.monotonic() - started

    assert site.paths() == ["/robots.txt"]
    assert dict(stats.pages_by_status) == {"robots_unreachable": 1}
    assert elapsed < 4.0


def test_robots_huge_file_start_honoured(tmp_path):
    head = "User-agent: *\nDisallow: /private/\n"
    padding = "# " + "p" * 98 + "\n"
    robots = head + padding * (2 * MAX_ROBOTS_BYTES // len(padding)) + "Disallow: /\n"
    routes = {**SMALL_PAGES, "/robots.txt": html(robots, "text/plain")}
    with ScriptedSite(routes) as site:
        stats, rows = run_crawl([site.base_url], tmp_path, local_config())
    written = json.loads((tmp_path / "stats.json").read_text())

    assert site.page_paths() == ["/", "/two.html"]
    assert {row.text for row in rows} == {"Front photo", "Second photo"}
    assert stats.pages_by_status["robots_disallowed"] == 1
    assert written["robots_txt"] == {RobotsOutcome.PARSED.value: 1}


def test_robots_redirect_followed(tmp_path):
    routes = {
        **SMALL_PAGES,
        "/robots.txt": redirect("/rules/robots.txt"),
        "/rules/robots.txt": html("User-agent: *\nDisallow: /two.html\n", "text/plain"),
    }
    with ScriptedSite(routes) as site:
        stats, _rows = run_crawl([site.base_url], tmp_path, local_config())

    assert "/two.html" not in site.paths()
    assert "/private/secret.html" in site.paths()
    assert stats.pages_by_status["robots_disallowed"] == 1


def test_robots_requested_once_per_host(tmp_path):
    routes = dict(SMALL_PAGES)
    with ScriptedSite(routes) as first, ScriptedSite(routes) as second:
        seeds = [first.base_url, first.url("/two.html"), second.base_url]
        stats, _rows = run_crawl(seeds, tmp_path, local_config(http={"max_per_host": 4}))

    assert first.paths().count("/robots.txt") == 1
    assert second.paths().count("/robots.txt") == 1
    assert first.paths()[0] == "/robots.txt"
    assert stats.extra["robots_txt_requested"] == 2
