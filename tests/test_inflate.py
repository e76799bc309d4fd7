"""The fetcher's content-encoding decoders (worker/inflate.py), fed as a network would."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest

from worker.inflate import PIECE, DecodeError, decoder_for

zstd = pytest.importorskip("backports.zstd")  # Python 3.14+: compression.zstd (the same API)

TEXT = b"<p>" + b"Railway news from Bishkek. " * 20_000  # 540 KB


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODED = {
    "gzip": gzip.compress(TEXT),
    "x-gzip": gzip.compress(TEXT),
    "deflate": zlib.compress(TEXT),
    "br": brotli.compress(TEXT),
    "zstd": zstd.compress(TEXT),
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
        ("gzip, zstd", "stacked content-encodings (gzip, zstd): only one layer is accepted"),
        (
            "compress",
            "unsupported content-encoding 'compress' (accepted: gzip, deflate, br, zstd)",
        ),
    ],
)
def test_stacked_and_unknown_encodings_are_refused_from_the_header(
    header: str, message: str
) -> None:
    with pytest.raises(DecodeError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        decoder_for(header)


def test_identity_layers_do_not_count() -> None:
    assert b"".join(decode("identity, gzip", ENCODED["gzip"], 4096)) == TEXT


@pytest.mark.parametrize("header", ["gzip", "deflate", "br", "zstd"])
def test_corrupt_data_is_a_decode_error(header: str) -> None:
    with pytest.raises(DecodeError):
        decode(header, b"\x1f\x8b\x08\x00garbage-garbage-garbage" * 10, 64)


def test_zstd_frames_back_to_back_decode_as_one_body() -> None:
    """RFC 8878: zstd data is one or more frames (a server may flush a frame per chunk)."""
    body = zstd.compress(TEXT[:1000]) + zstd.compress(TEXT[1000:])
    assert b"".join(decode("zstd", body, 4096)) == TEXT


def test_a_zstd_frame_whose_window_is_over_8mb_is_refused_before_it_allocates() -> None:
    """A frame names its window (up to 2 GB) and the decoder allocates it first: over RFC 9659's
    8 MB it is refused, as browsers do, whatever the frame holds."""
    big_window = {zstd.CompressionParameter.window_log: 27}  # 128 MB
    body = zstd.compress(b"\0" * (16 * 1024 * 1024), options=big_window)
    assert len(body) < 2000
    with pytest.raises(DecodeError, match=r"^zstd frame with a window over 8 MB$"):
        decode("zstd", body, 4096)


def test_a_zstd_body_cut_short_is_a_decode_error() -> None:
    body = ENCODED["zstd"]
    with pytest.raises(DecodeError, match=r"^truncated zstd data$"):
        decode("zstd", body[: len(body) // 2], 4096)
