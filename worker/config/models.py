"""The config's typed, frozen models (pydantic, unknown keys rejected) and their value types."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from worker import USER_AGENT

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# No duration in the config means anything beyond a year; a bound keeps nan, inf and 1e300 out
# of the scheduler, asyncio.timeout() and datetime arithmetic (which raise OverflowError).
MAX_DURATION = 366 * 86400.0


def parse_duration(value: Any) -> float:
    """'15m', '1h30m', '90s', '2d', '500ms' or a number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '15m', '1h' or '30s'")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            seconds = math.inf
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if len(text) > 64:
            raise ValueError("a duration is at most 64 characters (e.g. '1h30m')")
        parts = _DURATION_RE.findall(text)
        if not text or "".join(n + u for n, u in parts).lower() != text.lower():
            raise ValueError(
                f"{value!r} is not a duration: use a number with s, m, h or d (e.g. '15m')"
            )
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in parts)
    else:
        raise ValueError("expected a duration such as '15m', '1h' or '30s'")
    if math.isnan(seconds):
        raise ValueError("a duration must be a number of seconds, not nan")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError("a duration cannot be longer than 366d")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _duration_or_off(value: Any) -> float | None:
    """A duration, or "off" (None)."""
    if isinstance(value, str) and value.strip().lower() == "off":
        return None
    return parse_duration(value)


OptionalDuration = Annotated[float | None, BeforeValidator(_duration_or_off)]


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


class ArticleConfig(Frozen):
    """`[sources.article]`: read each new article's own page for its text and date."""

    body: Selector | None = None  # the article text; None: main-text extraction (trafilatura)
    published: Selector | None = None  # None: meta article:published_time, JSON-LD, <time>
    # hosts besides the listing's own origin that article pages may be read from; ["*"]: any
    # public host (an aggregator's listing)
    hosts: list[str] = Field(default_factory=list)
    max_per_pass: int = Field(default=100, ge=1, le=10_000)

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        for host in value:
            if host != "*" and not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?", host):
                raise ValueError(f"{host!r} is not a host name (e.g. 'cdn.example.org'), or '*'")
        return [h.lower() for h in value]


NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_WINDOW_RE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _check_window(value: Any) -> str:
    """ "HH:MM-HH:MM" (24 h clock; 24:00 ends a day; start after end wraps midnight)."""
    if not isinstance(value, str):
        raise ValueError('expected a window such as "06:00-23:00"')
    text = value.strip()
    m = _WINDOW_RE.match(text)
    if m is None:
        raise ValueError(f'{text[:40]!r} is not a window: use "HH:MM-HH:MM", e.g. "06:00-23:00"')
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    for h, mi in ((h1, m1), (h2, m2)):
        if mi > 59 or h > 24 or (h == 24 and mi):
            raise ValueError(f"{text!r}: {h:02d}:{mi:02d} is not a time of day")
    if (h1, m1) == (h2, m2):
        raise ValueError(f"{text!r} is empty: start and end are the same time")
    return f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"


ActiveWindow = Annotated[str, BeforeValidator(_check_window)]


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def in_windows(windows: Sequence[str], minute: int) -> bool:
    """Whether `minute` of the day (0-1439) falls in one of the "HH:MM-HH:MM" windows (the start
    included, the end not; a window whose start is after its end wraps midnight)."""
    for window in windows:
        start_text, end_text = window.split("-")
        start = int(start_text[:2]) * 60 + int(start_text[3:])
        end = int(end_text[:2]) * 60 + int(end_text[3:])
        if (start <= minute < end) if start < end else (minute >= start or minute < end):
            return True
    return False


