"""Config fuzz (issue #9): mutated configs fed to `worker check` and to a running daemon's reload
end as a config accepted (and usable) or refused with the key named: never a traceback, never a
dead config watcher. A seeded mutator (reproducible: the seed and the case number are in every
failure message); a few hundred cases in the default suite, thousands behind `-m slow`."""

from __future__ import annotations

import io
import math
import random
import re
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.test_config import GOOD
from tests.test_daemon import daemon_running, fake_config, wait_for
from worker.cli import main
from worker.config import Config, ConfigError, parse_config
from worker.daemon.schedule import trigger_for

ROOT = Path(__file__).resolve().parent.parent

FULL = GOOD.replace(
    "[channels]",
    """[http]
user_agent = "worker-test/1"
timeout = "20s"
min_delay = "500ms"
concurrency = 4
retries = 2
max_bytes = 1048576

[alerts]
retry_base = "30s"
retry_max = "1h"
max_attempts = 10
send_timeout = "60s"

[logging]
level = "INFO"

[channels]""",
).replace('every = "15m"', 'every = "15m"\npage_url = "https://example.org/page/{page}/?s=x"') + (
    '\n[[sources]]\nname = "s2"\nurl = "https://example.org/b"\ncron = "*/5 * * * *"\n'
    '[sources.select]\nitem = "li"\ntitle = "a"\nlink = { css = "a", attr = "href" }\n'
    'published = { css = "time", attr = "datetime" }\n'
)

BASES = [GOOD, FULL, (ROOT / "config" / "worker.toml").read_text()]

NASTY = [
    "nan",
    "inf",
    "-inf",
    "+inf",
    "-nan",
    "1e300",
    "-1e300",
    "1e-300",
    "0",
    "-0",
    "-1",
    "0.0",
    "9223372036854775807",
    "18446744073709551616",
    "99999999999999999999999999",
    "true",
    "[]",
    "{}",
    '""',
    '" "',
    '"nan"',
    '"inf"',
    '"1e300s"',
    '"99999999999d"',
    '"0s"',
    '"-5s"',
    '"5x"',
    '"{page.foo}"',
    '"https://e.org/{page[0]}"',
    '"https://e.org/{page:>99999999999}"',
    '"https://e.org/{page!r}"',
    '"https://e.org/{}"',
    '"https://e.org/{page}{"',
    '"https://e.org/{page}"',
    '"http://xn--zz.example/"',
    '"https://ex\\u200dample.org/"',
    '"https://' + "a" * 64 + '.org/"',
    '"http://[::1"',
    '"http://user:pw@[::1]:99999/"',
    '"wörker/1"',
    '"a\\r\\nb"',
    '"\\u0000"',
    '"' + "x" * 5000 + '"',
    '"💥"',
    '"*"',
    '"!!"',
    '"rail*"',
    '"*/0 * * * *"',
    '"61 * * * *"',
    '"console://"',
    '"nosuchscheme://tok@x"',
    '"json://127.0.0.1:9/h"',
    '"mailto://u:p@[::1"',
    '"${WORKER_FUZZ_UNSET}"',
    '"${HOME}"',
    '["a", 1]',
    "[[]]",
    '{ css = "" }',
    '{ css = "[[", attr = 1 }',
    '{ css = "a", x = 1 }',
    "[" * 40 + "]" * 40,
    "[" * 700 + "]" * 700,
    "{a=" * 30 + "1" + "}" * 30,
    "1979-05-27T07:32:00Z",
    "0x7fffffffffffffff",
    "1_000_000_000_000",
]

SNIPPETS = [
    "every = nan",
    "every = inf",
    "every = 1e300",
    'every = "0s"',
    "send_timeout = 0",
    "[alerts]\nsend_timeout = 0",
    "[alerts]\nretry_max = 1e300",
    "[http]\ntimeout = nan",
    '[http]\nuser_agent = "wörker"',
    "[http]\nmax_bytes = 1e300",
    "[http]\nconcurrency = 1e9",
    'page_url = "https://e.org/{page.foo}"',
    'page_url = "https://e.org/{page:>99999999999}"',
    'url = "http://xn--zz.example/"',
    "x = " + "[" * 600 + "]" * 600,
    "[[sources]]",
    "[[watchlists]]",
    "[sources.select]",
    "[channels]",
    '[channels]\nc = ""',
    "[logging]\nlevel = 3",
    'cron = "* * * * * * *"',
    "max_pages = 0",
    "overlap_pages = 1e300",
    'name = "a b"',
    'database = "sqlite:///' + "x" * 300 + '"',
    "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r = 1",
    'keywords = ["' + "w " * 3000 + '"]',
    "[http_status]\nhost = 5",
]


