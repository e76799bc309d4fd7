"""Progress of long work: a line on a terminal (a real pseudo-terminal), log lines otherwise, and
what `worker run` says after a silent first pass and after a failure."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests import test_daemon
from tests.test_daemon import (
    ALERT,
    STARTUP,
    Worker,
    child_env,
    config_toml,
    source_toml,
    watchlist_toml,
)
from worker.daemon.schedule import spread_offset
from worker.progress import PROGRESS_LOG_EVERY
from worker.site import NewsSite

workers = test_daemon.workers  # the fixture: `worker run` subprocesses, killed at teardown


def write_config(tmp_path: Path, site: NewsSite, *, every: str = "1s") -> Path:
    config = tmp_path / "worker.toml"
    config.write_text(
        config_toml(
            tmp_path,
            channels={"console": "console://"},
            sources=source_toml("news", site.search_url, every=every, extra="max_pages = 100"),
            watchlists=watchlist_toml("rail", ["rail*"], ["console"]),
        ),
        encoding="utf-8",
    )
    return config


def once_on_a_terminal(config: Path) -> str:
    """`worker once` with standard error on a pseudo-terminal: everything the terminal got."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "--config", str(config), "once", "-v"],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        cwd=config.parent,
        env=child_env() | {"TERM": "xterm"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_a_long_first_pass_on_a_terminal_shows_pages_of_the_total_new_articles_and_rate(
    tmp_path: Path, make_site: Callable[..., NewsSite]
) -> None:
    site = make_site(300, per_page=10)  # 30 pages, read one after the other by the next link
    site.set_delay(0.05)
    text = once_on_a_terminal(write_config(tmp_path, site))
    lines = re.findall(r"news: page (\d+) of 30, (\d+) new stored, [\d.]+ pages/s", text)
    assert lines, text[-2000:]
    pages = [int(p) for p, _ in lines]
    assert pages == sorted(pages) and all(2 <= p <= 30 for p in pages)
    assert all(int(new) == 10 * int(p) for p, new in lines)  # every article new, 10 a page
    # the line is drawn in place and erased before a log record is written
    segments = text.split("\r\x1b[K")
    (logged,) = [s for s in segments if "pass source=news" in s]
    assert "pages/s" not in logged


def test_a_quiet_pass_on_a_terminal_draws_no_progress_line(
    tmp_path: Path, make_site: Callable[..., NewsSite]
) -> None:
    site = make_site(300, per_page=10)
    config = write_config(tmp_path, site)
    once_on_a_terminal(config)  # the baseline
    text = once_on_a_terminal(config)  # one page, nothing new
    assert "pass source=news" in text
    assert "pages/s" not in text and "\x1b[K" not in text


def test_without_a_terminal_a_long_pass_logs_its_progress_every_few_pages(
    tmp_path: Path, make_site: Callable[..., NewsSite]
) -> None:
    site = make_site(600, per_page=10)  # 60 pages
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker",
            "--config",
            str(write_config(tmp_path, site)),
            "once",
            "-v",
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    progress = re.findall(r"progress news: page (\d+) of 60, (\d+) new stored", done.stderr)
    assert [int(p) for p, _ in progress] == [PROGRESS_LOG_EVERY, 2 * PROGRESS_LOG_EVERY]
    assert [int(n) for _, n in progress] == [250, 500]
    assert "\r" not in done.stderr and "\x1b" not in done.stderr


def test_run_logs_that_a_first_pass_was_a_silent_baseline(
    tmp_path: Path, news_site: NewsSite, workers: Callable[..., Worker]
) -> None:
    daemon = workers(write_config(tmp_path, news_site, every="1h"), "run")
    daemon.expect(lambda: "first pass was a silent baseline" in daemon.err(), STARTUP, "the log")
    (line,) = [line for line in daemon.err().splitlines() if "silent baseline" in line]
    assert "source=news" in line
    assert f"{len(news_site.articles())} article(s) stored without alerts" in line
    assert "would have alerted: rail=" in line
    assert daemon.stop()[0] == 0


def test_run_logs_when_a_failing_source_will_be_tried_next(
    tmp_path: Path, news_site: NewsSite, workers: Callable[..., Worker]
) -> None:
    news_site.fail(500)
    daemon = workers(write_config(tmp_path, news_site, every="1h"), "run")
    daemon.expect(lambda: "will be tried again at" in daemon.err(), STARTUP + ALERT, "the log")
    (line,) = [line for line in daemon.err().splitlines() if "will be tried again" in line]
    found = re.search(r"source=news will be tried again at (\S+) \(in (\d+)s\)", line)
    assert found, line
    when = datetime.fromisoformat(found.group(1))
    wait = (when - datetime.now(UTC)).total_seconds()
    # the next point of its spread grid (issue #15) nearest an `every` after the first pass,
    # plus at most 30 s of jitter
    assert 1800 - 60 < wait <= 5400 + 30
    assert 1800 - 60 < int(found.group(2)) <= 5430
    assert (when.timestamp() - spread_offset("news", 3600)) % 3600 <= 30 + 1
    assert daemon.stop()[0] == 0