class SourceConfig(Frozen):
    name: str = Field(pattern=NAME_RE, max_length=100)
    # "listing": HTML pages read with `select`; "feed": `url` is an RSS/Atom/JSON Feed;
    # "wordpress": `url` is a WordPress site's root, read through /wp-json/wp/v2/posts
    type: Literal["listing", "feed", "wordpress"] = "listing"
    url: str
    every: Duration | None = None
    cron: str | None = None
    max_pages: int = Field(default=50, ge=1, le=10_000)
    alert_backfill: bool = False
    page_url: str | None = None
    overlap_pages: int = Field(default=1, ge=1, le=20)
    # at most this long after the last complete walk, a pass walks the whole listing (None: off)
    reconcile: OptionalDuration = 86400.0
    # how the source writes slashed numeric dates (03/07/2025); a dotted one is always day-first
    date_order: Literal["DMY", "MDY"] | None = None
    select: SelectConfig | None = None  # required by (and only for) type = "listing"
    article: ArticleConfig | None = None  # read each new article's own page
    # type = "wordpress": the REST API's `search`, `categories` and `tags` parameters
    search: str | None = Field(default=None, min_length=1, max_length=200)
    categories: list[int] | None = Field(default=None, min_length=1)
    tags: list[int] | None = Field(default=None, min_length=1)
    # passes only inside these windows ("06:00-23:00", may wrap midnight), in `timezone`
    active: (
        Annotated[list[ActiveWindow], BeforeValidator(_one_or_list), Field(min_length=1)] | None
    ) = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_http_url(value)

    @field_validator("page_url")
    @classmethod
    def _page_template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        check_page_template(value)
        _check_http_url(value.format(page=2))
        return value

    @field_validator("every")
    @classmethod
    def _every_min(cls, value: float | None) -> float | None:
        if value is not None and value < 1:
            raise ValueError("must be at least 1s")
        if value is not None and value > MAX_EVERY:
            raise ValueError("must be at most 30d")
        return value

    @field_validator("reconcile")
    @classmethod
    def _reconcile_min(cls, value: float | None) -> float | None:
        if value is not None and value < 1:
            raise ValueError('must be at least 1s, or "off"')
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

    @model_validator(mode="after")
    def _keys_of_type(self) -> SourceConfig:
        if self.type == "listing" and self.select is None:
            raise ValueError("a listing source needs a [sources.select] table (or set `type`)")
        if self.type != "listing":
            for key in ("select", "page_url"):
                if getattr(self, key) is not None:
                    raise ValueError(f"`{key}` is for listing sources, not type = {self.type!r}")
        if self.type != "wordpress":
            for key in ("search", "categories", "tags"):
                if getattr(self, key) is not None:
                    raise ValueError(f'`{key}` is for type = "wordpress" sources only')
        return self

    def is_active(self, when: datetime, zone: str) -> bool:
        """Whether a pass may start at `when` (aware) by the `active` windows, read in `zone`."""
        if self.active is None:
            return True
        from zoneinfo import ZoneInfo

        local = when.astimezone(ZoneInfo(zone))
        return in_windows(self.active, local.hour * 60 + local.minute)

    @property
    def interval(self) -> float:
        """Seconds between passes when scheduled by `every` (default 15 minutes)."""
        return self.every if self.every is not None else 900.0


MAX_EVERY = 30 * 86400.0  # seconds; a longer interval is a mistake (cron covers rare passes)
URL_MAX = 2048


def check_page_template(value: str) -> None:
    """`value` may hold one kind of replacement field only: a bare `{page}` (no attribute, index,
    conversion or format spec: `{page:>99999999999}` would build a string of 100 GB). `{{` and
    `}}` stand for braces."""
    import string

    try:
        fields = [
            (name, spec, conv)
            for _, name, spec, conv in string.Formatter().parse(value)
            if name is not None
        ]
    except ValueError as exc:  # a single "{" or "}"
        raise ValueError(f"unbalanced braces ({exc}); write {{{{ and }}}} for a brace") from None
    bad = [f for f in fields if f != ("page", "", None)]
    if bad:
        name, spec, conv = bad[0]
        shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
        raise ValueError(f"only a bare {{page}} may appear in braces, not {shown[:40]!r}")
    if not fields:
        raise ValueError("must contain {page}, e.g. 'https://example.org/page/{page}/'")


