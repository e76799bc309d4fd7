"""Dates of listing items: ISO 8601, RFC 2822 or human dates (English, Russian) -> aware UTC.

Numeric dates as sites write them: a dotted one (`03.07.2025`, the Russian and Central Asian
habit) is always day-first; a slashed one (`03/07/2025`) follows the source's `date_order`
("DMY" or "MDY"; month-first without it, as dateutil reads it). A relative date ("2 hours ago",
"вчера", "yesterday at 14:30") is read against `now`, the fetch time, and gives None without it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Literal

from dateutil import parser as dateutil_parser
from dateutil import tz

from worker.parse.text import RAW_CAP, clean_text

__all__ = ["MAX_DATE_TEXT", "DateOrder", "parse_date"]

DateOrder = Literal["DMY", "MDY"]

MAX_DATE_TEXT = 200  # a longer `published` text is not a date
MIN_YEAR, MAX_YEAR = 1990, 2100


class _ParserInfo(dateutil_parser.parserinfo):
    """dateutil's English names plus Russian month names (nominative, genitive, short)."""

    MONTHS: list[tuple[str, ...]] = [  # type: ignore[assignment]  # noqa: RUF012
        ("Jan", "January", "январь", "января", "янв"),
        ("Feb", "February", "февраль", "февраля", "фев"),
        ("Mar", "March", "март", "марта", "мар"),
        ("Apr", "April", "апрель", "апреля", "апр"),
        ("May", "мая", "май"),
        ("Jun", "June", "июнь", "июня", "июн"),
        ("Jul", "July", "июль", "июля", "июл"),
        ("Aug", "August", "август", "августа", "авг"),
        ("Sep", "Sept", "September", "сентябрь", "сентября", "сен", "сент"),
        ("Oct", "October", "октябрь", "октября", "окт"),
        ("Nov", "November", "ноябрь", "ноября", "ноя"),
        ("Dec", "December", "декабрь", "декабря", "дек"),
    ]


_PARSER_INFO = _ParserInfo()
_UTC_NAMES = frozenset({"UTC", "GMT", "UT", "Z", "ZULU"})
# Abbreviations that name one offset only; others (IST, CST...) are ambiguous and taken as UTC.
_TZ_OFFSETS = {
    "EST": -5,
    "EDT": -4,
    "PST": -8,
    "PDT": -7,
    "MST": -7,
    "MDT": -6,
    "CET": 1,
    "CEST": 2,
    "EET": 2,
    "EEST": 3,
    "MSK": 3,
    "ALMT": 5,
    "UZT": 5,
    "TJT": 5,
    "TMT": 5,
    "KGT": 6,
}
# Two defaults that differ in year, month and day: a component missing from the text shows.
_DEFAULT_A = datetime(2000, 1, 1)
_DEFAULT_B = datetime(2001, 2, 2)


def _tzinfos(name: str | None, offset: int | None) -> tzinfo | None:
    if offset is not None:
        return tz.tzoffset(name, offset)
    if name is None:
        return None
    key = name.upper()
    if key in _UTC_NAMES:
        return tz.UTC
    hours = _TZ_OFFSETS.get(key)
    return tz.tzoffset(key, hours * 3600) if hours is not None else None


def _to_utc(value: datetime) -> datetime | None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _human_date(text: str) -> datetime | None:
    """dateutil's parser, fuzzy, but only when the text itself gives year, month and day."""
    try:
        a = dateutil_parser.parse(
            text, parserinfo=_PARSER_INFO, default=_DEFAULT_A, fuzzy=True, tzinfos=_tzinfos
        )
        b = dateutil_parser.parse(
            text, parserinfo=_PARSER_INFO, default=_DEFAULT_B, fuzzy=True, tzinfos=_tzinfos
        )
    except (ValueError, OverflowError, TypeError, LookupError):
        return None
    if a != b:  # a component was filled from the default: "May I help", "July 2025", "12"
        return None
    # the year must be written out in full ("1 2 3" would otherwise read as 2003-01-02)
    if not re.search(rf"(?<!\d){a.year:04d}(?!\d)", text):
        return None
    return a


# The commonest human dates, "July 3, 2025", "July 3 2025" and "3 July 2025" (any month name of
# _ParserInfo, any case), read without dateutil's two fuzzy parses (~0.2 ms): the same value as
# _human_date (tests compare them over every month name), or None to ask _human_date.
_MONTH_NUMBERS = {
    name.lower(): number for number, names in enumerate(_ParserInfo.MONTHS, 1) for name in names
}
_MONTH_DAY_YEAR_RE = re.compile(r"([^\W\d_]+) ([0-9]{1,2}),? ([0-9]{4})")
_DAY_MONTH_YEAR_RE = re.compile(r"([0-9]{1,2}) ([^\W\d_]+) ([0-9]{4})")


def _simple_date(text: str) -> datetime | None:
    match = _MONTH_DAY_YEAR_RE.fullmatch(text)
    if match is not None:
        name, day, year = match.groups()
    else:
        match = _DAY_MONTH_YEAR_RE.fullmatch(text)
        if match is None:
            return None
        day, name, year = match.groups()
    month = _MONTH_NUMBERS.get(name.lower())
    if month is None:
        return None
    try:
        return datetime(int(year), month, int(day))
    except ValueError:  # "February 30, 2025", year 0: _human_date decides
        return None


# The shape of an RFC 2822 date ("Thu, 03 Jul 2025 10:00:00 +0000"), so that email.utils'
# lenient parser is not given other forms it would misread ("July 3, 2025 4:30 pm" as 04:30).
_RFC2822_RE = re.compile(r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}")


