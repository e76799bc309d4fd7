"""worker.parse: table-driven listing cases (tests/cases/parse), field helpers, hostile input.

Each case is `<name>.toml` (selectors, page URL, expected result written by hand) beside
`<name>.html` (or the file named by `html = "..."`). See test_case for the keys.
"""

from __future__ import annotations

import random
import re
import sys
import time
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selectolax.lexbor import LexborNode

from worker.config import FieldSelector, SelectConfig
from worker.models import Item, ListingPage, ResultsCount
from worker.parse import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_SUMMARY,
    MAX_TITLE,
    ParseError,
    clean_text,
    dates,
    listing,
    parse_date,
    parse_listing,
    parse_results,
    strip_shortcodes,
)
from worker.parse.document import html_document
from worker.parse.text import _CONTROL_RE, _SPACE_CONTROLS, _has_space_control, recap_text

CASES_DIR = Path(__file__).parent / "cases" / "parse"
CASE_FILES = sorted(CASES_DIR.glob("*.toml"))

CASE_KEYS = {"description", "page_url", "html", "select", "expect"}
EXPECT_KEYS = {"items", "results", "next_url", "skipped", "error"}
ITEM_KEYS = {"url", "title", "summary", "published"}


def load_case(path: Path) -> dict[str, Any]:
    case = tomllib.loads(path.read_text(encoding="utf-8"))
    # a misspelt key would silently test nothing: refuse unknown keys
    assert set(case) <= CASE_KEYS, f"{path.name}: unknown keys {set(case) - CASE_KEYS}"
    assert {"description", "page_url", "select", "expect"} <= set(case), path.name
    expect = case["expect"]
    assert set(expect) <= EXPECT_KEYS, f"{path.name}: unknown keys {set(expect) - EXPECT_KEYS}"
    for item in expect.get("items", []):
        assert set(item) <= ITEM_KEYS, f"{path.name}: unknown item keys {set(item) - ITEM_KEYS}"
        assert {"url", "title"} <= set(item), path.name
    if "error" not in expect:
        assert "skipped" in expect and "items" in expect, path.name
    return case


def test_there_are_enough_cases_and_no_orphans() -> None:
    assert len(CASE_FILES) >= 10
    htmls = {p.name for p in CASES_DIR.glob("*.html")}
    used = {load_case(p).get("html", p.stem + ".html") for p in CASE_FILES}
    assert htmls == used


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: p.stem)
def test_case(path: Path) -> None:
    case = load_case(path)
    html = (CASES_DIR / case.get("html", path.stem + ".html")).read_text(encoding="utf-8")
    select = SelectConfig.model_validate(case["select"])
    expect = case["expect"]
    page_url = case["page_url"]

    if "error" in expect:
        with pytest.raises(ParseError) as caught:
            parse_listing(html, page_url, select)
        assert str(caught.value) == expect["error"]
        return

    page = parse_listing(html, page_url, select)
    expected_items = [
        Item(
            url=item["url"],
            title=item["title"],
            summary=item.get("summary", ""),
            published=item.get("published"),
        )
        for item in expect["items"]
    ]
    assert list(page.items) == expected_items
    for item in page.items:  # equal instants are not enough: the zone must be UTC
        assert item.published is None or item.published.tzinfo is UTC
    results = expect.get("results")
    assert page.results == (ResultsCount(**results) if results is not None else None)
    assert page.next_url == expect.get("next_url")
    assert page.skipped == expect["skipped"]
    assert page.url == page_url


# --- helpers for inline pages ------------------------------------------------------------------

WP_SELECT = SelectConfig.model_validate(
    {
        "item": "#main article",
        "title": "h2.entry-title a",
        "link": "h2.entry-title a",
        "summary": ".entry-summary",
        "published": {"css": "time.entry-date", "attr": "datetime"},
        "results": ".search-results-count",
        "next": "a.next",
    }
)


