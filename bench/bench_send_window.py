"""The at-least-once window: from a finished send (the receiver has the alert) to `mark_sent`
committed. A process killed inside it resends that alert after a restart.

    python bench/bench_send_window.py [--sends 200] [--service-ms 30] [--backend sqlite|pg]

A local JSON webhook that takes `--service-ms` to act on each request, then answers; the real
delivery loop (`deliver_due`) with a real Store. Prints the cycle per send and the window's
median and 90th percentile. The sends a kill at a random moment doubles are, on average,
(service time + window) / cycle (Little's law: several sends are in flight at once; at most
MARK_BATCH of worker.notify.deliver): the service's own time counts, because the receiver acts
on a request whose sender has died.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worker.config import AlertsConfig
from worker.models import AlertPlan, Item
from worker.notify import Notifier, deliver_due
from worker.store import Store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--service-ms", type=float, default=30.0)
    parser.add_argument(
        "--db", default=None, help="an empty database's URL (default: a new SQLite file)"
    )
    args = parser.parse_args()
    acted: dict[str, float] = {}
    service = args.service_ms / 1000

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            time.sleep(service)
            acted[body["title"]] = time.monotonic()  # the receiver has acted on it
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    marked: dict[int, float] = {}

    class TimedStore(Store):
        def mark_sent(self, delivery_id: int, *, at: Any) -> None:
            super().mark_sent(delivery_id, at=at)
            marked[delivery_id] = time.monotonic()

        def mark_sent_many(self, sent: Any) -> None:  # the delivery loop records in batches
            super().mark_sent_many(sent)
            done = time.monotonic()
            marked.update({delivery_id: done for delivery_id, _ in sent})

    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/window.db"
    store = TimedStore(url)
    store.migrate()
    items = [Item(url=f"https://x.org/{i:06d}", title=f"T{i:06d}") for i in range(args.sends)]
    store.store_page("s", items, lambda _: [AlertPlan("w", ("t",), ("c",))], silent=False)
    notifier = Notifier({"c": [f"json://127.0.0.1:{server.server_port}/h"]}, timeout=10)
    started = time.monotonic()
    asyncio.run(deliver_due(store, notifier, AlertsConfig(send_timeout=10), owner="bench"))
    cycle = (time.monotonic() - started) / max(len(marked), 1)
    notifier.close()
    store.close()
    server.shutdown()
    # deliveries are started in id order, and ids follow the items' (sorted) URLs
    windows = [marked[i] - acted[t] for i, t in zip(sorted(marked), sorted(acted), strict=True)]
    windows.sort()
    p90 = windows[int(len(windows) * 0.9)]
    print(
        f"{len(windows)} sends: cycle {cycle * 1000:.1f} ms, service {args.service_ms:.0f} ms, "
        f"window (acted -> mark_sent committed) median {statistics.median(windows) * 1000:.1f} ms, "
        f"p90 {p90 * 1000:.1f} ms; a random kill doubles ~"
        f"{(service + statistics.median(windows)) / cycle:.2f} sends on average"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
