"""Tests for the HTML run report, built from real sample photos and parquet files."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from wit_builder.cli import main
from wit_builder.localserver import BackgroundServer
from wit_builder.parquet import write_records
from wit_builder.records import (
    Candidate,
    FetchResult,
    FetchStatus,
    FilterDecision,
    MatchedCandidate,
    QueryEntry,
    candidate_id,
)
from wit_builder.report import write_report
from wit_builder.report.cli import add_parser
from wit_builder.report.collect import collect_run
from wit_builder.samplesite import build_site, site_app
from wit_builder.train.config import TrainResult
from wit_builder.train.plot import plot_losses

HTML_CAPTION = 'Two dogs <b>fight</b> & "play"'


def sample_photos(samples_dir: Path, count: int) -> list[tuple[Path, str]]:
    """Return the first ``count`` Flickr8k photos with their first caption."""
    photos: dict[str, str] = {}
    with open(samples_dir / "flickr8k" / "captions.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            photos.setdefault(row["image"], row["caption"])
    names = sorted(photos)[:count]
    return [(samples_dir / "flickr8k" / "images" / name, photos[name]) for name in names]


def jpeg_bytes(path: Path, side: int = 96) -> bytes:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    return buffer.getvalue()


def write_stats(folder: Path, stage: str, **extra) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stats.json").write_text(json.dumps({"stage": stage, "counts": {"rows": 1}, **extra}))


def build_run(run_dir: Path, samples_dir: Path) -> dict[str, int]:
    """Write every stage of a small run and return the expected funnel counts."""
    photos = sample_photos(samples_dir, 12)
    photos[0] = (photos[0][0], HTML_CAPTION)

    queries = [QueryEntry("dog", "unigram", 40), QueryEntry("black dog", "bigram", 9, pmi=3.2), QueryEntry("Beach", "title", 1)]
    write_records(run_dir / "queries" / "queries.parquet", queries, QueryEntry)

    candidates = []
    for index, (path, caption) in enumerate(photos):
        url = f"http://127.0.0.1/images/{path.name}"
        candidates.append(Candidate(candidate_id(url, caption), url, caption, "alt", "http://127.0.0.1/page.html", "crawl"))
    extra = Candidate(candidate_id("http://127.0.0.1/x.png", "logo"), "http://127.0.0.1/x.png", "logo", "alt", "http://127.0.0.1/", "crawl")
    write_records(run_dir / "candidates" / "part-00000.parquet", candidates + [extra], Candidate)
    write_stats(run_dir / "candidates", "candidates")

    matched = [
        MatchedCandidate(**dataclasses.asdict(candidate), query_ids=[0] if index % 3 else [0, 1])
        for index, candidate in enumerate(candidates)
    ]
    write_records(run_dir / "matched" / "part-00000.parquet", matched, MatchedCandidate)
    balanced = matched[:10]
    write_records(run_dir / "balanced" / "part-00000.parquet", balanced, MatchedCandidate)
    write_stats(run_dir / "balanced", "balanced", cap=8)

    fetched = []
    for index, (candidate, (path, _)) in enumerate(zip(balanced, photos)):
        if index < 8:
            fetched.append(FetchResult(candidate.candidate_id, candidate.url, candidate.text, FetchStatus.OK.value, image=jpeg_bytes(path), query_ids=candidate.query_ids))
        else:
            status = FetchStatus.TIMEOUT if index == 8 else FetchStatus.HTTP_ERROR
            fetched.append(FetchResult(candidate.candidate_id, candidate.url, candidate.text, status.value, error="failed"))
    write_records(run_dir / "fetched" / "part-00000.parquet", fetched, FetchResult)

    decisions = []
    for index, result in enumerate(fetched[:8]):
        keep = index < 6
        reason = None
        if index == 6:
            reason = "near_duplicate"
        if index == 7:
            reason = "caption_too_short"
        words = len(result.caption.split())
        decisions.append(FilterDecision(result.key, keep, reason, "en" if index else "de", len(result.caption), words))
    write_records(run_dir / "filtered" / "part-00000.parquet", decisions, FilterDecision)

    shards = run_dir / "shards"
    shards.mkdir(parents=True)
    with wds.TarWriter(str(shards / "00000.tar")) as sink:
        for result in fetched[:6]:
            sink.write({"__key__": result.key, "jpg": result.image, "txt": result.caption, "json": {"url": result.url}})
    pq.write_table(pa.table({"key": [result.key for result in fetched[:6]]}), shards / "00000.parquet")

    train = run_dir / "train"
    train.mkdir()
    recall = {"text_to_image": {"R@1": 0.1, "R@5": 0.3, "R@10": 0.5}, "image_to_text": {"R@1": 0.1, "R@5": 0.3, "R@10": 0.4}}
    control = {"text_to_image": {"R@1": 0.0, "R@5": 0.2, "R@10": 0.3}, "image_to_text": {"R@1": 0.1, "R@5": 0.1, "R@10": 0.2}}
    chance = {"R@1": 0.1, "R@5": 0.5, "R@10": 1.0}
    result = TrainResult(
        model="wit-tiny", device="cpu", train_samples=5, eval_samples=10, eval_images=10, train_shards=["00000.tar"],
        eval_shards=["00001.tar"], epochs=1, steps=2, batch_size=4, image_size=32, lr=1e-3, weight_decay=0.5, seed=0, seconds=1.0,
        final_loss=1.0, final_loss_control=1.2, recall=recall, recall_control=control,
        chance={"text_to_image": chance, "image_to_text": chance},
    )
    (train / "result.json").write_text(json.dumps(dataclasses.asdict(result)))
    plot_losses(train / "loss.png", [2.0, 1.5], [2.0, 1.9], steps_per_epoch=2)

    return {"candidates": 13, "matched": 12, "balanced": 10, "fetched ok": 8, "kept": 6, "shards": 6}


@pytest.fixture()
def full_run(tmp_path: Path, samples_dir: Path) -> Path:
    run_dir = tmp_path / "run"
    build_run(run_dir, samples_dir)
    return run_dir


def test_report_full_run_sections(full_run: Path) -> None:
    page = write_report(full_run)

    assert page == full_run / "report" / "index.html"
    text = page.read_text()
    for section in ("funnel", "fetch", "filter", "balance", "captions", "languages", "train", "samples", "stats"):
        assert f'id="{section}"' in text
    assert 'id="notes"' not in text


def test_report_full_run_plots(full_run: Path) -> None:
    page = write_report(full_run)

    text = page.read_text()
    for name in ("funnel.png", "fetch_status.png", "filter_reasons.png", "query_counts.png", "caption_length.png", "languages.png", "loss.png"):
        assert (page.parent / name).stat().st_size > 0
        assert f'src="{name}"' in text


def test_report_full_run_figures(full_run: Path) -> None:
    text = write_report(full_run).read_text()

    assert "<td>candidates</td><td>13</td>" in text
    assert "<td>in shards</td><td>6</td>" in text
    assert "8 of 10 fetches succeeded" in text
    assert "<td>near_duplicate</td>" in text
    assert "<td>caption_too_short</td>" in text
    assert "threshold t = 8" in text
    assert "<td>text to image R@10</td><td>0.500</td><td>0.300</td><td>1.000</td>" in text
    assert "<td>image to text R@5</td><td>0.300</td><td>0.100</td><td>0.500</td>" in text
    assert text.count("data:image/jpeg;base64,") == 6


def test_report_escapes_captions(full_run: Path) -> None:
    text = write_report(full_run).read_text()

    assert "<b>fight</b>" not in text
    assert "Two dogs &lt;b&gt;fight&lt;/b&gt; &amp; &quot;play&quot;" in text


def test_report_partial_run_notes(tmp_path: Path, samples_dir: Path) -> None:
    run_dir = tmp_path / "run"
    build_run(run_dir, samples_dir)
    for stage in ("queries", "candidates", "matched", "filtered", "train"):
        for path in sorted((run_dir / stage).iterdir()):
            path.unlink()

    text = write_report(run_dir).read_text()

    assert 'id="notes"' in text
    assert "the harvest stage did not run" in text
    assert "train/result.json not found" in text
    assert "No filter decisions in this run." in text
    assert "<td>fetched ok</td><td>8</td>" in text
    assert "<td>candidates</td><td>n/a</td>" in text
    assert (run_dir / "report" / "fetch_status.png").is_file()
    assert not (run_dir / "report" / "filter_reasons.png").exists()


def test_report_empty_run_folder(tmp_path: Path) -> None:
    text = write_report(tmp_path).read_text()

    assert "no part-*.parquet files" in text
    assert "No readable samples in the shards." in text
    assert "No training result in this run." in text


def test_report_corrupt_parquet_noted(full_run: Path) -> None:
    (full_run / "fetched" / "part-00001.parquet").write_bytes(b"not a parquet file")

    text = write_report(full_run).read_text()

    assert "fetched/part-00001.parquet: unreadable parquet file" in text
    assert "8 of 10 fetches succeeded" in text


def test_report_malformed_files_noted(full_run: Path) -> None:
    (full_run / "shards" / "00001.tar").write_bytes(b"not a tar file")
    (full_run / "train" / "result.json").write_text('{"recall": {"text_to_image": {"R@1": null}}, "seconds": "slow"}')
    (full_run / "balanced" / "stats.json").write_text("[1, 2]")

    text = write_report(full_run).read_text()

    assert "balanced/stats.json: expected a JSON object, found list." in text
    assert "<td>text to image R@1</td><td>n/a</td>" in text
    assert "threshold t =" not in text
    assert text.count("data:image/jpeg;base64,") == 6


def test_report_missing_run_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        write_report(tmp_path / "absent")


def test_report_cli(full_run: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())

    args = parser.parse_args(["report", str(full_run)])
    assert args.func(args) == 0
    assert (full_run / "report" / "index.html").is_file()

    args = parser.parse_args(["report", str(tmp_path / "absent")])
    assert args.func(args) == 2


def test_report_top_queries_by_step(full_run: Path) -> None:
    text = write_report(full_run).read_text()

    assert 'id="top-queries"' in text
    assert "<th>matched</th><th>first balance</th><th>after fetch and filter</th>" in text
    # Names come from queries/queries.parquet: the run has no matched/query_counts.parquet.
    assert "<td>1</td><td>dog</td><td>0</td><td>12</td><td>10</td><td>6</td>" in text
    assert "<td>2</td><td>black dog</td><td>1</td><td>4</td><td>4</td><td>2</td>" in text
    assert "<th>after the final pass</th>" not in text
    assert "No final_balance/ folder, so the final balancing pass did not run" in text


def test_report_top_queries_with_final_pass(full_run: Path) -> None:
    keys = pq.read_table(full_run / "shards" / "00000.parquet").column("key").to_pylist()
    shard_query_ids = [[0] if index % 3 else [0, 1] for index in range(len(keys))]
    pq.write_table(pa.table({"key": keys, "query_ids": pa.array(shard_query_ids, pa.list_(pa.int64()))}), full_run / "shards" / "00000.parquet")
    final = full_run / "final_balance"
    write_stats(final, "final_balance", mode="strict", cap=8)
    pq.write_table(pa.table({"query_id": [0, 1], "survivors": [6, 2], "kept": [6, 2], "credited": [4, 2]}), final / "query_counts.parquet")
    pq.write_table(
        pa.table({"query_id": [0, 1], "query": ["dog", "black dog"], "count": [12, 4], "variants": [["Dog", "DOG"], []]}),
        full_run / "matched" / "query_counts.parquet",
    )

    text = write_report(full_run).read_text()

    assert "<th>after fetch and filter</th><th>after the final pass</th><th>in shards</th>" in text
    assert "<td>dog (also: Dog, DOG)</td><td>0</td><td>12</td><td>10</td><td>6</td><td>6</td><td>6</td>" in text
    assert "The final balancing pass ran (mode strict, t = 8)" in text
    assert "No final_balance/ folder" not in text


def test_report_prebuilt_list_from_run_record(full_run: Path, tmp_path: Path) -> None:
    query_list = tmp_path / "my_queries.txt"
    query_list.write_text("dog\nblack dog\nBeach\n", encoding="utf-8")
    config = tmp_path / "pipeline.toml"
    config.write_text(f'[run]\ndir = "{full_run}"\n[queries]\nlist = "my_queries.txt"\n[harvest]\nseeds = ["http://127.0.0.1/"]\n', encoding="utf-8")
    for path in (full_run / "queries").iterdir():
        path.unlink()
    # run.json as `wit run` wrote it before it recorded the query list.
    (full_run / "run.json").write_text(json.dumps({"config": str(config), "stages": ["queries", "harvest"], "seconds": {}}))

    text = write_report(full_run).read_text()

    assert "queries/queries.parquet not found" not in text
    assert f"Query list: {query_list} ([queries] list of {config}, named in run.json, 3 queries)." in text
    assert "<td>2</td><td>black dog</td>" in text
    assert "stages queries, harvest" in text


def test_report_recorded_list_before_stale_build(full_run: Path, tmp_path: Path) -> None:
    query_list = tmp_path / "my_queries.txt"
    query_list.write_text("dog\nblack dog\n", encoding="utf-8")
    (full_run / "run.json").write_text(json.dumps({"config": "x.toml", "query_list": str(query_list), "stages": ["report"]}))

    text = write_report(full_run).read_text()

    assert f"Query list: {query_list} (recorded in run.json, 2 queries)." in text
    assert "<th>kind</th>" not in text


def test_report_prebuilt_list_missing_noted(full_run: Path, tmp_path: Path) -> None:
    for path in (full_run / "queries").iterdir():
        path.unlink()
    (full_run / "run.json").write_text(json.dumps({"config": "x.toml", "query_list": str(tmp_path / "gone.txt"), "stages": []}))

    text = write_report(full_run).read_text()

    assert f"the query list {tmp_path / 'gone.txt'} (recorded in run.json) is not found" in text
    assert "(query id 0, name unknown)" in text


def test_report_without_query_list_noted(full_run: Path) -> None:
    for path in (full_run / "queries").iterdir():
        path.unlink()

    text = write_report(full_run).read_text()

    assert "neither run.json nor matched/stats.json names a query list" in text


# Flickr8k captions start with "A" or "a", so with --ignore-case the variants merge.
HAND_RUN_QUERIES = ["dog", "Dog", "a", "A", "man", "water", "grass", "girl", "boy"]


def test_report_stages_run_by_hand(tmp_path: Path, samples_dir: Path) -> None:
    run = tmp_path / "run"
    queries = tmp_path / "queries.txt"
    queries.write_text("".join(f"{query}\n" for query in HAND_RUN_QUERIES), encoding="utf-8")
    site = build_site(samples_dir / "flickr8k" / "images", samples_dir / "flickr8k" / "captions.csv", seed=0, photos=24)

    with BackgroundServer(lambda: site_app(site)) as server:
        crawl = ["harvest", "crawl", server.base_url, "--out", str(run / "candidates"), "--allow-private", "--host-delay", "0", "--max-depth", "8"]
        assert main(crawl) == 0
        assert main(["match", str(run / "candidates"), "--queries", str(queries), "--out", str(run / "matched"), "--ignore-case"]) == 0
        assert main(["balance", str(run / "matched"), "--out", str(run / "balanced"), "--cap", "8"]) == 0
        fetch = ["fetch", str(run / "balanced"), "--out", str(run / "fetched"), "--allow-private", "--image-size", "64", "--processes", "1", "--host-delay", "0"]
        assert main(fetch) == 0
    assert main(["filter", "--fetched", str(run / "fetched"), "--out", str(run / "filtered"), "--workers", "1"]) == 0
    assert main(["shards", "--fetched", str(run / "fetched"), "--filtered", str(run / "filtered"), "--out", str(run / "shards")]) == 0
    assert main(["report", str(run)]) == 0

    text = (run / "report" / "index.html").read_text()
    assert "<th>matched</th><th>first balance</th><th>after fetch and filter</th><th>in shards</th>" in text
    assert "<th>after the final pass</th>" not in text
    assert "No final_balance/ folder, so the final balancing pass did not run" in text
    assert "<td>a (also: A)</td>" in text
    assert "<td>Dog</td>" not in text
    assert f"Query list: {queries.resolve()} (recorded in matched/stats.json, 9 queries)." in text
    assert "queries/queries.parquet not found" not in text
    query_counts = pq.read_table(run / "matched" / "query_counts.parquet").column("query").to_pylist()
    assert "A" not in query_counts
    assert "Dog" not in query_counts
    steps = {step.label: step.counts for step in collect_run(run).query_steps}
    assert steps["in shards"] == steps["after fetch and filter"]
    assert set(steps["matched"]) <= {0, 2, 4, 5, 6, 7, 8}
