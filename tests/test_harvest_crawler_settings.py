"""Resumed crawls whose settings changed: failed URLs queued again, warnings, and setting names in messages."""

from __future__ import annotations

import json
import logging

import pytest
from test_harvest_crawler_politeness import chain_site
from test_harvest_crawler_sites import ScriptedSite, html, local_config, page, run_crawl, slow

from wit_builder.cli import main
from wit_builder.harvest.crawl_settings import outcome_settings, plan_resume, setting_name
from wit_builder.harvest.crawler import CrawlConfig

BIG_PAGE = "<html><body>" + "<p>filler</p>" * 100_000 + '<img src="/big.jpg" alt="Big photo"></body></html>'


def warnings_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def test_blocked_seed_requested_after_allow_private(tmp_path, caplog):
    routes = {"/": page(images={"/a.jpg": "Front photo"}, links=["/b.html"]), "/b.html": page(images={"/b.jpg": "Second photo"})}
    seeds_file = tmp_path / "seeds.txt"
    out_dir = tmp_path / "out"
    with ScriptedSite(routes) as site:
        seeds_file.write_text(site.base_url + "\n", encoding="utf-8")
        command = ["-q", "harvest", "crawl", "--seeds", str(seeds_file), "--out", str(out_dir), "--host-delay", "0"]
        with caplog.at_level(logging.INFO):
            blocked_code = main(command)
            blocked_stats = json.loads((out_dir / "stats.json").read_text())
            blocked_warnings = warnings_of(caplog)
            caplog.clear()
            allowed_code = main([*command, "--allow-private"])
    allowed_stats = json.loads((out_dir / "stats.json").read_text())

    assert blocked_code == 0
    assert blocked_stats["pages_by_status"] == {"blocked_address": 1}
    assert any("--allow-private / http.allow_private allows" in message for message in blocked_warnings)
    assert allowed_code == 0
    assert site.page_paths() == ["/", "/b.html"]
    assert allowed_stats["pages_by_status"] == {"ok": 2}
    assert allowed_stats["counts"]["candidates"] == 2
    assert allowed_stats["runs"] == 2
    assert any("failed with blocked_address again" in record.getMessage() for record in caplog.records)


def test_too_large_retried_after_larger_limit(tmp_path):
    routes = {"/": page(images={"/s.jpg": "Small photo"}, links=["/big.html"]), "/big.html": html(BIG_PAGE)}
    with ScriptedSite(routes) as site:
        first, _rows = run_crawl([site.base_url], tmp_path, local_config(max_page_bytes=512 * 1024))
        same, _rows = run_crawl([site.base_url], tmp_path, local_config(max_page_bytes=512 * 1024))
        paths_before_raise = site.page_paths()
        larger, rows = run_crawl([site.base_url], tmp_path, local_config(max_page_bytes=4 * 1024 * 1024))

    assert first.pages_by_status["too_large"] == 1
    assert same.pages_by_status["too_large"] == 1
    assert paths_before_raise == ["/", "/big.html"]
    assert site.page_paths() == ["/", "/big.html", "/big.html"]
    assert larger.pages_by_status["too_large"] == 0
    assert larger.pages_by_status["ok"] == 2
    assert {row.text for row in rows} == {"Small photo", "Big photo"}


def test_crawl_delay_too_long_retried_after_larger_limit(tmp_path, caplog):
    routes = chain_site(2, robots="User-agent: *\nCrawl-delay: 0.3\n")
    with ScriptedSite(routes) as site:
        with caplog.at_level(logging.WARNING):
            first, _rows = run_crawl([site.url("/0.html")], tmp_path, local_config(max_depth=5, max_crawl_delay_s=0.1))
        second, rows = run_crawl([site.url("/0.html")], tmp_path, local_config(max_depth=5, max_crawl_delay_s=1.0))
    written = json.loads((tmp_path / "stats.json").read_text())

    assert first.pages_by_status["crawl_delay_too_long"] == 1
    assert any("more than --max-crawl-delay / max_crawl_delay_s 0.1 s" in message for message in warnings_of(caplog))
    assert site.page_paths() == ["/0.html", "/1.html"]
    assert second.pages_by_status == {"ok": 2}
    assert written["crawl_delay_too_long_s"] == {}
    assert len(rows) == 2


