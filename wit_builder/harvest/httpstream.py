"""Read a large file over HTTP as a blocking binary stream, without downloading it first.

A Common Crawl archive is about 1 GB, so ``HttpStream`` hands its body to the reader chunk by
chunk: an aiohttp client runs in a private event loop on a background thread and fills a
bounded queue, and ``read`` takes from that queue, so a slow reader slows the download.
Every request and redirect hop goes through the project's address guard, which rejects
loopback, private and metadata addresses unless ``allow_private`` is set. When the connection
drops mid-body and the server accepts byte ranges, the stream requests the rest with a Range
request, up to ``retries`` times. Otherwise ``read`` raises ``HttpStreamError`` after the last
byte received.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import threading

import aiohttp
from yarl import URL

from wit_builder.harvest.sources import StreamConfig
from wit_builder.net.client import default_user_agent
from wit_builder.net.guard import BlockedAddressError, GuardedResolver, GuardedSocketFactory, InvalidURLError, check_url

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# Errors of a connection that fails while the body streams.
_BODY_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError, OSError)


class HttpOpenError(OSError):
    """The request for a file failed before its body started: HTTP error, blocked address, DNS, connection."""


class HttpStreamError(OSError):
    """The connection failed mid-body and the rest of the body could not be requested again."""


class HttpStream(io.RawIOBase):
    """A read-only binary stream of one URL's body. Opening it sends the request and raises HttpOpenError on failure."""

    def __init__(self, url: str, config: StreamConfig | None = None):
        super().__init__()
        self.url = url
        self.config = config or StreamConfig()
        self.final_url = url
        self.bytes_received = 0
        self.resumes = 0
        self.content_length: int | None = None
        self._buffer = memoryview(b"")
        self._finished = False
        self._session: aiohttp.ClientSession | None = None
        self._socket_factory: GuardedSocketFactory | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._validator: str | None = None
        self._ranges = False
        self._pump: concurrent.futures.Future | None = None
        self._queue: asyncio.Queue | None = None

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="http-stream", daemon=True)
        self._thread.start()
        try:
            self._call(self._open())
        except BaseException:
            self.close()
            raise
        self._pump = asyncio.run_coroutine_threadsafe(self._pump_body(), self._loop)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._buffer:
            if self._finished:
                return 0
            item = self._next_item()
            if item is None:
                self._finished = True
                return 0
            if isinstance(item, BaseException):
                self._finished = True
                raise item
            self._buffer = memoryview(item)
        size = min(len(buffer), len(self._buffer))
        buffer[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._pump is not None:
                self._pump.cancel()
            if self._loop.is_running():
                self._call(self._close_session())
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()
        finally:
            super().close()

    def _call(self, coroutine):
        """Run a coroutine on the stream's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _next_item(self) -> bytes | BaseException | None:
        assert self._queue is not None
        future = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop)
        # The read timeout bounds each wait inside the loop, so this limit only guards against a stuck loop.
        limit = self.config.read_timeout_s * (self.config.retries + 2) + 60
        try:
            return future.result(timeout=limit)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return HttpStreamError(f"{self.url}: no data for {limit:.0f} s after {self.bytes_received} bytes")

    async def _open(self) -> None:
        config = self.config
        self._queue = asyncio.Queue(maxsize=config.queue_chunks)
        self._socket_factory = GuardedSocketFactory(allow_private=config.allow_private)
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=config.allow_private),
            # The socket factory checks the address actually connected to, as for image requests.
            socket_factory=self._socket_factory,
            use_dns_cache=False,  # GuardedResolver caches
            limit=4,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=config.connect_timeout_s,
                                          sock_read=config.read_timeout_s),
            headers={"User-Agent": config.user_agent or default_user_agent(), "Accept-Encoding": "identity"},
            cookie_jar=aiohttp.DummyCookieJar(),
            # The archives are stored compressed, and their readers decompress them.
            auto_decompress=False,
            trust_env=False,
        )
        response = await self._request(None)
        if response.status != 200:
            reason = response.reason or ""
            response.release()
            raise HttpOpenError(f"{self.url}: HTTP {response.status} {reason}".strip())

        self._response = response
        self.content_length = response.content_length
        self._ranges = response.headers.get("Accept-Ranges", "").strip().lower() == "bytes"
        etag = response.headers.get("ETag")
        # If-Range needs a strong validator, so a weak ETag falls back to Last-Modified.
        self._validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")

    async def _request(self, range_start: int | None) -> aiohttp.ClientResponse:
        """Send a GET for the stream's URL, following redirects through the address guard."""
        assert self._session is not None
        headers = {}
        if range_start is not None:
            headers["Range"] = f"bytes={range_start}-"
            if self._validator:
                headers["If-Range"] = self._validator

        current: str | URL = self.final_url if range_start is not None else self.url
        visited: set[str] = set()
        for _hop in range(self.config.max_redirects + 1):
            try:
                target = check_url(current, self.config.allow_private)
            except (InvalidURLError, BlockedAddressError) as error:
                raise HttpOpenError(f"{self.url}: {error}") from None
            visited.add(str(target))
            blocked_before = self._socket_factory.blocked_connections
            try:
                response = await self._session.get(target, allow_redirects=False, headers=headers)
            except aiohttp.ClientConnectorDNSError as error:
                if isinstance(error.os_error, BlockedAddressError):
                    raise HttpOpenError(f"{self.url}: {error.os_error}") from None
                raise HttpOpenError(f"{self.url}: DNS lookup of {error.host} failed: {error.os_error}") from None
            except aiohttp.ClientConnectorError as error:
                if self._socket_factory.blocked_connections > blocked_before:
                    raise HttpOpenError(f"{self.url}: {error.host} resolved to a blocked address; connection rejected") from None
                raise HttpOpenError(f"{self.url}: request failed: {type(error).__name__}: {error}") from None
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                raise HttpOpenError(f"{self.url}: request failed: {type(error).__name__}: {error}") from None

            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                self.final_url = str(target)
                return response
            response.release()
            try:
                current = target.join(URL(location))
            except ValueError:
                raise HttpOpenError(f"{self.url}: invalid redirect Location {location!r}") from None
            if str(current) in visited:
                raise HttpOpenError(f"{self.url}: redirect loop at {current}")
        raise HttpOpenError(f"{self.url}: more than {self.config.max_redirects} redirects")

    async def _pump_body(self) -> None:
        """Move the body into the queue, asking for the rest after a dropped connection; end with None or an error."""
        assert self._queue is not None
        attempt = 0
        while True:
            try:
                await self._copy_body()
                await self._queue.put(None)
                return
            except asyncio.CancelledError:
                raise
            except _BODY_ERRORS as error:
                problem = f"{type(error).__name__}: {error}".rstrip(": ")

            if self._response is not None:
                self._response.close()
                self._response = None
            if attempt >= self.config.retries or not self._ranges:
                reason = "the server does not accept byte ranges" if not self._ranges else f"after {attempt} Range requests"
                await self._queue.put(HttpStreamError(
                    f"{self.url}: connection failed after {self.bytes_received} bytes ({problem}); {reason}"))
                return

            attempt += 1
            delay = self.config.backoff_s * 2 ** (attempt - 1)
            logger.info("%s: connection failed after %d bytes (%s); requesting the rest in %.1f s",
                        self.url, self.bytes_received, problem, delay)
            await asyncio.sleep(delay)
            try:
                await self._resume()
            except HttpOpenError as error:
                await self._queue.put(HttpStreamError(f"{error} (while resuming after {self.bytes_received} bytes)"))
                return

    async def _copy_body(self) -> None:
        assert self._response is not None and self._queue is not None
        async for chunk in self._response.content.iter_chunked(self.config.chunk_bytes):
            self.bytes_received += len(chunk)
            await self._queue.put(chunk)
        # aiohttp raises ClientPayloadError for a short body only when a Content-Length header gave the length.
        if self.content_length is not None and self.bytes_received < self.content_length:
            raise aiohttp.ClientPayloadError(f"received {self.bytes_received} of {self.content_length} bytes")

    async def _resume(self) -> None:
        """Request the body from ``bytes_received`` on and make it the current response."""
        response = await self._request(self.bytes_received)
        expected = f"bytes {self.bytes_received}-"
        content_range = response.headers.get("Content-Range", "")
        if response.status != 206 or not content_range.startswith(expected):
            response.release()
            raise HttpOpenError(f"{self.url}: Range request returned HTTP {response.status} "
                                f"with Content-Range {content_range!r}, expected 206 with {expected}...")
        self.resumes += 1
        self._response = response

    async def _close_session(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        if self._session is not None:
            await self._session.close()
            self._session = None
