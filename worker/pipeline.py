"""One pass of the whole loop: crawl -> store (+ match, + queue alerts) -> deliver.

`Runtime` holds what lives as long as the process: the store, one Fetcher (one httpx client), the
notifier and the compiled matcher. `worker once` and the daemon both drive it. Failures are
contained here, at the job boundary: one source, one delivery round; each is logged with context
and reported, never raised to the caller.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from worker.article_pages import describe as describe_article_pages
from worker.article_pages import read_article_pages
from worker.config import Config, SourceConfig, WatchlistConfig
from worker.crawl import CrawlError, CrawlReport, Plan, crawl_source
from worker.fetch import Fetcher
from worker.match import Matcher
from worker.models import AlertPlan, Item
from worker.notify import (
    DeliveryReport,
    Notifier,
    Pacing,
    Rendering,
    check_channel_urls,
    deliver_due,
)
from worker.progress import PassProgress
from worker.report import PassReport
from worker.robots import Robots
from worker.store import Store

log = logging.getLogger(__name__)


def _fields_of(item: Item) -> dict[str, str]:
    """What the watchlists read of an item, field by field: a `summary:` term looks in the
    summary only, a `body:` term in the article's text (when the source gives it), an unscoped
    term in all three, and a phrase or NEAR never runs from one field into the next."""
    fields = {"title": item.title, "summary": item.summary}
    if item.body:
        fields["body"] = item.body
    return fields


def owner_id() -> str:
    """Identifies this process in delivery leases (host, pid and a random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Breaker:
    """A source's breaker: failed passes in a row and, while open, when the next may start."""

    failures: int = 0
    until: datetime | None = None


class ChannelConfigError(Exception):
    """Alerts are due but a channel URL is one apprise refuses: a config error, named by key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class OnceResult:
    passes: list[PassReport] = field(default_factory=list)
    delivery: DeliveryReport | None = None
    delivery_error: str | None = None
    channel_problems: list[str] = field(default_factory=list)  # nothing was sent: config error

    @property
    def ok(self) -> bool:
        delivery_ok = (
            self.delivery_error is None
            and not self.channel_problems
            and (
                self.delivery is None or (self.delivery.failed == 0 and self.delivery.retrying == 0)
            )
        )
        return all(p.ok for p in self.passes) and delivery_ok


class Routes:
    """Which watchlists a source's articles go to, and to which channels: computed once per
    config (a watchlist for all sources in one shared map, the others by source), each
    source's map merged on its first pass and kept."""

    def __init__(self, watchlists: Sequence[WatchlistConfig]) -> None:
        self.shared: dict[str, tuple[str, ...]] = {}
        self.by_source: dict[str, dict[str, tuple[str, ...]]] = {}
        for w in watchlists:
            if w.sources is None:
                self.shared[w.name] = tuple(w.channels)
            else:
                for source in w.sources:
                    self.by_source.setdefault(source, {})[w.name] = tuple(w.channels)
        self._merged: dict[str, dict[str, tuple[str, ...]]] = {}

    def of(self, source: str) -> dict[str, tuple[str, ...]]:
        """{watchlist: channels} of the watchlists that take `source`'s articles."""
        merged = self._merged.get(source)
        if merged is None:
            own = self.by_source.get(source)
            merged = {**self.shared, **own} if own else self.shared
            self._merged[source] = merged
        return merged


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a config's watchlists need, built ahead of a switch to it (`Runtime.prepare`)."""

    matcher: Matcher
    routes: Routes
    rendering: Rendering
    pacing: Pacing


class Runtime:
    """The long-lived objects of one worker process, for a given (swappable) config."""

    def __init__(self, config: Config, *, store: Store, fetcher: Fetcher, owner: str | None = None):
        self.store = store
        self.config = config
        self.fetcher = fetcher
        self.owner = owner or owner_id()
        self.breakers: dict[str, Breaker] = {}
        ready = self.prepare(config)
        self.matcher, self.routes = ready.matcher, ready.routes
        self.rendering, self.pacing = ready.rendering, ready.pacing
        self._notifier: Notifier | None = None
        # deliveries whose send has started and whose outcome is not stored yet
        self.sending: set[int] = set()
        self.sending_notices: set[int] = set()  # the same for watchdog messages

    @property
    def fetcher(self) -> Fetcher:
        return self._fetcher

    @fetcher.setter
    def fetcher(self, fetcher: Fetcher) -> None:
        """Every Fetcher the runtime uses (a reload builds a new one) obeys robots.txt when
        `[http] robots` is on, with the copies kept in the database."""
        if self.config.http.robots and fetcher.gate is None:
            fetcher.gate = Robots(self.config.http, self.store)
        self._fetcher = fetcher

    def held(self, source: SourceConfig, now: datetime | None = None) -> str | None:
        """Why the scheduler must not start a pass of `source` now (None: it may)."""
        now = now or datetime.now(UTC)
        if not source.is_active(now, self.config.timezone):
            return f"outside its active hours ({', '.join(source.active or ())})"
        breaker = self.breakers.get(source.name)
        if breaker is not None and breaker.until is not None and now < breaker.until:
            return (
                f"breaker open after {breaker.failures} failed passes in a row, until "
                f"{breaker.until.isoformat(timespec='seconds')}"
            )
        return None

    @property
    def notifier(self) -> Notifier:
        """The channels' Notifier, built on first use: a `worker once` with no alert due never
        imports apprise. Raises ChannelConfigError when apprise refuses a channel URL (a config
        loaded without `check_channels` has not been checked for that)."""
        if self._notifier is None:
            problems = check_channel_urls(self.config.channels)
            if problems:
                raise ChannelConfigError(problems)
            self._notifier = Notifier(self.config.channels, timeout=self.config.alerts.send_timeout)
        return self._notifier

    def close_notifier(self) -> None:
        """Let the sending threads end, if a Notifier was ever built."""
        if self._notifier is not None:
            self._notifier.close()

    @staticmethod
    def prepare(config: Config) -> Prepared:
        """The matcher, routes, templates and pacing of a config: the costly part of `apply`
        (seconds for 10,000 watchlists), to build in a thread while the loop goes on with the
        old ones."""
        return Prepared(
            Matcher(config.watchlists),
            Routes(config.watchlists),
            Rendering.from_config(config),
            Pacing.from_config(config),
        )

    def apply(self, config: Config, prepared: Prepared | None = None) -> None:
        """Switch to a new config: later pages are matched and delivered by it."""
        ready = prepared if prepared is not None else self.prepare(config)
        notifier = Notifier(config.channels, timeout=config.alerts.send_timeout)
        self.config, self._notifier = config, notifier
        self.matcher, self.routes = ready.matcher, ready.routes
        self.rendering, self.pacing = ready.rendering, ready.pacing

    def plan_for(self, source: str) -> Plan:
        """What a new article of `source` must produce: one AlertPlan per matching watchlist."""
        matcher = self.matcher
        routes = self.routes.of(source)

        def plan(item: Item) -> list[AlertPlan]:
            return [
                AlertPlan(watchlist=name, keywords=keywords, channels=routes[name])
                for name, keywords in matcher.match_fields(_fields_of(item)).items()
                if name in routes
            ]

        return plan

    async def run_pass(self, source: SourceConfig) -> PassReport:
        """Crawl one source; contain and record its failure."""
        progress = PassProgress(source.name)
        try:
            with self.fetcher.source_pass(source.name):  # fair slots, a deadline, own cookies
                crawl = await crawl_source(
                    source,
                    self.fetcher,
                    self.store,
                    self.plan_for(source.name),
                    window=self.config.http.concurrency * 2,
                    on_page=progress,
                    # the outcome recorded with the pass's end (one transaction fewer), unless
                    # the article pages still add to it
                    record=source.article is None,
                )
                if source.article is not None:  # the listing is stored: now the articles' pages
                    pages = await read_article_pages(
                        source,
                        self.fetcher,
                        self.store,
                        self.plan_for(source.name),
                        clock=lambda: datetime.now(UTC),
                    )
                    crawl.alerts += pages.alerts
                    note = describe_article_pages(pages)
                    if note:
                        crawl.notes.append(note)
            report = PassReport(source=source.name, ok=True, crawl=crawl)
        except CrawlError as exc:
            report = PassReport(source=source.name, ok=False, crawl=exc.report, error=str(exc))
        except Exception as exc:  # a bug or a database outage: keep the daemon alive
            log.exception("source=%s pass crashed", source.name)
            report = PassReport(
                source=source.name,
                ok=False,
                crawl=CrawlReport(source=source.name),
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            progress.done()
        await self._record(report)
        return report

    async def _record(self, report: PassReport) -> None:
        c = report.crawl
        level = logging.INFO if report.ok else logging.WARNING
        log.log(
            level,
            "pass source=%s ok=%s pages=%d items=%d new=%d alerts=%d duration=%.2fs %s",
            report.source,
            report.ok,
            c.pages,
            c.items,
            c.new,
            c.alerts,
            c.duration,
            f"error={report.error}" if report.error else f"stop={'; '.join([c.stop, *c.notes])}",
            extra={  # as keys of their own in JSON logs (worker.logs)
                "source": report.source,
                "ok": report.ok,
                "pages": c.pages,
                "items": c.items,
                "new": c.new,
                "alerts": c.alerts,
                "duration": round(c.duration, 3),
                "baseline": c.baseline,
                "silent": c.silent,
                "stop": c.stop or None,
                "error": report.error,
            },
        )
        at = datetime.now(UTC)
        breaker = self.breakers.setdefault(report.source, Breaker())
        if c.failures is not None:  # recorded with the end of the crawl (`record=True`)
            report.failures = c.failures
            self._trip(report, breaker, at)
            await self.watch_pass(report)
            return
        try:
            report.failures = await asyncio.to_thread(
                self.store.record_pass,
                report.source,
                ok=report.ok,
                error=report.error,
                pages=c.pages,
                new=c.new,
                alerts=c.alerts,
                duration=c.duration,
                at=at,
            )
        except Exception:
            log.exception("source=%s could not record the pass", report.source)
            report.failures = 0 if report.ok else breaker.failures + 1
        self._trip(report, breaker, at)
        await self.watch_pass(report)

    async def watch_pass(self, report: PassReport) -> None:
        """The watchdog's look at a pass, and the messages it owes (issue #11)."""
        if self.config.watchdog is None:
            return
        from worker import watchdog

        try:
            await watchdog.after_pass(self.store, self.config, report)
            await self._send_notices()
        except Exception:  # the watchdog must never stop a pass
            log.exception("watchdog: source=%s not recorded", report.source)

    async def watch_delivery(self, report: DeliveryReport) -> None:
        if self.config.watchdog is None:
            return
        from worker import watchdog

        try:
            await watchdog.after_delivery(self.store, self.config, report)
            await self._send_notices()
        except Exception:
            log.exception("watchdog: delivery round not recorded")

    async def _send_notices(self) -> None:
        """Queue and send the watchdog messages owed (durable, like alerts)."""
        from worker import watchdog

        await watchdog.send_notices(
            self.store,
            self.notifier,
            self.config,
            owner=self.owner,
            in_flight=self.sending_notices,
        )

    def _trip(self, report: PassReport, breaker: Breaker, at: datetime) -> None:
        """The source's breaker after this pass: after `breaker_after` failed passes in a row the
        next passes are spaced out, twice the interval and doubling with each further failure,
        up to `breaker_max`; one success closes it."""
        http = self.config.http
        was_open = breaker.until is not None
        breaker.failures = report.failures
        if report.failures < http.breaker_after:
            breaker.until = None
            if was_open:
                log.info("source=%s breaker closed: the pass succeeded", report.source)
            return
        try:
            interval = self.config.source(report.source).interval
        except KeyError:
            interval = 900.0
        doublings = min(report.failures - http.breaker_after + 1, 40)
        spacing = min(http.breaker_max, interval * 2**doublings)
        breaker.until = report.held_until = at + timedelta(seconds=spacing)
        log.warning(
            "source=%s breaker open: %d failed passes in a row; no pass before %s (%.0fs)",
            report.source,
            report.failures,
            breaker.until.isoformat(timespec="seconds"),
            spacing,
            extra={"source": report.source, "failures": report.failures},
        )

    async def deliver(self) -> DeliveryReport:
        """Send every delivery that is due now (one round).

        Until a Notifier exists, the queue is asked first: with nothing due, apprise is not
        loaded at all."""
        if self._notifier is None and not self.pacing.active:
            due = await asyncio.to_thread(self.store.next_due_at)
            if due is None or due > datetime.now(UTC):
                return DeliveryReport()
        report = await deliver_due(
            self.store,
            self.notifier,
            self.config.alerts,
            owner=self.owner,
            in_flight=self.sending,
            rendering=self.rendering,
            pacing=self.pacing,
        )
        await self.watch_delivery(report)
        return report

    async def release_claims(self) -> int:
        """At a stop: give back the claims not tried, keeping those whose send may still run."""
        await asyncio.to_thread(
            self.store.release_watchdog_claims, self.owner, keep=frozenset(self.sending_notices)
        )
        return await asyncio.to_thread(
            self.store.release_claims, self.owner, keep=frozenset(self.sending)
        )

    async def once(self, sources: Sequence[SourceConfig]) -> OnceResult:
        """Crawl the sources (concurrently), then deliver what is due."""
        result = OnceResult()
        result.passes = list(await asyncio.gather(*(self.run_pass(s) for s in sources)))
        try:
            result.delivery = await self.deliver()
        except ChannelConfigError as exc:  # the alerts stay queued for a run with a fixed config
            result.channel_problems = exc.problems
        except Exception as exc:
            log.exception("delivery round failed")
            result.delivery_error = f"{type(exc).__name__}: {exc}"
        return result


async def run_once(config: Config, source_names: Sequence[str] = ()) -> OnceResult:
    """`worker once`: open everything, run one pass over the chosen sources, close everything."""
    sources = [config.source(n) for n in source_names] if source_names else list(config.sources)
    store = Store(config.database)
    try:
        await asyncio.to_thread(store.migrate)
        async with Fetcher(config.http) as fetcher:
            runtime = Runtime(config, store=store, fetcher=fetcher)
            try:
                return await runtime.once(sources)
            finally:  # what was claimed and not tried goes back
                runtime.close_notifier()
                await runtime.release_claims()
    finally:
        store.close()
