"""Address guard: keep crawler and downloader requests off loopback, private and metadata addresses.

Three checks together cover every request:

- ``check_url`` runs before each request and each redirect hop. It validates the scheme
  and host and rejects IP-literal hosts in blocked ranges, because aiohttp connects to an
  IP literal without asking the resolver.
- ``GuardedResolver`` is the resolver of the client's ``TCPConnector``. It drops blocked
  addresses from each DNS answer and caches the answers for a fixed time.
- ``GuardedSocketFactory`` creates every socket of the connector and rejects a blocked
  address right before ``connect``. It checks the address actually connected to, so
  neither DNS rebinding nor a resolver that returns something else reaches a blocked address.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ipaddress
import logging
import socket
import time
from typing import TYPE_CHECKING, Iterable

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

if TYPE_CHECKING:
    from aiohappyeyeballs import AddrInfoType  # installed with aiohttp

logger = logging.getLogger(__name__)

ALLOWED_SCHEMES = frozenset({"http", "https"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# NAT64 prefix (RFC 6052): the last 32 bits are an IPv4 address.
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


class InvalidURLError(ValueError):
    """A URL that the client cannot request: unparsable, not http(s), or without a host."""


class BlockedAddressError(OSError):
    """A host that is, or resolves only to, a blocked address.

    It subclasses OSError because aiohttp wraps OSErrors raised by a resolver into
    ``ClientConnectorDNSError``, whose ``os_error`` is then this exception.
    """

    def __init__(self, host: str, address: str):
        self.host = host
        self.address = address
        if host.strip("[]") == address:
            subject = f"{address} is a blocked address"
        else:
            subject = f"{host} resolves to the blocked address {address}"
        super().__init__(
            f"{subject} (loopback, private, link-local, multicast or reserved); "
            "pass --allow-private (allow_private in a config) only for trusted local servers"
        )

    def __str__(self) -> str:
        return self.args[0]

    # OSError's own pickling drops custom attributes.
    def __reduce__(self):
        return (type(self), (self.host, self.address))


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Return the IPv4 address that a 6to4 or NAT64 IPv6 address carries."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@functools.lru_cache(maxsize=65536)
def _as_address(ip: str | IPAddress) -> IPAddress | None:
    # Cached, because the same few addresses are checked on every connection.
    if not isinstance(ip, str):
        return ip
    try:
        return ipaddress.ip_address(ip.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_blocked_address(ip: str | IPAddress) -> bool:
    """Return True for addresses that a public web fetch must not reach.

    Blocked: loopback, private, shared (100.64.0.0/10), link-local (169.254.169.254,
    the cloud metadata address, included), multicast, reserved, unspecified, IPv6
    site-local (fec0::/10) and every other range that IANA lists as not globally
    reachable. An IPv4-mapped (::ffff:0:0/96) or NAT64 (64:ff9b::/96) IPv6 address is
    judged by the IPv4 address it carries, because that is where the packets go. A 6to4
    (2002::/16) address is blocked when either it or its IPv4 address is. A string that
    is not an IP address counts as blocked.
    """
    address = _as_address(ip)
    if address is None:
        return True

    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_blocked_address(address.ipv4_mapped)
        if address in _NAT64_PREFIX:
            return is_blocked_address(_embedded_ipv4(address))
        embedded = _embedded_ipv4(address)
        if embedded is not None and is_blocked_address(embedded):
            return True
        if address.is_site_local:
            return True

    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def is_loopback_address(ip: str | IPAddress) -> bool:
    """Return True for 127.0.0.0/8, ::1 and IPv4-mapped forms of 127.0.0.0/8."""
    address = _as_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and address.is_loopback


def is_allowed_address(ip: str | IPAddress, allow_private: bool = False, allow_loopback: bool = False) -> bool:
    """Return True when a request may connect to ``ip``.

    ``allow_private`` allows every address. ``allow_loopback`` allows loopback addresses
    only, so local tests can reach their own server while the guard still rejects
    private, link-local and metadata addresses.
    """
    if allow_private or not is_blocked_address(ip):
        return True
    return allow_loopback and is_loopback_address(ip)


@functools.lru_cache(maxsize=65536)
def parse_ip_literal(host: str) -> IPAddress | None:
    """Return the IP address that ``host`` spells, or None for a host name.

    Besides the standard forms this accepts the legacy IPv4 spellings that
    ``getaddrinfo`` would also map onto an address ("127.1", "2130706433", "0x7f.1").
    """
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass

    if ":" in host or not host or not host[0].isdigit():
        return None
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


def check_url(url: str | URL, allow_private: bool = False, allow_loopback: bool = False) -> URL:
    """Validate one request URL and return it parsed.

    Raises InvalidURLError unless the scheme is http or https and the URL has a host.
    Raises BlockedAddressError when the host is an IP literal that ``is_allowed_address``
    rejects. Host names pass here and are checked by ``GuardedResolver`` when the
    connector resolves them.
    """
    try:
        parsed = url if isinstance(url, URL) else URL(url)
    except (ValueError, TypeError) as error:
        raise InvalidURLError(f"invalid URL {url!r}: {error}") from None

    scheme = parsed.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidURLError(f"invalid URL {str(url)[:200]!r}: scheme {scheme!r} is not http or https")

    host = parsed.raw_host
    if not host:
        raise InvalidURLError(f"invalid URL {str(url)[:200]!r}: no host")

    literal = parse_ip_literal(host)
    if literal is not None and not is_allowed_address(literal, allow_private, allow_loopback):
        raise BlockedAddressError(host, str(literal))
    return parsed


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops blocked addresses and caches lookup results.

    Lookups go to ``backend``, by default ``aiohttp.ThreadedResolver`` (the system's
    getaddrinfo). The filtered answer for a (host, port, family) is cached for ``ttl_s``
    seconds, because getaddrinfo does not report the record's own TTL. Concurrent lookups
    of the same key share one call. When every address of a host is blocked, ``resolve``
    raises BlockedAddressError, which aiohttp wraps into ``ClientConnectorDNSError``.
    Lookup failures are not cached.
    """

    def __init__(
        self,
        allow_private: bool = False,
        ttl_s: float = 300.0,
        max_entries: int = 10_000,
        *,
        allow_loopback: bool = False,
        backend: AbstractResolver | None = None,
    ):
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._resolver = backend
        self._owns_resolver = backend is None
        self._cache: collections.OrderedDict[tuple, tuple[float, list[ResolveResult] | BlockedAddressError]] = (
            collections.OrderedDict()
        )
        self._pending: dict[tuple, asyncio.Task] = {}
        self.blocked_hosts = 0

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        key = (host, port, family)
        cached = self._cache.get(key)
        if cached is not None:
            expires_at, answer = cached
            if time.monotonic() < expires_at:
                self._cache.move_to_end(key)
                return self._answer(answer)
            del self._cache[key]

        # The lookup runs as its own task and callers await it through shield(), so
        # a cancelled request neither cancels the lookup for the others nor loses it.
        task = self._pending.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._lookup_and_store(key))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return self._answer(await asyncio.shield(task))

    async def close(self) -> None:
        if self._resolver is not None and self._owns_resolver:
            await self._resolver.close()
        self._cache.clear()

    async def _lookup_and_store(self, key: tuple) -> list[ResolveResult] | BlockedAddressError:
        answer = await self._lookup(*key)
        self._store(key, answer)
        return answer

    async def _lookup(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> list[ResolveResult] | BlockedAddressError:
        if self._resolver is None:
            self._resolver = aiohttp.ThreadedResolver()
        results = await self._resolver.resolve(host, port, family)
        allowed = [
            result
            for result in results
            if is_allowed_address(result["host"], self.allow_private, self.allow_loopback)
        ]
        if allowed:
            return allowed
        self.blocked_hosts += 1
        address = results[0]["host"] if results else "(none)"
        logger.debug("blocked %s: every address is blocked, first %s", host, address)
        return BlockedAddressError(host, address)

    def _forget(self, key: tuple, task: asyncio.Task) -> None:
        self._pending.pop(key, None)
        # Retrieve the exception so that asyncio does not log it when every caller was cancelled.
        if not task.cancelled():
            task.exception()

    def _store(self, key: tuple, answer: list[ResolveResult] | BlockedAddressError) -> None:
        self._cache[key] = (time.monotonic() + self.ttl_s, answer)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    @staticmethod
    def _answer(answer: list[ResolveResult] | BlockedAddressError) -> list[ResolveResult]:
        if isinstance(answer, BlockedAddressError):
            raise BlockedAddressError(answer.host, answer.address)
        return list(answer)


class GuardedSocketFactory:
    """Socket factory for ``aiohttp.TCPConnector`` that rejects blocked addresses before connecting.

    aiohttp (through aiohappyeyeballs) calls it with the address info of each connection
    attempt, that is with the address that the socket then connects to. A blocked address
    raises BlockedAddressError, which aiohttp reports as ``ClientConnectorError``.
    ``allowed_peers`` lists (IP address, port) pairs that are always allowed, such as a
    local proxy.
    """

    def __init__(
        self,
        allow_private: bool = False,
        allow_loopback: bool = False,
        allowed_peers: Iterable[tuple[str, int]] = (),
    ):
        self.allow_private = allow_private
        self.allow_loopback = allow_loopback
        self.allowed_peers = frozenset((_as_address(host), port) for host, port in allowed_peers)
        self.blocked_connections = 0

    def __call__(self, addr_info: AddrInfoType) -> socket.socket:
        family, socket_type, protocol, _, address = addr_info
        host, port = str(address[0]), int(address[1])
        peer_allowed = (_as_address(host), port) in self.allowed_peers
        if not peer_allowed and not is_allowed_address(host, self.allow_private, self.allow_loopback):
            self.blocked_connections += 1
            logger.debug("blocked a connection to %s port %d", host, port)
            raise BlockedAddressError(host, host)
        return socket.socket(family=family, type=socket_type, proto=protocol)
