"""The Fetcher's HTTP transport: httpx's own, with a lighter idle-connection check.

Before each request and after each response, httpcore's connection pool asks every idle
connection whether its socket has become readable (the server closed it). Through anyio each
such question rebuilds the stream's table of attributes, a `getpeername()` system call
included, just to find the socket again: with 8 kept-alive connections that was 8 % of the CPU of
a loopback backfill (encode/httpcore#928 tracks the pool scan itself). The streams made here
keep the socket from when the connection was opened and answer that one question directly;
everything else is anyio's and httpcore's own code.

No TLS set-up for plain http: httpx builds an SSL context (the CA bundle loaded, some 20 ms of
CPU) for every transport it makes. Here http:// requests go through a transport whose context has
no certificates (it never runs a handshake: without a CA it could verify none, so it fails closed
if it ever did), and the https:// one is made at the first https request, with one context
built per process and shared by every Fetcher (a reload makes a new one).
"""

from __future__ import annotations

import functools
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["make_transport", "tls_context"]


def _poller(sock: socket.socket | None) -> select.poll | None:
    """A poll object watching `sock` for reading, registered once: each idle check is then one
    `poll(0)` call (a new poll object and its registration per check cost as much again)."""
    if sock is None:
        return None
    try:
        fd = sock.fileno()
    except OSError:
        return None
    if fd < 0:
        return None
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return poller


class _Stream(httpcore.AsyncNetworkStream):
    """anyio's stream, with the socket looked up once."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")
        self._poller = _poller(self._socket)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._poller is not None:
            if self._socket is None or self._socket.fileno() < 0:
                return True  # closed under us: as readable as a closed connection is
            return bool(self._poller.poll(0))
        return self._stream.get_extra_info(info)


class _Backend(httpcore.AnyIOBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)


class _Pool(httpcore.AsyncConnectionPool):
    """httpcore's pool with its bookkeeping in linear time.

    Before each request and after each answer the pool walks its connections to drop the
    closed, expired and surplus idle ones, and for each idle one it counted every connection
    again (`len([c.is_idle() for c in connections])`: 8 kept-alive connections, 64 calls a
    walk); then, for each queued request, it listed all available and all idle connections to
    take the first of each. The same rules here, each connection asked once: the walk was 22 %
    of a page's fetch CPU in a 300-page backfill (encode/httpcore#928 tracks the pool's cost).
    """

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        for connection in list(self._connections):
            if connection.is_closed():
                self._connections.remove(connection)
            elif connection.has_expired():
                self._connections.remove(connection)
                closing.append(connection)
            elif connection.is_idle() and len(self._connections) > self._max_keepalive_connections:
                self._connections.remove(connection)
                closing.append(connection)
        for pool_request in [r for r in self._requests if r.is_queued()]:
            origin = pool_request.request.url.origin
            available = next(
                (c for c in self._connections if c.can_handle_request(origin) and c.is_available()),
                None,
            )
            if available is not None:
                pool_request.assign_to_connection(available)
                continue
            if len(self._connections) >= self._max_connections:
                idle = next((c for c in self._connections if c.is_idle()), None)
                if idle is None:
                    continue  # the request waits for a connection to free up
                self._connections.remove(idle)
                closing.append(idle)
            connection = self.create_connection(origin)
            self._connections.append(connection)
            pool_request.assign_to_connection(connection)
        return closing


# httpcore 1.0.x before the pool's rewrite has no such method: the stock pool then
_LINEAR_POOL = hasattr(httpcore.AsyncConnectionPool, "_assign_requests_to_connections")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's default context (certifi's CA bundle, or $SSL_CERT_FILE / $SSL_CERT_DIR), built
    once per process, at the first https request."""
    return httpx.create_ssl_context()


def _no_tls_context() -> ssl.SSLContext:
    """For the http:// transport: verification on, and no CA to verify with."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _transport(limits: httpx.Limits, context: ssl.SSLContext) -> httpx.AsyncHTTPTransport:
    """httpx's transport with `limits`, its pool a `_Pool` opening connections through
    `_Backend`.

    httpx has no parameter for httpcore's pool or its `network_backend`: the pool it built is
    replaced by one made with the same arguments (httpx's own, no proxy, HTTP/1.1); if a later
    httpx names that attribute differently, the stock pool stays (a test checks that ours is
    in use)."""
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=context)
    if isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        pool = _Pool if _LINEAR_POOL else httpcore.AsyncConnectionPool
        transport._pool = pool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_Backend(),
        )
    return transport


class Transport(httpx.AsyncBaseTransport):
    """http:// through one pool, https:// through another made when first needed (see the
    module's docstring). Each pool has `limits` (the Fetcher's slots bound the requests in
    flight across both)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self.http = _transport(limits, _no_tls_context())
        self.https: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            if self.https is None:
                self.https = _transport(self._limits, tls_context())
            return await self.https.handle_async_request(request)
        return await self.http.handle_async_request(request)

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.https is not None:
            await self.https.aclose()


def make_transport(limits: httpx.Limits) -> Transport:
    """The Fetcher's transport: lazy TLS, the lighter idle check."""
    return Transport(limits)