# 03.07.2025, 03/07/2025, 3-7-2025, optionally followed by a time (14:30, 14:30:05)
_NUMERIC_RE = re.compile(
    r"(\d{1,2})([./-])(\d{1,2})\2(\d{4})"
    r"(?:[\sT,]+(?:в\s+|at\s+)?(\d{1,2}):(\d{2})(?::(\d{2}))?)?\.?"
)


def _numeric_date(text: str, order: DateOrder | None) -> datetime | Literal[False] | None:
    """A d.m.y / m/d/y date: the value, None when impossible (31.02.2025), False when the text
    is not of this shape (the other readers decide)."""
    match = _NUMERIC_RE.fullmatch(text)
    if match is None:
        return False
    first, sep, second, year, hour, minute, sec = match.groups()
    if sep == "." or order == "DMY":
        day, month = int(first), int(second)
    elif order == "MDY":
        month, day = int(first), int(second)
    else:
        return False  # a slashed or dashed form without `date_order`: dateutil's reading
    try:
        return datetime(int(year), month, day, int(hour or 0), int(minute or 0), int(sec or 0))
    except ValueError:
        return None


_UNITS = {
    "second": 1, "sec": 1, "секунд": 1, "секунду": 1, "секунды": 1,
    "minute": 60, "min": 60, "минут": 60, "минуту": 60, "минуты": 60, "мин": 60,
    "hour": 3600, "hr": 3600, "час": 3600, "часа": 3600, "часов": 3600, "ч": 3600,
    "day": 86400, "день": 86400, "дня": 86400, "дней": 86400,
    "week": 604800, "неделю": 604800, "недели": 604800, "недель": 604800,
}  # fmt: skip
# at the end of the text, after a word or two at most ("Posted 2 hours ago")
_AGO_RE = re.compile(
    r"(?:^|(?<=\s))(?:(\d{1,4}|an?|one)\s+)?([^\W\d_]+?)s?\.?\s+(?:ago|назад)$",
    re.IGNORECASE,
)
_DAY_WORDS = {"today": 0, "сегодня": 0, "yesterday": 1, "вчера": 1, "позавчера": 2}
_DAY_RE = re.compile(
    r"(today|yesterday|сегодня|вчера|позавчера)"
    r"(?:[\s,]+(?:at\s+|в\s+)?(\d{1,2}):(\d{2}))?",
    re.IGNORECASE,
)
_NOW_WORDS = frozenset({"just now", "только что", "now"})
MAX_AGO = timedelta(days=366)  # "500 days ago" on a listing is not a date worth trusting


def _relative_date(text: str, now: datetime) -> datetime | None:
    """ "2 hours ago", "5 минут назад", "yesterday at 14:30", "вчера, 09:15", "just now"
    against `now` (aware); None when the text is no relative date."""
    lowered = text.lower().strip(" .")
    if lowered in _NOW_WORDS:
        return now
    match = _AGO_RE.search(lowered)
    if match is not None and match.start() <= 20:
        count_text, unit = match.groups()
        seconds = _UNITS.get(unit) or _UNITS.get(unit.rstrip("s"))
        if seconds is None:
            return None
        count = int(count_text) if count_text and count_text.isdigit() else 1
        delta = timedelta(seconds=count * seconds)
        return now - delta if delta <= MAX_AGO else None
    match = _DAY_RE.fullmatch(lowered)
    if match is not None:
        word, hour, minute = match.groups()
        day = now - timedelta(days=_DAY_WORDS[word])
        if hour is None:
            return day.replace(hour=0, minute=0, second=0, microsecond=0)
        if int(hour) > 23 or int(minute) > 59:
            return None
        return day.replace(hour=int(hour), minute=int(minute), second=0, microsecond=0)
    return None


@lru_cache(maxsize=4096)
def _parse_date_cached(text: str, order: DateOrder | None = None) -> datetime | None:
    numeric = _numeric_date(text, order)
    if numeric is not False:
        return _to_utc(numeric) if numeric is not None else None
    try:
        value: datetime | None = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None and _RFC2822_RE.match(text):
        try:
            value = parsedate_to_datetime(text)  # RFC 2822 (a "-0000" zone gives a naive value)
        except (ValueError, TypeError, IndexError, OverflowError):
            value = None
    if value is None:
        value = _simple_date(text) or _human_date(text)
    return _to_utc(value) if value is not None else None


def parse_date(
    text: str, *, order: DateOrder | None = None, now: datetime | None = None
) -> datetime | None:
    """ISO 8601, RFC 2822 or a human date ("July 3, 2025", "3 July 2025") -> aware UTC datetime.

    `03.07.2025` is 3 July; `03/07/2025` is read as `order` says ("DMY", "MDY"; month-first
    without it). A relative date ("2 hours ago", "вчера") is read against `now` (the fetch
    time, aware; None: relative dates give None). A value without a zone is taken as UTC.
    Anything else (garbage, a partial date such as "July 2025", a year outside 1990..2100)
    gives None; this function never raises.
    """
    if not isinstance(text, str):
        return None
    cleaned = clean_text(text[: MAX_DATE_TEXT * RAW_CAP])
    if not cleaned or len(cleaned) > MAX_DATE_TEXT:
        return None
    value = _parse_date_cached(cleaned, order)
    if value is None and now is not None:
        relative = _relative_date(cleaned, now.astimezone(UTC))
        return relative if relative is not None and MIN_YEAR <= relative.year <= MAX_YEAR else None
    return value
