"""Harvest of real Common Crawl and Wikipedia WARC files, and of real records rewritten into known quirks."""

from __future__ import annotations

import gzip
import json
import logging
import re
import zlib

import pytest

from archive_helpers import compress, join_http, read_members, replace_http_header, set_content_length, split_http
from wit_builder.harvest.archives import ArchiveOptions, harvest_input, harvest_inputs
from wit_builder.harvest.sources import ArchiveFormat, HarvestInput
from wit_builder.harvest.warc import dechunk, harvest_warc, harvest_warcs
from wit_builder.parquet import read_records
from wit_builder.records import Candidate

CJK = re.compile(r"[\u4e00-\u9fff]")
CYRILLIC = re.compile(r"[\u0400-\u04ff]")
WHIRLWIND_PAGE = "https://an.wikipedia.org/wiki/Escopete"


@pytest.fixture(scope="module")
def sample_warc(samples_dir):
    return samples_dir / "commoncrawl" / "warcfile.warc.gz"


@pytest.fixture(scope="module")
def whirlwind_members(shared_data):
    """The four records of the real Common Crawl capture: warcinfo, request, response, metadata."""
    return read_members(shared_data / "web" / "commoncrawl_whirlwind" / "whirlwind.warc.gz")


def harvest_bytes(tmp_path, data: bytes, name: str = "quirk.warc.gz", **options):
    path = tmp_path / name
    path.write_bytes(data)
    outcome = harvest_input(HarvestInput(str(path), ArchiveFormat.WARC), tmp_path / "part.parquet",
                            ArchiveOptions(progress=False, **options))
    rows = read_records(tmp_path / "part.parquet", Candidate) if outcome.part else []
    return outcome, rows


def pairs(rows) -> set[tuple[str, str]]:
    return {(row.url, row.text) for row in rows}


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
    assert len({row.candidate_id for row in rows}) == len(rows)


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
    assert {row.page_url for row in rows} == {WHIRLWIND_PAGE}
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
    assert all(row.url.startswith(("http://upload.wikimedia.org/", "http://bits.wikimedia.org/")) for row in rows)


