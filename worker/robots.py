"""robots.txt (RFC 9309, parsed by Protego): may this worker fetch a URL, and how slowly.

`Robots` is the Fetcher's gate (`worker.fetch.RequestGate`): before each request it says whether
the URL is allowed for the worker's product token (the first word of its User-Agent, before the
`/`: what robots.txt rules name) and the delay its host asks for (`Crawl-delay`, which raises
`[http] min_delay` for that host, never lowers it).

robots.txt is fetched once per origin (scheme, host and port) and kept up to `TTL` (24 h, as
RFC 9309 allows) in the database (`RobotsCache`: the Store), so every process on it shares one
copy, and in memory. A 4xx answer (no robots.txt) allows everything; a 5xx answer or no answer
(timeout, refused connection) means "try later": the request is refused with `RobotsUnavailable`
and nothing is stored; this process asks again after `RETRY_LATER`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import httpx
from protego import Protego

from worker.config import HttpConfig
from worker.fetch import FetchError, redact_url
from worker.inflate import DecodeError, accept_encoding, decoder_for
from worker.transport import make_transport

log = logging.getLogger(__name__)

TTL = timedelta(hours=24)
MAX_BYTES = 500 * 1024  # RFC 9309: at least 500 KiB must be parsed; the rest is ignored
MAX_REDIRECTS = 5  # RFC 9309: follow at least five
# after a 5xx or no answer, requests to that origin are refused for this long without asking
# again: many sources on one host, or a 1 s schedule, do not hammer a robots.txt that is down
RETRY_LATER = 60.0  # seconds
ACCEPT = accept_encoding()


class Disallowed(FetchError):
    """robots.txt disallows this URL for the worker's product token."""


class RobotsUnavailable(FetchError):
    """robots.txt answered 5xx or did not answer: nothing may be fetched yet (try later)."""


class RobotsCache(Protocol):
    """Where robots.txt files are kept between processes (worker.store.Store has these)."""

    def robots_get(self, origin: str) -> tuple[datetime, int, str] | None: ...

    def robots_put(self, origin: str, *, fetched_at: datetime, status: int, body: str) -> None: ...


def product_token(user_agent: str) -> str:
    """The product token robots.txt rules match: "worker/0.1 (+url)" -> "worker"."""
    first = user_agent.strip().split(maxsplit=1)[0] if user_agent.strip() else ""
    return first.split("/", 1)[0] or user_agent


@dataclass(slots=True)
class _Entry:
    fetched_at: datetime
    status: int
    rules: Protego | None  # None: no robots.txt (a 4xx): everything is allowed


def origin_of(url: httpx.URL) -> str:
    port = url.port
    default = {"http": 80, "https": 443}.get(url.scheme)
    return f"{url.scheme}://{url.host}" + (f":{port}" if port and port != default else "")


