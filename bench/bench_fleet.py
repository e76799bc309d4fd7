"""A fleet on PostgreSQL: N sources on the local site, every S seconds, on 1, 2 and 3 replicas.

For each replica count: a fresh PostgreSQL database, the replicas started (`worker run`, each
with its own /metrics), a warm-up of one interval (every source's first pass), then a window of
`--seconds` in which it counts passes completed against passes due, the start lateness of the
passes (the replicas' `worker_pass_start_lateness_seconds` histograms: p50 and p99 as bucket
bounds), each replica's share of the passes, CPU (share of one core) and RSS, and each source's
page-1 requests at the site in the window (min/median/max: never two replicas passing a source
at once shows as no source far above window/interval). With `--kill`,
the last replica count also has one replica SIGKILLed halfway through the window; the site's
request log then says how long each source went without a pass (`max gap`).

    python bench/bench_fleet.py                                  # 3,000 sources every 60 s
    python bench/bench_fleet.py --sources 600 --every 20 --seconds 40 --kill
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from _common import PG_ADMIN_URL, machine, write_sources_config
from prometheus_client.parser import text_string_to_metric_families

from worker.site import NewsSite

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def fresh_database() -> Iterator[str]:
    import sqlalchemy as sa

    name = f"bench_fleet_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(
        PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    path: Path, db: str, site: NewsSite, n: int, every: int, port: int, i: int
) -> None:
    fleet = f'[fleet]\nreplica = "r{i}"\n'
    write_sources_config(
        path, database=db, search_url=site.search_url, n=n, every=every, port=port, extra=fleet
    )


def metrics(port: int) -> tuple[float, dict[float, float]]:
    """(passes completed, lateness histogram: upper bound -> cumulative count)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        text = response.read().decode()
    passes, buckets = 0.0, {}
    for family in text_string_to_metric_families(text):
        if family.name == "worker_passes":
            passes = sum(s.value for s in family.samples if s.name == "worker_passes_total")
        elif family.name == "worker_pass_start_lateness_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    buckets[float(s.labels["le"])] = s.value
    return passes, buckets


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> tuple[float, float]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def quantile(buckets: dict[float, float], q: float) -> str:
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return "-"
    for bound in sorted(buckets):
        if buckets[bound] >= q * total:
            return f"<= {bound:g} s" if bound != float("inf") else "> 300 s"
    return "?"


