"""A walk that follows next links reads ahead on their page numbers, and reads what following
the links reads (worker.paging, `_Pages` in worker.crawl)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.e2e import run_worker, source_toml, write_config
from worker.crawl import GUESS_AHEAD
from worker.paging import guess_pages
from worker.site import SELECT_TOML, NewsSite
from worker.site.layouts import StaticSite

# (link to page 2, link to page 3, page 6 as guessed, or None: no guess)
GUESSES = [
    (
        "https://x.test/page/2/?s=rail",
        "https://x.test/page/3/?s=rail",
        "https://x.test/page/6/?s=rail",
    ),
    ("/search?q=asia&page=2", "/search?q=asia&page=3", "/search?q=asia&page=6"),
    ("/news?start=20", "/news?start=40", "/news?start=100"),  # an offset, 20 a page
    ("/news?offset=10&limit=10", "/news?offset=20&limit=10", "/news?offset=50&limit=10"),
    ("/2025/archive/2", "/2025/archive/3", "/2025/archive/6"),  # another number stays
    ("/news?after=8f3a", "/news?after=1c9e", None),  # a cursor
    ("/news?page=2&sid=abc", "/news?page=3&sid=abd", None),  # a token changes too
    ("/y/2024/page/2", "/y/2025/page/3", None),  # two numbers change
    ("/page/02/", "/page/03/", None),  # zero-padded
    ("/page/3/", "/page/2/", None),  # going back
    ("/page/2/", "/page/2/", None),  # the same page
    ("/news?before=1733221000", "/news?before=1733220000", None),  # a timestamp, going back
    ("/news?id=1000000002", "/news?id=1000000003", None),  # an id, not a page count
    ("/news/2", "/news/3/extra", None),  # not the same shape
]


@pytest.mark.parametrize(("second", "third", "sixth"), GUESSES)
def test_the_page_numbers_are_read_off_the_links_to_pages_two_and_three(
    second: str, third: str, sixth: str | None
) -> None:
    guess = guess_pages(second, third)
    if sixth is None:
        assert guess is None
        return
    assert guess is not None
    assert (guess(2), guess(3), guess(6)) == (second, third, sixth)


def _config(
    tmp_path: Path,
    db_url: str,
    site: NewsSite,
    select: str = SELECT_TOML,
    hook: str = "json://127.0.0.1:9/",  # the first pass is silent: nothing is sent
) -> Path:
    return write_config(
        tmp_path / "w.toml",
        db_url,
        sources=source_toml(site, "news", select=select),
        channels={"hook": hook},
    )


def _stored(capsys: pytest.CaptureFixture[str], config: Path) -> set[str]:
    return {
        a["url"]
        for a in run_worker(capsys, config, "articles", "--json", "--limit", "10000").json()
    }


def test_a_walk_by_next_links_fetches_the_pages_ahead_while_it_waits_for_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str, make_site
) -> None:
    """Page 5 is asked for while page 4 is still being answered: pages 2 and 3 showed the
    numbering, page 4's link confirmed it, and the pages after are fetched on it."""
    site: NewsSite = make_site(120, per_page=10)
    answered = threading.Event()
    seen: dict[str, bool] = {}

    def page_four(_: str) -> None:
        seen["page 5 asked while page 4 waited"] = answered.wait(10)

    site.on_request(page_four, page=4)
    site.on_request(lambda _: answered.set(), page=5)
    config = _config(tmp_path, db_url, site)
    assert run_worker(capsys, config, "once").code == 0
    assert seen == {"page 5 asked while page 4 waited": True}
    assert _stored(capsys, config) == {site.url(a) for a in site.articles()}
    assert len(site.listing_paths()) == len(set(site.listing_paths())) == 12  # each page once,
    # none past the counter's last page


def test_without_a_counter_a_walk_asks_for_at_most_the_read_ahead_past_the_last_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str, make_site
) -> None:
    site: NewsSite = make_site(95, per_page=10)  # 10 pages, the last one short
    lines = SELECT_TOML.splitlines()
    no_counter = "\n".join(line for line in lines if not line.startswith("results"))
    config = _config(tmp_path, db_url, site, select=no_counter)
    assert run_worker(capsys, config, "once").code == 0
    assert _stored(capsys, config) == {site.url(a) for a in site.articles()}
    asked = len(site.listing_paths())
    assert 10 < asked <= 10 + GUESS_AHEAD  # pages 11... answered 404, and went unused


def test_an_incremental_pass_reads_no_page_ahead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str, make_site, webhook_server
) -> None:
    site: NewsSite = make_site(120, per_page=10)
    config = _config(tmp_path, db_url, site, hook=webhook_server.url("/hook"))
    assert run_worker(capsys, config, "once").code == 0
    site.publish("Kazakhstan opens a rail link to the Caspian")
    site.reset_log()
    assert run_worker(capsys, config, "once").code == 0
    assert len(site.listing_paths()) <= 2


