"""Address guard: blocked ranges, URL checks, and requests that must fail before connecting."""

from __future__ import annotations

import asyncio
import ipaddress
import pickle

import pytest
from aiohttp import web

from wit_builder.localserver import BackgroundServer
from wit_builder.net import (
    BlockedAddressError,
    GuardedResolver,
    HttpConfig,
    InvalidURLError,
    check_url,
    http_get,
    is_blocked_address,
    make_session,
)
from wit_builder.net.guard import parse_ip_literal
from wit_builder.records import FetchStatus

BLOCKED = [
    "127.0.0.1",
    "127.255.0.9",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "::1",
    "::",
    "fe80::1",
    "fe80::1%eth0",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "64:ff9b::a00:1",
    "2002:7f00:1::1",
    "not an address",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", BLOCKED)
def test_blocked_address_ranges(address):
    assert is_blocked_address(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_address_allowed(address):
    assert not is_blocked_address(address)


def test_blocked_address_accepts_ip_objects():
    assert is_blocked_address(ipaddress.ip_address("10.0.0.1"))
    assert not is_blocked_address(ipaddress.ip_address("8.8.4.4"))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("example.org", None),
        ("1e100.net", None),
    ],
)
def test_parse_ip_literal_forms(host, expected):
    parsed = parse_ip_literal(host)
    assert (str(parsed) if parsed is not None else None) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.jpg",
        "http://[::1]:8080/x.jpg",
        "http://10.0.0.7/x.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/x.jpg",
        "http://127.1/x.jpg",
        "http://2130706433/x.jpg",
    ],
)
def test_check_url_rejects_blocked_literals(url):
    with pytest.raises(BlockedAddressError):
        check_url(url)


def test_check_url_allow_private_passes_literals():
    assert check_url("http://127.0.0.1:1/x.jpg", allow_private=True).host == "127.0.0.1"


@pytest.mark.parametrize(
    "url", ["ftp://example.org/x.jpg", "file:///etc/passwd", "data:image/png;base64,AAAA", "http:///x.jpg", "/x.jpg", "", "javascript:alert(1)"]
)
def test_check_url_rejects_invalid(url):
    with pytest.raises(InvalidURLError):
        check_url(url, allow_private=True)


def test_check_url_passes_host_names():
    assert check_url("https://upload.wikimedia.org/a.jpg").host == "upload.wikimedia.org"


def test_blocked_error_message_and_pickle():
    error = BlockedAddressError("localhost", "127.0.0.1")
    assert "localhost" in str(error)
    assert "127.0.0.1" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.host == "localhost"
    assert copy.address == "127.0.0.1"


def test_resolver_blocks_localhost():
    async def resolve(allow_private):
        resolver = GuardedResolver(allow_private=allow_private)
        try:
            return await resolver.resolve("localhost", 80)
        finally:
            await resolver.close()

    with pytest.raises(BlockedAddressError) as raised:
        asyncio.run(resolve(False))
    assert raised.value.host == "localhost"

    results = asyncio.run(resolve(True))
    assert results
    assert all(is_blocked_address(result["host"]) for result in results)


def test_resolver_caches_results():
    async def resolve_twice():
        resolver = GuardedResolver(allow_private=True, ttl_s=60)
        first = await resolver.resolve("localhost", 80)
        cached_keys = len(resolver._cache)
        second = await resolver.resolve("localhost", 80)
        await resolver.close()
        return first, second, cached_keys

    first, second, cached_keys = asyncio.run(resolve_twice())
    assert first == second
    assert cached_keys == 1


@pytest.fixture(scope="module")
def counting_server():
    """Loopback server that counts the requests it receives."""
    hits = []

    def make_app():
        async def image(request):
            hits.append(request.path)
            return web.Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png")

        app = web.Application()
        app.router.add_get("/x.png", image)
        return app

    with BackgroundServer(make_app) as server:
        yield server, hits


def fetch(url, **config_fields):
    config = HttpConfig(retries=0, timeout_s=5, **config_fields)

    async def run():
        async with make_session(config) as session:
            return await http_get(session, url, config)

    return asyncio.run(run())


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/x.png",
        "http://[::ffff:127.0.0.1]:9/x.png",
    ],
)
def test_http_get_blocks_literal_before_connect(url):
    result = fetch(url)
    assert result.status is FetchStatus.BLOCKED_ADDRESS
    assert result.attempts == 1
    assert result.body is None
    assert "blocked address" in result.error


def test_http_get_blocks_loopback_server(counting_server):
    server, hits = counting_server
    before = len(hits)
    for url in (f"{server.base_url}x.png", f"http://localhost:{server.port}/x.png"):
        result = fetch(url)
        assert result.status is FetchStatus.BLOCKED_ADDRESS, url
    assert len(hits) == before


def test_http_get_allow_private_reaches_loopback(counting_server):
    server, hits = counting_server
    before = len(hits)
    for url in (f"{server.base_url}x.png", f"http://localhost:{server.port}/x.png"):
        result = fetch(url, allow_private=True)
        assert result.status is FetchStatus.OK, result.error
        assert result.body == b"\x89PNG\r\n\x1a\n"
    assert len(hits) == before + 2


def test_http_get_invalid_url():
    result = fetch("gopher://example.org/x.png")
    assert result.status is FetchStatus.INVALID_URL
    assert result.attempts == 1