def teaser(n: int, title: str | None = None, summary: str = "Summary.", href: str = "") -> str:
    return (
        f'<article class="post"><h2 class="entry-title"><a href="{href or f"/post-{n}/"}">'
        f"{title if title is not None else f'Post {n}'}</a></h2>"
        f'<time class="entry-date" datetime="2025-07-03T10:00:00+05:00">July 3</time>'
        f'<div class="entry-summary"><p>{summary}</p></div></article>'
    )


def page(*teasers: str, extra: str = "") -> str:
    return (
        f'<!DOCTYPE html><html><body><main id="main">{"".join(teasers)}</main>{extra}</body></html>'
    )


def parse(html: str, url: str = "https://example.com/list/") -> ListingPage:
    return parse_listing(html, url, WP_SELECT)


# --- parse_listing behaviours not in the case files --------------------------------------------


def test_selector_matched_nothing_names_selector_and_page() -> None:
    html = page(extra='<aside><article class="post"><h2 class="entry-title"><a href="/x/">X')
    html = html.replace('<main id="main">', '<main id="main"><p>Nothing Found</p>')
    with pytest.raises(ParseError, match=r"^selector matched nothing: item '#main article' on "):
        parse(html, "https://example.com/page/99/")
    with pytest.raises(ParseError) as caught:
        parse(html, "https://example.com/page/99/")
    assert str(caught.value).endswith(" on https://example.com/page/99/")


def test_error_messages_do_not_show_credentials() -> None:
    url = "https://reader:s3cret@example.com/page/9/"
    for html in (page(), "not html", page(teaser(1)) + "<div>" * 10_000):
        with pytest.raises(ParseError) as caught:
            parse(html, url)
        assert "s3cret" not in str(caught.value)
        assert "https://***@example.com/page/9/" in str(caught.value)


@pytest.mark.parametrize("text", ["", "   ", "just some text", '{"items": []}', "404 Not Found"])
def test_a_page_that_is_not_html_is_a_parse_error(text: str) -> None:
    with pytest.raises(ParseError, match="not an HTML document"):
        parse(text)


def test_next_link_to_the_page_itself_is_no_next_page() -> None:
    html = page(teaser(1), extra='<a class="next" href="/list/#top">Next</a>')
    assert parse(html, "https://example.com/list/").next_url is None
    html = page(teaser(1), extra='<a class="next" href="/list/?page=2">Next</a>')
    assert parse(html, "https://example.com/list/").next_url == "https://example.com/list/?page=2"


def test_next_and_results_absent_or_unreadable() -> None:
    html = page(teaser(1), extra='<div class="search-results-count">78 results found</div>')
    result = parse(html)
    assert result.results is None
    assert result.next_url is None
    assert [i.url for i in result.items] == ["https://example.com/post-1/"]


def test_first_match_of_each_field_is_taken() -> None:
    html = page(
        '<article class="post"><h2 class="entry-title"><a href="/first/">First</a></h2>'
        '<h2 class="entry-title"><a href="/second/">Second</a></h2>'
        '<time class="entry-date" datetime="2025-07-03">a</time>'
        '<time class="entry-date" datetime="2024-01-01">b</time></article>'
    )
    (item,) = parse(html).items
    assert (item.url, item.title) == ("https://example.com/first/", "First")
    assert item.published == datetime(2025, 7, 3, tzinfo=UTC)


def test_field_selector_may_match_the_item_element_itself() -> None:
    select = SelectConfig.model_validate({"item": "ul.links a", "title": "a", "link": "a"})
    html = '<ul class="links"><li><a href="/x">X</a></li><li><a href="/y">Y</a></li></ul>'
    result = parse_listing(html, "https://example.com/", select)
    assert [(i.url, i.title) for i in result.items] == [
        ("https://example.com/x", "X"),
        ("https://example.com/y", "Y"),
    ]


