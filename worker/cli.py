"""The `worker` command: parse arguments, set up logging, build objects, call one function.

Each subcommand is one `Command` entry in COMMANDS: its name, help, an example, a function that
adds its options and a handler. Nothing heavy is imported at module level: `worker --help`,
`check`, `schema` and `init` never load SQLAlchemy (a tenth of a second), and the handlers
import what they need.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker import __version__
from worker.exits import EXIT_CONFIG, EXIT_FAILED
from worker.logs import setup_logging

if TYPE_CHECKING:
    from worker.config import Config


log = logging.getLogger("worker.cli")


# --- option types: a bad number is a usage error (exit 2) before anything runs -------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number of seconds")
    return value


# --- the commands -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What a handler gets besides its arguments: the loaded config (None for a command that
    needs none) and the path it came from."""

    config: Config | None
    path: str

    @property
    def cfg(self) -> Config:
        assert self.config is not None
        return self.config


Handler = Callable[[argparse.Namespace, Context], int]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    example: str  # shown at the end of `worker NAME --help`
    handler: Handler
    options: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    needs_config: bool = True
    check_channels: bool = False  # ask apprise about every channel URL while loading
    quiet_log: bool = False  # its stdout says what INFO logs would: those need -v


def _run(args: argparse.Namespace, ctx: Context) -> int:
    import asyncio

    from worker.daemon import run_daemon

    return asyncio.run(run_daemon(ctx.path, ctx.cfg))


def _once_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME",
        help="only this source (repeatable; default: every source)",
    )


