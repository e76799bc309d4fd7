"""Fetch stage: GET an HTML page politely and safely, through one shared httpx transport.

Every HTTP request has a total deadline (connect + headers + whole body, `HttpConfig.timeout`),
the body is decoded here (one content-encoding layer, worker/inflate.py) and capped as it
inflates (`max_bytes`), requests to one host start at least `min_delay` apart, at most
`concurrency` requests are in flight and `per_host` to one host, handed out fairly
(worker/slots.py), and connection errors, timeouts, 5xx and 429 are retried (`retries` extra
attempts) with exponential backoff and jitter, honouring a capped Retry-After. Inside
`source_pass(name)` requests belong to that source's pass: its deadline (`pass_timeout`) and,
with `cookies = true`, its own capped jar; nothing else keeps a cookie. Everything that goes wrong ends as a `FetchError` (`NotFound` for 404/410)
whose URL has no credentials.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import collections
import contextlib
import contextvars
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
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
from worker.inflate import DecodeError, accept_encoding, decoder_for
from worker.slots import Owner, Slots
from worker.transport import make_transport

log = logging.getLogger(__name__)

ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# `get_html(url, types=...)`: what a feed (RSS, Atom, JSON Feed) or a JSON API may be served as
FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/xml",
        "text/xml",
        "application/feed+json",
        "application/json",
    }
)
JSON_TYPES = frozenset({"application/json"})
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
BACKOFF_INITIAL = 1.0  # seconds before the first retry (then doubling, plus up to 1s of jitter)
BACKOFF_MAX = 30.0
RETRY_AFTER_MAX = 60.0  # a longer Retry-After gives up at once instead of sleeping
SNIFF_BYTES = 2048  # where a <meta charset> is looked for
UTF8_BOM = codecs.BOM_UTF8
MAX_COOKIES = 50  # cookies one source pass keeps (with `cookies = true`); past it, none
MAX_COOKIE_BYTES = 8192  # their names and values together; past it, none


class _Pass:
    """One source's pass, as the fetcher sees it: its share of the slots, its deadline and
    (with `cookies = true`) its own capped cookie jar, dropped when the pass ends."""

    def __init__(self, name: str, deadline: float | None, budget: float | None) -> None:
        self.owner = Owner(name)
        self.deadline = deadline  # time.monotonic() after which its requests fail
        self.budget = budget
        self.cookies = httpx.Cookies()


_CURRENT_PASS: contextvars.ContextVar[_Pass | None] = contextvars.ContextVar(
    "worker_fetch_pass", default=None
)
CRAWL_DELAY_MAX = 60.0  # seconds: a longer Crawl-delay is honoured as one minute per request


class FetchError(Exception):
    """A page could not be fetched. `url` has no credentials; `reason` is short text."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        self.url = redact_url(url)
        self.reason = reason
        self.status = status  # the HTTP status of an error answer (400, 403...), when it was one
        super().__init__(f"{self.url}: {reason}")

    def __reduce__(self) -> tuple[type[FetchError], tuple[str, str, int | None]]:
        return (type(self), (self.url, self.reason, self.status))


class NotFound(FetchError):
    """The server answered 404 or 410 (never retried)."""


class RedirectRefused(FetchError):
    """A redirect the caller's `follow` check refused (never followed, never retried)."""


