"""Broken HTTP from raw asyncio servers on 127.0.0.1: each misbehaviour must end as a named status.

aiohttp's server cannot send malformed framing, so every server here writes raw bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
import zlib

import pytest

from wit_builder.net import HttpConfig, http_get, make_session
from wit_builder.net.decoding import SUPPORTED_CODINGS
from wit_builder.records import FetchStatus

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"
BODY = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def config(**fields) -> HttpConfig:
    defaults = dict(allow_loopback=True, timeout_s=5.0, retries=0, backoff_s=0.05)
    defaults.update(fields)
    return HttpConfig(**defaults)


class RawServer:
    """Loopback TCP server that runs ``handle(reader, writer)`` for each connection."""

    def __init__(self, handle):
        self.handle = handle
        self.connections = 0
        self.base_url = ""

    async def _serve(self, reader, writer):
        self.connections += 1
        try:
            await self.handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self):
        listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.base_url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}/"
        try:
            yield self
        finally:
            listener.close()


def reply_once(*parts: bytes | float):
    """Return a handler that reads one request head, then writes ``parts``. A float part is a pause in seconds."""

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        for part in parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                writer.write(part)
                await writer.drain()
        await asyncio.sleep(0.2)

    return handle


def fetch_from(handle, http_config: HttpConfig | None = None, paths=("x.png",), pause_s: float = 0.0):
    """Request each path in one session against a raw server, ``pause_s`` apart, and return (results, server)."""
    http_config = http_config or config()

    async def run():
        server = RawServer(handle)
        async with server.running():
            async with make_session(http_config) as session:
                results = []
                for path in paths:
                    results.append(await http_get(session, server.base_url + path, http_config))
                    await asyncio.sleep(pause_s)
        return results, server

    return asyncio.run(run())


def fetch_one(*parts: bytes | float, **config_fields):
    results, _ = fetch_from(reply_once(*parts), config(**config_fields))
    return results[0]


def with_length(body: bytes, extra_headers: bytes = b"") -> bytes:
    return HEAD + extra_headers + b"Content-Length: %d\r\n\r\n" % len(body) + body


BROKEN_HEADS = {
    "bad status line": (b"HTTX/9 abc\r\n\r\nhello", "Bad status line"),
    "not http at all": (b"hello world, this is not HTTP\r\n\r\n", "invalid HTTP response"),
    "header without colon": (b"HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n", "invalid HTTP response"),
    "header line too long": (b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 100_000 + b"\r\n\r\n", "8190"),
    "too many header fields": (
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Field-%d: v\r\n" % index for index in range(500)) + b"\r\n",
        "Too many headers",
    ),
    "invalid content-length": (HEAD + b"Content-Length: abc\r\n\r\n" + BODY, "Content-Length"),
    "negative content-length": (HEAD + b"Content-Length: -5\r\n\r\n" + BODY, "Content-Length"),
    "listed content-length": (HEAD + b"Content-Length: 10, 12\r\n\r\n" + b"a" * 12, "Content-Length"),
    "conflicting content-length": (
        HEAD + b"Content-Length: 10\r\nContent-Length: 12\r\n\r\n" + b"a" * 12,
        "Duplicate Content-Length",
    ),
    "repeated equal content-length": (
        HEAD + b"Content-Length: 10\r\nContent-Length: 10\r\n\r\n" + b"a" * 10,
        "Duplicate Content-Length",
    ),
    "content-length with chunked": (
        HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
        "Transfer-Encoding",
    ),
    "invalid chunk size": (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "chunk size"),
    "garbage after the body": (with_length(BODY) + b"EXTRA-BYTES", "invalid HTTP response"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_HEADS))
def test_broken_response_protocol_error(case):
    response, fragment = BROKEN_HEADS[case]
    result = fetch_one(response, retries=2)
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert fragment in result.error
    assert "\n" not in result.error
    assert result.body is None
    assert result.attempts == 1


def test_extra_response_after_body_protocol_error():
    extra = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nFAKE"
    result = fetch_one(with_length(BODY) + extra)
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert "after the end of the body" in result.error
    assert result.http_status == 200
    assert result.body is None


def test_extra_bytes_in_later_packet_protocol_error():
    # The body is declared longer than the first packet, and the last packet carries
    # more than the declared rest: the client is still reading when the surplus arrives.
    declared = HEAD + b"Content-Length: 20\r\n\r\n" + b"a" * 10
    result = fetch_one(declared, 0.2, b"b" * 10 + b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nX")
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert result.body is None


def test_invalid_chunk_in_body_ends_at_once():
    start = HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n"
    started = time.monotonic()
    result = fetch_one(start, 0.2, b"zz\r\nabc\r\n0\r\n\r\n", timeout_s=5.0)
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert "chunk size" in result.error
    assert result.body is None
    assert time.monotonic() - started < 2.0


def test_chunk_without_line_end_protocol_error():
    start = HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n"
    result = fetch_one(start, 0.2, b"3\r\nabcXX0\r\n\r\n")
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert result.body is None


def test_late_response_not_taken_for_next_request():
    # The server responds to the first request, then sends a second, unrequested
    # response. The next request must get its own response from a new connection.
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(with_length(b"first"))
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nFAKE")
        await writer.drain()
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(with_length(b"later"))
            await writer.drain()

    results, server = fetch_from(handle, paths=("a.png", "b.png"), pause_s=0.3)
    assert results[0].status is FetchStatus.OK
    assert results[0].body == b"first"
    assert results[1].status is FetchStatus.OK
    assert results[1].body == b"first"  # a fresh connection starts with "first" again
    assert server.connections == 2


def test_keep_alive_connection_reused():
    async def handle(reader, writer):
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(with_length(BODY))
            await writer.drain()

    results, server = fetch_from(handle, paths=("a.png", "b.png", "c.png"))
    assert [result.status for result in results] == [FetchStatus.OK] * 3
    assert all(result.body == BODY for result in results)
    assert server.connections == 1


def test_content_length_longer_than_body_truncated():
    result = fetch_one(HEAD + b"Content-Length: 5000\r\n\r\n" + BODY, retries=1)
    assert result.status is FetchStatus.TRUNCATED
    assert result.body is None
    assert result.attempts == 2
    assert "Content-Length" in result.error or "content length" in result.error


@pytest.mark.parametrize(
    ("name", "response"),
    [
        ("empty reply", b""),
        ("only a 100 Continue", b"HTTP/1.1 100 Continue\r\n\r\n"),
        ("closed inside the head", b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\n"),
    ],
)
def test_closed_before_response_head(name, response):
    result = fetch_one(response)
    assert result.status is FetchStatus.CONNECTION_ERROR, name
    assert result.body is None


def test_unknown_status_code_http_error():
    result = fetch_one(b"HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n")
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.http_status == 999


def test_conflicting_location_headers():
    response = b"HTTP/1.1 302 Found\r\nLocation: /a.png\r\nLocation: /b.png\r\nContent-Length: 0\r\n\r\n"
    result = fetch_one(response)
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert "Location" in result.error


GZIP_BODY = gzip.compress(BODY * 50)


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", GZIP_BODY),
        ("x-gzip", GZIP_BODY),
        ("gzip", gzip.compress(BODY) + gzip.compress(BODY * 49)),
        ("deflate", zlib.compress(BODY * 50)),
        ("deflate", zlib.compress(BODY * 50)[2:-4]),  # raw deflate, as some servers send it
        ("identity", BODY * 50),
    ],
)
def test_encoded_body_decoded(encoding, encoded):
    result = fetch_one(with_length(encoded, b"Content-Encoding: %s\r\n" % encoding.encode()))
    assert result.status is FetchStatus.OK, result.error
    assert result.body == BODY * 50
    assert result.bytes_received == len(BODY * 50)


@pytest.mark.skipif("br" not in SUPPORTED_CODINGS, reason="Brotli 1.2 or later is not installed")
def test_brotli_body_decoded():
    import brotli

    result = fetch_one(with_length(brotli.compress(BODY * 50), b"Content-Encoding: br\r\n"))
    assert result.status is FetchStatus.OK, result.error
    assert result.body == BODY * 50


def test_gzip_cut_at_declared_length_truncated():
    cut = GZIP_BODY[: len(GZIP_BODY) // 2]
    result = fetch_one(with_length(cut, b"Content-Encoding: gzip\r\n"))
    assert result.status is FetchStatus.TRUNCATED
    assert "before the end of its compressed stream" in result.error
    assert result.body is None


def test_gzip_cut_by_close_truncated():
    cut = GZIP_BODY[: len(GZIP_BODY) // 2]
    result = fetch_one(HEAD + b"Content-Encoding: gzip\r\nConnection: close\r\n\r\n" + cut)
    assert result.status is FetchStatus.TRUNCATED
    assert result.body is None


def test_gzip_trailing_bytes_protocol_error():
    padded = GZIP_BODY + b"JUNK!"
    result = fetch_one(with_length(padded, b"Content-Encoding: gzip\r\n"))
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert "do not start another gzip member" in result.error


def test_invalid_gzip_data_protocol_error():
    result = fetch_one(with_length(b"\x1f\x8b\x08\x00" + b"\xff" * 100, b"Content-Encoding: gzip\r\n"))
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert "invalid gzip data" in result.error


@pytest.mark.parametrize("encoding", [b"zstd", b"compress", b"gzip, gzip"])
def test_unsupported_encoding_protocol_error(encoding):
    result = fetch_one(with_length(BODY, b"Content-Encoding: " + encoding + b"\r\n"))
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert "Content-Encoding" in result.error


def test_gzip_bomb_stops_at_byte_cap():
    bomb = gzip.compress(b"\x00" * 20_000_000)
    assert len(bomb) < 100_000
    result = fetch_one(with_length(bomb, b"Content-Encoding: gzip\r\n"), max_bytes=1_000_000)
    assert result.status is FetchStatus.TOO_LARGE
    assert result.body is None
    assert result.bytes_received == 1_000_001
