"""`worker check`: a broken config is refused with one message per problem naming the key and the
file, exit 2, never a traceback; the shipped configs are accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import main
from worker.config import ConfigError, parse_config, parse_duration

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
database = "sqlite:///w.db"

[channels]
mail = "mailto://user:pass@example.org?to=desk@example.org"
hook = ["json://127.0.0.1:8000/hook", "console://"]

[[sources]]
name = "s1"
url = "https://example.org/?s=x"
every = "15m"

[sources.select]
item = "article"
title = "h2 a"
link = "h2 a"

[[watchlists]]
name = "rail"
keywords = ["rail*"]
channels = ["mail"]
"""

# (what is broken, the edit: (old, new) replacements of GOOD, expected fragments of the messages)
BROKEN = [
    (
        "unknown top-level key",
        [("[channels]", "colour = 1\n[channels]")],
        ["colour: unknown key; valid keys: database, http"],
    ),
    (
        "misspelt selector key",
        [('item = "article"', 'itme = "article"')],
        ["sources[0].select.itme: unknown key", "sources[0].select.item: required key is missing"],
    ),
    (
        "invalid CSS",
        [('item = "article"', 'item = "div >> a"')],
        ["sources[0].select.item: invalid CSS selector 'div >> a'"],
    ),
    (
        "invalid CSS in a table field",
        [('title = "h2 a"', 'title = { css = "[[", attr = "x" }')],
        ["sources[0].select.title.css: invalid CSS selector"],
    ),
    (
        "missing url",
        [('url = "https://example.org/?s=x"\n', "")],
        ["sources[0].url: required key is missing"],
    ),
    (
        "not http url",
        [("https://example.org/?s=x", "ftp://example.org/")],
        ["sources[0].url: 'ftp://example.org/' is not an http(s) URL"],
    ),
    (
        "bad duration",
        [('every = "15m"', 'every = "soon"')],
        ["sources[0].every: 'soon' is not a duration"],
    ),
    (
        "every and cron",
        [('every = "15m"', 'every = "15m"\ncron = "*/5 * * * *"')],
        ["sources[0]: give either `every` or `cron`, not both"],
    ),
    (
        "bad cron",
        [('every = "15m"', 'cron = "every monday"')],
        ["sources[0].cron: invalid cron expression"],
    ),
    (
        "page_url without {page}",
        [('every = "15m"', 'every = "15m"\npage_url = "https://example.org/page/2/"')],
        ["sources[0].page_url: must contain {page}"],
    ),
    (
        "max_pages zero",
        [('every = "15m"', 'every = "15m"\nmax_pages = 0')],
        ["sources[0].max_pages: Input should be greater than or equal to 1"],
    ),
    (
        "unknown channel in a watchlist",
        [('channels = ["mail"]', 'channels = ["mail", "pager"]')],
        ["watchlists[0].channels[1]: unknown channel 'pager' (channels: hook, mail)"],
    ),
    (
        "unknown source in a watchlist",
        [('channels = ["mail"]', 'channels = ["mail"]\nsources = ["s2"]')],
        ["watchlists[0].sources[0]: unknown source 's2' (sources: s1)"],
    ),
    (
        "keyword without words",
        [('keywords = ["rail*"]', 'keywords = ["rail*", "!!"]')],
        ["watchlists[0].keywords: [1] '!!'"],
    ),
    (
        "empty keywords",
        [('keywords = ["rail*"]', "keywords = []")],
        ["watchlists[0].keywords: List should have at least 1 item"],
    ),
    (
        "duplicate source names",
        [
            (
                "[[watchlists]]",
                '[[sources]]\nname = "s1"\nurl = "https://example.org/b"\n[sources.select]\nitem = "li"\ntitle = "a"\nlink = "a"\n\n[[watchlists]]',
            )
        ],
        ["sources[1].name: 's1' is already used by sources[0]"],
    ),
    (
        "apprise refuses a channel URL",
        [
            (
                'mail = "mailto://user:pass@example.org?to=desk@example.org"',
                'mail = "nosuchscheme://secret-token@x"',
            )
        ],
        ["channels.mail: "],
    ),
    (
        "http option out of range",
        [("[channels]", "[http]\nconcurrency = 0\ntimeout = -1\n\n[channels]")],
        [
            "http.concurrency: Input should be greater than or equal to 1",
            "http.timeout: Input should be greater than 0",
        ],
    ),
    (
        "missing environment variable",
        [("user:pass@", "user:${WORKER_TEST_UNSET_VAR}@")],
        ["channels.mail: environment variable WORKER_TEST_UNSET_VAR is not set"],
    ),
    ("not TOML", [("[channels]", "[channels")], ["not valid TOML"]),
    (
        "wrong type",
        [('every = "15m"', 'every = "15m"\nalert_backfill = "yes please"')],
        ["sources[0].alert_backfill: Input should be a valid boolean"],
    ),
]


