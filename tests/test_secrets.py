"""Planted secrets (issue #9): a config whose passwords and tokens come from the environment, run
through every command that reads it as a real program with `-v` (search, why, feed and probe
included), and the daemon with a refused reload and a failing channel: not one output line, log
line or error holds a secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.test_hostile import SELECT, StaticServer

ROOT = Path(__file__).resolve().parent.parent

SECRETS = {
    "SMTP_PW": "Planted-smtp-pw-7f3a9c",
    "HOOK_PW": "Planted-hook-pw-91be2d",
    "DEAD_PW": "Planted-dead-pw-0c44e1",
    "SRC_PW": "Planted-src-pw-5d7710",
    "DB_PW": "Planted-db-pw-a8f2b3",
}


@pytest.fixture
def listing() -> object:
    server = StaticServer()
    yield server
    server.close()


def _with_password(db_url: str) -> str:
    """The database URL with `${DB_PW}` as its password (PostgreSQL's trust auth ignores it)."""
    if not db_url.startswith("postgresql"):
        return db_url
    scheme, rest = db_url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user.split(':')[0]}:${{DB_PW}}@{host}"


def _config(tmp_path: Path, db_url: str, server: StaticServer, smtp, webhook) -> Path:
    base = server.base.replace("http://", "http://bob:${SRC_PW}@")
    server.listing("/list", [(server.base + "/a/1", "Railway opens", "The new line.")])
    mail = smtp.url(user="desk", password="PLACEHOLDER").replace("PLACEHOLDER", "${SMTP_PW}")
    hook = f"json://user:${{HOOK_PW}}@127.0.0.1:{webhook.port}/hook"
    dead = "json://user:${DEAD_PW}@127.0.0.1:9/down"
    path = tmp_path / "w.toml"
    path.write_text(
        f'database = "{_with_password(db_url)}"\n\n[http]\nmin_delay = 0\ntimeout = 5\n'
        'retries = 0\n\n[alerts]\nretry_base = "1s"\nsend_timeout = "5s"\n\n'
        f'[channels]\nmail = "{mail}"\nhook = "{hook}"\ndead = "{dead}"\n\n'
        f'[[sources]]\nname = "s"\nurl = "{base}/list"\nalert_backfill = true\n{SELECT}\n'
        f'[[sources]]\nname = "gone"\nurl = "{base}/missing"\n{SELECT}\n'
        '[[watchlists]]\nname = "rail"\nkeywords = ["railway"]\n'
        'channels = ["mail", "hook", "dead"]\n'
    )
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **SECRETS}


def _run(config: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "-v", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        cwd=config.parent,
    )
    return f"$ worker {' '.join(args)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}"


def _leaks(text: str) -> list[str]:
    forms = {v for s in SECRETS.values() for v in (s, quote(s, safe=""), s[:12])}
    return sorted(f for f in forms if f in text)


def test_no_command_and_no_daemon_log_line_shows_a_planted_secret(
    tmp_path, db_url, listing, smtp_server, webhook_server
) -> None:
    config = _config(tmp_path, db_url, listing, smtp_server, webhook_server)
    outputs = [
        _run(config, "check"),
        _run(config, "once"),  # sends (mail, hook), fails (dead, the missing source)
        _run(config, "articles"),
        _run(config, "articles", "--json"),
        _run(config, "alerts"),
        _run(config, "alerts", "--json"),
        _run(config, "alerts", "--status", "pending"),
        _run(config, "test-alert"),
        _run(config, "alerts", "--retry"),
        _run(config, "search", "railway"),
        _run(config, "why", listing.base + "/a/1"),
        _run(config, "why", "--json", listing.base + "/a/1"),
        _run(config, "feed", "rail"),
        _run(config, "probe", listing.base + "/list"),
    ]
    assert smtp_server.wait_for(2) and webhook_server.wait_for(2)  # the alerts and the tests
    assert any(login[2] == SECRETS["SMTP_PW"] for login in smtp_server.logins)  # it was used
    broken = tmp_path / "broken.toml"
    broken.write_text(
        config.read_text()
        .replace("alert_backfill = true", 'every = "${SRC_PW}"', 1)
        .replace("http://bob:", "ftp://bob:", 1)
    )
    outputs.append(_run(broken, "check"))
    assert "sources[0].every: '****' is not a duration" in outputs[-1]
    assert "dead: FAILED" in outputs[7] and "json://user:****@127.0.0.1:9/down" in outputs[7]
    # the reading commands did read: the article, its deliveries, the feed, the proposed block
    assert all("Railway opens" in outputs[i] for i in (9, 10, 12)), outputs[9:14]
    codes = [out.splitlines()[0].rsplit(" ", 1)[1] for out in outputs[9:14]]
    assert codes == ["0"] * 4 + ["1"], outputs[9:14]  # one article is no listing to probe
    assert "no listing found" in outputs[13]

    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "-v", "--config", str(config), "run"],
            stdout=err,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 60
            while "pass source=gone" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            good = config.read_text()
            config.write_text(broken.read_text())  # refused reload: logs the masked problems
            while "reload refused" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            config.write_text(good)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    daemon = log.read_text()
    assert "config reload refused" in daemon and "pass source=gone" in daemon
    outputs.append(daemon)
    everything = "\n".join(outputs)
    assert "Traceback" not in everything
    assert _leaks(everything) == [], everything
