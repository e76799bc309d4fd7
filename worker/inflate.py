"""Content-encoding decoders for the fetcher: one layer at most, output bounded per call.

httpx decodes `Content-Encoding: gzip, gzip` layer by layer and inflates a whole network chunk
before the caller sees a byte, so the size cap was checked after the harm: a 3.5 KB answer took
a process to 4 GB. Here the body's raw bytes are fed to one decoder that never returns more than
PIECE bytes per step (zlib's and zstd's `max_length`, brotli's `output_buffer_limit`), so the
reader counts the decoded size as it grows and stops at its cap holding at most the cap plus one
piece.

zstd is decoded by the standard library's `compression.zstd` (Python 3.14) or, before 3.14, by
its backport `backports.zstd` (the same code, by the same author; no dependency of its own), with
the window capped at 8 MB as RFC 9659 has HTTP decoders do (browsers refuse larger windows too):
a zstd frame names its window, and the decoder allocates it before the first byte comes out.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["PIECE", "DecodeError", "Decoder", "accept_encoding", "decoder_for"]

PIECE = 64 * 1024  # bytes of decoded output per step at most

try:  # optional, as in httpx: advertised and decoded only when installed
    import brotli as _brotli

    _HAS_BROTLI = hasattr(_brotli.Decompressor(), "can_accept_more_data")  # 1.1+: bounded output
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None
    _HAS_BROTLI = False

try:  # Python 3.14+: the standard library's; before, its backport (a dependency)
    from compression import zstd as _zstd  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    try:
        from backports import zstd as _zstd  # type: ignore[no-redef,unused-ignore]
    except ImportError:  # pragma: no cover - depends on the environment
        _zstd = None

ZSTD_WINDOW_LOG_MAX = 23  # 8 MB (RFC 9659 section 3: "a window size limit of 8 MB")


class DecodeError(Exception):
    """The body cannot be decoded: an unsupported or stacked encoding, or corrupt data."""


class Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def finish(self) -> Iterator[bytes]: ...


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), PIECE):
            yield data[start : start + PIECE]

    def finish(self) -> Iterator[bytes]:
        return iter(())


class _Zlib:
    """gzip (one member; bytes after it are ignored, as httpx does) or deflate (zlib-wrapped,
    or raw deflate as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._obj: Any = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._started = False
        self._head = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._started and not self._gzip:
            data = self._head + data
            if len(data) < 2:  # the zlib header's two bytes decide the format
                self._head = data
                return
            self._started = True
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            if not wrapped:  # no zlib header (RFC 1950): raw deflate
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        self._started = True
        pending = data
        while pending and not self._obj.eof:
            try:
                out = self._obj.decompress(pending, PIECE)
            except zlib.error as exc:
                raise DecodeError(f"corrupt {'gzip' if self._gzip else 'deflate'} data") from exc
            pending = self._obj.unconsumed_tail
            if out:
                yield out
        while not self._obj.eof:  # output held back by max_length with no input left
            try:
                out = self._obj.decompress(b"", PIECE)
            except zlib.error as exc:
                raise DecodeError("corrupt compressed data") from exc
            if not out:
                break
            yield out

    def finish(self) -> Iterator[bytes]:
        if self._head:  # a one-byte body
            head, self._head = self._head, b""
            self._started = True
            yield from self.feed(head)
        try:
            out = self._obj.flush()
        except zlib.error as exc:
            raise DecodeError("corrupt compressed data") from exc
        if out:  # flush() takes no limit; what is left after the fed input is small
            yield from _Identity().feed(out)


class _Brotli:
    # brotli's limit stops its output buffer growing once reached, and the buffer grows in
    # blocks (32 KB, then 64 KB more...): a limit of 32-64 KB gave 98 KB steps, 1 KB gives
    # steps of one 32 KB block
    LIMIT = 1024

    def __init__(self) -> None:
        assert _brotli is not None
        self._obj = _brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._steps(data)

    def finish(self) -> Iterator[bytes]:
        return self._steps(b"")

    def _steps(self, data: bytes) -> Iterator[bytes]:
        """Output for `data`, then what the limit held back (can_accept_more_data() turns true
        while output is still pending: empty input until nothing comes out)."""
        assert _brotli is not None
        try:
            out = self._obj.process(data, output_buffer_limit=self.LIMIT)
            while out:
                yield out
                out = self._obj.process(b"", output_buffer_limit=self.LIMIT)
        except _brotli.error as exc:
            raise DecodeError("corrupt br data") from exc


class _Zstd:
    """zstd (RFC 8878): one or more frames back to back, each with a window of 8 MB at most."""

    def __init__(self) -> None:
        assert _zstd is not None
        self._obj = self._new()
        self._fed = False

    @staticmethod
    def _new() -> Any:
        assert _zstd is not None
        limit = {_zstd.DecompressionParameter.window_log_max: ZSTD_WINDOW_LOG_MAX}
        return _zstd.ZstdDecompressor(options=limit)

    def feed(self, data: bytes) -> Iterator[bytes]:
        assert _zstd is not None
        pending = data
        self._fed = self._fed or bool(data)
        while True:
            if self._obj.eof:  # a frame ended: what follows it is the next frame
                pending = self._obj.unused_data + pending
                if not pending:
                    return
                self._obj = self._new()
            try:
                out = self._obj.decompress(pending, PIECE)
            except _zstd.ZstdError as exc:
                if "memory" in str(exc):  # the frame's window is over our limit
                    raise DecodeError("zstd frame with a window over 8 MB") from exc
                raise DecodeError("corrupt zstd data") from exc
            pending = b""
            if out:
                yield out
            elif self._obj.needs_input and not self._obj.eof:
                return

    def finish(self) -> Iterator[bytes]:
        yield from self.feed(b"")
        if self._fed and not self._obj.eof:  # (an empty body is left to the caller)
            raise DecodeError("truncated zstd data")


def supported() -> tuple[str, ...]:
    names = ("gzip", "deflate") + (("br",) if _HAS_BROTLI else ())
    return names + (("zstd",) if _zstd is not None else ())


def accept_encoding() -> str:
    """The Accept-Encoding header: only what `decoder_for` decodes."""
    return ", ".join(supported())


def decoder_for(header: str | None) -> Decoder:
    """The decoder for a Content-Encoding header value; DecodeError when it names more than
    one layer (`gzip, gzip`) or an encoding other than gzip, deflate, br, zstd."""
    layers = [
        part.strip().lower()
        for part in (header or "").split(",")
        if part.strip() and part.strip().lower() != "identity"
    ]
    if not layers:
        return _Identity()
    if len(layers) > 1:
        shown = ", ".join(layers[:5])[:80]
        raise DecodeError(f"stacked content-encodings ({shown}): only one layer is accepted")
    name = {"x-gzip": "gzip"}.get(layers[0], layers[0])
    if name not in supported():
        raise DecodeError(
            f"unsupported content-encoding {name[:40]!r} (accepted: {', '.join(supported())})"
        )
    if name == "br":
        return _Brotli()
    if name == "zstd":
        return _Zstd()
    return _Zlib(gzip=name == "gzip")