def test_title_from_an_attribute() -> None:
    select = SelectConfig.model_validate(
        {"item": ".card", "title": {"css": "a", "attr": "title"}, "link": "a"}
    )
    html = '<div class="card"><a href="/a" title="  Full &amp; proper\ttitle ">Read</a></div>'
    (item,) = parse_listing(html, "https://example.com/", select).items
    assert item.title == "Full & proper title"


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ("Intro<div>Block</div>Tail", "Intro Block Tail"),
        ("One<br>two<br/>three", "One two three"),
        ("<ul><li>a</li><li>b</li></ul>c", "a b c"),
        ("In<b>line</b> <a href='/x'>link</a>, <em>em</em>.", "Inline link, em."),
        ("Cell<table><tr><td>1</td><td>2</td></tr></table>", "Cell 1 2"),
    ],
)
def test_block_elements_separate_text_inline_ones_do_not(summary: str, expected: str) -> None:
    html = page(
        '<article class="post"><h2 class="entry-title"><a href="/a/">A</a></h2>'
        f'<div class="entry-summary">{summary}</div></article>'
    )
    assert parse(html).items[0].summary == expected


def test_script_and_style_text_is_not_read() -> None:
    html = page(teaser(1, summary="Visible<script>var hidden = 1;</script><style>p{}</style> text"))
    assert parse(html).items[0].summary == "Visible text"


# --- hostile input -----------------------------------------------------------------------------


def test_items_per_page_are_capped() -> None:
    html = page(*(teaser(n) for n in range(MAX_ITEMS + 100)))
    result = parse(html)
    assert len(result.items) == MAX_ITEMS
    assert result.items[-1].url == f"https://example.com/post-{MAX_ITEMS - 1}/"


def test_title_and_summary_are_capped_after_cleaning() -> None:
    long_title = "word&nbsp; " * 2000
    long_summary = "Sentence here. " * 10_000
    (item,) = parse(page(teaser(1, title=long_title, summary=long_summary))).items
    # cut at the cap, a trailing space before the ellipsis dropped
    assert MAX_TITLE - 1 <= len(item.title) <= MAX_TITLE
    assert item.title.startswith("word word word")
    assert item.title.endswith("…")
    assert MAX_SUMMARY - 1 <= len(item.summary) <= MAX_SUMMARY
    assert item.summary.startswith("Sentence here. Sentence here.")
    assert item.summary.endswith("…")
    # whitespace runs do not count towards the cap
    (item,) = parse(page(teaser(1, title="A" + " " * 5000 + "B"))).items
    assert item.title == "A B"


def test_huge_attributes_and_huge_links() -> None:
    huge = "x" * 3_000_000
    html = page(
        f'<article class="post" data-junk="{huge}"><h2 class="entry-title">'
        f'<a href="/ok/" data-more="{huge}">OK</a></h2></article>',
        teaser(2, href="/" + "a" * 3_000_000),
    )
    started = time.perf_counter()
    result = parse(html)
    assert time.perf_counter() - started < 5
    assert [i.url for i in result.items] == ["https://example.com/ok/"]
    assert result.skipped == 1  # the link longer than MAX_URL_LENGTH


def test_deep_nesting_is_refused_quickly() -> None:
    for opener in ("<div>", "<span><div>", "<b><ul>", "<div/>"):
        html = page(teaser(1)) + opener * 200_000 + "x"
        started = time.perf_counter()
        with pytest.raises(ParseError, match="nests more than"):
            parse(html)
        assert time.perf_counter() - started < 5, opener


def test_moderate_nesting_is_read() -> None:
    below_limit = "<div>" * (MAX_DEPTH - 100) + "deep" + "</div>" * (MAX_DEPTH - 100)
    nested_summary = "<div>" * 100 + "deep text" + "</div>" * 100
    html = page(teaser(1, summary=f"Start {nested_summary} end"), teaser(2), extra=below_limit)
    started = time.perf_counter()
    first, second = parse(html).items
    assert time.perf_counter() - started < 2
    assert first.summary == "Start deep text end"
    assert second.title == "Post 2"


def test_reading_a_field_is_bounded_on_hostile_markup() -> None:
    # 500 items of 1,000 tiny elements each, and items nested in items
    spam = "".join(
        teaser(n, title="<i>x</i>" * 1000, summary="<b>y</b> " * 1000) for n in range(MAX_ITEMS)
    )
    nested = '<article class="post"><h2 class="entry-title"><a href="/n/">N</a></h2>'
    nested += '<div class="entry-summary">' + "word " * 1000
    for html in (page(spam), page(nested * 400)):  # 800 deep: under MAX_DEPTH
        started = time.perf_counter()
        result = parse(html)
        assert time.perf_counter() - started < 10
        assert result.items
        assert all(
            len(i.summary) <= MAX_SUMMARY and len(i.title) <= MAX_TITLE for i in result.items
        )


