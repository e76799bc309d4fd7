"""Dates as sites write them (#14.6): dotted day-first, `date_order`, relative dates against the
fetch time. The cases are in tests/cases/dates.toml."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from worker.config import SelectConfig, SourceConfig
from worker.parse import parse_date, parse_listing

CASES = tomllib.loads((Path(__file__).parent / "cases" / "dates.toml").read_text("utf-8"))["case"]


def _case_id(case: dict[str, Any]) -> str:
    return f"{case['text']}|{case.get('order', '')}|{'now' if 'now' in case else ''}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_a_date_is_read_as_the_site_writes_it(case: dict[str, Any]) -> None:
    now = datetime.fromisoformat(case["now"]) if "now" in case else None
    value = parse_date(case["text"], order=case.get("order"), now=now)
    if case["expected"] == "":
        assert value is None
    else:
        assert value == datetime.fromisoformat(case["expected"])
        assert value is not None and value.tzinfo is UTC


def test_a_relative_date_is_read_against_a_fetch_time_in_another_zone() -> None:
    from datetime import timedelta, timezone

    now = datetime(2025, 7, 3, 17, 0, tzinfo=timezone(timedelta(hours=5)))
    assert parse_date("3 hours ago", now=now) == datetime(2025, 7, 3, 9, 0, tzinfo=UTC)


SELECT = SelectConfig.model_validate(
    {"item": "article", "title": "h2 a", "link": "h2 a", "published": "span.date"}
)
PAGE = (
    "<html><body>"
    '<article><h2><a href="/a">A</a></h2><span class="date">04/07/2025</span></article>'
    '<article><h2><a href="/b">B</a></h2><span class="date">2 часа назад</span></article>'
    "</body></html>"
)


def test_a_listing_reads_slashed_dates_in_the_sources_order_and_relative_ones_at_fetch_time():
    now = datetime(2025, 7, 5, 12, 0, tzinfo=UTC)
    page = parse_listing(PAGE, "https://example.org/", SELECT, date_order="DMY", now=now)
    assert [item.published for item in page.items] == [
        datetime(2025, 7, 4, tzinfo=UTC),
        datetime(2025, 7, 5, 10, 0, tzinfo=UTC),
    ]


def test_date_order_is_a_source_key_with_two_values() -> None:
    base = {"name": "s", "url": "https://example.org/", "select": SELECT.model_dump()}
    assert SourceConfig.model_validate({**base, "date_order": "DMY"}).date_order == "DMY"
    with pytest.raises(ValueError, match="date_order"):
        SourceConfig.model_validate({**base, "date_order": "YMD"})
