"""Strict HTTP/1.1 response framing for the shared client's connections.

aiohttp (3.14) reads exactly the bytes that a response's Content-Length or chunked
framing declares and parses whatever follows on the connection as the next response.
``StrictResponseHandler`` changes three things:

- Bytes after the end of the final response are an error of that response: a read of
  its body raises ``ResponseFramingError`` and the connection is closed. Bytes that do
  not parse as HTTP already make aiohttp fail the response; bytes that parse as another
  response would otherwise be queued silently.
- A connection that received such bytes is never reused. Otherwise a response that the
  server sent ahead of time would be read as the response to the next request.
- A framing error inside a body (an invalid chunk size line) fails the body read at
  once. aiohttp leaves the read waiting until the deadline instead.

NOTE: bytes that arrive after the client finished reading a body are not reported for
that response, because its result is already returned. They still close the connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError

from wit_builder.net.counted_log import CountedLog

logger = logging.getLogger(__name__)

_extra_bytes_log = CountedLog(logger, logging.INFO, "closed a connection after")


class ResponseFramingError(aiohttp.ClientPayloadError):
    """The server broke HTTP/1.1 framing after the response head was read."""


class StrictResponseHandler(ResponseHandler):
    """aiohttp response protocol that rejects bytes after the response that was requested."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        super().__init__(loop)
        self._awaiting_final_response = False
        self._final_payload: aiohttp.StreamReader | None = None

    def set_response_params(self, **params: Any) -> None:
        # aiohttp calls this once per request, right before it sends the request.
        self._awaiting_final_response = True
        self._final_payload = None
        super().set_response_params(**params)

    def feed_data(self, data: Any, size: int = 0) -> None:
        message, payload = data
        if not self._awaiting_final_response:
            self._reject(f"bytes after the end of the body that parse as another response (HTTP {message.code})")
            return

        informational = 100 <= message.code < 200 and message.code != 101
        if not informational:
            self._awaiting_final_response = False
            self._final_payload = payload
        super().feed_data(data, size)

    def set_exception(self, exc: BaseException, *cause: BaseException) -> None:
        # The parser failed. Before the final response head, aiohttp fails the request
        # itself. After it, the invalid bytes are in the body or follow it.
        payload = self._final_payload
        if isinstance(exc, HttpProcessingError) and payload is not None:
            where = "after the end of the body" if payload.is_eof() else "in the body"
            payload.set_exception(ResponseFramingError(f"invalid bytes {where}: {exc.message}"))
            if payload.is_eof():
                self._log_extra_bytes("invalid bytes")
        super().set_exception(exc, *cause)

    def _reject(self, reason: str) -> None:
        if self._final_payload is not None:
            self._final_payload.set_exception(ResponseFramingError(reason))
        self.force_close()
        if self.transport is not None:
            self.transport.close()
        self._log_extra_bytes(reason)

    def _log_extra_bytes(self, reason: str) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        _extra_bytes_log.record("bytes after a complete response", "%s sent %s", peer, reason)


class StrictConnector(aiohttp.TCPConnector):
    """TCPConnector whose connections use ``StrictResponseHandler``."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        # NOTE: aiohttp 3.14 has no public option for the protocol class, so this replaces
        # the private protocol factory. tests/test_net_protocol.py fails if it stops working.
        if not hasattr(self, "_factory"):
            raise RuntimeError("this aiohttp version has no TCPConnector._factory; update StrictConnector")
        self._factory = functools.partial(StrictResponseHandler, loop=self._loop)
