"""`worker check`: a broken config is refused with one message per problem naming the key and the
file, exit 2, never a traceback; the shipped configs are accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import main
from worker.config import ConfigError, parse_config, parse_duration
from worker.notify import check_channel_urls

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
        [("[channels]", "[http]\nconcurrency = 0\ntimeout = 0\n\n[channels]")],
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
    # issue #9: values that were accepted and crashed or stalled the daemon later
    ("every = nan", [('every = "15m"', "every = nan")], ["sources[0].every: a duration must be"]),
    (
        "every = inf",
        [('every = "15m"', "every = inf")],
        ["sources[0].every: a duration cannot be longer than 366d"],
    ),
    (
        "every = 1e300",
        [('every = "15m"', "every = 1e300")],
        ["sources[0].every: a duration cannot be longer"],
    ),
    (
        "every = a huge integer",
        [('every = "15m"', "every = 9223372036854775807")],
        ["sources[0].every: a duration cannot be longer"],
    ),
    (
        "every = 40d",
        [('every = "15m"', 'every = "40d"')],
        ["sources[0].every: must be at most 30d"],
    ),
    (
        "send_timeout = 0",
        [("[channels]", "[alerts]\nsend_timeout = 0\n\n[channels]")],
        ["alerts.send_timeout: Input should be greater than or equal to 1"],
    ),
    (
        "send_timeout = nan",
        [("[channels]", "[alerts]\nsend_timeout = nan\n\n[channels]")],
        ["alerts.send_timeout: a duration must be"],
    ),
    (
        "retry_max = -inf",
        [("[channels]", "[alerts]\nretry_max = -inf\n\n[channels]")],
        ["alerts.retry_max: a duration cannot be negative"],
    ),
    (
        "http timeout = inf",
        [("[channels]", "[http]\ntimeout = inf\n\n[channels]")],
        ["http.timeout: a duration cannot be longer"],
    ),
    (
        "min_delay = nan",
        [("[channels]", '[http]\nmin_delay = "nan"\n\n[channels]')],
        ["http.min_delay: 'nan' is not a duration"],
    ),
    (
        "max_bytes = 1e300",
        [("[channels]", "[http]\nmax_bytes = 1e300\n\n[channels]")],
        ["http.max_bytes: "],
    ),
    (
        "user_agent not ASCII",
        [("[channels]", '[http]\nuser_agent = "wörker/1"\n\n[channels]')],
        ["http.user_agent: must be printable ASCII (an HTTP header); character 1 is 'ö'"],
    ),
    (
        "user_agent with a newline",
        [("[channels]", '[http]\nuser_agent = "w\\r\\nX-Evil: 1"\n\n[channels]')],
        ["http.user_agent: must be printable ASCII"],
    ),
    (
        "page_url attribute",
        [('every = "15m"', 'every = "15m"\npage_url = "https://example.org/{page.foo}/"')],
        ["sources[0].page_url: only a bare {page} may appear in braces, not '{page.foo}'"],
    ),
    (
        "page_url index",
        [('every = "15m"', 'every = "15m"\npage_url = "https://example.org/{page[0]}/"')],
        ["sources[0].page_url: only a bare {page} may appear in braces, not '{page[0]}'"],
    ),
    (
        "page_url huge width",
        [('every = "15m"', 'every = "15m"\npage_url = "https://example.org/{page:>99999999999}/"')],
        ["sources[0].page_url: only a bare {page} may appear in braces, not '{page:>99999999999}'"],
    ),
    (
        "page_url other field",
        [('every = "15m"', 'every = "15m"\npage_url = "https://example.org/{page}/{0}"')],
        ["sources[0].page_url: only a bare {page} may appear in braces, not '{0}'"],
    ),
    (
        "page_url single brace",
        [('every = "15m"', 'every = "15m"\npage_url = "https://example.org/{page}/{"')],
        ["sources[0].page_url: unbalanced braces"],
    ),
    (
        "TOML nested 600 deep",
        [("[channels]", "x = " + "[" * 600 + "]" * 600 + "\n[channels]")],
        ["not valid TOML: nested too deeply"],
    ),
    (
        "TOML nested 20 deep",
        [("[channels]", "x = " + "[" * 20 + "]" * 20 + "\n[channels]")],
        ["x[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested more than 16 levels deep"],
    ),
    (
        "a tab in a URL",
        [("https://example.org/?s=x", "https://example.org/a\\tb")],
        ["sources[0].url: a URL cannot hold a control character ('\\t' at 21)"],
    ),
    (
        "IDNA-invalid host",
        [("https://example.org/?s=x", "https://xn--zz.example/?s=x")],
        ["sources[0].url: 'https://xn--zz.example/?s=x' has an invalid host"],
    ),
    (
        "IDNA-invalid unicode host",
        [("https://example.org/?s=x", "https://ex\u200dample.org/")],
        ["sources[0].url: ", "has an invalid host"],
    ),
    (
        "label too long",
        [("https://example.org/?s=x", "https://" + "a" * 64 + ".org/")],
        ["sources[0].url: ", "has an invalid host"],
    ),
    (
        "IDNA-invalid page_url host",
        [('every = "15m"', 'every = "15m"\npage_url = "https://xn--zz.example/{page}/"')],
        ["sources[0].page_url: ", "has an invalid host"],
    ),
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
        parse_config(_apply(edits), "w.toml", env={}, check_channels=check_channel_urls)
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


@pytest.mark.parametrize(
    "text",
    [
        "",
        "15",
        "m",
        "1 fortnight",
        "-5s",
        "15m soon",
        float("nan"),
        float("inf"),
        1e300,
        "367d",
        10**400,
        "1" * 100 + "s",
        True,
    ],
)
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


def test_durations_with_units_are_accepted_wherever_seconds_are():
    text = GOOD.replace(
        "[channels]",
        '[http]\ntimeout = "20s"\nmin_delay = "500ms"\n\n'
        '[alerts]\nretry_base = "1m"\nretry_max = "2h"\nsend_timeout = "1m30s"\n\n[channels]',
    )
    config = parse_config(text, "w.toml", env={})
    assert (config.http.timeout, config.http.min_delay) == (20, 0.5)
    assert (config.alerts.retry_base, config.alerts.retry_max) == (60, 7200)
    assert config.alerts.send_timeout == 90


def test_a_refused_value_never_shows_an_expanded_variable_nor_url_credentials(capsys, tmp_path):
    path = tmp_path / "w.toml"
    path.write_text(
        GOOD.replace(
            "https://example.org/?s=x", "ftp://bob:${SRC_PW}@example.org/?k=${API_KEY}"
        ).replace('every = "15m"', 'every = "${EVERY}"')
    )
    env = {"SRC_PW": "hunter2-pw", "API_KEY": "sk-live-123456", "EVERY": "tok-abcdef"}
    with pytest.raises(ConfigError) as info:
        parse_config(path.read_text(), path, env=env)
    text = "\n".join(info.value.problems)
    assert "sources[0].url: 'ftp://****@example.org/?k=****' is not an http(s) URL" in text
    assert "sources[0].every: '****' is not a duration" in text
    for secret in env.values():
        assert secret not in text


def test_url_credentials_written_in_the_file_are_masked_too():
    with pytest.raises(ConfigError) as info:
        parse_config(
            GOOD.replace("https://example.org/?s=x", "ftp://bob:pw-in-file@x.org/"), env={}
        )
    assert "'ftp://****@x.org/' is not an http(s) URL" in info.value.problems[0]


def test_a_config_may_use_what_toml_1_1_adds_and_broken_toml_is_still_worded_by_tomllib() -> None:
    # rtoml reads configs (worker/config/load.py): TOML 1.1, so an inline table may span lines
    # and end with a comma
    text = GOOD.replace(
        '[sources.select]\nitem = "article"\ntitle = "h2 a"\nlink = "h2 a"\n',
        'select = {\n  item = "article",\n  title = "h2 a",\n  link = "h2 a",\n}\n',
    )
    assert text != GOOD
    config = parse_config(text)
    assert config.sources[0].select == parse_config(GOOD).sources[0].select
    with pytest.raises(ConfigError) as caught:
        parse_config(GOOD.replace('every = "15m"', 'every = "15m'))
    assert caught.value.problems == [
        "not valid TOML: Illegal character '\\n' (at line 10, column 13)"
    ]


def test_a_source_is_found_by_name_also_in_a_copy_with_other_sources() -> None:
    config = parse_config(GOOD, "/etc/worker/w.toml", env={})
    first = config.sources[0]
    assert config.source(first.name) is first
    emptied = config.model_copy(update={"sources": []})  # the lookup above is cached
    with pytest.raises(KeyError):
        emptied.source(first.name)
    assert config.source(first.name) is first
    assert "sources_by_name" not in config.model_dump()