def test_many_flat_tags_are_not_taken_for_nesting() -> None:
    # 20,000 closed elements, 20,000 unclosed <p> and <li>, 20,000 SVG leaves: flat, not deep
    filler = "<span>x</span>" * 20_000 + "<p>para" * 20_000 + "<ul>" + "<li>i" * 20_000 + "</ul>"
    filler += "<svg>" + '<path d="M0 0"/>' * 20_000 + "</svg>"
    result = parse(page(teaser(1), teaser(2), extra=filler))
    assert len(result.items) == 2


def test_nul_bytes_control_characters_and_undecodable_leftovers() -> None:
    html = page(
        teaser(1, title="Ti\x00tle\x07 one", summary="Sum\x00mary\x1b text"),
        teaser(2, title="Broken \udcff\ud800 bytes", summary="caf\udce9"),
    )
    first, second = parse(html).items
    assert first.title == "Title one"
    assert first.summary == "Summary text"
    assert second.title.startswith("Broken ")
    assert "\x00" not in second.title and "\x00" not in second.summary
    second.title.encode("utf-8")  # storable: no lone surrogates left
    second.summary.encode("utf-8")


def test_bytes_input_is_read_as_utf8() -> None:
    html = page(teaser(1, title="Жапаров")).encode("utf-8") + b"\xff\xfe"
    (item,) = parse_listing(html, "https://example.com/", WP_SELECT).items  # type: ignore[arg-type]
    assert item.title == "Жапаров"


def test_broken_markup_does_not_crash() -> None:
    fragments = [
        "<article class=post><h2 class=entry-title><a href=/a>A",
        "<article class=post><h2 class=entry-title><a href=/b>B</h2></a></article></article>",
        "<table><article class=post><h2 class=entry-title><a href='/c'>C</a></h2></table>",
        "<article class=post><h2 class=entry-title><a href='/d'>D<a href='/e'>E</a></h2>",
        '<<<>>><article class=post><h2 class=entry-title><a href="/f">F</a></h2><!--',
        "<select><article class=post><h2 class=entry-title><a href=/g>G</a></h2></select>",
    ]
    result = parse('<main id="main">' + "".join(fragments))
    urls = [i.url for i in result.items]
    assert "https://example.com/a" in urls
    assert len(urls) == len(set(urls))
    assert all(i.title for i in result.items)