def test_truncated_gzip_keeps_earlier_records(sample_warc, tmp_path, caplog):
    data = sample_warc.read_bytes()
    truncated = tmp_path / "truncated.warc.gz"
    truncated.write_bytes(data[: len(data) * 3 // 4])

    with caplog.at_level(logging.WARNING):
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


@pytest.mark.parametrize("cut", [5, 100, 2000, "middle"])
def test_cut_inside_last_member_names_its_offset(sample_warc, tmp_path, caplog, cut):
    members = read_members(sample_warc)
    # Members 0-4 hold the first page; member 5 is the 01spb.ru response.
    last = members[5]
    keep = len(last.raw) // 2 if cut == "middle" else cut
    data = b"".join(member.raw for member in members[:5]) + last.raw[:keep]

    with caplog.at_level(logging.WARNING):
        outcome, rows = harvest_bytes(tmp_path, data)

    assert outcome.status == "truncated"
    assert outcome.offset == last.offset
    assert outcome.stats.extra["records"] == 5
    assert outcome.stats.pages_parsed == 1
    assert {row.page_url for row in rows} == {"http://003338.cn/l41/481397.html"}
    assert any(f"byte offset {last.offset}" in record.getMessage() for record in caplog.records)


def test_file_cut_in_gzip_trailer_keeps_whole_record(sample_warc, tmp_path):
    members = read_members(sample_warc)
    # The last 4 bytes of a gzip member are its length field, after the complete data.
    data = b"".join(member.raw for member in members[:6]) + members[6].raw[:-3]

    outcome, _rows = harvest_bytes(tmp_path, data)

    assert outcome.status == "truncated"
    assert outcome.offset == members[6].offset
    assert outcome.stats.extra["records"] == 7
    assert outcome.stats.pages_parsed == 2


def test_corrupt_member_stops_with_offset(sample_warc, tmp_path):
    members = read_members(sample_warc)
    broken = members[8].raw[:20] + bytes(byte ^ 0x55 for byte in members[8].raw[20:200]) + members[8].raw[200:]
    data = b"".join(member.raw for member in members[:8]) + broken + b"".join(member.raw for member in members[9:])

    outcome, rows = harvest_bytes(tmp_path, data)

    assert outcome.status == "failed"
    assert outcome.offset == members[8].offset
    assert "decompress" in outcome.error
    assert outcome.stats.pages_parsed == 2
    assert {row.page_url for row in rows} == {"http://003338.cn/l41/481397.html", "http://01spb.ru/company/"}


@pytest.mark.parametrize("damage", ["cut", "trailer", "corrupt", "padding", "plain-cut"])
def test_local_file_and_stream_find_same_damage(sample_warc, tmp_path, damage):
    members = read_members(sample_warc)
    whole = b"".join(member.raw for member in members)
    if damage == "cut":
        data = whole[: members[5].offset + 100]
    elif damage == "trailer":
        data = whole[: members[7].offset - 3]
    elif damage == "corrupt":
        broken = members[8].raw[:20] + bytes(byte ^ 0x55 for byte in members[8].raw[20:200]) + members[8].raw[200:]
        data = whole[: members[8].offset] + broken + whole[members[9].offset :]
    elif damage == "padding":
        data = whole + b"\x00" * 100
    else:
        plain = b"".join(member.content for member in members)
        data = plain[: len(plain) // 2]
    path = tmp_path / "damaged.warc.gz"
    path.write_bytes(data)
    options = ArchiveOptions(progress=False)

    # A local path is read by FastWARC directly, and a file:// URI through a pyarrow stream.
    local = harvest_input(HarvestInput(str(path), ArchiveFormat.WARC), tmp_path / "local.parquet", options)
    streamed = harvest_input(HarvestInput(path.resolve().as_uri(), ArchiveFormat.WARC), tmp_path / "stream.parquet", options)

    assert local.status == streamed.status
    assert local.offset == streamed.offset
    assert local.error == streamed.error
    assert local.stats.extra["records"] == streamed.stats.extra["records"]
    assert local.stats.candidates == streamed.stats.candidates
    if local.status != "failed":
        assert local.bytes_read == streamed.bytes_read == len(data)


def test_padding_after_last_member_is_clean_end(sample_warc, tmp_path):
    outcome, _rows = harvest_bytes(tmp_path, sample_warc.read_bytes() + b"\x00" * 512 + b"\r\n")

    assert outcome.status == "ok"
    assert outcome.stats.pages_parsed == 16


def test_uncompressed_warc_read_and_truncation_found(sample_warc, tmp_path):
    plain = b"".join(member.content for member in read_members(sample_warc))

    complete, _rows = harvest_bytes(tmp_path, plain, name="plain.warc")
    cut, _rows = harvest_bytes(tmp_path, plain[: len(plain) // 2], name="cut.warc")

    assert complete.status == "ok"
    assert complete.stats.pages_parsed == 16
    assert cut.status == "truncated"
    assert 0 < cut.stats.pages_parsed < 16


def test_angle_bracket_target_uri(whirlwind_members, tmp_path):
    response = whirlwind_members[2].content.replace(
        f"WARC-Target-URI: {WHIRLWIND_PAGE}".encode(), f"WARC-Target-URI: <{WHIRLWIND_PAGE}>".encode()
    )
    assert b"WARC-Target-URI: <https://" in response

    outcome, rows = harvest_bytes(tmp_path, compress(whirlwind_members[0].content, response))

    assert outcome.status == "ok"
    assert {row.page_url for row in rows} == {WHIRLWIND_PAGE}
    assert "http://an.wikipedia.org/wiki/Escopete" not in {row.page_url for row in rows}
    assert ("https://upload.wikimedia.org/wikipedia/commons/thumb/9/9c/Castilla-La_Mancha-loc.svg/"
            "250px-Castilla-La_Mancha-loc.svg.png", "Escopete ubicada en Castiella-La Mancha") in pairs(rows)


@pytest.mark.parametrize("version", [b"WARC/0.17", b"WARC/0.18", b"WARC/1.0", b"WARC/1.1"])
def test_old_and_new_warc_versions(whirlwind_members, tmp_path, version):
    records = [member.content.replace(b"WARC/1.0\r\n", version + b"\r\n", 1) for member in whirlwind_members]
    reference, reference_rows = harvest_bytes(tmp_path, compress(*(m.content for m in whirlwind_members)), name="ref.warc.gz")

    outcome, rows = harvest_bytes(tmp_path, compress(*records))

    assert outcome.status == "ok"
    assert outcome.stats.extra["records"] == 4
    assert outcome.stats.pages_parsed == 1
    assert pairs(rows) == pairs(reference_rows)
    assert len(rows) == 5


def test_bare_lf_warc_headers(whirlwind_members, tmp_path):
    head, _separator, block = whirlwind_members[2].content.partition(b"\r\n\r\n")
    response = head.replace(b"\r\n", b"\n") + b"\n\n" + block

    outcome, rows = harvest_bytes(tmp_path, compress(whirlwind_members[0].content, response))

    assert outcome.status == "ok"
    assert {row.page_url for row in rows} == {WHIRLWIND_PAGE}


def test_charset_only_in_meta_tag(sample_warc, tmp_path):
    members = read_members(sample_warc)
    # The real 01spb.ru page declares windows-1251 in its HTTP header and in a meta tag; keep only the meta tag.
    warc_head, http_head, body = split_http(members[5].content)
    http_head = replace_http_header(http_head, b"Content-Type", b"text/html")
    assert b'charset=windows-1251' in body[:4000]

    outcome, rows = harvest_bytes(tmp_path, compress(members[0].content, join_http(warc_head, http_head, body)))

    assert outcome.stats.pages_parsed == 1
    assert "Стратегия пожарной безопасности" in {row.text for row in rows}
    assert not any("\ufffd" in row.text for row in rows)


def test_charset_not_declared_anywhere(sample_warc, tmp_path):
    members = read_members(sample_warc)
    response = members[5].content
    warc_head, http_head, body = split_http(response)
    assert b"windows-1251" in http_head
    http_head = replace_http_header(http_head, b"Content-Type", b"text/html")
    body = re.sub(rb"<meta[^>]*charset=windows-1251[^>]*>", b"", body, flags=re.IGNORECASE)
    assert b"1251" not in body[:4000]

    outcome, rows = harvest_bytes(tmp_path, compress(members[0].content, join_http(warc_head, http_head, body)))

    assert outcome.stats.pages_parsed == 1
    assert "Стратегия пожарной безопасности" in {row.text for row in rows}


def test_base_href_in_real_page(whirlwind_members, tmp_path):
    warc_head, http_head, body = split_http(whirlwind_members[2].content)
    body = body.replace(b"<head>", b'<head><base href="https://static.example.org/mirror/">', 1)

    outcome, rows = harvest_bytes(tmp_path, compress(join_http(warc_head, http_head, body)))

    urls = {row.url for row in rows}
    assert outcome.stats.pages_parsed == 1
    assert "https://static.example.org/static/images/footer/wikimedia-button.png" in urls
    # Scheme-relative references keep their host but take the scheme of the base.
    assert any(url.startswith("https://upload.wikimedia.org/") for url in urls)


def test_page_over_size_limit_cut_and_counted(whirlwind_members, tmp_path):
    response = whirlwind_members[2].content
    _warc_head, _http_head, body = split_http(response)
    limit = body.find(b"Escopete ubicada") - 100
    assert limit > 0

    full, full_rows = harvest_bytes(tmp_path, compress(response), name="full.warc.gz")
    cut, cut_rows = harvest_bytes(tmp_path, compress(response), max_page_bytes=limit)

    assert full.stats.extra["pages_cut_at_limit"] == 0
    assert cut.stats.extra["pages_cut_at_limit"] == 1
    assert cut.stats.pages_parsed == 1
    assert "Escopete ubicada en Castiella-La Mancha" in {row.text for row in full_rows}
    assert "Escopete ubicada en Castiella-La Mancha" not in {row.text for row in cut_rows}
    assert pairs(cut_rows) < pairs(full_rows)


def chunked(body: bytes, size: int = 1000) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


@pytest.mark.parametrize("encoding", ["chunked", "gzip", "chunked+gzip", "deflate", "br"])
def test_encoded_payloads_decoded(whirlwind_members, tmp_path, encoding):
    reference, reference_rows = harvest_bytes(tmp_path, compress(whirlwind_members[2].content), name="ref.warc.gz")
    warc_head, http_head, body = split_http(whirlwind_members[2].content)
    if "gzip" in encoding:
        body = gzip.compress(body)
        http_head = replace_http_header(http_head, b"Content-Encoding", b"gzip")
    if encoding == "deflate":
        body = zlib.compress(body)
        http_head = replace_http_header(http_head, b"Content-Encoding", b"deflate")
    if encoding == "br":
        brotli = pytest.importorskip("brotli")
        body = brotli.compress(body)
        http_head = replace_http_header(http_head, b"Content-Encoding", b"br")
    if "chunked" in encoding:
        body = chunked(body)
        http_head = replace_http_header(http_head, b"Transfer-Encoding", b"chunked")

    outcome, rows = harvest_bytes(tmp_path, compress(join_http(warc_head, http_head, body)))

    assert outcome.stats.extra["payload_errors"] == 0
    assert pairs(rows) == pairs(reference_rows)


def test_chunked_header_on_plain_body_keeps_body(whirlwind_members, tmp_path):
    warc_head, http_head, body = split_http(whirlwind_members[2].content)
    http_head = replace_http_header(http_head, b"Transfer-Encoding", b"chunked")

    outcome, rows = harvest_bytes(tmp_path, compress(join_http(warc_head, http_head, body)))

    assert outcome.stats.extra["payloads_not_chunked"] == 1
    assert "Escopete ubicada en Castiella-La Mancha" in {row.text for row in rows}


def test_dechunk_cases():
    assert dechunk(b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\n\r\n") == b"Wikipedia"
    assert dechunk(b"4\nWiki\n5\npedia\n0\n\n") == b"Wikipedia"
    assert dechunk(b"4\r\nWiki\r\n9\r\npedi") == b"Wikipedi"
    assert dechunk(b"<html><body>not chunked") is None


def test_crawled_status_and_media_types(whirlwind_members, tmp_path):
    warc_head, http_head, body = split_http(whirlwind_members[2].content)
    not_found = join_http(warc_head, http_head.replace(b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", 1), body)
    image = join_http(warc_head, replace_http_header(http_head, b"Content-Type", b"image/png"), b"\x89PNG\r\n")
    xhtml = join_http(warc_head, replace_http_header(http_head, b"Content-Type", b"application/xhtml+xml"), body)

    outcome, rows = harvest_bytes(tmp_path, compress(not_found, image, xhtml))

    assert outcome.stats.pages == 2
    assert dict(outcome.stats.pages_by_status) == {"ok": 1, "http_error": 1}
    assert outcome.stats.http_statuses[404] == 1
    assert outcome.stats.extra["responses_not_html"] == 1
    assert {row.page_url for row in rows} == {WHIRLWIND_PAGE}


def test_content_language_header_used_without_html_lang(whirlwind_members, tmp_path):
    warc_head, http_head, body = split_http(whirlwind_members[2].content)
    body = re.sub(rb'(<html[^>]*) lang="an"', rb"\1", body, count=1)
    http_head = replace_http_header(http_head, b"content-language", b"es")

    _outcome, rows = harvest_bytes(tmp_path, compress(join_http(warc_head, http_head, body)))

    assert {row.page_language for row in rows} == {"es"}


def test_arc_file_reported_as_unsupported(tmp_path):
    arc = gzip.compress(b"filedesc://example.arc 0.0.0.0 20090101000000 text/plain 76\n1 0 Alexa Internet\n")

    outcome, _rows = harvest_bytes(tmp_path, arc, name="old.arc.gz")

    assert outcome.status == "failed"
    assert "ARC" in outcome.error


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
    assert [entry["status"] for entry in stats["inputs"]] == ["ok", "ok"]
    assert stats["failures"] == []


def test_missing_input_recorded_and_others_read(sample_warc, tmp_path):
    missing = tmp_path / "not-there.warc.gz"
    out_dir = tmp_path / "out"

    run = harvest_inputs(
        [HarvestInput(str(missing), ArchiveFormat.WARC), HarvestInput(str(sample_warc), ArchiveFormat.WARC)],
        out_dir,
        ArchiveOptions(progress=False),
    )

    stats = json.loads((out_dir / "stats.json").read_text())
    assert [outcome.status for outcome in run.outcomes] == ["failed", "ok"]
    assert stats["counts"]["inputs_failed"] == 1
    assert stats["failures"][0]["input"] == str(missing)
    assert "No such file" in stats["failures"][0]["error"]
    assert sorted(path.name for path in out_dir.glob("part-*.parquet")) == ["part-00001.parquet"]
    assert stats["counts"]["pages_parsed"] == 16


def test_partition_repeats_removed_across_pages(sample_warc, tmp_path):
    members = read_members(sample_warc)
    twice = b"".join(member.raw for member in members) * 2

    outcome, rows = harvest_bytes(tmp_path, twice)

    assert outcome.stats.pages_parsed == 32
    assert len(rows) == len({row.candidate_id for row in rows})
    assert outcome.stats.candidates == len(rows)
    assert outcome.stats.duplicate_candidates >= len(rows)


def test_set_content_length_helper_round_trip(whirlwind_members):
    record = whirlwind_members[2].content
    assert set_content_length(record) == record


def test_parallel_workers_match_sequential(sample_warc, shared_data, tmp_path):
    inputs = [
        HarvestInput(str(sample_warc), ArchiveFormat.WARC),
        HarvestInput(str(shared_data / "web" / "commoncrawl_whirlwind" / "whirlwind.warc.gz"), ArchiveFormat.WARC),
        HarvestInput(str(tmp_path / "missing.warc.gz"), ArchiveFormat.WARC),
    ]

    sequential = harvest_inputs(inputs, tmp_path / "one", ArchiveOptions(progress=False))
    parallel = harvest_inputs(inputs, tmp_path / "two", ArchiveOptions(progress=False, workers=2))

    assert [outcome.status for outcome in parallel.outcomes] == ["ok", "ok", "failed"]
    assert parallel.counts() == sequential.counts()
    for part in ("part-00000.parquet", "part-00001.parquet"):
        assert pairs(read_records(tmp_path / "two" / part, Candidate)) == pairs(read_records(tmp_path / "one" / part, Candidate))
