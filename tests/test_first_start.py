"""Several processes starting at once on one new SQLite database: each switches it to WAL,
creates or finds the schema and writes, and none fails with "database is locked" (the switch
to WAL is retried within the busy timeout: worker/store/engine.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent

# Waits for the "go" file (so every process opens the database within a millisecond or two of
# the others), then does what a first start does: open, migrate, write one row.
# Waits for the "go" file, so every process opens the database within a millisecond or so of
# the others, then does what a first start does, from THREADS threads at once (a daemon opens
# several connections): open, migrate, write one row.
THREADS = 3
FIRST_START = f"""
import os, sys, threading, time
go, url = sys.argv[1], sys.argv[2]
from worker.store import Store
stores = [Store(url) for _ in range({THREADS})]
open(f"{{go}}.ready.{{os.getpid()}}", "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go")
    time.sleep(0.0005)
barrier = threading.Barrier({THREADS})
errors = []

def first_start(i):
    barrier.wait()
    try:
        stores[i].migrate()
        stores[i].record_pass(
            f"p{{os.getpid()}}-{{i}}", ok=True, error=None, pages=1, new=0, alerts=0, duration=0.1
        )
    except Exception as exc:
        errors.append(exc)
    finally:
        stores[i].close()

threads = [threading.Thread(target=first_start, args=(i,)) for i in range({THREADS})]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    sys.exit(f"first start failed: {{errors[0]}}")
"""


def start_together(
    tmp_path: Path, url: str, processes: int
) -> list[subprocess.CompletedProcess[str]]:
    go = tmp_path / f"go-{time.monotonic_ns()}"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_START, str(go), url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    deadline = time.monotonic() + 120  # every interpreter has imported the store and waits
    while len(list(tmp_path.glob(f"{go.name}.ready.*"))) < processes:
        assert time.monotonic() < deadline, "the processes did not start"
        assert all(p.poll() is None for p in procs), "a process ended before the start"
        time.sleep(0.01)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def check_one_database(url: str, results: list[subprocess.CompletedProcess[str]]) -> None:
    failures = [r.stderr.strip().splitlines()[-1:] for r in results if r.returncode != 0]
    assert not failures, failures
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.text("PRAGMA journal_mode")) == "wal"
            assert conn.scalar(sa.text("SELECT count(*) FROM alembic_version")) == 1
            rows = conn.scalar(sa.text("SELECT count(*) FROM sources"))
            assert rows == len(results) * THREADS
    finally:
        engine.dispose()


def test_six_processes_creating_one_sqlite_database_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    check_one_database(url, start_together(tmp_path, url, 6))


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_fifty_first_starts_of_six_processes_in_a_row_all_succeed(tmp_path: Path) -> None:
    for run in range(50):
        url = f"sqlite:///{tmp_path / f'new{run}.db'}"
        check_one_database(url, start_together(tmp_path, url, 6))
