"""Harvest of real Common Crawl and Wikipedia WARC files."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from wit_builder.harvest.warc import harvest_warc, harvest_warcs
from wit_builder.parquet import read_records
from wit_builder.records import Candidate

CJK = re.compile(r"[\u4e00-\u9fff]")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")


@pytest.fixture(scope="module")
def sample_warc(samples_dir):
    return samples_dir / "commoncrawl" / "warcfile.warc.gz"


def test_common_crawl_excerpt_counts(sample_warc, tmp_path):
    stats = harvest_warc(sample_warc, tmp_path / "part-00000.parquet")
    rows = read_records(tmp_path / "part-00000.parquet", Candidate)

    assert stats.pages == 16
    assert stats.pages_parsed == 16
    assert stats.extra["records"] == 50
    # The excerpt's pages contain 99 img tags with a src; lexbor also finds lazy and noscript ones.
    assert stats.images >= 99
    assert stats.candidates == len(rows)
    assert len(rows) >= 30
    assert stats.extra["truncated_files"] == 0


def test_excerpt_texts_in_several_languages(sample_warc, tmp_path):
    harvest_warc(sample_warc, tmp_path / "part-00000.parquet")
    rows = read_records(tmp_path / "part-00000.parquet", Candidate)
    texts = [row.text for row in rows]

    assert all(text.strip() == text and text for text in texts)
    assert any(CJK.search(text) for text in texts)
    assert any(CYRILLIC.search(text) for text in texts)
    assert "Hier klicken!" in texts
    assert {row.source for row in rows} == {"warc"}
    assert all(row.url.startswith(("http://", "https://")) for row in rows)
    assert all(row.page_url.startswith("http://") for row in rows)
    assert len({row.candidate_id for row in rows if row.page_url == rows[0].page_url}) == sum(
        1 for row in rows if row.page_url == rows[0].page_url
    )


def test_legacy_charsets_decoded(sample_warc, tmp_path):
    harvest_warc(sample_warc, tmp_path / "part-00000.parquet")
    texts = {(row.page_url, row.text) for row in read_records(tmp_path / "part-00000.parquet", Candidate)}

    # windows-1251 and gb2312 (read as its superset gb18030), both declared in the HTTP header.
    assert ("http://01spb.ru/company/", "Стратегия пожарной безопасности") in texts
    assert ("http://0760.jxtdw.com/area/sanxiang/", "用心专注，服务专业") in texts


def test_whirlwind_wikipedia_capture(shared_data, tmp_path):
    path = shared_data / "web" / "commoncrawl_whirlwind" / "whirlwind.warc.gz"
    stats = harvest_warc(path, tmp_path / "part.parquet")
    rows = read_records(tmp_path / "part.parquet", Candidate)

    assert stats.pages == 1
    assert {row.page_url for row in rows} == {"https://an.wikipedia.org/wiki/Escopete"}
    assert {row.page_language for row in rows} == {"an"}
    assert "Escopete ubicada en Castiella-La Mancha" in {row.text for row in rows}
    assert stats.dropped_images["svg"] >= 1


def test_wikipedia_page_with_image_responses(shared_data, tmp_path):
    path = shared_data / "web" / "enwiki-main-page-2012-post-blackout.warc.gz"
    stats = harvest_warc(path, tmp_path / "part.parquet")
    rows = read_records(tmp_path / "part.parquet", Candidate)

    assert stats.pages == 1
    assert stats.extra["responses"] == 70
    assert stats.extra["responses_not_html"] == 69
    assert len(rows) == 17
    assert {row.page_url for row in rows} == {"http://en.wikipedia.org/wiki/Main_Page"}
    assert "Nick Drake's grave in Tanworth-in-Arden" in {row.text for row in rows}
    assert all(row.url.startswith("http://upload.wikimedia.org/") or row.url.startswith("http://bits.wikimedia.org/") for row in rows)


def test_truncated_gzip_keeps_earlier_records(sample_warc, tmp_path, caplog):
    data = sample_warc.read_bytes()
    truncated = tmp_path / "truncated.warc.gz"
    truncated.write_bytes(data[: len(data) * 3 // 4])

    with caplog.at_level(logging.WARNING, logger="wit_builder.harvest.warc"):
        stats = harvest_warc(truncated, tmp_path / "part.parquet")

    assert stats.extra["truncated_files"] == 1
    assert 0 < stats.pages_parsed < 16
    assert read_records(tmp_path / "part.parquet", Candidate)
    assert any("byte offset" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.88, 0.99])
def test_truncation_at_any_point_never_raises(sample_warc, tmp_path, fraction):
    data = sample_warc.read_bytes()
    truncated = tmp_path / "truncated.warc.gz"
    truncated.write_bytes(data[: int(len(data) * fraction)])

    stats = harvest_warc(truncated, tmp_path / "part.parquet")

    assert stats.pages_parsed < 16
    assert (tmp_path / "part.parquet").is_file()


def write_warc(path, records):
    with path.open("wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for uri, status, content_type, body in records:
            http_headers = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
            record = writer.create_warc_record(uri, "response", payload=io.BytesIO(body), http_headers=http_headers)
            writer.write_record(record)


def test_crafted_warc_edge_cases(tmp_path):
    page = '<html lang="fr"><meta charset="windows-1252"><img src="chat.jpg" alt="Un chat sur le canapé">'
    path = tmp_path / "crafted.warc.gz"
    write_warc(
        path,
        [
            ("<http://example.org/maison/>", "200 OK", "text/html", page.encode("cp1252")),
            ("http://example.org/chat.jpg", "200 OK", "image/jpeg", b"\xff\xd8\xff\xe0 not a real jpeg"),
            ("http://example.org/missing", "404 Not Found", "text/html; charset=utf-8", b'<img src="/x.jpg" alt="Missing">'),
            ("http://example.org/page.xhtml", "200 OK", "application/xhtml+xml", b'<html><img src="a.png" alt="XHTML"/></html>'),
        ],
    )

    stats = harvest_warc(path, tmp_path / "part.parquet")
    rows = read_records(tmp_path / "part.parquet", Candidate)

    assert [(row.url, row.text, row.page_url, row.page_language) for row in rows] == [
        ("http://example.org/maison/chat.jpg", "Un chat sur le canapé", "http://example.org/maison/", "fr"),
        ("http://example.org/a.png", "XHTML", "http://example.org/page.xhtml", None),
    ]
    assert stats.pages == 3
    assert dict(stats.pages_by_status) == {"ok": 2, "http_error": 1}
    assert stats.http_statuses[404] == 1
    assert stats.extra["responses_not_html"] == 1


def test_harvest_warcs_writes_parts(sample_warc, shared_data, tmp_path):
    whirlwind = shared_data / "web" / "commoncrawl_whirlwind" / "whirlwind.warc.gz"
    out_dir = tmp_path / "candidates"

    total = harvest_warcs([sample_warc, whirlwind], out_dir)

    assert sorted(path.name for path in out_dir.iterdir()) == ["part-00000.parquet", "part-00001.parquet", "stats.json"]
    stats = json.loads((out_dir / "stats.json").read_text())
    assert stats["stage"] == "harvest"
    assert stats["counts"]["pages"] == 17
    assert stats["counts"]["candidates"] == total.candidates
    assert stats["page_languages"]["an"] == 1


def test_missing_warc_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="not-there.warc.gz"):
        harvest_warcs([tmp_path / "not-there.warc.gz"], tmp_path / "out")
