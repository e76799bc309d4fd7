"""Configuration: TOML read once, `${VAR}` expanded, validated into frozen pydantic models.

`load_config(path)` returns a `Config` or raises `ConfigError`, whose `.problems` are one line each,
naming the key (`sources[0].select.item: ...`). Nothing outside this module reads raw dicts.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from worker import USER_AGENT

DEFAULT_CONFIG = "config/worker.toml"


class ConfigError(Exception):
    """The config cannot be used. `problems` holds one message per problem, each naming its key."""

    def __init__(self, path: str | os.PathLike[str], problems: Iterable[str]):
        self.path = str(path)
        self.problems = list(problems)
        super().__init__("\n".join(f"{self.path}: {p}" for p in self.problems))


# --- small value types -----------------------------------------------------------------------

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """'15m', '1h30m', '90s', '2d', '500ms' or a number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '15m', '1h' or '30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_RE.findall(text)
        if not text or "".join(n + u for n, u in parts).lower() != text.lower():
            raise ValueError(
                f"{value!r} is not a duration: use a number with s, m, h or d (e.g. '15m')"
            )
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in parts)
    else:
        raise ValueError("expected a duration such as '15m', '1h' or '30s'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class FieldSelector(Frozen):
    """Where a field is on a listing page: a CSS selector and optionally an attribute to read."""

    css: str = Field(min_length=1)
    attr: str | None = None

    @field_validator("css")
    @classmethod
    def _valid_css(cls, value: str) -> str:
        check_css(value)
        return value


def check_css(selector: str) -> None:
    from selectolax.lexbor import LexborHTMLParser

    try:
        LexborHTMLParser("<html></html>").css(selector)
    except Exception as exc:  # selectolax raises SelectolaxError (no public base class)
        raise ValueError(f"invalid CSS selector {selector!r}: {exc}") from None


def _selector(value: Any) -> Any:
    return {"css": value} if isinstance(value, str) else value


Selector = Annotated[FieldSelector, BeforeValidator(_selector)]


class SelectConfig(Frozen):
    """CSS selectors (selectolax/lexbor) for one listing's markup."""

    item: str = Field(min_length=1)
    title: Selector
    link: Selector
    summary: Selector | None = None
    published: Selector | None = None
    results: Selector | None = None
    next: Selector | None = None

    @field_validator("item")
    @classmethod
    def _valid_item(cls, value: str) -> str:
        check_css(value)
        return value

    @field_validator("link", "next")
    @classmethod
    def _href_default(cls, value: FieldSelector | None) -> FieldSelector | None:
        if value is not None and value.attr is None:
            return FieldSelector(css=value.css, attr="href")
        return value


NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class SourceConfig(Frozen):
    name: str = Field(pattern=NAME_RE, max_length=100)
    url: str
    every: Duration | None = None
    cron: str | None = None
    max_pages: int = Field(default=50, ge=1, le=10_000)
    alert_backfill: bool = False
    page_url: str | None = None
    overlap_pages: int = Field(default=1, ge=1, le=20)
    select: SelectConfig

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("page_url")
    @classmethod
    def _page_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "{page}" not in value:
            raise ValueError("must contain {page}, e.g. 'https://example.org/page/{page}/'")
        try:
            filled = value.format(page=2)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{page}} may appear in braces ({exc})") from None
        _check_http_url(filled)
        return value

    @field_validator("every")
    @classmethod
    def _every_min(cls, value: float | None) -> float | None:
        if value is not None and value < 1:
            raise ValueError("must be at least 1s")
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> SourceConfig:
        if self.every is not None and self.cron is not None:
            raise ValueError("give either `every` or `cron`, not both")
        return self

    @property
    def interval(self) -> float:
        """Seconds between passes when scheduled by `every` (default 15 minutes)."""
        return self.every if self.every is not None else 900.0


def _check_http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


class WatchlistConfig(Frozen):
    name: str = Field(pattern=NAME_RE, max_length=100)
    keywords: list[str] = Field(min_length=1)
    exclude: list[str] = Field(default_factory=list)
    channels: list[str] = Field(min_length=1)
    sources: list[str] | None = None

    @field_validator("keywords", "exclude")
    @classmethod
    def _keywords_have_words(cls, value: list[str]) -> list[str]:
        from worker.match import parse_keyword

        for i, keyword in enumerate(value):
            try:
                parse_keyword(keyword)
            except ValueError as exc:
                raise ValueError(f"[{i}] {keyword!r}: {exc}") from None
        return value