def _check_http_url(value: str) -> str:
    """An absolute http(s) URL with a host that httpx (IDNA 2008) can encode."""
    from urllib.parse import urlsplit

    if len(value) > URL_MAX:
        raise ValueError(f"a URL is at most {URL_MAX} characters")
    for i, char in enumerate(value):
        if char < " " or char == "\x7f":  # httpx refuses them (urlsplit drops tabs silently)
            raise ValueError(f"a URL cannot hold a control character ({char!r} at {i})")
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{_shown(value)} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not hostname:
        raise ValueError(f"{_shown(value)} is not an http(s) URL")
    try:
        host = hostname
        if not hostname.isascii() or "xn--" in hostname:
            # as httpx will read it (IDNA 2008, A-labels decoded); imported only then: httpx's
            # idna tables cost ~50 ms of every `worker check`
            import httpx

            host = httpx.URL(value).host
        # what the resolver will do with it (labels of 1-63 characters, 253 in all)
        host.encode("idna")
    except Exception as exc:  # httpx.InvalidURL, idna.IDNAError (a ValueError), UnicodeError
        reason = " ".join(str(exc).split())[:120]
        raise ValueError(f"{_shown(value)} has an invalid host ({reason})") from None
    return value


def _shown(url: str) -> str:
    """A URL fit for a message: credentials masked, cut at 200 characters."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            url = url.replace(parts.netloc, "***@" + parts.netloc.rpartition("@")[2], 1)
    except ValueError:
        pass
    return repr(url if len(url) <= 200 else url[:199] + "…")


def check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
    return value


def parse_digest(value: Any) -> str:
    """A digest schedule: a 5-field cron expression (in `timezone`) or an interval ("1h")."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError('expected a cron expression ("0 8 * * *") or an interval ("1h")')
    value = " ".join(value.split())
    if len(value.split()) == 5:
        return check_cron(value)
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(
            f'{value[:64]!r} is neither a cron expression ("0 8 * * *") nor an interval ("1h")'
        ) from None
    if seconds < 1:
        raise ValueError("a digest interval is at least 1s")
    return value


class WatchlistConfig(Frozen):
    name: str = Field(pattern=NAME_RE, max_length=100)
    keywords: list[str] | None = Field(default=None, min_length=1)
    query: str | None = None  # the query language: see the README
    stem: bool = False  # match word forms (English and Russian stems)
    exclude: list[str] = Field(default_factory=list)
    channels: list[str] = Field(min_length=1)
    sources: list[str] | None = None
    title_template: str | None = None  # Jinja2, overrides [templates] title
    body_template: str | None = None  # Jinja2, overrides [templates] body
    digest: Annotated[str, BeforeValidator(parse_digest)] | None = None  # "0 8 * * *" or "1h"

    @field_validator("title_template", "body_template")
    @classmethod
    def _valid_template(cls, value: str | None) -> str | None:
        if value is not None:
            from worker.templates import check_template

            check_template(value, digest=False)
        return value

    @field_validator("query")
    @classmethod
    def _valid_query(cls, value: str | None) -> str | None:
        from worker.match import QueryError, parse_query

        if value is not None:
            try:
                parse_query(value)
            except QueryError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _keywords_or_query(self) -> WatchlistConfig:
        if self.keywords is not None and self.query is not None:
            raise ValueError("give either `keywords` or `query`, not both")
        if self.keywords is None and self.query is None:
            raise ValueError("needs `keywords` (a list of terms) or `query` (a search expression)")
        return self

    @field_validator("keywords", "exclude")
    @classmethod
    def _keywords_have_words(cls, value: list[str] | None) -> list[str] | None:
        from worker.match import parse_keyword

        for i, keyword in enumerate(value or ()):
            try:
                parse_keyword(keyword)
            except ValueError as exc:
                raise ValueError(f"[{i}] {keyword!r}: {exc}") from None
        return value


