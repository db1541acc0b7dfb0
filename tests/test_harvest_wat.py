"""Harvest of WAT metadata records and WET text records, from real Common Crawl files and real captures."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import orjson
import pytest

from archive_helpers import compress, join_http, read_members, replace_http_header, split_http, wat_record_for
from wit_builder.harvest.archives import ArchiveOptions, harvest_input, harvest_inputs
from wit_builder.harvest.extract import extract_page
from wit_builder.harvest.sources import ArchiveFormat, HarvestInput
from wit_builder.harvest.wat import extract_wat_page
from wit_builder.harvest.watjson import parse_wat_page, read_wat_page, scan_wat_page
from wit_builder.parquet import read_records
from wit_builder.records import Candidate

WHIRLWIND_PAGE = "https://an.wikipedia.org/wiki/Escopete"


@pytest.fixture(scope="module")
def whirlwind(shared_data):
    return shared_data / "web" / "commoncrawl_whirlwind"


@pytest.fixture(scope="module")
def wat_members(whirlwind):
    """The real WAT file: its warcinfo record and the metadata record of the capture's request."""
    return read_members(whirlwind / "whirlwind.warc.wat.gz")


@pytest.fixture(scope="module")
def response_record(whirlwind):
    """The real WARC response record of the capture that the WAT file describes."""
    return read_members(whirlwind / "whirlwind.warc.gz")[2].content


def harvest_wat_bytes(tmp_path, data: bytes, name: str = "test.warc.wat.gz"):
    path = tmp_path / name
    path.write_bytes(data)
    outcome = harvest_input(HarvestInput(str(path), ArchiveFormat.WAT), tmp_path / "part.parquet",
                            ArchiveOptions(progress=False))
    rows = read_records(tmp_path / "part.parquet", Candidate) if outcome.part else []
    return outcome, rows


def wat_file(wat_members, *records: bytes) -> bytes:
    return compress(wat_members[0].content, wat_members[1].content, *records)


def test_real_wat_file_has_no_response(whirlwind, tmp_path):
    outcome = harvest_input(HarvestInput(str(whirlwind / "whirlwind.warc.wat.gz"), ArchiveFormat.WAT),
                            tmp_path / "part.parquet", ArchiveOptions(progress=False))

    assert outcome.status == "ok"
    assert outcome.stats.extra["records"] == 2
    assert outcome.stats.extra["responses"] == 0
    assert outcome.stats.candidates == 0
    assert read_records(tmp_path / "part.parquet", Candidate) == []


def test_wat_candidates_match_html_extractor(wat_members, response_record, tmp_path):
    outcome, rows = harvest_wat_bytes(tmp_path, wat_file(wat_members, wat_record_for(response_record)))

    _warc_head, _http_head, body = split_http(response_record)
    html = extract_page(body, WHIRLWIND_PAGE, "warc", with_links=False)
    # The WAT lists only src, alt and title, so only the HTML candidates of that kind can be expected.
    expected = {(c.url, c.text, c.text_source) for c in html.candidates if c.text_source != "figcaption"}

    assert outcome.status == "ok"
    assert outcome.stats.pages_parsed == 1
    assert {(row.url, row.text, row.text_source) for row in rows} == expected
    assert {row.page_url for row in rows} == {WHIRLWIND_PAGE}
    assert {row.page_language for row in rows} == {"an"}
    assert {row.source for row in rows} == {"wat"}
    assert {row.candidate_id for row in rows} == {c.candidate_id for c in html.candidates if c.text_source != "figcaption"}
    assert outcome.stats.dropped_images["svg"] >= 1
    assert outcome.stats.dropped_images["no_text"] >= 1


def test_scan_and_full_parse_agree(response_record):
    payload = wat_record_for(response_record).partition(b"\r\n\r\n")[2].rstrip(b"\r\n")

    scanned = scan_wat_page(payload, WHIRLWIND_PAGE)
    parsed = read_wat_page(orjson.loads(payload), None)

    assert scanned is not None
    assert scanned == parsed
    assert len(scanned.images) == 13
    # The real Report-To and NEL headers contain JSON with braces inside their string values.
    assert "{" in json.loads(payload)["Envelope"]["Payload-Metadata"]["HTTP-Response-Metadata"]["Headers"]["report-to"]


