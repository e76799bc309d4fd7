"""Article pages (`[sources.article]`): after a listing pass, read the own page of each article
the source lists whose page was never read, for its text and date, and match it again.

At most `max_per_pass` pages a pass (the oldest stored first; the rest on later passes), through
the same fetcher (per-host delay, deadlines, caps). A page is read only from the listing's own
origin (scheme, host, port) or from a host named in `hosts` (`["*"]`: any host), and never from
a private, loopback or link-local address unless the listing itself is on one; a page whose
redirects end elsewhere is refused the same way. A page that cannot be read (error, timeout, not
HTML) is tried again on the next passes, 3 tries in all; the article stays stored and matched on
its listing text meanwhile. A watchlist the body matches is alerted then (once per channel).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urlsplit

from worker.config import ArticleConfig, SourceConfig
from worker.crawl import Clock, Plan
from worker.fetch import Fetcher, FetchError, RedirectRefused
from worker.parse import ParseError
from worker.parse.article import parse_article
from worker.store import PendingPage, Store

log = logging.getLogger(__name__)

PARALLEL = 8  # article pages in flight at once (the fetcher's own limits apply beneath)
RESOLVE_TIMEOUT = 10.0  # seconds to resolve a host before it is taken as not public


@dataclass
class ArticlePagesReport:
    read: int = 0  # pages read and stored
    failed: int = 0  # pages that could not be read this pass (tried again later)
    refused: int = 0  # pages on a host the source may not read from (never tried)
    dated: int = 0  # articles that got their date from their page
    alerts: int = 0  # deliveries queued for what the body matched
    reposts: int = 0  # pages whose canonical link is another stored article
    left: bool = False  # more pages wait than max_per_pass allowed


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _private_ip(text: str) -> bool:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
        or address.is_multicast
    )


async def _is_private(host: str, *, unresolved: bool) -> bool:
    """True when `host` is, or resolves to, a non-public address; `unresolved` when it cannot
    be resolved."""
    try:
        return _private_ip(host.strip("[]"))
    except ValueError:
        pass
    if host == "localhost" or host.endswith(".localhost"):
        return True
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return unresolved
    if not infos:
        return unresolved
    return any(_private_ip(str(info[4][0])) for info in infos)


class HostRules:
    """Which hosts article pages may be read from, for one listing (`await allows(url)`)."""

    def __init__(self, listing_url: str, config: ArticleConfig) -> None:
        self.origin = _origin(listing_url)
        self.hosts = set(config.hosts)
        self._private: dict[str, bool] = {}
        self._listing_private: bool | None = None

    async def private(self, host: str) -> bool:
        """A host not resolved counts as private: no page is read from it."""
        if host not in self._private:
            self._private[host] = await _is_private(host, unresolved=True)
        return self._private[host]

    async def listing_private(self) -> bool:
        """The listing is itself on a private address (a listing not resolved is not)."""
        if self._listing_private is None:
            self._listing_private = await _is_private(self.origin[1], unresolved=False)
        return self._listing_private

    async def allows(self, url: str) -> bool:
        origin = _origin(url)
        if origin == self.origin:
            return True
        scheme, host, port = origin
        if scheme not in ("http", "https") or not host:
            return False
        named = "*" in self.hosts or host in self.hosts or f"{host}:{port}" in self.hosts
        if not named:
            return False
        if await self.private(host):
            return await self.listing_private()  # only for a listing on one itself
        return True


async def read_article_pages(
    source: SourceConfig,
    fetcher: Fetcher,
    store: Store,
    plan: Plan,
    *,
    clock: Clock,
) -> ArticlePagesReport:
    """Read up to `max_per_pass` pending article pages of `source` (see the module doc)."""
    config = source.article
    report = ArticlePagesReport()
    if config is None:
        return report
    pending = await asyncio.to_thread(
        store.pending_article_pages, source.name, config.max_per_pass + 1
    )
    if len(pending) > config.max_per_pass:
        report.left = True
        pending = pending[: config.max_per_pass]
    rules = HostRules(source.url, config)
    slots = asyncio.Semaphore(PARALLEL)
    # one write at a time: SQLite serialises writers anyway (threads waiting on its lock sleep
    # in its busy handler)
    writing = asyncio.Lock()
    # one parse at a time, in a thread (the loop keeps fetching): trafilatura in 8 threads at
    # once thrashes the GIL, 30 ms a page against 7 ms one at a time (bench/README.md)
    parsing = asyncio.Lock()

    async def one(article: PendingPage) -> None:
        async with slots:
            if not await rules.allows(article.url):
                report.refused += 1
                await asyncio.to_thread(store.skip_article_page, article.id)
                return
            try:
                page = await fetcher.get_html(article.url, follow=rules.allows)
                if not await rules.allows(page.url):  # (every hop was checked: a safeguard)
                    report.refused += 1
                    log.info(
                        "source=%s article page %s redirected to %s: not read",
                        source.name,
                        article.url,
                        page.url,
                    )
                    await asyncio.to_thread(store.skip_article_page, article.id)
                    return
                async with parsing:
                    parsed = await asyncio.to_thread(
                        parse_article, page.text, page.url, config, date_order=source.date_order
                    )
            except RedirectRefused as exc:
                report.refused += 1
                log.info("source=%s article page not read: %s", source.name, exc)
                await asyncio.to_thread(store.skip_article_page, article.id)
                return
            except (FetchError, ParseError) as exc:
                report.failed += 1
                async with writing:
                    tries = await asyncio.to_thread(store.article_page_failed, article.id)
                log.info(
                    "source=%s article page %s failed (try %d): %s",
                    source.name,
                    article.url,
                    tries,
                    exc,
                )
                return
            silent = article.baseline and not source.alert_backfill
            async with writing:
                result = await asyncio.to_thread(
                    store.record_article_page,
                    article,
                    body=parsed.body or None,
                    published=parsed.published,
                    plan=plan,
                    silent=silent,
                    now=clock().astimezone(UTC),
                    canonical=parsed.canonical,
                )
            report.read += 1
            # a repost's alerts, queued by its listing text, went with it
            report.alerts += result.alerts_queued - result.alerts_dropped
            if result.repost_of is not None:
                report.reposts += 1
                log.info(
                    "source=%s %s names %s as its canonical URL: an alias of it",
                    source.name,
                    article.url,
                    result.repost_of,
                )
            if article.published is None and parsed.published is not None:
                report.dated += 1

    await asyncio.gather(*(one(article) for article in pending))
    return report


def describe(report: ArticlePagesReport) -> str | None:
    """The pass line's note on article pages, or None when there was nothing to do."""
    if not (report.read or report.failed or report.refused or report.left):
        return None
    parts = [f"article pages: {report.read} read"]
    if report.dated:
        parts.append(f"{report.dated} dated from their page")
    if report.failed:
        parts.append(f"{report.failed} failed (tried again next pass)")
    if report.refused:
        parts.append(f"{report.refused} on another host (not read)")
    if report.reposts:
        parts.append(f"{report.reposts} repost(s) of a stored article (by rel=canonical)")
    if report.left:
        parts.append("more left for the next passes")
    return ", ".join(parts)
