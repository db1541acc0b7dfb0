"""aiohttp application that replays a ``ReplayIndex`` as an HTTP proxy.

Request targets decide what a request is:

- absolute-form (``GET http://example.org/a.png``): a proxy request, served from the
  archive. http and https URLs are both accepted this way, because the archive contains no
  TLS sessions to tunnel.
- origin-form (``GET /__replay__/index.json``): a request to the server itself.
- authority-form (``CONNECT example.org:443``): rejected with 405.

Response headers tell clients what happened: ``X-Replay`` is ``hit``, ``hit-other-scheme``
(only the http/https twin of the URL is archived), ``miss``, ``invalid-url``,
``method-not-allowed``, ``not-a-proxy-request`` or ``read-error`` (502). Hits also carry ``X-Replay-URL`` (the
archived URL, normalized), ``X-Replay-Date`` (its WARC-Date) and ``X-Replay-Record``
(response or revisit), and ``X-Replay-Truncated`` when the archived payload was cut.
Range and conditional request headers are ignored: every hit gets the whole archived response.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from aiohttp import web

from wit_builder.net.counted_log import CountedLog
from wit_builder.replay.archive import Capture, ReplayIndex
from wit_builder.replay.reader import OpenCapture, ReplayReadError, open_capture

logger = logging.getLogger(__name__)

INDEX_PATH = "/__replay__/index.json"
READ_CHUNK_BYTES = 64 * 1024

#: Statuses whose responses never have a body (RFC 9110 sections 15.2, 15.3.5 and 15.4.5).
BODILESS_STATUSES = frozenset({204, 304})

_miss_log = CountedLog(logger, logging.INFO, "replay")


class ReplayHandler:
    """Handle every request of the application from ``index`` and count the outcomes."""

    def __init__(self, index: ReplayIndex):
        self.index = index
        #: Responses sent, by X-Replay value, and "index" for requests of INDEX_PATH.
        self.counts: collections.Counter[str] = collections.Counter()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        target = request.raw_path
        if request.method == "CONNECT":
            return self._text(
                405, "method-not-allowed",
                "CONNECT is not supported: the archive contains no TLS sessions. "
                "Send https URLs to this proxy as plain requests: GET https://host/path HTTP/1.1\n",
                {"Allow": "GET, HEAD"},
            )
        if target.startswith("/"):
            return self._serve_own(request)
        if request.method not in ("GET", "HEAD"):
            return self._text(405, "method-not-allowed", f"only GET and HEAD are replayed, not {request.method}\n",
                              {"Allow": "GET, HEAD"})

        try:
            found = self.index.lookup(target)
        except ValueError as error:
            return self._text(400, "invalid-url", f"{error}\n")
        if found is None:
            _miss_log.record("miss", "%s", target)
            return self._text(404, "miss", f"not in the archive: {target}\n")
        capture, other_scheme = found
        return await self._replay(request, capture, "hit-other-scheme" if other_scheme else "hit")

    def _serve_own(self, request: web.Request) -> web.StreamResponse:
        if request.rel_url.path == INDEX_PATH and request.method in ("GET", "HEAD"):
            self.counts["index"] += 1
            return web.json_response(self.describe())
        return self._text(
            404, "not-a-proxy-request",
            f"This is a WARC replay proxy. Send absolute-form requests (GET http://host/path HTTP/1.1) "
            f"or GET {INDEX_PATH} for the list of archived URLs.\n",
        )

    def describe(self) -> dict:
        """Return the archived URLs and index counts, as served at INDEX_PATH."""
        return {
            "files": [str(path) for path in self.index.paths],
            "stats": self.index.stats.to_json(),
            "urls": [
                {
                    "url": capture.key,
                    "archived_url": capture.url,
                    "date": capture.date,
                    "record": capture.record_type,
                    "status": capture.status,
                    "content_type": capture.content_type,
                    "length": capture.payload_length,
                }
                for capture in self.index.captures.values()
            ],
        }

    async def _replay(self, request: web.Request, capture: Capture, outcome: str) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        try:
            opened: OpenCapture = await loop.run_in_executor(None, open_capture, capture)
        except ReplayReadError as error:
            logger.error("cannot read the capture of %s: %s", capture.key, error)
            return self._text(502, "read-error", f"cannot read the archived response: {error}\n")

        try:
            response = web.StreamResponse(status=opened.status, reason=opened.reason)
            for name, value in opened.headers:
                response.headers.add(name, value)
            response.headers["X-Replay"] = outcome
            response.headers["X-Replay-URL"] = capture.key
            response.headers["X-Replay-Date"] = capture.date
            response.headers["X-Replay-Record"] = capture.record_type
            if capture.truncated:
                response.headers["X-Replay-Truncated"] = capture.truncated
            has_body = opened.status not in BODILESS_STATUSES and opened.status >= 200
            if has_body:
                response.content_length = opened.length
            self.counts[outcome] += 1
            logger.debug("%s %s -> %d (%s, %d bytes)", request.method, request.raw_path, opened.status, outcome, opened.length)

            await response.prepare(request)
            if has_body and request.method != "HEAD":
                while chunk := await loop.run_in_executor(None, opened.read, READ_CHUNK_BYTES):
                    await response.write(chunk)
            await response.write_eof()
            return response
        except ReplayReadError as error:
            # The headers are sent already, so closing the connection is the only way to
            # tell the client that the body is incomplete.
            logger.error("replay of %s stopped after the headers: %s", capture.key, error)
            if request.transport is not None:
                request.transport.close()
            return response
        finally:
            opened.close()

    def _text(self, status: int, outcome: str, text: str, headers: dict[str, str] | None = None) -> web.Response:
        self.counts[outcome] += 1
        return web.Response(status=status, text=text, headers={"X-Replay": outcome, **(headers or {})})


HANDLER_KEY = web.AppKey("replay_handler", ReplayHandler)


def make_app(index: ReplayIndex) -> web.Application:
    """Return the replay application. ``app[HANDLER_KEY].counts`` contains the response counts."""
    replay = ReplayHandler(index)

    # aiohttp routes by path alone, and an absolute-form request has the same path as an
    # origin-form one, while CONNECT has none. So one middleware handles every request
    # by its raw request target and never calls the router's handler.
    @web.middleware
    async def dispatch(request: web.Request, handler) -> web.StreamResponse:
        return await replay(request)

    app = web.Application(middlewares=[dispatch])
    app[HANDLER_KEY] = replay
    return app

