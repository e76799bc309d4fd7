"""`worker probe URL` against local sites: every listing layout of tests/cases/probe, the local
news site's own listing, and pages that are no listing (an article, a login page, an error).

A layout case (tests/cases/probe/NAME.toml) gives the templates of its pages (see
worker/site/layouts.py), which of the sample articles it lists (`offset`, `count`, newest first),
how many others it shows in a carousel or a picks box (`featured`), what the block must hold
(`[expect]`: pagination, counter, summary, dates as attribute or text) and the items page 1 must
give (`[[expect.items]]`). For every layout, the printed block is appended as it is to a config,
and `worker once` (a real subprocess) must store every article of the layout, over all its
pages, with its title, link and date, and nothing else (no sidebar, carousel, menu or "Related"
link).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import run_worker
from worker.config import HttpConfig, SelectConfig
from worker.parse import parse_listing
from worker.probe import probe, source_name, to_data, to_toml
from worker.site import SELECT_TOML, SITE_TZ, NewsSite, SiteArticle, sample_articles
from worker.site.layouts import Layout, LayoutSite, StaticSite

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = Path(__file__).parent / "cases" / "probe"
CASES = sorted(CASES_DIR.glob("*.toml"))
HTTP = HttpConfig(min_delay=0, timeout=10, retries=0)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = str(ROOT)
    env.pop("WORKER_CONFIG", None)
    return env


def worker(tmp_path: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(),
        timeout=60,
    )


def cli(
    capsys: pytest.CaptureFixture[str], config: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`worker --config CONFIG ARGS` in this process (faster than a subprocess), with the same
    result attributes as `worker()`."""
    run = run_worker(capsys, config, *args)
    return subprocess.CompletedProcess(list(args), run.code, run.out, run.err)


def base_config(tmp_path: Path) -> Path:
    path = tmp_path / "worker.toml"
    path.write_text(
        f'database = "sqlite:///{tmp_path / "worker.db"}"\n\n'
        "[http]\nmin_delay = 0\ntimeout = 10\nretries = 1\n",
        encoding="utf-8",
    )
    return path


def newest_first() -> list[SiteArticle]:
    return sorted(sample_articles(), key=lambda a: (a.published, a.id), reverse=True)


def layout_site(case: dict[str, Any]) -> LayoutSite:
    articles = newest_first()[case["offset"] :]
    count, featured = case["count"], case["featured"]
    return LayoutSite(
        Layout.from_table(case),
        articles[:count],
        featured=articles[count : count + featured],
    )


def test_there_are_six_layouts_or_more() -> None:
    assert len(CASES) >= 6
    for path in CASES:
        case = tomllib.loads(path.read_text("utf-8"))
        assert case["description"].strip() and case["count"] > 2 * case["per_page"], path.name
        assert len(case["expect"]["items"]) == case["per_page"], path.name


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_the_printed_block_stores_every_article_of_the_layout_and_nothing_else(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], serve: Any
) -> None:
    case = tomllib.loads(path.read_text("utf-8"))
    site = serve(layout_site(case))
    config = base_config(tmp_path)

    probed = cli(capsys, config, "probe", site.first_url)
    assert probed.returncode == 0, probed.stderr
    block = tomllib.loads(probed.stdout)["sources"][0]
    select, expect = block["select"], case["expect"]
    assert ("page_url" in block) == (expect["pagination"] == "page_url"), probed.stdout
    assert ("next" in select) == (expect["pagination"] == "next"), probed.stdout
    assert ("results" in select) == expect["results"], probed.stdout
    assert ("summary" in select) == expect["summary"], probed.stdout
    published = select["published"]
    assert isinstance(published, dict) == (expect["dates"] == "datetime"), probed.stdout

    page1 = parse_listing(site.listing(1), site.first_url, SelectConfig.model_validate(select))
    assert [
        (i.url, i.title, i.published.astimezone(SITE_TZ).date() if i.published else None)
        for i in page1.items
    ] == [(site.base_url + e["path"], e["title"], e["date"]) for e in expect["items"]]

    with config.open("a", encoding="utf-8") as file:
        file.write(probed.stdout)  # as it is: `worker probe URL >> config/worker.toml`
    once = worker(tmp_path, config, "once")
    assert once.returncode == 0, once.stdout + once.stderr
    assert f"{site.pages} page(s), {len(site.articles)} item(s)" in once.stdout, once.stdout

    stored = run_worker(capsys, config, "articles", "--json", "--limit", "1000").json()
    expected = {site.url(a): a for a in site.articles}
    assert {row["url"] for row in stored} == set(expected)  # every article, nothing else
    for row in stored:
        article = expected[row["url"]]
        assert row["title"] == article.title
        when = datetime.fromisoformat(row["published"])
        if expect["dates"] == "datetime":
            assert when == article.published
        else:  # a date without a time, read as midnight UTC
            assert when.date() == article.published.astimezone(SITE_TZ).date()
        if expect["summary"]:
            assert row["summary"] == article.expected_summary


