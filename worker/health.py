"""Health and metrics: a small HTTP listener serving /healthz (JSON) and /metrics (Prometheus).

Off by default; `[http_status] port = 9187` turns it on. /healthz answers 200 while the scheduler
runs and the database answers, else 503, with each source's last pass, success and error;
`/healthz?strict=1` also answers 503 while a source's last pass failed. It speaks just enough HTTP/1.1 for
probes and scrapers (GET, one request per connection) on asyncio streams, with a read deadline
and a request-size cap, so it needs no web framework.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from worker.daemon import Daemon
    from worker.notify import DeliveryReport
    from worker.pipeline import PassReport

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
        self.config_reloads = Counter(
            "worker_config_reloads", "Config reloads by outcome", ["outcome"], registry=r
        )

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
        if c.walk_missing is not None:
            self.walk_missing.labels(source=report.source).set(c.walk_missing)

    def observe_delivery(self, report: DeliveryReport) -> None:
        for channel, counts in report.by_channel.items():
            self.alerts_sent.labels(channel=channel).inc(counts.get("sent", 0))
            failed = counts.get("failed", 0) + counts.get("retrying", 0)
            self.alerts_failed.labels(channel=channel).inc(failed)

    def render(self) -> bytes:
        return generate_latest(self.registry)


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    def __init__(self, daemon: Daemon, *, host: str, port: int) -> None:
        self.daemon = daemon
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sockets = list(self._server.sockets)
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = "GET"
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > 8192:
                raise ValueError("request too large")
            method, target, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            path, _, query = target.partition("?")
            status, content_type, body = await self._route(
                method, path, parse_qs(query, keep_blank_values=True)
            )
        except (TimeoutError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        except Exception:
            log.exception("health endpoint failed")
            status, content_type, body = 503, "text/plain", b"error\n"
        header = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        try:
            writer.write(header + (body if method != "HEAD" else b""))
            await writer.drain()
        except ConnectionError:  # the client went away
            pass
        finally:
            writer.close()

    async def _route(
        self, method: str, path: str, query: dict[str, list[str]]
    ) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/healthz":
            status: dict[str, Any] = await self.daemon.status()
            healthy = status["status"] == "ok"
            if query.get("strict", ["0"])[-1].lower() not in ("0", "false", "no"):
                healthy = healthy and not status["failing_sources"]
            code = 200 if healthy else 503
            return code, "application/json", json.dumps(status, indent=2).encode() + b"\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, self.daemon.metrics.render()
        return 404, "text/plain", b"not found\n"
