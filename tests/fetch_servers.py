"""Loopback image sites for the fetch tests: scripted responses, with every request recorded.

Each ``ImageSite`` is a real aiohttp server on 127.0.0.1 with its own port. The fetch
stage paces requests per host name and port, so several sites act as several hosts.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web
from PIL import Image

from wit_builder.localserver import BackgroundServer
from wit_builder.records import MatchedCandidate, candidate_id

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tiny_jpeg(seed: int, size: int = 24) -> bytes:
    """Return a small JPEG whose color depends on ``seed``; equal seeds give equal bytes."""
    color = ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", (size, size + seed % 5), color).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Arrival:
    """One request as the server saw it."""

    path: str
    time: float
    user_agent: str


class ImageSite:
    """A loopback site whose paths map to handlers; unknown paths get 404.

    ``/robots.txt`` serves ``robots`` when it is set. Each request is recorded, and
    ``max_in_flight`` is the largest number of requests handled at once.
    """

    def __init__(self, routes: dict[str, Handler] | None = None, robots: str | None = None):
        self.routes: dict[str, Handler] = dict(routes or {})
        self.robots = robots
        self.arrivals: list[Arrival] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._server = BackgroundServer(self._make_app)

    def __enter__(self) -> "ImageSite":
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stop()

    @property
    def host(self) -> str:
        """The host key that the fetch stage paces this site under: "127.0.0.1:PORT"."""
        return f"127.0.0.1:{self._server.port}"

    def url(self, path: str) -> str:
        return self._server.base_url + path.lstrip("/")

    def paths(self) -> list[str]:
        with self._lock:
            return [arrival.path for arrival in self.arrivals]

    def times(self, prefix: str = "/") -> list[float]:
        """Arrival times of the requests whose path starts with ``prefix``."""
        with self._lock:
            return [arrival.time for arrival in self.arrivals if arrival.path.startswith(prefix)]

    def count(self, path: str) -> int:
        return self.paths().count(path)

    def _make_app(self) -> web.Application:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            with self._lock:
                self.arrivals.append(Arrival(request.path_qs, time.monotonic(), request.headers.get("User-Agent", "")))
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                if request.path == "/robots.txt" and self.robots is not None and "/robots.txt" not in self.routes:
                    return web.Response(text=self.robots, content_type="text/plain")
                handler = self.routes.get(request.path)
                if handler is None:
                    return web.Response(status=404, text="not found")
                return await handler(request)
            finally:
                with self._lock:
                    self._in_flight -= 1

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", dispatch)
        return app


def image(data: bytes, delay_s: float = 0.0, headers: dict[str, str] | None = None) -> Handler:
    """Handler that waits ``delay_s`` and then serves ``data`` as image/jpeg."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.Response(body=data, content_type="image/jpeg", headers=headers)

    return handler


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    """Handler that responds with HTTP ``code`` and no image."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=f"status {code}", headers=headers)

    return handler


def failing_first(times: int, failure: Handler, success: Handler) -> Handler:
    """Handler that responds with ``failure`` for the first ``times`` requests, then with ``success``."""
    seen = [0]

    async def handler(request: web.Request) -> web.StreamResponse:
        seen[0] += 1
        return await (failure if seen[0] <= times else success)(request)

    return handler


async def reset_connection(request: web.Request) -> web.StreamResponse:
    """Close the connection without any response."""
    request.transport.close()
    await asyncio.sleep(0.05)
    return web.Response(status=500)


def matched(url: str, text: str = "", query_ids: list[int] | None = None) -> MatchedCandidate:
    """A MatchedCandidate row for ``url``; ``text`` defaults to the URL, so keys differ."""
    text = text or f"caption of {url}"
    return MatchedCandidate(
        candidate_id=candidate_id(url, text),
        url=url,
        text=text,
        text_source="alt",
        page_url="http://example.org/page.html",
        source="test",
        query_ids=list(query_ids or [0]),
    )