def _shipped() -> SelectConfig:
    return SelectConfig.model_validate(tomllib.loads(SELECT_TOML)["sources"]["select"])


@pytest.mark.parametrize("listing", ["search", "category"])
def test_the_local_sites_listing_gets_selectors_equivalent_to_the_shipped_ones(
    listing: str, make_site: Any
) -> None:
    site: NewsSite = make_site(sample=True)
    url = site.search_url if listing == "search" else site.category_url("news")
    result = asyncio.run(probe(url, HTTP))
    assert result.found and result.proposal is not None and not result.doubts, result.doubts
    proposed = SelectConfig.model_validate(result.proposal.select())
    page_url = url
    pages = 0
    while page_url:
        html = asyncio.run(_get(page_url))
        ours, shipped = (parse_listing(html, page_url, s) for s in (proposed, _shipped()))
        assert ours.items == shipped.items and ours.items  # same articles, fields and all
        assert ours.results == shipped.results and ours.next_url == shipped.next_url
        page_url, pages = shipped.next_url or "", pages + 1
    assert pages >= 3


async def _get(url: str) -> str:
    from worker.fetch import Fetcher

    async with Fetcher(HTTP) as fetcher:
        return (await fetcher.get_html(url)).text


def test_the_block_names_the_source_after_the_url() -> None:
    assert (
        source_name("https://www.example.org/news/world/page/1/") == "example.org-news-world-page"
    )
    assert source_name("https://timesca.com/?s=kyrgyzstan") == "timesca.com-kyrgyzstan"


