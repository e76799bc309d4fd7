"""What each `worker` subcommand does once the config is loaded; returns the exit code."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from worker.config import Config, config_warnings
from worker.exits import EXIT_CONFIG, EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from worker.store import Store


def _json(data: object) -> None:
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


@contextmanager
def open_store(config: Config) -> Iterator[Store]:
    from worker.store import Store  # SQLAlchemy: only for the commands that open the database

    store = Store(config.database)
    try:
        store.migrate()
        yield store
    finally:
        store.close()


def check(config: Config, path: str) -> int:
    for warning in config_warnings(config):
        print(f"{path}: warning: {warning}", file=sys.stderr)
    print(
        f"{path}: OK ({len(config.sources)} source(s), {len(config.watchlists)} watchlist(s), "
        f"{len(config.channels)} channel(s))"
    )
    return EXIT_OK


def once(config: Config, source_names: Sequence[str], path: str) -> int:
    from worker.pipeline import run_once

    # an unknown name was refused by the cli (exit 2, naming the valid ones)
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


def why(config: Config, url: str, *, as_json: bool) -> int:
    """`worker why URL`: exit 0 when the URL was seen, 1 when never (with the closest ones)."""
    from worker.why import explain_url, render, spellings

    if not spellings(url):
        print(f"not an http(s) URL: {url!r}", file=sys.stderr)
        return EXIT_CONFIG
    with open_store(config) as store:
        answer = explain_url(config, store, url)
    if as_json:
        _json(answer.to_json(config))
    else:
        print(render(answer, config))
    return EXIT_OK if answer.seen else EXIT_FAILED


def feed(config: Config, watchlist: str, *, fmt: str) -> int:
    """`worker feed WATCHLIST`: the watchlist's last 100 matches as Atom or JSON Feed."""
    from worker.feeds import FEED_SIZE
    from worker.feeds import feed as build

    names = [w.name for w in config.watchlists]
    if watchlist not in names:
        known = ", ".join(names) or "none defined"
        print(f"unknown watchlist {watchlist!r} (watchlists: {known})", file=sys.stderr)
        return EXIT_CONFIG
    with open_store(config) as store:
        rows = store.list_matches(watchlist, limit=FEED_SIZE)
    sys.stdout.buffer.write(build(watchlist, rows, fmt))
    sys.stdout.flush()
    return EXIT_OK


def probe(url: str, *, name: str | None, as_json: bool, config_path: str) -> int:
    """`worker probe URL`: the TOML block (or JSON) on standard output; exit 0 when a listing
    was found, 1 when none (the reason on standard error), 2 for a bad URL or name. Fetches with
    the config's `[http]` settings when the config file loads, else with the defaults."""
    import logging
    import os
    import re

    from worker.config import NAME_RE, ConfigError, HttpConfig, load_config
    from worker.probe import BadUrl, to_data, to_toml
    from worker.probe import probe as run_probe
    from worker.urls import redact_url

    if name is not None and (not re.match(NAME_RE, name) or len(name) > 100):
        print(
            f"worker probe: --name {name!r}: up to 100 letters, digits, '-', '_' or '.'",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    http = HttpConfig()
    if os.path.exists(config_path):
        try:
            http = load_config(config_path).http
        except ConfigError as exc:
            logging.getLogger("worker.probe").warning(
                "%s is invalid (%s): probing with the default [http] settings",
                config_path,
                exc.problems[0] if exc.problems else exc,
            )
    try:
        result = asyncio.run(run_probe(url, http, name=name))
    except BadUrl as exc:
        print(f"worker probe: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if as_json:
        _json(to_data(result))
    elif result.found:
        sys.stdout.write(to_toml(result))
    if not result.found:
        shown = redact_url(url)
        print(f"worker probe: no listing found at {shown}: {result.reason}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def init(path: str | None) -> int:
    """Write the commented example config to `path` (default: the user's config folder) and
    the JSON Schema beside it, never over an existing config."""
    from importlib.resources import files
    from pathlib import Path

    from worker.config import config_search_path
    from worker.config.schema import config_schema_text

    target = Path(path) if path else Path(config_search_path()[1])
    text = files("worker").joinpath("data/worker.toml").read_text(encoding="utf-8")
    schema_name = "worker.schema.json"
    lines = text.splitlines(keepends=True)
    if lines and lines[0].startswith("#:schema "):  # the repo's points into docs/
        text = f"#:schema ./{schema_name}\n" + "".join(lines[1:])
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("x", encoding="utf-8") as out:
            out.write(text)
    except FileExistsError:
        print(f"{target}: exists; not overwritten (give another PATH)", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        print(f"{target}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        (target.parent / schema_name).write_text(config_schema_text(), encoding="utf-8")
    except OSError as exc:  # the config is what matters; an editor merely completes less
        print(
            f"{target.parent / schema_name}: cannot write: {exc.strerror or exc}", file=sys.stderr
        )
    found = str(target) in config_search_path()
    hint = "worker check" if found else f"worker --config {target} check"
    print(f"wrote {target} (the commented example); edit it, then: {hint}")
    return EXIT_OK


def schema() -> int:
    """Print the config's JSON Schema."""
    from worker.config.schema import config_schema_text

    sys.stdout.write(config_schema_text())
    return EXIT_OK
