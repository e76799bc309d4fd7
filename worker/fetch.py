"""Fetch stage: GET an HTML page politely and safely, through one shared httpx.AsyncClient.

Every HTTP request has a total deadline (connect + headers + whole body, `HttpConfig.timeout`),
the body is capped after decompression (`max_bytes`), requests to one host start at least
`min_delay` apart, at most `concurrency` requests are in flight, and connection errors, timeouts,
5xx and 429 are retried (`retries` extra attempts) with exponential backoff and jitter, honouring
a capped Retry-After. Everything that goes wrong ends as a `FetchError` (`NotFound` for 404/410)
whose URL has no credentials.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding

from worker.config import HttpConfig
from worker.transport import make_transport

log = logging.getLogger(__name__)

ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
BACKOFF_INITIAL = 1.0  # seconds before the first retry (then doubling, plus up to 1s of jitter)
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 60.0  # a longer Retry-After gives up at once instead of sleeping
SNIFF_BYTES = 2048  # where a <meta charset> is looked for
UTF8_BOM = codecs.BOM_UTF8
CRAWL_DELAY_MAX = 60.0  # seconds: a longer Crawl-delay is honoured as one minute per request


class FetchError(Exception):
    """A page could not be fetched. `url` has no credentials; `reason` is short text."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = redact_url(url)
        self.reason = reason
        super().__init__(f"{self.url}: {reason}")

    def __reduce__(self) -> tuple[type[FetchError], tuple[str, str]]:
        return (type(self), (self.url, self.reason))


class NotFound(FetchError):
    """The server answered 404 or 410 (never retried)."""


