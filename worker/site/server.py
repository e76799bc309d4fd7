"""The HTTP side of the local news site: a threaded server on 127.0.0.1, injected faults
(`fail()`/`heal()`), hooks run when a request arrives (`on_request()`: change the site while a
crawler is paging), a delay on every answer (`set_delay()`) and the log of request targets.

As WordPress behind a cache does, every 200 page carries an `ETag` (the body's hash) and a
`Last-Modified` (when that body was first served) and a conditional request whose validator
still holds gets `304 Not Modified` (`conditional = False` turns it off; `not_modified` logs
them). `/robots.txt` is logged apart (`robots_requests`, not `requests`), can be replaced
(`set_robots(text, status)`), and faults reach it only when their `paths` names it.

`SiteServer` serves whatever its subclass answers in `_respond(target)`.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["Response", "SiteServer"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Fault:
    status: int
    remaining: int | None  # None: until heal()
    paths: str | None  # substring of the request path (with query); None: every path
    retry_after: float | None
    page: int | None = None  # only this listing page number (1 = the first page)


@dataclass(slots=True)
class Hook:
    action: Callable[[str], object]  # called with the request target before it is answered
    remaining: int | None  # None: until clear_hooks()
    paths: str | None
    page: int | None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], site: SiteServer) -> None:
        self.site = site
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    timeout = 15  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr log."""

    def setup(self) -> None:
        super().setup()
        self.server.site._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.site._track(self.connection, open_=False)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        try:
            site = self.server.site
            response = site._handle(self.path)
            if site.conditional and response.status == 200:
                response = site._validated(self.path, response, self.headers)
        except Exception:  # a bug in the test site must not hang the client
            log.exception("test site failed to answer %s", self.path)
            response = Response(500, b"internal error", "text/plain; charset=UTF-8")
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(response.body)
        except OSError:  # client gone, or the site stopped mid-answer
            self.close_connection = True


