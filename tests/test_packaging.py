"""Packaging and start-up: a distribution name of our own with one version, PostgreSQL as an
extra, every import declared and every dependency capped; commands that touch no database load
no SQLAlchemy; the README's quick start is what CI runs."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import worker

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def requirement_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_the_distribution_name_is_not_the_taken_worker_and_the_commands_stay():
    assert PROJECT["name"] == "news-listing-worker"
    assert PROJECT["scripts"]["worker"] == "worker.cli:run"
    assert PROJECT["scripts"]["news-listing-worker"] == "worker.cli:run"


def test_the_license_is_an_spdx_string():
    assert PROJECT["license"] == "MIT"


def test_the_version_has_one_source():
    assert "version" not in PROJECT and "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "worker.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", worker.__version__)


def test_postgresql_support_is_an_extra_the_test_extra_pulls_in():
    names = {requirement_name(r) for r in PROJECT["dependencies"]}
    assert "psycopg" not in names
    assert [requirement_name(r) for r in PROJECT["optional-dependencies"]["postgres"]] == [
        "psycopg"
    ]
    assert f"{PROJECT['name']}[postgres]" in PROJECT["optional-dependencies"]["test"]


def test_every_dependency_has_an_upper_bound():
    extras = PROJECT["optional-dependencies"]
    reqs = [*PROJECT["dependencies"], *(r for group in extras.values() for r in group)]
    unbounded = [
        r
        for r in reqs
        if "<" not in r and not r.startswith(PROJECT["name"]) and not r.startswith("types-")
    ]
    assert unbounded == []


def third_party_imports() -> set[str]:
    """Top-level modules imported anywhere in the worker package, outside the standard library."""
    found = set()
    for path in (ROOT / "worker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    # compression (compression.zstd) is in the standard library from Python 3.14 on
    stdlib = sys.stdlib_module_names | {"compression"}
    return {m for m in found if m not in stdlib and m != "worker"}


def test_every_imported_package_is_declared_and_every_declared_one_imported():
    dists = importlib.metadata.packages_distributions()
    imported = {requirement_name(d) for m in third_party_imports() for d in dists.get(m, [m])}
    runtime = {requirement_name(r) for r in PROJECT["dependencies"]}
    postgres = {requirement_name(r) for r in PROJECT["optional-dependencies"]["postgres"]}
    declared = runtime | postgres
    assert imported - declared == set()  # e.g. httpcore (worker/transport.py)
    # declared but never imported: sniffio is httpcore's, lxml_html_clean trafilatura's (see
    # their comments in pyproject.toml)
    assert runtime - imported == {"sniffio", "lxml-html-clean"}  # watchfiles is gone


# --- start-up cost --------------------------------------------------------------------------------

PROBE = """
import sys
from worker.cli import run
try:
    code = run(sys.argv[1:])
except SystemExit as exc:  # --help
    code = exc.code
heavy = ("sqlalchemy", "alembic", "httpx", "apprise", "apscheduler", "psycopg")
print("LOADED", " ".join(m for m in heavy if m in sys.modules), file=sys.stderr)
raise SystemExit(code)
"""


def loaded(tmp_path: Path, *args: str) -> set[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if x.startswith("LOADED"))
    return set(line.split()[1:])


@pytest.mark.parametrize(
    ("args", "allowed"),
    [
        (["--help"], set()),
        (["once", "--help"], set()),
        (["schema"], set()),
        (["init", "{tmp}/w.toml"], set()),
        (["check"], {"apprise", "apscheduler"}),  # it checks channel URLs and cron lines
    ],
    ids=["--help", "once --help", "schema", "init", "check"],
)
def test_commands_that_touch_no_database_load_no_sqlalchemy(tmp_path, args, allowed):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert loaded(tmp_path, *args) <= allowed


# --- the quick start ------------------------------------------------------------------------------


def quick_start() -> list[str]:
    """The two commands of the README's Quick start block."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_quick_start_creates_a_venv_then_installs_and_runs():
    first, second = quick_start()
    assert first.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert "pip install ." in first and first.endswith("worker run")
    assert "pip install '.[test]'" in second and second.endswith("pytest")


def test_ci_runs_the_readme_quick_start_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    first, second = quick_start()
    install = first.rsplit(" && ", 1)[0]  # all but `worker run`, which would never end
    assert install in ci and second in ci


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("python", ["/usr/bin/python3", "python3"], ids=["system", "path"])
def test_the_readme_quick_start_works_in_a_fresh_clone(tmp_path, python):
    """From a fresh clone, with the system's (externally managed) Python and with the one on
    PATH: the first command installs and starts the daemon (stopped once it runs), `worker
    check` passes, `worker init` outside the clone writes a config the next command finds, and
    the second command's install works (its pytest run is CI's)."""
    if python.startswith("/") and not Path(python).exists():
        pytest.skip(f"{python} does not exist here")
    if python.startswith("/"):  # the case the quick start is for: pip refuses to install there
        stdlib = subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not (Path(stdlib) / "EXTERNALLY-MANAGED").exists():
            pytest.skip(f"{python} is not externally managed here")
    clone = tmp_path / "fresh"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix)
    )
    first, second = quick_start()
    first = first.replace("python3 -m venv", f"{python} -m venv", 1)
    install, _run = first.rsplit(" && ", 1)
    subprocess.run(["bash", "-c", install], cwd=clone, env=env, check=True, timeout=900)
    check = subprocess.run(
        ["bash", "-c", ". .venv/bin/activate && worker check && news-listing-worker --version"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert "config/worker.toml: OK" in check.stdout
    outside = tmp_path / "elsewhere"  # the installed copy carries its example config
    outside.mkdir()
    bin_dir = clone / ".venv" / "bin"
    home = dict(env, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    for argv in (["init"], ["check"]):
        proc = subprocess.run(
            [str(bin_dir / "worker"), *argv],
            cwd=outside,
            env=home,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
    assert f"{tmp_path / 'xdg' / 'worker' / 'worker.toml'}: OK" in proc.stdout
    daemon = subprocess.Popen(
        ["bash", "-c", ". .venv/bin/activate && exec worker run"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stderr is not None
        started = ""
        for line in daemon.stderr:  # no network: the passes fail, the daemon runs on
            started += line
            if "worker running: " in line:  # whatever the shipped config's sources number
                break
        assert daemon.poll() is None, started
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    assert daemon.returncode == 0
    test_install = second.rsplit(" && ", 1)[0]
    subprocess.run(
        ["bash", "-c", f". .venv/bin/activate && {test_install} && python3 -m pytest --version"],
        cwd=clone,
        env=env,
        check=True,
        timeout=900,
    )
