"""Loading: TOML read, `${VAR}` expanded, validated into `Config`, problems named by key."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rtoml
from pydantic import BaseModel, ValidationError

from worker.config.database import check_database_url
from worker.config.models import Config
from worker.config.urlvars import substitute
from worker.gcpause import collector_paused

DEFAULT_CONFIG = "config/worker.toml"
SYSTEM_CONFIG = "/etc/worker/worker.toml"


class ConfigError(Exception):
    """The config cannot be used. `problems` holds one message per problem, each naming its key."""

    def __init__(self, path: str | os.PathLike[str], problems: Iterable[str]):
        self.path = str(path)
        self.problems = list(problems)
        super().__init__("\n".join(f"{self.path}: {p}" for p in self.problems))


MAX_DEPTH = 16  # tables and arrays nested in one another; the config itself needs 4
# a config file larger than this is a mistake (the shipped one: 3 kB; 10,000 sources written out
# with their selectors, one table each, about 3.5 MB: room for 40,000 of them)
MAX_CONFIG_CHARS = 16_000_000
_MASK = "****"
# every value a config put in from the environment, in this process (the log filter masks them)
_EXPANDED: set[str] = set()
_CREDENTIALS_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@'\"]*@")


def _loc(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _expand(
    value: Any,
    loc: tuple[str | int, ...],
    env: dict[str, str],
    problems: list[str],
    expanded: set[str],
) -> Any:
    """`value` with `${VAR}` replaced; each value put in is added to `expanded` (to be masked in
    messages: it may be a secret)."""
    if isinstance(value, str):

        def lookup(name: str) -> str | None:
            if name not in env:
                problems.append(f"{_loc(loc)}: environment variable {name} is not set")
                return None
            expanded.add(env[name])
            return env[name]

        return substitute(value, lookup)  # percent-encoded inside a URL's user info and query
    if isinstance(value, dict):
        return {k: _expand(v, (*loc, k), env, problems, expanded) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i), env, problems, expanded) for i, v in enumerate(value)]
    return value


def expanded_values() -> frozenset[str]:
    """Every value `${VAR}` put into a config parsed by this process: taken for secrets."""
    return frozenset(_EXPANDED)


def _too_deep(raw: dict[str, Any]) -> str | None:
    """The key of the first value nested more than MAX_DEPTH levels deep, else None (walked
    without recursion: the limit is what keeps the validators' recursion safe)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(raw, ())]
    while stack:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            return _loc(loc[:MAX_DEPTH])
        if isinstance(value, dict):
            stack.extend((v, (*loc, str(k))) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(value))
    return None


def mask_problem(problem: str, expanded: Iterable[str] = ()) -> str:
    """A problem line fit to print or log: URL credentials and every `${VAR}`-expanded value
    (longest first) in the part after the key replaced by ****."""
    key, sep, rest = problem.partition(": ")
    if not sep:
        key, rest = "", problem
    for value in sorted((v for v in set(expanded) if len(v) >= 3), key=len, reverse=True):
        rest = rest.replace(value, _MASK)
        shown = repr(value)[1:-1]  # as it appears inside a repr()
        if shown != value:
            rest = rest.replace(shown, _MASK)
    rest = _CREDENTIALS_RE.sub(rf"\1{_MASK}@", rest)
    return f"{key}{sep}{rest}"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that owns the key at `loc` (to list its valid keys)."""
    import typing

    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        info = model.model_fields.get(str(part))
        if info is None:
            return None
        annotation = info.annotation
        candidates = [annotation, *typing.get_args(annotation)]
        for arg in list(candidates):
            candidates.extend(typing.get_args(arg))
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # pydantic adds validator tags (e.g. 'function-before[...]') for Annotated types: drop them
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in p and "(" not in p))


def format_validation_error(error: ValidationError) -> list[str]:
    problems = []
    for err in error.errors():
        loc = _clean_loc(tuple(err["loc"]))
        model_loc = loc
        if loc[:1] == ("channel_settings",):  # [channels.NAME] tables are validated there
            loc = ("channels", *loc[1:])
        if err["type"] == "extra_forbidden":
            model = _model_at(model_loc)
            valid = (
                ", ".join(k for k in model.model_fields if k != "channel_settings") if model else ""
            )
            msg = f"{_loc(loc)}: unknown key" + (f"; valid keys: {valid}" if valid else "")
        elif err["type"] == "missing":
            msg = f"{_loc(loc)}: required key is missing"
        else:
            text = err["msg"].removeprefix("Value error, ")
            msg = f"{_loc(loc)}: {text}"
        if msg not in problems:
            problems.append(msg)
    return problems


ChannelCheck = Callable[[dict[str, list[str]]], list[str]]
"""Checks the channels' URLs, one problem per refused URL (`worker.notify.check_channel_urls`:
the config stage does not import the notify stage; the caller hands it in)."""


def _cross_checks(config: Config, *, check_channels: ChannelCheck | None) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for i, source in enumerate(config.sources):
        if source.name in seen:
            problems.append(
                f"sources[{i}].name: {source.name!r} is already used by sources[{seen[source.name]}]"
            )
        seen[source.name] = i
    seen_w: dict[str, int] = {}
    for i, watchlist in enumerate(config.watchlists):
        if watchlist.name in seen_w:
            problems.append(
                f"watchlists[{i}].name: {watchlist.name!r} is already used by "
                f"watchlists[{seen_w[watchlist.name]}]"
            )
        seen_w[watchlist.name] = i
        for j, channel in enumerate(watchlist.channels):
            if channel not in config.channels:
                known = ", ".join(sorted(config.channels)) or "none defined"
                problems.append(
                    f"watchlists[{i}].channels[{j}]: unknown channel {channel!r} "
                    f"(channels: {known})"
                )
        for j, name in enumerate(watchlist.sources or []):
            if name not in seen:
                known = ", ".join(s.name for s in config.sources) or "none defined"
                problems.append(
                    f"watchlists[{i}].sources[{j}]: unknown source {name!r} (sources: {known})"
                )
    if config.watchdog is not None:
        for j, channel in enumerate(config.watchdog.channels):
            if channel not in config.channels:
                known = ", ".join(sorted(config.channels)) or "none defined"
                problems.append(
                    f"watchdog.channels[{j}]: unknown channel {channel!r} (channels: {known})"
                )
    if check_channels:  # None (or an older caller's `False`): no URL check
        problems.extend(check_channels(config.channels))
    return problems


def config_warnings(config: Config) -> list[str]:
    """What is valid but likely a mistake (`worker check` and `worker run` say it)."""
    warnings = []
    if not config.sources:
        warnings.append("sources: none defined: nothing will be crawled")
    if not config.watchlists:
        warnings.append("watchlists: none defined: articles are stored, nothing is alerted")
    return warnings


def _resolve_database(url: str, base: Path) -> str:
    """A relative SQLite path is relative to the config file's folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        path_part, sep, query = rest.partition("?")
        if path_part and path_part != ":memory:" and not path_part.startswith("file:"):
            resolved = (base / path_part).resolve()
            return f"{prefix}{resolved}{sep}{query}"
    return url


