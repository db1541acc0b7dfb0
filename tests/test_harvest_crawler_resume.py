"""Resuming a crawl from its frontier: after a SIGKILL, with larger limits, and from scratch."""

from __future__ import annotations

import collections
import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_harvest_crawler_sites import ScriptedSite, local_config, page, read_candidates, run_crawl

from wit_builder.cli import main
from wit_builder.harvest.crawler import FRONTIER_NAME, CrawlFolderInUseError, crawl_folder
from wit_builder.parquet import list_parts, write_records

REPO_ROOT = Path(__file__).resolve().parents[1]
BRANCHES = 6


def tree_site() -> dict:
    """Routes of a two-level tree: / links to /s/0 ... /s/5, each of which links to six leaves.

    Every page shows one photo of its own and the shared logo, which the crawl keeps once.
    """
    routes = {}
    sections = [f"/s/{a}" for a in range(BRANCHES)]
    routes["/"] = page(images={"/logo.png": "Club logo", "/home.jpg": "Home photo"}, links=sections)
    for section in sections:
        leaves = [f"{section}/{b}" for b in range(BRANCHES)]
        routes[section] = page(images={"/logo.png": "Club logo", f"{section}.jpg": f"Photo of {section}"}, links=leaves)
        for leaf in leaves:
            routes[leaf] = page(images={"/logo.png": "Club logo", f"{leaf}.jpg": f"Photo of {leaf}"}, links=["/"])
    return routes


PAGES = 1 + BRANCHES + BRANCHES * BRANCHES


def crawl_command(seed: str, out_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "wit_builder.cli", "-q", "harvest", "crawl", seed,
        "--out", str(out_dir), "--allow-private", "--max-depth", "3",
        "--host-delay", "0.1", "--flush-interval", "0.3", "--timeout", "5", *extra,
    ]


def frontier_urls(out_dir: Path, state: str) -> set[str]:
    with sqlite3.connect(out_dir / FRONTIER_NAME) as connection:
        return {row[0] for row in connection.execute("SELECT url FROM urls WHERE state = ?", (state,))}


def candidate_keys(out_dir: Path) -> list[tuple[str, str]]:
    return [(row.url, row.text) for row in read_candidates(out_dir)]


def test_killed_crawl_resumes(tmp_path):
    killed_dir = tmp_path / "killed"
    whole_dir = tmp_path / "whole"
    log_path = tmp_path / "crawl.log"
    with ScriptedSite(tree_site()) as site, open(log_path, "w") as log_file:
        process = subprocess.Popen(crawl_command(site.base_url, killed_dir), cwd=REPO_ROOT, stderr=log_file)
        try:
            deadline = time.monotonic() + 60
            while len(site.page_paths()) < PAGES // 2 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.01)
            assert process.poll() is None, "the crawl ended before the test could kill it"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        requested_before_kill = collections.Counter(site.page_paths())
        in_flight_at_kill = {url.removeprefix(site.base_url.rstrip("/")) for url in frontier_urls(killed_dir, "in_flight")}
        parts_at_kill = len(list_parts(killed_dir))

        resumed = subprocess.run(crawl_command(site.base_url, killed_dir), cwd=REPO_ROOT, timeout=120, stderr=log_file)
        log_of_killed_crawl = collections.Counter(site.page_paths())

        site.log.clear()
        whole = subprocess.run(crawl_command(site.base_url, whole_dir), cwd=REPO_ROOT, timeout=120, stderr=log_file)

    repeated = {path for path, count in log_of_killed_crawl.items() if count > 1}
    resumed_keys = candidate_keys(killed_dir)
    whole_keys = candidate_keys(whole_dir)
    stats = json.loads((killed_dir / "stats.json").read_text())

    assert resumed.returncode == 0, log_path.read_text()
    assert whole.returncode == 0, log_path.read_text()
    assert 0 < sum(requested_before_kill.values()) < PAGES
    assert parts_at_kill > 0
    assert repeated <= in_flight_at_kill
    assert set(log_of_killed_crawl) == set(tree_site())
    assert len(resumed_keys) == len(set(resumed_keys))
    assert set(resumed_keys) == set(whole_keys)
    assert len(whole_keys) == PAGES + 1  # one photo a page, and the logo once
    assert stats["runs"] == 2
    assert stats["pages_by_status"] == {"ok": PAGES}
    assert stats["counts"]["candidates"] == len(resumed_keys)
    assert stats["frontier"] == {"done": PAGES}


