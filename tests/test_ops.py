"""Operations conventions: JSON and journald logs, metrics, /healthz on a refused reload, the
systemd unit and the container's health check, the metrics port and the User-Agent.

Behaviours of a command run the real `worker` in a subprocess against the local news site.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import worker
from tests import test_daemon
from tests.test_daemon import (
    ALERT,
    STARTUP,
    Worker,
    child_env,
    config_toml,
    free_port,
    http_get,
    source_toml,
    wait_until,
    watchlist_toml,
)
from worker.health import DEFAULT_PORT
from worker.logs import JsonFormatter
from worker.site import NewsSite

ROOT = Path(__file__).resolve().parent.parent

workers = test_daemon.workers  # the fixture: `worker run` subprocesses, killed at teardown


def once_config(tmp_path: Path, site: NewsSite, *, logging_toml: str = "", extra: str = "") -> Path:
    config = tmp_path / "worker.toml"
    config.write_text(
        config_toml(
            tmp_path,
            channels={"console": "console://"},
            sources=source_toml("news", site.search_url, extra=extra),
            watchlists=watchlist_toml("rail", ["rail*"], ["console"]),
        )
        + logging_toml,
        encoding="utf-8",
    )
    return config


def run_once(
    config: Path, *, env: dict[str, str] | None = None, **kw
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "once", "-v"],
        capture_output=True,
        text=True,
        cwd=config.parent,
        env=env or child_env(),
        timeout=120,
        **kw,
    )


# --- logs ----------------------------------------------------------------------------------------


def test_json_logs_write_one_object_a_line_with_the_pass_fields_as_keys(
    tmp_path: Path, news_site: NewsSite
) -> None:
    config = once_config(tmp_path, news_site, logging_toml='\n[logging]\nformat = "json"\n')
    done = run_once(config)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    assert records
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record["time"])
    (line,) = [r for r in records if r["message"].startswith("pass ")]
    assert line["level"] == "INFO" and line["logger"] == "worker.pipeline"
    assert line["source"] == "news" and line["ok"] is True and line["baseline"] is True
    assert line["pages"] == 4 and line["new"] == len(news_site.articles())
    assert line["error"] is None and line["stop"].startswith("last page")


def test_json_logs_give_each_delivery_its_watchlist_channel_and_attempt_as_keys(
    tmp_path: Path, news_site: NewsSite
) -> None:
    config = once_config(
        tmp_path,
        news_site,
        logging_toml='\n[logging]\nformat = "json"\n',
        extra="alert_backfill = true",
    )
    done = run_once(config)
    assert done.returncode == 0, done.stderr
    sent = [json.loads(line) for line in done.stderr.splitlines() if "alert sent" in line]
    assert sent
    for record in sent:
        assert record["watchlist"] == "rail" and record["channel"] == "console"
        assert record["attempt"] == 1 and record["outcome"] == "sent"
        assert record["article"].startswith(news_site.base_url)


def test_a_traceback_goes_into_the_exception_key_of_its_json_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.ops.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed", extra={"source": "news"})
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "it failed" and record["level"] == "ERROR"
    assert record["source"] == "news"
    assert "ValueError: boom" in record["exception"] and "Traceback" in record["exception"]


def _journal_run(config: Path, journal_stream: Callable[[os.stat_result], str]) -> str:
    """`worker once` with standard error on a pipe and JOURNAL_STREAM as `journal_stream` says."""
    read_end, write_end = os.pipe()
    st = os.fstat(write_end)
    env = child_env() | {"JOURNAL_STREAM": journal_stream(st)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--config", str(config), "once", "-v"],
            stdout=subprocess.DEVNULL,
            stderr=write_end,
            cwd=config.parent,
            env=env,
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as err:
        text = err.read()
    assert proc.wait(timeout=120) == 0, text
    return text


def test_under_journald_log_lines_leave_out_the_time_and_lead_with_the_priority(
    tmp_path: Path, news_site: NewsSite
) -> None:
    config = once_config(tmp_path, news_site)
    text = _journal_run(config, lambda st: f"{st.st_dev}:{st.st_ino}")
    lines = text.splitlines()
    assert any(line.startswith("<6>INFO worker.pipeline: pass source=news") for line in lines)
    assert all(re.match(r"<[0-7]>", line) for line in lines), lines
    assert not any(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) for line in lines)


def test_a_journal_stream_that_is_not_standard_error_keeps_the_time(
    tmp_path: Path, news_site: NewsSite
) -> None:
    config = once_config(tmp_path, news_site)
    text = _journal_run(config, lambda st: f"{st.st_dev}:{st.st_ino + 1}")  # a parent's journal
    (line,) = [line for line in text.splitlines() if "pass source=news" in line]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO worker.pipeline: ", line)


# --- metrics and /healthz ------------------------------------------------------------------------


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, body = http_get(f"http://127.0.0.1:{port}/metrics")
    assert code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_metrics_count_pending_alerts_and_have_no_created_series(
    tmp_path: Path, news_site: NewsSite, workers: Callable[..., Worker]
) -> None:
    port = free_port()
    config = tmp_path / "worker.toml"
    # a channel nobody listens on: every alert stays pending, retried later
    config.write_text(
        config_toml(
            tmp_path,
            channels={"down": f"json://127.0.0.1:{free_port()}/hook"},
            sources=source_toml(
                "news", news_site.search_url, every="1h", extra="alert_backfill = true"
            ),
            watchlists=watchlist_toml("rail", ["rail*"], ["down"]),
            port=port,
        )
    )
    daemon = workers(config, "run")
    daemon.expect(lambda: daemon.passes("news", ok=True) >= 1, STARTUP, "the first pass")
    daemon.expect(lambda: "alert not sent" in daemon.err(), ALERT, "a failed attempt")
    samples = _samples(port)
    pending = samples[("worker_alerts_pending", ())]
    assert pending >= 3  # the rail articles of the sample site
    assert samples[("worker_articles_stored", ())] == len(news_site.articles())
    assert samples[("worker_config_last_reload_successful", ())] == 1
    assert not [name for name, _ in samples if name.endswith("_created")]
    assert daemon.stop()[0] == 0


def test_a_refused_reload_shows_in_healthz_and_in_the_reload_gauge(
    tmp_path: Path, news_site: NewsSite, workers: Callable[..., Worker]
) -> None:
    port = free_port()
    config = tmp_path / "worker.toml"
    good = config_toml(
        tmp_path,
        channels={"console": "console://"},
        sources=source_toml("news", news_site.search_url, every="1h"),
        watchlists=watchlist_toml("rail", ["rail*"], ["console"]),
        port=port,
    )
    config.write_text(good)
    daemon = workers(config, "run")
    daemon.expect(lambda: daemon.passes("news", ok=True) >= 1, STARTUP, "the first pass")
    code, body = http_get(f"http://127.0.0.1:{port}/healthz?strict=1")
    assert code == 200, body
    assert json.loads(body)["config"]["reload"] is None

    config.write_text(good.replace('every = "1h"', 'every = "often"'))
    daemon.expect(lambda: "config reload refused" in daemon.err(), ALERT, "the refused reload")
    code, body = http_get(f"http://127.0.0.1:{port}/healthz")
    assert code == 200  # it runs on the last good config
    health = json.loads(body)["config"]
    assert health["reload"] == "refused" and health["at"]
    assert any("sources[0].every" in p for p in health["problems"]), health
    assert http_get(f"http://127.0.0.1:{port}/healthz?strict=1")[0] == 503
    assert _samples(port)[("worker_config_last_reload_successful", ())] == 0

    config.write_text(good.replace('every = "1h"', 'every = "2h"'))
    assert wait_until(
        lambda: _samples(port)[("worker_config_last_reload_successful", ())] == 1, ALERT
    )
    code, body = http_get(f"http://127.0.0.1:{port}/healthz?strict=1")
    assert code == 200 and json.loads(body)["config"]["reload"] == "applied"
    assert daemon.stop()[0] == 0


# --- deploy --------------------------------------------------------------------------------------


def test_systemd_does_not_restart_a_worker_that_refused_its_config(tmp_path: Path) -> None:
    unit = (ROOT / "deploy" / "worker.service").read_text(encoding="utf-8")
    assert re.search(r"^RestartPreventExitStatus=2$", unit, re.MULTILINE)
    assert re.search(r"^Restart=on-failure$", unit, re.MULTILINE)
    config = tmp_path / "worker.toml"
    config.write_text('[http]\ntimeout = "soon"\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "run"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 2, done.stderr  # the status the unit does not restart on
    assert "http.timeout" in done.stderr


def test_the_containerfile_health_check_probes_healthz_with_the_worker_itself() -> None:
    text = (ROOT / "deploy" / "Containerfile").read_text(encoding="utf-8")
    check = re.search(r"^HEALTHCHECK ((?:[^\n]*\\\n)*[^\n]*)", text, re.MULTILINE)
    assert check is not None
    assert 'CMD ["python", "-m", "worker.health"]' in check.group(1)
    assert f"EXPOSE {DEFAULT_PORT}" in text
    assert f"port = {DEFAULT_PORT}" in text  # the image's own config serves it


def test_the_health_probe_exits_0_while_the_daemon_runs_and_1_once_it_stopped(
    tmp_path: Path, news_site: NewsSite, workers: Callable[..., Worker]
) -> None:
    port = free_port()
    config = tmp_path / "worker.toml"
    config.write_text(
        config_toml(
            tmp_path,
            channels={"console": "console://"},
            sources=source_toml("news", news_site.search_url, every="1h"),
            watchlists=watchlist_toml("rail", ["rail*"], ["console"]),
            port=port,
        )
    )
    env = child_env() | {"WORKER_CONFIG": str(config)}

    def probe() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.health"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    daemon = workers(config, "run")
    daemon.expect(lambda: daemon.passes("news", ok=True) >= 1, STARTUP, "the first pass")
    ok = probe()
    assert ok.returncode == 0, ok.stderr
    assert f"http://127.0.0.1:{port}/healthz: ok" in ok.stdout
    assert daemon.stop()[0] == 0
    down = probe()
    assert down.returncode == 1 and f"127.0.0.1:{port}/healthz" in down.stderr


def test_the_health_probe_says_so_and_passes_when_the_listener_is_off(tmp_path: Path) -> None:
    config = tmp_path / "worker.toml"
    config.write_text("", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "worker.health", str(config)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 0 and "no health listener" in done.stdout


def test_the_documented_metrics_port_is_outside_the_exporters_range_everywhere() -> None:
    # 9100-9999 is Prometheus's exporter range, fully allocated (9187 is postgres_exporter)
    assert not 9100 <= DEFAULT_PORT <= 9999
    for path in (
        "README.md",
        "deploy/Containerfile",
        "deploy/compose.yaml",
        "deploy/config/worker.toml",
    ):
        text = (ROOT / path).read_text(encoding="utf-8")
        assert not re.search(r"port = 9187|:9187", text), path
        assert str(DEFAULT_PORT) in text, path


# --- User-Agent ----------------------------------------------------------------------------------


def test_the_user_agent_names_the_homepage_in_pyproject() -> None:
    with open(ROOT / "pyproject.toml", "rb") as file:
        homepage = tomllib.load(file)["project"]["urls"]["Homepage"]
    assert homepage.startswith("https://") and "example" not in homepage
    assert worker.USER_AGENT == f"worker/{worker.__version__} (news listing monitor; +{homepage})"
    from worker.config import HttpConfig

    assert HttpConfig().user_agent == worker.USER_AGENT


def test_another_installed_distribution_named_worker_is_not_taken_for_ours(tmp_path: Path) -> None:
    # a stranger's "worker" (the name is taken on the package index) installed on sys.path
    info = tmp_path / "site" / "worker-9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: worker\nVersion: 9.9\n"
        "Project-URL: Homepage, https://stranger.example.org/\n",
        encoding="utf-8",
    )
    env = child_env() | {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path / 'site'}"}
    done = subprocess.run(
        [sys.executable, "-c", "import worker; print(worker.USER_AGENT)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == worker.USER_AGENT
    assert "stranger" not in done.stdout


def test_an_installed_copy_reads_its_homepage_from_its_own_metadata(tmp_path: Path) -> None:
    # an install without pyproject.toml beside it: site-packages/worker + its dist-info
    import shutil

    site = tmp_path / "site"
    shutil.copytree(ROOT / "worker", site / "worker", ignore=shutil.ignore_patterns("__pycache__"))
    info = site / "news_listing_worker-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: news-listing-worker\nVersion: 0.1.0\n"
        "Project-URL: Homepage, https://installed.example.net/worker\n",
        encoding="utf-8",
    )
    env = child_env() | {"PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-c", "import worker; print(worker.__file__); print(worker.USER_AGENT)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    where, agent = done.stdout.splitlines()
    assert where == str(site / "worker" / "__init__.py")
    assert agent.endswith("(news listing monitor; +https://installed.example.net/worker)")


def test_a_reload_that_switches_to_json_logs_applies_to_the_next_lines(
    tmp_path: Path, news_site: NewsSite, workers: Callable[..., Worker]
) -> None:
    config = tmp_path / "worker.toml"
    text = config_toml(
        tmp_path,
        channels={"console": "console://"},
        sources=source_toml("news", news_site.search_url, every="1s"),
        watchlists=watchlist_toml("rail", ["rail*"], ["console"]),
    )
    config.write_text(text)
    daemon = workers(config, "run")
    daemon.expect(lambda: daemon.passes("news", ok=True) >= 1, STARTUP, "the first pass")
    config.write_text(text + '\n[logging]\nformat = "json"\n')
    daemon.expect(lambda: '"message": "config reloaded' in daemon.err(), ALERT, "the reload")
    daemon.expect(lambda: '"message": "pass source=news' in daemon.err(), ALERT, "a JSON pass line")
    complete = daemon.err().rsplit("\n", 1)[0]  # a line being written is left out
    after = complete.split('"message": "config reloaded', 1)[1].splitlines()[1:]
    assert after and all(json.loads(line)["logger"] for line in after)
    assert daemon.stop()[0] == 0