# --- parse_date --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-07-03T10:00:00+05:00", datetime(2025, 7, 3, 5, 0, tzinfo=UTC)),
        ("2025-07-03T10:00:00Z", datetime(2025, 7, 3, 10, 0, tzinfo=UTC)),
        ("2025-07-03T10:00:00", datetime(2025, 7, 3, 10, 0, tzinfo=UTC)),
        ("2025-07-03 10:00", datetime(2025, 7, 3, 10, 0, tzinfo=UTC)),
        ("2025-07-03", datetime(2025, 7, 3, tzinfo=UTC)),
        ("2025-07-03T23:30:00-04:00", datetime(2025, 7, 4, 3, 30, tzinfo=UTC)),
        ("Thu, 03 Jul 2025 10:00:00 +0000", datetime(2025, 7, 3, 10, 0, tzinfo=UTC)),
        ("Thu, 03 Jul 2025 10:00:00 +0600", datetime(2025, 7, 3, 4, 0, tzinfo=UTC)),
        ("Thu, 03 Jul 2025 10:00:00 GMT", datetime(2025, 7, 3, 10, 0, tzinfo=UTC)),
        ("Thu, 03 Jul 2025 10:00:00 -0000", datetime(2025, 7, 3, 10, 0, tzinfo=UTC)),
        ("July 3, 2025", datetime(2025, 7, 3, tzinfo=UTC)),
        ("3 July 2025", datetime(2025, 7, 3, tzinfo=UTC)),
        ("22 December 2024", datetime(2024, 12, 22, tzinfo=UTC)),
        ("Dec 22, 2024", datetime(2024, 12, 22, tzinfo=UTC)),
        ("Sunday, 22 December 2024", datetime(2024, 12, 22, tzinfo=UTC)),
        ("July 3, 2025 4:30 pm", datetime(2025, 7, 3, 16, 30, tzinfo=UTC)),
        ("July 3, 2025 10:00 EST", datetime(2025, 7, 3, 15, 0, tzinfo=UTC)),
        ("Posted on July 3, 2025 by Staff", datetime(2025, 7, 3, tzinfo=UTC)),
        ("  July\u00a03,\n 2025  ", datetime(2025, 7, 3, tzinfo=UTC)),
        ("3 июля 2025", datetime(2025, 7, 3, tzinfo=UTC)),
        ("1 марта 2025 г.", datetime(2025, 3, 1, tzinfo=UTC)),
        ("1990-01-01", datetime(1990, 1, 1, tzinfo=UTC)),
        ("2100-12-31T12:00:00Z", datetime(2100, 12, 31, 12, 0, tzinfo=UTC)),
    ],
)
def test_parse_date(text: str, expected: datetime) -> None:
    value = parse_date(text)
    assert value == expected
    assert value is not None and value.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello world",
        "random words here",
        "May I help you",  # a month name alone must not become "May <today> <this year>"
        "March on",
        "12",
        "2025",
        "July 2025",  # no day
        "July 3",  # no year
        "1 2 3",
        "Updated 3 times in 2025",
        "yesterday",
        "2 days ago",
        "tomorrow at noon",
        "2025-13-45",
        "2025-02-30",
        "1850-01-01",  # out of range
        "1989-12-31",
        "2101-01-01",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "March 3, 1875",
        "99999999999999999999",
        "Thu, 99 Jul 2025 99:99:99 +0000",
        "July 3, 2025 " + "x" * 1000,  # longer than any date
        "\x00\x01\x02",
        "[caption]",
        "😀 July 😀",
    ],
)
def test_parse_date_rejects(text: str) -> None:
    assert parse_date(text) is None


def test_parse_date_never_raises_on_odd_input() -> None:
    odd: list[Any] = [None, 12, b"2025-07-03", "2025-07-03\udcff", "\ud800", "%" * 10_000]
    for value in odd:
        result = parse_date(value)
        assert result is None or result.tzinfo is UTC


def test_parse_date_is_not_today() -> None:
    today = datetime.now(UTC).date()
    for text in ("May", "Monday", "June the", "at 10:00", "noon", "Tue 10:00"):
        value = parse_date(text)
        assert value is None or value.date() != today, text


