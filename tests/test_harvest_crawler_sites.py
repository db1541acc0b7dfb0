"""Loopback sites for the crawler tests, whose responses each test scripts per path.

This module contains no tests. The other crawler test files import its helpers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web

from wit_builder.harvest.crawler import CrawlConfig, crawl_folder
from wit_builder.harvest.stats import HarvestStats
from wit_builder.localserver import BackgroundServer
from wit_builder.net.client import HttpConfig
from wit_builder.parquet import iter_records, list_parts
from wit_builder.records import Candidate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def local_config(http: dict | None = None, **overrides) -> CrawlConfig:
    """Crawl settings for loopback test servers: private addresses allowed, no retries, no host delay."""
    http_settings = {"allow_private": True, "retries": 0, "timeout_s": 10.0, **(http or {})}
    settings = {"host_delay_s": 0.0, **overrides}
    return CrawlConfig(http=HttpConfig(**http_settings), **settings)


def html(body: str, content_type: str = "text/html") -> Handler:
    async def handle(_request: web.Request) -> web.Response:
        return web.Response(text=body, content_type=content_type, charset="utf-8")

    return handle


def body(data: bytes, content_type: str) -> Handler:
    async def handle(_request: web.Request) -> web.Response:
        return web.Response(body=data, content_type=content_type)

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    async def handle(_request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    return handle


def status(code: int, text: str = "") -> Handler:
    async def handle(_request: web.Request) -> web.Response:
        return web.Response(status=code, text=text or f"status {code}", content_type="text/plain")

    return handle


def slow(seconds: float, then: Handler) -> Handler:
    """Wait ``seconds``, then respond with ``then``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await then(request)

    return handle


def streamed(size: int, content_type: str = "text/html") -> Handler:
    """Send ``size`` bytes with chunked transfer encoding, so that no Content-Length announces the size."""

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"<p>" + b"x" * 65_530 + b"</p>"
        sent = 0
        try:
            while sent < size:
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the crawler stopped reading at its byte cap
        return response

    return handle


def page(*, images: dict[str, str] | None = None, links: list[str] | None = None) -> Handler:
    """Build a handler that serves an HTML page with images (src to alt text) and links."""
    parts = ['<html lang="en"><body>']
    for src, alt in (images or {}).items():
        parts.append(f'<img src="{src}" alt="{alt}">')
    for href in links or []:
        parts.append(f'<a href="{href}">link</a>')
    parts.append("</body></html>")
    return html("".join(parts))


@dataclass
class RequestEntry:
    """One request that a scripted site received."""

    path: str
    at: float


@dataclass
class ScriptedSite:
    """A loopback site that responds to each path with the handler that the test set for it.

    Unknown paths get 404, and /robots.txt too unless the routes contain it. Every request
    is logged with its path and query and the ``time.monotonic()`` of its arrival.
    ``max_concurrent`` is the largest number of requests that were in progress at once.
    """

    routes: dict[str, Handler]
    log: list[RequestEntry] = field(default_factory=list)
    max_concurrent: int = 0
    _running: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: BackgroundServer | None = None

    def __post_init__(self) -> None:
        self.server = BackgroundServer(self._make_app)

    def _make_app(self) -> web.Application:
        async def dispatch(request: web.Request) -> web.StreamResponse:
            with self._lock:
                self.log.append(RequestEntry(request.path_qs, time.monotonic()))
                self._running += 1
                self.max_concurrent = max(self.max_concurrent, self._running)
            try:
                handler = self.routes.get(request.path_qs) or self.routes.get(request.path)
                if handler is None:
                    return web.Response(status=404, text="not found", content_type="text/plain")
                return await handler(request)
            finally:
                with self._lock:
                    self._running -= 1

        app = web.Application()
        app.router.add_route("*", "/{path:.*}", dispatch)
        return app

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def paths(self) -> list[str]:
        with self._lock:
            return [entry.path for entry in self.log]

    def page_paths(self) -> list[str]:
        return [path for path in self.paths() if path != "/robots.txt"]

    def times(self) -> list[float]:
        with self._lock:
            return [entry.at for entry in self.log]

    def __enter__(self) -> "ScriptedSite":
        self.server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop()


def read_candidates(out_dir: Path) -> list[Candidate]:
    return [row for part in list_parts(out_dir) for row in iter_records(part, Candidate)]


def run_crawl(
    seeds: list[str], out_dir: Path, config: CrawlConfig, restart: bool = False
) -> tuple[HarvestStats, list[Candidate]]:
    stats = crawl_folder(seeds, out_dir, config, restart=restart)
    return stats, read_candidates(out_dir)


def gaps(times: list[float]) -> list[float]:
    """Return the differences between consecutive times."""
    return [later - earlier for earlier, later in zip(times, times[1:])]
