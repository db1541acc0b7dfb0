"""`wit replay`: WARC index, replay proxy on 127.0.0.1, and the fetch stage through it."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import gzip
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from PIL import Image
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from wit_builder.fetch.cli import add_parser as add_fetch_parser, config_from_args
from wit_builder.harvest.extract import extract_page
from wit_builder.localserver import BackgroundServer
from wit_builder.net.client import HttpConfig, check_proxy_url, http_get, make_session
from wit_builder.parquet import read_records, write_records
from wit_builder.pipeline.config import load_config
from wit_builder.pipeline.runner import PipelineRunner
from wit_builder.records import FetchResult, FetchStatus, MatchedCandidate
from wit_builder.replay.archive import ReplayIndex
from wit_builder.replay.cli import listen_address
from wit_builder.replay.server import HANDLER_KEY, INDEX_PATH, make_app
from wit_builder.replay.urls import normalize_url, swap_scheme

REPO_ROOT = Path(__file__).resolve().parents[1]
ENWIKI_WARC = Path("web") / "enwiki-main-page-2012-post-blackout.warc.gz"
MAIN_PAGE = "http://en.wikipedia.org/wiki/Main_Page"

TEXT = b"Wikipedia, the free encyclopedia that anyone can edit."
HTML = b"<!doctype html><html><body><img src='/photo.png' alt='a red photo'></body></html>"


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


PHOTO = png_bytes(40, 30)
LOGO = png_bytes(12, 8)


def chunked(data: bytes, size: int) -> bytes:
    """Encode ``data`` with HTTP/1.1 chunked transfer-encoding in chunks of ``size`` bytes."""
    out = b""
    for start in range(0, len(data), size):
        piece = data[start : start + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


class WarcFile:
    """Writes response, request and revisit records to a gzipped WARC file."""

    def __init__(self, path: Path):
        self.handle = path.open("wb")
        self.writer = WARCWriter(self.handle, gzip=True)

    def response(self, url: str, body: bytes, status: str = "200 OK", headers=(), date: str = "2012-01-19T10:00:00Z"):
        http_headers = StatusAndHeaders(status, list(headers), protocol="HTTP/1.1")
        record = self.writer.create_warc_record(
            url, "response", payload=io.BytesIO(body), http_headers=http_headers, warc_headers_dict={"WARC-Date": date}
        )
        self.writer.write_record(record)
        return record

    def request(self, url: str, method: str, concurrent_to: str):
        path = url.split("/", 3)[3]
        http_headers = StatusAndHeaders(f"/{path} HTTP/1.1", [("Host", "example.org")], protocol=method)
        record = self.writer.create_warc_record(
            url, "request", payload=io.BytesIO(b""), http_headers=http_headers,
            warc_headers_dict={"WARC-Concurrent-To": concurrent_to},
        )
        self.writer.write_record(record)

    def revisit(self, url: str, original, status: str | None = "200 OK", headers=(), date: str = "2013-01-19T10:00:00Z",
                refers_to: bool = True, digest: str | None = None):
        http_headers = StatusAndHeaders(status, list(headers), protocol="HTTP/1.1") if status else None
        warc_headers = {"WARC-Date": date}
        if refers_to:
            warc_headers["WARC-Refers-To"] = original.rec_headers.get_header("WARC-Record-ID")
        record = self.writer.create_revisit_record(
            url,
            digest or original.rec_headers.get_header("WARC-Payload-Digest"),
            original.rec_headers.get_header("WARC-Target-URI") if refers_to else None,
            original.rec_headers.get_header("WARC-Date") if refers_to else None,
            http_headers=http_headers,
            warc_headers_dict=warc_headers,
        )
        if not refers_to:
            record.rec_headers.remove_header("WARC-Refers-To-Target-URI")
            record.rec_headers.remove_header("WARC-Refers-To-Date")
        self.writer.write_record(record)

    def close(self) -> None:
        self.handle.close()


@pytest.fixture(scope="module")
def warcs(tmp_path_factory) -> list[Path]:
    """Two WARC files with every case the server handles; the second contains revisits of the first."""
    folder = tmp_path_factory.mktemp("warcs")
    first = WarcFile(folder / "first.warc.gz")
    photo = first.response(
        "http://Example.ORG:80/photo.png#top",
        PHOTO,
        headers=[
            ("Content-Type", "image/png"),
            ("Content-Length", str(len(PHOTO))),
            ("Connection", "close, X-Hop"),
            ("X-Hop", "only for this connection"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "close"),
            ("X-Cache", "MISS from a"),
            ("X-Cache", "HIT from b"),
        ],
    )
    first.response("http://example.org/old.png", b"", status="301 Moved Permanently",
                   headers=[("Location", "http://example.org/photo.png"), ("Content-Length", "0")])
    first.response("http://example.org/chunked.txt", chunked(TEXT, 10),
                   headers=[("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")])
    first.response("http://example.org/page.html", gzip.compress(HTML),
                   headers=[("Content-Type", "text/html"), ("Content-Encoding", "gzip")])
    first.response("http://example.org/gzip-chunked.txt", chunked(gzip.compress(TEXT), 7),
                   headers=[("Content-Type", "text/plain"), ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")])
    first.response("http://example.org/stored-decoded.txt", TEXT,
                   headers=[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")])
    first.response("https://secure.example.org/logo.png", LOGO, headers=[("Content-Type", "image/png")])
    first.response("http://example.org/versioned.txt", b"new", headers=[("Content-Type", "text/plain")], date="2013-05-01T00:00:00Z")
    first.response("http://example.org/versioned.txt", b"old", headers=[("Content-Type", "text/plain")], date="2011-05-01T00:00:00Z")
    posted = first.response("http://example.org/form", b"thanks", headers=[("Content-Type", "text/plain")])
    first.request("http://example.org/form", "POST", posted.rec_headers.get_header("WARC-Record-ID"))
    not_modified = first.response("http://example.org/etag.txt", TEXT, headers=[("Content-Type", "text/plain"), ("ETag", '"v1"')])
    first.close()

    second = WarcFile(folder / "second.warc.gz")
    second.revisit("http://example.org/photo-again.png", photo, headers=[("Content-Type", "image/png"), ("X-Revisit", "yes")])
    second.revisit("http://example.org/photo.png?copy=1", photo, refers_to=False, headers=[("Content-Type", "image/png")])
    second.revisit("http://example.org/etag.txt", not_modified, status="304 Not Modified", headers=[("ETag", '"v1"')])
    second.revisit("http://example.org/gone.png", photo, refers_to=False, digest="sha1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    second.close()
    return [folder / "first.warc.gz", folder / "second.warc.gz"]


@pytest.fixture(scope="module")
def index(warcs) -> ReplayIndex:
    return ReplayIndex.build(warcs)


@pytest.fixture(scope="module")
def proxy(index):
    with BackgroundServer(lambda: make_app(index)) as running:
        yield running


def raw_get(proxy_url: str, url: str, method: str = "GET") -> tuple[int, CIMultiDictProxy, bytes]:
    """Send one request through the proxy without following redirects or decoding the body."""

    async def send():
        async with aiohttp.ClientSession(auto_decompress=False, trust_env=False) as session:
            async with session.request(method, url, proxy=proxy_url, allow_redirects=False) as response:
                return response.status, response.headers, await response.read()

    return asyncio.run(send())


def client_get(proxy_url: str, url: str, **fields):
    """Fetch ``url`` with the project's HTTP client configured for the proxy."""
    config = HttpConfig(proxy=proxy_url, retries=0, timeout_s=10.0, **fields)

    async def fetch():
        async with make_session(config) as session:
            return await http_get(session, url, config)

    return asyncio.run(fetch())


