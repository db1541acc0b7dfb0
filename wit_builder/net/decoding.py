"""Decode a response body's Content-Encoding with a size cap and an end-of-stream check.

aiohttp (3.14) decompresses bodies itself, but it accepts a gzip, deflate or br stream
that stops before its end marker, so a body cut at a wrong Content-Length or by a
closed connection would pass as complete. The client therefore reads the raw body and
decodes it here.
"""

from __future__ import annotations

import zlib

try:
    import brotli
except ImportError:  # Brotli is optional, as in aiohttp.
    brotli = None


class ContentEncodingError(ValueError):
    """A body whose Content-Encoding is unsupported or whose encoded data is invalid."""


class IncompleteEncodingError(ValueError):
    """A compressed body that ends before the end of its compressed stream."""


def _brotli_supports_output_limit() -> bool:
    # Brotli 1.2 added output_buffer_limit. Without it one small chunk can decode to a
    # huge output before the size cap is checked, so br is then not requested at all.
    if brotli is None:
        return False
    try:
        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except TypeError:
        return False
    return True


_HAS_BROTLI = _brotli_supports_output_limit()
_GZIP_CODINGS = frozenset({"gzip", "x-gzip"})
SUPPORTED_CODINGS = frozenset(_GZIP_CODINGS | {"deflate"} | ({"br"} if _HAS_BROTLI else set()))


def accept_encoding() -> str:
    """Return the Accept-Encoding header value listing the codings that ``BodyDecoder`` decodes."""
    return "gzip, deflate, br" if _HAS_BROTLI else "gzip, deflate"


def _is_zlib_header(data: bytes) -> bool:
    # RFC 1950: compression method 8 in the low nibble, and CMF * 256 + FLG divisible by 31.
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


class BodyDecoder:
    """Incremental decoder of one body with the given Content-Encoding header value.

    Supported: identity, gzip (several members allowed, as RFC 1952 permits), deflate
    (zlib format, or raw deflate as some servers send it) and br when Brotli 1.2 or
    later is installed. The constructor raises ContentEncodingError for other codings
    and for stacked codings such as "gzip, br".
    """

    def __init__(self, content_encoding: str | None):
        codings = [coding.strip().lower() for coding in (content_encoding or "").split(",")]
        codings = [coding for coding in codings if coding and coding != "identity"]
        if len(codings) > 1:
            raise ContentEncodingError(f"stacked Content-Encoding {content_encoding!r} is not supported")
        self.coding = codings[0] if codings else None
        if self.coding is not None and self.coding not in SUPPORTED_CODINGS:
            raise ContentEncodingError(f"unsupported Content-Encoding {self.coding!r}")

        self._received_input = False
        self._pending = b""  # first byte of a deflate body, until the zlib header check
        self._next_member_started = False  # a gzip member after the first has no input decoded yet
        self._zlib: zlib._Decompress | None = None
        self._brotli = brotli.Decompressor() if self.coding == "br" else None
        if self.coding in _GZIP_CODINGS:
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def decode(self, data: bytes, max_length: int) -> bytes:
        """Decode the next piece of the body and return at most ``max_length`` bytes.

        When the output reaches ``max_length``, input that is not decoded yet is dropped,
        so the caller must stop there (the client then reports too_large).
        Raises ContentEncodingError for invalid data.
        """
        if not data:
            return b""
        self._received_input = True
        if self.coding is None:
            return data
        if self._brotli is not None:
            return self._decode_brotli(data, max_length)
        if self._zlib is None:
            data = self._start_deflate(data)
            if self._zlib is None:
                return b""
        return self._decode_zlib(data, max_length)

    def finish(self) -> None:
        """Check that the body reached the end of its compressed stream.

        Raises IncompleteEncodingError otherwise. An empty body counts as complete for
        every coding. ``decode`` has returned all output by then, because it decodes
        each piece completely unless the output reached ``max_length``.
        """
        if self.coding is None or not self._received_input:
            return
        if self._brotli is not None:
            finished = self._brotli.is_finished()
        else:
            finished = self._zlib is not None and self._zlib.eof
        if not finished:
            raise IncompleteEncodingError(f"the {self.coding} body ends before the end of its compressed stream")

    def _start_deflate(self, data: bytes) -> bytes:
        data = self._pending + data
        if len(data) < 2:
            self._pending = data
            return b""
        self._pending = b""
        wbits = zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS
        self._zlib = zlib.decompressobj(wbits)
        return data

    def _decode_zlib(self, data: bytes, max_length: int) -> bytes:
        output = []
        produced = 0
        while data and produced < max_length:
            if self._zlib.eof:
                # A finished gzip member may be followed by another member. Anything
                # else after the end of the stream is not part of a valid body.
                if self.coding not in _GZIP_CODINGS:
                    raise ContentEncodingError(f"{len(data)} bytes after the end of the {self.coding} stream")
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._next_member_started = True
            try:
                piece = self._zlib.decompress(data, max_length - produced)
            except zlib.error as error:
                if self._next_member_started:
                    raise ContentEncodingError(
                        f"bytes after the end of the {self.coding} stream do not start another gzip member"
                    ) from None
                raise ContentEncodingError(f"invalid {self.coding} data: {error}") from None
            self._next_member_started = False
            output.append(piece)
            produced += len(piece)
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
        return b"".join(output)

    def _decode_brotli(self, data: bytes, max_length: int) -> bytes:
        if self._brotli.is_finished():
            raise ContentEncodingError(f"{len(data)} bytes after the end of the br stream")
        try:
            return self._brotli.process(data, output_buffer_limit=max_length)
        except brotli.error as error:
            raise ContentEncodingError(f"invalid br data: {error}") from None