# --- parse_results -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Viewing results 1 - 6 of 78", (1, 6, 78)),
        ("Viewing results 73 - 78 of 78", (73, 78, 78)),
        ("Viewing results 1 – 6 of 78", (1, 6, 78)),
        ("Viewing results 1 — 6 of 78", (1, 6, 78)),
        ("Viewing results 1 ‒ 6 of 78", (1, 6, 78)),
        ("Viewing results 1-6 of 78", (1, 6, 78)),
        ("Results 7 to 12 of 78", (7, 12, 78)),
        ("Showing 7–12 of 78 results", (7, 12, 78)),
        ("1,201 - 1,206 of 3,000", (1201, 1206, 3000)),
        ("1.201 - 1.206 of 3.000", (1201, 1206, 3000)),
        ("1 201 - 1 206 of 3 000", (1201, 1206, 3000)),
        ("1\u00a0201 – 1\u00a0206 of 3\u00a0000", (1201, 1206, 3000)),
        ("1\u2009201 – 1\u2009206 of 3\u202f000", (1201, 1206, 3000)),
        ("1 - 10 of 1,234,567 results", (1, 10, 1234567)),
        ("  Viewing\nresults\t1 -\n6 of\u00a078  ", (1, 6, 78)),
        ("VIEWING RESULTS 1 TO 6 OF 78", (1, 6, 78)),
        ("Показано 1–10 из 1 234", (1, 10, 1234)),
        ("1 - 1 of 1", (1, 1, 1)),
        ("Found: 1-6 of 40", (1, 6, 40)),
        ("Showing 7 – 12 of 40", (7, 12, 40)),
        ("results 7 - 12 of 40", (7, 12, 40)),
        # a page counter: last_page is the page count, no count of articles
        ("Page 2 of 7", (2, 2, 7, True)),
        ("Page 2 of 13", (2, 2, 13, True)),
        ("page 3 / 12", (3, 3, 12, True)),
        ("Страница 2 из 7", (2, 2, 7, True)),
        ("Page 1 of 1,200", (1, 1, 1200, True)),
    ],
)
def test_parse_results(text: str, expected: tuple[int, ...]) -> None:
    assert parse_results(text) == ResultsCount(*expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Viewing results",
        "78 results",
        "Page 8 of 7",  # page past the count
        "Page 0 of 7",
        "Page 2",
        "6 - 1 of 78",  # first > last
        "1 - 90 of 78",  # last > total
        "0 - 0 of 0",
        "1 - 6 or 78",
        "1 - 6 of 99999999999999999999999",
        "1 - 6 of" + " " * 10_000 + "78",
    ],
)
def test_parse_results_rejects(text: str) -> None:
    assert parse_results(text) is None


def test_page_counter_gives_the_last_page() -> None:
    count = parse_results("Page 2 of 7")
    assert count is not None and count.last_page == 7


def test_results_count_last_page() -> None:
    count = parse_results("Viewing results 1 - 6 of 78")
    assert count is not None
    assert (count.per_page, count.last_page) == (6, 13)


# --- text cleaning and shortcodes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  a  b  ", "a b"),
        ("a\u00a0\u00a0b", "a b"),
        ("a\u2009b\u202fc\u3000d", "a b c d"),
        ("a\n\t\r b", "a b"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("nul\x00 and \x07bell", "nul and bell"),
        ("c1\x85\x9f control", "c1 control"),
        ("ZWNJ\u200ckept", "ZWNJ\u200ckept"),
        ("", ""),
    ],
)
def test_clean_text(text: str, expected: str) -> None:
    assert clean_text(text) == expected


def test_clean_text_limit() -> None:
    assert clean_text("abcdef", 10) == "abcdef"
    assert clean_text("abcdefghijkl", 10) == "abcdefghi…"
    assert clean_text("abcd   efghijkl", 6) == "abcd…"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '... Islamic Emirate. [caption id="attachment_32607" align="aligncenter" '
            'width="1600"] Image: TCA, Nikola Mikovic[/caption] Most recently, ...',
            "... Islamic Emirate. Most recently, ...",
        ),
        (
            'kokpar and kok boru: [video width="1920" height="1080" '
            'mp4="https://timesca.com/wp-content/uploads/2024/09/nomad-game-1.mp4"][/video]',
            "kokpar and kok boru:",
        ),
        ('Photos [gallery ids="1,2"] here', "Photos here"),
        ('Photos [gallery ids="1,2" /] here', "Photos here"),
        ("stray [/caption] close", "stray close"),
        ("[embed]https://youtu.be/x[/embed] after", "after"),
        ('[playlist ids="4,5"][/playlist]end', "end"),
        ("[audio mp3='a.mp3'][/audio] after", "after"),
        # shortcodes are lower case: an upper-case one is not known, but its attributes and
        # its closing tag still mark it as one, so the tags go and the text stays
        ('[CAPTION id="x"]Upper case[/CAPTION] after', "Upper case after"),
        (
            "[Video] Police and [VIDEO] labels, [Gallery] too",
            "[Video] Police and [VIDEO] labels, [Gallery] too",
        ),
        ("bare [video] and [gallery] tags", "bare and tags"),
        ("[video: watch it] stays", "[video: watch it] stays"),
        ('[caption id="x"]unclosed caption of a cut excerpt', "unclosed caption of a cut excerpt"),
        ('[contact-form-7 id="12" title="Contact"]', ""),
        ("[vc_row][vc_column]Kept text[/vc_column][/vc_row]", "Kept text"),
        (
            "He said [sic] it [1] was [Updated] fine [...] […]",
            "He said [sic] it [1] was [Updated] fine [...] […]",
        ),
        ("[Editor's note: see below]", "[Editor's note: see below]"),
        ("[2025 = a good year]", "[2025 = a good year]"),
        ("a [b] c", "a [b] c"),
        ("no brackets at all", "no brackets at all"),
    ],
)
def test_strip_shortcodes(text: str, expected: str) -> None:
    assert clean_text(strip_shortcodes(text)) == expected


