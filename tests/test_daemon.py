"""`worker run` as a real subprocess against the local news site, SMTP server and webhook.

Each test writes a config with a 1 s schedule, starts `python -m worker --config X run`, drives
the site (publish, fail, slow down) and watches what reaches the SMTP server and the webhook,
what the daemon logs (stderr) and how it exits. Conditions are polled with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import worker.daemon.lifecycle as daemon_module
from tests.fixtures.servers import SMTPServer, WebhookServer
from worker.config import Config, SourceConfig, WatchlistConfig, parse_config
from worker.crawl import CrawlReport
from worker.daemon import Daemon, crontab_day_of_week, trigger_for
from worker.fetch import Fetcher
from worker.match import Matcher
from worker.pipeline import PassReport, Runtime
from worker.site import SELECT_TOML, NewsSite
from worker.store import Store

STARTUP = 30.0  # seconds a daemon may take to start and finish its first pass (loaded CI)
ALERT = 15.0  # seconds from publishing a matching article to its alert
EXIT = 10.0  # seconds from SIGTERM to the exit


# --- helpers -------------------------------------------------------------------------------------


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("WORKER_CONFIG", None)
    return env


class Worker:
    """`python -m worker ARGS` in the background; stdout and stderr go to files."""

    def __init__(self, tmp_path: Path, config: Path, *args: str, name: str = "worker") -> None:
        n = len(list(tmp_path.glob(f"{name}-*.err")))
        self.out_path = tmp_path / f"{name}-{n}.out"
        self.err_path = tmp_path / f"{name}-{n}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "worker", "--config", str(config), *args],
                stdout=out,
                stderr=err,
                cwd=tmp_path,
                env=child_env(),
            )

    def out(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def count(self, needle: str) -> int:
        return self.err().count(needle)

    def passes(self, source: str = "news", ok: bool | None = None) -> int:
        needle = f"pass source={source} " + ("" if ok is None else f"ok={ok} ")
        return self.count(needle)

    def expect(self, condition: Callable[[], Any], timeout: float, what: str) -> None:
        if not wait_until(condition, timeout):
            tail = "\n".join(self.err().splitlines()[-40:])
            running = "running" if self.proc.poll() is None else f"exited {self.proc.returncode}"
            pytest.fail(f"timed out ({timeout:.0f}s) waiting for {what}; worker {running}\n{tail}")

    def wait_passes(self, n: int, source: str = "news", timeout: float = ALERT) -> None:
        """Wait for `n` more finished passes of `source` than now."""
        target = self.passes(source) + n
        self.expect(lambda: self.passes(source) >= target, timeout, f"{n} pass(es) of {source}")

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = EXIT) -> tuple[int, float]:
        """Send `sig` and wait for the exit: (exit code, seconds it took)."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"no exit within {timeout}s of {sig!r}:\n{self.err()[-3000:]}")
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(config: Path, *args: str, name: str = "worker") -> Worker:
        worker = Worker(tmp_path, config, *args, name=name)
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def run_cli(tmp_path: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child_env(),
        timeout=60,
    )


SELECT = SELECT_TOML  # the local site's selectors


def source_toml(name: str, url: str, *, every: str = "1s", extra: str = "") -> str:
    return f'[[sources]]\nname = "{name}"\nurl = "{url}"\nevery = "{every}"\n{extra}\n{SELECT}\n'


def watchlist_toml(name: str, keywords: list[str], channels: list[str]) -> str:
    return (
        f'[[watchlists]]\nname = "{name}"\nkeywords = {json.dumps(keywords)}\n'
        f"channels = {json.dumps(channels)}\n\n"
    )


