"""Inputs of the archive harvest: format detection, path lists, local and file:// inputs, and streaming from
an aiohttp server on 127.0.0.1 that this test starts, including one that drops the connection mid-body."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from archive_helpers import compress, read_members, wat_record_for
from wit_builder import cli
from wit_builder.harvest.archives import ArchiveOptions, harvest_input, harvest_inputs
from wit_builder.harvest import httpstream
from wit_builder.harvest.httpstream import HttpStream, StreamConfig
from wit_builder.harvest.sources import (
    ArchiveFormat,
    HarvestInput,
    InputOpenError,
    detect_format,
    join_location,
    open_input,
    read_paths_list,
    resolve_inputs,
)
from wit_builder.parquet import read_records
from wit_builder.records import Candidate


class ArchiveServer:
    """An aiohttp server on 127.0.0.1, run on its own thread, that serves files well and badly.

    ``/files/NAME`` serves a file with byte ranges, ``/cut/NAME`` closes the connection after
    ``cut_at`` bytes and accepts no ranges, ``/flaky/NAME`` does the same on its first request
    but serves Range requests, ``/moved/NAME`` redirects to ``/files/NAME``, and any other
    path is a 404.
    """

    def __init__(self, files: dict[str, bytes], cut_at: int):
        self.files = files
        self.cut_at = cut_at
        self.requests: list[tuple[str, str | None]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def __enter__(self) -> ArchiveServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/files/{name}", self._serve)
        app.router.add_get("/cut/{name}", self._cut)
        app.router.add_get("/flaky/{name}", self._flaky)
        app.router.add_get("/moved/{name}", self._moved)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    def _data(self, request: web.Request) -> bytes:
        self.requests.append((request.path, request.headers.get("Range")))
        name = request.match_info["name"]
        if name not in self.files:
            raise web.HTTPNotFound()
        return self.files[name]

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        data = self._data(request)
        start = 0
        range_header = request.headers.get("Range", "")
        if range_header.startswith("bytes="):
            start = int(range_header[len("bytes=") :].split("-", 1)[0])
            headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}", "Accept-Ranges": "bytes"}
            return web.Response(status=206, body=data[start:], headers=headers)
        return web.Response(body=data, headers={"Accept-Ranges": "bytes", "ETag": '"v1"'})

    async def _send_cut(self, request: web.Request, data: bytes, headers: dict) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(data)), **headers})
        await response.prepare(request)
        await response.write(data[: self.cut_at])
        await asyncio.sleep(0.05)
        request.transport.close()
        return response

    async def _cut(self, request: web.Request) -> web.StreamResponse:
        return await self._send_cut(request, self._data(request), {})

    async def _flaky(self, request: web.Request) -> web.StreamResponse:
        if "Range" in request.headers:
            return await self._serve(request)
        return await self._send_cut(request, self._data(request), {"Accept-Ranges": "bytes", "ETag": '"v1"'})

    async def _moved(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/files/{request.match_info['name']}")


@pytest.fixture(scope="module")
def sample_warc(samples_dir):
    return samples_dir / "commoncrawl" / "warcfile.warc.gz"


@pytest.fixture(scope="module")
def wat_bytes(shared_data):
    """A WAT file: the real WAT's records and the WAT record of the real capture's response."""
    whirlwind = shared_data / "web" / "commoncrawl_whirlwind"
    wat = read_members(whirlwind / "whirlwind.warc.wat.gz")
    response = read_members(whirlwind / "whirlwind.warc.gz")[2].content
    return compress(wat[0].content, wat[1].content, wat_record_for(response))


@pytest.fixture()
def server(sample_warc, wat_bytes):
    paths = "# Common Crawl style list\nfiles/warcfile.warc.gz\n\nfiles/whirlwind.warc.wat.gz\n"
    files = {
        "warcfile.warc.gz": sample_warc.read_bytes(),
        "whirlwind.warc.wat.gz": wat_bytes,
        "warc.paths.gz": gzip.compress(paths.encode()),
        "warc.paths": paths.encode(),
    }
    with ArchiveServer(files, cut_at=len(files["warcfile.warc.gz"]) // 2) as running:
        yield running


LOCAL = ArchiveOptions(progress=False, stream=StreamConfig(allow_private=True, backoff_s=0.01, read_timeout_s=10))


def candidate_set(path) -> set[tuple[str, str, str]]:
    return {(row.url, row.text, row.page_url) for row in read_records(path, Candidate)}


@pytest.mark.parametrize(
    "location, expected",
    [
        ("CC-MAIN-20240517233122-20240518023122-00000.warc.gz", ArchiveFormat.WARC),
        ("crawl-data/CC-MAIN-2024-22/segments/1/wat/CC-MAIN-x-00000.warc.wat.gz", ArchiveFormat.WAT),
        ("s3://commoncrawl/crawl-data/x/wet/CC-MAIN-x-00000.warc.wet.gz", ArchiveFormat.WET),
        ("https://data.example.org/x.warc.wat.gz?token=1#part", ArchiveFormat.WAT),
        ("capture.warc", ArchiveFormat.WARC),
        ("capture.WARC.GZ", ArchiveFormat.WARC),
        ("capture.warc.zst", ArchiveFormat.WARC),
        ("notes.txt.gz", None),
        ("archive.arc.gz", None),
    ],
)
def test_format_detected_by_name(location, expected):
    assert detect_format(location) is expected


def test_explicit_format_overrides_name(caplog):
    with caplog.at_level(logging.WARNING):
        inputs = resolve_inputs(["a.warc.wat.gz", "b.dat"], format="warc")

    assert [item.format for item in inputs] == [ArchiveFormat.WARC, ArchiveFormat.WARC]
    assert any("looks like a WAT file" in record.getMessage() for record in caplog.records)


def test_unknown_name_without_format_rejected():
    with pytest.raises(ValueError, match="cannot tell the format of b.dat"):
        resolve_inputs(["a.warc.gz", "b.dat"])


def test_join_location_cases():
    base = "https://data.commoncrawl.org/"
    assert join_location("crawl-data/x.warc.gz", base) == "https://data.commoncrawl.org/crawl-data/x.warc.gz"
    assert join_location("/crawl-data/x.warc.gz", base) == "/crawl-data/x.warc.gz"
    assert join_location("s3://bucket/x.warc.gz", base) == "s3://bucket/x.warc.gz"
    assert join_location("crawl-data/x.warc.gz", None) == "crawl-data/x.warc.gz"


@pytest.mark.parametrize("compressed", [False, True])
def test_local_paths_list(tmp_path, compressed):
    text = "# list\ncrawl-data/a.warc.wat.gz\n\n  crawl-data/b.warc.wat.gz  \nhttps://other.example.org/c.warc.wat.gz\n"
    path = tmp_path / ("wat.paths.gz" if compressed else "wat.paths")
    path.write_bytes(gzip.compress(text.encode()) if compressed else text.encode())

    locations = read_paths_list(str(path), "https://data.commoncrawl.org")

    assert locations == [
        "https://data.commoncrawl.org/crawl-data/a.warc.wat.gz",
        "https://data.commoncrawl.org/crawl-data/b.warc.wat.gz",
        "https://other.example.org/c.warc.wat.gz",
    ]


def test_missing_paths_list_raises(tmp_path):
    with pytest.raises(InputOpenError, match="no-list.gz"):
        read_paths_list(str(tmp_path / "no-list.gz"))


def test_file_uri_read_through_pyarrow(sample_warc, tmp_path):
    outcome = harvest_input(HarvestInput(sample_warc.resolve().as_uri(), ArchiveFormat.WARC), tmp_path / "part.parquet", LOCAL)
    local = harvest_input(HarvestInput(str(sample_warc), ArchiveFormat.WARC), tmp_path / "local.parquet", LOCAL)

    assert outcome.status == "ok"
    assert outcome.stats.pages_parsed == 16
    assert outcome.bytes_read == sample_warc.stat().st_size
    assert candidate_set(tmp_path / "part.parquet") == candidate_set(tmp_path / "local.parquet")
    assert local.stats.candidates == outcome.stats.candidates


def test_unopenable_uris_fail_cleanly(tmp_path):
    for location in ("nosuchfs://bucket/x.warc.gz", (tmp_path / "none.warc.gz").as_uri()):
        outcome = harvest_input(HarvestInput(location, ArchiveFormat.WARC), tmp_path / "part.parquet", LOCAL)
        assert outcome.status == "failed"
        assert location in outcome.error
        assert outcome.part is None


def test_http_inputs_from_paths_list_match_local(server, sample_warc, wat_bytes, tmp_path):
    inputs = resolve_inputs(paths_files=[f"{server.base_url}/files/warc.paths.gz"], base_url=f"{server.base_url}/",
                            config=LOCAL.stream)
    local_wat = tmp_path / "local.warc.wat.gz"
    local_wat.write_bytes(wat_bytes)
    local_inputs = resolve_inputs([str(sample_warc), str(local_wat)])

    remote = harvest_inputs(inputs, tmp_path / "remote", LOCAL)
    local = harvest_inputs(local_inputs, tmp_path / "local", LOCAL)

    assert [item.format for item in inputs] == [ArchiveFormat.WARC, ArchiveFormat.WAT]
    assert [outcome.status for outcome in remote.outcomes] == ["ok", "ok"]
    for part in ("part-00000.parquet", "part-00001.parquet"):
        assert candidate_set(tmp_path / "remote" / part) == candidate_set(tmp_path / "local" / part)
    assert remote.outcomes[0].bytes_read == sample_warc.stat().st_size
    assert remote.total.candidates == local.total.candidates > 0
    assert remote.total.counts() == local.total.counts()


def test_plain_paths_list_over_http(server):
    inputs = resolve_inputs(paths_files=[f"{server.base_url}/files/warc.paths"], base_url=server.base_url, config=LOCAL.stream)
    assert [item.location for item in inputs] == [
        f"{server.base_url}/files/warcfile.warc.gz",
        f"{server.base_url}/files/whirlwind.warc.wat.gz",
    ]


def test_loopback_rejected_without_allow_private(server, tmp_path):
    item = HarvestInput(f"{server.base_url}/files/warcfile.warc.gz", ArchiveFormat.WARC)

    outcome = harvest_input(item, tmp_path / "part.parquet", ArchiveOptions(progress=False))

    assert outcome.status == "failed"
    assert "blocked address" in outcome.error
    assert outcome.part is None
    assert server.requests == []


class LoopbackResolver(AbstractResolver):
    """A resolver that answers 127.0.0.1 for every host, as a rebinding DNS server would."""

    def __init__(self, allow_private: bool = False):
        self.lookups: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.lookups.append(host)
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        pass


def test_connected_address_checked_after_resolver(server, tmp_path, monkeypatch):
    """Even a resolver that returns loopback cannot reach it: the socket is checked before connecting."""
    monkeypatch.setattr(httpstream, "GuardedResolver", LoopbackResolver)
    port = server.base_url.rsplit(":", 1)[1]
    item = HarvestInput(f"http://archive.test:{port}/files/warcfile.warc.gz", ArchiveFormat.WARC)

    outcome = harvest_input(item, tmp_path / "part.parquet", ArchiveOptions(progress=False))

    assert outcome.status == "failed"
    assert "blocked address" in outcome.error
    assert server.requests == []


def test_connection_cut_mid_body_keeps_complete_records(server, sample_warc, tmp_path):
    item = HarvestInput(f"{server.base_url}/cut/warcfile.warc.gz", ArchiveFormat.WARC)
    members = read_members(sample_warc)
    complete = [member for member in members if member.offset + len(member.raw) <= server.cut_at]

    outcome = harvest_input(item, tmp_path / "part.parquet", LOCAL)

    assert outcome.status == "failed"
    assert "connection failed after" in outcome.error
    assert "does not accept byte ranges" in outcome.error
    assert outcome.offset is not None and outcome.offset <= server.cut_at
    assert outcome.stats.extra["records"] == len(complete)
    rows = read_records(tmp_path / "part.parquet", Candidate)
    assert rows
    harvest_input(HarvestInput(str(sample_warc), ArchiveFormat.WARC), tmp_path / "full.parquet", LOCAL)
    assert candidate_set(tmp_path / "part.parquet") < candidate_set(tmp_path / "full.parquet")
    assert server.requests == [("/cut/warcfile.warc.gz", None)]


def test_dropped_connection_resumed_with_range(server, sample_warc, tmp_path, caplog):
    item = HarvestInput(f"{server.base_url}/flaky/warcfile.warc.gz", ArchiveFormat.WARC)

    with caplog.at_level(logging.INFO, logger="wit_builder.harvest.httpstream"):
        outcome = harvest_input(item, tmp_path / "part.parquet", LOCAL)
    harvest_input(HarvestInput(str(sample_warc), ArchiveFormat.WARC), tmp_path / "full.parquet", LOCAL)

    assert outcome.status == "ok"
    assert outcome.stats.pages_parsed == 16
    assert candidate_set(tmp_path / "part.parquet") == candidate_set(tmp_path / "full.parquet")
    assert server.requests == [("/flaky/warcfile.warc.gz", None), ("/flaky/warcfile.warc.gz", f"bytes={server.cut_at}-")]
    assert any("requesting the rest" in record.getMessage() for record in caplog.records)


def test_http_error_recorded_and_run_continues(server, tmp_path):
    inputs = [
        HarvestInput(f"{server.base_url}/files/gone.warc.gz", ArchiveFormat.WARC),
        HarvestInput(f"{server.base_url}/moved/warcfile.warc.gz", ArchiveFormat.WARC),
    ]

    run = harvest_inputs(inputs, tmp_path / "out", LOCAL)

    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert [outcome.status for outcome in run.outcomes] == ["failed", "ok"]
    assert "HTTP 404" in stats["failures"][0]["error"]
    assert stats["failures"][0]["input"].endswith("/files/gone.warc.gz")
    assert run.outcomes[1].stats.pages_parsed == 16


def test_http_stream_closed_early_stops_download(server):
    stream = HttpStream(f"{server.base_url}/files/warcfile.warc.gz", StreamConfig(allow_private=True, chunk_bytes=4096, queue_chunks=2))
    first = stream.read(100)
    stream.close()

    assert first.startswith(b"\x1f\x8b")
    assert stream.closed
    assert stream.bytes_received < len(server.files["warcfile.warc.gz"])


def test_open_input_reports_http_errors(server):
    with pytest.raises(InputOpenError, match="HTTP 404"):
        with open_input(f"{server.base_url}/files/gone.warc.gz", LOCAL.stream):
            pass


def test_cli_reads_paths_list_over_http(server, tmp_path):
    out_dir = tmp_path / "candidates"
    code = cli.main(["-q", "harvest", "wat", "--paths-file", f"{server.base_url}/files/warc.paths.gz",
                     "--base-url", server.base_url, "--allow-private", "--out", str(out_dir)])

    stats = json.loads((out_dir / "stats.json").read_text())
    assert code == 0
    assert [entry["format"] for entry in stats["inputs"]] == ["wat", "wat"]
    assert stats["counts"]["inputs"] == 2
    # The WARC file read as WAT has no metadata records, so it gives no candidates but does not fail.
    assert stats["inputs"][0]["status"] == "ok"
    assert stats["inputs"][1]["counts"]["candidates"] > 0


def test_cli_fails_when_every_input_fails(tmp_path):
    code = cli.main(["-q", "harvest", "warc", str(tmp_path / "none.warc.gz"), "--out", str(tmp_path / "out")])
    assert code == 1


def test_cli_without_inputs_is_an_error(tmp_path):
    assert cli.main(["-q", "harvest", "wet", "--out", str(tmp_path / "out")]) == 2
