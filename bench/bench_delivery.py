"""Delivery throughput: N queued alerts sent by the real delivery loop to local servers.

    python bench/bench_delivery.py [--alerts 1000] [--kinds email,email-tls,webhook]
                                   [--repeat 3] [--profile DIR]

Each receiver runs in a subprocess of its own (this script with `--serve`), so that its CPU
does not share this process's interpreter: `email` is aiosmtpd in plain SMTP (a `mailto://`
URL with `mode=insecure`), `email-tls` the same server with STARTTLS and a self-signed
certificate (`mailtos://...&mode=starttls&verify=no`), `webhook` a threaded HTTP/1.1 server
answering `json://` posts. The alerts are queued in a fresh SQLite store, then `deliver_due`
runs rounds (500 alerts a round, as the daemon does) until the queue is empty. Prints
messages/s, the SMTP sessions (TCP connections) the server saw and the most requests it had at
once. `--profile DIR` writes a pyinstrument profile (HTML and text) of the first run of each
kind: pyinstrument sees the event loop's thread only; `--sample-threads` prints, for the first
run of each kind, the frames most often on the stacks of every thread (wall-clock samples every
millisecond: the sending threads and the store's too).

Measures the `worker` package on PYTHONPATH: `PYTHONPATH=/path/to/other/checkout python
bench/bench_delivery.py` gives the other tree's figures (the "before" of a change).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # after PYTHONPATH: another checkout of `worker` can be measured
    sys.path.append(str(ROOT))

KINDS = ("email", "email-tls", "webhook")


# --- the receivers (run in a subprocess: `bench_delivery.py --serve KIND`) ---------------------


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages = 0
        self.peers: set[object] = set()
        self.active = 0
        self.max_active = 0

    def enter(self, peer: object) -> None:
        with self.lock:
            self.peers.add(peer)
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1
            self.messages += 1

    def stats(self) -> dict[str, float]:
        with self.lock:
            return {
                "messages": self.messages,
                "connections": len(self.peers),
                "max_at_once": self.max_active,
                "cpu": time.process_time(),
            }


def _serve(kind: str, workdir: Path) -> None:
    counts = _Counts()
    if kind == "webhook":
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive when the client wants it
            wbufsize = 65536  # the answer in one write (headers then body apart: Nagle's 40 ms)

            def do_POST(self) -> None:
                counts.enter(self.client_address)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                counts.leave()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.request_queue_size = 128
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
    else:
        import ssl

        from aiosmtpd.controller import Controller

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                counts.enter(session.peer)
                counts.leave()
                return "250 OK"

        tls = None
        if kind == "email-tls":
            cert, key = workdir / "cert.pem", workdir / "key.pem"
            openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
            subprocess.run(
                [*openssl, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                check=True,
                capture_output=True,
            )
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, key)
        import socket

        with socket.socket() as probe:  # a free port (aiosmtpd checks it is up by connecting)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(
            Handler(), hostname="127.0.0.1", port=port, tls_context=tls, ready_timeout=10.0
        )
        controller.start()
    print(json.dumps({"port": port}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps(counts.stats()), flush=True)
        elif line.strip() == "reset":
            with counts.lock:
                counts.messages, counts.peers, counts.max_active = 0, set(), 0
            print(json.dumps(counts.stats()), flush=True)


class Receiver:
    def __init__(self, kind: str, workdir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--workdir", str(workdir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self._read()["port"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the receiver did not start")
        data: dict[str, Any] = json.loads(line)
        return data

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)


def channel_url(kind: str, port: int) -> str:
    to, sender = quote("desk@example.org"), quote("worker@example.org")
    if kind == "email":
        return f"mailto://127.0.0.1:{port}?smtp=127.0.0.1&mode=insecure&from={sender}&to={to}"
    if kind == "email-tls":
        return (
            f"mailtos://127.0.0.1:{port}?smtp=127.0.0.1&mode=starttls&verify=no"
            f"&from={sender}&to={to}"
        )
    return f"json://127.0.0.1:{port}/hook"


# --- one run -------------------------------------------------------------------------------


class _ThreadSampler:
    """Samples the stacks of every other thread each millisecond (wall clock)."""

    def __init__(self) -> None:
        import collections

        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == self._thread.ident:
                    continue
                kind = names.get(ident, "?").split("_")[0]
                seen = set()
                f: Any = frame
                while f is not None:
                    where = f"{Path(f.f_code.co_filename).name}:{f.f_code.co_name}"
                    if where not in seen:
                        seen.add(where)
                        self.counts[(kind, where)] += 1
                    f = f.f_back
            time.sleep(0.001)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def print_top(self, n: int) -> None:
        skip = ("threading.py", "thread.py:_worker", "thread.py:run", "runners.py", "events.py")
        rows = [(c, k, w) for (k, w), c in self.counts.most_common() if not w.startswith(skip)]
        for count, kind, where in rows[:n]:
            print(f"  {count:6d} {kind:10s} {where}")


def run_once(
    kind: str, receiver: Receiver, n: int, workdir: Path, profile: Path | None, sample: bool = False
) -> dict:
    from worker.config import AlertsConfig
    from worker.models import AlertPlan, Item
    from worker.notify import Notifier, deliver_due
    from worker.store import Store

    server_cpu = receiver.ask("reset")["cpu"]
    db = workdir / f"{kind}-{time.monotonic_ns()}.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    items = [
        Item(
            url=f"https://news.example.org/{i:06d}",
            title=f"Railway <news> & more {i:06d}",
            summary="A summary of the article, long enough to look like one. " * 3,
        )
        for i in range(n)
    ]
    for start in range(0, n, 500):
        store.store_page(
            "s",
            items[start : start + 500],
            lambda _: [AlertPlan("w", ("railway",), ("c",))],
            silent=False,
        )
    notifier = Notifier({"c": [channel_url(kind, receiver.port)]}, timeout=10)
    alerts = AlertsConfig(send_timeout=10)

    async def drain() -> tuple[int, int]:
        sent = rounds = 0
        while True:
            report = await deliver_due(store, notifier, alerts, owner="bench", limit=500)
            rounds += 1
            sent += report.sent
            if report.sent == 0 or sent >= n:
                return sent, rounds

    sampler = _ThreadSampler() if sample else None
    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005, async_mode="disabled")
        profiler.start()
    cpu0, started = time.process_time(), time.perf_counter()
    sent, rounds = asyncio.run(drain())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu0
    if sampler is not None:
        sampler.stop()
        sampler.print_top(40)
    if profiler is not None and profile is not None:
        profiler.stop()
        profile.mkdir(parents=True, exist_ok=True)
        out = profile / f"delivery-{kind}.html"
        out.write_text(profiler.output_html(), encoding="utf-8")
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        out.with_suffix(".txt").write_text(text, encoding="utf-8")
        print(f"  profile: {out}", flush=True)
    notifier.close()
    store.close()
    db.unlink(missing_ok=True)
    time.sleep(0.3)  # the last sessions' QUIT reach the server
    stats = receiver.ask("stats")
    return {
        "sent": sent,
        "received": stats["messages"],
        "rounds": rounds,
        "wall": wall,
        "cpu": cpu,
        "rate": sent / wall,
        "connections": stats["connections"],
        "max_at_once": stats["max_at_once"],
        "server_cpu": stats["cpu"] - server_cpu,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--sample-threads", action="store_true")
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.workdir)
        return 0
    import logging

    logging.basicConfig(level=logging.ERROR)  # the worker logs one INFO line per alert sent
    import worker

    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    print(f"worker from {Path(worker.__file__).parent.parent}; {args.alerts} alerts per run")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for kind in kinds:
            receiver = Receiver(kind, workdir)
            try:
                runs = []
                for i in range(args.repeat):
                    profile = args.profile if i == 0 else None
                    sample = args.sample_threads and i == 0
                    result = run_once(kind, receiver, args.alerts, workdir, profile, sample)
                    runs.append(result)
                    print(
                        f"  {kind:9} run {i + 1}: {result['rate']:7.1f} messages/s "
                        f"({result['sent']} sent, {result['received']} received, "
                        f"{result['wall']:.2f} s, CPU {result['cpu']:.2f} s "
                        f"(receiver {result['server_cpu']:.2f} s), "
                        f"{result['rounds']} rounds, {result['connections']} connections, "
                        f"{result['max_at_once']} at once at most)",
                        flush=True,
                    )
            finally:
                receiver.close()
            rates = [r["rate"] for r in runs]
            print(
                f"{kind:9} median {statistics.median(rates):7.1f} messages/s "
                f"(min {min(rates):.1f}, max {max(rates):.1f}; "
                f"CPU {statistics.median(r['cpu'] for r in runs) / args.alerts * 1000:.2f} ms "
                f"per message)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
