"""The command line has no sharp edges: bad numbers and unknown names are usage errors (exit 2)
naming what is valid, global options go before or after the subcommand, every option and
command explains itself, a closed pipe ends quietly, `once` reports each pass once."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e import run_worker, source_toml, write_config
from worker.cli import COMMANDS, _parser, main

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "worker.toml"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `worker ARGV...` and require argparse's usage error: exit 2. Returns standard error."""
    with pytest.raises(SystemExit) as info:
        main(list(argv))
    assert info.value.code == 2
    return capsys.readouterr().err


# (the command line, a fragment of the error)
BAD_NUMBERS = [
    (["articles", "--limit", "-1"], "must be at least 1"),
    (["articles", "--limit", "0"], "must be at least 1"),
    (["articles", "--limit", "ten"], "is not a whole number"),
    (["alerts", "--limit", "-5"], "must be at least 1"),
    (["demo", "--seconds", "-1"], "must be a positive number of seconds"),
    (["demo", "--seconds", "nan"], "must be a positive number of seconds"),
    (["demo", "--seconds", "soon"], "is not a number of seconds"),
]


@pytest.mark.parametrize(
    ("argv", "fragment"), BAD_NUMBERS, ids=[" ".join(b[0]) for b in BAD_NUMBERS]
)
def test_a_bad_number_is_a_usage_error(capsys, argv, fragment):
    assert fragment in usage_error(capsys, "--config", str(SHIPPED), *argv)


def name_options() -> list[tuple[str, str]]:
    """Every (command, option) of the parser that takes a source, watchlist or channel name."""
    found = []
    for name, parser in subcommands().items():
        for action in parser._actions:
            for option in ("--source", "--watchlist", "--channel"):
                if option in action.option_strings:
                    found.append((name, option))
    return found


def test_every_name_option_is_covered_below():
    assert {("once", "--source"), ("articles", "--source"), ("articles", "--watchlist"),
            ("test-alert", "--channel")} <= set(name_options())  # fmt: skip


@pytest.mark.parametrize(("command", "option"), name_options())
def test_an_unknown_name_exits_2_naming_the_valid_ones(capsys, command, option):
    positional = {"search": ["rail"], "why": ["https://example.org/a/"]}.get(command, [])
    code = main(["--config", str(SHIPPED), command, *positional, option, "nope"])
    err = capsys.readouterr().err
    assert code == 2
    kind = option.removeprefix("--")
    valid = {
        "source": "timesca-feed, timesca-kyrgyzstan, timesca-search",
        "watchlist": "afghanistan, rail, water-energy",
        "channel": "console",
    }[kind]
    assert f"unknown {kind} 'nope' ({kind}s: {valid})" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--config", str(SHIPPED)],
        ["check", "-q", "--config", str(SHIPPED)],
        ["--config", "/nonexistent.toml", "check", "--config", str(SHIPPED)],
    ],
    ids=["config after", "quiet and config after", "after overrides before"],
)
def test_global_options_are_accepted_after_the_subcommand(capsys, argv):
    assert main(argv) == 0
    assert f"{SHIPPED}: OK" in capsys.readouterr().out


def test_global_options_before_and_after_the_subcommand_combine(capsys):
    assert main(["-q", "check", "--config", str(SHIPPED)]) == 0
    assert "INFO" not in capsys.readouterr().err  # -q before, --config after
    assert main(["--config", str(SHIPPED), "check", "-v"]) == 0
    assert "DEBUG worker.cli: config: " in capsys.readouterr().err  # --config before, -v after


def test_every_option_has_help_text():
    parsers = {"worker": _parser(), **subcommands()}
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in parsers.items()
        for action in parser._actions
        if not action.help and not isinstance(action, argparse._SubParsersAction)
    ]
    assert missing == []


@pytest.mark.parametrize("command", [c.name for c in COMMANDS])
def test_each_command_help_shows_an_example(capsys, command):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "Example: worker " in out and "--config PATH" in out


def test_output_piped_into_a_reader_that_stops_early_ends_quietly(tmp_path):
    """`worker articles | head -1` over 3,000 stored articles (far more than a pipe buffers):
    no BrokenPipeError, no traceback, exit 1."""
    from worker.models import Item
    from worker.store import Store

    db = tmp_path / "many.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    news = [Item(url=f"https://news.example/{i}", title=f"Story {i} " * 5, summary="", published=None) for i in range(3000)]  # fmt: skip
    store.store_page(
        "src", news, lambda item: [], silent=True, now=datetime(2025, 1, 1, tzinfo=UTC)
    )
    store.close()
    config = tmp_path / "w.toml"
    config.write_text(f'database = "sqlite:///{db}"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), "articles", "--limit", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert first.strip() and "Traceback" not in err and "BrokenPipe" not in err, err


@pytest.fixture
def local_config(tmp_path, sqlite_url, news_site):
    return write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=source_toml(news_site),
        channels={"out": "console://"},
        watchlists="",
    )


def pass_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("local: ")]


def test_once_prints_its_pass_line_once_and_logs_it_only_with_verbose(capsys, local_config):
    run = run_worker(capsys, local_config, "once")
    assert run.code == 0 and len(pass_lines(run.out)) == 1
    assert "pass source=local" not in run.err and not pass_lines(run.err)
    verbose = run_worker(capsys, local_config, "once", "-v")
    assert verbose.code == 0 and len(pass_lines(verbose.out)) == 1
    assert "pass source=local" in verbose.err


def test_the_daemon_still_logs_its_pass_lines_after_a_once_in_the_same_process(
    capsys, local_config
):
    """`once` hides its pass log line with a filter on its own logging setup, not by changing a
    logger for the rest of the process."""
    import logging

    run_worker(capsys, local_config, "once")
    main(["--config", str(local_config), "check"])
    assert logging.getLogger("worker.pipeline").isEnabledFor(logging.INFO)
    # only the masking filter (a Filter) stays on the handlers, not once's (a function)
    assert all(
        isinstance(f, logging.Filter) for h in logging.getLogger().handlers for f in h.filters
    )
