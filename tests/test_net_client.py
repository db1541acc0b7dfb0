"""http_get against real loopback servers: deadlines, byte caps, redirects, truncation and retries.

Well-behaved endpoints run on an aiohttp app in a BackgroundServer. Broken HTTP (a
wrong Content-Length, a body cut mid-chunk, bytes that are not HTTP) comes from raw
asyncio servers in the test's own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import threading
import time

import pytest
from aiohttp import web

from wit_builder import __version__
from wit_builder.localserver import BackgroundServer
from wit_builder.net import HostLimiter, HttpConfig, default_user_agent, http_get, make_session, parse_retry_after
from wit_builder.records import FetchStatus

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ServerState:
    """Request counters shared between the server thread and the test."""

    def __init__(self):
        self.lock = threading.Lock()
        self.hits: dict[str, int] = {}
        self.user_agents: list[str] = []
        self.active = 0
        self.max_active = 0

    def count(self, path: str) -> int:
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            return self.hits[path]


def make_app(state: ServerState) -> web.Application:
    async def image(request):
        state.count(request.path)
        state.user_agents.append(request.headers.get("User-Agent", ""))
        return web.Response(body=PNG_SIGNATURE + b"\x00" * 100, content_type="image/png")

    async def redirect(request):
        state.count(request.path)
        raise web.HTTPFound(request.query["to"])

    async def loop_a(request):
        state.count(request.path)
        raise web.HTTPFound("/loop-b")

    async def loop_b(request):
        state.count(request.path)
        raise web.HTTPMovedPermanently("/loop-a")

    async def count_up(request):
        # /count/N redirects to /count/N+1 without end.
        state.count(request.path)
        raise web.HTTPFound(f"/count/{int(request.match_info['step']) + 1}")

    async def self_loop(request):
        state.count(request.path)
        raise web.HTTPFound("/self-loop#again")

    async def chain(request):
        # /chain/N redirects to /chain/N-1 with a relative Location; /chain/0 is the image.
        state.count(request.path)
        step = int(request.match_info["step"])
        if step == 0:
            return web.Response(body=PNG_SIGNATURE, content_type="image/png")
        raise web.HTTPTemporaryRedirect(str(step - 1))

    async def no_location(request):
        return web.Response(status=302)

    async def endless(request):
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        block = b"y" * 65536
        for _ in range(100_000):
            await response.write(block)
        return response

    async def declared_large(request):
        state.count(request.path)
        return web.Response(body=b"z" * 5000, content_type="image/png")

    async def throttled(request):
        # 429 with Retry-After: 1 on the first request of each key, 200 afterwards.
        if state.count(request.path + request.query.get("key", "")) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(body=PNG_SIGNATURE, content_type="image/png")

    async def throttled_long(request):
        state.count(request.path)
        return web.Response(status=429, headers={"Retry-After": "3600"})

    async def server_error(request):
        state.count(request.path)
        return web.Response(status=500, text="boom")

    async def not_found(request):
        state.count(request.path)
        return web.Response(status=404, text="missing")

    async def gzipped(request):
        body = gzip.compress(b"a" * 200_000)
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "image/png"})

    async def concurrent(request):
        with state.lock:
            state.active += 1
            state.max_active = max(state.max_active, state.active)
        await asyncio.sleep(0.05)
        with state.lock:
            state.active -= 1
        return web.Response(body=PNG_SIGNATURE, content_type="image/png")

    app = web.Application()
    app.router.add_get("/image.png", image)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop-a", loop_a)
    app.router.add_get("/loop-b", loop_b)
    app.router.add_get("/chain/{step}", chain)
    app.router.add_get("/count/{step}", count_up)
    app.router.add_get("/self-loop", self_loop)
    app.router.add_get("/no-location", no_location)
    app.router.add_get("/endless", endless)
    app.router.add_get("/declared-large", declared_large)
    app.router.add_get("/throttled", throttled)
    app.router.add_get("/throttled-long", throttled_long)
    app.router.add_get("/server-error", server_error)
    app.router.add_get("/not-found", not_found)
    app.router.add_get("/gzipped", gzipped)
    app.router.add_get("/concurrent/{name}", concurrent)
    return app


@pytest.fixture(scope="module")
def server():
    state = ServerState()
    with BackgroundServer(lambda: make_app(state)) as running:
        running.state = state
        yield running


def config(**fields) -> HttpConfig:
    defaults = dict(allow_private=True, timeout_s=5.0, retries=0, backoff_s=0.05, max_redirects=5)
    defaults.update(fields)
    return HttpConfig(**defaults)


def fetch(url: str, http_config: HttpConfig):
    async def run():
        async with make_session(http_config) as session:
            return await http_get(session, url, http_config)

    return asyncio.run(run())


@contextlib.asynccontextmanager
async def raw_server(respond):
    """Serve ``respond(writer)`` after reading each request head; yields the base URL."""

    async def handle(reader, writer):
        try:
            await reader.readuntil(b"\r\n\r\n")
            await respond(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        listener.close()


def fetch_raw(respond, http_config: HttpConfig):
    async def run():
        async with raw_server(respond) as base_url:
            async with make_session(http_config) as session:
                return await http_get(session, base_url + "x.png", http_config)

    return asyncio.run(run())


def test_ok_and_user_agent(server):
    http_config = config(contact_url="https://example.org/crawler")
    result = fetch(server.base_url + "image.png", http_config)
    assert result.status is FetchStatus.OK
    assert result.http_status == 200
    assert result.content_type == "image/png"
    assert result.body.startswith(PNG_SIGNATURE)
    assert result.bytes_received == len(result.body)
    assert result.attempts == 1
    assert server.state.user_agents[-1] == f"wit-builder/{__version__} (+https://example.org/crawler)"


def test_default_user_agent_without_contact():
    assert default_user_agent() == f"wit-builder/{__version__}"
    assert HttpConfig().user_agent == f"wit-builder/{__version__}"


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="timeout_s"):
        HttpConfig(timeout_s=0)
    with pytest.raises(ValueError, match="retries"):
        HttpConfig(retries=-1)


async def drip_forever(writer):
    """Send 200 image/png without Content-Length, then one byte every 0.5 s without end."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
    while True:
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.5)


