"""Shared helpers of the benchmark scripts: the worker config, measured subprocesses, the machine."""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # after PYTHONPATH: another checkout of `worker` can be measured
    sys.path.append(str(ROOT))

from worker.demo import WATCHLISTS_TOML  # noqa: E402  (after the sys.path set-up above)
from worker.site import SELECT_TOML  # noqa: E402

PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")

# The local site's selectors (worker.site.SELECT_TOML) and the demo's watchlists, so
# that the worker matches every new article as it would in production (the baseline is silent:
# nothing is sent, but `would have alerted` is counted).
CONFIG = """\
database = "{database}"

[http]
min_delay = 0
concurrency = {concurrency}
per_host = {concurrency}
timeout = 30

[logging]
level = "WARNING"

[channels]
console = "console://"

[[sources]]
name = "bench"
url = "{search_url}"
max_pages = 10000
{page_url_line}
{select}
{watchlists}"""


def write_config(
    path: Path,
    *,
    database: str,
    search_url: str,
    page_url: str | None = None,
    concurrency: int = 8,
) -> Path:
    page_url_line = f'page_url = "{page_url}"\n' if page_url else ""
    path.write_text(
        CONFIG.format(
            select=SELECT_TOML,
            watchlists=WATCHLISTS_TOML,
            database=database,
            search_url=search_url,
            page_url_line=page_url_line,
            concurrency=concurrency,
        ),
        encoding="utf-8",
    )
    return path


def write_sources_config(
    path: Path, *, database: str, search_url: str, n: int, every: int, port: int, extra: str = ""
) -> None:
    """A daemon's config of `n` sources (`s00000`...) on one local search page, each every
    `every` seconds, /healthz and /metrics on `port`, logging at WARNING; `extra`: more TOML."""
    lines = [
        f'database = "{database}"',
        "",
        "[http]\nmin_delay = 0\nconcurrency = 32\nper_host = 32\ntimeout = 30\nretries = 0\n",
        f"[http_status]\nport = {port}\n",
        extra,
        '[logging]\nlevel = "WARNING"\n',
    ]
    for k in range(n):
        lines.append(
            f'[[sources]]\nname = "s{k:05d}"\nurl = "{search_url}&src=s{k:05d}"\n'
            f'every = "{every}s"\n{SELECT_TOML}'
        )
    path.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds, from fork to exit
    max_rss_mb: float  # peak resident set size of the child (ru_maxrss)
    cpu: float  # user + system seconds of the child
    returncode: int
    stdout: str
    stderr: str


# Runs the measured command as its child and reports that child's own rusage. Peak RSS cannot
# be read on a direct child of this script: Linux carries the forking process's peak RSS into
# the child's ru_maxrss (it is recorded again at exec), so every command would show this script's
# ~100 MB (the site, its 3,000 articles, the imports). A small launcher in between, forked from
# this script but forking the command itself, gives the command's own figure, as /usr/bin/time
# does.
_LAUNCHER = """
import json, os, subprocess, sys, time
report, cmd = sys.argv[1], json.loads(sys.argv[2])
started = time.perf_counter()
proc = subprocess.Popen(cmd)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - started
with open(report, "w") as out:
    json.dump({"wall": wall, "maxrss_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime,
               "code": os.waitstatus_to_exitcode(status)}, out)
"""


def run_measured(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 600.0,
    env: Mapping[str, str] | None = None,
) -> Measured:
    """Run `cmd` and return its wall time (fork to exit), CPU time and own peak RSS."""
    out_path = Path(cwd or ".") / f".bench-out-{os.getpid()}-{time.monotonic_ns()}"
    report = Path(f"{out_path}.json")
    launcher = [sys.executable, "-c", _LAUNCHER, str(report), json.dumps(list(cmd))]
    with open(f"{out_path}.stdout", "w+b") as out, open(f"{out_path}.stderr", "w+b") as err:
        proc = subprocess.Popen(
            launcher, cwd=cwd, stdout=out, stderr=err, env=env, start_new_session=True
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    for suffix in (".stdout", ".stderr"):
        Path(f"{out_path}{suffix}").unlink(missing_ok=True)
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):  # killed at the timeout
        data = {"wall": timeout, "maxrss_kb": 0, "cpu": 0.0, "code": -9}
    report.unlink(missing_ok=True)
    return Measured(
        wall=data["wall"],
        max_rss_mb=data["maxrss_kb"] / 1024,  # kilobytes on Linux
        cpu=data["cpu"],
        returncode=data["code"],
        stdout=stdout,
        stderr=stderr,
    )


def compile_worker() -> str:
    """Compile the measured `worker` package's modules to bytecode, as `pip install` does, and
    say so. Scrapy's modules, installed by pip, are compiled; a checkout run where
    PYTHONDONTWRITEBYTECODE is set (this machine sets it) would otherwise compile every module of
    the worker again at every start (~60 ms of the 0.5 s a `worker once` costs)."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("worker")
    assert spec is not None and spec.submodule_search_locations
    folder = next(iter(spec.submodule_search_locations))
    compileall.compile_dir(folder, quiet=1)
    return f"worker's bytecode compiled in {folder} (as pip installs it)"


def worker_cmd(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "worker", "--config", str(config), *extra, "once"]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _pg_version() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return f"PostgreSQL {row[0]}" if row else "PostgreSQL ?"
    except Exception as exc:  # only informative
        return f"PostgreSQL unavailable ({type(exc).__name__})"


def machine(*, postgres: bool = False) -> str:
    parts = [
        f"{_cpu_model()}, {os.cpu_count()} cores",
        f"Python {platform.python_version()}",
        f"SQLite {sqlite3.sqlite_version}",
    ]
    if postgres:
        parts.append(_pg_version())
    parts.append(f"{platform.system()} {platform.release()}")
    parts.append(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    return "; ".join(parts)


_PASS_RE = re.compile(r"\((\d+(?:\.\d+)?)s; ")


def pass_seconds(stdout: str) -> float | None:
    """The crawl duration the worker prints on its pass line ("... (3.3s; last page ...)")."""
    match = _PASS_RE.search(stdout)
    return float(match.group(1)) if match else None
