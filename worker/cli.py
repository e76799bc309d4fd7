"""The `worker` command: parse arguments, set up logging, build objects, call one function."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence

from worker import __version__
from worker.config import Config, ConfigError, default_config_path, load_config

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = (
    0,
    1,
    2,
)  # all went well / a source or delivery failed / bad config


_CHECK_CHANNELS = frozenset({"check", "run", "test-alert"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="worker", description="Scrape news listings, store new articles, send keyword alerts."
    )
    parser.add_argument("--version", action="version", version=f"worker {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="config file (default: $WORKER_CONFIG, else config/worker.toml)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", help="the daemon: crawl every source on its schedule, send alerts")
    once = sub.add_parser("once", help="one pass over all (or the named) sources, then deliver")
    once.add_argument("--source", action="append", default=[], metavar="NAME")
    sub.add_parser("check", help="validate the config file")
    articles = sub.add_parser("articles", help="list stored articles, newest first")
    articles.add_argument("--source", metavar="S")
    articles.add_argument("--watchlist", metavar="W")
    articles.add_argument("--limit", type=int, default=50, metavar="N")
    articles.add_argument("--json", action="store_true", help="print a JSON array")
    alerts = sub.add_parser("alerts", help="list alert deliveries")
    alerts.add_argument("--status", choices=["pending", "sent", "failed"])
    alerts.add_argument("--limit", type=int, default=None, metavar="N")
    alerts.add_argument("--json", action="store_true", help="print a JSON array")
    alerts.add_argument(
        "--retry", action="store_true", help="put failed deliveries back in the queue"
    )
    search = sub.add_parser(
        "search", help="run a watchlist query over the stored articles (try it before saving it)"
    )
    search.add_argument("query", metavar="QUERY", help="a query, as a watchlist's `query` key")
    search.add_argument("--stem", action="store_true", help="match word forms (stem = true)")
    search.add_argument("--source", metavar="S", help="only articles this source listed")
    search.add_argument("--since", metavar="DURATION", help="only articles of the last '30d'...")
    search.add_argument("--limit", type=int, default=50, metavar="N")
    search.add_argument("--json", action="store_true", help="print a JSON array")
    test = sub.add_parser("test-alert", help="send a test message to one or all channels")
    test.add_argument("--channel", metavar="NAME")
    demo = sub.add_parser("demo", help="watch the whole loop work offline against a local site")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever sys.stderr is at the time of the record (tests swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def setup_logging(level: str, *, verbose: bool = False, quiet: bool = False) -> None:
    """Configure logging once: one line per record on standard error."""
    if verbose:
        level = "DEBUG"
    elif quiet:
        level = "WARNING"
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("httpx", "httpcore", "apscheduler", "alembic", "apprise", "watchfiles"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    path = args.config or default_config_path()
    setup_logging("INFO", verbose=args.verbose, quiet=args.quiet)
    if args.command == "demo":
        from worker.demo import run_demo

        return run_demo(seconds=args.seconds)
    try:
        # apprise checks the channel URLs where they matter up front; `once` checks them when an
        # alert is due (saving ~0.4 s a run), listing commands never send
        config = load_config(path, check_channels=args.command in _CHECK_CHANNELS)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(config.logging.level, verbose=args.verbose, quiet=args.quiet)
    from worker.store import StoreError

    try:
        return _dispatch(args, config, path)
    except StoreError as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED


def run(argv: Sequence[str] | None = None) -> int:
    """The program's entry point (`worker`, `python -m worker`): `main`, then a quick exit.

    `gc.freeze()` first moves everything still alive to the permanent generation, so the
    interpreter's teardown does not walk a full collection over the ~1,200 modules loaded (0.4 s
    of every `worker once`). Not in `main`: tests call that in-process.
    """
    code = main(argv)
    gc.freeze()
    return code


def _dispatch(args: argparse.Namespace, config: Config, path: str) -> int:
    from worker import commands

    if args.command == "check":
        return commands.check(config, path)
    if args.command == "once":
        return commands.once(config, args.source, path)
    if args.command == "articles":
        return commands.articles(
            config,
            source=args.source,
            watchlist=args.watchlist,
            limit=args.limit,
            as_json=args.json,
        )
    if args.command == "alerts":
        return commands.alerts(
            config, status=args.status, limit=args.limit, as_json=args.json, retry=args.retry
        )
    if args.command == "search":
        return commands.search(
            config,
            args.query,
            stem=args.stem,
            source=args.source,
            since=args.since,
            limit=args.limit,
            as_json=args.json,
        )
    if args.command == "test-alert":
        return commands.test_alert(config, args.channel)
    if args.command == "run":
        from worker.daemon import run_daemon

        return asyncio.run(run_daemon(path, config))
    raise AssertionError(args.command)
