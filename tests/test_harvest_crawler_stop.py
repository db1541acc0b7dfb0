"""Stopping a crawl with SIGTERM or SIGINT: results committed, stats.json written, and a clean resume."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web
from test_harvest_crawler_resume import PAGES, REPO_ROOT, candidate_keys, crawl_command, tree_site
from test_harvest_crawler_sites import Handler, ScriptedSite, local_config, run_crawl, slow

from wit_builder.harvest.crawler import FRONTIER_NAME, CrawlStopped, crawl_folder
from wit_builder.parquet import list_parts

SLOW_LEAF = "/s/0/0"


def hang_until(release: threading.Event, then: Handler) -> Handler:
    """Respond with ``then`` once ``release`` is set, so that the test decides when a request ends."""

    async def handle(request: web.Request) -> web.StreamResponse:
        while not release.is_set():
            await asyncio.sleep(0.05)
        return await then(request)

    return handle


def stop_command(seed: str, out_dir: Path) -> list[str]:
    """The resume tests' crawl command with a larger host delay, and no flush before the stop."""
    return [*crawl_command(seed, out_dir), "--host-delay", "0.2", "--flush-interval", "600"]


def frontier_states(out_dir: Path) -> dict[str, int]:
    with sqlite3.connect(out_dir / FRONTIER_NAME) as connection:
        return dict(connection.execute("SELECT state, COUNT(*) FROM urls GROUP BY state").fetchall())


def wait_for_request(site: ScriptedSite, path: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while path not in site.page_paths() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert path in site.page_paths(), "the crawl did not request the page the test waits for"


def test_sigterm_commits_and_resumes(tmp_path):
    out_dir = tmp_path / "out"
    log_path = tmp_path / "crawl.log"
    routes = tree_site()
    routes[SLOW_LEAF] = slow(1.0, routes[SLOW_LEAF])
    with ScriptedSite(routes) as site, open(log_path, "w") as log_file:
        process = subprocess.Popen(stop_command(site.base_url, out_dir), cwd=REPO_ROOT, stderr=log_file)
        try:
            wait_for_request(site, SLOW_LEAF, process)
            process.send_signal(signal.SIGTERM)
            stopped_code = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        requested_before_resume = len(site.page_paths())
        stopped_stats = json.loads((out_dir / "stats.json").read_text())
        stopped_states = frontier_states(out_dir)
        parts_at_stop = len(list_parts(out_dir))

        resumed = subprocess.run(stop_command(site.base_url, out_dir), cwd=REPO_ROOT, timeout=120, stderr=log_file)
    log = log_path.read_text()
    requests = collections.Counter(site.page_paths())
    resumed_stats = json.loads((out_dir / "stats.json").read_text())

    assert stopped_code == 143, log
    assert "SIGTERM received" in log
    assert "crawl stopped by SIGTERM" in log
    assert "rerun the same command to resume" in log
    assert "Traceback" not in log
    assert stopped_stats["counts"]["pages_requested"] == requested_before_resume
    assert stopped_states.get("in_flight", 0) == 0
    assert stopped_states["done"] == requested_before_resume
    assert parts_at_stop == 1
    assert resumed.returncode == 0, log
    assert set(requests) == set(tree_site())
    assert max(requests.values()) == 1
    assert resumed_stats["pages_by_status"] == {"ok": PAGES}
    assert len(candidate_keys(out_dir)) == PAGES + 1


def test_second_sigint_cancels_requests(tmp_path):
    out_dir = tmp_path / "out"
    log_path = tmp_path / "crawl.log"
    release = threading.Event()
    routes = tree_site()
    routes[SLOW_LEAF] = hang_until(release, routes[SLOW_LEAF])
    with ScriptedSite(routes) as site, open(log_path, "w") as log_file:
        process = subprocess.Popen(stop_command(site.base_url, out_dir), cwd=REPO_ROOT, stderr=log_file)
        try:
            wait_for_request(site, SLOW_LEAF, process)
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            time.sleep(0.3)
            process.send_signal(signal.SIGINT)
            stopped_code = process.wait(timeout=30)
            elapsed = time.monotonic() - started
        finally:
            release.set()
            if process.poll() is None:
                process.kill()
    log = log_path.read_text()
    stats = json.loads((out_dir / "stats.json").read_text())

    assert stopped_code == 130, log
    assert elapsed < 4.0
    assert "crawl stopped by SIGINT" in log
    assert frontier_states(out_dir)["in_flight"] == 1
    assert stats["counts"]["pages_requested"] == len(site.page_paths()) - 1


def test_grace_period_cancels_slow_request(tmp_path):
    release = threading.Event()

    async def signal_then_hang(request: web.Request) -> web.StreamResponse:
        # The crawl installs its handlers before its first request, so the signal reaches them.
        os.kill(os.getpid(), signal.SIGTERM)
        return await hang_until(release, tree_site()["/"])(request)

    handler_before = signal.getsignal(signal.SIGTERM)
    config = local_config(stop_grace_s=0.3)
    with ScriptedSite({"/": signal_then_hang}) as site:
        started = time.monotonic()
        try:
            with pytest.raises(CrawlStopped) as stopped:
                crawl_folder([site.base_url], tmp_path, config, stop_on_signals=True)
        finally:
            release.set()
        elapsed = time.monotonic() - started

    assert stopped.value.exit_code == 143
    assert stopped.value.signal_name == "SIGTERM"
    assert elapsed < 5.0
    assert frontier_states(tmp_path) == {"in_flight": 1}
    assert (tmp_path / "stats.json").is_file()
    assert signal.getsignal(signal.SIGTERM) is handler_before


def test_handlers_kept_without_option(tmp_path):
    handler_before = signal.getsignal(signal.SIGINT)
    with ScriptedSite(tree_site()) as site:
        stats, _rows = run_crawl([site.base_url], tmp_path, local_config(max_depth=0))

    assert stats.pages_by_status["ok"] == 1
    assert signal.getsignal(signal.SIGINT) is handler_before
