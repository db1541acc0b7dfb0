"""Shared HTTP client for the crawler and the image downloader.

``http_get`` fetches one URL and reports every network or HTTP problem as a
``FetchStatus`` in its result instead of raising. It follows redirects itself so
that every hop passes the address guard, enforces a total deadline and a byte cap
on each request, and retries transient failures with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Mapping

import aiohttp
from yarl import URL

from wit_builder import __version__
from wit_builder.net.counted_log import CountedLog
from wit_builder.net.guard import BlockedAddressError, GuardedResolver, InvalidURLError, check_url, parse_ip_literal
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
READ_CHUNK_BYTES = 64 * 1024

_retry_log = CountedLog(logger, logging.INFO, "retrying after")
_error_log = CountedLog(logger, logging.INFO, "request failed with")


def default_user_agent(contact_url: str | None = None) -> str:
    """Build the User-Agent "wit-builder/VERSION", with "(+CONTACT_URL)" when a contact is given."""
    agent = f"wit-builder/{__version__}"
    if contact_url:
        agent += f" (+{contact_url})"
    return agent


@dataclass
class HttpConfig:
    """Settings of the shared HTTP client. Times are in seconds."""

    #: URL or e-mail address where site operators can contact the operator of the crawl.
    contact_url: str | None = None
    #: User-Agent header; None builds it from the package version and ``contact_url``.
    user_agent: str | None = None
    #: Allow loopback, private, link-local and other non-public addresses (local tests only).
    allow_private: bool = False
    #: Maximum time of one request: connection, headers and the whole body.
    timeout_s: float = 20.0
    #: Maximum time to open the TCP (and TLS) connection, within ``timeout_s``.
    connect_timeout_s: float = 10.0
    #: Maximum body size in bytes after decompression. The read stops as soon as it is passed.
    max_bytes: int = 20 * 1024 * 1024
    #: Return the first ``max_bytes`` bytes of a longer body with status ok instead of too_large.
    truncate_long_bodies: bool = False
    #: Maximum number of redirects followed; 0 follows none.
    max_redirects: int = 5
    #: Extra attempts after a timeout, connection error, truncated body, 429 or 5xx.
    retries: int = 2
    #: Wait before the first retry. It doubles after each retry, with up to 25 % random jitter.
    backoff_s: float = 1.0
    #: Maximum wait before a retry. A longer Retry-After ends the retries instead.
    max_backoff_s: float = 30.0
    #: Maximum number of open connections over all hosts.
    max_concurrency: int = 64
    #: Maximum number of concurrent requests to one host name.
    max_per_host: int = 4
    #: How long resolved addresses stay cached.
    dns_ttl_s: float = 300.0
    #: HTTP proxy that receives every request, such as a ``wit replay`` server. Only http://
    #: URLs with a loopback IP address are accepted. Setting it is the explicit opt-in for
    #: connecting to that address, so ``allow_private`` still applies only to target URLs.
    proxy: str | None = None

    def __post_init__(self) -> None:
        if self.user_agent is None:
            self.user_agent = default_user_agent(self.contact_url)
        if self.proxy is not None:
            self.proxy = check_proxy_url(self.proxy)
        for name in ("timeout_s", "connect_timeout_s", "max_bytes", "max_concurrency", "max_per_host"):
            if getattr(self, name) <= 0:
                raise ValueError(f"HttpConfig.{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_redirects", "retries", "backoff_s", "max_backoff_s", "dns_ttl_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"HttpConfig.{name} must not be negative, got {getattr(self, name)!r}")


@dataclass
class HttpResult:
    """Outcome of ``http_get`` for one URL.

    ``body`` is set only when ``status`` is ok, that is when a 2xx body arrived
    completely and within the byte cap. Partial bodies are returned only with
    ``truncate_long_bodies``, cut at ``max_bytes``.
    """

    url: str
    final_url: str
    status: FetchStatus
    http_status: int | None = None
    #: Media type of the Content-Type header, lower case and without parameters.
    content_type: str | None = None
    #: Response headers of the last hop with lower-case names.
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    error: str | None = None
    redirects: int = 0
    attempts: int = 0
    #: Body bytes received in the last attempt, complete or not.
    bytes_received: int = 0

    @property
    def ok(self) -> bool:
        return self.status is FetchStatus.OK


@dataclass
class _Hop:
    """Outcome of one HTTP request, before redirects and retries are applied."""

    result: HttpResult
    location: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None


def check_proxy_url(proxy: str) -> str:
    """Return ``proxy`` as a normalized URL, or raise ValueError unless it is http:// on a loopback IP address."""
    hint = "expected http://IP:PORT with a loopback IP address, such as the URL that `wit replay` prints"
    try:
        parsed = URL(proxy.strip())
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid proxy {proxy!r}: {error}; {hint}") from None
    literal = parse_ip_literal(parsed.raw_host or "")
    if parsed.scheme != "http" or literal is None or not literal.is_loopback:
        raise ValueError(f"invalid proxy {proxy!r}: {hint}")
    if parsed.user or parsed.raw_path not in ("", "/") or parsed.raw_query_string or parsed.raw_fragment:
        raise ValueError(f"invalid proxy {proxy!r}: a proxy URL must not contain a user, path, query or fragment; {hint}")
    return str(parsed.origin())


