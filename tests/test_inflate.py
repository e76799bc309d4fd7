"""The fetcher's content-encoding decoders (worker/inflate.py), fed as a network would."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from worker.inflate import PIECE, DecodeError, decoder_for

TEXT = b"<p>" + b"Railway news from Bishkek. " * 20_000  # 540 KB


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODED = {
    "gzip": gzip.compress(TEXT),
    "x-gzip": gzip.compress(TEXT),
    "deflate": zlib.compress(TEXT),
    "br": brotli.compress(TEXT),
    "identity": TEXT,
    "": TEXT,
}


def decode(header: str, body: bytes, chunk: int) -> list[bytes]:
    decoder = decoder_for(header)
    pieces: list[bytes] = []
    for start in range(0, len(body), chunk):
        pieces.extend(decoder.feed(body[start : start + chunk]))
    pieces.extend(decoder.finish())
    return pieces


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
@pytest.mark.parametrize("header", list(ENCODED))
def test_each_encoding_decodes_in_pieces_of_at_most_64kb(header: str, chunk: int) -> None:
    body = ENCODED[header]
    pieces = decode(header, body, chunk)
    assert b"".join(pieces) == TEXT
    assert max(len(p) for p in pieces) <= PIECE


def test_raw_deflate_without_a_zlib_header_is_read_too() -> None:
    assert b"".join(decode("deflate", raw_deflate(TEXT), 4096)) == TEXT


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("gzip, gzip", "stacked content-encodings (gzip, gzip): only one layer is accepted"),
        ("gzip,br", "stacked content-encodings (gzip, br): only one layer is accepted"),
        ("zstd", "unsupported content-encoding 'zstd' (accepted: gzip, deflate, br)"),
        ("compress", "unsupported content-encoding 'compress' (accepted: gzip, deflate, br)"),
    ],
)
def test_stacked_and_unknown_encodings_are_refused_from_the_header(
    header: str, message: str
) -> None:
    with pytest.raises(DecodeError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        decoder_for(header)


def test_identity_layers_do_not_count() -> None:
    assert b"".join(decode("identity, gzip", ENCODED["gzip"], 4096)) == TEXT


@pytest.mark.parametrize("header", ["gzip", "deflate", "br"])
def test_corrupt_data_is_a_decode_error(header: str) -> None:
    with pytest.raises(DecodeError):
        decode(header, b"\x1f\x8b\x08\x00garbage-garbage-garbage" * 10, 64)
