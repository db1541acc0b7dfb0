"""The crawler against misbehaving loopback servers: redirects, content types, sizes and slow pages."""

from __future__ import annotations

import collections
import json
import time

from test_harvest_crawler_sites import (
    ScriptedSite,
    body,
    html,
    local_config,
    page,
    redirect,
    run_crawl,
    slow,
    streamed,
)


def test_redirect_loop_requested_once(tmp_path):
    routes = {
        "/": page(links=["/loop-a", "/self"]),
        "/loop-a": redirect("/loop-b"),
        "/loop-b": redirect("/loop-a"),
        "/self": redirect("/self", status=301),
    }
    with ScriptedSite(routes) as site:
        stats, _rows = run_crawl([site.base_url], tmp_path, local_config())
    counts = collections.Counter(site.page_paths())

    assert counts == {"/": 1, "/loop-a": 1, "/loop-b": 1, "/self": 1}
    assert stats.pages_by_status["redirect"] == 3
    assert stats.extra["redirects"] == 3
    assert stats.extra["redirects_seen_before"] == 2


def test_redirect_chain_limited(tmp_path):
    routes = {f"/hop/{index}": redirect(f"/hop/{index + 1}") for index in range(10)}
    config = local_config(http={"max_redirects": 3})
    with ScriptedSite(routes) as site:
        stats, _rows = run_crawl([site.url("/hop/0")], tmp_path, config)

    assert site.page_paths() == ["/hop/0", "/hop/1", "/hop/2", "/hop/3"]
    assert stats.pages_by_status["redirect"] == 3
    assert stats.pages_by_status["too_many_redirects"] == 1


def test_redirect_target_parsed_at_same_depth(tmp_path):
    routes = {
        "/": page(links=["/moved"]),
        "/moved": redirect("/new-home", status=301),
        "/new-home": page(images={"/n.jpg": "Moved photo"}, links=["/deeper.html"]),
        "/deeper.html": page(images={"/d.jpg": "Deeper photo"}),
    }
    with ScriptedSite(routes) as site:
        _stats, rows = run_crawl([site.base_url], tmp_path, local_config(max_depth=1))

    assert "Moved photo" in {row.text for row in rows}
    assert "/deeper.html" not in site.paths()
    assert {row.page_url for row in rows if row.text == "Moved photo"} == {site.url("/new-home")}


def test_redirect_to_disallowed_path_not_fetched(tmp_path):
    routes = {
        "/robots.txt": html("User-agent: *\nDisallow: /private/\n", "text/plain"),
        "/": page(links=["/go"]),
        "/go": redirect("/private/target.html"),
        "/private/target.html": page(images={"/p.jpg": "Private photo"}),
    }
    with ScriptedSite(routes) as site:
        stats, rows = run_crawl([site.base_url], tmp_path, local_config())

    assert "/private/target.html" not in site.paths()
    assert stats.pages_by_status["robots_disallowed"] == 1
    assert stats.extra["robots_disallowed"] == 1
    assert rows == []


def test_redirect_to_other_host_checks_its_robots(tmp_path):
    target_routes = {
        "/robots.txt": html("User-agent: wit-builder\nDisallow: /closed/\n", "text/plain"),
        "/closed/page.html": page(images={"/x.jpg": "Closed photo"}),
        "/open.html": page(images={"/o.jpg": "Open photo"}),
    }
    with ScriptedSite(target_routes) as target:
        routes = {
            "/": redirect(target.url("/closed/page.html")),
            "/two": redirect(target.url("/open.html")),
        }
        with ScriptedSite(routes) as source:
            stats, rows = run_crawl([source.base_url, source.url("/two")], tmp_path, local_config())

    assert target.paths() == ["/robots.txt", "/open.html"]
    assert stats.pages_by_status["robots_disallowed"] == 1
    assert {row.text for row in rows} == {"Open photo"}


def test_redirect_offsite_from_link_not_followed(tmp_path):
    with ScriptedSite({"/": page(images={"/e.jpg": "Elsewhere photo"})}) as elsewhere:
        routes = {"/": page(links=["/away"]), "/away": redirect(elsewhere.base_url)}
        with ScriptedSite(routes) as site:
            stats, _rows = run_crawl([site.base_url], tmp_path, local_config())

    assert elsewhere.paths() == []
    assert stats.extra["redirects_offsite"] == 1