def test_other_key_order_falls_back(response_record):
    metadata = json.loads(wat_record_for(response_record).partition(b"\r\n\r\n")[2])
    # Older WAT files wrote object keys in another order; sort them all.
    payload = json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()

    page = parse_wat_page(payload, WHIRLWIND_PAGE)

    assert page == read_wat_page(metadata, None)
    assert len(page.images) == 13


def rewritten_page(response_record, old: bytes, new: bytes) -> bytes:
    warc_head, http_head, body = split_http(response_record)
    assert old in body
    return join_http(warc_head, http_head, body.replace(old, new, 1))


def test_base_href_from_wat_head(wat_members, response_record, tmp_path):
    response = rewritten_page(response_record, b"<head>", b'<head><base href="https://static.example.org/mirror/">')

    _outcome, rows = harvest_wat_bytes(tmp_path, wat_file(wat_members, wat_record_for(response)))

    urls = {row.url for row in rows}
    assert "https://static.example.org/static/images/footer/wikimedia-button.png" in urls
    assert any(url.startswith("https://upload.wikimedia.org/") for url in urls)


def test_language_from_header_when_html_lang_missing(wat_members, response_record, tmp_path):
    warc_head, http_head, body = split_http(response_record)
    body = re.sub(rb'(<html[^>]*) lang="an"', rb"\1", body, count=1)
    http_head = replace_http_header(http_head, b"content-language", b"es")

    _outcome, rows = harvest_wat_bytes(tmp_path, wat_file(wat_members, wat_record_for(join_http(warc_head, http_head, body))))

    assert {row.page_language for row in rows} == {"es"}


def test_unusable_image_references_dropped(wat_members, response_record, tmp_path):
    images = (
        b'<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="Placeholder">'
        b'<img src="javascript:void(0)" alt="Script">'
        b'<img src="/w/logo.SVG?v=2" alt="Logo">'
        b'<img src="  " alt="Empty">'
        b'<img src="http://exa mple.org/a.jpg" alt="Bad host">'
        b'<img src="/w/Gr\xc3\xbc\xc3\x9fe%e4.jpg#top" alt="  Gr\xc3\xbc\xc3\x9fe \n aus  Aragon " title="Foto">'
    )
    response = rewritten_page(response_record, b"<body", images + b"<body")

    outcome, rows = harvest_wat_bytes(tmp_path, wat_file(wat_members, wat_record_for(response)))

    dropped = outcome.stats.dropped_images
    assert dropped["unsupported_scheme"] == 2
    assert dropped["svg"] >= 1
    assert dropped["no_url"] == 1
    assert dropped["invalid_url"] == 1
    assert ("https://an.wikipedia.org/w/Gr%C3%BC%C3%9Fe%E4.jpg", "Grüße aus Aragon", "alt") in {
        (row.url, row.text, row.text_source) for row in rows
    }
    assert ("https://an.wikipedia.org/w/Gr%C3%BC%C3%9Fe%E4.jpg", "Foto", "title") in {
        (row.url, row.text, row.text_source) for row in rows
    }


