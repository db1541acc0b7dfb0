"""Address guard: blocked ranges, URL checks, and requests that must fail before connecting."""

from __future__ import annotations

import asyncio
import ipaddress
import pickle
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from yarl import URL

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
from wit_builder.net.guard import GuardedSocketFactory, is_allowed_address, parse_ip_literal
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


BLOCKED_EMBEDDED = [
    "fec0::1",  # deprecated IPv6 site-local
    "::7f00:1",  # IPv4-compatible form of 127.0.0.1
    "::ffff:0:7f00:1",  # IPv4-translated form of 127.0.0.1
    "64:ff9b::7f00:1",  # NAT64 form of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 form of 169.254.169.254
    "64:ff9b:1::808:808",  # local-use NAT64 prefix
    "2001::1",  # Teredo
    "[::1]",
]


@pytest.mark.parametrize("address", BLOCKED_EMBEDDED)
def test_blocked_embedded_and_legacy_forms(address):
    assert is_blocked_address(address)


def test_nat64_of_public_address_allowed():
    assert not is_blocked_address("64:ff9b::808:808")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("8.8.8.8", True),
        ("10.0.0.1", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::7f00:1", False),
        ("0.0.0.0", False),
        ("fe80::1", False),
    ],
)
def test_allow_loopback_allows_only_loopback(address, expected):
    assert is_allowed_address(address, allow_loopback=True) is expected
    assert is_allowed_address(address, allow_private=True)


def test_check_url_allow_loopback():
    assert check_url("http://127.0.0.1:8080/x.png", allow_loopback=True).port == 8080
    assert check_url("http://[::1]:8080/x.png", allow_loopback=True).host == "::1"
    with pytest.raises(BlockedAddressError):
        check_url("http://169.254.169.254/latest/meta-data/", allow_loopback=True)
    with pytest.raises(BlockedAddressError):
        check_url("http://10.0.0.1/x.png", allow_loopback=True)


def resolve_result(host: str, address: str, port: int) -> dict:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return {
        "hostname": host,
        "host": address,
        "port": port,
        "family": family,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST,
    }


class ScriptedResolver(AbstractResolver):
    """DNS answers that the test controls: each host has a list of answers, used in turn.

    The last answer of a host repeats. Every lookup is recorded in ``lookups``.
    """

    def __init__(self, answers: dict[str, list[list[str]]]):
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.lookups.append(host)
        script = self.answers.get(host)
        if not script:
            raise OSError(f"no test answer for {host}")
        addresses = script.pop(0) if len(script) > 1 else script[0]
        return [resolve_result(host, address, port) for address in addresses]

    async def close(self):
        pass


def test_resolver_drops_blocked_addresses_from_answer():
    backend = ScriptedResolver({"mixed.test": [["10.0.0.7", "93.184.216.34", "127.0.0.1"]]})

    async def resolve():
        resolver = GuardedResolver(backend=backend)
        return await resolver.resolve("mixed.test", 80)

    results = asyncio.run(resolve())
    assert [result["host"] for result in results] == ["93.184.216.34"]


def test_resolver_allow_loopback_keeps_only_loopback():
    backend = ScriptedResolver({"both.test": [["10.0.0.7", "127.0.0.1"]], "private.test": [["10.0.0.7"]]})

    async def resolve(host):
        resolver = GuardedResolver(backend=backend, allow_loopback=True)
        return await resolver.resolve(host, 80)

    assert [result["host"] for result in asyncio.run(resolve("both.test"))] == ["127.0.0.1"]
    with pytest.raises(BlockedAddressError) as raised:
        asyncio.run(resolve("private.test"))
    assert raised.value.address == "10.0.0.7"
    assert "private.test resolves to the blocked address 10.0.0.7" in str(raised.value)


def test_resolver_cache_expires_after_ttl():
    backend = ScriptedResolver({"cached.test": [["93.184.216.34"]]})

    async def resolve_over_time():
        resolver = GuardedResolver(backend=backend, ttl_s=0.2)
        await resolver.resolve("cached.test", 80)
        await resolver.resolve("cached.test", 80)
        lookups_within_ttl = len(backend.lookups)
        await asyncio.sleep(0.3)
        await resolver.resolve("cached.test", 80)
        return lookups_within_ttl, len(backend.lookups)

    within_ttl, after_ttl = asyncio.run(resolve_over_time())
    assert within_ttl == 1
    assert after_ttl == 2


def test_resolver_does_not_cache_failures():
    backend = ScriptedResolver({})

    async def resolve_twice():
        resolver = GuardedResolver(backend=backend, ttl_s=60)
        for _ in range(2):
            with pytest.raises(OSError):
                await resolver.resolve("missing.test", 80)

    asyncio.run(resolve_twice())
    assert backend.lookups == ["missing.test", "missing.test"]