class _Retryable(FetchError):
    """A failure worth another attempt; `retry_after` is the server's wish, in seconds."""

    def __init__(self, url: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(url, reason)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Page:
    url: str  # final URL after redirects (without user:password@)
    status: int
    text: str  # decoded HTML (or the feed's / JSON's text, see `get_html(types=...)`; "" for a 304)
    # the answer's headers, names lower-case (not compared: the page is its URL, status, text)
    headers: dict[str, str] = field(default_factory=dict, compare=False)
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


def decode_html(body: bytes | bytearray, content_type: str | None) -> str:
    """Decode with the header charset, else a <meta> one in the first 2 KB, else UTF-8; strictly.

    A UTF-8 byte order mark wins over both (as browsers do) and is dropped. Charset labels are
    resolved as the WHATWG Encoding Standard says (w3lib): latin-1 is windows-1252, utf-7 is
    refused. Raises UnicodeDecodeError when the bytes are not valid in that charset.
    """
    if body.startswith(UTF8_BOM):
        return body[len(UTF8_BOM) :].decode("utf-8")
    encoding = (
        http_content_type_encoding(content_type)
        or html_body_declared_encoding(bytes(body[:SNIFF_BYTES]))
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
        # httpx's models and transport, without its AsyncClient: redirects, cookies, decoding
        # and timeouts are all done here, and the client's own layer around each request (its
        # auth and redirect generators, and above all its cookie jar parsing every answer's
        # headers into an email.Message to keep no cookie) was 13 % of a page's fetch CPU
        self._transport = transport if transport is not None else make_transport(limits)
        self._headers = httpx.Headers(
            {
                "Accept": ACCEPT,
                # decoded here, not by httpx: one layer at most, counted as it inflates
                "Accept-Encoding": accept_encoding(),
                "Connection": "keep-alive",
                "User-Agent": http.user_agent,
            }
        )
        self._timeouts = httpx.Timeout(http.timeout).as_dict()
        self._closed = False
        self._slots = Slots(http.concurrency, http.per_host, http.min_delay)
        self._shared = _Pass("", None, None)  # requests made outside a source pass
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
        if not self._closed:
            self._closed = True
            await self._transport.aclose()

    @contextlib.contextmanager
    def source_pass(self, name: str) -> Iterator[None]:
        """Requests made inside (tasks started inside included) belong to source `name`'s
        pass: they share its slots fairly with other passes, fail once the pass has run for
        `pass_timeout`, and keep cookies only for this pass (when `cookies = true`)."""
        budget = self._http.pass_timeout
        token = _CURRENT_PASS.set(_Pass(name, time.monotonic() + budget, budget))
        try:
            yield
        finally:
            _CURRENT_PASS.reset(token)

    async def get_html(
        self,
        url: str,
        *,
        types: frozenset[str] = HTML_TYPES,
        follow: Callable[[str], Awaitable[bool]] | None = None,
        validators: tuple[str | None, str | None] | None = None,
    ) -> Page:
        """GET `url` (following up to 5 http(s) redirects) and return the decoded HTML page.

        `types`: the media types accepted (and asked for in Accept), e.g. FEED_TYPES or
        JSON_TYPES; the same caps, deadlines, delays and retries apply to every type.
        `follow(target)`: asked before each redirect is followed; False raises RedirectRefused.

        With `validators` (ETag, Last-Modified of an earlier answer) the request is conditional:
        a 304 Not Modified comes back as a Page with status 304 and no text.
        Raises NotFound for 404/410 and FetchError for anything else that goes wrong, after
        the retries the config allows for transient failures.
        """
        attempts = self._http.retries + 1
        headers = _conditional(validators)
        try:
            try:  # outside tenacity: its set-up was 8 % of the CPU of a fetch that succeeds
                return await self._attempt(url, types, follow, headers)
            except _Retryable as exc:
                if attempts == 1:
                    raise
                first: _Retryable = exc
            retrying = AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=self._backoff,
                retry=retry_if_exception_type(_Retryable),
                sleep=self._sleep,
                before_sleep=self._log_retry,
                reraise=True,
            )
            calls = 0

            async def again() -> Page:
                """The first attempt's failure, then new attempts, all counted by tenacity."""
                nonlocal calls
                calls += 1
                if calls == 1:
                    raise first
                return await self._attempt(url, types, follow, headers)

            page: Page = await retrying(again)
        except _Retryable as exc:
            reason = (
                exc.reason if attempts == 1 else f"{exc.reason} (gave up after {attempts} attempts)"
            )
            raise FetchError(url, reason) from exc
        return page

    # --- one attempt: the request and its redirects ------------------------------------------

    async def _attempt(
        self,
        url: str,
        types: frozenset[str] = HTML_TYPES,
        follow: Callable[[str], Awaitable[bool]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Page:
        try:
            target = httpx.URL(url)
            host = target.host  # decodes an xn-- label: idna.IDNAError (a ValueError) when bad
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchError(url, f"invalid URL ({exc})") from None
        if target.scheme not in ("http", "https") or not host:
            raise FetchError(url, "not an http(s) URL")
        for _ in range(MAX_REDIRECTS + 1):
            result = await self._request(url, target, types, headers or {})
            if isinstance(result, Page):
                return result
            if follow is not None and not await follow(str(result)):
                shown = redact_url(str(result))[:200]
                raise RedirectRefused(url, f"redirect to {shown} refused")
            target = result
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")

    async def _request(
        self,
        url: str,
        target: httpx.URL,
        types: frozenset[str] = HTML_TYPES,
        headers: dict[str, str] | None = None,
    ) -> Page | httpx.URL:
        """One HTTP request under the total deadline: a Page, or the URL a redirect points to."""
        current = _CURRENT_PASS.get() or self._shared
        # the slots are per host and port: two servers on one address are two hosts
        host = f"{target.host}:{target.port}" if target.port else target.host
        # robots.txt (worker.robots): a FetchError when disallowed, else its Crawl-delay
        asked = await self.gate.admit(target) if self.gate is not None else 0.0
        if asked > 0:
            self._slots.set_delay(host, min(asked, CRAWL_DELAY_MAX))
        ran_out = f"the pass ran out of time ({current.budget or 0:g}s)"
        # waiting for a slot counts against the pass, not against the request's own deadline
        wait = None if current.deadline is None else current.deadline - time.monotonic()
        if wait is not None and wait <= 0:
            raise FetchError(url, ran_out)
        try:
            async with asyncio.timeout(wait):
                started = await self._slots.acquire(host, current.owner)
        except TimeoutError:
            raise FetchError(url, ran_out) from None
        timeout = self._http.timeout
        if current.deadline is not None:
            timeout = max(0.001, min(timeout, current.deadline - time.monotonic()))
        try:
            self.requests += 1
            self.requests_by_host[target.host] += 1
            async with asyncio.timeout(timeout):
                sent = self._headers.copy()
                if headers:  # the conditional GET's validators
                    sent.update(headers)
                if types is not HTML_TYPES:
                    sent["Accept"] = _accept(types)
                if self._closed:
                    raise RuntimeError("the Fetcher is closed")
                request = httpx.Request(
                    "GET", target, headers=sent, extensions={"timeout": self._timeouts}
                )
                if target.username or target.password:  # as httpx's client does
                    request.headers["Authorization"] = _basic_auth(target)
                if self._http.cookies:
                    current.cookies.set_cookie_header(request)
                response = await self._transport.handle_async_request(request)
                response.request = request
                try:
                    if self._http.cookies:
                        self._keep_cookies(current, response)
                    return await self._read(url, response, types)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            if current.deadline is not None and time.monotonic() >= current.deadline:
                raise FetchError(url, ran_out) from None
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
            self._slots.release(host, current.owner, started)

    @staticmethod
    def _keep_cookies(current: _Pass, response: httpx.Response) -> None:
        """Keep the answer's cookies in the pass's own jar, unless that makes it too big (a
        site setting 200 cookies per answer made every later request get HTTP 431)."""
        jar = current.cookies
        jar.extract_cookies(response)
        size = sum(len(c.name) + len(c.value or "") for c in jar.jar)
        if len(jar.jar) > MAX_COOKIES or size > MAX_COOKIE_BYTES:
            log.debug(
                "%s: more than %d cookies or %d bytes: none kept",
                current.owner.name,
                MAX_COOKIES,
                MAX_COOKIE_BYTES,
            )
            jar.clear()

    async def _read(
        self, url: str, response: httpx.Response, types: frozenset[str] = HTML_TYPES
    ) -> Page | httpx.URL:
        status = response.status_code
        if status in REDIRECT_STATUSES:
            target = _redirect_target(url, response)
            await _drain(response)
            return target
        if status == 304:  # only a conditional request gets one
            await _drain(response)
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
            raise FetchError(url, f"HTTP {status}", status)

        content_type = response.headers.get("Content-Type", "").strip()
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type and media_type not in types:
            wanted = "HTML" if types is HTML_TYPES else "JSON" if types is JSON_TYPES else "a feed"
            raise FetchError(url, f"not {wanted} (content-type {media_type})")
        cap = self._http.max_bytes
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > cap:
            raise FetchError(url, f"response larger than {cap} bytes (Content-Length {declared})")

        try:
            decoder = decoder_for(response.headers.get("Content-Encoding"))
        except DecodeError as exc:
            raise FetchError(url, str(exc)) from None
        # at most the cap plus one decoded piece (64 KB) is held: each piece is counted as it
        # is inflated, before the next one is made
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                for piece in decoder.feed(chunk):
                    body += piece
                    if len(body) > cap:
                        raise FetchError(url, f"response larger than {cap} bytes")
            for piece in decoder.finish():
                body += piece
                if len(body) > cap:
                    raise FetchError(url, f"response larger than {cap} bytes")
        except DecodeError as exc:
            raise FetchError(url, f"cannot decompress the body ({exc})") from None
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
            headers={k.lower(): v for k, v in response.headers.items()},
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


async def _drain(response: httpx.Response) -> None:
    """Read the empty rest of an answer whose body is not wanted, so that httpcore keeps its
    connection: closed with the body unread (h11 not at the end of the message), the connection
    is closed too, and every quiet pass (a 304) paid for a new TCP connection (2,000 quiet
    passes: 1,000 connects; with the drain, 41 in all). A 304 has no body by definition, nor has
    a redirect that says `Content-Length: 0`: reading it waits for nothing. A redirect with a
    body keeps closing its connection (waiting for a body that may never come is worse)."""
    if response.status_code != 304 and response.headers.get("Content-Length", "").strip() != "0":
        return
    async for _ in response.aiter_raw():
        pass


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


def _basic_auth(url: httpx.URL) -> str:
    """The Authorization header for the user and password in `url` (percent-decoded)."""
    pair = f"{url.username}:{url.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


def _accept(types: frozenset[str]) -> str:
    return ", ".join(sorted(types)) + ", */*;q=0.5"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name
