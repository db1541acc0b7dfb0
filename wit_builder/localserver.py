"""Serve an aiohttp application on a loopback port from a background thread.

The sample pipeline and the tests use this to run real HTTP servers on 127.0.0.1
while synchronous code (or another event loop) talks to them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Callable

from aiohttp import web

logger = logging.getLogger(__name__)


class BackgroundServer:
    """Run an aiohttp application on ``host`` until the context exits.

    ``port`` 0 picks a free port. A fixed port lets a resumed pipeline serve the
    same URLs that an earlier run recorded.

    ``app_factory`` is called inside the server's own event loop, because aiohttp
    applications bind to the loop that first runs them.
    """

    def __init__(self, app_factory: Callable[[], web.Application], host: str = "127.0.0.1", port: int = 0):
        self._app_factory = app_factory
        self._host = host
        self._requested_port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        """Root URL of the running server, with a trailing slash."""
        if self.port is None:
            raise RuntimeError("server is not running")
        return f"http://{self._host}:{self.port}/"

    def start(self) -> "BackgroundServer":
        """Start the server thread and wait until the port is bound."""
        self._thread = threading.Thread(target=self._run, name="loopback-server", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._startup_error is not None:
            raise RuntimeError(f"loopback server failed to start: {self._startup_error}")
        if self.port is None:
            raise RuntimeError("loopback server did not start within 30 seconds")
        logger.info("serving on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop the server and join its thread."""
        if self._loop is None or self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        logger.info("stopped server on port %s", self.port)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._startup())
        except BaseException as error:  # reported to the starting thread
            self._startup_error = error
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        self._runner = web.AppRunner(self._app_factory(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._requested_port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