class _PlainProxyRequest(aiohttp.ClientRequest):
    """Client request that sends https URLs to an HTTP proxy as plain absolute-form requests.

    aiohttp (3.14) opens a CONNECT tunnel and TLS for https URLs when ``is_ssl()`` is true.
    A replay proxy has no TLS sessions to tunnel, so through a proxy every request is
    ``GET https://host/path HTTP/1.1`` on the plain proxy connection.
    """

    def is_ssl(self) -> bool:
        return False if self.proxy is not None else super().is_ssl()


_logged_proxies: set[str] = set()


def make_session(config: HttpConfig) -> aiohttp.ClientSession:
    """Create a client session whose connector resolves through the address guard.

    Call it inside a running event loop and close the session when done. The session
    keeps no cookies and ignores proxy environment variables. Timeouts other than the
    connect timeout come from ``http_get``. With ``config.proxy`` set, every request goes
    to that proxy and target hosts are never resolved. ``check_url`` still rejects
    target URLs with blocked IP literals unless ``allow_private`` is set.
    """
    resolver = GuardedResolver(allow_private=config.allow_private, ttl_s=config.dns_ttl_s)
    connector = aiohttp.TCPConnector(
        resolver=resolver,
        limit=config.max_concurrency,
        limit_per_host=config.max_per_host,
        use_dns_cache=False,  # GuardedResolver caches
    )
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout_s)
    proxy_options = {}
    if config.proxy is not None:
        proxy_options = {"proxy": config.proxy, "request_class": _PlainProxyRequest}
        if config.proxy not in _logged_proxies:
            _logged_proxies.add(config.proxy)
            logger.info("sending every request through the proxy %s", config.proxy)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": config.user_agent},
        cookie_jar=aiohttp.DummyCookieJar(),
        # Decompress gzip, deflate (and br with Brotli installed). max_bytes then caps the
        # decompressed size, which also stops compression bombs.
        auto_decompress=True,
        trust_env=False,
        **proxy_options,
    )