def test_seed_redirect_to_other_host_followed(tmp_path):
    target_routes = {
        "/": page(images={"/t.jpg": "Target photo"}, links=["/more.html"]),
        "/more.html": page(images={"/m.jpg": "More photo"}),
    }
    with ScriptedSite(target_routes) as target:
        with ScriptedSite({"/": redirect(target.base_url, status=301)}) as seed:
            _stats, rows = run_crawl([seed.base_url], tmp_path, local_config())

    assert {row.text for row in rows} == {"Target photo", "More photo"}
    assert target.page_paths() == ["/", "/more.html"]


def test_redirect_to_other_scheme_invalid(tmp_path):
    routes = {"/": page(links=["/ftp"]), "/ftp": redirect("ftp://127.0.0.1/file")}
    with ScriptedSite(routes) as site:
        stats, _rows = run_crawl([site.base_url], tmp_path, local_config())

    assert stats.pages_by_status["invalid_url"] == 1


def test_non_html_counted_by_type(tmp_path):
    routes = {
        "/": page(links=["/notes", "/data", "/picture", "/page.xhtml"]),
        "/notes": html("<img src='/n.jpg' alt='not parsed'>", "text/plain"),
        "/data": body(b'{"alt": "not parsed"}', "application/json"),
        "/picture": body(b"\x89PNG\r\n\x1a\n", "image/png"),
        "/page.xhtml": html(
            '<html xmlns="http://www.w3.org/1999/xhtml"><body><img src="/x.jpg" alt="XHTML photo"/></body></html>',
            "application/xhtml+xml",
        ),
    }
    with ScriptedSite(routes) as site:
        stats, rows = run_crawl([site.base_url], tmp_path, local_config())
    written = json.loads((tmp_path / "stats.json").read_text())

    assert {row.text for row in rows} == {"XHTML photo"}
    assert stats.pages_parsed == 2
    assert stats.extra["pages_not_html"] == 3
    assert written["pages_by_content_type"] == {
        "application/json": 1,
        "application/xhtml+xml": 1,
        "image/png": 1,
        "text/html": 1,
        "text/plain": 1,
    }


def test_non_html_suffix_not_requested(tmp_path):
    routes = {"/": page(links=["/photo.jpg", "/archive.zip", "/page.html"]), "/page.html": page()}
    with ScriptedSite(routes) as site:
        stats, _rows = run_crawl([site.base_url], tmp_path, local_config())

    assert site.page_paths() == ["/", "/page.html"]
    assert stats.extra["links_not_html"] == 2


def test_oversize_pages_too_large(tmp_path):
    big = "<html><body>" + "<p>filler</p>" * 200_000 + '<img src="/big.jpg" alt="Big photo"></body></html>'
    routes = {
        "/": page(images={"/s.jpg": "Small photo"}, links=["/declared", "/chunked"]),
        "/declared": html(big),
        "/chunked": streamed(3 * 1024 * 1024),
    }
    config = local_config(max_page_bytes=1024 * 1024)
    with ScriptedSite(routes) as site:
        stats, rows = run_crawl([site.base_url], tmp_path, config)

    assert stats.pages_by_status["too_large"] == 2
    assert {row.text for row in rows} == {"Small photo"}


def test_slow_page_hits_deadline(tmp_path):
    routes = {
        "/": page(images={"/f.jpg": "Fast photo"}, links=["/slow"]),
        "/slow": slow(5.0, page(images={"/s.jpg": "Slow photo"})),
    }
    config = local_config(http={"timeout_s": 0.5})
    with ScriptedSite(routes) as site:
        started = time.monotonic()
        stats, rows = run_crawl([site.base_url], tmp_path, config)
        elapsed = time.monotonic() - started

    assert stats.pages_by_status["timeout"] == 1
    assert {row.text for row in rows} == {"Fast photo"}
    assert elapsed < 4.0


def test_http_errors_counted(tmp_path):
    routes = {"/": page(links=["/missing", "/gone"])}
    with ScriptedSite(routes) as site:
        stats, _rows = run_crawl([site.base_url], tmp_path, local_config())

    assert stats.pages_by_status["http_error"] == 2
    assert stats.http_statuses[404] == 2
