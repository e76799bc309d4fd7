"""Issue #11 with the daemon as a subprocess (`python -m worker run`): digests, rate limits,
quiet hours and the watchdog against the local site and a local webhook, each with restarts in
the middle (SIGTERM and SIGKILL) that lose and double nothing.

Quiet hours are read on a wall clock shifted by `WORKER_CLOCK_OFFSET` (worker.notify.pacing):
the daemon believes it is 23:30 or 06:59:54 in New York while the test runs for seconds.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.test_alerts import _paced_config, _titles
from tests.test_daemon import ALERT, STARTUP, Worker, wait_until

HELD_RE = re.compile(r"quiet hours: (\d+) alert\(s\) held")
QUEUED_RE = re.compile(r"pass source=local ok=True .* alerts=(\d+) ")


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(config: Path) -> Worker:
        started.append(Worker(tmp_path, config, "run"))
        return started[-1]

    yield start
    for worker in started:
        worker.kill()


def _daemon_config(path: Path, db_url: str, site, hook_url: str, **parts: str) -> Path:
    """A paced config for the daemon: passes every second, short sends (a short lease), no
    breaker spacing out the failing passes."""
    config = _paced_config(path, db_url, site, hook_url, **parts)
    text = config.read_text(encoding="utf-8")
    text = text.replace('every = "1m"', 'every = "1s"')
    text = text.replace("retries = 1\n", "retries = 0\nbreaker_after = 1000\n")
    text = text.replace("max_attempts = 5\n", 'max_attempts = 100\nsend_timeout = "5s"\n')
    config.write_text(text, encoding="utf-8")
    return config


def _total(worker: Worker, pattern: re.Pattern[str]) -> int:
    return sum(int(n) for n in pattern.findall(worker.err()))


def _restart(worker: Worker, sig: int) -> None:
    """Stop the daemon with `sig` (SIGTERM: a clean stop, exit 0; SIGKILL: none at all)."""
    worker.send(sig)
    code = worker.proc.wait(timeout=30)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), worker.err()[-3000:]


def test_the_daemon_sends_digests_of_exactly_the_articles_since_the_previous_one_across_restarts(
    tmp_path, pg_url, news_site, webhook_server, workers
):
    """digest = "8s" (on PostgreSQL): two articles queued, a SIGTERM and a restart before the
    digest is due, then one digest with both; a third article, a SIGKILL and a restart, then one
    digest with the third alone. Nothing else."""
    config = _daemon_config(
        tmp_path / "w.toml", pg_url, news_site, webhook_server.url(), watchlist='digest = "8s"'
    )
    worker = workers(config)
    worker.expect(lambda: worker.passes("local") >= 1, STARTUP, "the first pass")
    news_site.publish("Rail Line One Opens")
    news_site.publish("Rail Line Two Opens")
    worker.expect(lambda: _total(worker, QUEUED_RE) >= 2, ALERT, "two alerts queued")
    _restart(worker, signal.SIGTERM)
    assert webhook_server.received == []  # the digest was not due yet

    worker = workers(config)
    worker.expect(lambda: webhook_server.received, STARTUP, "the first digest")
    assert webhook_server.received[0]["title"] == "[rail] 2 new articles"
    assert sorted(_titles(webhook_server.received[0])) == [
        "Rail Line One Opens",
        "Rail Line Two Opens",
    ]
    news_site.publish("Rail Line Three Opens")
    worker.expect(lambda: _total(worker, QUEUED_RE) >= 1, ALERT, "the third alert queued")
    _restart(worker, signal.SIGKILL)
    assert len(webhook_server.received) == 1  # the second digest was not due yet

    worker = workers(config)
    worker.expect(lambda: len(webhook_server.received) >= 2, STARTUP, "the second digest")
    worker.wait_passes(2, "local")
    assert worker.stop()[0] == 0
    assert len(webhook_server.received) == 2
    assert webhook_server.received[1]["title"] == "[rail] 1 new article"
    assert _titles(webhook_server.received[1]) == ["Rail Line Three Opens"]


@pytest.mark.parametrize(
    ("sig", "database"),
    [(signal.SIGTERM, "sqlite_url"), (signal.SIGKILL, "pg_url")],
    ids=["sigterm-sqlite", "sigkill-postgresql"],
)
def test_the_daemon_keeps_a_rate_limit_across_a_restart_every_article_once(
    request, tmp_path, news_site, webhook_server, workers, sig, database
):
    """5 alerts on a "2/8s" channel give 2 messages; after a stop (SIGTERM or kill -9) and a
    restart within the window, nothing more until it ends, then one folded message with the
    other 3; nothing twice."""
    db_url = request.getfixturevalue(database)
    config = _daemon_config(
        tmp_path / "w.toml", db_url, news_site, webhook_server.url(), channel='rate_limit = "2/8s"'
    )
    worker = workers(config)
    worker.expect(lambda: worker.passes("local") >= 1, STARTUP, "the first pass")
    titles = [f"Rail Story Number {n}" for n in range(1, 6)]
    for title in titles:
        news_site.publish(title)
    worker.expect(lambda: len(webhook_server.received) >= 2, ALERT, "two alerts")
    # (stopped once both are recorded sent: a kill between a send and its record resends it,
    # the at-least-once window bench_send_window.py measures)
    worker.expect(lambda: worker.count("alert sent:") >= 2, ALERT, "two alerts recorded")
    _restart(worker, sig)
    assert len(webhook_server.received) == 2
    worker = workers(config)
    worker.expect(lambda: len(webhook_server.received) >= 3, STARTUP + 10, "the folded message")
    worker.wait_passes(2, "local")
    assert worker.stop()[0] == 0
    assert len(webhook_server.received) == 3
    singles = [str(p["title"]).removeprefix("[rail] ") for p in webhook_server.received[:2]]
    assert webhook_server.received[2]["title"] == "[rail] 3 new articles"
    assert sorted(singles + _titles(webhook_server.received[2])) == sorted(titles)


def test_quiet_hours_wrapping_midnight_in_new_york_hold_alerts_across_restarts_then_send_one(
    tmp_path, sqlite_url, news_site, webhook_server, workers, monkeypatch
):
    """quiet_hours = "22:00-07:00" in America/New_York. At 23:30 two alerts are held; kill -9.
    At 02:00 (past midnight, still quiet) a third is held; SIGTERM. At 06:59:54 a daemon starts:
    nothing is sent before 07:00, then one message with the three."""
    zone = ZoneInfo("America/New_York")

    def wall_clock(day: int, hour: int, minute: int, second: int = 0) -> float:
        """Make the next daemon's clock read that time of January 2026 in New York; the real
        (monotonic) time at which it reads so."""
        target = datetime(2026, 1, day, hour, minute, second, tzinfo=zone)
        offset = (target - datetime.now(UTC)).total_seconds()
        monkeypatch.setenv("WORKER_CLOCK_OFFSET", f"{offset:.3f}")
        return time.monotonic()

    config = _daemon_config(
        tmp_path / "w.toml",
        sqlite_url,
        news_site,
        webhook_server.url(),
        channel='quiet_hours = "22:00-07:00"',
        top='timezone = "America/New_York"',
    )
    wall_clock(14, 23, 30)
    worker = workers(config)
    worker.expect(lambda: worker.passes("local") >= 1, STARTUP, "the first pass")
    assert "WORKER_CLOCK_OFFSET" in worker.err()  # the daemon says its clock is shifted
    news_site.publish("Rail Line One Opens")
    news_site.publish("Rail Line Two Opens")
    worker.expect(lambda: _total(worker, HELD_RE) >= 2, ALERT, "two alerts held at 23:30")
    _restart(worker, signal.SIGKILL)

    wall_clock(15, 2, 0)  # past midnight: still quiet
    worker = workers(config)
    worker.expect(lambda: worker.passes("local") >= 1, STARTUP, "the first pass at 02:00")
    news_site.publish("Rail Line Three Opens")
    worker.expect(lambda: _total(worker, HELD_RE) >= 1, ALERT, "the third alert held at 02:00")
    _restart(worker, signal.SIGTERM)
    assert webhook_server.received == []

    started = wall_clock(15, 6, 59, 54)  # the quiet hours end 6 s from now
    worker = workers(config)
    wait_until(lambda: webhook_server.received, max(0.0, started + 5.0 - time.monotonic()))
    assert webhook_server.received == [], "sent before the quiet hours ended"
    worker.expect(lambda: webhook_server.received, STARTUP, "the message at 07:00")
    worker.wait_passes(3, "local")
    assert worker.stop()[0] == 0
    assert len(webhook_server.received) == 1
    assert webhook_server.received[0]["title"] == "[rail] 3 new articles"
    assert sorted(_titles(webhook_server.received[0])) == [
        "Rail Line One Opens",
        "Rail Line Three Opens",
        "Rail Line Two Opens",
    ]


def test_a_redesigned_site_raises_one_watchdog_message_and_one_on_recovery_across_restarts(
    tmp_path, pg_url, news_site, webhook_server, workers
):
    """The site changes its markup (its teasers are no longer <article>s): after 2 failed passes
    one message on each watchdog channel, however many passes fail and whatever the restarts.
    The second watchdog channel fails at first (HTTP 500): the first one gets its message
    anyway, and the second gets it, once, after a SIGTERM and a restart. A kill -9 between the
    incident and the recovery; the site's old markup back: one recovery message on each."""
    dog = {"/dog": "ops", "/dog2": "ops2"}
    channels = "".join(
        f'[channels.{name}]\nurl = "{webhook_server.url(path)}"\n' for path, name in dog.items()
    )
    config = _daemon_config(
        tmp_path / "w.toml",
        pg_url,
        news_site,
        webhook_server.url("/hook"),
        channel=channels,
        tail='[watchdog]\nchannels = ["ops", "ops2"]\nfailing_passes = 2',
    )

    def titles(path: str) -> list[str]:
        received = zip(webhook_server.received, webhook_server.received_paths, strict=True)
        return [str(post["title"]) for post, where in received if where == path]

    def refused(path: str) -> int:
        return sum(
            1 for where, status in webhook_server.requests if where == path and status >= 400
        )

    opened = "[worker] source local is failing"
    recovered = "[worker] source local recovered"
    webhook_server.fail_with(500, "/dog2")
    worker = workers(config)
    worker.expect(lambda: worker.passes("local", ok=True) >= 1, STARTUP, "the first pass")
    news_site.redesign()
    worker.expect(lambda: titles("/dog"), ALERT, "the watchdog's message")
    worker.expect(lambda: refused("/dog2") >= 1, ALERT, "the second channel refusing it")
    message = webhook_server.received[titles("/dog").index(opened)]
    assert "2 passes in a row" in message["message"] and "#main article" in message["message"]
    worker.wait_passes(3, "local")
    assert titles("/dog") == [opened] and titles("/dog2") == []  # not one per pass
    _restart(worker, signal.SIGTERM)

    webhook_server.recover()
    worker = workers(config)
    # (at most a lease late: a SIGTERM in the middle of a send keeps its claim until the lease,
    # 40 s here, ends; the grace time lets a pass's send finish, so that is rare)
    worker.expect(
        lambda: titles("/dog2"), STARTUP + 45, "the retried message on the second channel"
    )
    worker.wait_passes(3, "local")
    assert titles("/dog") == [opened] and titles("/dog2") == [opened]
    _restart(worker, signal.SIGKILL)  # between the incident and its recovery

    news_site.redesign(False)
    worker = workers(config)
    worker.expect(lambda: len(titles("/dog2")) >= 2, STARTUP, "the recovery messages")
    worker.expect(lambda: len(titles("/dog")) >= 2, ALERT, "the recovery messages")
    worker.wait_passes(3, "local")
    assert worker.stop()[0] == 0
    assert titles("/dog") == [opened, recovered]
    assert titles("/dog2") == [opened, recovered]
    assert titles("/hook") == []
