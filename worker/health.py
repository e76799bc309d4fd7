"""Health and metrics: a small HTTP listener serving /healthz (JSON) and /metrics (Prometheus).

Off by default; `[http_status] port = 8797` turns it on. /healthz answers 200 while the scheduler
runs and the database answers, else 503, with a summary (compact JSON): the failing sources,
counts of sources by state, open incidents and the outcome of the last config reload;
`/healthz?detail=sources` (or `/healthz/sources`) adds each source's last pass, success and
error. `/healthz?strict=1` also answers 503 while a source's last pass failed or the last reload
was refused (the daemon runs on an older config than the file). The answer is composed from a
snapshot kept in memory (worker/daemon/snapshot.py): to report more, add a key there; a check
that should fail strict mode goes in `strict_problems()` below. It speaks just enough HTTP/1.1
for probes and scrapers (GET, one request per connection) from http.server, in threads of its
own, so it needs no web framework and never waits on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# No `*_created` series beside every counter and histogram: they double the series count, and
# Prometheus reads the start time from the counter itself (process-wide, set before any metric).
disable_created_metrics()

if TYPE_CHECKING:
    from worker.notify import DeliveryReport
    from worker.report import PassReport
    from worker.store import Store

log = logging.getLogger(__name__)


class Metrics:
    """The daemon's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter(
            "worker_passes", "Source passes by outcome", ["source", "outcome"], registry=r
        )
        self.pages = Counter(
            "worker_pages_fetched", "Listing pages fetched", ["source"], registry=r
        )
        self.articles = Counter(
            "worker_articles_new", "Articles new for a source", ["source"], registry=r
        )
        self.alerts_queued = Counter(
            "worker_alerts_queued", "Alert deliveries queued", ["source"], registry=r
        )
        self.alerts_sent = Counter(
            "worker_alerts_sent", "Alert deliveries sent", ["channel"], registry=r
        )
        self.alerts_failed = Counter(
            "worker_alerts_failed",
            "Failed delivery attempts (retrying or given up)",
            ["channel"],
            registry=r,
        )
        self.pass_duration = Histogram(
            "worker_pass_duration_seconds",
            "Duration of a source pass",
            ["source"],
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.last_success = Gauge(
            "worker_source_last_success_timestamp_seconds",
            "When a source's last successful pass ended (Unix time)",
            ["source"],
            registry=r,
        )
        self.source_up = Gauge(
            "worker_source_up",
            "1 when a source's last pass succeeded, else 0",
            ["source"],
            registry=r,
        )
        self.walk_missing = Gauge(
            "worker_source_walk_missing_articles",
            "Listed articles (by the counter) the last walk of the whole listing did not see",
            ["source"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "worker_source_breaker_open",
            "1 while a source's breaker is open (its passes spaced out after failures), else 0",
            ["source"],
            registry=r,
        )
        self.failures_in_row = Gauge(
            "worker_source_failures_in_row",
            "A source's failed passes in a row (0 after a success)",
            ["source"],
            registry=r,
        )
        self.config_reloads = Counter(
            "worker_config_reloads", "Config reloads by outcome", ["outcome"], registry=r
        )
        # as Prometheus and Alertmanager name theirs, so the usual alert rule fits
        self.config_reload_ok = Gauge(
            "worker_config_last_reload_successful",
            "1 when the last config reload was applied (or none was tried), 0 when refused",
            registry=r,
        )
        self.config_reload_time = Gauge(
            "worker_config_last_reload_success_timestamp_seconds",
            "When the config in use was loaded (Unix time)",
            registry=r,
        )
        self.config_reload_ok.set(1)
        self.config_reload_time.set_to_current_time()
        self.alerts_pending = Gauge(
            "worker_alerts_pending",
            "Alert deliveries not sent yet (due now or waiting for a retry); NaN when the "
            "database does not answer",
            registry=r,
        )
        self.articles_stored = Gauge(
            "worker_articles_stored", "Articles in the database", registry=r
        )
        self.lateness = Histogram(
            "worker_pass_start_lateness_seconds",
            "How late a pass started after it was due (its scheduled run, jitter included; in a "
            "fleet, its source's due time)",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.replica = Gauge(
            "worker_replica_info",
            "1, labelled with this process's replica id ([fleet] replica, or host:pid)",
            ["replica"],
            registry=r,
        )
        # what /healthz says about the last reload
        self.last_reload: dict[str, Any] = {"reload": None, "at": None, "problems": []}

    def observe_reload(self, applied: bool, problems: Sequence[str] = ()) -> None:
        """A config reload was applied, or refused for `problems` (as `worker check` words them)."""
        self.config_reloads.labels(outcome="applied" if applied else "invalid").inc()
        self.config_reload_ok.set(1 if applied else 0)
        if applied:
            self.config_reload_time.set_to_current_time()
        self.last_reload = {
            "reload": "applied" if applied else "refused",
            "at": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="seconds"),
            "problems": list(problems)[:20],
        }

    def observe_queue(self, counts: dict[str, int] | None) -> None:
        """The store's counts (Store.counts()), or None when the database did not answer."""
        if counts is None:
            self.alerts_pending.set(math.nan)
            self.articles_stored.set(math.nan)
        else:
            self.alerts_pending.set(counts.get("pending", 0))
            self.articles_stored.set(counts.get("articles", 0))

    def observe_pass(self, report: PassReport) -> None:
        c = report.crawl
        self.passes.labels(source=report.source, outcome="ok" if report.ok else "error").inc()
        self.pages.labels(source=report.source).inc(c.pages)
        self.articles.labels(source=report.source).inc(c.new)
        self.alerts_queued.labels(source=report.source).inc(c.alerts)
        self.pass_duration.labels(source=report.source).observe(c.duration)
        self.source_up.labels(source=report.source).set(1 if report.ok else 0)
        if report.ok:
            self.last_success.labels(source=report.source).set_to_current_time()
        self.breaker_open.labels(source=report.source).set(report.held_until is not None)
        self.failures_in_row.labels(source=report.source).set(report.failures)

    def observe_walks(self, missing: dict[str, int]) -> None:
        """The last complete walk of each source, from the database: after a restart, or when
        another replica walked it, the gauge says what the database says (not only what this
        process's last pass saw); a source no longer configured drops out."""
        self.walk_missing.clear()
        for source, count in missing.items():
            self.walk_missing.labels(source=source).set(count)

    def observe_delivery(self, report: DeliveryReport) -> None:
        for channel, counts in report.by_channel.items():
            self.alerts_sent.labels(channel=channel).inc(counts.get("sent", 0))
            failed = counts.get("failed", 0) + counts.get("retrying", 0)
            self.alerts_failed.labels(channel=channel).inc(failed)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def strict_problems(status: dict[str, Any]) -> list[str]:
    """Why `/healthz?strict=1` answers 503 though the daemon runs (empty: it does not)."""
    problems = [f"source {name} failing" for name in status.get("failing_sources", ())]
    if status.get("config", {}).get("reload") == "refused":
        problems.append("the last config reload was refused")
    return problems


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


Status = Callable[[bool], dict[str, Any]]  # /healthz (JSON-able); True: with each source
MetricsText = Callable[[], bytes]  # what /metrics answers (Prometheus text)
Feed = Callable[[str], tuple[int, str, bytes]]  # `/feeds/NAME`: (code, type, body)


class HealthServer:
    """The listener, in a thread of its own (one more per request): a busy or blocked event
    loop never delays an answer. What it answers comes from the functions it is given, called
    in its threads: they must not need the loop (/healthz reads a snapshot kept in memory)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        status: Status,
        metrics: MetricsText,
        feed: Feed | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.status = status
        self.metrics = metrics
        self.feed = feed
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    async def start(self) -> None:
        server_class = _Server6 if ":" in self.host else _Server
        self._server = server = server_class((self.host, self.port), _Handler)
        server.health = self
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="health", daemon=True
        )
        self._thread.start()
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()

    def route(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path in ("/healthz", "/healthz/sources"):
            detail = path == "/healthz/sources" or "sources" in query.get("detail", [])
            status = self.status(detail)
            healthy = status["status"] == "ok"
            if query.get("strict", ["0"])[-1].lower() not in ("0", "false", "no"):
                healthy = healthy and not strict_problems(status)
            code = 200 if healthy else 503
            body = json.dumps(status, separators=(",", ":")).encode() + b"\n"
            return code, "application/json", body
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.metrics()
        if path.startswith("/feeds/") and self.feed is not None:
            return self.feed(path.removeprefix("/feeds/"))
        return 404, "text/plain", b"not found\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    health: HealthServer


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    """Just enough HTTP/1.1 for probes and scrapers: GET or HEAD, one request per connection,
    a read deadline and the request-size cap of http.server."""

    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 5  # seconds to read the request

    def _answer(self) -> None:
        path, _, query = self.path.partition("?")
        try:
            code, content_type, body = self.server.health.route(
                self.command, path, parse_qs(query, keep_blank_values=True)
            )
        except Exception:
            log.exception("health endpoint failed")
            code, content_type, body = 503, "text/plain", b"error\n"
        self.close_connection = True
        try:
            self.send_response_only(code, _REASONS.get(code, "Error"))
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:  # the client went away
            pass

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return None  # no line per probe


def metrics_text(metrics: Metrics, store: Store) -> bytes:
    """/metrics: the daemon's metrics, with the queue's counts read from the store now (in the
    listener's thread)."""
    from worker.store import StoreError

    try:
        counts: dict[str, int] | None = store.counts()
    except StoreError:
        counts = None
    metrics.observe_queue(counts)
    return metrics.render()


def feed_page(store: Store, watchlists: Collection[str], name: str) -> tuple[int, str, bytes]:
    """`/feeds/WATCHLIST.atom` and `/feeds/WATCHLIST.json`: the watchlist's last matches (read
    in the listener's thread)."""
    from urllib.parse import unquote

    from worker.feeds import FEED_SIZE, FORMATS, feed
    from worker.store import StoreError

    watchlist, _, fmt = unquote(name).rpartition(".")
    if fmt not in FORMATS or watchlist not in watchlists:
        return 404, "text/plain", b"no such feed\n"
    try:
        rows = store.list_matches(watchlist, limit=FEED_SIZE)
    except StoreError:
        return 503, "text/plain", b"the database cannot be read\n"
    return 200, FORMATS[fmt], feed(watchlist, rows, fmt)


DEFAULT_PORT = 8797  # the documented port: outside the exporters' 9100-9999 range (see README)


def probe(config_path: str | None = None, *, timeout: float = 4.0) -> int:
    """`python -m worker.health`: GET /healthz of the daemon the config describes; exit 0 on 200.

    The container's HEALTHCHECK. With `[http_status] port = 0` there is nothing to ask: it says
    so and exits 0 (the container is not reported unhealthy for a listener it never had).
    """
    import sys
    import urllib.error
    import urllib.request

    from worker.config import ConfigError, default_config_path, load_config

    path = config_path or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{exc.path}: {exc.problems[0] if exc.problems else 'invalid'}", file=sys.stderr)
        return 1
    status = config.http_status
    if not status.port:
        print(f"{path}: [http_status] port is 0: no health listener to probe")
        return 0
    host = "127.0.0.1" if status.host in ("0.0.0.0", "", "::") else status.host  # noqa: S104
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{status.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"{url}: HTTP {exc.code}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: {body.get('status')}, failing sources: {body.get('failing_sources') or 'none'}")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised as a subprocess
    import sys

    raise SystemExit(probe(sys.argv[1] if len(sys.argv) > 1 else None))
