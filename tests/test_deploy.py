"""The deploy files: the systemd unit verifies, the compose file parses, their config is valid.

deploy/check.sh (run by CI) does the same and installs the checkers when missing; here a check
whose tool is absent is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def _env() -> dict[str, str]:
    return {**os.environ, "POSTGRES_PASSWORD": "x", "WORKER_DATABASE_PASSWORD": "x"}


def test_systemd_unit_verifies_and_is_hardened(tmp_path: Path) -> None:
    unit = (DEPLOY / "worker.service").read_text()
    for line in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "StateDirectory=worker",
        "DynamicUser=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (CI's deploy/check.sh installs it)")
    # verify wants ExecStart's binary to exist: a stand-in of the same name, as check.sh does
    stand_in = tmp_path / "bin" / "worker"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    path = tmp_path / "worker.service"
    path.write_text(unit.replace("/opt/worker/venv/bin/worker", str(stand_in)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "Documentation=" not in line and "file:///opt/worker" not in line
    ]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    if security.returncode == 0 and found:
        assert float(found.group(1)) <= 2.0, security.stdout[-2000:]


def _compose() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        ok = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if ok.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_file_parses_and_mounts_the_config_folder() -> None:
    compose = _compose()
    if compose is None:
        pytest.skip(
            "neither `docker compose` nor docker-compose (CI's deploy/check.sh installs it)"
        )
    done = subprocess.run(
        [*compose, "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert set(services) == {"db", "worker"}
    worker = services["worker"]
    mounts = [
        str(v) if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in worker["volumes"]
    ]
    # the folder, not the file: edits by rename must reach the daemon
    assert any(m.split(":")[0].endswith("/deploy/config") and ":/config" in m for m in mounts), (
        mounts
    )
    assert worker["environment"]["WORKER_CONFIG"] == "/config/worker.toml"
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in worker and worker.get("read_only") is True


def test_compose_config_is_valid() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker",
            "--config",
            str(DEPLOY / "config" / "worker.toml"),
            "check",
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "OK (2 source(s)" in done.stdout