class HttpConfig(Frozen):
    user_agent: str = USER_AGENT
    timeout: float = Field(default=20.0, gt=0, le=600)
    min_delay: float = Field(default=1.0, ge=0, le=3600)
    concurrency: int = Field(default=4, ge=1, le=64)
    retries: int = Field(default=3, ge=0, le=10)
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)


class AlertsConfig(Frozen):
    retry_base: Duration = 30.0
    retry_max: Duration = 3600.0
    max_attempts: int = Field(default=10, ge=1, le=100)
    send_timeout: Duration = 60.0


class HttpStatusConfig(Frozen):
    port: int = Field(default=0, ge=0, le=65535)  # 0 = off
    host: str = "127.0.0.1"


class LoggingConfig(Frozen):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def _url_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


ChannelUrls = Annotated[list[str], BeforeValidator(_url_list), Field(min_length=1)]


class Config(Frozen):
    database: str = "sqlite:///worker.db"
    http: HttpConfig = HttpConfig()
    alerts: AlertsConfig = AlertsConfig()
    http_status: HttpStatusConfig = HttpStatusConfig()
    logging: LoggingConfig = LoggingConfig()
    channels: dict[str, ChannelUrls] = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(default_factory=list)
    watchlists: list[WatchlistConfig] = Field(default_factory=list)

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in value:
            if not re.match(NAME_RE, name):
                raise ValueError(f"channel name {name!r} must be letters, digits, '-', '_' or '.'")
        return value

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def watchlists_for(self, source: str) -> list[WatchlistConfig]:
        return [w for w in self.watchlists if w.sources is None or source in w.sources]


# --- loading ---------------------------------------------------------------------------------

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _loc(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _expand(
    value: Any, loc: tuple[str | int, ...], env: dict[str, str], problems: list[str]
) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(f"{_loc(loc)}: environment variable {name} is not set")
                return ""
            return env[name]

        return _VAR_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, (*loc, k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i), env, problems) for i, v in enumerate(value)]
    return value


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
        if err["type"] == "extra_forbidden":
            model = _model_at(loc)
            valid = ", ".join(model.model_fields) if model else ""
            msg = f"{_loc(loc)}: unknown key" + (f"; valid keys: {valid}" if valid else "")
        elif err["type"] == "missing":
            msg = f"{_loc(loc)}: required key is missing"
        else:
            text = err["msg"].removeprefix("Value error, ")
            msg = f"{_loc(loc)}: {text}"
        if msg not in problems:
            problems.append(msg)
    return problems


def _cross_checks(config: Config) -> list[str]:
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
    problems.extend(check_channel_urls(config.channels))
    return problems


def check_channel_urls(channels: dict[str, list[str]]) -> list[str]:
    """Every channel URL must be one apprise accepts (`Apprise.add()` returns False otherwise)."""
    from worker.notify import check_url

    problems = []
    for name, urls in channels.items():
        for i, url in enumerate(urls):
            error = check_url(url)
            if error:
                key = f"channels.{name}" + (f"[{i}]" if len(urls) > 1 else "")
                problems.append(f"{key}: {error}")
    return problems


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


def parse_config(
    text: str, path: str | os.PathLike[str] = "<config>", env: dict[str, str] | None = None
) -> Config:
    """Validate TOML text into a Config; raise ConfigError listing every problem."""
    env = dict(os.environ) if env is None else env
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"not valid TOML: {exc}"]) from None
    problems: list[str] = []
    raw = _expand(raw, (), env, problems)
    if problems:
        raise ConfigError(path, problems)
    if isinstance(raw.get("database"), str):
        raw["database"] = _resolve_database(raw["database"], Path(path).resolve().parent)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(path, format_validation_error(exc)) from None
    problems = _cross_checks(config)
    if problems:
        raise ConfigError(path, problems)
    return config


def default_config_path() -> str:
    return os.environ.get("WORKER_CONFIG") or DEFAULT_CONFIG


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate the config file; raise ConfigError (never another exception)."""
    path = path or default_config_path()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read the file: {exc}"]) from None
    return parse_config(text, path)