def test_non_html_and_error_responses_counted(wat_members, response_record, tmp_path):
    warc_head, http_head, body = split_http(response_record)
    not_found = join_http(warc_head, http_head.replace(b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", 1), body)
    image = json.loads(wat_record_for(response_record).partition(b"\r\n\r\n")[2])
    response_metadata = image["Envelope"]["Payload-Metadata"]["HTTP-Response-Metadata"]
    del response_metadata["HTML-Metadata"]
    response_metadata["Headers"]["content-type"] = "image/png"
    image_payload = json.dumps(image, separators=(",", ":")).encode()
    image_record = (b"WARC/1.0\r\nWARC-Type: metadata\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(image_payload)) + image_payload + b"\r\n\r\n"

    outcome, rows = harvest_wat_bytes(
        tmp_path, wat_file(wat_members, wat_record_for(not_found), image_record, wat_record_for(response_record))
    )

    stats = outcome.stats
    assert stats.extra["responses"] == 3
    assert stats.extra["responses_not_html"] == 1
    assert stats.pages == 2
    assert dict(stats.pages_by_status) == {"ok": 1, "http_error": 1}
    assert stats.http_statuses[404] == 1
    assert {row.page_url for row in rows} == {WHIRLWIND_PAGE}


def test_invalid_json_counted_and_skipped(wat_members, response_record, tmp_path):
    record = wat_record_for(response_record)
    head, _separator, payload = record.partition(b"\r\n\r\n")
    broken = payload[: len(payload) // 2] + b"\r\n\r\n"
    broken_record = head.replace(b"Content-Length: %d" % (len(payload) - 4), b"Content-Length: %d" % (len(broken) - 4))
    broken_record += b"\r\n\r\n" + broken

    outcome, rows = harvest_wat_bytes(tmp_path, wat_file(wat_members, broken_record, record))

    assert outcome.status == "ok"
    assert outcome.stats.extra["wat_json_errors"] == 1
    assert outcome.stats.pages_parsed == 1
    assert rows


def test_truncated_wat_keeps_complete_records(wat_members, response_record, tmp_path):
    complete = compress(wat_record_for(response_record))
    data = wat_file(wat_members) + complete + complete[: len(complete) // 2]

    outcome, rows = harvest_wat_bytes(tmp_path, data)

    assert outcome.status == "truncated"
    assert outcome.offset == len(wat_file(wat_members)) + len(complete)
    assert outcome.stats.extra["records"] == 3
    assert outcome.stats.pages_parsed == 1
    assert rows


def test_wet_text_statistics(whirlwind, tmp_path):
    out_dir = tmp_path / "out"

    run = harvest_inputs([HarvestInput(str(whirlwind / "whirlwind.warc.wet.gz"), ArchiveFormat.WET)], out_dir,
                         ArchiveOptions(progress=False))

    stats = json.loads((out_dir / "stats.json").read_text())
    (outcome,) = run.outcomes
    assert outcome.status == "ok"
    assert outcome.part is None
    assert list(out_dir.glob("part-*.parquet")) == []
    assert stats["text"]["records"] == 1
    assert stats["text"]["languages"] == {"spa": 1}
    assert stats["text"]["bytes"] == 4456
    assert 4000 < stats["text"]["characters"] < 4456
    assert stats["counts"]["records"] == 2
    assert stats["counts"]["candidates"] == 0
    assert stats["inputs"][0]["text"]["records"] == 1


def test_wet_records_without_language_counted(whirlwind, tmp_path):
    members = read_members(whirlwind / "whirlwind.warc.wet.gz")
    conversion = members[1].content
    undetected = re.sub(rb"WARC-Identified-Content-Language: [^\r]*\r\n", b"", conversion)
    path = tmp_path / "text.warc.wet.gz"
    path.write_bytes(compress(members[0].content, conversion, undetected))

    outcome = harvest_input(HarvestInput(str(path), ArchiveFormat.WET), tmp_path / "part.parquet", ArchiveOptions(progress=False))

    assert outcome.text.records == 2
    assert dict(outcome.text.languages) == {"spa": 1, "undetected": 1}


def test_wat_command_imports_no_crawler(whirlwind, tmp_path):
    # Start-up is a large part of a run over one WAT file, so `wit harvest wat` must not import the
    # crawler's HTTP stack, the HTML charset detector or the process pool it never uses.
    heavy = ["aiohttp", "asyncio", "wit_builder.harvest.crawler", "charset_normalizer", "multiprocessing", "tqdm"]
    script = (
        "import sys\n"
        "from wit_builder.cli import main\n"
        f"code = main(['-q', 'harvest', 'wat', {str(whirlwind / 'whirlwind.warc.wat.gz')!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        f"print(code, [name for name in {heavy!r} if name in sys.modules])\n"
    )

    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["0", "[]"]