def _read_toml(text: str) -> dict[str, Any]:
    """TOML text as a dict: read by rtoml (Rust), ~8x faster than tomllib at 10,000
    watchlists (a 1 MB file: ~50 ms against ~450, bench/bench_match.py's load line); it speaks
    TOML 1.1, which is 1.0 and a few additions (trailing commas and newlines in inline tables,
    \\e and \\x escapes), as Python's tomllib does from 3.15. A text it refuses is read
    again by tomllib, whose messages name the line and column the way a reader expects, and
    whose answer is taken if it has one."""
    try:
        raw = rtoml.loads(text)
    except ValueError:  # rtoml.TomlParsingError, or anything else it refuses with
        return tomllib.loads(text)
    assert isinstance(raw, dict)
    return raw


def parse_config(
    text: str,
    path: str | os.PathLike[str] = "<config>",
    env: dict[str, str] | None = None,
    *,
    check_channels: ChannelCheck | None = None,
) -> Config:
    """Validate TOML text into a Config; raise ConfigError listing every problem.

    `check_channels` (e.g. `worker.notify.check_channel_urls`) adds one check: that apprise
    accepts every channel URL (it imports apprise, ~0.4 s). Without it, a command that may send
    nothing checks them when it first needs to send.
    """
    # a config of 10,000 watchlists is ~300,000 objects: with the collector paused, ~40 % less
    # time (worker/gcpause.py)
    with collector_paused():
        return _parse_config(text, path, env, check_channels=check_channels)


