"""Shared HTTP client for the crawler and the image downloader.

``http_get`` fetches one URL and reports every network or HTTP problem as a
``FetchStatus`` in its result instead of raising. It follows redirects itself so
that every hop passes the address guard, enforces a total deadline and a byte cap
on each request, and retries transient failures with exponential backoff.

Each way a server can fail or misbehave ends as one status. "Retried" means another
attempt within the same ``http_get`` call, up to ``HttpConfig.retries``.

==================  =========  ==============================================================
Status              Retried    Server behaviour
==================  =========  ==============================================================
invalid_url         no         URL or redirect Location is not http(s), has no host, or is
                               unparsable
blocked_address     no         Host is a blocked IP literal, resolves only to blocked
                               addresses, or a connection attempt targets one (checked on
                               every redirect hop too)
dns_error           no         DNS lookup fails
connection_error    yes        Connection refused or reset, TLS handshake failed, or the
                               connection closed before a complete response head (an empty
                               reply or only 1xx responses too)
timeout             yes        No complete response within ``timeout_s``: slow connect, slow
                               or endless head, slow body
protocol_error      no         Response head is not HTTP/1.x: bad status line, header line
                               over 8190 bytes, more than 128 header fields, invalid header
protocol_error      no         Invalid, negative, listed or repeated Content-Length (even
                               with equal values), or Content-Length with Transfer-Encoding
protocol_error      no         Invalid chunked encoding (bad chunk size or chunk end)
protocol_error      no         Bytes after the declared end of the body that arrive while
                               the body is read. aiohttp reports bytes that are not HTTP and
                               arrive together with the body as a bad status line.
protocol_error      no         Unsupported or stacked Content-Encoding, invalid compressed
                               data, or bytes after the end of the compressed stream
protocol_error      no         Conflicting Location headers in a redirect
http_error          429, 5xx   Status other than 2xx, or a redirect without Location
too_many_redirects  no         Redirect loop, more than ``max_redirects`` redirects, or any
                               redirect when ``max_redirects`` is 0 (``http_status`` keeps
                               the 3xx and ``headers`` its Location)
too_large           no         Content-Length, received body or decoded body over
                               ``max_bytes``
truncated           yes        Connection closed before Content-Length bytes or the last
                               chunk, or the compressed stream stops before its end
==================  =========  ==============================================================

Only the body of a complete 2xx response within the byte cap is returned. A partial
body never is, except the first ``max_bytes`` bytes with ``truncate_long_bodies``.
Bytes after the declared end of a body are caught by ``StrictResponseHandler`` (see
``wit_builder.net.protocol``) while the body is read, and the connection is closed.
A redirect loop is reported as too_many_redirects with "redirect loop" in the error,
not as a status of its own, because the crawler treats both cases alike.
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
from aiohttp.abc import AbstractResolver
from yarl import URL

from wit_builder import __version__
from wit_builder.net.counted_log import CountedLog
from wit_builder.net.decoding import BodyDecoder, ContentEncodingError, IncompleteEncodingError, accept_encoding
from wit_builder.net.guard import (
    BlockedAddressError,
    GuardedResolver,
    GuardedSocketFactory,
    InvalidURLError,
    check_url,
    parse_ip_literal,
)
from wit_builder.net.protocol import ResponseFramingError, StrictConnector
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
READ_CHUNK_BYTES = 64 * 1024
# Limits of the response head. They equal aiohttp 3.14's defaults and are set explicitly
# because the status table in the module docstring names them.
MAX_HEADER_LINE_BYTES = 8190
MAX_HEADER_FIELDS = 128

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
    #: Allow loopback addresses only (127.0.0.0/8, ::1), so that tests can serve on 127.0.0.1
    #: while the guard still rejects private, link-local and metadata addresses.
    allow_loopback: bool = False
    #: Maximum time of one request: connection, headers and the whole body.
    timeout_s: float = 20.0
    #: Maximum time to open the TCP (and TLS) connection, within ``timeout_s``.
    connect_timeout_s: float = 10.0
    #: Maximum body size in bytes, both as received and after Content-Encoding decoding.
    #: The read stops as soon as either size passes it.
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
    #: Body bytes received in the last attempt, complete or not, after Content-Encoding decoding.
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


def make_session(config: HttpConfig, *, resolver: AbstractResolver | None = None) -> aiohttp.ClientSession:
    """Create a client session whose connector resolves and connects through the address guard.

    Call it inside a running event loop and close the session when done. The session
    keeps no cookies and ignores proxy environment variables. Timeouts other than the
    connect timeout come from ``http_get``. With ``config.proxy`` set, every request goes
    to that proxy and target hosts are never resolved. ``check_url`` still rejects
    target URLs with blocked IP literals unless ``allow_private`` is set.

    ``resolver`` replaces the ``GuardedResolver`` built from ``config``, so that tests can
    control DNS answers. The socket factory checks every address connected to either way.
    """
    if resolver is None:
        resolver = GuardedResolver(
            allow_private=config.allow_private, ttl_s=config.dns_ttl_s, allow_loopback=config.allow_loopback
        )
    proxy_peers = []
    if config.proxy is not None:
        proxy_url = URL(config.proxy)
        proxy_peers.append((proxy_url.raw_host or "", proxy_url.port or 80))
    socket_factory = GuardedSocketFactory(config.allow_private, config.allow_loopback, proxy_peers)
    connector = StrictConnector(
        resolver=resolver,
        socket_factory=socket_factory,
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
        headers={"User-Agent": config.user_agent, "Accept-Encoding": accept_encoding()},
        cookie_jar=aiohttp.DummyCookieJar(),
        # _read_body decodes gzip, deflate and br itself, so that max_bytes caps the decoded
        # size and a compressed stream cut before its end is reported as truncated.
        auto_decompress=False,
        max_line_size=MAX_HEADER_LINE_BYTES,
        max_field_size=MAX_HEADER_LINE_BYTES,
        max_headers=MAX_HEADER_FIELDS,
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


def _one_line(message: str, max_chars: int = 300) -> str:
    # aiohttp's parser errors span several lines with a caret under the bad byte.
    return " ".join(message.split())[:max_chars]


def _failure(url: str, final_url: str, status: FetchStatus, error: str, **fields: object) -> HttpResult:
    return HttpResult(url=url, final_url=final_url, status=status, error=error, **fields)


async def _read_body(response: aiohttp.ClientResponse, result: HttpResult, config: HttpConfig) -> None:
    """Stream and decode the body into ``result`` and set its status: ok, too_large, truncated or protocol_error.

    A ClientPayloadError from the read (the connection closed early, or a framing error)
    propagates to ``_request``.
    """
    try:
        decoder = BodyDecoder(", ".join(response.headers.getall("Content-Encoding", [])))
    except ContentEncodingError as error:
        result.status = FetchStatus.PROTOCOL_ERROR
        result.error = str(error)
        return

    declared = response.content_length
    if declared is not None and declared > config.max_bytes and not config.truncate_long_bodies:
        result.status = FetchStatus.TOO_LARGE
        result.error = f"Content-Length {declared} exceeds max_bytes {config.max_bytes}"
        return

    chunks = []
    received = 0
    encoded_received = 0
    try:
        async for encoded in response.content.iter_chunked(READ_CHUNK_BYTES):
            encoded_received += len(encoded)
            # One byte more than the cap allows, so that a longer body is noticed.
            chunk = decoder.decode(encoded, config.max_bytes - received + 1)
            chunks.append(chunk)
            received += len(chunk)
            result.bytes_received = received
            # The encoded size is capped too, so that a stream of empty gzip members
            # cannot run until the deadline.
            if received > config.max_bytes or encoded_received > config.max_bytes:
                _end_long_body(result, chunks, encoded_received, config)
                return

        decoder.finish()
    except ContentEncodingError as error:
        result.status = FetchStatus.PROTOCOL_ERROR
        result.error = str(error)
        return
    except IncompleteEncodingError as error:
        result.status = FetchStatus.TRUNCATED
        result.error = str(error)
        return

    # Bytes that reached the connection after the last read of the body set an error
    # on the body stream; see wit_builder.net.protocol.
    if response.content.exception() is not None:
        raise response.content.exception()

    # aiohttp raises ClientPayloadError when the connection closes before Content-Length
    # bytes arrive, so this check is a second line of defence.
    if declared is not None and encoded_received != declared:
        result.status = FetchStatus.TRUNCATED
        result.error = f"received {encoded_received} bytes but Content-Length is {declared}"
        return

    result.status = FetchStatus.OK
    result.body = b"".join(chunks)


def _end_long_body(result: HttpResult, chunks: list[bytes], encoded_received: int, config: HttpConfig) -> None:
    if config.truncate_long_bodies:
        result.status = FetchStatus.OK
        result.body = b"".join(chunks)[: config.max_bytes]
        return
    result.status = FetchStatus.TOO_LARGE
    result.error = (
        f"body exceeds max_bytes {config.max_bytes} "
        f"({encoded_received} bytes received, {result.bytes_received} after decoding so far)"
    )


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
                    locations = set(response.headers.getall("Location", []))
                    if len(locations) > 1:
                        result.status = FetchStatus.PROTOCOL_ERROR
                        result.error = (
                            f"HTTP {response.status} redirect with {len(locations)} different Location headers"
                        )
                        return _Hop(result)
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
                if result.status is FetchStatus.PROTOCOL_ERROR:
                    # Skip the rest of the body and do not reuse the connection.
                    response.close()
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
    except aiohttp.ClientConnectorError as error:
        # aiohappyeyeballs joins the errors of several addresses into one OSError message.
        if isinstance(error.os_error, BlockedAddressError) or "blocked address" in str(error.os_error):
            result.status = FetchStatus.BLOCKED_ADDRESS
            result.error = f"connection to {error.host} rejected: {error.os_error}"
            return _Hop(result)
        result.status = FetchStatus.CONNECTION_ERROR
        result.error = f"{type(error).__name__}: {error}"
        return _Hop(result, retryable=True)
    except ResponseFramingError as error:
        result.status = FetchStatus.PROTOCOL_ERROR
        result.error = _one_line(str(error))
        result.body = None
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
        result.status = FetchStatus.PROTOCOL_ERROR
        result.error = f"invalid HTTP response: {_one_line(error.message)}"
        return _Hop(result)
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
            target = check_url(current, config.allow_private, config.allow_loopback)
        except InvalidURLError as error:
            return _Hop(_failure(url, str(current), FetchStatus.INVALID_URL, str(error), redirects=redirects))
        except BlockedAddressError as error:
            return _Hop(_failure(url, str(current), FetchStatus.BLOCKED_ADDRESS, str(error), redirects=redirects))
        visited.add(str(target.with_fragment(None)))

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
        if str(next_url.with_fragment(None)) in visited:
            hop.result.status = FetchStatus.TOO_MANY_REDIRECTS
            hop.result.error = f"redirect loop: {target} redirects back to {next_url}"
            return hop
        if redirects >= config.max_redirects:
            hop.result.status = FetchStatus.TOO_MANY_REDIRECTS
            if config.max_redirects == 0:
                hop.result.error = (
                    f"HTTP {hop.result.http_status} redirect to {next_url} not followed (max_redirects=0)"
                )
            else:
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
