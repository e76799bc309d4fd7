from worker.cli import run

raise SystemExit(run())