def test_resume_with_larger_page_limit(tmp_path):
    with ScriptedSite(tree_site()) as site:
        first, _rows = run_crawl([site.base_url], tmp_path, local_config(max_depth=3, max_pages=5))
        second, rows = run_crawl([site.base_url], tmp_path, local_config(max_depth=3, max_pages=20))
    counts = collections.Counter(site.page_paths())

    assert first.extra["pages_requested"] == 5
    assert second.extra["pages_requested"] == 20
    assert sum(counts.values()) == 20
    assert max(counts.values()) == 1
    assert site.paths().count("/robots.txt") == 2
    assert len(rows) == len({row.candidate_id for row in rows})


def test_finished_crawl_not_refetched(tmp_path):
    with ScriptedSite(tree_site()) as site:
        first, first_rows = run_crawl([site.base_url], tmp_path, local_config(max_depth=3))
        site.log.clear()
        second, second_rows = run_crawl([site.base_url], tmp_path, local_config(max_depth=3))

    assert site.page_paths() == []
    assert [row.candidate_id for row in second_rows] == [row.candidate_id for row in first_rows]
    assert second.counts() == first.counts() | {"robots_txt_requested": 0}


def test_restart_fetches_again(tmp_path):
    with ScriptedSite(tree_site()) as site:
        run_crawl([site.base_url], tmp_path, local_config(max_depth=1))
        site.log.clear()
        stats, rows = run_crawl([site.base_url], tmp_path, local_config(max_depth=1), restart=True)
    written = json.loads((tmp_path / "stats.json").read_text())

    assert len(site.page_paths()) == 1 + BRANCHES
    assert written["runs"] == 1
    assert len(rows) == stats.candidates


def test_uncommitted_part_removed(tmp_path):
    with ScriptedSite(tree_site()) as site:
        _stats, rows = run_crawl([site.base_url], tmp_path, local_config(max_depth=1))
        parts = list_parts(tmp_path)
        stray = tmp_path / f"part-{len(parts):05d}.parquet"
        write_records(stray, rows[:1], type(rows[0]))
        (tmp_path / ".part-00099.parquet.tmp-123").write_bytes(b"partial")
        _stats, rows_after = run_crawl([site.base_url], tmp_path, local_config(max_depth=1))

    assert not stray.exists()
    assert not (tmp_path / ".part-00099.parquet.tmp-123").exists()
    assert list_parts(tmp_path) == parts
    assert len(rows_after) == len(rows)


def test_folder_lock_rejects_second_crawl(tmp_path):
    with open(tmp_path / f"{FRONTIER_NAME}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(CrawlFolderInUseError, match="another crawl"):
            crawl_folder(["http://127.0.0.1:9/"], tmp_path, local_config())


def test_cli_seeds_from_file_and_arguments(tmp_path):
    with ScriptedSite(tree_site()) as site:
        seeds_file = tmp_path / "seeds.txt"
        seeds_file.write_text(f"# seed list\n{site.url('/s/1')}\n\n{site.url('/s/2')}  # second\n", encoding="utf-8")
        out_dir = tmp_path / "out"
        code = main([
            "-q", "harvest", "crawl", site.url("/s/0"), "--seeds", str(seeds_file), "--out", str(out_dir),
            "--allow-private", "--max-depth", "0", "--host-delay", "0",
        ])
    written = json.loads((out_dir / "stats.json").read_text())

    assert code == 0
    assert sorted(site.page_paths()) == ["/s/0", "/s/1", "/s/2"]
    assert written["counts"]["seeds"] == 3
    assert written["host_delay_s"] == 0.0
    assert (out_dir / FRONTIER_NAME).is_file()


def test_cli_rejects_folder_in_use(tmp_path):
    with open(tmp_path / f"{FRONTIER_NAME}.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = main(["-q", "harvest", "crawl", "http://127.0.0.1:9/", "--out", str(tmp_path), "--allow-private"])

    assert code == 2
    assert not os.path.exists(tmp_path / FRONTIER_NAME)
