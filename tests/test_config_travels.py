"""A config that travels: found where an installed worker looks, written by `worker init`, its
database overridable from the environment and checked before it fails later, its schema
published for editors."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import jsonschema
import pytest
import sqlalchemy as sa

from worker.cli import main
from worker.config import ConfigError, find_config, parse_config
from worker.config import load as config_load
from worker.config.schema import config_schema, config_schema_text
from worker.notify import check_channel_urls

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config" / "worker.toml"
SHIPPED_CONFIGS = ["config/worker.toml", "deploy/config/worker.toml", "worker/data/worker.toml"]

MINIMAL = """\
[channels]
out = "console://"

[[sources]]
name = "s1"
url = "https://example.org/?s=x"

[sources.select]
item = "article"
title = "h2 a"
link = "h2 a"

[[watchlists]]
name = "rail"
keywords = ["rail*"]
channels = ["out"]
"""


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A current folder with no config in it, no $WORKER_CONFIG, a fresh $XDG_CONFIG_HOME and
    a system config path that does not exist (yet)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("WORKER_CONFIG", raising=False)
    monkeypatch.delenv("WORKER_DATABASE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(config_load, "SYSTEM_CONFIG", str(tmp_path / "etc" / "worker.toml"))
    return tmp_path


def put(path: Path, text: str = MINIMAL) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- lookup -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (["cwd/config/worker.toml", "xdg/worker/worker.toml", "etc/worker.toml"], "cwd/config"),
        (["xdg/worker/worker.toml", "etc/worker.toml"], "xdg/worker"),
        (["etc/worker.toml"], "etc"),
    ],
    ids=["the current folder's first", "then the user's", "then the system's"],
)
def test_the_config_is_looked_for_in_order(elsewhere, present, expected):
    for rel in present:
        put(elsewhere / rel)
    where = find_config()
    assert where.origin == "found"
    assert Path(where.path).resolve().parent == (elsewhere / expected).resolve()


def test_the_user_config_defaults_to_dot_config_under_home(elsewhere, monkeypatch):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(elsewhere / "home"))
    put(elsewhere / "home" / ".config" / "worker" / "worker.toml")
    assert find_config().path == str(elsewhere / "home" / ".config" / "worker" / "worker.toml")


def test_worker_config_and_the_option_come_before_the_lookup(elsewhere, monkeypatch):
    put(elsewhere / "cwd" / "config" / "worker.toml")
    monkeypatch.setenv("WORKER_CONFIG", "/from/env.toml")
    assert (find_config().path, find_config().origin) == ("/from/env.toml", "$WORKER_CONFIG")
    assert find_config("/given.toml").origin == "--config"


def test_the_command_says_which_config_it_used(elsewhere, capsys):
    path = put(elsewhere / "xdg" / "worker" / "worker.toml")
    assert main(["-v", "check"]) == 0
    captured = capsys.readouterr()
    assert f"{path}: OK" in captured.out
    assert f"config: {path} (the first found of config/worker.toml, {path}, " in captured.err


def test_no_config_anywhere_names_the_places_and_worker_init(elsewhere, capsys):
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert "config/worker.toml: file not found" in err
    assert "no config file found (looked for config/worker.toml, " in err
    assert str(elsewhere / "xdg" / "worker" / "worker.toml") in err and "worker init" in err


# --- init ---------------------------------------------------------------------------------------


def test_init_writes_the_commented_example_where_it_is_found_next(elsewhere, capsys):
    assert main(["init"]) == 0
    path = elsewhere / "xdg" / "worker" / "worker.toml"
    text = path.read_text(encoding="utf-8")
    assert "# worker: the shipped example config." in text
    assert text.splitlines()[0] == "#:schema ./worker.schema.json"
    assert json.loads((path.parent / "worker.schema.json").read_text()) == config_schema()
    assert f"wrote {path}" in capsys.readouterr().out
    assert main(["check"]) == 0  # found without --config
    assert f"{path}: OK (3 source(s), 3 watchlist(s), 1 channel(s))" in capsys.readouterr().out


def test_init_refuses_to_overwrite_a_config(elsewhere, capsys):
    path = put(elsewhere / "mine.toml", "# my own\n")
    assert main(["init", str(path)]) == 1
    assert "exists; not overwritten" in capsys.readouterr().err
    assert path.read_text() == "# my own\n"


def test_init_at_a_path_prints_the_check_command_for_it(elsewhere, capsys):
    path = elsewhere / "deep" / "er" / "w.toml"
    assert main(["init", str(path)]) == 0
    assert f"worker --config {path} check" in capsys.readouterr().out
    assert main(["--config", str(path), "check"]) == 0


def test_the_packaged_example_is_the_shipped_config():
    packaged = (ROOT / "worker" / "data" / "worker.toml").read_text(encoding="utf-8")
    assert packaged == SHIPPED.read_text(encoding="utf-8"), (
        "cp config/worker.toml worker/data/worker.toml"
    )


# --- WORKER_DATABASE ----------------------------------------------------------------------------


def test_worker_database_overrides_the_files_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = 'database = "sqlite:///in-file.db"\n' + MINIMAL
    env = {"WORKER_DATABASE": "sqlite:///from-env.db"}
    config = parse_config(text, "/etc/worker/w.toml", env=env)
    assert config.database == f"sqlite:///{tmp_path / 'from-env.db'}"  # relative to the caller
    assert parse_config(text, "/etc/worker/w.toml", env={}).database == (
        "sqlite:////etc/worker/in-file.db"
    )


def test_a_bad_worker_database_is_refused_naming_the_variable():
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL, "w.toml", env={"WORKER_DATABASE": "mysql://db/w"})
    assert info.value.problems[0] == (
        "database (from $WORKER_DATABASE): unsupported database 'mysql': use sqlite or postgresql"
    )


# --- the database URL, checked before it fails later ---------------------------------------------

# (the database value, a fragment of the message)
BAD_DATABASES = [
    ("mysql://db/w", "unsupported database 'mysql': use sqlite or postgresql"),
    ("postgresql+asyncpg://db/w", "unsupported driver 'postgresql+asyncpg'"),
    ("sqlite+aiosqlite:///w.db", "unsupported driver 'sqlite+aiosqlite'"),
    ("worker.db", "not a database URL"),
    ("postgresql://user:p#ss@db/w", "password with '@', ':', '/' or '#'"),
    ("postgresql://user:a@b@db/w", "must be percent-encoded"),
    ("postgresql://user:pw@db:port/w", "the port is not a number"),
]


@pytest.mark.parametrize(("url", "fragment"), BAD_DATABASES, ids=[b[0] for b in BAD_DATABASES])
def test_check_refuses_a_database_url_that_would_fail_later(tmp_path, capsys, url, fragment):
    path = put(tmp_path / "w.toml", f'database = "{url}"\n' + MINIMAL)
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: database: " in err and fragment in err
    assert "p#ss" not in err and "a@b" not in err  # a password is never shown


@pytest.mark.parametrize(
    "url", ["sqlite:///w.db", "sqlite://", "postgresql://db/w", "postgresql+psycopg://u:p@db:5/w"]
)
def test_supported_database_urls_pass(url):
    parse_config(f'database = "{url}"\n' + MINIMAL, "w.toml", env={})


PASSWORD = "p@ss:w/rd#1?&="


def test_a_password_with_url_characters_from_the_environment_keeps_the_url_whole():
    text = (
        'database = "postgresql+psycopg://worker:${PGPASSWORD}@db:5432/worker"\n'
        + MINIMAL.replace(
            'out = "console://"',
            'out = "console://"\nmail = "mailtos://desk:${PGPASSWORD}@smtp.example.org?to=${TO}"',
        )
    )
    config = parse_config(text, "w.toml", env={"PGPASSWORD": PASSWORD, "TO": "desk@example.org"})
    url = sa.make_url(config.database)
    assert (url.password, url.host, url.port, url.database) == (PASSWORD, "db", 5432, "worker")
    import apprise

    mail = apprise.Apprise.instantiate(config.channels["mail"][0])
    assert (mail.password, mail.host) == (PASSWORD, "smtp.example.org")
    assert "desk@example.org" in str(mail.targets)


def test_a_variable_outside_user_info_and_query_goes_in_as_it_is():
    text = MINIMAL.replace('out = "console://"', 'out = "tgram://${TG_TOKEN}/${TG_CHAT}"')
    config = parse_config(text, "w.toml", env={"TG_TOKEN": "123:abc", "TG_CHAT": "42"})
    assert config.channels["out"] == ["tgram://123:abc/42"]


# --- warnings -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        ('[channels]\nout = "console://"\n', "sources: none defined: nothing will be crawled"),
        (MINIMAL.split("[[watchlists]]")[0], "watchlists: none defined: articles are stored"),
    ],
    ids=["no sources", "no watchlists"],
)
def test_a_config_with_nothing_to_do_passes_check_with_a_warning(tmp_path, capsys, text, warning):
    path = put(tmp_path / "w.toml", text)
    assert main(["--config", str(path), "check"]) == 0
    captured = capsys.readouterr()
    assert f"{path}: warning: {warning}" in captured.err and f"{path}: OK" in captured.out


def test_the_shipped_config_has_no_warning(capsys):
    assert main(["--config", str(SHIPPED), "check"]) == 0
    assert "warning" not in capsys.readouterr().err


# --- internal names never reach a message ---------------------------------------------------------


def test_a_database_error_names_what_was_being_done_not_a_function(tmp_path, capsys):
    path = put(tmp_path / "w.toml", 'database = "postgresql://nobody@127.0.0.1:1/nodb"\n')
    assert main(["--config", str(path), "articles"]) == 1
    err = capsys.readouterr().err
    assert "database error: " in err
    message = err.split("database error: ", 1)[1]
    assert "_" not in message.split(":", 1)[0], message  # e.g. not "schema_revision: ..."


def test_no_store_transaction_is_labelled_with_a_function_name():
    import re

    for path in (ROOT / "worker" / "store").glob("*.py"):
        for label in re.findall(r"self\._tx\(f?\"([^\"]*)\"", path.read_text()):
            assert " " in label and "_" not in label, f"{path.name}: {label!r}"


# --- the published schema -----------------------------------------------------------------------


def test_the_published_schema_is_the_generated_one():
    published = (ROOT / "docs" / "worker.schema.json").read_text(encoding="utf-8")
    assert published == config_schema_text(), (
        "regenerate: python3 -m worker schema > docs/worker.schema.json"
    )


def test_worker_schema_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()


@pytest.mark.parametrize("rel", SHIPPED_CONFIGS)
def test_a_shipped_config_names_the_schema_and_validates_against_it(rel):
    text = (ROOT / rel).read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith("#:schema ")
    if rel != "worker/data/worker.toml":  # `worker init` rewrites that one's line
        assert (ROOT / rel).parent.joinpath(first.split(" ", 1)[1]).resolve() == (
            ROOT / "docs" / "worker.schema.json"
        )
    jsonschema.validate(tomllib.loads(text), config_schema())


@pytest.mark.parametrize(
    ("edit", "valid"),
    [
        ({"alerts": {"retry_base": "1h30m"}}, True),
        ({"alerts": {"retry_base": 90}}, True),
        ({"alerts": {"retry_base": "soon"}}, False),
        ({"alerts": {"retry_base": -1}}, False),
        ({"http": {"timout": 20}}, False),
        ({"channels": {"a": "console://", "b": ["console://", "json://h/p"]}}, True),
    ],
    ids=["duration string", "duration number", "not a duration", "negative", "typo", "url list"],
)
def test_the_schema_takes_what_the_loader_takes(edit, valid):
    raw = tomllib.loads(SHIPPED.read_text(encoding="utf-8")) | edit
    if valid:
        jsonschema.validate(raw, config_schema())
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(raw, config_schema())


def test_no_config_problem_names_a_validator_function():
    """pydantic tags locations with its validators (`function-before[parse_duration(), ...]`) and
    prefixes messages ("Value error, "): none of that reaches a message."""
    import re

    from tests.test_config import BROKEN, _apply

    for what, edits, _expected in BROKEN:
        with pytest.raises(ConfigError) as info:
            parse_config(_apply(edits), "w.toml", env={}, check_channels=check_channel_urls)
        for problem in info.value.problems:
            assert not re.search(r"\w\(\)|function-|Value error|_check|_valid", problem), (
                what,
                problem,
            )


def test_init_writes_where_config_points(elsewhere, capsys):
    path = elsewhere / "given.toml"
    assert main(["--config", str(path), "init"]) == 0
    assert path.read_text(encoding="utf-8").startswith("#:schema ./worker.schema.json\n")


def float_fields(model: type, seen: set[type] | None = None) -> list[tuple[str, object]]:
    """(model.field, FieldInfo) of every float-typed field reachable from `model`."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    seen = set() if seen is None else seen
    found: list[tuple[str, object]] = []
    if model in seen:
        return found
    seen.add(model)
    for name, info in model.model_fields.items():  # type: ignore[attr-defined]
        todo = [info.annotation]
        while todo:
            t = todo.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                found += float_fields(t, seen)
            elif t is float:
                found.append((f"{model.__name__}.{name}", info))
            elif get_origin(t) is not tuple:  # a tuple is parsed whole ("10/1h": count, window)
                todo += get_args(t)
    return found


def test_every_number_of_seconds_in_the_config_takes_a_duration_with_units():
    from worker.config.models import Config

    fields = float_fields(Config)
    assert {"HttpConfig.timeout", "AlertsConfig.send_timeout", "SourceConfig.every"} <= {
        where for where, _ in fields
    }
    for where, info in fields:
        # the duration parser sits in the field's metadata or, for `Duration | None`, in its type
        text = repr(info.metadata) + repr(info.annotation)  # type: ignore[attr-defined]
        assert "parse_duration" in text or "_duration_or_off" in text, where