def mutate(rng: random.Random, text: str) -> str:
    """One to four random edits of a config's text: a value replaced by a nasty one, a snippet
    inserted, a line deleted, doubled or cut, random characters put in."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        i = rng.randrange(len(lines)) if lines else 0
        if op < 0.45 and lines:
            candidates = [k for k, line in enumerate(lines) if re.match(r"\s*[\w.]+\s*=", line)]
            if candidates:
                k = rng.choice(candidates)
                key = lines[k].split("=", 1)[0]
                lines[k] = f"{key}= {rng.choice(NASTY)}"
        elif op < 0.7:
            lines.insert(i, rng.choice(SNIPPETS))
        elif op < 0.8 and lines:
            del lines[i]
        elif op < 0.87 and lines:
            lines.insert(i, lines[i])
        elif op < 0.93 and lines:
            cut = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:cut]
        elif lines:
            chars = "[]{}\"'=.,#\\\n\t\x00é💥${}"
            line = lines[i]
            at = rng.randrange(len(line) + 1)
            lines[i] = line[:at] + "".join(rng.choice(chars) for _ in range(3)) + line[at:]
    return "\n".join(lines)


def cases(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return [mutate(rng, rng.choice(BASES)) for _ in range(n)]


def assert_usable(config: Config) -> None:
    """What the daemon does with an accepted config's values must not raise."""
    now = datetime.now(UTC)
    for seconds in (
        config.http.timeout,
        config.http.min_delay,
        config.alerts.retry_base,
        config.alerts.retry_max,
        config.alerts.send_timeout,
        *(s.interval for s in config.sources),
    ):
        assert math.isfinite(seconds) and seconds >= 0
        now + timedelta(seconds=seconds * 2**10)  # backoff and lease arithmetic
    assert config.alerts.send_timeout > 0 and config.http.timeout > 0
    assert httpx.Headers({"User-Agent": config.http.user_agent}).raw  # encodes it as ASCII
    for source in config.sources:
        trigger_for(source)
        httpx.URL(source.url)
        if source.page_url:
            httpx.URL(source.page_url.format(page=99999))


def check_all(texts: list[str], seed: int) -> tuple[int, int]:
    accepted = refused = 0
    for n, text in enumerate(texts):
        try:
            config = parse_config(text, "fuzz.toml", env={"HOME": "/home/x"})
        except ConfigError as exc:
            assert exc.problems and all(p.strip() for p in exc.problems), (seed, n)
            refused += 1
        except Exception as exc:  # pragma: no cover - what the test is here to catch
            raise AssertionError(f"seed {seed} case {n}: {exc!r}\n{text[:2000]}") from exc
        else:
            assert_usable(config)
            accepted += 1
    return accepted, refused


def test_three_hundred_mutated_configs_are_accepted_or_refused_never_a_traceback():
    accepted, refused = check_all(cases(9, 300), 9)
    assert accepted >= 10 and refused >= 150  # the mutator makes both kinds


def test_worker_check_on_mutated_configs_exits_0_or_2_with_the_file_named(tmp_path):
    path = tmp_path / "fuzz.toml"
    for n, text in enumerate(cases(16, 120)):
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["--config", str(path), "check"])
        assert code in (0, 2), (n, code, err.getvalue())
        assert "Traceback" not in err.getvalue(), n
        lines = (out.getvalue() + err.getvalue()).strip().splitlines()
        assert lines and all(line.startswith(f"{path}: ") for line in lines), (n, lines)


@pytest.mark.timeout(600)
async def test_a_running_daemon_survives_mutated_reloads_and_still_applies_a_good_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = fake_config(tmp_path, ["a"], every="1h")
    async with daemon_running(tmp_path, good, delay=0.01) as (daemon, runtime):
        applied = refused = 0
        for text in cases(99, 150):
            text = text.replace("http_status", "http_status_off")  # no ports bound by the fuzz
            if await daemon.reload(text.encode("utf-8", "surrogatepass")):
                applied += 1
            else:
                refused += 1
        assert refused > 100
        assert daemon.watcher.task is not None and not daemon.watcher.task.done()
        fixed = fake_config(tmp_path, ["fixed"], every="1h")
        (tmp_path / "worker.toml").write_text(fixed)  # the watcher, not us, reloads this one
        await wait_for(lambda: [s.name for s in runtime.config.sources] == ["fixed"], 15)
    assert "Traceback" not in caplog.text


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("seed", range(5))
def test_thousands_of_mutated_configs_never_crash_check(seed):
    check_all(cases(1000 + seed, 1000), 1000 + seed)


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_a_daemon_survives_two_thousand_mutated_reloads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = fake_config(tmp_path, ["a"], every="1h")
    async with daemon_running(tmp_path, good, delay=0.01) as (daemon, runtime):
        outcomes = Counter()
        for text in cases(7, 2000):
            raw = text.replace("http_status", "x").encode("utf-8", "surrogatepass")
            outcomes[bool(await daemon.reload(raw))] += 1
        assert outcomes[False] > 1000 and sum(outcomes.values()) == 2000
        assert daemon.watcher.task is not None and not daemon.watcher.task.done()
        (tmp_path / "worker.toml").write_text(fake_config(tmp_path, ["fixed"], every="1h"))
        await wait_for(lambda: [s.name for s in runtime.config.sources] == ["fixed"], 15)
    assert "Traceback" not in caplog.text


async def test_the_config_watcher_survives_an_unexpected_error_and_applies_the_next_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A validator bug (here: RuntimeError from the parser) is a refused reload, not the end of
    the watcher: the last good config stays, and the next edit is applied."""
    import worker.daemon.watcher as watcher_module

    real = watcher_module.parse_config
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # fault injection: the first reload's validation blows up
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("validator bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(watcher_module, "parse_config", flaky)
    async with daemon_running(tmp_path, fake_config(tmp_path, ["a"], every="1h"), 0.01) as (
        daemon,
        runtime,
    ):
        path = tmp_path / "worker.toml"
        path.write_text(fake_config(tmp_path, ["b"], every="1h"))
        await wait_for(lambda: "cannot validate it (RuntimeError)" in caplog.text, 15)
        assert [s.name for s in runtime.config.sources] == ["a"]  # the last good config
        path.write_text(fake_config(tmp_path, ["c"], every="1h"))
        await wait_for(lambda: [s.name for s in runtime.config.sources] == ["c"], 15)
        assert daemon.watcher.task is not None and not daemon.watcher.task.done()
