"""What each `worker` subcommand does once the config is loaded; returns the exit code."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from worker.cli import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from worker.config import Config
from worker.store import Store


def _json(data: object) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


@contextmanager
def open_store(config: Config) -> Iterator[Store]:
    store = Store(config.database)
    try:
        store.migrate()
        yield store
    finally:
        store.close()


def check(config: Config, path: str) -> int:
    print(
        f"{path}: OK ({len(config.sources)} source(s), {len(config.watchlists)} watchlist(s), "
        f"{len(config.channels)} channel(s))"
    )
    return EXIT_OK


def once(config: Config, source_names: Sequence[str], path: str) -> int:
    from worker.pipeline import run_once

    known = {s.name for s in config.sources}
    unknown = [n for n in source_names if n not in known]
    if unknown:
        for name in unknown:
            print(
                f"unknown source {name!r} (sources: {', '.join(sorted(known)) or 'none'})",
                file=sys.stderr,
            )
        return EXIT_CONFIG
    result = asyncio.run(run_once(config, source_names))
    for report in result.passes:
        print(report.line())
    d = result.delivery
    if d is not None:
        print(f"alerts: {d.sent} sent, {d.retrying} to retry, {d.failed} failed")
    if result.delivery_error:
        print(f"alerts: delivery round failed: {result.delivery_error}")
    if result.channel_problems:
        for problem in result.channel_problems:
            print(f"{path}: {problem}", file=sys.stderr)
        print("alerts: none sent; they stay queued until the config is fixed", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK if result.ok else EXIT_FAILED


def articles(
    config: Config, *, source: str | None, watchlist: str | None, limit: int, as_json: bool
) -> int:
    with open_store(config) as store:
        rows = store.list_articles(source=source, watchlist=watchlist, limit=limit)
    if as_json:
        _json([row.to_json() for row in rows])
        return EXIT_OK
    for row in rows:
        when = row.published.date().isoformat() if row.published else "????-??-??"
        tags = f" [{', '.join(row.watchlists)}]" if row.watchlists else ""
        print(f"{when}  {row.source}  {row.title}{tags}\n            {row.url}")
    if not rows:
        print("no articles stored yet")
    return EXIT_OK


def alerts(
    config: Config, *, status: str | None, limit: int | None, as_json: bool, retry: bool
) -> int:
    with open_store(config) as store:
        if retry:
            count = store.retry_failed()
            print(f"{count} failed alert(s) put back in the queue")
            return EXIT_OK
        rows = store.list_alerts(status=status, limit=limit)
    if as_json:
        _json([row.to_json() for row in rows])
        return EXIT_OK
    for row in rows:
        error = f"  last error: {row.last_error}" if row.last_error else ""
        print(
            f"{row.status:<8} {row.watchlist} -> {row.channel}  attempts={row.attempts}  "
            f"{row.article_url}{error}"
        )
    if not rows:
        print("no alerts")
    return EXIT_OK


def search(
    config: Config,
    query: str,
    *,
    stem: bool,
    source: str | None,
    since: str | None,
    limit: int,
    as_json: bool,
) -> int:
    """`worker search`: a query over the stored articles, with exactly a watchlist's meaning."""
    from datetime import UTC, datetime, timedelta

    from worker.config import WatchlistConfig, parse_duration
    from worker.match import QueryError, parse_query
    from worker.search import search as run_search

    try:
        parse_query(query)
    except QueryError as exc:
        print(f"query: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    start = None
    if since is not None:
        try:
            start = datetime.now(UTC) - timedelta(seconds=parse_duration(since))
        except ValueError as exc:
            print(f"--since: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    if limit < 1:
        print("--limit: must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    watchlist = WatchlistConfig(name="search", query=query, stem=stem, channels=["-"])
    with open_store(config) as store:
        found, searched = run_search(store, watchlist, since=start, source=source, limit=limit)
    if as_json:
        _json([f.to_json() for f in found])
        return EXIT_OK
    for f in found:
        row = f.article
        when = row.published.date().isoformat() if row.published else "????-??-??"
        print(f"{when}  {row.source}  {row.title}  [{', '.join(f.matched)}]\n            {row.url}")
    more = " (--limit reached)" if len(found) >= limit else ""
    print(f"{len(found)} match(es) in {searched} stored article(s){more}")
    return EXIT_OK


def test_alert(config: Config, channel: str | None) -> int:
    from worker.notify import Notifier
    from worker.notify import test_alert as send_test

    if channel is not None and channel not in config.channels:
        known = ", ".join(sorted(config.channels)) or "none defined"
        print(f"unknown channel {channel!r} (channels: {known})", file=sys.stderr)
        return EXIT_CONFIG
    if not config.channels:
        print("no channels configured", file=sys.stderr)
        return EXIT_CONFIG
    notifier = Notifier(config.channels, timeout=config.alerts.send_timeout)
    try:
        results = asyncio.run(send_test(notifier, channel))
    finally:
        notifier.close()
    for name, result in results.items():
        status = "ok" if result.ok else f"FAILED: {result.error}"
        print(f"{name}: {status}")
    return EXIT_OK if all(r.ok for r in results.values()) else EXIT_FAILED