def _once(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.once(ctx.cfg, args.source, ctx.path)


def _check(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.check(ctx.cfg, ctx.path)


def _articles_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", metavar="NAME", help="only articles listed by this source")
    parser.add_argument("--watchlist", metavar="NAME", help="only articles this watchlist matched")
    parser.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="at most N (default: 50)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def _articles(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.articles(
        ctx.cfg, source=args.source, watchlist=args.watchlist, limit=args.limit, as_json=args.json
    )


def _alerts_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status", choices=["pending", "sent", "failed"], help="only deliveries in this state"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, metavar="N", help="at most N (default: all)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array")
    parser.add_argument(
        "--retry", action="store_true", help="put failed deliveries back in the queue"
    )


def _alerts(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.alerts(
        ctx.cfg, status=args.status, limit=args.limit, as_json=args.json, retry=args.retry
    )


def _test_alert_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--channel", metavar="NAME", help="only this channel (default: all)")


def _test_alert(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.test_alert(ctx.cfg, args.channel)


def _demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seconds",
        type=positive_seconds,
        default=None,
        metavar="N",
        help="stop after N seconds (default: run until Ctrl-C)",
    )


def _demo(args: argparse.Namespace, ctx: Context) -> int:
    from worker.demo import run_demo

    return run_demo(seconds=args.seconds)


def _init_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="where to write it (default: --config, else $XDG_CONFIG_HOME/worker/worker.toml, "
        "i.e. ~/.config/worker/worker.toml)",
    )


def _init(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.init(args.path or args.config)  # `worker --config X init` writes X


def _schema(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.schema()


def _search_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", metavar="QUERY", help="a query, as a watchlist's `query` key")
    parser.add_argument("--stem", action="store_true", help="match word forms (stem = true)")
    parser.add_argument("--source", metavar="NAME", help="only articles this source listed")
    parser.add_argument("--since", metavar="DURATION", help="only articles of the last '30d'...")
    parser.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="at most N (default: 50)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array")


def _search(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.search(
        ctx.cfg,
        args.query,
        stem=args.stem,
        source=args.source,
        since=args.since,
        limit=args.limit,
        as_json=args.json,
    )


def _why_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the article's URL, in any spelling")
    parser.add_argument("--json", action="store_true", help="print a JSON object")


def _why(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.why(ctx.cfg, args.url, as_json=args.json)


def _feed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("watchlist", metavar="WATCHLIST", help="a watchlist of the config")
    parser.add_argument(
        "--format", choices=("atom", "json"), default="atom", help="Atom 1.0 or JSON Feed 1.1"
    )


def _feed(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands

    return commands.feed(ctx.cfg, args.watchlist, fmt=args.format)


def _probe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="URL", help="the first page of the listing")
    parser.add_argument("--name", metavar="NAME", help="the source's name (default: from the URL)")
    parser.add_argument("--json", action="store_true", help="print the proposal as JSON")


def _probe(args: argparse.Namespace, ctx: Context) -> int:
    from worker import commands
    from worker.config import find_config

    # needs no config (it writes a source block for one), but uses its [http] when it loads
    path = find_config(args.config).path
    return commands.probe(args.url, name=args.name, as_json=args.json, config_path=path)


COMMANDS: list[Command] = [
    Command(
        "run",
        "the daemon: crawl every source on its schedule, send alerts",
        "worker --config /etc/worker/worker.toml run",
        _run,
        check_channels=True,
    ),
    Command(
        "once",
        "one pass over all (or the named) sources, then deliver",
        "worker once --source timesca-search",
        _once,
        _once_options,
        quiet_log=True,
    ),
    Command(
        "check",
        "validate the config file",
        "worker check --config config/worker.toml",
        _check,
        check_channels=True,
    ),
    Command(
        "articles",
        "list stored articles, newest first",
        "worker articles --watchlist rail --limit 10",
        _articles,
        _articles_options,
    ),
    Command(
        "alerts",
        "list alert deliveries",
        "worker alerts --status failed --retry",
        _alerts,
        _alerts_options,
    ),
    Command(
        "search",
        "run a watchlist query over the stored articles (try it before saving it)",
        "worker search 'Kazakhstan AND (rail* OR \"Belt and Road\") -opinion' --since 30d",
        _search,
        _search_options,
    ),
    Command(
        "test-alert",
        "send a test message to one or all channels",
        "worker test-alert --channel desk-mail",
        _test_alert,
        _test_alert_options,
        check_channels=True,
    ),
    Command(
        "why",
        "why an article was alerted or not: what the database knows about one URL",
        "worker why 'https://example.org/news/a/?utm_source=x'",
        _why,
        _why_options,
    ),
    Command(
        "feed",
        "print a watchlist's last 100 matches as a feed (Atom or JSON Feed)",
        "worker feed rail --format json",
        _feed,
        _feed_options,
    ),
    Command(
        "probe",
        "propose a [[sources]] block for a listing page",
        "worker probe 'https://example.org/news/' >> config/worker.toml",
        _probe,
        _probe_options,
        needs_config=False,
    ),
    Command(
        "demo",
        "watch the whole loop work offline against a local site",
        "worker demo --seconds 30",
        _demo,
        _demo_options,
        needs_config=False,
    ),
    Command(
        "init",
        "write the commented example config (never over an existing file)",
        "worker init ./worker.toml",
        _init,
        _init_options,
        needs_config=False,
    ),
    Command(
        "schema",
        "print the config's JSON Schema (for editors: the #:schema line)",
        "worker schema > docs/worker.schema.json",
        _schema,
        needs_config=False,
    ),
]


# --- parsing ----------------------------------------------------------------------------------

_CONFIG_HELP = (
    "config file (default: $WORKER_CONFIG, else the first that exists of ./config/worker.toml, "
    "$XDG_CONFIG_HOME/worker/worker.toml (~/.config/...), /etc/worker/worker.toml)"
)


def _global_options(parser: argparse.ArgumentParser, *, default: object) -> None:
    """--config, -v, -q: on the main parser (real defaults) and again on every subcommand
    (default SUPPRESS, so `worker once --config X` works and does not undo `worker --config X
    once`)."""
    parser.add_argument("--config", metavar="PATH", default=default, help=_CONFIG_HELP)
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log debug details"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="log warnings and errors only"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="worker",
        description="Scrape news listings, store new articles, send keyword alerts.",
        epilog="Example: worker init && worker check && worker run   (see README.md)",
    )
    parser.add_argument(
        "--version", action="version", version=f"worker {__version__}", help="print the version"
    )
    _global_options(parser, default=None)
    parser.set_defaults(verbose=False, quiet=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        cmd = sub.add_parser(
            command.name,
            help=command.help,
            description=command.help[:1].upper() + command.help[1:] + ".",
            epilog=f"Example: {command.example}",
        )
        command.options(cmd)
        _global_options(cmd, default=argparse.SUPPRESS)
        cmd.set_defaults(command_spec=command)
    return parser


def _quiet_log(verbose: bool) -> None:
    """For a command whose standard output reports each pass (`once`): the pass log line, which
    says what standard output already said, needs -v; other records (a counter that fell, the
    progress of a long pass) still go to standard error. A filter on this configuration's
    handler, so the next `setup_logging` (tests call `main` again in-process) starts afresh."""
    if verbose:
        return
    for handler in logging.getLogger().handlers:
        handler.addFilter(
            lambda r: (
                r.name != "worker.pipeline"
                or r.levelno >= logging.ERROR
                or not r.getMessage().startswith("pass ")
            )
        )


# option name -> (what it names, the config's names of that kind)
NAME_OPTIONS: dict[str, tuple[str, Callable[[Config], list[str]]]] = {
    "source": ("source", lambda c: [s.name for s in c.sources]),
    "watchlist": ("watchlist", lambda c: [w.name for w in c.watchlists]),
    "channel": ("channel", lambda c: list(c.channels)),
}


def unknown_names(args: argparse.Namespace, config: Config) -> list[str]:
    """One message per --source, --watchlist or --channel value the config does not define."""
    problems = []
    for option, (kind, names_of) in NAME_OPTIONS.items():
        given = getattr(args, option, None)
        if not given:
            continue
        known = names_of(config)
        for name in [given] if isinstance(given, str) else given:
            if name not in known:
                valid = ", ".join(sorted(known)) or "none defined"
                problems.append(f"unknown {kind} {name!r} ({kind}s: {valid})")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: Command = args.command_spec
    setup_logging("INFO", verbose=args.verbose, quiet=args.quiet)
    if not command.needs_config:
        return command.handler(args, Context(None, args.config or ""))

    from worker.config import ChannelCheck, ConfigError, config_warnings, find_config, load_config

    where = find_config(args.config)
    try:
        # apprise checks the channel URLs where they matter up front; `once` checks them when an
        # alert is due (saving ~0.4 s a run), listing commands never send
        checker: ChannelCheck | None = None
        if command.check_channels:
            from worker.notify import check_channel_urls

            checker = check_channel_urls
        config = load_config(where.path, check_channels=checker)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{exc.path}: {problem}", file=sys.stderr)
        if where.origin == "none":
            print(
                f"no config file found (looked for {', '.join(where.searched)}): "
                "`worker init` writes a commented example, or give --config PATH",
                file=sys.stderr,
            )
        return EXIT_CONFIG
    setup_logging(
        config.logging.level, fmt=config.logging.format, verbose=args.verbose, quiet=args.quiet
    )
    if command.quiet_log:
        _quiet_log(args.verbose)
    # said when the file was looked for; one given by --config or $WORKER_CONFIG needs -v
    log.log(
        logging.INFO if where.origin in ("found", "none") else logging.DEBUG,
        "config: %s",
        where.describe(),
    )
    problems = unknown_names(args, config)
    if problems:
        for problem in problems:
            print(f"worker {command.name}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if command.name == "run":
        for warning in config_warnings(config):
            log.warning("%s: %s", where.path, warning)
    try:
        return command.handler(args, Context(config, where.path))
    except KeyboardInterrupt:
        return EXIT_FAILED
    except Exception as exc:
        # a StoreError can only come from a loaded store; importing it here would load
        # SQLAlchemy for `check` too
        engine = sys.modules.get("worker.store.engine")
        if engine is not None and isinstance(exc, engine.StoreError):
            print(f"database error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


def run(argv: Sequence[str] | None = None) -> int:
    """The program's entry point (`worker`, `python -m worker`): `main`, then a quick exit.

    Output piped into a reader that stops early (`worker articles | head`) ends quietly: the
    broken pipe is the reader's choice, not an error to print. `gc.freeze()` moves everything
    still alive to the permanent generation, so the interpreter's teardown does not walk a full
    collection over the ~1,200 modules loaded (0.4 s of every `worker once`). Not in `main`:
    tests call that in-process.
    """
    try:
        code = main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that flush cannot fail
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT_FAILED
    gc.freeze()
    return code