def _static(per_page: int, pages: int, next_of: dict[int, str]) -> StaticSite:
    """A listing of `pages` pages at /list?page=N, page N's next link next_of[N]; also, at
    /list?page=N not already served, pages of decoy articles, which following the links never
    reaches."""

    def page(number: int, slug: str) -> str:
        items = "".join(
            f'<article><h2 class="entry-title"><a href="/{slug}-{number}-{k}/">Story {slug} '
            f"{number}.{k}</a></h2></article>"
            for k in range(per_page)
        )
        nxt = (
            f'<a class="next page-numbers" href="{next_of[number]}">Next</a>'
            if number in next_of
            else ""
        )
        return f'<html><body><main id="main">{items}</main>{nxt}</body></html>'

    served = {"/list": (200, page(1, "real"))}
    for number in range(2, pages + 1):
        served[next_of[number - 1]] = (200, page(number, "real"))
    for number in range(4, pages + GUESS_AHEAD + 2):
        served.setdefault(f"/list?page={number}", (200, page(number, "decoy")))
    return StaticSite(served)


def test_a_next_link_that_contradicts_the_guess_is_followed_and_the_guessed_pages_unused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str, serve
) -> None:
    """Pages 2 to 4 are /list?page=2 to 4, page 4's next link leaves the numbering: the walk
    goes where the links go and stores none of what it fetched on the guess."""
    next_of = {
        1: "/list?page=2",
        2: "/list?page=3",
        3: "/list?page=4",
        4: "/list?from=4&page=5",
        5: "/list?from=5&page=6",
    }
    site = serve(_static(5, 6, next_of))
    select = (
        '[sources.select]\nitem = "#main article"\ntitle = "h2 a"\nlink = "h2 a"\nnext = "a.next"\n'
    )
    config = write_config(
        tmp_path / "w.toml",
        db_url,
        sources=f'[[sources]]\nname = "list"\nurl = "{site.base_url}/list"\n{select}',
        channels={"log": "json://127.0.0.1:9/"},
    )
    assert run_worker(capsys, config, "once").code == 0
    stored = _stored(capsys, config)
    assert len(stored) == 30 and all("/real-" in url for url in stored), sorted(stored)[:5]


def test_pages_already_fetched_ahead_are_parsed_with_the_page_read_in_one_hand_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_url: str, make_site, monkeypatch
) -> None:
    """Page 2's answer waits until pages 3-6 are in: page 2 is then parsed together with them,
    in one thread hand-off, and every article is stored."""
    import worker.crawl

    site: NewsSite = make_site(120, per_page=10)
    fetched: set[int] = set()
    ahead_in = threading.Event()
    real_fetch = worker.crawl._Pages.fetch

    async def fetch(self: worker.crawl._Pages, url: str, number: int, *args: object) -> object:
        page = await real_fetch(self, url, number, *args)  # type: ignore[arg-type]
        fetched.add(number)
        if fetched >= {3, 4, 5, 6}:
            ahead_in.set()  # (the task is done before any other answer is read)
        return page

    batches: list[list[str]] = []
    real_parse = worker.crawl.parse_listings_ahead

    def parse_ahead(pages, *args, **kwargs):  # type: ignore[no-untyped-def]
        batches.append([url for _, url in pages])
        return real_parse(pages, *args, **kwargs)

    real_parse_one = worker.crawl.parse_listing_async

    async def parse_one(html, page_url, *args, **kwargs):  # type: ignore[no-untyped-def]
        batches.append([page_url])  # a page parsed alone (page 1; or none in yet after it)
        return await real_parse_one(html, page_url, *args, **kwargs)

    monkeypatch.setattr(worker.crawl._Pages, "fetch", fetch)
    monkeypatch.setattr(worker.crawl, "parse_listings_ahead", parse_ahead)
    monkeypatch.setattr(worker.crawl, "parse_listing_async", parse_one)
    site.on_request(lambda _: ahead_in.wait(10), page=2)
    config = write_config(
        tmp_path / "w.toml",
        db_url,
        sources=source_toml(site, "news", page_url=True, select=SELECT_TOML),
        channels={"hook": "json://127.0.0.1:9/"},
    )
    assert run_worker(capsys, config, "once").code == 0
    parsed = [url for batch in batches for url in batch]
    pages = [site.search_url] + [site.page_url_template.format(page=n) for n in range(2, 13)]
    assert sorted(parsed) == sorted(pages)  # each page once
    assert batches[0] == pages[:1] and batches[1][:5] == pages[1:6]  # pages 2-6 in one hand-off
    assert len(batches) < len(pages)
    stored = {
        a["url"]: a
        for a in run_worker(capsys, config, "articles", "--json", "--limit", "10000").json()
    }
    assert set(stored) == {site.url(a) for a in site.articles()}