class Robots:
    """The Fetcher's robots.txt gate. Thread-unsafe; one per Fetcher (one event loop)."""

    def __init__(
        self,
        http: HttpConfig,
        cache: RobotsCache | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.token = product_token(http.user_agent)
        self._http = http
        self._cache = cache
        self._clock = clock
        self._transport = transport
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._later: dict[str, tuple[float, RobotsUnavailable]] = {}  # origin -> (until, why)
        self.fetches = 0  # robots.txt requests sent by this process

    async def admit(self, url: httpx.URL) -> float:
        """Raise Disallowed / RobotsUnavailable, or return the Crawl-delay of `url`'s host
        (0.0: none)."""
        entry = await self._entry(url)
        if entry.rules is None:
            return 0.0
        if not entry.rules.can_fetch(str(url), self.token):
            raise Disallowed(str(url), "disallowed by robots.txt")
        delay = entry.rules.crawl_delay(self.token)
        return float(delay) if delay else 0.0

    async def _entry(self, url: httpx.URL) -> _Entry:
        origin = origin_of(url)
        entry = self._entries.get(origin)
        if entry is not None and self._clock() - entry.fetched_at < TTL:
            return entry
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:  # concurrent passes to one host wait for one fetch
            entry = self._entries.get(origin)
            if entry is not None and self._clock() - entry.fetched_at < TTL:
                return entry
            later = self._later.get(origin)
            if later is not None and time.monotonic() < later[0]:
                raise RobotsUnavailable(later[1].url, later[1].reason)
            try:
                entry = await self._load(origin)
            except RobotsUnavailable as exc:
                self._later[origin] = (time.monotonic() + RETRY_LATER, exc)
                raise
            self._later.pop(origin, None)
            self._entries[origin] = entry
            return entry

    async def _load(self, origin: str) -> _Entry:
        now = self._clock()
        if self._cache is not None:
            stored = await asyncio.to_thread(self._cache.robots_get, origin)
            if stored is not None and now - stored[0] < TTL:
                return _entry(*stored)
        status, body = await self._fetch(origin)
        if self._cache is not None:
            try:
                await asyncio.to_thread(
                    self._cache.robots_put, origin, fetched_at=now, status=status, body=body
                )
            except Exception as exc:  # the database may be down: the copy in memory serves
                log.warning("could not store the robots.txt of %s: %s", origin, exc)
        return _entry(now, status, body)

    async def _fetch(self, origin: str) -> tuple[int, str]:
        url = f"{origin}/robots.txt"
        self.fetches += 1
        try:
            async with (
                httpx.AsyncClient(
                    # decoded here as the Fetcher does (worker/inflate.py): httpx would inflate
                    # `gzip, gzip` layer by layer, a whole chunk at a time, before MAX_BYTES
                    headers={"User-Agent": self._http.user_agent, "Accept-Encoding": ACCEPT},
                    timeout=httpx.Timeout(self._http.timeout),
                    follow_redirects=True,
                    max_redirects=MAX_REDIRECTS,
                    # ours by default: no CA bundle loaded for an http:// origin (see
                    # worker.transport); the client closes it when done
                    transport=self._transport or make_transport(httpx.Limits(max_connections=1)),
                ) as client,
                asyncio.timeout(self._http.timeout),
                client.stream("GET", url) as response,
            ):
                status = response.status_code
                chunks: list[bytes] = []
                if 200 <= status < 300:
                    chunks = await _read_capped(response)
        except DecodeError as exc:  # unreadable is unreachable (RFC 9309 2.3.1.4): try later
            raise RobotsUnavailable(url, f"robots.txt cannot be read ({exc}): try later") from None
        except (TimeoutError, httpx.HTTPError) as exc:
            reason = type(exc).__name__ if isinstance(exc, httpx.HTTPError) else "timed out"
            raise RobotsUnavailable(
                url, f"robots.txt did not answer ({reason}): try later"
            ) from None
        if status >= 500 or status == 429:
            raise RobotsUnavailable(url, f"robots.txt answered HTTP {status}: try later")
        body = b"".join(chunks)[:MAX_BYTES].decode("utf-8", errors="replace")
        log.info("robots.txt of %s: HTTP %d, %d byte(s)", redact_url(origin), status, len(body))
        return status, body if 200 <= status < 300 else ""


async def _read_capped(response: httpx.Response) -> list[bytes]:
    """The body decoded (one content-encoding layer) up to MAX_BYTES: at most MAX_BYTES plus one
    decoded piece is held, the rest is neither read nor inflated."""
    decoder = decoder_for(response.headers.get("Content-Encoding"))
    chunks: list[bytes] = []
    size = 0

    def keep(pieces: Iterator[bytes]) -> bool:
        nonlocal size
        for piece in pieces:
            chunks.append(piece)
            size += len(piece)
            if size >= MAX_BYTES:
                return False
        return True

    async for raw in response.aiter_raw():
        if not keep(decoder.feed(raw)):
            return chunks
    keep(decoder.finish())
    return chunks


def _entry(fetched_at: datetime, status: int, body: str) -> _Entry:
    # a redirect loop or 3xx left over counts as "no robots.txt" as a 4xx does (RFC 9309 2.3.1.2)
    rules = Protego.parse(body) if 200 <= status < 300 else None
    return _Entry(fetched_at, status, rules)