class HttpConfig(Frozen):
    user_agent: str = Field(default=USER_AGENT, min_length=1, max_length=512)
    timeout: Duration = Field(default=20.0, gt=0, le=600)
    min_delay: Duration = Field(default=1.0, ge=0, le=3600)
    concurrency: int = Field(default=8, ge=1, le=256)
    per_host: int = Field(default=4, ge=1, le=64)  # requests in flight to one host (and port)
    retries: int = Field(default=3, ge=0, le=10)
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024, le=1024**3)
    cookies: bool = False  # true: each source pass keeps its own capped jar
    pass_timeout: Duration = Field(default=1800.0, gt=0, le=86400)  # one source's pass
    robots: bool = True  # obey robots.txt (RFC 9309) and its Crawl-delay
    # after this many failed passes in a row a source's next passes are spaced out (doubling)
    breaker_after: int = Field(default=5, ge=1, le=1000)
    breaker_max: Duration = Field(default=3600.0, ge=1, le=7 * 86400)  # the longest spacing

    @field_validator("user_agent")
    @classmethod
    def _header_value(cls, value: str) -> str:
        return check_header_value(value)


def check_header_value(value: str) -> str:
    """An HTTP header value: printable ASCII and spaces (httpx encodes headers as ASCII)."""
    for i, char in enumerate(value):
        if not " " <= char <= "~":
            raise ValueError(f"must be printable ASCII (an HTTP header); character {i} is {char!r}")
    return value


class AlertsConfig(Frozen):
    retry_base: Duration = Field(default=30.0, ge=0, le=86400)
    retry_max: Duration = Field(default=3600.0, ge=0, le=7 * 86400)
    max_attempts: int = Field(default=10, ge=1, le=100)
    send_timeout: Duration = Field(default=60.0, ge=1, le=3600)


class TemplatesConfig(Frozen):
    """Jinja2 templates of the messages (None: the built-in layout, today's messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    title: str | None = None
    body: str | None = None
    digest_title: str | None = None
    digest_body: str | None = None

    @field_validator("title", "body")
    @classmethod
    def _valid_single(cls, value: str | None) -> str | None:
        if value is not None:
            from worker.templates import check_template

            check_template(value, digest=False)
        return value

    @field_validator("digest_title", "digest_body")
    @classmethod
    def _valid_digest(cls, value: str | None) -> str | None:
        if value is not None:
            from worker.templates import check_template

            check_template(value, digest=True)
        return value


_QUIET_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)$")


def parse_quiet_hours(value: Any) -> tuple[int, int]:
    """ "22:00-07:00" -> (start, end) in minutes of the day (local time); may wrap midnight."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    match = _QUIET_RE.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError('expected "HH:MM-HH:MM" in 24-hour time, e.g. "22:00-07:00"')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError("quiet hours must not start and end at the same time")
    return (start, end)


def parse_rate_limit(value: Any) -> tuple[int, float]:
    """ "10/1h" -> (10 messages, 3600 seconds)."""
    if isinstance(value, list | tuple) and len(value) == 2:
        return (int(value[0]), float(value[1]))
    if not isinstance(value, str) or value.count("/") != 1:
        raise ValueError('expected "MESSAGES/WINDOW", e.g. "10/1h"')
    count, _, window = value.partition("/")
    if not count.strip().isdigit() or not 1 <= int(count) <= 100_000:
        raise ValueError(f"{count.strip()[:20]!r} is not a number of messages (1 to 100000)")
    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        raise ValueError(f"window: {exc}") from None
    if seconds < 1:
        raise ValueError("the window is at least 1s")
    return (int(count), seconds)


class ChannelConfig(Frozen):
    """A channel written as a table: its URLs and when and how often it may be sent to."""

    url: str | None = None
    urls: list[str] | None = None
    quiet_hours: Annotated[tuple[int, int], BeforeValidator(parse_quiet_hours)] | None = None
    rate_limit: Annotated[tuple[int, float], BeforeValidator(parse_rate_limit)] | None = None

    @model_validator(mode="after")
    def _one_url_key(self) -> ChannelConfig:
        if (self.url is None) == (self.urls is None):
            raise ValueError("give either `url` or `urls` (a list)")
        if self.urls is not None and not self.urls:
            raise ValueError("`urls` must list at least one URL")
        return self