def test_normalize_url_cases():
    assert normalize_url("HTTP://Example.ORG:80/a%2Cb?x=%3A#frag") == "http://example.org/a,b?x=:"
    assert normalize_url("http://example.org/a,b?x=:") == "http://example.org/a,b?x=:"
    assert normalize_url("https://example.org:443") == "https://example.org/"
    assert normalize_url("http://example.org:8080/p") == "http://example.org:8080/p"
    assert normalize_url("http://user:secret@example.org/p") == "http://example.org/p"
    assert swap_scheme("http://example.org/p") == "https://example.org/p"
    assert swap_scheme("https://example.org/p") == "http://example.org/p"
    for bad in ("ftp://example.org/a", "http:///a", "not a url"):
        with pytest.raises(ValueError):
            normalize_url(bad)


def test_index_counts(index):
    stats = index.stats
    assert stats.files == 2
    assert stats.responses == 11
    assert stats.revisits == 4
    assert stats.skipped["method_post"] == 1
    assert stats.skipped["revisit_without_original"] == 1
    assert stats.skipped["older_capture"] == 2
    assert stats.damaged_files == 0
    assert len(index) == 11


def test_replay_image_response(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/photo.png")
    assert status == 200
    assert body == PHOTO
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Length"] == str(len(PHOTO))
    assert headers["X-Replay"] == "hit"
    assert headers["X-Replay-URL"] == "http://example.org/photo.png"
    assert headers["X-Replay-Record"] == "response"
    assert headers["X-Replay-Date"] == "2012-01-19T10:00:00Z"
    assert headers.getall("X-Cache") == ["MISS from a", "HIT from b"]


def test_replay_drops_hop_by_hop_headers(proxy):
    _, headers, _ = raw_get(proxy.base_url, "http://example.org/photo.png")
    for name in ("X-Hop", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding"):
        assert name not in headers, name
    assert headers.get("Connection", "keep-alive").lower() == "keep-alive"


def test_replay_miss_is_404(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/not-archived.png")
    assert status == 404
    assert headers["X-Replay"] == "miss"
    assert b"not in the archive: http://example.org/not-archived.png" in body


def test_replay_post_capture_not_served(proxy):
    status, headers, _ = raw_get(proxy.base_url, "http://example.org/form")
    assert status == 404
    assert headers["X-Replay"] == "miss"


def test_replay_redirect_record(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/old.png")
    assert status == 301
    assert headers["Location"] == "http://example.org/photo.png"
    assert headers["Content-Length"] == "0"
    assert body == b""

    result = client_get(proxy.base_url, "http://example.org/old.png")
    assert result.status is FetchStatus.OK, result.error
    assert result.redirects == 1
    assert result.final_url == "http://example.org/photo.png"
    assert result.body == PHOTO


def test_replay_chunked_record_decoded(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/chunked.txt")
    assert status == 200
    assert body == TEXT
    assert headers["Content-Length"] == str(len(TEXT))
    assert "Transfer-Encoding" not in headers


def test_replay_gzip_record_keeps_encoding(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/page.html")
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Length"] == str(len(body))
    assert gzip.decompress(body) == HTML

    result = client_get(proxy.base_url, "http://example.org/page.html")
    assert result.status is FetchStatus.OK, result.error
    assert result.body == HTML


def test_replay_gzip_chunked_record(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/gzip-chunked.txt")
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "Transfer-Encoding" not in headers
    assert gzip.decompress(body) == TEXT
    assert client_get(proxy.base_url, "http://example.org/gzip-chunked.txt").body == TEXT


def test_replay_drops_false_gzip_header(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/stored-decoded.txt")
    assert status == 200
    assert "Content-Encoding" not in headers
    assert body == TEXT


def test_replay_revisit_by_record_id(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/photo-again.png")
    assert status == 200
    assert body == PHOTO
    assert headers["X-Replay-Record"] == "revisit"
    assert headers["X-Revisit"] == "yes"
    assert headers["X-Replay-Date"] == "2013-01-19T10:00:00Z"


def test_replay_revisit_by_digest(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/photo.png?copy=1")
    assert status == 200
    assert body == PHOTO
    assert headers["X-Replay-Record"] == "revisit"


def test_replay_not_modified_revisit_serves_original(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/etag.txt")
    assert status == 200
    assert body == TEXT
    assert headers["X-Replay-Record"] == "revisit"
    assert headers["ETag"] == '"v1"'


def test_replay_unresolved_revisit_is_miss(proxy):
    status, headers, _ = raw_get(proxy.base_url, "http://example.org/gone.png")
    assert status == 404
    assert headers["X-Replay"] == "miss"


def test_replay_latest_capture_wins(proxy):
    _, headers, body = raw_get(proxy.base_url, "http://example.org/versioned.txt")
    assert body == b"new"
    assert headers["X-Replay-Date"] == "2013-05-01T00:00:00Z"


def test_replay_head_request(proxy):
    status, headers, body = raw_get(proxy.base_url, "http://example.org/photo.png", method="HEAD")
    assert status == 200
    assert headers["Content-Length"] == str(len(PHOTO))
    assert body == b""


def test_replay_other_scheme_fallback(proxy):
    # aiohttp itself would open a CONNECT tunnel for https, so this goes through the project client.
    exact = client_get(proxy.base_url, "https://secure.example.org/logo.png")
    assert exact.status is FetchStatus.OK, exact.error
    assert exact.body == LOGO
    assert exact.headers["x-replay"] == "hit"

    fallback = client_get(proxy.base_url, "http://SECURE.example.org:80/logo.png")
    assert fallback.body == LOGO
    assert fallback.headers["x-replay"] == "hit-other-scheme"
    assert fallback.headers["x-replay-url"] == "https://secure.example.org/logo.png"

    https_of_http = client_get(proxy.base_url, "https://example.org/photo.png")
    assert https_of_http.body == PHOTO
    assert https_of_http.headers["x-replay"] == "hit-other-scheme"


def test_replay_connect_rejected(proxy):
    async def connect():
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.close()
        return head.decode("latin-1")

    head = asyncio.run(connect())
    assert head.startswith("HTTP/1.1 405")
    assert "X-Replay: method-not-allowed" in head


def test_replay_other_method_rejected(proxy):
    status, headers, _ = raw_get(proxy.base_url, "http://example.org/photo.png", method="POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_replay_index_json(proxy, warcs):
    async def get(path):
        async with aiohttp.ClientSession(trust_env=False) as session:
            async with session.get(proxy.base_url.rstrip("/") + path) as response:
                return response.status, response.headers, await response.read()

    status, _, body = asyncio.run(get(INDEX_PATH))
    assert status == 200
    listing = json.loads(body)
    assert listing["files"] == [str(path) for path in warcs]
    urls = {entry["url"]: entry for entry in listing["urls"]}
    assert len(urls) == 11
    assert urls["http://example.org/photo.png"]["archived_url"] == "http://Example.ORG:80/photo.png#top"
    assert urls["http://example.org/photo.png"]["length"] == len(PHOTO)
    assert urls["http://example.org/old.png"]["status"] == 301
    assert urls["http://example.org/photo-again.png"]["record"] == "revisit"
    assert listing["stats"]["skipped"]["method_post"] == 1

    status, headers, _ = asyncio.run(get("/somewhere"))
    assert status == 404
    assert headers["X-Replay"] == "not-a-proxy-request"


def test_replay_counts_outcomes(index):
    apps = []

    def make_counted_app():
        apps.append(make_app(index))
        return apps[-1]

    with BackgroundServer(make_counted_app) as server:
        raw_get(server.base_url, "http://example.org/photo.png")
        raw_get(server.base_url, "http://example.org/missing")
    counts = apps[0][HANDLER_KEY].counts
    assert counts["hit"] == 1
    assert counts["miss"] == 1


def test_index_stops_at_cut_file(tmp_path):
    path = tmp_path / "cut.warc.gz"
    warc = WarcFile(path)
    warc.response("http://example.org/a.txt", TEXT, headers=[("Content-Type", "text/plain")])
    warc.response("http://example.org/b.png", PHOTO * 20, headers=[("Content-Type", "image/png")])
    warc.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])  # cuts the last gzip member inside the payload

    index = ReplayIndex.build([path])
    assert list(index.captures) == ["http://example.org/a.txt"]
    assert index.stats.damaged_files == 1


def test_replay_file_changed_after_start(tmp_path):
    path = tmp_path / "changing.warc.gz"
    warc = WarcFile(path)
    warc.response("http://example.org/big.bin", bytes(range(256)) * 400, headers=[("Content-Type", "application/octet-stream")])
    warc.close()
    index = ReplayIndex.build([path])

    with BackgroundServer(lambda: make_app(index)) as server:
        # The same record with a shorter payload: headers go out, then the body stops early.
        warc = WarcFile(path)
        warc.response("http://example.org/big.bin", bytes(range(256)) * 40, headers=[("Content-Type", "application/octet-stream")])
        warc.close()
        shorter = client_get(server.base_url, "http://example.org/big.bin")
        assert shorter.status is FetchStatus.TRUNCATED, shorter.error

        # No record at the offset any more: nothing is sent but the error.
        path.write_bytes(b"")
        status, headers, body = raw_get(server.base_url, "http://example.org/big.bin")
        assert status == 502
        assert headers["X-Replay"] == "read-error"
        assert b"cannot read the archived response" in body


def test_index_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ReplayIndex.build([tmp_path / "absent.warc.gz"])


def test_proxy_url_checked():
    assert check_proxy_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_proxy_url("http://[::1]:8080") == "http://[::1]:8080"
    for bad in ("https://127.0.0.1:8080", "http://localhost:8080", "http://10.0.0.1:3128", "http://example.org:3128",
                "http://127.0.0.1:8080/path", "http://user:pw@127.0.0.1:8080", "socks5://127.0.0.1:1080"):
        with pytest.raises(ValueError, match="invalid proxy"):
            HttpConfig(proxy=bad)


def test_proxy_client_keeps_address_guard(proxy):
    blocked = client_get(proxy.base_url, "http://127.0.0.1/photo.png")
    assert blocked.status is FetchStatus.BLOCKED_ADDRESS
    metadata = client_get(proxy.base_url, "http://169.254.169.254/latest/meta-data/")
    assert metadata.status is FetchStatus.BLOCKED_ADDRESS


def test_proxy_client_skips_dns(tmp_path):
    # Names under .invalid never resolve (RFC 6761), so ok proves that no lookup happened.
    warc = WarcFile(tmp_path / "invalid.warc.gz")
    warc.response("http://images.example.invalid/a.png", PHOTO, headers=[("Content-Type", "image/png")])
    warc.close()
    index = ReplayIndex.build([tmp_path / "invalid.warc.gz"])
    with BackgroundServer(lambda: make_app(index)) as server:
        result = client_get(server.base_url, "http://images.example.invalid/a.png")
    assert result.status is FetchStatus.OK, result.error
    assert result.body == PHOTO


def test_fetch_cli_proxy_option():
    import argparse

    parser = argparse.ArgumentParser()
    add_fetch_parser(parser.add_subparsers())
    args = parser.parse_args(["fetch", "in", "--out", "out", "--proxy", "http://127.0.0.1:9000/"])
    assert config_from_args(args).http.proxy == "http://127.0.0.1:9000"
    args = parser.parse_args(["fetch", "in", "--out", "out", "--proxy", "http://192.168.0.1:9000"])
    with pytest.raises(ValueError, match="invalid proxy"):
        config_from_args(args)


def write_pipeline(tmp_path: Path, fetch_table: str) -> Path:
    (tmp_path / "queries.txt").write_text("photo\n", encoding="utf-8")
    path = tmp_path / "pipeline.toml"
    path.write_text(
        f'[run]\ndir = "run"\n\n[queries]\nlist = "queries.txt"\n\n[harvest]\nwarc = ["page.warc.gz"]\n\n{fetch_table}\n',
        encoding="utf-8",
    )
    return path


def test_pipeline_fetch_proxy_key(tmp_path):
    config = load_config(write_pipeline(tmp_path, '[fetch]\nproxy = "http://127.0.0.1:9000/"'))
    assert config.fetch.config.http.proxy == "http://127.0.0.1:9000"

    config = load_config(write_pipeline(tmp_path, '[fetch.http]\nproxy = "http://127.0.0.1:9000"'))
    assert config.fetch.config.http.proxy == "http://127.0.0.1:9000"

    with pytest.raises(ValueError, match="differs from"):
        load_config(write_pipeline(tmp_path, '[fetch]\nproxy = "http://127.0.0.1:9000"\n\n[fetch.http]\nproxy = "http://127.0.0.1:9001"'))
    with pytest.raises(ValueError, match="invalid proxy"):
        load_config(write_pipeline(tmp_path, '[fetch]\nproxy = "http://example.org:3128"'))


def test_listen_address_loopback_only():
    assert str(listen_address("127.0.0.1", allow_remote=False)) == "127.0.0.1"
    assert str(listen_address("::1", allow_remote=False)) == "::1"
    with pytest.raises(ValueError, match="--allow-remote"):
        listen_address("0.0.0.0", allow_remote=False)
    assert str(listen_address("0.0.0.0", allow_remote=True)) == "0.0.0.0"
    with pytest.raises(ValueError, match="IP address"):
        listen_address("localhost", allow_remote=False)


def test_replay_command_serves_until_interrupted(warcs):
    command = [sys.executable, "-m", "wit_builder.cli", "replay", *map(str, warcs), "--print-url"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if not url else url
        status, headers, body = raw_get(url, "http://example.org/chunked.txt")
        assert status == 200
        assert body == TEXT
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "replay server stopped; responses: hit 1" in stderr


def test_replay_command_rejects_remote_host(warcs):
    command = [sys.executable, "-m", "wit_builder.cli", "replay", str(warcs[0]), "--host", "0.0.0.0"]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "--allow-remote" in completed.stderr


# Real archive: the English Wikipedia main page of 19 January 2012 with its images.


def archived_images(path: Path) -> dict[str, bytes]:
    """Return the decoded payload of every image response in the WARC file, by URL (read with warcio directly)."""
    images = {}
    with path.open("rb") as handle:
        for record in ArchiveIterator(handle):
            if record.rec_type != "response":
                continue
            if (record.http_headers.get_header("Content-Type") or "").startswith("image/"):
                images[record.rec_headers.get_header("WARC-Target-URI")] = record.content_stream().read()
    return images


@pytest.fixture(scope="module")
def enwiki(shared_data):
    path = shared_data / ENWIKI_WARC
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def enwiki_proxy(enwiki):
    index = ReplayIndex.build([enwiki])
    with BackgroundServer(lambda: make_app(index)) as running:
        yield running


def test_enwiki_every_response_replayed(enwiki, enwiki_proxy):
    expected = {}
    with enwiki.open("rb") as handle:
        for record in ArchiveIterator(handle):
            if record.rec_type == "response":
                expected[record.rec_headers.get_header("WARC-Target-URI")] = record.content_stream().read()
    assert len(expected) == 70

    config = HttpConfig(proxy=enwiki_proxy.base_url, retries=0, max_concurrency=32, max_per_host=32)

    async def fetch_all():
        async with make_session(config) as session:
            # Every URL four times at once, to exercise concurrent reads of one file.
            urls = list(expected) * 4
            return urls, await asyncio.gather(*(http_get(session, url, config) for url in urls))

    urls, results = asyncio.run(fetch_all())
    for url, result in zip(urls, results):
        assert result.status is FetchStatus.OK, (url, result.error)
        assert result.headers["x-replay"] == "hit"
        assert result.body == expected[url], url


def test_enwiki_fetch_stage_through_proxy(tmp_path, enwiki, enwiki_proxy):
    images = archived_images(enwiki)
    types = collections.Counter(Image.open(io.BytesIO(data)).format for data in images.values())
    assert len(images) == 54
    assert types == {"PNG": 43, "GIF": 6, "JPEG": 5}

    # Harvest: the page itself comes through the proxy.
    page = client_get(enwiki_proxy.base_url, MAIN_PAGE)
    assert page.status is FetchStatus.OK, page.error
    extraction = extract_page(page.body, MAIN_PAGE, "warc", with_links=False)
    assert extraction.images == 17
    assert extraction.images_with_text == 17
    assert {candidate.text_source for candidate in extraction.candidates} == {"alt"}
    referenced = {candidate.url for candidate in extraction.candidates}
    assert len(referenced) == 17
    assert referenced <= set(images)
    assert len(set(images) - referenced) == 37

    # Fetch: the pipeline's fetch stage, configured with the [fetch] proxy key.
    rows = [
        MatchedCandidate(**dataclasses.asdict(candidate), query_ids=[index])
        for index, candidate in enumerate(extraction.candidates)
    ]
    config_path = tmp_path / "pipeline.toml"
    (tmp_path / "queries.txt").write_text("wiki\n", encoding="utf-8")
    config_path.write_text(
        "[run]\ndir = \"run\"\n\n[queries]\nlist = \"queries.txt\"\n\n"
        f"[harvest]\nwarc = [{json.dumps(str(enwiki))}]\n\n"
        f"[fetch]\nproxy = {json.dumps(enwiki_proxy.base_url)}\nimage_size = 64\nprocesses = 1\n\n"
        "[fetch.http]\nretries = 0\n",
        encoding="utf-8",
    )
    config = load_config(config_path)
    assert config.fetch.config.http.allow_private is False
    write_records(config.stage_dir("balanced") / "part-00000.parquet", rows, MatchedCandidate)
    PipelineRunner(config).run(["fetch"])

    results = read_records(config.stage_dir("fetched") / "part-00000.parquet", FetchResult)
    assert len(results) == 17
    for result in results:
        archived = images[result.url]
        width, height = Image.open(io.BytesIO(archived)).size
        assert result.status == "ok", (result.url, result.error)
        assert result.bytes_downloaded == len(archived), result.url
        assert (result.original_width, result.original_height) == (width, height), result.url
        assert min(result.width, result.height) == 64, result.url
        assert Image.open(io.BytesIO(result.image)).size == (result.width, result.height)

    stats = json.loads((config.stage_dir("fetched") / "stats.json").read_text())
    assert stats["counts"]["ok"] == 17
    assert stats["proxy"] == enwiki_proxy.base_url.rstrip("/")
