"""End-to-end test of `wit run` on a subset of the bundled sample, and of config errors."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from wit_builder.cli import build_parser, main
from wit_builder.pipeline.config import from_mapping, load_config
from wit_builder.pipeline.runner import select_stages

SMALL_PIPELINE = """
[run]
dir = "{run_dir}"
seed = 0

[queries]
dump = "{samples}/wikipedia/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
min_count = 20
bigram_min_count = 5
max_pages = 60

[harvest]
warc = ["{samples}/commoncrawl/warcfile.warc.gz"]
max_depth = 8
max_pages = 500
host_delay_s = 0.0

[harvest.sample_site]
images = "{samples}/flickr8k/images"
captions = "{samples}/flickr8k/captions.csv"
seed = 0
photos = 60

[harvest.http]
allow_private = true

[match]
ignore_case = true

[balance]
cap = 40

[fetch]
skip_sources = ["warc"]
image_size = 64
resize_mode = "center_crop"
processes = 1

[fetch.http]
allow_private = true

[shards]
samples_per_shard = 12

[train]
epochs = 1
batch_size = 16
image_size = 32
eval_shards = 1

[report]
"""


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, samples_dir) -> Path:
    """Run the whole pipeline once on 60 photos and return the run folder."""
    root = tmp_path_factory.mktemp("pipeline")
    run_dir = root / "run"
    config_path = root / "small.toml"
    config_path.write_text(SMALL_PIPELINE.format(run_dir=run_dir, samples=samples_dir), encoding="utf-8")

    exit_code = main(["run", str(config_path)])

    assert exit_code == 0
    return run_dir


def test_run_writes_every_stage(sample_run):
    for folder in ("queries", "candidates", "matched", "balanced", "fetched", "filtered", "shards", "train", "report"):
        assert (sample_run / folder).is_dir(), folder
    assert (sample_run / "report" / "index.html").is_file()
    assert (sample_run / "train" / "result.json").is_file()
    assert (sample_run / "train" / "loss.png").is_file()


def test_run_records_stage_timings(sample_run):
    record = json.loads((sample_run / "run.json").read_text())

    assert list(record["seconds"]) == list(select_stages(None, None))


def test_every_balanced_row_has_fetch_status(sample_run):
    fetch_input = pq.read_table(sample_run / "fetch_input" / "part-00000.parquet")
    fetched = pq.read_table(sample_run / "fetched" / "part-00000.parquet")

    assert fetched.num_rows == fetch_input.num_rows
    assert fetched.column("key").to_pylist() == fetch_input.column("candidate_id").to_pylist()
    statuses = set(fetched.column("status").to_pylist())
    assert "ok" in statuses
    assert "http_error" in statuses


def test_warc_candidates_matched_not_fetched(sample_run):
    stats = json.loads((sample_run / "fetched" / "stats.json").read_text())
    warc_fetch_input = pq.read_table(sample_run / "fetch_input" / "part-00001.parquet")

    assert warc_fetch_input.num_rows == 0
    assert stats["skip_sources"] == ["warc"]


def test_shards_hold_one_sample_per_photo(sample_run):
    sizes = json.loads((sample_run / "shards" / "sizes.json").read_text())
    keys = []
    for shard in sorted((sample_run / "shards").glob("*.tar")):
        with tarfile.open(shard) as archive:
            names = archive.getnames()
        keys.extend(name.split(".")[0] for name in names if name.endswith(".jpg"))
        assert len(names) == 3 * sizes[shard.name]

    assert len(keys) == len(set(keys))
    assert 30 <= len(keys) <= 60


def test_train_result_has_control(sample_run):
    result = json.loads((sample_run / "train" / "result.json").read_text())

    for field in ("recall", "recall_control"):
        for direction in ("text_to_image", "image_to_text"):
            assert set(result[field][direction]) == {"R@1", "R@5", "R@10"}
    assert result["eval_samples"] > 0


def test_rerun_from_shards_keeps_shards(sample_run, tmp_path):
    config_path = next(sample_run.parent.glob("small.toml"))
    first = {path.name: path.stat().st_mtime_ns for path in (sample_run / "shards").glob("*.tar")}

    exit_code = main(["run", str(config_path), "--from", "shards", "--to", "shards"])

    assert exit_code == 0
    second = {path.name: path.stat().st_mtime_ns for path in (sample_run / "shards").glob("*.tar")}
    assert second == first


def test_parser_lists_every_stage():
    parser = build_parser()
    help_text = parser.format_help()

    for command in ("queries", "harvest", "match", "balance", "fetch", "filter", "shards", "train", "report", "run"):
        assert command in help_text


@pytest.mark.parametrize(
    "table",
    ['[balance]\ncapp = 3', '[fetch]\nimage_sise = 3', '[fetch.http]\nallow_privat = true', '[filter]\nworker = 2', '[train]\nepoch = 2', '[queries.x]\ny = 1'],
)
def test_config_rejects_unknown_key(tmp_path, table):
    config_path = tmp_path / "bad.toml"
    config_path.write_text(f'[queries]\nlist = "q.txt"\n[harvest]\nseeds = ["https://example.org/"]\n{table}\n', encoding="utf-8")

    with pytest.raises(ValueError, match="unknown key"):
        load_config(config_path)


def test_config_rejects_invalid_value(tmp_path):
    config_path = tmp_path / "bad.toml"
    config_path.write_text('[queries]\nlist = "q.txt"\n[harvest]\nseeds = ["https://example.org/"]\n[fetch]\nresize_mode = "stretch"\n', encoding="utf-8")

    with pytest.raises(ValueError, match="invalid resize_mode"):
        load_config(config_path)


def test_from_mapping_builds_nested_tables():
    from wit_builder.fetch.fetcher import FetchConfig

    config = from_mapping(FetchConfig, {"image_size": 32, "http": {"max_per_host": 2}}, "fetch")

    assert config.image_size == 32
    assert config.http.max_per_host == 2


def test_config_requires_query_source(tmp_path):
    config_path = tmp_path / "bad.toml"
    config_path.write_text('[harvest]\nseeds = ["https://example.org/"]\n', encoding="utf-8")

    with pytest.raises(ValueError, match="needs exactly one of 'dump'"):
        load_config(config_path)


def test_missing_config_exit_code(tmp_path, caplog):
    exit_code = main(["run", str(tmp_path / "absent.toml")])

    assert exit_code == 2
    assert "pipeline config not found" in caplog.text
