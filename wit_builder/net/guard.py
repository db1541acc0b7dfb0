"""Address guard: keep crawler and downloader requests off loopback, private and metadata addresses.

Two checks together cover every request:

- ``check_url`` runs before each request and each redirect hop. It validates the scheme
  and host and rejects IP-literal hosts in blocked ranges, because aiohttp connects to an
  IP literal without asking the resolver.
- ``GuardedResolver`` is the resolver of the client's ``TCPConnector``. aiohttp connects
  only to the addresses that the resolver returns, so dropping blocked addresses there
  checks the address actually connected to, which also defeats DNS rebinding.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import time

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

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
        subject = f"{host} is" if host.strip("[]") == address else f"{host} resolves to"
        super().__init__(
            f"{subject} blocked address {address} (loopback, private, link-local, multicast "
            "or reserved); set allow_private only for trusted local servers"
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


def is_blocked_address(ip: str | IPAddress) -> bool:
    """Return True for addresses that a public web fetch must not reach.

    Blocked: loopback, private, shared (100.64.0.0/10), link-local (169.254.169.254,
    the cloud metadata address, included), multicast, reserved, unspecified and every
    other range that IANA lists as not globally reachable. IPv6 addresses that embed an
    IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by the embedded address too.
    A string that is not an IP address counts as blocked.
    """
    if isinstance(ip, str):
        try:
            ip = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return True

    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            # A socket connects to the mapped IPv4 address, so only that address counts.
            return is_blocked_address(ip.ipv4_mapped)
        embedded = _embedded_ipv4(ip)
        if embedded is not None and is_blocked_address(embedded):
            return True

    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


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


def check_url(url: str | URL, allow_private: bool = False) -> URL:
    """Validate one request URL and return it parsed.

    Raises InvalidURLError unless the scheme is http or https and the URL has a host.
    Raises BlockedAddressError when the host is an IP literal in a blocked range and
    ``allow_private`` is False. Host names pass here and are checked by
    ``GuardedResolver`` when the connector resolves them.
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

    if not allow_private:
        literal = parse_ip_literal(host)
        if literal is not None and is_blocked_address(literal):
            raise BlockedAddressError(host, str(literal))
    return parsed


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that drops blocked addresses and caches lookup results.

    Lookups go to ``aiohttp.ThreadedResolver`` (the system's getaddrinfo). The result
    for a (host, port, family) is cached for ``ttl_s`` seconds, and concurrent lookups
    of the same key share one call. When every address of a host is blocked, ``resolve``
    raises BlockedAddressError, which aiohttp wraps into ``ClientConnectorDNSError``.
    Lookup failures are not cached.
    """

    def __init__(self, allow_private: bool = False, ttl_s: float = 300.0, max_entries: int = 10_000):
        self.allow_private = allow_private
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._resolver: aiohttp.ThreadedResolver | None = None
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
        if self._resolver is not None:
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
        if self.allow_private:
            return results

        allowed = [result for result in results if not is_blocked_address(result["host"])]
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