def test_strip_shortcodes_is_fast_on_hostile_text() -> None:
    hostile = "[caption id='x']" * 5000 + "[video " * 5000 + "x" * 10_000
    started = time.perf_counter()
    strip_shortcodes(hostile)
    assert time.perf_counter() - started < 2


# --- speed -------------------------------------------------------------------------------------


def test_parse_is_fast_enough() -> None:
    """300 pages of 10 items (the benchmark's size) well within a second or two."""
    html = page(
        *(
            teaser(n, title=f"Kyrgyzstan &amp; Uzbekistan news {n}", summary="Text " * 40)
            for n in range(10)
        ),
        extra='<div class="search-results-count">Viewing results 1 - 10 of 3,000</div>'
        '<a class="next" href="/page/2/">Next</a>',
    )
    parse(html)  # warm up
    started = time.perf_counter()
    for n in range(300):
        result = parse(html, f"https://example.com/page/{n}/")
        assert len(result.items) == 10
    elapsed = timedelta(seconds=time.perf_counter() - started)
    assert elapsed < timedelta(seconds=5), elapsed


# --- fast paths: the same results as the straightforward code ----------------------------------

_CONTROL_PATTERN = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff\ufffe\uffff]"


def _clean_text_reference(text: str, limit: int | None = None) -> str:
    """clean_text as first written: two regular expressions."""
    text = re.sub(r"\s+", " ", re.sub(_CONTROL_PATTERN, "", text)).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def test_clean_text_rests_on_these_facts() -> None:
    every_char = "".join(map(chr, range(sys.maxunicode + 1)))
    # str.split() and str.strip() split where re's \s matches
    assert re.findall(r"\s", every_char) == [c for c in every_char if c.isspace()]
    # every control character is non-printable; _SPACE_CONTROLS are those that are whitespace
    controls = re.findall(_CONTROL_RE, every_char)
    assert controls == re.findall(_CONTROL_PATTERN, every_char)
    assert not any(c.isprintable() for c in controls)
    assert _SPACE_CONTROLS == "".join(c for c in controls if c.isspace())
    assert all(_has_space_control(f"a{c}b") for c in _SPACE_CONTROLS)
    assert not _has_space_control("a b\t\n\r\u00a0\u2028c")


def _generated_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    spaces = [c for c in map(chr, range(0x3000 + 1)) if c.isspace()]
    controls = re.findall(_CONTROL_PATTERN, "".join(map(chr, range(0x10000))))
    odd = ["\u200c", "\u200d", "\u00ad", "\ue000", "\udcff", "\ud800", "\u0378", "😀", "…"]
    words = ["word", "Жапаров", "café", "a", "[caption]", "x" * 30]
    pools = [spaces, controls, odd, words, [" "], list("abc.,!")]
    texts = []
    for _ in range(count):
        weights = [rng.random() for _ in pools]
        texts.append(
            "".join(rng.choice(rng.choices(pools, weights)[0]) for _ in range(rng.randint(0, 40)))
        )
    return texts


def test_clean_text_gives_what_the_regular_expressions_give() -> None:
    for text in _generated_texts(5_000, seed=3):
        for limit in (None, 1, 2, 5, 20, 1000):
            assert clean_text(text, limit) == _clean_text_reference(text, limit), repr(text)