def wait_healthy(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


class RequestClock(threading.Thread):
    """Timestamps the site's page-1 requests of each source (polling its request log)."""

    def __init__(self, site: NewsSite) -> None:
        super().__init__(daemon=True)
        self.site = site
        self.times: dict[str, list[float]] = {}
        self.walls: dict[str, list[float]] = {}  # the same requests, time.time()
        self.stop = threading.Event()

    def run(self) -> None:
        seen = 0
        while not self.stop.wait(0.2):
            targets = list(self.site.requests)
            now, wall = time.monotonic(), time.time()
            for target in targets[seen:]:
                if target.startswith("/?") and "src=" in target:
                    name = target.rsplit("src=", 1)[1]
                    self.times.setdefault(name, []).append(now)
                    self.walls.setdefault(name, []).append(wall)
            seen = len(targets)


@dataclass
class Result:
    replicas: int
    due: float  # passes due in the window: sources x window / interval
    done: float  # passes completed in the window, by the whole fleet
    shares: list[float]  # passes of each replica alive at the end
    p50: str
    p99: str
    cpu: list[float]  # share of one core, per replica alive at the end
    rss: list[tuple[float, float]]  # MB now and peak, per replica alive at the end
    codes: list[int]  # exit codes after SIGTERM (-9: the replica killed)
    killed: bool
    max_gap: float  # seconds, the longest a source went without a pass (--kill)
    over_2x: int  # sources that went more than two intervals without a pass (--kill)
    per_source: tuple[int, int, int]  # page-1 requests of a source in the window: min/median/max
    lease_lost: int  # passes whose claim ran out before they ended (a heartbeat came too late)


def run_fleet(args: argparse.Namespace, replicas: int, kill: bool) -> Result:
    site = NewsSite.synthetic(8, per_page=20)
    site.start()
    clock = RequestClock(site)
    clock.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with fresh_database() as db, TemporaryDirectory() as tmp, ExitStack() as logs:
            ports = []
            for i in range(replicas):
                port = free_port()
                config = Path(tmp) / f"r{i}.toml"
                write_config(config, db, site, args.sources, args.every, port, i)
                ports.append(port)
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "worker", "--config", str(config), "run"],
                        stdout=subprocess.DEVNULL,
                        stderr=logs.enter_context(open(Path(tmp) / f"r{i}.err", "wb")),
                        start_new_session=True,
                    )
                )
            for port in ports:
                if not wait_healthy(port, 120):
                    raise SystemExit(f"a replica did not answer /healthz on {port}")
            time.sleep(args.every)  # warm-up: the first pass of every source
            before = [metrics(p) for p in ports]
            cpu_before = [cpu_seconds(p.pid) for p in procs]
            started = time.monotonic()
            killed_at = None
            victim_done = 0.0
            if kill:
                time.sleep(args.seconds / 2)
                victim_done = metrics(ports[0])[0] - before[0][0]  # its passes until the kill
                procs[0].send_signal(signal.SIGKILL)
                procs[0].wait()
                killed_at = time.monotonic()
                time.sleep(args.seconds / 2)
            else:
                time.sleep(args.seconds)
            window = time.monotonic() - started
            alive = [i for i, p in enumerate(procs) if p.poll() is None]
            after = {i: metrics(ports[i]) for i in alive}
            cpu_after = {i: cpu_seconds(procs[i].pid) for i in alive}
            rss = {i: rss_mb(procs[i].pid) for i in alive}
            done: dict[int, float] = {i: after[i][0] - before[i][0] for i in alive}
            late: dict[float, float] = {}
            for i in alive:
                for bound, count in after[i][1].items():
                    late[bound] = late.get(bound, 0.0) + count - before[i][1].get(bound, 0.0)
            per_source = sorted(
                sum(1 for t in clock.times.get(f"s{k:05d}", []) if started <= t <= started + window)
                for k in range(args.sources)
            )
            gaps = []
            if killed_at is not None:
                for ts in clock.times.values():
                    inside = [t for t in ts if t >= started]
                    gaps.append(max((b - a for a, b in itertools.pairwise(inside)), default=0.0))
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            codes = [p.wait(timeout=60) for p in procs]
            lease_lost = sum(
                (Path(tmp) / f"r{i}.err").read_text(errors="replace").count("claim ran out")
                for i in range(replicas)
            )
            return Result(
                replicas=replicas,
                due=args.sources * window / args.every,
                done=sum(done.values()) + victim_done,
                shares=[done[i] for i in alive],
                p50=quantile(late, 0.5),
                p99=quantile(late, 0.99),
                cpu=[(cpu_after[i] - cpu_before[i]) / window for i in alive],
                rss=[rss[i] for i in alive],
                codes=codes,
                killed=killed_at is not None,
                max_gap=max(gaps, default=0.0),
                over_2x=sum(1 for g in gaps if g > 2 * args.every),
                per_source=(per_source[0], per_source[len(per_source) // 2], per_source[-1]),
                lease_lost=lease_lost,
            )
    finally:
        clock.stop.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
        site.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=3000)
    parser.add_argument("--every", type=int, default=60, help="seconds between passes")
    parser.add_argument("--seconds", type=float, default=120, help="measured window")
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--kill", action="store_true", help="SIGKILL one replica (last run)")
    args = parser.parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    print(f"# {machine(postgres=True)}")
    print(f"# {args.sources} sources every {args.every} s; window {args.seconds:.0f} s")
    print(
        "replicas | done/due      | share per replica     | late p50 | late p99 | "
        "CPU per replica (1 core) | RSS MB (now/peak)   | per source | leases lost | exits"
    )
    for n, replicas in enumerate(counts):
        kill = args.kill and n == len(counts) - 1 and replicas > 1
        r = run_fleet(args, replicas, kill)
        total = sum(r.shares) or 1
        print(
            f"{replicas:8d} | {r.done:5.0f}/{r.due:5.0f} {r.done / r.due:4.0%} | "
            f"{', '.join(f'{s / total:.0%}' for s in r.shares):21s} | {r.p50:8s} | "
            f"{r.p99:8s} | {', '.join(f'{c:.0%}' for c in r.cpu):24s} | "
            f"{', '.join(f'{a:.0f}/{b:.0f}' for a, b in r.rss):19s} | "
            f"{'/'.join(str(n) for n in r.per_source):10s} | {r.lease_lost:11d} | {r.codes}"
        )
        if r.killed:
            print(
                f"         one replica SIGKILLed mid-window (shares: the survivors'); longest "
                f"gap between two passes of a source {r.max_gap:.1f} s; sources with a gap "
                f"over two intervals: {r.over_2x} of {args.sources}"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