def test_name_option_names_the_source(
    tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    site = serve(NewsSite.sample())
    probed = cli(capsys, base_config(tmp_path), "probe", site.search_url, "--name", "tca")
    assert probed.returncode == 0, probed.stderr
    assert tomllib.loads(probed.stdout)["sources"][0]["name"] == "tca"


def test_json_prints_the_same_proposal_as_data(
    tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    site = serve(NewsSite.sample())
    config = base_config(tmp_path)
    as_toml = cli(capsys, config, "probe", site.search_url)
    as_json = worker(tmp_path, config, "probe", site.search_url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["found"] is True
    assert data["source"] == tomllib.loads(as_toml.stdout)["sources"][0]
    assert len(data["items"]) == 6 and data["results"] == {"first": 1, "last": 6, "total": 20}
    assert data["page2"]["items"] == 6 and data["doubts"] == []
    assert "INFO" not in as_json.stdout and "INFO" in as_json.stderr  # logs on stderr


# --- pages that are no listing -----------------------------------------------------------------

ARTICLE_PAGE = """<!DOCTYPE html><html><head><title>Kyrgyzstan and Russia Reaffirm Ties</title>
<meta property="og:type" content="article"></head><body><main><article>
<h1>Kyrgyzstan and Russia Reaffirm Strategic Partnership in Moscow Talks</h1>
<p>Kyrgyzstan and Russia have reaffirmed their commitment to deepening bilateral cooperation.</p>
<p>President Putin welcomed President Japarov to Moscow with praise for economic ties.</p>
</article><nav><a href="/">Home</a> <a href="/news/">News</a></nav></main></body></html>"""
LOGIN_PAGE = """<!DOCTYPE html><html><head><title>Sign in - Subscriber area</title></head><body>
<form method="post" action="/login"><input name="user"><input type="password" name="pass">
<button>Sign in</button></form><a href="/">Home</a> <a href="/register">Register</a></body></html>"""
ERROR_PAGE = """<!DOCTYPE html><html><head><title>Service temporarily unavailable</title></head>
<body><h1>Error: the service is temporarily unavailable</h1><a href="/">Home</a></body></html>"""
SCRIPTED_PAGE = """<!DOCTYPE html><html><head><title>News</title><script src="/a.js"></script>
<script src="/b.js"></script></head><body><div id="root"></div><script>render()</script>
</body></html>"""
EMPTY_PAGE = """<!DOCTYPE html><html><head><title>Tags</title></head><body><nav>
<a href="/tag/a/">Kyrgyzstan</a> <a href="/tag/b/">Energy</a> <a href="/tag/c/">Water</a>
<a href="/tag/d/">China</a></nav></body></html>"""


@pytest.mark.parametrize(
    ("page", "status", "said"),
    [
        (ARTICLE_PAGE, 200, "an article page ('Kyrgyzstan and Russia Reaffirm Strategic"),
        (LOGIN_PAGE, 200, "a login page ('Sign in - Subscriber area'): it asks for a password"),
        (ERROR_PAGE, 200, "an error page ('Error: the service is temporarily unavailable')"),
        (EMPTY_PAGE, 200, "a page ('Tags') with 4 link(s) to the same site but no group"),
        (SCRIPTED_PAGE, 200, "a page ('News') built by JavaScript (0 characters of text, 3"),
        ("<html><body>gone</body></html>", 404, "the server answered HTTP 404: an error"),
        ("<html><body>down</body></html>", 500, "could not fetch the page: HTTP 500"),
    ],
    ids=["article", "login", "error-page", "tag-cloud", "javascript", "404", "500"],
)
def test_no_listing_exits_1_and_says_what_it_saw(
    page: str,
    status: int,
    said: str,
    tmp_path: Path,
    serve: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    site = serve(StaticSite({"/p": (status, page)}))
    probed = cli(capsys, base_config(tmp_path), "probe", f"{site.base_url}/p")
    assert probed.returncode == 1
    assert probed.stdout == ""
    assert said in probed.stderr


@pytest.mark.parametrize("url", ["ftp://example.org/", "example.org/news", "http://", "::"])
def test_a_bad_url_exits_2(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    probed = cli(capsys, base_config(tmp_path), "probe", url)
    assert probed.returncode == 2
    assert "worker probe: not" in probed.stderr and probed.stdout == ""


HOSTILE = """<!DOCTYPE html><html><body><main><ul class="list">{}</ul></main></body></html>"""
HOSTILE_ITEM = (
    '<li><a href="/story-{n}-about-things/">Quote " and backslash \\ and\x07bell \x7f'
    ' in headline number {n}</a><time datetime="2025-07-0{n}T10:00:00Z">July {n}, 2025</time></li>'
)


def test_scraped_text_cannot_break_the_toml_block(serve: Any) -> None:
    site = serve(
        StaticSite(
            {
                "/list": (
                    200,
                    HOSTILE.format("".join(HOSTILE_ITEM.format(n=n) for n in (1, 2, 3, 4))),
                )
            }
        )
    )
    result = asyncio.run(probe(f"{site.base_url}/list", HTTP))
    assert result.found
    text = to_toml(result)
    data = tomllib.loads(text)  # the block parses: the titles went into comments, cleaned
    assert data["sources"][0]["select"]["item"]
    assert 'Quote " and backslash \\ and' in text and "\x07" not in text and "\x7f" not in text
    assert to_data(result)["source"] == data["sources"][0]


def test_the_block_appends_to_the_shipped_config_as_it_is(
    tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    site = serve(NewsSite.sample())
    config = tmp_path / "shipped.toml"
    shipped = (ROOT / "config" / "worker.toml").read_text("utf-8")
    config.write_text(shipped.rstrip("\n"), encoding="utf-8")  # even without a final newline
    probed = cli(capsys, base_config(tmp_path), "probe", site.search_url, "--name", "new")
    assert probed.returncode == 0, probed.stderr
    with config.open("a", encoding="utf-8") as file:
        file.write(probed.stdout)
    checked = cli(capsys, config, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    sources = tomllib.loads(config.read_text("utf-8"))["sources"]
    assert [s["name"] for s in sources][-1] == "new" and len(sources) == 4  # 3 shipped
    assert sources[-1]["select"]["item"] and sources[0]["select"]["item"] == "#main article"


SAME_ON_EVERY_PAGE = {
    "first": "/list",
    "page": "/list?page={page}",
    "article": "/a/{slug}",
    "per_page": 4,
    "templates": {
        "page": (
            "<!DOCTYPE html><html><body><main><div class='top'><ul class='list'>{featured}</ul>"
            "</div><div class='all'><ul class='list'>{items}</ul></div>{pager}</main></body></html>"
        ),
        "item": "<li><a href='{href}'>{title}</a> <time datetime='{iso}'>{human}</time></li>",
        "next": "<a rel='next' href='{href}'>Next</a>",
    },
}


def test_a_list_that_stays_the_same_on_page_2_is_not_taken_for_the_results(serve: Any) -> None:
    """Seven unlabelled teasers repeated on every page outscore the four results on page 1
    alone; page 2 shows they are not the results, and the next candidate is verified."""
    articles = newest_first()
    site = serve(
        LayoutSite(Layout.from_table(SAME_ON_EVERY_PAGE), articles[:12], featured=articles[12:19])
    )
    result = asyncio.run(probe(site.first_url, HTTP))
    assert result.found and result.proposal is not None and result.doubts == []
    assert [i.url for i in result.page1.items] == [site.url(a) for a in site.articles[:4]]
    assert result.proposal.item == ".all li"
    assert result.candidates == 2


def test_json_says_when_nothing_was_found(tmp_path: Path, serve: Any) -> None:
    site = serve(StaticSite({"/login": (200, LOGIN_PAGE)}))
    probed = worker(tmp_path, base_config(tmp_path), "probe", f"{site.base_url}/login", "--json")
    assert probed.returncode == 1
    data = json.loads(probed.stdout)
    assert data["found"] is False and data["reason"].startswith("it looks like a login page")


@pytest.mark.parametrize("name", ["has space", "_underscore-first", "x" * 101])
def test_a_bad_name_exits_2_before_fetching(
    name: str, tmp_path: Path, serve: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    site = serve(StaticSite({}))
    probed = cli(capsys, base_config(tmp_path), "probe", site.base_url, "--name", name)
    assert probed.returncode == 2 and "--name" in probed.stderr
    assert site.requests == []


BROKEN_NEXT = {
    "first": "/list/",
    "page": "/list/page/{page}/",
    "article": "/a/{slug}/",
    "per_page": 4,
    "templates": {
        "page": "<!DOCTYPE html><html><body><main>{items}<nav>{pager}</nav></main></body></html>",
        "item": (
            "<article><h2><a href='{href}'>{title}</a></h2><time datetime='{iso}'>{human}</time>"
            "<p>{teaser}</p></article>"
        ),
        "number": "<a class='num' href='{href}'>{n}</a>",
        "current": "<span>{n}</span>",
        "next": "<a class='next' href='{href}?via=next'>Next</a>",  # answers 404
    },
}


def test_page_numbers_take_over_when_the_next_link_leads_nowhere(serve: Any) -> None:
    site = serve(LayoutSite(Layout.from_table(BROKEN_NEXT), newest_first()[:12]))
    result = asyncio.run(probe(site.first_url, HTTP))
    assert result.found and result.proposal is not None and result.doubts == []
    assert result.proposal.next is None
    assert result.proposal.page_url == site.base_url + "/list/page/{page}/"
    assert result.page2 is not None and len(result.page2.items) == 4


# --- selectors ---------------------------------------------------------------------------------

TEASERS = "".join(
    f"<article class='post'><h2><a href='/s-{n}/'>Headline number {n} of the day</a></h2>"
    f"<time class='published' datetime='2025-07-0{n}'>July {n}</time>"
    f"<time class='updated' datetime='2025-08-0{n}'>August {n}</time></article>"
    for n in (1, 2, 3)
)


def test_the_item_selector_is_the_shortest_naming_exactly_the_teasers() -> None:
    from selectolax.lexbor import LexborHTMLParser

    from worker.probe.css import group_selector

    tree = LexborHTMLParser(f"<main>{TEASERS}</main><aside>{TEASERS}</aside>")
    assert group_selector(tree, tree.css("main article")) == "main .post"
    assert group_selector(tree, tree.css("aside article")) == "aside .post"
    assert group_selector(tree, tree.css("main article")[:2]) is None  # no selector names 2 of 3


def test_a_field_selector_matches_only_elements_reading_the_chosen_value() -> None:
    from selectolax.lexbor import LexborHTMLParser

    from worker.probe.css import field_selector

    tree = LexborHTMLParser(f"<main>{TEASERS}</main>")
    items = tree.css("article")
    chosen = [item.css_first("time.published") for item in items]
    read = lambda node: node.attributes.get("datetime")  # noqa: E731
    assert field_selector(items, chosen, read) == ".published"  # not "time": 2 dates each


RELATIVE = "<!DOCTYPE html><html><body><main><h1>Latest</h1>{}</main></body></html>".format(
    "".join(
        f"<div class='entry'><a href='/news/{n}-story/'>Headline number {n} of the latest"
        f" news</a><span class='when'>{ago}</span></div>"
        for n, ago in enumerate(["3 hours ago", "5 hours ago", "yesterday", "2 days ago"])
    )
)


def test_dates_written_only_as_hours_ago_are_read_against_the_fetch_time(serve: Any) -> None:
    site = serve(StaticSite({"/latest": (200, RELATIVE)}))
    before = datetime.now(UTC)
    result = asyncio.run(probe(f"{site.base_url}/latest", HTTP))
    assert result.found and result.proposal is not None and result.page1 is not None
    assert result.proposal.published == ("span", None)  # the text, no attribute
    dates = [item.published for item in result.page1.items]
    assert all(d is not None and before - timedelta(days=3) < d < before for d in dates), dates
    assert dates == sorted(dates, reverse=True)  # "3 hours ago" is the newest


NEXT_FORMS = [
    "<a rel='next' href='/list?p=2'>Older</a>",
    "<a href='/list?p=2'>Next</a>",
    "<a href='/list?p=2'>&raquo;</a>",
    "<a href='/list?p=2'>&rsaquo;</a>",
    "<a aria-label='Next page' href='/list?p=2'><svg></svg></a>",
    "<a class='more' href='/list?p=2'>More</a>",
]


@pytest.mark.parametrize(
    "anchor", NEXT_FORMS, ids=["rel", "next", "raquo", "rsaquo", "aria", "more"]
)
def test_each_form_of_next_link_is_proposed_as_next(anchor: str) -> None:
    from worker.parse.document import html_document
    from worker.probe.blocks import find_candidates
    from worker.probe.fields import propose

    page = f"<main>{TEASERS}<div class='pager'><b>1</b> {anchor}</div></main>"
    tree = html_document(page, "https://example.org/list")
    proposal = propose(
        tree, "https://example.org/list", find_candidates(tree, "https://example.org/list")[0]
    )
    assert proposal is not None and proposal.next is not None and proposal.page_url is None
    assert proposal.next_url == "https://example.org/list?p=2"
