"""The spread schedule (issue #15 item 1): stable offsets, passes on a grid, a paced start."""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.interval import IntervalTrigger

from tests.test_daemon import TimedRuntime, daemon_running, fake_config, source_toml, wait_for
from worker.config import parse_config
from worker.daemon.fleet import FleetJobs
from worker.daemon.jobs import Passes
from worker.daemon.schedule import (
    START_BURST,
    START_RATE,
    START_SPREAD,
    SpreadTrigger,
    next_tick,
    spread_offset,
    start_wave,
)
from worker.daemon.tasks import Tasks
from worker.fetch import Fetcher
from worker.store import Store

NAMES = [f"source-{i:04d}" for i in range(1000)]


def test_offsets_are_stable_across_processes_and_spread_evenly_over_the_interval() -> None:
    offsets = [spread_offset(name, 60.0) for name in NAMES]
    assert all(0 <= o < 60 for o in offsets)
    # another process (another PYTHONHASHSEED) finds the same offsets: a restart or another
    # replica of a fleet keeps the grid
    script = (
        "from worker.daemon.schedule import spread_offset\n"
        f"print(repr([spread_offset(f'source-{{i:04d}}', 60.0) for i in range({len(NAMES)})]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).parent.parent)},
    ).stdout
    assert eval(out) == offsets  # our own repr of floats
    per_second = collections.Counter(math.floor(o) for o in offsets)
    assert len(per_second) == 60  # every second of the minute has some
    assert max(per_second.values()) <= 35, per_second.most_common(3)  # ~17 a second on average
    # without the spread, all 1,000 were due in the same second


def test_passes_of_one_source_fall_on_its_grid_an_interval_apart() -> None:
    trigger = SpreadTrigger("news", 60.0, jitter=6.0)
    assert isinstance(trigger, IntervalTrigger) and trigger.jitter == 6.0
    now = datetime(2026, 1, 1, 12, 0, 0, 300000, tzinfo=UTC)
    fired: list[datetime] = []
    previous = None
    for _ in range(200):
        previous = trigger.get_next_fire_time(previous, now)
        assert previous is not None
        fired.append(previous)
        now = previous + timedelta(seconds=0.05)  # the scheduler runs it a moment later
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(fired)]
    assert all(54 <= gap <= 66 for gap in gaps), (min(gaps), max(gaps))  # within 10 %
    assert 59 < sum(gaps) / len(gaps) < 61  # the jitter does not accumulate: no drift
    offset = trigger.offset
    for when in fired:
        assert 0 <= (when.timestamp() - offset) % 60 <= 6.0 + 1e-6  # grid point plus jitter


def test_a_pass_longer_than_its_interval_coalesces_into_the_next_grid_point() -> None:
    trigger = SpreadTrigger("slow", 10.0, jitter=0.0)
    due = next_tick("slow", 10.0, datetime(2026, 1, 1, tzinfo=UTC))
    ended = due + timedelta(seconds=25)  # missed two grid points
    when = trigger.get_next_fire_time(due, ended)
    assert when == next_tick("slow", 10.0, ended) and when > ended
    assert (when - due).total_seconds() == pytest.approx(30.0)


def test_the_fleet_sets_next_due_on_the_same_grid_so_replicas_keep_the_spread() -> None:
    trigger = SpreadTrigger("shared", 30.0, jitter=0.0)
    due = next_tick("shared", 30.0, datetime.now(UTC) - timedelta(seconds=31))
    when = FleetJobs.next_due(None, trigger, due, None)  # type: ignore[arg-type]
    assert when > datetime.now(UTC)
    assert (when.timestamp() - trigger.offset) % 30 == pytest.approx(0, abs=1e-3) or (
        when.timestamp() - trigger.offset
    ) % 30 == pytest.approx(30, abs=1e-3)


