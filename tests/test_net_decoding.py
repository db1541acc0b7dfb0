"""BodyDecoder on its own: chunk boundaries, size caps and end-of-stream checks."""

from __future__ import annotations

import gzip
import zlib

import pytest

from wit_builder.net.decoding import (
    SUPPORTED_CODINGS,
    BodyDecoder,
    ContentEncodingError,
    IncompleteEncodingError,
    accept_encoding,
)

PLAIN = bytes(range(256)) * 40


def decode_in_pieces(encoding: str, encoded: bytes, piece_bytes: int, max_length: int = 10**9) -> bytes:
    decoder = BodyDecoder(encoding)
    output = []
    for start in range(0, len(encoded), piece_bytes):
        output.append(decoder.decode(encoded[start : start + piece_bytes], max_length))
    decoder.finish()
    return b"".join(output)


@pytest.mark.parametrize("piece_bytes", [1, 7, 4096])
@pytest.mark.parametrize(
    ("encoding", "encoded"),
    [
        ("gzip", gzip.compress(PLAIN)),
        ("gzip", gzip.compress(PLAIN[:100]) + gzip.compress(PLAIN[100:])),
        ("deflate", zlib.compress(PLAIN)),
        ("deflate", zlib.compress(PLAIN)[2:-4]),
        ("identity", PLAIN),
        ("", PLAIN),
    ],
)
def test_decoder_any_chunk_boundaries(encoding, encoded, piece_bytes):
    assert decode_in_pieces(encoding, encoded, piece_bytes) == PLAIN


def test_decoder_output_capped():
    decoder = BodyDecoder("gzip")
    output = decoder.decode(gzip.compress(b"\x00" * 10_000_000), 1001)
    assert len(output) == 1001


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_decoder_cut_stream_incomplete(encoding):
    encoded = gzip.compress(PLAIN) if encoding == "gzip" else zlib.compress(PLAIN)
    with pytest.raises(IncompleteEncodingError):
        decode_in_pieces(encoding, encoded[: len(encoded) - 5], 1000)


def test_decoder_single_deflate_byte_incomplete():
    with pytest.raises(IncompleteEncodingError):
        decode_in_pieces("deflate", b"\x78", 1)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_decoder_empty_body_complete(encoding):
    if encoding not in SUPPORTED_CODINGS:
        pytest.skip("Brotli 1.2 or later is not installed")
    BodyDecoder(encoding).finish()


def test_decoder_bytes_after_deflate_stream():
    with pytest.raises(ContentEncodingError, match="after the end of the deflate stream"):
        decode_in_pieces("deflate", zlib.compress(PLAIN) + b"more", 100_000)


@pytest.mark.parametrize("encoding", ["zstd", "compress", "gzip, br", "gzip, gzip"])
def test_decoder_rejects_unsupported(encoding):
    with pytest.raises(ContentEncodingError, match="Content-Encoding"):
        BodyDecoder(encoding)


def test_decoder_identity_in_list_ignored():
    assert BodyDecoder("identity, gzip").coding == "gzip"
    assert BodyDecoder(" GZIP ").coding == "gzip"


@pytest.mark.skipif("br" not in SUPPORTED_CODINGS, reason="Brotli 1.2 or later is not installed")
def test_decoder_brotli_cut_and_trailing():
    import brotli

    encoded = brotli.compress(PLAIN)
    assert decode_in_pieces("br", encoded, 3) == PLAIN
    with pytest.raises(IncompleteEncodingError):
        decode_in_pieces("br", encoded[:-3], 100)
    with pytest.raises(ContentEncodingError, match="after the end of the br stream"):
        decode_in_pieces("br", encoded + b"x", len(encoded))


def test_accept_encoding_lists_supported_codings():
    listed = {coding.strip() for coding in accept_encoding().split(",")}
    assert listed == SUPPORTED_CODINGS - {"x-gzip"}