async def stream_forever(writer):
    """Send 200 image/png without Content-Length, then 64 KiB blocks as fast as the client reads."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
    block = b"w" * 65536
    while True:
        writer.write(block)
        await writer.drain()


def test_total_deadline_slow_drip():
    # Each read succeeds quickly, so only a total deadline stops this body.
    started = time.monotonic()
    result = fetch_raw(drip_forever, config(timeout_s=1.2))
    elapsed = time.monotonic() - started
    assert result.status is FetchStatus.TIMEOUT
    assert result.body is None
    assert result.http_status == 200
    assert result.bytes_received >= 2
    assert elapsed < 2.5


def test_slow_drip_stops_at_byte_cap():
    started = time.monotonic()
    result = fetch_raw(drip_forever, config(timeout_s=10.0, max_bytes=2))
    assert result.status is FetchStatus.TOO_LARGE
    assert result.body is None
    assert result.bytes_received == 3
    assert time.monotonic() - started < 3.0


def test_endless_raw_stream_too_large():
    started = time.monotonic()
    result = fetch_raw(stream_forever, config(max_bytes=2_000_000, timeout_s=10.0))
    assert result.status is FetchStatus.TOO_LARGE
    assert result.body is None
    assert 2_000_000 < result.bytes_received <= 2_000_000 + 65536
    assert time.monotonic() - started < 5.0


def test_endless_raw_stream_hits_deadline_first():
    # A cap too large to reach within the deadline: the deadline ends the read.
    started = time.monotonic()
    result = fetch_raw(stream_forever, config(max_bytes=10**12, timeout_s=1.0))
    assert result.status is FetchStatus.TIMEOUT
    assert result.body is None
    assert result.bytes_received > 0
    assert time.monotonic() - started < 2.5


def test_slow_response_head_timeout():
    async def respond(writer):
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Padding: " + b"p" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.5)

    started = time.monotonic()
    result = fetch_raw(respond, config(timeout_s=1.0))
    assert result.status is FetchStatus.TIMEOUT
    assert result.http_status is None
    assert time.monotonic() - started < 2.5


def test_silent_server_timeout():
    async def respond(writer):
        await asyncio.sleep(60)

    started = time.monotonic()
    result = fetch_raw(respond, config(timeout_s=0.5, retries=1, backoff_s=0.05))
    assert result.status is FetchStatus.TIMEOUT
    assert result.attempts == 2
    assert "timed out" in result.error
    assert time.monotonic() - started < 2.5


def test_endless_stream_too_large(server):
    started = time.monotonic()
    result = fetch(server.base_url + "endless", config(max_bytes=1_000_000, timeout_s=10.0))
    assert result.status is FetchStatus.TOO_LARGE
    assert result.body is None
    assert 1_000_000 < result.bytes_received <= 1_000_000 + 65536
    assert time.monotonic() - started < 5.0


def test_declared_length_too_large_not_read(server):
    result = fetch(server.base_url + "declared-large", config(max_bytes=1000))
    assert result.status is FetchStatus.TOO_LARGE
    assert "Content-Length 5000" in result.error
    assert result.bytes_received == 0


def test_gzip_body_decompressed_and_capped(server):
    result = fetch(server.base_url + "gzipped", config())
    assert result.status is FetchStatus.OK
    assert result.body == b"a" * 200_000

    capped = fetch(server.base_url + "gzipped", config(max_bytes=100_000))
    assert capped.status is FetchStatus.TOO_LARGE


def test_redirect_followed(server):
    result = fetch(server.base_url + "redirect?to=/image.png", config())
    assert result.status is FetchStatus.OK
    assert result.redirects == 1
    assert result.final_url == server.base_url + "image.png"
    assert result.url == server.base_url + "redirect?to=/image.png"


def test_redirect_loop(server):
    before_a = server.state.hits.get("/loop-a", 0)
    before_b = server.state.hits.get("/loop-b", 0)
    result = fetch(server.base_url + "loop-a", config(max_redirects=10))
    assert result.status is FetchStatus.TOO_MANY_REDIRECTS
    assert "loop" in result.error
    assert result.body is None
    assert result.redirects == 1
    # The loop is seen before /loop-a is requested a second time.
    assert server.state.hits["/loop-a"] == before_a + 1
    assert server.state.hits["/loop-b"] == before_b + 1


def test_redirect_self_loop_with_fragment(server):
    result = fetch(server.base_url + "self-loop", config(max_redirects=10))
    assert result.status is FetchStatus.TOO_MANY_REDIRECTS
    assert "loop" in result.error
    assert result.redirects == 0


def test_endless_redirect_chain_stops_at_limit(server):
    result = fetch(server.base_url + "count/0", config(max_redirects=5))
    assert result.status is FetchStatus.TOO_MANY_REDIRECTS
    assert result.redirects == 5
    assert result.http_status == 302
    assert result.final_url == server.base_url + "count/5"
    assert "max_redirects=5" in result.error
    assert server.state.hits["/count/5"] == 1
    assert "/count/6" not in server.state.hits


def test_redirect_chain_over_limit(server):
    result = fetch(server.base_url + "chain/4", config(max_redirects=3))
    assert result.status is FetchStatus.TOO_MANY_REDIRECTS
    assert result.redirects == 3

    within = fetch(server.base_url + "chain/3", config(max_redirects=3))
    assert within.status is FetchStatus.OK
    assert within.redirects == 3
    assert within.final_url == server.base_url + "chain/0"


def test_max_redirects_zero(server):
    before = server.state.hits.get("/image.png", 0)
    result = fetch(server.base_url + "redirect?to=/image.png", config(max_redirects=0))
    assert result.status is FetchStatus.TOO_MANY_REDIRECTS
    assert result.http_status == 302
    assert result.redirects == 0
    assert result.headers["location"] == "/image.png"
    assert "not followed" in result.error
    assert server.state.hits.get("/image.png", 0) == before


def test_redirect_to_other_scheme_invalid(server):
    result = fetch(server.base_url + "redirect?to=ftp://example.org/x.png", config())
    assert result.status is FetchStatus.INVALID_URL
    assert result.final_url == "ftp://example.org/x.png"


def test_redirect_without_location(server):
    result = fetch(server.base_url + "no-location", config())
    assert result.status is FetchStatus.HTTP_ERROR
    assert "Location" in result.error


def test_content_length_larger_than_body():
    async def respond(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n" + b"p" * 400)
        await writer.drain()

    result = fetch_raw(respond, config(retries=1))
    assert result.status is FetchStatus.TRUNCATED
    assert result.body is None
    assert result.attempts == 2


def test_chunked_body_cut():
    async def respond(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"100\r\n" + b"q" * 100)
        await writer.drain()

    result = fetch_raw(respond, config())
    assert result.status is FetchStatus.TRUNCATED
    assert result.body is None


def test_body_until_close_without_length():
    async def respond(writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n" + b"r" * 3000)
        await writer.drain()

    result = fetch_raw(respond, config())
    assert result.status is FetchStatus.OK
    assert result.body == b"r" * 3000


def test_response_not_http():
    async def respond(writer):
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()

    result = fetch_raw(respond, config(retries=2))
    assert result.status is FetchStatus.PROTOCOL_ERROR
    assert "invalid HTTP response" in result.error
    assert result.body is None
    assert result.attempts == 1


def test_connection_refused():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = fetch(f"http://127.0.0.1:{port}/x.png", config(retries=1))
    assert result.status is FetchStatus.CONNECTION_ERROR
    assert result.attempts == 2


def test_429_retry_after_then_ok(server):
    started = time.monotonic()
    result = fetch(server.base_url + "throttled?key=once", config(retries=2))
    assert result.status is FetchStatus.OK
    assert result.attempts == 2
    assert time.monotonic() - started >= 0.9


def test_retry_after_over_cap_not_retried(server):
    before = server.state.hits.get("/throttled-long", 0)
    result = fetch(server.base_url + "throttled-long", config(retries=3, max_backoff_s=5))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.http_status == 429
    assert result.attempts == 1
    assert "Retry-After 3600" in result.error
    assert server.state.hits["/throttled-long"] == before + 1


def test_500_retried_then_http_error(server):
    before = server.state.hits.get("/server-error", 0)
    result = fetch(server.base_url + "server-error", config(retries=2))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.http_status == 500
    assert result.attempts == 3
    assert server.state.hits["/server-error"] == before + 3


def test_404_not_retried(server):
    before = server.state.hits.get("/not-found", 0)
    result = fetch(server.base_url + "not-found", config(retries=2))
    assert result.status is FetchStatus.HTTP_ERROR
    assert result.http_status == 404
    assert result.attempts == 1
    assert server.state.hits["/not-found"] == before + 1


def test_host_limiter_caps_concurrency(server):
    http_config = config(max_per_host=2, max_concurrency=16)

    async def run():
        limiter = HostLimiter.from_config(http_config)
        async with make_session(http_config) as session:
            urls = [f"{server.base_url}concurrent/{index}" for index in range(10)]
            return await asyncio.gather(*(http_get(session, url, http_config, limiter) for url in urls))

    results = asyncio.run(run())
    assert all(result.status is FetchStatus.OK for result in results)
    assert server.state.max_active <= 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), (" 120 ", 120.0), ("", None), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_parse_retry_after(header, expected):
    assert parse_retry_after(header) == expected