@pytest.fixture(scope="module")
def redirect_server():
    """Loopback server with /x.png and /redirect?to=URL that records the paths it served."""
    hits = []

    def make_app():
        async def image(request):
            hits.append(request.path)
            return web.Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png")

        async def redirect(request):
            hits.append(request.path)
            raise web.HTTPFound(request.query["to"])

        app = web.Application()
        app.router.add_get("/x.png", image)
        app.router.add_get("/redirect", redirect)
        return app

    with BackgroundServer(make_app) as server:
        yield server, hits


def fetch_with(url, config, resolver=None):
    async def run():
        async with make_session(config, resolver=resolver) as session:
            return await http_get(session, url, config)

    return asyncio.run(run())


def loopback_config(**fields):
    return HttpConfig(allow_loopback=True, retries=0, timeout_s=5, **fields)


def test_allow_loopback_reaches_loopback_server(redirect_server):
    server, hits = redirect_server
    result = fetch_with(f"{server.base_url}x.png", loopback_config())
    assert result.status is FetchStatus.OK, result.error
    assert hits[-1] == "/x.png"


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.png",
        "http://192.168.1.1:8080/x.png",
        "http://[::ffff:10.0.0.1]/x.png",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "http://[fd00::1]/x.png",
        "http://0.0.0.0/x.png",
    ],
)
def test_redirect_to_blocked_literal(redirect_server, target):
    server, hits = redirect_server
    result = fetch_with(f"{server.base_url}redirect?to={target}", loopback_config())
    assert result.status is FetchStatus.BLOCKED_ADDRESS
    assert result.redirects == 1
    assert result.final_url == str(URL(target))  # yarl normalizes IPv6 literals
    assert "blocked address" in result.error
    assert hits[-1] == "/redirect"


def test_redirect_to_host_resolving_private(redirect_server):
    server, hits = redirect_server
    backend = ScriptedResolver({"start.test": [["127.0.0.1"]], "internal.test": [["10.0.0.5"]]})
    config = loopback_config()
    resolver = GuardedResolver(backend=backend, allow_loopback=True)
    target = f"http://internal.test:{server.port}/x.png"
    before = len(hits)

    result = fetch_with(f"http://start.test:{server.port}/redirect?to={target}", config, resolver)

    assert result.status is FetchStatus.BLOCKED_ADDRESS
    assert "internal.test resolves to the blocked address 10.0.0.5" in result.error
    assert result.redirects == 1
    assert hits[before:] == ["/redirect"]
    assert backend.lookups == ["start.test", "internal.test"]


def test_dns_rebinding_to_loopback_blocked(counting_server):
    # The first lookup returns a public address and the next one loopback. The test only
    # resolves the public address and never connects to it. The request resolves again
    # (TTL 0) and must not reach the loopback server.
    server, hits = counting_server
    backend = ScriptedResolver({"rebind.test": [["93.184.216.34"], ["127.0.0.1"]]})
    config = HttpConfig(retries=0, timeout_s=5, dns_ttl_s=0)
    resolver = GuardedResolver(backend=backend, ttl_s=0)
    before = len(hits)

    async def run():
        first = await resolver.resolve("rebind.test", server.port)
        async with make_session(config, resolver=resolver) as session:
            result = await http_get(session, f"http://rebind.test:{server.port}/x.png", config)
        return first, result

    first, result = asyncio.run(run())
    assert [answer["host"] for answer in first] == ["93.184.216.34"]
    assert result.status is FetchStatus.BLOCKED_ADDRESS
    assert "127.0.0.1" in result.error
    assert backend.lookups == ["rebind.test", "rebind.test"]
    assert len(hits) == before


@pytest.mark.parametrize("address", ["127.0.0.1", "::ffff:127.0.0.1"])
def test_socket_check_blocks_unguarded_resolver(counting_server, address):
    # A resolver without the guard returns loopback: the socket factory still rejects
    # the address right before connecting.
    server, hits = counting_server
    backend = ScriptedResolver({"evil.test": [[address]]})
    before = len(hits)

    result = fetch_with(f"http://evil.test:{server.port}/x.png", HttpConfig(retries=0, timeout_s=5), backend)

    assert result.status is FetchStatus.BLOCKED_ADDRESS
    assert address in result.error
    assert len(hits) == before


def test_socket_check_allows_loopback_when_configured(counting_server):
    server, hits = counting_server
    backend = ScriptedResolver({"local.test": [["127.0.0.1"]]})
    before = len(hits)

    result = fetch_with(f"http://local.test:{server.port}/x.png", loopback_config(), backend)

    assert result.status is FetchStatus.OK, result.error
    assert len(hits) == before + 1


def test_socket_factory_rules():
    addr_info = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("10.0.0.1", 80))
    with pytest.raises(BlockedAddressError):
        GuardedSocketFactory()(addr_info)

    allowed = GuardedSocketFactory(allowed_peers=[("10.0.0.1", 80)])
    allowed(addr_info).close()
    with pytest.raises(BlockedAddressError):
        allowed((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("10.0.0.1", 81)))

    GuardedSocketFactory(allow_private=True)(addr_info).close()