def test_recap_text_is_clean_text_on_a_cut_of_cleaned_text() -> None:
    for text in _generated_texts(2_000, seed=4):
        cleaned = clean_text(text)
        for cut in (1, 3, 7, 15, 1000):
            for limit in (1, 2, 5, 10, 1000):
                expected = clean_text(cleaned[:cut], limit)
                assert recap_text(cleaned[:cut], limit) == expected, repr(text)


_BLOCK_TAGS = frozenset(
    "address article aside blockquote br caption dd details dialog div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre "
    "section summary table tbody td tfoot th thead tr ul".split()
)
_NO_TEXT_TAGS = frozenset(
    "script style template noscript head title iframe object svg math".split()
)


def _node_text_reference(node: LexborNode, limit: int) -> str:
    """listing._node_text as first written: one iterator per element, next() per child."""
    parts: list[str] = []
    size = 0
    budget = min(400, max(50, limit // 8))
    stack = [node.iter(include_text=True)]
    closers = [False]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            if closers.pop():
                parts.append(" ")
            continue
        budget -= 1
        if budget < 0:
            break
        tag = child.tag
        if tag == "-text":
            text = child.text_content or ""
            parts.append(text)
            size += len(text.strip())
            if size >= limit:
                break
        elif tag and tag[0] != "-" and tag not in _NO_TEXT_TAGS:
            block = tag in _BLOCK_TAGS
            if block:
                parts.append(" ")
            stack.append(child.iter(include_text=True))
            closers.append(block)
    return clean_text("".join(parts))[:limit]


def test_node_text_reads_what_the_first_version_read() -> None:
    assert frozenset(_BLOCK_TAGS) == listing._BLOCK and _NO_TEXT_TAGS == listing._NO_TEXT
    htmls = [p.read_text(encoding="utf-8") for p in sorted(CASES_DIR.glob("*.html"))]
    htmls.append(page(teaser(1, summary="<b>y</b> " * 600), teaser(2, title="<i>x</i>" * 500)))
    htmls.append(page(teaser(1, summary="<div>" * 300 + "deep <p>text</p>" + "</div>" * 300)))
    htmls.append(page(teaser(1, summary="a<script>x</script><!-- c --><br>b<svg>s</svg>c")))
    compared = 0
    for html in htmls:
        tree = html_document(html, "https://example.com/")
        for node in tree.css("*"):
            for limit in (1, 8, 50, 100, 401, 1000, 8000):
                assert listing._node_text(node, limit) == _node_text_reference(node, limit)
                compared += 1
    assert compared > 10_000


def test_title_and_link_from_one_selector_read_as_from_two() -> None:
    shared = WP_SELECT
    apart = WP_SELECT.model_copy(update={"link": FieldSelector(css="h2 > a", attr="href")})
    assert shared.title.css == shared.link.css and apart.title.css != apart.link.css
    html = (CASES_DIR / "wordpress_search.html").read_text(encoding="utf-8")
    url = "https://timesca.com/?s=kyrgyzstan"
    assert parse_listing(html, url, shared) == parse_listing(html, url, apart)
    assert parse_listing(html, url, shared).items


def test_simple_human_dates_are_read_as_dateutil_reads_them() -> None:
    rng = random.Random(5)
    names = [n for names in dates._ParserInfo.MONTHS for n in names]
    texts = []
    for name in names:
        for variant in (name, name.upper(), name.title()):
            day = rng.choice(["1", "03", "29", "30", "31", "0", "32", "3rd", "003"])
            year = rng.choice(["2025", "2024", "1990", "0999", "0000", "2101", "25", "999"])
            texts += [f"{variant} {day}, {year}", f"{variant} {day} {year}"]
            texts += [f"{day} {variant} {year}", f"{variant} {day},{year}", f"{day} {variant}"]
    simple = 0
    for text in texts:
        value = dates._simple_date(text)
        if value is not None:
            simple += 1
            assert value == dates._human_date(text), text
    assert simple > 100
    assert dates._simple_date("July 3, 2025") == datetime(2025, 7, 3)
    assert dates._simple_date("3 июля 2025") == datetime(2025, 7, 3)
