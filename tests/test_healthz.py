"""/healthz from a snapshot (issue #15 item 3): it answers while the event loop is blocked, a
summary by default, each source's detail on request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.test_daemon import (
    TimedRuntime,
    daemon_running,
    fake_config,
    free_port,
    http_get,
    wait_for,
)
from worker.config import SourceConfig, parse_config
from worker.crawl import CrawlReport
from worker.daemon import Daemon
from worker.daemon import snapshot as snapshot_module
from worker.daemon.snapshot import HealthSnapshot, LoopState
from worker.fetch import Fetcher
from worker.pipeline import PassReport
from worker.store import Store


class HoggingRuntime(TimedRuntime):
    """Passes that sleep on the loop's thread (a deliberately slow, CPU-bound pass): the event
    loop answers nothing while one runs."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.hogging = threading.Event()
        self.hogged = threading.Event()

    async def run_pass(self, source: SourceConfig) -> PassReport:
        if source.name == "hog" and not self.hogged.is_set():
            await asyncio.sleep(1.5)  # let the others pass and the snapshot be read first
            self.hogging.set()
            time.sleep(4.0)  # noqa: ASYNC251 (blocks the loop on purpose)
            self.hogged.set()
        return await super().run_pass(source)


async def test_healthz_answers_fast_while_the_event_loop_is_blocked(tmp_path: Path) -> None:
    port = free_port()
    names = ["hog", *(f"s{i}" for i in range(5))]
    text = fake_config(tmp_path, names, every="1h") + f"\n[http_status]\nport = {port}\n"
    path = tmp_path / "worker.toml"
    path.write_text(text)
    config = parse_config(text, path)
    store = Store(config.database)
    store.migrate()
    answers: list[tuple[float, int, dict[str, object], bool]] = []

    def probe() -> None:  # from another thread, as a probe would
        runtime.hogging.wait(20)
        while not runtime.hogged.is_set():
            started = time.monotonic()
            code, body = http_get(f"http://127.0.0.1:{port}/healthz")
            answers.append(
                (time.monotonic() - started, code, json.loads(body), not runtime.hogged.is_set())
            )
            time.sleep(0.2)

    async with Fetcher(config.http) as fetcher:
        runtime = HoggingRuntime(config, store, fetcher, 0.01)
        daemon = Daemon(runtime, path)
        task = asyncio.create_task(daemon.serve())
        try:
            prober = threading.Thread(target=probe)
            prober.start()
            await wait_for(runtime.hogged.is_set, 30)
            await asyncio.to_thread(prober.join, 10)
        finally:
            daemon.stop()
            await asyncio.wait_for(task, 10)
            store.close()
    during = [a for a in answers if a[3]]  # answered while the loop was blocked
    assert len(during) >= 5, answers
    assert max(seconds for seconds, *_ in during) < 1.0, [round(a[0], 3) for a in during]
    assert all(code == 200 and body["status"] == "ok" for _, code, body, _ in during)
    counts = during[-1][2]["source_counts"]
    assert counts == {  # type: ignore[comparison-overlap]
        "total": 6,
        "ok": 5,
        "failing": 0,
        "never_passed": 1,
        "running": 1,
        "breaker_open": 0,
    }


async def test_healthz_is_a_compact_summary_with_each_source_on_request(tmp_path: Path) -> None:
    port = free_port()
    names = [f"s{i}" for i in range(3)]
    text = fake_config(tmp_path, names, every="1h") + f"\n[http_status]\nport = {port}\n"
    async with daemon_running(tmp_path, text, delay=0.01) as (_, runtime):
        await wait_for(lambda: len(runtime.runs) >= 3, 10)
        await asyncio.sleep(1.5)  # a publication of the loop's state after the passes
        url = f"http://127.0.0.1:{port}/healthz"
        code, summary_text = await asyncio.to_thread(http_get, url)
        _, detail_text = await asyncio.to_thread(http_get, url + "?detail=sources")
        _, path_text = await asyncio.to_thread(http_get, url + "/sources")
    assert code == 200
    assert "\n " not in summary_text and ": " not in summary_text  # compact
    summary = json.loads(summary_text)
    assert "sources" not in summary
    assert summary["status"] == "ok" and summary["database"] == "ok"
    assert summary["source_counts"]["total"] == 3 and summary["failing_sources"] == []
    for text_ in (detail_text, path_text):
        detail = json.loads(text_)
        assert sorted(detail["sources"]) == names
        s0 = detail["sources"]["s0"]
        assert s0["ok"] is True and s0["next_run"] is not None and s0["breaker"] == "closed"


class _CostlyStore:
    """A store whose source rows cost 50 ms of CPU to read, as 3,000 sources' rows do."""

    def __init__(self) -> None:
        self.reads = 0

    def ping(self) -> bool:
        return True

    def source_status(self, *, passed_since: object = None) -> list[Any]:
        self.reads += 1
        started = time.thread_time()
        while time.thread_time() - started < 0.05:
            pass
        return []

    def open_incidents(self) -> list[dict[str, Any]]:
        return []


def test_the_health_refresh_spends_at_most_a_tenth_of_its_time_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # its reads hold the interpreter lock the event loop needs; with passes ending all the time
    # (a poke each) it read back to back: ~20 reads in a second here, a quarter of a core at
    # 3,000 sources
    monkeypatch.setattr(snapshot_module, "HEALTH_POKED", 0.0)
    store = _CostlyStore()
    snapshot = HealthSnapshot(store, replica="r", fleet=False)  # type: ignore[arg-type]
    poking = threading.Event()

    def poke() -> None:
        while not poking.wait(0.005):
            snapshot.poke()

    poker = threading.Thread(target=poke, daemon=True)
    poker.start()
    snapshot.start()
    time.sleep(1.5)
    snapshot.stop(wait=2)
    poking.set()
    poker.join()
    # 50 ms read, then 450 ms of rest: 3 or 4 reads in 1.5 s (a loaded machine: fewer)
    assert 1 <= store.reads <= 4, store.reads