def test_timeout_retried_after_longer_timeout(tmp_path):
    routes = {"/": page(images={"/f.jpg": "Fast photo"}, links=["/slow"]), "/slow": slow(1.0, page(images={"/s.jpg": "Slow photo"}))}
    with ScriptedSite(routes) as site:
        first, _rows = run_crawl([site.base_url], tmp_path, local_config(http={"timeout_s": 0.3}))
        second, rows = run_crawl([site.base_url], tmp_path, local_config(http={"timeout_s": 5.0}))

    assert first.pages_by_status["timeout"] == 1
    assert site.page_paths() == ["/", "/slow", "/slow"]
    assert second.pages_by_status == {"ok": 2}
    assert {row.text for row in rows} == {"Fast photo", "Slow photo"}


def test_larger_host_limit_continues(tmp_path):
    with ScriptedSite(chain_site(5)) as site:
        first, _rows = run_crawl([site.url("/0.html")], tmp_path, local_config(max_depth=10, max_pages_per_host=2))
        second, rows = run_crawl([site.url("/0.html")], tmp_path, local_config(max_depth=10, max_pages_per_host=4))

    assert first.extra["pages_requested"] == 2
    assert second.extra["pages_requested"] == 4
    assert site.page_paths() == ["/0.html", "/1.html", "/2.html", "/3.html"]
    assert len(rows) == 4


def test_idle_resume_warns_about_failures(tmp_path, caplog):
    routes = {"/": page(links=["/missing.html", "/big.html"]), "/big.html": html(BIG_PAGE)}
    config = local_config(max_page_bytes=512 * 1024)
    with ScriptedSite(routes) as site:
        run_crawl([site.base_url], tmp_path, config)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            run_crawl([site.base_url], tmp_path, config)
    messages = [message for message in warnings_of(caplog) if "requested no pages" in message]

    assert len(site.page_paths()) == 3
    assert len(messages) == 1
    assert "2 failed URLs (http_error 1, too_large 1)" in messages[0]
    assert "--restart" in messages[0]


def test_idle_resume_names_page_limit(tmp_path, caplog):
    with ScriptedSite(chain_site(4)) as site:
        run_crawl([site.url("/0.html")], tmp_path, local_config(max_depth=10, max_pages=2))
        with caplog.at_level(logging.WARNING):
            run_crawl([site.url("/0.html")], tmp_path, local_config(max_depth=10, max_pages=2))

    assert any("reached --max-pages / max_pages 2" in message for message in warnings_of(caplog))


def test_larger_depth_warns(tmp_path, caplog):
    with ScriptedSite(chain_site(3)) as site:
        run_crawl([site.url("/0.html")], tmp_path, local_config(max_depth=0))
        with caplog.at_level(logging.WARNING):
            run_crawl([site.url("/0.html")], tmp_path, local_config(max_depth=2))

    assert any("--max-depth / max_depth grew from 0 to 2" in message for message in warnings_of(caplog))


def test_plan_retries_only_loosened_settings():
    old = outcome_settings(local_config())
    stricter = outcome_settings(local_config(max_page_bytes=1024, max_crawl_delay_s=1.0, http={"timeout_s": 1.0}))
    looser = outcome_settings(
        local_config(max_page_bytes=10**8, respect_crawl_delay=False, http={"timeout_s": 60.0, "max_redirects": 9})
    )

    assert plan_resume(old, old).retry == {}
    assert plan_resume(old, stricter).retry == {}
    assert plan_resume({}, looser).retry == {}
    assert plan_resume(old, looser).retry == {
        "too_large": ["max_page_bytes"],
        "timeout": ["http.timeout_s"],
        "too_many_redirects": ["http.max_redirects"],
        "crawl_delay_too_long": ["respect_crawl_delay"],
    }


def test_plan_warns_about_all_hosts():
    old = outcome_settings(local_config())
    new = outcome_settings(local_config(same_host_only=False))

    assert plan_resume(old, new).retry == {}
    assert ["--all-hosts is set now" in warning for warning in plan_resume(old, new).warnings] == [True]


def test_setting_name_has_flag_and_key():
    assert setting_name("max_crawl_delay_s") == "--max-crawl-delay / max_crawl_delay_s"
    assert setting_name("http.timeout_s") == "--timeout / http.timeout_s"
    assert setting_name("flush_candidates") == "flush_candidates"


def test_config_error_names_flag():
    with pytest.raises(ValueError, match="--max-depth / max_depth must not be negative"):
        CrawlConfig(max_depth=-1)


def test_cli_rejects_negative_depth(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        code = main(["-q", "harvest", "crawl", "http://127.0.0.1:9/", "--out", str(tmp_path), "--max-depth", "-1"])

    assert code == 2
    assert any("--max-depth / max_depth" in record.getMessage() for record in caplog.records)