class SiteServer:
    """Serves `_respond(target)` over HTTP from a thread. Thread-safe."""

    def __init__(self, *, host: str, port: int) -> None:
        self.host = host
        self._port = port
        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._hooks: list[Hook] = []
        self._delay = 0.0
        self._base: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self.requests: list[str] = []  # request targets (path and query), in arrival order
        self.robots_requests: list[str] = []  # /robots.txt requests, apart from `requests`
        self.not_modified: list[str] = []  # targets answered 304 Not Modified
        self.conditional = True  # ETag / Last-Modified / 304 on every 200 page
        self._robots: Response | None = None  # set_robots(): replaces the subclass's answer
        self._modified: dict[str, tuple[str, float]] = {}  # target -> (ETag, first served)

    def _respond(self, target: str) -> Response:
        """The answer to a request for `target` (path and query), when no fault applies."""
        raise NotImplementedError

    def _base_changed(self) -> None:
        """Called under the lock when `start()` serves on another base URL than before."""

    def _page_of(self, target: str) -> int | None:
        """The listing page number `target` asks for (None: not a listing page)."""
        return None

    def _matches(self, target: str, paths: str | None, page: int | None) -> bool:
        if paths is not None and paths not in target:
            return False
        return page is None or self._page_of(target) == page

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving (idempotent); return the base URL `http://127.0.0.1:PORT`.

        After `stop()`, `start()` serves again on the same port (a site that went down and
        came back).
        """
        with self._lock:
            if self._server is not None:
                assert self._base is not None
                return self._base
            self._stopping.clear()
            server = _Server((self.host, self._port), self)
            self._port = server.server_address[1]
            base = f"http://{self.host}:{self._port}"
            if base != self._base:
                self._base_changed()
            self._base = base
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"news-site-{self._port}",
                daemon=True,
            )
            self._thread.start()
            return base

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            conns = list(self._conns)
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base is None:
            raise RuntimeError("the site is not started: call start() first")
        return self._base

    # --- faults and observation -----------------------------------------------------------

    def fail(
        self,
        status: int = 503,
        *,
        count: int | None = None,
        paths: str | None = None,
        retry_after: float | None = None,
        page: int | None = None,
    ) -> None:
        """Answer `status` to the next `count` requests (None: until `heal()`) whose target
        (path and query) contains `paths` (None: every request) and, with `page`, that ask for
        that listing page (`page=1` is the first page, which no path substring singles out);
        optional Retry-After header."""
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for 'until heal()')")
        with self._lock:
            self._faults.append(Fault(status, count, paths, retry_after, page))

    def heal(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def on_request(
        self,
        action: Callable[[str], object],
        *,
        paths: str | None = None,
        page: int | None = None,
        count: int | None = 1,
    ) -> None:
        """Call `action(target)` when one of the next `count` requests (None: every one until
        `clear_hooks()`) matching `paths` / `page` (as in `fail()`) arrives, before it is
        answered: e.g. delete articles while a crawler reads page 4. It runs in the request's
        thread, outside the site's lock, so it may publish, delete or wait on an event."""
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for 'until clear_hooks()')")
        with self._lock:
            self._hooks.append(Hook(action, count, paths, page))

    def clear_hooks(self) -> None:
        with self._lock:
            self._hooks.clear()

    def set_delay(self, seconds: float) -> None:
        """Delay every answer by `seconds` (0: none); stop() cuts pending delays short."""
        if seconds < 0:
            raise ValueError("delay cannot be negative")
        self._delay = seconds

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.robots_requests.clear()
            self.not_modified.clear()

    def set_robots(self, text: str | None, status: int = 200) -> None:
        """Serve `text` as /robots.txt with `status` (None: the subclass's own answer)."""
        with self._lock:
            self._robots = (
                None
                if text is None
                else Response(status, text.encode(), "text/plain; charset=UTF-8")
            )

    # --- internals ----------------------------------------------------------------------------

    def _track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _handle(self, target: str) -> Response:
        if target.partition("?")[0] == "/robots.txt":
            return self._robots_answer(target)
        with self._lock:
            self.requests.append(target)
            hooks = self._take(self._hooks, target)
        for hook in hooks:
            hook.action(target)
        if self._delay > 0:
            self._stopping.wait(self._delay)
        fault = self._take_fault(target)
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            body = f"<html><body><h1>Error {fault.status}</h1></body></html>".encode()
            return Response(fault.status, body, headers=headers)
        return self._respond(target)

    def _robots_answer(self, target: str) -> Response:
        with self._lock:
            self.robots_requests.append(target)
            faults = [f for f in self._faults if f.paths is not None and "robots" in f.paths]
            override = self._robots
        if faults:
            fault = self._take_fault(target)
            if fault is not None:
                return Response(fault.status, b"error", "text/plain; charset=UTF-8")
        return override if override is not None else self._respond(target)

    def _validated(self, target: str, response: Response, request: Any) -> Response:
        """Add ETag / Last-Modified; answer 304 when the request's validator still holds
        (If-None-Match wins over If-Modified-Since, as RFC 9110 says)."""
        etag = '"' + hashlib.sha256(response.body).hexdigest()[:20] + '"'
        with self._lock:
            known = self._modified.get(target)
            if known is None or known[0] != etag:
                known = self._modified[target] = (etag, float(int(time.time())))
        modified = known[1]
        validators = {"ETag": etag, "Last-Modified": email.utils.formatdate(modified, usegmt=True)}
        response.headers.update(validators)
        match = request.get("If-None-Match") if request is not None else None
        since = request.get("If-Modified-Since") if request is not None else None
        fresh = False
        if match is not None:
            fresh = match.strip() == "*" or etag in [m.strip() for m in match.split(",")]
        elif since is not None:
            try:
                fresh = email.utils.parsedate_to_datetime(since).timestamp() >= modified
            except (TypeError, ValueError, IndexError):
                fresh = False
        if not fresh:
            return response
        with self._lock:
            self.not_modified.append(target)
        return Response(304, b"", response.content_type, headers=validators)

    def _take_fault(self, target: str) -> Fault | None:
        with self._lock:
            faults = self._take(self._faults, target, first=True)
        return faults[0] if faults else None

    def _take(self, entries: list[Any], target: str, *, first: bool = False) -> list[Any]:
        """The entries (faults or hooks) matching `target`, counted down (under the lock)."""
        taken = []
        for entry in list(entries):
            if not self._matches(target, entry.paths, entry.page):
                continue
            if entry.remaining is not None:
                entry.remaining -= 1
                if entry.remaining <= 0:
                    entries.remove(entry)
            taken.append(entry)
            if first:
                break
        return taken