def config_toml(
    tmp_path: Path,
    *,
    channels: dict[str, str],
    sources: str,
    watchlists: str,
    port: int = 0,
    retries: int = 0,
) -> str:
    lines = [
        f'database = "sqlite:///{tmp_path / "worker.db"}"',
        "",
        "[http]",
        "min_delay = 0",
        "timeout = 10",
        f"retries = {retries}",
        "",
        "[alerts]",
        'retry_base = "1s"',
        'send_timeout = "10s"',
        "",
    ]
    if port:
        lines += ["[http_status]", f"port = {port}", ""]
    lines += ["[channels]"] + [f"{name} = {json.dumps(url)}" for name, url in channels.items()]
    return "\n".join(lines) + "\n\n" + sources + watchlists


def titles(webhook: WebhookServer) -> list[str]:
    return [body.get("title", "") for body in list(webhook.received)]


def subjects(smtp: SMTPServer) -> list[str]:
    return [str(message["Subject"]) for message in list(smtp.messages)]


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def search_requests(site: NewsSite) -> int:
    return sum(1 for path in site.listing_paths() if "?s=" in path)


# --- alerts while it runs ----------------------------------------------------------------------


def test_new_matching_article_alerted_once_per_channel_within_seconds(
    tmp_path: Path,
    news_site: NewsSite,
    smtp_server: SMTPServer,
    webhook_server: WebhookServer,
    workers: Callable[..., Worker],
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text(
        config_toml(
            tmp_path,
            channels={"mail": smtp_server.url(), "hook": webhook_server.url()},
            sources=source_toml("news", news_site.search_url),
            watchlists=watchlist_toml("zebra", ["zebrafish"], ["mail", "hook"]),
        )
    )
    worker = workers(config, "run")
    worker.expect(lambda: worker.passes(ok=True) >= 1, STARTUP, "the baseline pass")
    assert webhook_server.received == [] and smtp_server.messages == []

    published = time.monotonic()
    news_site.publish("Zebrafish Farm Opens on Lake Issyk-Kul", "A fish farm story.")
    worker.expect(
        lambda: webhook_server.received and smtp_server.messages, ALERT, "the alert on both"
    )
    latency = time.monotonic() - published
    assert latency < 8.0, f"alerted {latency:.1f}s after publishing"

    worker.wait_passes(2)  # more passes see the article again: nothing is sent twice
    assert titles(webhook_server) == ["[zebra] Zebrafish Farm Opens on Lake Issyk-Kul"]
    assert subjects(smtp_server) == ["[zebra] Zebrafish Farm Opens on Lake Issyk-Kul"]
    log = worker.err()
    assert "worker running: 1 source(s), 1 watchlist(s), 2 channel(s)" in log
    assert "pages=2 items=12 new=1 alerts=2" in log  # the per-pass log line
    code, took = worker.stop()
    assert code == 0 and took < EXIT


# --- live config -------------------------------------------------------------------------------


def test_config_edits_apply_live_and_a_broken_edit_keeps_the_last_good_config(
    tmp_path: Path,
    news_site: NewsSite,
    webhook_server: WebhookServer,
    workers: Callable[..., Worker],
) -> None:
    config = tmp_path / "worker.toml"
    channels = {"hook": webhook_server.url(), "out": "console://"}
    sources = source_toml("news", news_site.search_url)
    zebra = watchlist_toml("zebra", ["zebrafish"], ["hook"])
    yak = watchlist_toml("yak", ["yak*"], ["hook", "out"])
    ibex = watchlist_toml("ibex", ["ibex"], ["hook"])

    def text(watchlists: str) -> str:
        return config_toml(tmp_path, channels=channels, sources=sources, watchlists=watchlists)

    def by_rename(content: str) -> None:
        tmp = tmp_path / ".worker.toml.tmp"
        tmp.write_text(content)
        os.replace(tmp, config)

    def alerted(title: str) -> Callable[[], bool]:
        return lambda: title in titles(webhook_server)

    config.write_text(text(zebra))
    worker = workers(config, "run")
    worker.expect(lambda: worker.passes(ok=True) >= 1, STARTUP, "the baseline pass")

    # 1. in place: the same file (inode) rewritten
    inode = config.stat().st_ino
    with open(config, "r+") as f:
        f.write(text(zebra + yak))
        f.truncate()
    assert config.stat().st_ino == inode
    worker.expect(lambda: worker.count("config reloaded") >= 1, 5, "the in-place reload")
    assert "config reloaded: 1 source(s), 2 watchlist(s), 2 channel(s)" in worker.err()
    news_site.publish("Yaks Return to the Pamir Pastures", "Herders move their yaks uphill.")
    worker.expect(alerted("[yak] Yaks Return to the Pamir Pastures"), ALERT, "the [yak] alert")
    worker.expect(lambda: "[yak] Yaks Return" in worker.out(), ALERT, "the console alert")

    # 2. by rename: a new file moved over the old one
    by_rename(text(zebra + yak + ibex))
    assert config.stat().st_ino != inode
    worker.expect(lambda: worker.count("config reloaded") >= 2, 5, "the reload after a rename")
    news_site.publish("Ibex Census in the Tian Shan", "Rangers count ibex.")
    worker.expect(alerted("[ibex] Ibex Census in the Tian Shan"), ALERT, "the [ibex] alert")

    # 3. a broken edit: logged as `worker check` says it, the daemon runs on the last good config
    broken = text(zebra + yak + ibex).replace('name = "ibex"', 'name = "ibex"\nkeywordz = ["x"]')
    broken = broken.replace('every = "1s"', 'every = "soon"')
    by_rename(broken)
    check = run_cli(tmp_path, config, "check")
    assert check.returncode == 2, check
    problems = check.stderr.strip().splitlines()
    assert any("keywordz: unknown key" in p for p in problems), problems
    assert any("sources[0].every: 'soon' is not a duration" in p for p in problems), problems
    worker.expect(
        lambda: all(p in worker.err() for p in problems), 5, "the check messages in the log"
    )
    assert worker.count("config reload refused, keeping the last good config") == len(problems)
    assert worker.proc.poll() is None
    news_site.publish("Zebrafish Hatchery Expands", "More zebrafish.")
    worker.expect(alerted("[zebra] Zebrafish Hatchery Expands"), ALERT, "an alert, old config")

    # 4. the fix applies: ibex and yak go, oryx comes
    by_rename(text(zebra + watchlist_toml("oryx", ["oryx"], ["hook"])))
    worker.expect(lambda: worker.count("config reloaded") >= 3, 5, "the reload of the fix")
    news_site.publish("Yak Cheese Wins a Prize", "A yak story, no longer watched.")
    news_site.publish("Oryx Seen Near the Aral Sea", "A rare oryx.")
    worker.expect(alerted("[oryx] Oryx Seen Near the Aral Sea"), ALERT, "the [oryx] alert")
    worker.wait_passes(2)
    assert not any("Yak Cheese" in t for t in titles(webhook_server))

    # 5. SIGHUP reloads too (an unchanged file: nothing to apply)
    worker.send(signal.SIGHUP)
    worker.expect(lambda: "nothing to apply" in worker.err(), 5, "the SIGHUP reload")
    assert sorted(titles(webhook_server)) == sorted(
        [
            "[yak] Yaks Return to the Pamir Pastures",
            "[ibex] Ibex Census in the Tian Shan",
            "[zebra] Zebrafish Hatchery Expands",
            "[oryx] Oryx Seen Near the Aral Sea",
        ]
    )
    code, _ = worker.stop()
    assert code == 0
    assert "Traceback" not in worker.err()


# --- stop and restart --------------------------------------------------------------------------


def test_sigterm_during_a_slow_pass_exits_0_and_a_restart_alerts_each_once(
    tmp_path: Path,
    news_site: NewsSite,
    webhook_server: WebhookServer,
    workers: Callable[..., Worker],
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text(
        config_toml(
            tmp_path,
            channels={"hook": webhook_server.url()},
            sources=source_toml("news", news_site.search_url),
            watchlists=watchlist_toml("zebra", ["zebrafish"], ["hook"]),
        )
    )
    worker = workers(config, "run")
    worker.expect(lambda: worker.passes(ok=True) >= 1, STARTUP, "the baseline pass")
    news_site.publish("Zebrafish One", "first")
    worker.expect(lambda: len(webhook_server.received) == 1, ALERT, "the first alert")

    # the site turns slow: the next pass hangs on page 1, after two more articles are out
    news_site.set_delay(30)
    news_site.publish("Zebrafish Two", "second")
    news_site.publish("Zebrafish Three", "third")
    seen = len(news_site.requests)
    worker.expect(lambda: len(news_site.requests) > seen, 5, "a pass in flight")
    code, took = worker.stop()
    assert code == 0
    assert took < EXIT
    log = worker.err()
    assert "cancelled 1 task(s) still running: pass:news" in log
    assert "stopped in" in log and "Traceback" not in log

    news_site.set_delay(0)
    again = workers(config, "run")
    again.expect(lambda: len(webhook_server.received) >= 3, STARTUP, "the alerts after restart")
    again.wait_passes(2)
    expected = ["[zebra] Zebrafish One", "[zebra] Zebrafish Three", "[zebra] Zebrafish Two"]
    assert sorted(titles(webhook_server)) == expected
    code, _ = again.stop()
    assert code == 0


def test_sigterm_between_two_pages_loses_no_article(
    tmp_path: Path,
    news_site: NewsSite,
    webhook_server: WebhookServer,
    workers: Callable[..., Worker],
) -> None:
    """More than a page of new articles; the stop lands after page 1 was stored and while page
    2 is being retried (the site asks to come back later). After the restart the articles of
    page 2 must be stored and alerted too, and those of page 1 not twice."""
    config = tmp_path / "worker.toml"
    config.write_text(
        config_toml(
            tmp_path,
            channels={"hook": webhook_server.url()},
            sources=source_toml("news", news_site.search_url),
            watchlists=watchlist_toml("zebra", ["zebrafish"], ["hook"]),
            retries=2,
        )
    )
    worker = workers(config, "run")
    worker.expect(lambda: worker.passes(ok=True) >= 1, STARTUP, "the baseline pass")
    news_site.fail(503, paths="/page/2/", retry_after=30)
    mark = len(news_site.requests)
    names = [f"Zebrafish Story {n}" for n in range(1, 9)]  # 8 new: page 1 holds 6
    for name in names:
        news_site.publish(name, "zebrafish")
    worker.expect(
        lambda: any("/page/2/" in p for p in news_site.requests[mark:]), ALERT, "page 2 asked"
    )
    # Ctrl-C twice: the second signal cancels the pass without waiting out the grace time
    worker.send(signal.SIGINT)
    worker.expect(lambda: "stopping: no new passes" in worker.err(), 5, "the first signal")
    code, took = worker.stop(signal.SIGINT)
    assert code == 0 and took < 3.0
    assert "cancelled 1 task(s) still running: pass:news" in worker.err()
    news_site.heal()

    again = workers(config, "run")
    again.expect(lambda: len(webhook_server.received) >= 6, STARTUP, "the alerts of page 1")
    again.wait_passes(2)
    assert sorted(titles(webhook_server)) == sorted(f"[zebra] {n}" for n in names)


# --- health and metrics ------------------------------------------------------------------------


def test_healthz_and_metrics_report_sources_passes_and_deliveries(
    tmp_path: Path,
    news_site: NewsSite,
    webhook_server: WebhookServer,
    workers: Callable[..., Worker],
) -> None:
    port = free_port()
    config = tmp_path / "worker.toml"
    # "news": one backfill pass at start (every 1h) that alerts the sample articles on rail;
    # "flaky": a category archive every second, which the site answers with HTTP 500.
    # Two webhook channels: "hook" answers 503 for a while, "chat" works.
    config.write_text(
        config_toml(
            tmp_path,
            channels={"hook": webhook_server.url("/hook"), "chat": webhook_server.url("/chat")},
            sources=source_toml(
                "news", news_site.search_url, every="1h", extra="alert_backfill = true"
            )
            + source_toml("flaky", news_site.category_url("news")),
            watchlists=watchlist_toml("rail", ["rail*"], ["hook", "chat"]),
            port=port,
        )
    )
    rail = Matcher([WatchlistConfig(name="rail", keywords=["rail*"], channels=["x"])])
    expected = sorted(
        f"[rail] {a.title}" for a in news_site.articles() if rail.match(a.title, a.expected_summary)
    )
    assert len(expected) >= 3
    news_site.fail(500, paths="/category/")
    webhook_server.fail_with(503, "/hook")

    def received(path: str) -> list[str]:
        pairs = zip(list(webhook_server.received_paths), titles(webhook_server), strict=False)
        return sorted(title for p, title in pairs if p == path)

    def refused() -> int:
        return sum(1 for p, status in list(webhook_server.requests) if status == 503)

    worker = workers(config, "run")
    worker.expect(lambda: worker.passes("news", ok=True) >= 1, STARTUP, "the backfill pass")
    worker.expect(lambda: received("/chat") == expected, ALERT, "the alerts on chat")
    worker.expect(lambda: refused() >= 2, ALERT, "failed attempts on hook")
    worker.expect(lambda: worker.passes("flaky", ok=False) >= 2, ALERT, "failing passes")
    assert received("/hook") == []

    # the hook recovers: the retries go out on their own, without another crawl of "news"
    crawls = search_requests(news_site)
    webhook_server.recover()
    worker.expect(lambda: received("/hook") == expected, ALERT, "the retried alerts")
    assert search_requests(news_site) == crawls
    worker.wait_passes(1, "flaky")
    assert received("/chat") == expected  # nothing twice

    code, body = http_get(f"http://127.0.0.1:{port}/healthz?detail=sources")
    assert code == 200, body
    health = json.loads(body)
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["scheduler"] == "running"
    news, flaky = health["sources"]["news"], health["sources"]["flaky"]
    assert news["ok"] is True and news["last_error"] is None
    assert news["last_success"] is not None and news["baselined"] is True
    assert news["last_pages"] == 4 and news["next_run"] is not None
    assert flaky["ok"] is False and "HTTP 500" in flaky["last_error"]
    assert flaky["last_success"] is None
    assert health["failing_sources"] == ["flaky"]
    code, body = http_get(f"http://127.0.0.1:{port}/healthz?strict=1")
    assert code == 503 and json.loads(body)["failing_sources"] == ["flaky"]
    assert http_get(f"http://127.0.0.1:{port}/nope")[0] == 404

    code, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    n = len(expected)
    refusals = refused()
    assert value("worker_passes_total", source="news", outcome="ok") == 1
    assert value("worker_passes_total", source="flaky", outcome="error") >= 2
    assert value("worker_pages_fetched_total", source="news") == 4
    assert value("worker_articles_new_total", source="news") == len(news_site.articles())
    assert value("worker_alerts_queued_total", source="news") == 2 * n
    assert value("worker_alerts_sent_total", channel="chat") == n
    assert value("worker_alerts_sent_total", channel="hook") == n
    assert value("worker_alerts_failed_total", channel="hook") == refusals
    assert value("worker_alerts_failed_total", channel="chat") == 0
    assert value("worker_pass_duration_seconds_count", source="news") == 1
    assert value("worker_pass_duration_seconds_sum", source="news") > 0
    assert value("worker_source_up", source="news") == 1
    assert value("worker_source_up", source="flaky") == 0
    assert value("worker_source_last_success_timestamp_seconds", source="news") > 1.7e9
    code, _ = worker.stop()
    assert code == 0


# --- test-alert --------------------------------------------------------------------------------


def test_test_alert_reaches_smtp_and_webhook_and_reports_each_channel(
    tmp_path: Path, news_site: NewsSite, smtp_server: SMTPServer, webhook_server: WebhookServer
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text(
        config_toml(
            tmp_path,
            channels={"mail": smtp_server.url(), "hook": webhook_server.url()},
            sources=source_toml("news", news_site.search_url),
            watchlists=watchlist_toml("zebra", ["zebrafish"], ["mail", "hook"]),
        )
    )
    done = run_cli(tmp_path, config, "test-alert")
    assert done.returncode == 0, done
    assert sorted(done.stdout.splitlines()) == ["hook: ok", "mail: ok"]
    assert subjects(smtp_server) == ["[worker] test alert"]
    assert titles(webhook_server) == ["[worker] test alert"]

    done = run_cli(tmp_path, config, "test-alert", "--channel", "hook")
    assert done.returncode == 0, done
    assert done.stdout.splitlines() == ["hook: ok"]
    assert len(webhook_server.received) == 2 and len(smtp_server.messages) == 1

    webhook_server.fail_with(500)
    done = run_cli(tmp_path, config, "test-alert")
    assert done.returncode == 1, done
    lines = sorted(done.stdout.splitlines())
    assert lines[0].startswith("hook: FAILED") and lines[1] == "mail: ok"
    assert len(smtp_server.messages) == 2

    done = run_cli(tmp_path, config, "test-alert", "--channel", "pager")
    assert done.returncode == 2 and "unknown channel 'pager'" in done.stderr


# --- the scheduler in process (fast): overlap, coalescing, jitter, reload, stop ------------------


class TimedRuntime(Runtime):
    """A Runtime whose passes only sleep `delay` seconds and record when they ran."""

    def __init__(self, config: Config, store: Store, fetcher: Fetcher, delay: float) -> None:
        super().__init__(config, store=store, fetcher=fetcher)
        self.delay = delay
        self.runs: list[list[Any]] = []  # [source, started, ended or None]

    async def run_pass(self, source: SourceConfig) -> PassReport:
        run: list[Any] = [source.name, time.monotonic(), None]
        self.runs.append(run)
        await asyncio.sleep(self.delay)
        run[2] = time.monotonic()
        return PassReport(source=source.name, ok=True, crawl=CrawlReport(source=source.name))


def fake_config(tmp_path: Path, names: list[str], every: str = "1s") -> str:
    return f'database = "sqlite:///{tmp_path / "w.db"}"\n\n' + "".join(
        source_toml(name, f"http://127.0.0.1:9/{name}/", every=every) for name in names
    )


@contextlib.asynccontextmanager
async def daemon_running(
    tmp_path: Path, text: str, delay: float
) -> AsyncIterator[tuple[Daemon, TimedRuntime]]:
    path = tmp_path / "worker.toml"
    path.write_text(text)
    config = parse_config(text, path)
    store = Store(config.database)
    store.migrate()
    async with Fetcher(config.http) as fetcher:
        runtime = TimedRuntime(config, store, fetcher, delay)
        daemon = Daemon(runtime, path)
        task = asyncio.create_task(daemon.serve())
        try:
            yield daemon, runtime
        finally:
            daemon.stop()
            await asyncio.wait_for(task, 10)
            store.close()


async def test_passes_of_a_source_never_overlap_and_missed_runs_coalesce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(daemon_module, "SHUTDOWN_GRACE", 1.0)
    text = fake_config(tmp_path, ["slow"])
    async with daemon_running(tmp_path, text, delay=1.5) as (_, runtime):
        await wait_for(lambda: len(runtime.runs) >= 2, 10)
        await asyncio.sleep(0.3)
        stop_at = time.monotonic()
    stopped_in = time.monotonic() - stop_at
    first, second = runtime.runs  # 1 s schedule, 1.5 s passes: the run in between is skipped
    assert first[2] is not None and second[1] >= first[2]  # never two at once
    assert second[1] - first[2] < 1.6  # the coalesced run comes at the next tick
    assert second[2] is None  # the pass in flight at the stop was cancelled ...
    assert stopped_in < 2.0  # ... after the (shortened) grace time


async def wait_for(condition: Callable[[], Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_one_second_schedule_keeps_its_pace(tmp_path: Path) -> None:
    async with daemon_running(tmp_path, fake_config(tmp_path, ["a", "b"]), delay=0.01) as (
        _,
        runtime,
    ):
        await asyncio.sleep(3.5)
    for name in ("a", "b"):
        starts = [run[1] for run in runtime.runs if run[0] == name]
        assert 3 <= len(starts) <= 5, starts  # first run at start, then one a second
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(0.5 < gap < 1.6 for gap in gaps), gaps


def test_triggers_have_small_jitter_and_cron_weekdays_mean_what_cron_says() -> None:
    def source(**schedule: str) -> SourceConfig:
        text = f'[[sources]]\nname = "s"\nurl = "http://x.org/"\n{SELECT}'
        config = parse_config(
            text.replace(
                "\n[sources.select]",
                "".join(f'\n{k} = "{v}"' for k, v in schedule.items()) + "\n[sources.select]",
                1,
            )
        )
        return config.sources[0]

    assert trigger_for(source(every="1s")).jitter == pytest.approx(0.1)
    assert trigger_for(source(every="2s")).jitter == pytest.approx(0.2)
    assert trigger_for(source(every="15m")).jitter == 30
    weekdays = trigger_for(source(cron="0 8 * * 1-5"))
    assert weekdays.jitter == 5
    start = datetime(2025, 7, 6, 12, 0, tzinfo=UTC)  # a Sunday
    fired, previous = [], None
    for _ in range(7):
        previous = weekdays.get_next_fire_time(previous, previous or start)
        fired.append((previous.strftime("%a"), previous.hour))
    assert fired == [(d, 8) for d in ["Mon", "Tue", "Wed", "Thu", "Fri", "Mon", "Tue"]]
    sunday = trigger_for(source(cron="30 6 * * 0"))
    first = sunday.get_next_fire_time(None, start)
    assert first.strftime("%a %H:%M") == "Sun 06:30"
    assert crontab_day_of_week("0-2") == "mon,tue,sun"
    assert crontab_day_of_week("*/2") == "tue,thu,sat,sun"
    assert crontab_day_of_week("mon-fri") == "mon-fri"


async def test_reload_keeps_a_pass_in_flight_and_applies_sources(tmp_path: Path) -> None:
    async with daemon_running(tmp_path, fake_config(tmp_path, ["old"]), delay=1.5) as (
        daemon,
        runtime,
    ):
        await wait_for(lambda: runtime.runs, 5)
        assert runtime.runs and runtime.runs[0][2] is None  # in flight
        new = fake_config(tmp_path, ["new"]).encode()
        # the file says so too: the watcher must not put "old" back once the bad reload below
        # has left its digest on other bytes (a race the spread schedule's sooner ticks lost)
        (tmp_path / "worker.toml").write_bytes(new)
        assert await daemon.reload(new)
        assert [job.id for job in daemon.jobs.scheduler.get_jobs()] == ["new"]
        assert not await daemon.reload(b"sources = 3\n")  # invalid: kept the last good one
        assert [s.name for s in runtime.config.sources] == ["new"]
        await asyncio.sleep(2.0)
    old = [run for run in runtime.runs if run[0] == "old"]
    assert len(old) == 1 and old[0][2] is not None  # finished, not dropped, not rerun
    assert any(run[0] == "new" for run in runtime.runs)  # added: its first run came at once


async def test_a_second_stop_signal_cancels_at_once(tmp_path: Path) -> None:
    path = tmp_path / "worker.toml"
    text = fake_config(tmp_path, ["stuck"])
    path.write_text(text)
    config = parse_config(text, path)
    store = Store(config.database)
    store.migrate()
    async with Fetcher(config.http) as fetcher:
        runtime = TimedRuntime(config, store, fetcher, delay=60)
        daemon = Daemon(runtime, path)
        task = asyncio.create_task(daemon.serve())
        await wait_for(lambda: runtime.runs, 5)
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert not task.done()  # waiting for the pass (grace time)
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(task, 3)
        assert time.monotonic() - started < 2
    store.close()