class HostLimiter:
    """Per-host and global request slots.

    ``slot(host)`` waits for one of ``max_per_host`` slots of the host, then for one of
    ``max_concurrency`` global slots. ``http_get`` starts a request's deadline only after
    it acquired both, so a queued request does not time out while it waits.
    """

    def __init__(self, max_per_host: int, max_concurrency: int | None = None):
        self.max_per_host = max_per_host
        self._global = asyncio.Semaphore(max_concurrency) if max_concurrency else None
        self._hosts: dict[str, list] = {}  # host -> [semaphore, number of holders and waiters]

    @classmethod
    def from_config(cls, config: HttpConfig) -> "HostLimiter":
        return cls(config.max_per_host, config.max_concurrency)

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        entry = self._hosts.get(host)
        if entry is None:
            entry = self._hosts[host] = [asyncio.Semaphore(self.max_per_host), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                if self._global is None:
                    yield
                else:
                    async with self._global:
                        yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._hosts[host]


def parse_retry_after(value: str | None) -> float | None:
    """Return the wait in seconds of a Retry-After header (delay seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _header_dict(headers: Mapping[str, str]) -> dict[str, str]:
    """Return headers with lower-case names; repeated fields are joined with ", " (RFC 9110)."""
    joined: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _content_type(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Content-Type")
    if not value:
        return None
    return value.split(";", 1)[0].strip().lower() or None


def _failure(url: str, final_url: str, status: FetchStatus, error: str, **fields: object) -> HttpResult:
    return HttpResult(url=url, final_url=final_url, status=status, error=error, **fields)


async def _read_body(response: aiohttp.ClientResponse, result: HttpResult, config: HttpConfig) -> None:
    """Stream the body into ``result`` and set its status: ok, too_large or truncated."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    declared = response.content_length
    if declared is not None and encoding == "identity" and declared > config.max_bytes and not config.truncate_long_bodies:
        result.status = FetchStatus.TOO_LARGE
        result.error = f"Content-Length {declared} exceeds max_bytes {config.max_bytes}"
        return

    chunks = []
    received = 0
    async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
        received += len(chunk)
        result.bytes_received = received
        if received > config.max_bytes and config.truncate_long_bodies:
            chunks.append(chunk)
            result.status = FetchStatus.OK
            result.body = b"".join(chunks)[: config.max_bytes]
            return
        if received > config.max_bytes:
            result.status = FetchStatus.TOO_LARGE
            result.error = f"body exceeds max_bytes {config.max_bytes}"
            return
        chunks.append(chunk)

    # aiohttp raises ClientPayloadError when the connection closes before Content-Length
    # bytes arrive. This check also covers a decoder that stops early.
    # NOTE: bytes sent beyond Content-Length are not seen here, because aiohttp reads
    # exactly Content-Length bytes and leaves the rest to the connection.
    if declared is not None and encoding == "identity" and received != declared:
        result.status = FetchStatus.TRUNCATED
        result.error = f"received {received} bytes but Content-Length is {declared}"
        return

    result.status = FetchStatus.OK
    result.body = b"".join(chunks)


async def _request(
    session: aiohttp.ClientSession,
    original_url: str,
    target: URL,
    config: HttpConfig,
    headers: Mapping[str, str] | None,
) -> _Hop:
    """Send one GET without following redirects, under the total deadline."""
    result = HttpResult(url=original_url, final_url=str(target), status=FetchStatus.CONNECTION_ERROR)
    try:
        async with asyncio.timeout(config.timeout_s):
            async with session.get(target, allow_redirects=False, headers=headers) as response:
                result.http_status = response.status
                result.headers = _header_dict(response.headers)
                result.content_type = _content_type(response.headers)

                if response.status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if location:
                        return _Hop(result, location=location)
                    result.status = FetchStatus.HTTP_ERROR
                    result.error = f"HTTP {response.status} redirect without a Location header"
                    return _Hop(result)

                if not 200 <= response.status < 300:
                    result.status = FetchStatus.HTTP_ERROR
                    result.error = f"HTTP {response.status} {response.reason or ''}".strip()
                    transient = response.status == 429 or response.status >= 500
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    return _Hop(result, retryable=transient, retry_after_s=retry_after)

                await _read_body(response, result, config)
                return _Hop(result, retryable=result.status is FetchStatus.TRUNCATED)

    except TimeoutError as error:
        # Also catches aiohttp's ServerTimeoutError (connect timeout), a TimeoutError subclass.
        result.status = FetchStatus.TIMEOUT
        result.error = str(error) or f"request timed out after {config.timeout_s:g} s"
        return _Hop(result, retryable=True)
    except aiohttp.ClientConnectorDNSError as error:
        if isinstance(error.os_error, BlockedAddressError):
            result.status = FetchStatus.BLOCKED_ADDRESS
            result.error = str(error.os_error)
            return _Hop(result)
        result.status = FetchStatus.DNS_ERROR
        result.error = f"DNS lookup of {error.host} failed: {error.os_error}"
        return _Hop(result)
    except aiohttp.ClientPayloadError as error:
        result.status = FetchStatus.TRUNCATED
        result.error = f"incomplete body: {error}"
        return _Hop(result, retryable=True)
    except aiohttp.InvalidURL as error:
        result.status = FetchStatus.INVALID_URL
        result.error = f"invalid URL: {error}"
        return _Hop(result)
    except aiohttp.ClientResponseError as error:
        # Raised for responses that are not valid HTTP (bad status line or headers).
        result.status = FetchStatus.HTTP_ERROR
        result.error = f"invalid HTTP response: {error.message}"
        return _Hop(result, retryable=True)
    except (aiohttp.ClientError, OSError) as error:
        result.status = FetchStatus.CONNECTION_ERROR
        result.error = f"{type(error).__name__}: {error}"
        return _Hop(result, retryable=True)


async def _follow(
    session: aiohttp.ClientSession,
    url: str,
    config: HttpConfig,
    limiter: HostLimiter | None,
    headers: Mapping[str, str] | None,
) -> _Hop:
    """Make one attempt: request ``url`` and follow its redirects, checking every hop."""
    current: str | URL = url
    visited: set[str] = set()
    redirects = 0
    while True:
        try:
            target = check_url(current, config.allow_private)
        except InvalidURLError as error:
            return _Hop(_failure(url, str(current), FetchStatus.INVALID_URL, str(error), redirects=redirects))
        except BlockedAddressError as error:
            return _Hop(_failure(url, str(current), FetchStatus.BLOCKED_ADDRESS, str(error), redirects=redirects))
        visited.add(str(target))

        if limiter is None:
            hop = await _request(session, url, target, config, headers)
        else:
            async with limiter.slot(target.host or ""):
                hop = await _request(session, url, target, config, headers)
        hop.result.redirects = redirects
        if hop.location is None:
            return hop

        try:
            next_url = target.join(URL(hop.location))
        except ValueError as error:
            hop.result.status = FetchStatus.INVALID_URL
            hop.result.error = f"invalid redirect Location {hop.location!r}: {error}"
            hop.location = None
            return hop

        hop.location = None
        if str(next_url) in visited:
            hop.result.status = FetchStatus.TOO_MANY_REDIRECTS
            hop.result.error = f"redirect loop: {target} redirects back to {next_url}"
            return hop
        if redirects >= config.max_redirects:
            hop.result.status = FetchStatus.TOO_MANY_REDIRECTS
            hop.result.error = f"more than max_redirects={config.max_redirects} redirects, next {next_url}"
            return hop
        redirects += 1
        current = next_url


async def http_get(
    session: aiohttp.ClientSession,
    url: str,
    config: HttpConfig,
    limiter: HostLimiter | None = None,
    *,
    headers: Mapping[str, str] | None = None,
) -> HttpResult:
    """Fetch ``url`` and return its result; network and HTTP problems become a status.

    Redirects (301, 302, 303, 307, 308) are followed up to ``config.max_redirects``,
    each hop checked with ``check_url``, and a hop seen before in the chain ends it as
    too_many_redirects. Each request has a total deadline of ``config.timeout_s`` that
    starts once ``limiter`` grants a slot. Timeouts, connection errors, truncated bodies,
    429 and 5xx are retried ``config.retries`` times with exponential backoff, or after
    Retry-After when the server sends it. A Retry-After longer than ``max_backoff_s``
    ends the retries. Cancellation propagates as usual.
    """
    attempts = 0
    while True:
        attempts += 1
        hop = await _follow(session, url, config, limiter, headers)
        result = hop.result
        result.attempts = attempts
        if not hop.retryable or attempts > config.retries:
            break

        if hop.retry_after_s is not None:
            if hop.retry_after_s > config.max_backoff_s:
                result.error = (
                    f"{result.error}; Retry-After {hop.retry_after_s:g} s exceeds max_backoff_s "
                    f"{config.max_backoff_s:g}, not retried"
                )
                break
            wait_s = hop.retry_after_s
        else:
            wait_s = config.backoff_s * 2 ** (attempts - 1) * random.uniform(1.0, 1.25)
            wait_s = min(wait_s, config.max_backoff_s)
        _retry_log.record(result.status.value, "%s (%s), waiting %.1f s", url, result.error, wait_s)
        await asyncio.sleep(wait_s)

    if not result.ok:
        _error_log.record(result.status.value, "%s (%s)", url, result.error)
    return result