def test_a_handful_of_sources_all_start_at_once_and_a_big_wave_is_paced() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    few = start_wave([f"s{i}" for i in range(5)], now)
    assert set(few.values()) == {now}
    wave = start_wave(NAMES, now)
    delays = [(at - now).total_seconds() for at in wave.values()]
    assert sum(d == 0 for d in delays) == START_BURST
    per_second = collections.Counter(math.floor(d) for d in delays)
    assert max(per_second.values()) <= START_BURST + START_RATE
    assert max(delays) <= START_SPREAD
    huge = start_wave([f"s{i}" for i in range(10_000)], now)
    assert max((at - now).total_seconds() for at in huge.values()) <= START_SPREAD


async def test_a_daemon_passes_a_few_sources_at_once_and_paces_sixty(tmp_path: Path) -> None:
    few = [f"few{i}" for i in range(4)]
    async with daemon_running(tmp_path, fake_config(tmp_path, few, every="1h"), 0.01) as (
        _,
        runtime,
    ):
        started = time.monotonic()
        await wait_for(lambda: len(runtime.runs) >= 4, 5)
        assert time.monotonic() - started < 1.5  # all at start, as before
    (tmp_path / "w.db").unlink()
    many = [f"many{i:02d}" for i in range(60)]
    async with daemon_running(tmp_path, fake_config(tmp_path, many, every="1h"), 0.01) as (
        _,
        runtime,
    ):
        await wait_for(lambda: len(runtime.runs) >= 60, 15)
        await asyncio.sleep(0.3)
    starts = sorted(run[1] for run in runtime.runs)
    assert len(starts) == 60  # each one once (every 1h)
    first = starts[0]
    assert sum(s - first < 0.25 for s in starts) >= START_BURST  # the burst at once, then ...
    assert starts[-1] - first > 1.0  # ... the other 40 paced at 20 a second (~2 s), not bunched


async def test_a_fleet_starting_from_nothing_paces_its_first_passes_in_the_schedule(
    pg_url: str, tmp_path: Path
) -> None:
    names = [f"f{i:02d}" for i in range(60)]
    text = f'database = "{pg_url}"\n\n' + "".join(
        source_toml(name, f"http://127.0.0.1:9/{name}/", every="1h") for name in names
    )
    config = parse_config(text, tmp_path / "worker.toml")
    store = Store(config.database)
    store.migrate()
    try:
        async with Fetcher(config.http) as fetcher:
            runtime = TimedRuntime(config, store, fetcher, 0.01)
            passes = Passes(runtime, Tasks(), asyncio.Event(), lambda report: None)
            jobs = FleetJobs(passes, "pacer")
            jobs.halt.set()  # no claims: the schedule as the join wrote it
            started = datetime.now(UTC)
            await jobs.start()
            due = await asyncio.to_thread(store.next_due, names)
            await jobs.close()
    finally:
        store.close()
    delays = sorted((due[name] - started).total_seconds() for name in names)
    assert sum(d < 0.5 for d in delays) == START_BURST  # a burst at once, then ...
    per_second = collections.Counter(math.ceil(d - 0.5) for d in delays)  # steps of a second
    assert max(per_second.values()) <= START_BURST  # ... 20 a second, not 60 at once
    assert 1.5 <= delays[-1] <= 3.5


async def test_a_daemon_alone_counts_how_late_each_pass_started(tmp_path: Path) -> None:
    # worker_pass_start_lateness_seconds: a fleet's replica had it; a daemon alone now too
    names = [f"late{i:02d}" for i in range(30)]
    async with daemon_running(tmp_path, fake_config(tmp_path, names, every="1h"), 0.01) as (
        daemon,
        runtime,
    ):
        await wait_for(lambda: len(runtime.runs) >= 30, 10)
        count = daemon.metrics.registry.get_sample_value("worker_pass_start_lateness_seconds_count")
        late = daemon.metrics.registry.get_sample_value("worker_pass_start_lateness_seconds_sum")
    assert count == 30
    # the first START_BURST at once, the other 10 paced: each started when it was due
    assert late is not None and late < 30 * 0.5, late
