"""Before/after: the backfill of `worker once` run from several checkouts of `worker`, alternately.

    python bench/compare_checkouts.py NAME=PYTHONPATH [NAME=PYTHONPATH ...]
                                      [--rounds 5] [--mode next|page] [--delay 0]

Each NAME=PYTHONPATH runs `python -m worker once` with that PYTHONPATH (a directory holding a
`worker` package, e.g. a copy of the tree with a proposed patch applied; several directories
joined with ':' also work, e.g. to add a package), on an empty SQLite database against the same
local site (3,000 articles, 300 pages), in alternating order (reversed every other round). Prints
the medians of wall time, CPU time and the pass's own duration, and the peak RSS.

    cp -r worker /tmp/patched/ && (cd /tmp/patched && patch -p1 < .../bench/proposed/X.diff)
    python bench/compare_checkouts.py main=. patched=/tmp/patched --delay 0.02
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from _common import machine, median, pass_seconds, run_measured, worker_cmd, write_config

from worker.site import NewsSite


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("variants", nargs="+", metavar="NAME=PYTHONPATH")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mode", choices=("next", "page"), default="next")
    parser.add_argument("--delay", type=float, default=0.0, help="site delay per answer (s)")
    parser.add_argument("--articles", type=int, default=3000)
    args = parser.parse_args()
    variants = []
    for spec in args.variants:
        name, sep, path = spec.partition("=")
        if not sep or not name:
            parser.error(f"{spec!r}: expected NAME=PYTHONPATH")
        roots = [str(Path(p).resolve()) for p in path.split(os.pathsep)]
        variants.append((name, os.pathsep.join(roots)))

    print(f"machine: {machine()}")
    results: dict[str, list[tuple[float, float, float | None, float]]] = {
        n: [] for n, _ in variants
    }
    site = NewsSite.synthetic(args.articles, per_page=10)
    with site, tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp_name:
        tmp = Path(tmp_name)
        site.set_delay(args.delay)
        db = tmp / "worker.db"
        config = write_config(
            tmp / "worker.toml",
            database=f"sqlite:///{db}",
            search_url=site.search_url,
            page_url=site.page_url_template if args.mode == "page" else None,
        )
        for round_no in range(args.rounds):
            for name, pythonpath in variants if round_no % 2 == 0 else variants[::-1]:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
                measured = run_measured(
                    worker_cmd(config), cwd=tmp, env={**os.environ, "PYTHONPATH": pythonpath}
                )
                if measured.returncode != 0:
                    sys.exit(f"{name} failed:\n{measured.stdout}\n{measured.stderr[-2000:]}")
                results[name].append(
                    (
                        measured.wall,
                        measured.cpu,
                        pass_seconds(measured.stdout),
                        measured.max_rss_mb,
                    )
                )
                print(f"  round {round_no + 1} {name:12} {measured.wall:6.2f}s", flush=True)
    print(f"\n{args.mode}, site delay {args.delay * 1000:.0f} ms, medians of {args.rounds} rounds")
    for name, rows in results.items():
        passes = [r[2] for r in rows if r[2] is not None]
        print(
            f"  {name:12} wall {median([r[0] for r in rows]):6.2f}s  "
            f"cpu {median([r[1] for r in rows]):5.2f}s  "
            f"pass {median(passes) if passes else float('nan'):5.1f}s  "
            f"peak RSS {max(r[3] for r in rows):4.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
