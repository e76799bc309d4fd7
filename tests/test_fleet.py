"""A fleet: `worker run` replicas on one PostgreSQL share the sources' schedule (issue #13).

Real subprocesses on the CI PostgreSQL (a fresh database per test) against the local news site,
whose request log counts each source's page-1 requests (each source's URL carries its own
`src=` parameter). Schedules of 2-3 s; the assertions count requests and alerts, with margins
for a loaded machine.
"""

from __future__ import annotations

import itertools
import json
import signal
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.servers import WebhookServer
from tests.test_daemon import EXIT, STARTUP, Worker, free_port, wait_until, workers
from worker.daemon.fleet import FLEET_LEASE
from worker.site import SELECT_TOML, NewsSite
from worker.store import Store

__all__ = ["workers"]  # the fixture, shared with test_daemon

SOURCES = ("alpha", "beta", "gamma", "delta")


def fleet_config(
    path: Path,
    db_url: str,
    site: NewsSite,
    *,
    every: str,
    port: int = 0,
    replica: str | None = None,
    channels: dict[str, str] | None = None,
    sources: tuple[str, ...] = SOURCES,
) -> Path:
    lines = [
        f'database = "{db_url}"',
        "",
        "[http]\nmin_delay = 0\ntimeout = 10\nretries = 0\nrobots = false\n",
        '[alerts]\nretry_base = "1s"\n',
    ]
    if port:
        lines.append(f"[http_status]\nport = {port}\n")
    if replica:
        lines.append(f'[fleet]\nreplica = "{replica}"\n')
    channels = channels or {}
    if channels:
        lines.append("[channels]")
        lines += [f"{name} = {json.dumps(url)}" for name, url in channels.items()]
        lines.append("")
    for name in sources:
        lines.append(
            f'[[sources]]\nname = "{name}"\nurl = "{site.search_url}&src={name}"\n'
            f'every = "{every}"\n{SELECT_TOML}'
        )
    if channels:
        lines.append(
            '[[watchlists]]\nname = "zebra"\nkeywords = ["zebrafish"]\n'
            f"channels = {json.dumps(sorted(channels))}\n"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def page_one_times(site: NewsSite, times: dict[str, list[float]], seen: list[int]) -> None:
    """Record (monotonic) when each source's page 1 was asked for since the last call."""
    now = time.monotonic()
    targets = list(site.requests)
    for target in targets[seen[0] :]:
        if target.startswith("/?"):
            for name in times:
                if f"src={name}" in target:
                    times[name].append(now)
    seen[0] = len(targets)


def page_one_requests(site: NewsSite, name: str) -> int:
    return sum(1 for t in list(site.requests) if t.startswith("/?") and f"src={name}" in t)


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        body: dict[str, object] = json.loads(response.read())
        return body


def start_fleet(
    tmp_path: Path,
    workers: Callable[..., Worker],
    pg_url: str,
    site: NewsSite,
    *,
    every: str,
    n: int = 3,
    channels: dict[str, str] | None = None,
) -> list[tuple[Worker, int]]:
    fleet = []
    for i in range(n):
        port = free_port()
        config = fleet_config(
            tmp_path / f"r{i}.toml",
            pg_url,
            site,
            every=every,
            port=port,
            replica=f"r{i}",
            channels=channels,
        )
        fleet.append((workers(config, "run", name=f"r{i}"), port))
    for replica, _ in fleet:
        replica.expect(lambda r=replica: "fleet: replica" in r.err(), STARTUP, "the replica joined")
    return fleet


def test_three_replicas_pass_each_source_about_once_per_interval_follow_a_reload_and_exit_0(
    tmp_path: Path,
    pg_url: str,
    make_site: Callable[..., NewsSite],
    workers: Callable[..., Worker],
) -> None:
    """Three replicas, four sources every 2 s: each source's page 1 is asked for about once per
    interval (not three times); /healthz lists the three live replicas and names its own;
    /metrics carries the replica id; a source removed from every config is passed no more, one
    added is passed about once per interval; SIGTERM stops each with exit 0."""
    site = make_site(8, per_page=20)
    fleet = start_fleet(tmp_path, workers, pg_url, site, every="2s")
    for name in SOURCES:  # every source passed at least once (the fleet's start)
        assert wait_until(lambda n=name: page_one_requests(site, n) >= 1, STARTUP), name
    time.sleep(1.0)
    before = {name: page_one_requests(site, name) for name in SOURCES}
    window = 8.0
    time.sleep(window)
    counts = {name: page_one_requests(site, name) - before[name] for name in SOURCES}
    # 2 s + up to 10 % jitter + a look every ~0.5 s: ~4-5 passes in 10 s; three replicas each
    # passing every source would be ~15
    for name, count in counts.items():
        assert 2 <= count <= window / 2 + 2, (name, counts)
    for i, (_replica, port) in enumerate(fleet):
        status = get_json(f"http://127.0.0.1:{port}/healthz")
        assert status["replica"] == f"r{i}" and status["schedule"] == "fleet"
        replicas = status["replicas"]
        assert isinstance(replicas, list)
        assert sorted(str(r["id"]) for r in replicas) == ["r0", "r1", "r2"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        ids = [
            sample.labels["replica"]
            for family in text_string_to_metric_families(text)
            if family.name == "worker_replica_info"
            for sample in family.samples
        ]
        assert ids == [f"r{i}"]
    passes = [sum(r.passes(name) for name in SOURCES) for r, _ in fleet]
    assert sum(passes) >= sum(counts.values())
    # a reload on every replica: delta removed, epsilon added (passed at once, then on schedule)
    edited = (*SOURCES[:3], "epsilon")
    for i, (_replica, port) in enumerate(fleet):
        fleet_config(
            tmp_path / f"r{i}.toml",
            pg_url,
            site,
            every="2s",
            port=port,
            replica=f"r{i}",
            sources=edited,
        )
    assert wait_until(lambda: page_one_requests(site, "epsilon") >= 3, STARTUP)
    time.sleep(1.0)
    removed, added = page_one_requests(site, "delta"), page_one_requests(site, "epsilon")
    time.sleep(4.0)
    assert page_one_requests(site, "delta") == removed
    assert 1 <= page_one_requests(site, "epsilon") - added <= 4
    for replica, _ in fleet:
        code, took = replica.stop(signal.SIGTERM)
        assert code == 0 and took < EXIT, replica.err()[-2000:]
        assert "Traceback" not in replica.err()
        assert "fleet: replica r" in replica.err() and " left; " in replica.err()


def test_a_replica_killed_by_sigkill_leaves_no_source_behind_and_alerts_go_out_once(
    tmp_path: Path,
    pg_url: str,
    make_site: Callable[..., NewsSite],
    webhook_server: WebhookServer,
    workers: Callable[..., Worker],
) -> None:
    """One of three replicas is SIGKILLed (claims and all): within one lease (10 s) and an
    interval the others pass its sources, every source stays on schedule, and the articles
    published meanwhile are alerted exactly once on each of two channels."""
    site = make_site(8, per_page=20)
    channels = {"one": webhook_server.url("/one"), "two": webhook_server.url("/two")}
    every = 3.0
    fleet = start_fleet(tmp_path, workers, pg_url, site, every="3s", channels=channels)
    times: dict[str, list[float]] = {name: [] for name in SOURCES}
    seen = [0]

    def passed_twice() -> bool:
        page_one_times(site, times, seen)
        return all(len(t) >= 2 for t in times.values())  # the baseline and one more

    assert wait_until(passed_twice, STARTUP), times
    victim = fleet[0][0]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait(timeout=10)
    killed = time.monotonic()
    names = [f"Zebrafish Story {n}" for n in range(1, 5)]
    for name in names:
        site.publish(name, "zebrafish")
        time.sleep(0.5)

    def covered() -> bool:
        page_one_times(site, times, seen)
        return all(any(t > killed + FLEET_LEASE for t in ts) for ts in times.values())

    assert wait_until(covered, FLEET_LEASE + 6 * every + 10), times
    for name, ts in times.items():
        gaps = [b - a for a, b in itertools.pairwise(ts)]
        # no source waits longer than a lease plus an interval (and a loaded machine's slack)
        assert max(gaps) < FLEET_LEASE + every + 4, (name, gaps)
    expected = sorted(f"[zebra] {n}" for n in names)

    def got(path: str) -> list[str]:
        return sorted(
            body.get("title", "")
            for body, p in zip(
                list(webhook_server.received), list(webhook_server.received_paths), strict=False
            )
            if p == path
        )

    assert wait_until(lambda: got("/one") == expected and got("/two") == expected, 20), (
        got("/one"),
        got("/two"),
    )
    time.sleep(every)  # later passes and rounds of the survivors send nothing again
    assert got("/one") == expected and got("/two") == expected
    for replica, _ in fleet[1:]:
        code, _took = replica.stop(signal.SIGTERM)
        assert code == 0 and "Traceback" not in replica.err(), replica.err()[-2000:]


def test_two_replicas_claiming_at_once_get_disjoint_sources_and_a_dead_ones_lease_runs_out(
    pg_url: str,
) -> None:
    """The store's claims: disjoint between replicas, not renewed by a dead one (due again
    once its lease ends), fenced (a replica whose lease ran out cannot set the next due)."""
    a, b = Store(pg_url), Store(pg_url)
    a.migrate()
    now = datetime.now(UTC)
    names = [f"s{i}" for i in range(10)]
    a.schedule_sources(dict.fromkeys(names, now))
    got_a = a.claim_sources("a", now=now, lease=5, limit=6, sources=names)
    got_b = b.claim_sources("b", now=now, lease=60, limit=10, sources=names)
    assert len(got_a) == 6 and len(got_b) == 4
    assert not {n for n, _ in got_a} & {n for n, _ in got_b}
    assert b.claim_sources("b", now=now, lease=60, limit=10, sources=names) == []
    later = now + timedelta(seconds=6)  # a's lease ran out: its sources are due to b
    again = b.claim_sources("b", now=later, lease=60, limit=10, sources=names)
    assert sorted(n for n, _ in again) == sorted(n for n, _ in got_a)
    assert not a.finish_claim(got_a[0][0], "a", next_due=later + timedelta(hours=1))
    assert b.finish_claim(got_a[0][0], "b", next_due=later + timedelta(hours=1))
    assert b.next_due([got_a[0][0]])[got_a[0][0]] == later + timedelta(hours=1)
    a.close()
    b.close()


def test_a_second_daemon_on_the_same_sqlite_file_is_refused_with_a_clear_message(
    tmp_path: Path,
    make_site: Callable[..., NewsSite],
    workers: Callable[..., Worker],
) -> None:
    site = make_site(8, per_page=20)
    db = f"sqlite:///{tmp_path / 'worker.db'}"
    config = fleet_config(tmp_path / "w.toml", db, site, every="1s", sources=("alpha",))
    first = workers(config, "run", name="first")
    first.expect(lambda: first.passes("alpha") >= 1, STARTUP, "the first daemon's pass")
    second = workers(config, "run", name="second")
    assert second.proc.wait(timeout=STARTUP) == 1
    assert f"another `worker run` (pid {first.proc.pid}) is using this SQLite database" in (
        second.err()
    )
    assert "use PostgreSQL to run several replicas" in second.err()
    assert "Traceback" not in second.err()
    passes = first.passes("alpha")
    first.expect(lambda: first.passes("alpha") > passes, 10, "the first daemon keeps passing")
    code, _ = first.stop()
    assert code == 0


@pytest.mark.parametrize("configured", [True, False], ids=["[fleet] replica", "host:pid"])
def test_a_lone_sqlite_daemon_names_its_replica_and_schedules_alone(
    tmp_path: Path,
    make_site: Callable[..., NewsSite],
    workers: Callable[..., Worker],
    configured: bool,
) -> None:
    site = make_site(8, per_page=20)
    port = free_port()
    db = f"sqlite:///{tmp_path / 'worker.db'}"
    config = fleet_config(
        tmp_path / "w.toml",
        db,
        site,
        every="1s",
        port=port,
        replica="desk-1" if configured else None,
        sources=("alpha",),
    )
    daemon = workers(config, "run")
    daemon.expect(lambda: daemon.passes("alpha") >= 1, STARTUP, "a pass")
    status = get_json(f"http://127.0.0.1:{port}/healthz")
    assert status["schedule"] == "alone" and "replicas" not in status
    replica = str(status["replica"])
    assert replica == "desk-1" if configured else replica.endswith(f":{daemon.proc.pid}")
    code, _ = daemon.stop()
    assert code == 0


def test_replicas_finding_a_digest_due_at_once_cut_one_and_one_sends_a_watchdog_message(
    pg_url: str,
) -> None:
    """Two replicas deciding at once from what they read: one digest cut, not two; of two
    claims on a watchdog message one wins, and the message can be claimed again only once its
    send failed — never after it was marked sent."""
    from tests.test_store import Planner, items

    a, b = Store(pg_url), Store(pg_url)
    a.migrate()
    now = datetime.now(UTC)
    a.store_page("src", items("x", "y"), Planner({"rail": ("mail",)}), silent=False, now=now)
    seen = a.last_digest_at("mail", "rail")  # both replicas read "no digest yet"
    assert seen == b.last_digest_at("mail", "rail") is None
    assert a.cut_digest("mail", watchlist="rail", at=now, last=seen) is not None
    # a match queued meanwhile waits for the next digest: b's late cut takes nothing
    a.store_page("src", items("z"), Planner({"rail": ("mail",)}), silent=False, now=now)
    assert b.cut_digest("mail", watchlist="rail", at=now, last=seen) is None
    assert b.first_waiting_at("mail", "rail") is not None

    for _ in range(2):
        a.observe("stale", "src", bad=True, detail="nothing new", at=now)
    a.queue_notices(["desk"], at=now)
    b.queue_notices(["desk"], at=now)  # a replica queuing again queues nothing more
    first, second = (
        s.claim_notice(owner=o, channel="desk", now=now, lease=60) for s, o in ((a, "a"), (b, "b"))
    )
    assert first is not None and second is None
    # the send failed: another replica may try once it is due again
    a.mark_watchdog_failed(first.id, error="boom", done_targets=[], next_attempt_at=now, at=now)
    retry = b.claim_notice(owner="b", channel="desk", now=now, lease=60)
    assert retry is not None and retry.id == first.id
    b.mark_watchdog_sent(retry.id, at=now)
    later = now + timedelta(hours=1)
    assert a.claim_notice(owner="a", channel="desk", now=later, lease=60) is None
    assert [m["status"] for m in a.list_watchdog_messages()] == ["sent"]
    a.close()
    b.close()
