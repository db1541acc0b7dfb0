"""The harvest stage of `wit run` with Common Crawl inputs: paths, URLs and path lists."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from aiohttp import web

from wit_builder.localserver import BackgroundServer
from wit_builder.parquet import iter_records, list_parts
from wit_builder.pipeline.config import load_config
from wit_builder.pipeline.runner import PipelineRunner
from wit_builder.records import Candidate

SAMPLE_WARC = Path(__file__).resolve().parent.parent / "samples" / "commoncrawl" / "warcfile.warc.gz"


def write_config(tmp_path: Path, harvest: str) -> Path:
    (tmp_path / "q.txt").write_text("photo\n", encoding="utf-8")
    path = tmp_path / "pipeline.toml"
    path.write_text(f'[run]\ndir = "run"\n[queries]\nlist = "q.txt"\n[harvest]\n{harvest}\n', encoding="utf-8")
    return path


def harvest_stats(config_path: Path) -> dict:
    config = load_config(config_path)
    PipelineRunner(config).run(["harvest"])
    return json.loads((config.stage_dir("candidates") / "stats.json").read_text(encoding="utf-8"))


async def serve_warc(request: web.Request) -> web.FileResponse:
    return web.FileResponse(SAMPLE_WARC)


def warc_app() -> web.Application:
    application = web.Application()
    application.router.add_get("/warcfile.warc.gz", serve_warc)
    return application


def candidate_count(config_path: Path) -> int:
    out_dir = load_config(config_path).stage_dir("candidates")
    return sum(1 for part in list_parts(out_dir) for _ in iter_records(part, Candidate))


def test_config_keeps_urls_and_resolves_paths(tmp_path):
    path = write_config(
        tmp_path,
        'warc = ["cc/a.warc.gz", "s3://commoncrawl/crawl-data/b.warc.gz"]\n'
        'wat = ["https://data.commoncrawl.org/c.warc.wat.gz"]\n'
        'paths = ["wat.paths.gz"]\nbase_url = "https://data.commoncrawl.org/"\narchive_workers = 2',
    )

    harvest = load_config(path).harvest

    assert harvest.warc == [str(tmp_path / "cc" / "a.warc.gz"), "s3://commoncrawl/crawl-data/b.warc.gz"]
    assert harvest.wat == ["https://data.commoncrawl.org/c.warc.wat.gz"]
    assert harvest.paths == [str(tmp_path / "wat.paths.gz")]
    assert harvest.base_url == "https://data.commoncrawl.org/"
    assert harvest.archive_workers == 2
    assert harvest.has_archives


@pytest.mark.parametrize("value", ["0", '"2"'])
def test_config_rejects_invalid_archive_workers(tmp_path, value):
    path = write_config(tmp_path, f'warc = ["a.warc.gz"]\narchive_workers = {value}')

    with pytest.raises(ValueError, match="archive_workers"):
        load_config(path)


def test_config_accepts_paths_list_alone(tmp_path):
    path = write_config(tmp_path, 'paths = ["warc.paths.gz"]')

    assert load_config(path).harvest.paths == [str(tmp_path / "warc.paths.gz")]


def test_paths_list_harvested_and_failure_recorded(tmp_path):
    archive_dir = tmp_path / "archives"
    archive_dir.mkdir()
    (archive_dir / "warcfile.warc.gz").write_bytes(SAMPLE_WARC.read_bytes())
    listing = "warcfile.warc.gz\nmissing.warc.gz\n"
    (tmp_path / "warc.paths.gz").write_bytes(gzip.compress(listing.encode()))
    path = write_config(tmp_path, 'paths = ["warc.paths.gz"]\nbase_url = "archives"')

    stats = harvest_stats(path)

    assert stats["counts"]["candidates"] > 0
    assert candidate_count(path) == stats["counts"]["candidates"]
    assert [failure["input"] for failure in stats["failures"]] == [str(archive_dir / "missing.warc.gz")]
    assert stats["counts"]["inputs"] == 2
    assert stats["counts"]["inputs_failed"] == 1
    assert stats["partitions"]["input-00000"]["source"] == f"warc:{archive_dir / 'warcfile.warc.gz'}"
    assert stats["partitions"]["input-00000"]["status"] == "ok"
    assert stats["partitions"]["input-00001"]["status"] == "failed"


def test_input_listed_twice_read_once(tmp_path):
    (tmp_path / "warc.paths").write_text(f"{SAMPLE_WARC}\n", encoding="utf-8")
    path = write_config(tmp_path, f'warc = ["{SAMPLE_WARC}"]\npaths = ["warc.paths"]')

    stats = harvest_stats(path)

    assert stats["counts"]["inputs"] == 1
    assert candidate_count(path) == stats["counts"]["candidates"] > 0


@pytest.mark.parametrize("key", ["warc", "wat", "paths", "seeds"])
def test_config_rejects_string_in_place_of_list(tmp_path, key):
    path = write_config(tmp_path, f'{key} = "a.warc.gz"')

    with pytest.raises(ValueError, match=f"{key} in .* must be a list of strings"):
        load_config(path)


def test_config_unknown_key_lists_archive_keys(tmp_path):
    path = write_config(tmp_path, 'wats = ["a.warc.wat.gz"]')

    with pytest.raises(ValueError, match="unknown key.*'wats'") as raised:
        load_config(path)

    for key in ("warc", "wat", "wet", "paths", "base_url", "archive_workers", "max_depth"):
        assert f"'{key}'" in str(raised.value)


def test_missing_paths_list_is_clear_error(tmp_path):
    path = write_config(tmp_path, 'paths = ["nothere.paths.gz"]')

    with pytest.raises(ValueError, match="paths.*nothere.paths.gz"):
        PipelineRunner(load_config(path)).run(["harvest"])


def test_same_candidates_from_path_and_url(tmp_path):
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    local = write_config(local_dir, f'warc = ["{SAMPLE_WARC}"]')
    local_stats = harvest_stats(local)

    with BackgroundServer(warc_app) as server:
        remote_dir = tmp_path / "remote"
        remote_dir.mkdir()
        remote = write_config(remote_dir, f'warc = ["{server.base_url.rstrip("/")}/warcfile.warc.gz"]\n[harvest.http]\nallow_private = true')
        remote_stats = harvest_stats(remote)

    assert remote_stats["counts"]["candidates"] == local_stats["counts"]["candidates"] > 0
    assert remote_stats["failures"] == []


def test_loopback_url_rejected_without_allow_private(tmp_path):
    with BackgroundServer(warc_app) as server:
        path = write_config(tmp_path, f'warc = ["{server.base_url.rstrip("/")}/warcfile.warc.gz"]')
        stats = harvest_stats(path)

    assert stats["counts"]["candidates"] == 0
    assert len(stats["failures"]) == 1
    assert stats["failures"][0]["status"] == "failed"