class _Retryable(FetchError):
    """A failure worth another attempt; `retry_after` is the server's wish, in seconds."""

    def __init__(self, url: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(url, reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Page:
    url: str  # final URL after redirects (without user:password@)
    status: int
    text: str  # decoded HTML ("" for a 304 Not Modified)
    etag: str | None = None  # the validators of the answer, for a conditional GET next time
    last_modified: str | None = None


class RequestGate(Protocol):
    """Asked before each request (worker.robots.Robots): raises a FetchError when `url` may not
    be fetched, else returns the least delay between requests to its host (seconds)."""

    async def admit(self, url: httpx.URL) -> float: ...


def redact_url(url: str) -> str:
    """The URL without `user:password@` (best effort on unparsable input)."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("@")[-1]
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _c1_fallback(exc: UnicodeError) -> tuple[str, int]:
    """WHATWG windows-1252 maps the five bytes cp1252 leaves undefined to C1 controls."""
    if isinstance(exc, UnicodeDecodeError):
        return "".join(chr(b) for b in exc.object[exc.start : exc.end]), exc.end
    raise exc


codecs.register_error("worker-whatwg-c1", _c1_fallback)


def decode_html(body: bytes, content_type: str | None) -> str:
    """Decode with the header charset, else a <meta> one in the first 2 KB, else UTF-8; strictly.

    A UTF-8 byte order mark wins over both (as browsers do) and is dropped. Charset labels are
    resolved as the WHATWG Encoding Standard says (w3lib): latin-1 is windows-1252, utf-7 is
    refused. Raises UnicodeDecodeError when the bytes are not valid in that charset.
    """
    if body.startswith(UTF8_BOM):
        return body[len(UTF8_BOM) :].decode("utf-8")
    encoding = (
        http_content_type_encoding(content_type)
        or html_body_declared_encoding(body[:SNIFF_BYTES])
        or "utf-8"
    )
    if encoding == "cp1252":
        return body.decode(encoding, errors="worker-whatwg-c1")
    return body.decode(encoding)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class _Host:
    __slots__ = ("lock", "next_start")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.next_start = 0.0  # time.monotonic() before which no request may start


class Fetcher:
    """Fetch HTML pages. Use as `async with Fetcher(config.http) as fetcher: ...`."""

    def __init__(
        self,
        http: HttpConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        gate: RequestGate | None = None,
    ) -> None:
        self._http = http
        self.gate = gate  # robots.txt: consulted before every request, redirects included
        self._sleep = sleep  # retry waits only; the per-host delay always waits for real
        limits = httpx.Limits(
            max_connections=http.concurrency, max_keepalive_connections=http.concurrency
        )
        self._client = httpx.AsyncClient(
            headers={"User-Agent": http.user_agent, "Accept": ACCEPT},
            timeout=httpx.Timeout(http.timeout),
            follow_redirects=False,  # followed by hand: each hop is checked, paced and counted
            transport=transport if transport is not None else make_transport(limits),
        )
        self._slots = asyncio.Semaphore(http.concurrency)
        self._hosts: dict[str, _Host] = {}
        self.requests = 0
        self.requests_by_host: collections.Counter[str] = collections.Counter()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_html(
        self, url: str, *, validators: tuple[str | None, str | None] | None = None
    ) -> Page:
        """GET `url` (following up to 5 http(s) redirects) and return the decoded HTML page.

        With `validators` (ETag, Last-Modified of an earlier answer) the request is conditional:
        a 304 Not Modified comes back as a Page with status 304 and no text.
        Raises NotFound for 404/410 and FetchError for anything else that goes wrong, after
        the retries the config allows for transient failures.
        """
        attempts = self._http.retries + 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=self._backoff,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            page: Page = await retrying(self._attempt, url, _conditional(validators))
        except _Retryable as exc:
            reason = (
                exc.reason if attempts == 1 else f"{exc.reason} (gave up after {attempts} attempts)"
            )
            raise FetchError(url, reason) from exc
        return page

    # --- one attempt: the request and its redirects ------------------------------------------

    async def _attempt(self, url: str, headers: dict[str, str]) -> Page:
        try:
            target = httpx.URL(url)
            host = target.host  # decodes an xn-- label: idna.IDNAError (a ValueError) when bad
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchError(url, f"invalid URL ({exc})") from None
        if target.scheme not in ("http", "https") or not host:
            raise FetchError(url, "not an http(s) URL")
        for _ in range(MAX_REDIRECTS + 1):
            result = await self._request(url, target, headers)
            if isinstance(result, Page):
                return result
            target = result
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")

    async def _request(
        self, url: str, target: httpx.URL, headers: dict[str, str]
    ) -> Page | httpx.URL:
        """One HTTP request under the total deadline: a Page, or the URL a redirect points to."""
        host = target.host
        asked = await self.gate.admit(target) if self.gate is not None else 0.0
        await self._take_turn(host, asked)
        try:
            self.requests += 1
            self.requests_by_host[host] += 1
            async with asyncio.timeout(self._http.timeout):
                async with self._client.stream("GET", target, headers=headers) as response:
                    return await self._read(url, response)
        except (TimeoutError, httpx.TimeoutException):
            raise _Retryable(url, f"timed out after {self._http.timeout:g}s") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(url, _describe(exc)) from None
        except httpx.DecodingError as exc:
            raise FetchError(url, f"cannot decompress the body ({_describe(exc)})") from None
        except httpx.HTTPError as exc:  # UnsupportedProtocol, LocalProtocolError, ProxyError...
            raise FetchError(url, _describe(exc)) from None
        except ValueError as exc:  # httpx reads a redirect's Location itself: idna.IDNAError
            raise FetchError(url, f"redirect to an invalid URL ({_describe(exc)})") from None
        finally:
            self._slots.release()

    async def _take_turn(self, host: str, asked: float = 0.0) -> None:
        """Wait for this host's next slot (min_delay, or the longer delay the host `asked` for
        in its robots.txt) and a concurrency slot; hold the latter."""
        delay = max(self._http.min_delay, min(asked, CRAWL_DELAY_MAX))
        if delay <= 0:
            await self._slots.acquire()
            return
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host()
        async with state.lock:
            wait = state.next_start - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._slots.acquire()
            state.next_start = time.monotonic() + delay

    async def _read(self, url: str, response: httpx.Response) -> Page | httpx.URL:
        status = response.status_code
        if status in REDIRECT_STATUSES:
            return _redirect_target(url, response)
        if status == 304:  # only a conditional request gets one
            return Page(url=redact_url(str(response.url)), status=status, text="")
        if status in (404, 410):
            raise NotFound(url, f"HTTP {status}")
        if status == 429 or status >= 500:
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None and retry_after > RETRY_AFTER_MAX:
                    raise FetchError(
                        url,
                        f"HTTP {status} with Retry-After {retry_after:.0f}s "
                        f"(more than the {RETRY_AFTER_MAX:.0f}s this worker waits)",
                    )
            raise _Retryable(url, f"HTTP {status}", retry_after)
        if not 200 <= status < 300:
            raise FetchError(url, f"HTTP {status}")

        content_type = response.headers.get("Content-Type", "").strip()
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type and media_type not in HTML_TYPES:
            raise FetchError(url, f"not HTML (content-type {media_type})")
        cap = self._http.max_bytes
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(url, f"response larger than {cap} bytes (Content-Length {declared})")

        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():  # decompressed as it arrives
            size += len(chunk)
            if size > cap:
                raise FetchError(url, f"response larger than {cap} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body.strip():
            raise FetchError(url, "empty body")
        try:
            text = decode_html(body, content_type or None)
        except UnicodeDecodeError as exc:
            raise FetchError(
                url, f"cannot decode the body as {exc.encoding} (byte offset {exc.start})"
            ) from None
        # No credentials in Page.url: links resolved against it end up stored and in alerts.
        return Page(
            url=redact_url(str(response.url)),
            status=status,
            text=text,
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )

    # --- retry policy ------------------------------------------------------------------------

    @staticmethod
    def _backoff(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after
        return _EXPONENTIAL(state)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, FetchError) else repr(exc)
        url = exc.url if isinstance(exc, FetchError) else "?"
        wait = state.upcoming_sleep
        log.warning(
            "fetch %s: attempt %d/%d failed (%s); retrying in %.1fs",
            url,
            state.attempt_number,
            self._http.retries + 1,
            reason,
            wait,
        )


_EXPONENTIAL = wait_exponential_jitter(initial=BACKOFF_INITIAL, max=BACKOFF_MAX, jitter=1)


def _conditional(validators: tuple[str | None, str | None] | None) -> dict[str, str]:
    """If-None-Match / If-Modified-Since headers from an earlier answer's validators."""
    headers: dict[str, str] = {}
    if validators is not None:
        etag, modified = validators
        # what a server sent back is only echoed when it is a valid header value
        if etag and etag.isascii() and etag.isprintable():
            headers["If-None-Match"] = etag
        if modified and modified.isascii() and modified.isprintable():
            headers["If-Modified-Since"] = modified
    return headers


def _redirect_target(url: str, response: httpx.Response) -> httpx.URL:
    location = response.headers.get("Location", "").strip()
    if not location:
        raise FetchError(url, f"HTTP {response.status_code} without a Location header")
    try:
        target = response.url.join(location)
        host = target.host  # decodes an xn-- label: idna.IDNAError (a ValueError) when bad
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError(url, f"redirect to an invalid URL ({exc})") from None
    if target.scheme not in ("http", "https") or not host:
        shown = redact_url(str(target))[:200]
        raise FetchError(url, f"redirect to a non-http(s) URL {shown}")
    return target


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name
