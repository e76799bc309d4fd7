"""Configuration: TOML read once, `${VAR}` expanded, validated into frozen pydantic models.

`load_config(path)` returns a `Config` or raises `ConfigError`, whose `.problems` are one line each,
naming the key (`sources[0].select.item: ...`). Nothing outside this package reads raw dicts.
"""

from worker.config.load import (
    DEFAULT_CONFIG,
    ConfigError,
    check_channel_urls,
    default_config_path,
    format_validation_error,
    load_config,
    parse_config,
)
from worker.config.models import (
    NAME_RE,
    AlertsConfig,
    ArticleConfig,
    Config,
    Duration,
    FieldSelector,
    Frozen,
    HttpConfig,
    HttpStatusConfig,
    LoggingConfig,
    SelectConfig,
    Selector,
    SourceConfig,
    WatchlistConfig,
    check_css,
    parse_duration,
)

__all__ = [
    "DEFAULT_CONFIG",
    "NAME_RE",
    "AlertsConfig",
    "ArticleConfig",
    "Config",
    "ConfigError",
    "Duration",
    "FieldSelector",
    "Frozen",
    "HttpConfig",
    "HttpStatusConfig",
    "LoggingConfig",
    "SelectConfig",
    "Selector",
    "SourceConfig",
    "WatchlistConfig",
    "check_channel_urls",
    "check_css",
    "default_config_path",
    "format_validation_error",
    "load_config",
    "parse_config",
    "parse_duration",
]