def _apply(edits: list[tuple[str, str]]) -> str:
    text = GOOD
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_the_good_config_is_valid():
    config = parse_config(GOOD, "/etc/worker/w.toml", env={})
    assert config.sources[0].every == 900 and config.channels["hook"][1] == "console://"
    assert config.sources[0].select.link.attr == "href"  # link defaults to the href attribute
    assert config.database == "sqlite:////etc/worker/w.db"  # relative to the config's folder


@pytest.mark.parametrize(("what", "edits", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_config_is_refused_naming_the_key(what, edits, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(_apply(edits), "w.toml", env={})
    text = "\n".join(info.value.problems)
    for fragment in expected:
        assert fragment in text, f"{what}: {fragment!r} not in:\n{text}"
    assert "secret-token" not in text


def test_environment_variables_are_substituted():
    config = parse_config(GOOD.replace("user:pass@", "user:${PW}@"), "w.toml", env={"PW": "s3cret"})
    assert config.channels["mail"][0].startswith("mailto://user:s3cret@")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15m", 900),
        ("1h30m", 5400),
        ("90s", 90),
        ("2d", 172800),
        ("500ms", 0.5),
        (30, 30),
        ("1.5h", 5400),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "1 fortnight", "-5s", "15m soon"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_check_command_prints_every_problem_with_the_file_and_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text(
        _apply([('item = "article"', 'itme = "article"'), ('every = "15m"', 'every = "x"')])
    )
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        f"{path}: sources[0].select.itme: unknown key; valid keys: item, title, link, summary, published, results, next"
        in err
    )
    assert any(line.startswith(f"{path}: sources[0].every: ") for line in err)
    assert not any("Traceback" in line for line in err)


def test_check_command_on_a_missing_file(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.toml"), "check"]) == 2
    assert "nope.toml: file not found" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["config/worker.toml"])
def test_shipped_config_passes_check(path, capsys):
    assert main(["--config", str(ROOT / path), "check"]) == 0
    assert "OK (3 source(s), 3 watchlist(s), 1 channel(s))" in capsys.readouterr().out


def test_config_path_from_the_environment(tmp_path, monkeypatch, capsys):
    path = tmp_path / "env.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("WORKER_CONFIG", str(path))
    assert main(["check"]) == 0
    assert str(path) in capsys.readouterr().out


def test_check_never_prints_a_traceback_as_a_program(tmp_path):
    """Run as a real program on garbage input: clear message, exit 2."""
    path = tmp_path / "garbage.toml"
    path.write_bytes(b"\xff\xfe not toml at all [[[")
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(path), "check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "garbage.toml: cannot read the file" in proc.stderr


def test_an_unreachable_database_is_a_clear_error_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "w.toml"
    path.write_text(
        GOOD.replace(
            'database = "sqlite:///w.db"',
            'database = "postgresql+psycopg://nobody:hunter2@127.0.0.1:1/nodb"',
        )
    )
    assert main(["--config", str(path), "articles"]) == 1
    err = capsys.readouterr().err
    assert "database error:" in err and "Traceback" not in err and "hunter2" not in err
