"""The `[http]` keys of issue 9: defaults, and out-of-range values refused with the key named."""

from __future__ import annotations

import pytest

from worker.config import ConfigError, parse_config

BASE = '[channels]\nc = "console://"\n'


def http(text: str) -> str:
    return f"[http]\n{text}\n\n{BASE}"


def test_defaults_no_cookies_4_per_host_8_in_all_30_minutes_a_pass() -> None:
    config = parse_config(BASE, "w.toml", env={})
    assert config.http.cookies is False
    assert (config.http.per_host, config.http.concurrency) == (4, 8)
    assert config.http.pass_timeout == 1800


def test_pass_timeout_is_a_duration() -> None:
    config = parse_config(
        http('pass_timeout = "5m"\ncookies = true\nper_host = 2'),
        "w.toml",
        env={},
    )
    assert config.http.pass_timeout == 300 and config.http.cookies and config.http.per_host == 2


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("per_host = 0", "http.per_host"),
        ("per_host = 1000", "http.per_host"),
        ('pass_timeout = "0s"', "http.pass_timeout"),
        ("pass_timeout = nan", "http.pass_timeout"),
        ("pass_timeout = inf", "http.pass_timeout"),
        ('pass_timeout = "3d"', "http.pass_timeout"),
        ('cookies = "maybe"', "http.cookies"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_key(line: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(http(line), "w.toml", env={})
    assert any(problem.startswith(f"{key}:") for problem in info.value.problems), (
        info.value.problems
    )