def _looping(names: list[str]) -> LoopState:
    return LoopState(at=time.monotonic(), running=True, sources=names)


def _failed(name: str) -> PassReport:
    return PassReport(source=name, ok=False, crawl=CrawlReport(source=name), error="boom")


def test_a_handful_of_sources_shows_a_pass_in_the_very_next_answer(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    snapshot = HealthSnapshot(store, replica="r", fleet=False)
    snapshot.publish(_looping(["a", "b", "c"]))
    snapshot.refresh()
    for _ in range(50):  # answers back to back: none of them reused across a pass's end
        assert snapshot.compose()["failing_sources"] == []
    snapshot.observe_pass(_failed("b"))
    assert snapshot.compose()["failing_sources"] == ["b"]
    store.close()


def test_the_walk_over_many_sources_is_reused_for_a_second_while_passes_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /healthz polled as fast as it answers at 20,000 sources, passes ending all the time: the
    # walk over every source is redone once a second (COMPOSE_FOR), not for every answer
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    snapshot = HealthSnapshot(store, replica="r", fleet=False)
    names = [f"s{i:05d}" for i in range(20_000)]
    snapshot.publish(_looping(names))
    snapshot.refresh()
    walks: list[float] = []
    by_source = snapshot_module._by_source

    def counted(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return by_source(*args, **kwargs)
        finally:
            walks.append(time.thread_time() - started)

    monkeypatch.setattr(snapshot_module, "_by_source", counted)
    started = time.monotonic()
    assert snapshot.compose()["source_counts"]["never_passed"] == 20_000
    assert walks[0] > snapshot_module.COMPOSE_FREE  # (else this machine needs more sources)
    answers = 1
    while snapshot.compose()["failing_sources"] != ["s00007"]:
        answers += 1
        snapshot.observe_pass(_failed("s00007"))  # passes end all the time
        assert time.monotonic() - started < 10
    waited = time.monotonic() - started
    assert len(walks) == 2, walks
    assert answers > 10 and snapshot_module.COMPOSE_FOR <= waited < 5, (answers, waited)
    # nothing changed since the last walk: its answer stands, however long ago it was made
    assert snapshot.compose()["failing_sources"] == ["s00007"] and len(walks) == 2
    detail = snapshot.compose(detail=True)  # the detail is a walk of its own
    assert len(walks) == 3 and detail["sources"]["s00007"]["ok"] is False
    store.close()


class _CountingStore:
    """A real store that notes the `passed_since` of each read of the sources' rows."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads: list[datetime | None] = []
        self.rows_read = 0

    def ping(self) -> bool:
        return self.store.ping()

    def source_status(self, *, passed_since: datetime | None = None) -> list[Any]:
        self.reads.append(passed_since)
        rows = self.store.source_status(passed_since=passed_since)
        self.rows_read += len(rows)
        return rows

    def open_incidents(self) -> list[dict[str, Any]]:
        return self.store.open_incidents()


def _record(store: Store, name: str, at: datetime, *, ok: bool = True) -> None:
    store.record_pass(
        name, ok=ok, error=None if ok else "boom", pages=1, new=0, alerts=0, duration=0.1, at=at
    )


def test_between_two_full_reads_the_refresh_reads_only_the_rows_of_new_passes(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    names = [f"s{i}" for i in range(50)]
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    for name in names:
        _record(store, name, long_ago)
    counting = _CountingStore(store)
    snapshot = HealthSnapshot(counting, replica="r", fleet=False)  # type: ignore[arg-type]
    snapshot.publish(_looping(names))
    snapshot.refresh()
    assert counting.rows_read == 50 and counting.reads == [None]
    _record(store, "s3", datetime.now(UTC), ok=False)  # another replica's failed pass
    snapshot.refresh(changed_only=True)
    since = counting.reads[-1]
    assert since is not None and since > long_ago
    assert counting.rows_read == 51  # only s3's row
    summary = snapshot.compose()
    assert summary["failing_sources"] == ["s3"] and summary["source_counts"]["ok"] == 49
    # a row that changed without a newer pass (written by hand here) shows at the next full read
    with contextlib.closing(sqlite3.connect(tmp_path / "w.db")) as db, db:
        db.execute("UPDATE sources SET last_error = 'hand' WHERE name = 's9'")
    snapshot.refresh(changed_only=True)
    assert "s9" not in snapshot.compose()["failing_sources"]
    snapshot.refresh()
    assert snapshot.compose()["failing_sources"] == ["s3", "s9"]
    store.close()


def test_the_refresh_thread_reads_every_row_again_every_health_full_seconds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(snapshot_module, "HEALTH_POKED", 0.0)
    monkeypatch.setattr(snapshot_module, "HEALTH_READ_SHARE", 1.0)  # no rest after a read
    monkeypatch.setattr(snapshot_module, "HEALTH_REFRESH", 0.02)
    monkeypatch.setattr(snapshot_module, "HEALTH_FULL", 0.3)
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    counting = _CountingStore(store)
    snapshot = HealthSnapshot(counting, replica="r", fleet=False)  # type: ignore[arg-type]
    snapshot.start()
    time.sleep(1.0)
    snapshot.stop(wait=2)
    full = sum(since is None for since in counting.reads)
    changed = len(counting.reads) - full
    assert counting.reads[0] is None  # the first read is a full one
    assert 2 <= full <= 5 and changed > 2 * full, counting.reads
    store.close()