class WatchdogConfig(Frozen):
    """Messages about the worker itself: a source failing or gone quiet, a channel failing."""

    channels: list[str] = Field(min_length=1)
    failing_passes: int = Field(default=3, ge=1, le=1000)
    stale_after: Duration | None = Field(default=None, ge=60)


class HttpStatusConfig(Frozen):
    port: int = Field(default=0, ge=0, le=65535)  # 0 = off
    host: str = Field(default="127.0.0.1", min_length=1, max_length=253)


class FleetConfig(Frozen):
    """`worker run` replicas on one PostgreSQL share the sources' schedule (README: a fleet)."""

    # false: this daemon schedules every source itself even on PostgreSQL (as before fleets:
    # two such daemons both pass every source)
    enabled: bool = True
    # this replica's id in /healthz, /metrics and the claims; default host:pid
    replica: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^\S+$")


class LoggingConfig(Frozen):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"  # json: one object a line (worker.logs)


def _url_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


ChannelUrls = Annotated[list[str], BeforeValidator(_url_list), Field(min_length=1)]


def check_timezone(value: str) -> str:
    """An IANA time zone name that zoneinfo knows (e.g. "Europe/Berlin")."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not value or len(value) > 64 or value.startswith(("/", ".")) or ".." in value:
        raise ValueError(f"{value[:64]!r} is not an IANA time zone name (e.g. 'Europe/Berlin')")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None
    return value


class Config(Frozen):
    database: str = "sqlite:///worker.db"
    http: HttpConfig = HttpConfig()
    alerts: AlertsConfig = AlertsConfig()
    http_status: HttpStatusConfig = HttpStatusConfig()
    fleet: FleetConfig = FleetConfig()
    logging: LoggingConfig = LoggingConfig()
    channels: dict[str, ChannelUrls] = Field(default_factory=dict)
    # the channels written as tables ([channels.NAME]), by name; their URLs are in `channels`
    channel_settings: dict[str, ChannelConfig] = Field(default_factory=dict)
    templates: TemplatesConfig = TemplatesConfig()
    watchdog: WatchdogConfig | None = None
    sources: list[SourceConfig] = Field(default_factory=list)
    watchlists: list[WatchlistConfig] = Field(default_factory=list)
    # IANA name: cron schedules, digests, quiet hours, the sources' `active` windows and the
    # dates shown in messages use it
    timezone: str = Field(default="UTC", min_length=1, max_length=64)

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in value:
            if not re.match(NAME_RE, name):
                raise ValueError(f"channel name {name!r} must be letters, digits, '-', '_' or '.'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _channel_tables(cls, data: Any) -> Any:
        """`[channels.NAME]` tables: the URLs go to `channels`, the table to `channel_settings`
        (so that everything that reads `channels` sees a list of URLs either way)."""
        if not isinstance(data, dict) or not isinstance(data.get("channels"), dict):
            return data
        if "channel_settings" in data:
            raise ValueError("channel_settings: unknown key (write [channels.NAME] tables)")
        channels, settings = {}, {}
        for name, value in data["channels"].items():
            if isinstance(value, dict):
                settings[name] = value
                urls = value.get("urls", value.get("url"))
                channels[name] = urls if urls is not None else []
            else:
                channels[name] = value
        return {**data, "channels": channels, "channel_settings": settings}

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @property
    def tz(self) -> Any:
        """The config's time zone as a ZoneInfo."""
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)

    @functools.cached_property
    def sources_by_name(self) -> tuple[list[SourceConfig], dict[str, SourceConfig]]:
        """The sources by name, with the list they index (a `model_copy` carries this over)."""
        return self.sources, {source.name: source for source in self.sources}

    def source(self, name: str) -> SourceConfig:
        # a dict, not a walk of the list: the daemon looks a source up twice a pass, and at
        # 10,000 sources the walk was 40 % of the event loop's own CPU
        listed, index = self.sources_by_name
        if listed is not self.sources:
            del self.__dict__["sources_by_name"]
            listed, index = self.sources_by_name
        return index[name]

    def watchlists_for(self, source: str) -> list[WatchlistConfig]:
        return [w for w in self.watchlists if w.sources is None or source in w.sources]
