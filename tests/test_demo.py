"""`worker demo`: the whole loop offline; alerts must show on the console within 30 s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_demo_shows_alerts_on_the_console_within_30_seconds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONUNBUFFERED"] = "1"
    out_path, err_path = tmp_path / "demo.out", tmp_path / "demo.err"
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "demo", "--seconds", "25"],
            stdout=out,
            stderr=err,
            cwd=tmp_path,
            env=env,
        )
    try:

        def stdout() -> str:
            return out_path.read_text(encoding="utf-8", errors="replace")

        deadline = started + 30
        while time.monotonic() < deadline and "[rail] " not in stdout():
            assert proc.poll() is None, err_path.read_text()
            time.sleep(0.1)
        text = stdout()
        assert "[rail] Kazakhstan and China Open Second Railway Crossing at Khorgos" in text, (
            text + err_path.read_text()
        )
        seen_after = time.monotonic() - started
        # Ctrl-C stops it cleanly, before its 25 s are up
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = stdout()
    assert "[demo] local news site: http://127.0.0.1:" in text
    assert "[demo] published on the local site: Kazakhstan and China Open" in text
    assert "Link: http://127.0.0.1:" in text and "Keywords: railway" in text
    assert text.count("[rail] Kazakhstan and China Open Second Railway") == 1
    log = err_path.read_text()
    assert "first pass: stored silently" not in text  # the baseline alerted nothing
    assert "stopped in" in log and "Traceback" not in log
    assert seen_after < 30
