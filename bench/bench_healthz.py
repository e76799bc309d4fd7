"""One daemon, N sources every S seconds (SQLite): how its passes are spread and how fast
/healthz answers.

A lone `worker run` (SQLite, /healthz on), N sources on the local site, each every S seconds.
After a warm-up of one interval (every source's first pass), for `--seconds`: /healthz polled
every 0.1 s (the summary; with `--detail`, also `?detail=sources`): p50, p95, p99, max latency;
and from the site's request log, each source's page-1 requests: the largest number of passes
started in one second (a bunched schedule shows as a wave of N), and the share of the gaps
between two passes of a source within 10 % of the interval.

    python bench/bench_healthz.py                      # 1,000 sources every 60 s, 120 s window
    python bench/bench_healthz.py --sources 300 --every 20 --seconds 40
    PYTHONPATH=/path/to/other/checkout python bench/bench_healthz.py   # the same, other code
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from tempfile import TemporaryDirectory

from _common import ROOT, machine, write_sources_config
from bench_fleet import CLOCK_TICKS, RequestClock, cpu_seconds, free_port, rss_mb, wait_healthy

from worker.daemon.schedule import spread_offset
from worker.site import NewsSite


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU of one thread of `pid` (the daemon's event loop is its main thread)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def write_config(path: Path, db: Path, site: NewsSite, n: int, every: int, port: int) -> None:
    write_sources_config(
        path, database=f"sqlite:///{db}", search_url=site.search_url, n=n, every=every, port=port
    )


class Poller(threading.Thread):
    """GET `url` every 0.1 s; the latency of each answer (seconds; a timeout counts as 10 s)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.times: list[float] = []
        self.sizes: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    self.sizes.append(len(response.read()))
            except urllib.error.HTTPError as exc:
                self.sizes.append(len(exc.read()))
            except OSError:
                self.times.append(10.0)
                continue
            self.times.append(time.monotonic() - started)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--every", type=int, default=60)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--detail", action="store_true", help="also poll ?detail=sources")
    args = parser.parse_args()
    print(machine())
    print(f"worker from {os.environ.get('PYTHONPATH') or ROOT}")
    site = NewsSite.synthetic(8, per_page=20)
    site.start()
    with TemporaryDirectory() as tmp:
        port = free_port()
        config = Path(tmp) / "worker.toml"
        write_config(config, Path(tmp) / "w.db", site, args.sources, args.every, port)
        env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--config", str(config), "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not wait_healthy(port, 120):
                raise SystemExit("the daemon did not answer /healthz")
            clock = RequestClock(site)
            clock.start()
            time.sleep(args.every)  # warm-up: the first pass of every source
            pollers = [Poller(f"http://127.0.0.1:{port}/healthz")]
            if args.detail:
                pollers.append(Poller(f"http://127.0.0.1:{port}/healthz?detail=sources"))
            cpu_before = cpu_seconds(proc.pid)
            loop_before = thread_cpu_seconds(proc.pid, proc.pid)
            window_start = time.monotonic()
            for poller in pollers:
                poller.start()
            time.sleep(args.seconds)
            for poller in pollers:
                poller.stop.set()
            loop_cpu = thread_cpu_seconds(proc.pid, proc.pid) - loop_before
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                lateness = [
                    line.split("{", 1)[1]
                    for line in r.read().decode().splitlines()
                    if line.startswith("worker_pass_start_lateness_seconds_bucket")
                ]
            cpu = (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - window_start)
            _, peak = rss_mb(proc.pid)
            clock.stop.set()
        finally:
            proc.terminate()
            proc.wait(30)
            site.stop()
    print(f"{args.sources} sources every {args.every} s; window {args.seconds} s after a warm-up")
    for poller in pollers:
        t = poller.times
        print(
            f"{poller.url.rsplit('/', 1)[1]:<25} {len(t)} answers, "
            f"{statistics.median(poller.sizes or [0]):.0f} bytes: p50 {pct(t, 0.5) * 1000:.1f} "
            f"ms, p95 {pct(t, 0.95) * 1000:.1f} ms, p99 {pct(t, 0.99) * 1000:.1f} ms, "
            f"max {max(t or [0]) * 1000:.1f} ms"
        )
    starts = [s for times in clock.times.values() for s in times if s >= window_start]
    per_second = collections.Counter(int(s - window_start) for s in starts)
    gaps = [
        b - a
        for times in clock.times.values()
        for a, b in itertools.pairwise(times)
        if a >= window_start
    ]
    near = sum(abs(g - args.every) <= 0.1 * args.every for g in gaps)
    print(
        f"passes started in the window: {len(starts)} (due ~{args.sources * args.seconds / args.every:.0f}); "
        f"most in one second: {max(per_second.values() or [0])}; "
        f"gaps within 10 % of the interval: {near}/{len(gaps)} "
        f"({100 * near / max(1, len(gaps)):.1f} %)"
    )
    # each pass's start after its source's grid point (k * interval + offset): the jitter
    # (0 to 10 % of the interval) plus how late the daemon started it; not the first pass
    # recorded of a source (the start-up wave's, off the grid)
    wall_start = time.time() - (time.monotonic() - window_start)
    after = [
        (wall - spread_offset(name, args.every)) % args.every
        for name, walls in clock.walls.items()
        for wall in walls[1:]
        if wall >= wall_start
    ]
    print(
        f"start after the grid point (jitter <= {0.1 * args.every:.0f} s + lateness, 0.2 s "
        f"steps): p50 {pct(after, 0.5):.1f} s, p90 {pct(after, 0.9):.1f} s, "
        f"p99 {pct(after, 0.99):.1f} s"
    )
    print(  # since the start: the start-up wave included
        "passes started this late after their scheduled run (jitter included), cumulative: "
        + ", ".join(b.replace('le="', "<=").replace('"} ', " s: ") for b in lateness)
    )
    print(f"CPU {100 * cpu:.0f} % of one core, peak RSS {peak:.0f} MB")
    print(
        f"event loop's thread: {100 * loop_cpu / args.seconds:.0f} % of one core, "
        f"{1000 * loop_cpu / max(1, len(starts)):.2f} ms of CPU per pass started"
    )


if __name__ == "__main__":
    main()