def _parse_config(
    text: str,
    path: str | os.PathLike[str],
    env: dict[str, str] | None,
    *,
    check_channels: ChannelCheck | None,
) -> Config:
    env = dict(os.environ) if env is None else env
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(path, [f"the file is larger than {MAX_CONFIG_CHARS:,} characters"])
    try:
        raw = _read_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [mask_problem(f"not valid TOML: {exc}")]) from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(
            path, [f"not valid TOML: nested too deeply (at most {MAX_DEPTH})"]
        ) from None
    deep = _too_deep(raw)
    if deep is not None:
        raise ConfigError(path, [f"{deep}: nested more than {MAX_DEPTH} levels deep"])
    problems: list[str] = []
    expanded: set[str] = set()
    raw = _expand(raw, (), env, problems, expanded)
    _EXPANDED.update(expanded)
    if problems:
        raise ConfigError(path, problems)
    if env.get("WORKER_DATABASE"):  # overrides the file's; a relative path is the caller's
        raw["database"] = _resolve_database(env["WORKER_DATABASE"], Path.cwd())
    elif isinstance(raw.get("database"), str):
        raw["database"] = _resolve_database(raw["database"], Path(path).resolve().parent)
    problems = _read_template_files(raw, Path(path).resolve().parent)
    if problems:
        raise ConfigError(path, [mask_problem(p, expanded) for p in problems])
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems = format_validation_error(exc)
    else:
        problems = _cross_checks(config, check_channels=check_channels)
        database_problem = check_database_url(config.database)
        if database_problem:
            key = "database (from $WORKER_DATABASE)" if env.get("WORKER_DATABASE") else "database"
            problems.insert(0, f"{key}: {database_problem}")
    if problems:
        raise ConfigError(path, [mask_problem(p, expanded) for p in problems])
    return config


TEMPLATE_FILE_MAX = 100_000  # bytes of one template file


def _read_template_files(raw: dict[str, Any], base: Path) -> list[str]:
    """Replace each template value `@FILE` by the file's text (FILE relative to the config)."""
    places: list[tuple[dict[str, Any], str, str]] = []
    templates = raw.get("templates")
    if isinstance(templates, dict):
        for key in ("title", "body", "digest_title", "digest_body"):
            places.append((templates, key, f"templates.{key}"))
    watchlists = raw.get("watchlists")
    if isinstance(watchlists, list):
        for i, watchlist in enumerate(watchlists):
            if isinstance(watchlist, dict):
                for key in ("title_template", "body_template"):
                    places.append((watchlist, key, f"watchlists[{i}].{key}"))
    problems = []
    for table, key, where in places:
        value = table.get(key)
        if not isinstance(value, str) or not value.startswith("@"):
            continue
        file = base / value[1:].strip()
        try:
            with file.open("rb") as handle:
                data = handle.read(TEMPLATE_FILE_MAX + 1)
            if len(data) > TEMPLATE_FILE_MAX:
                raise ValueError(f"larger than {TEMPLATE_FILE_MAX:,} bytes")
            table[key] = data.decode("utf-8")
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(f"{where}: cannot read template file {str(file)!r}: {reason}")
    return problems


def config_search_path(env: Mapping[str, str] | None = None) -> list[str]:
    """Where a config is looked for when neither --config nor $WORKER_CONFIG names one: the
    current folder's config/worker.toml, the user's ($XDG_CONFIG_HOME, default ~/.config), the
    system's."""
    env = os.environ if env is None else env
    user = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME") or Path.home()) / ".config")
    return [DEFAULT_CONFIG, str(user / "worker" / "worker.toml"), SYSTEM_CONFIG]


@dataclass(frozen=True)
class ConfigLocation:
    path: str
    origin: str  # "--config", "$WORKER_CONFIG", "found", or "none" (nothing found: DEFAULT_CONFIG)
    searched: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.origin == "found":
            return f"{self.path} (the first found of {', '.join(self.searched)})"
        if self.origin == "none":
            return f"none found (looked for {', '.join(self.searched)})"
        return f"{self.path} (from {self.origin})"


def find_config(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> ConfigLocation:
    """The config file to use: --config, else $WORKER_CONFIG, else the first that exists of
    `config_search_path()`; origin "none" when there is none (path is then DEFAULT_CONFIG)."""
    env = os.environ if env is None else env
    if explicit:
        return ConfigLocation(str(explicit), "--config")
    if env.get("WORKER_CONFIG"):
        return ConfigLocation(env["WORKER_CONFIG"], "$WORKER_CONFIG")
    searched = tuple(config_search_path(env))
    for candidate in searched:
        if Path(candidate).is_file():
            return ConfigLocation(candidate, "found", searched)
    return ConfigLocation(DEFAULT_CONFIG, "none", searched)


def default_config_path() -> str:
    return find_config().path


def load_config(
    path: str | os.PathLike[str] | None = None, *, check_channels: ChannelCheck | None = None
) -> Config:
    """Read and validate the config file; raise ConfigError (never another exception)."""
    path = path or default_config_path()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read the file: {exc}"]) from None
    return parse_config(text, path, check_channels=check_channels)
