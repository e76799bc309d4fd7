"""The local news site: counters, pagination, 404 past the end, publish/delete, faults, markup."""

from __future__ import annotations

import time
from datetime import datetime
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser

from worker.site import SIDEBAR, NewsSite


def fetch(url: str) -> tuple[int, LexborHTMLParser]:
    response = httpx.get(url, timeout=5)
    return response.status_code, LexborHTMLParser(response.text)


def page_url(site: NewsSite, page: int) -> str:
    return site.search_url if page == 1 else site.page_url_template.format(page=page)


def counter(tree: LexborHTMLParser) -> str:
    node = tree.css_first("#main .search-results-count")
    assert node is not None
    return node.text(strip=True)


def item_urls(tree: LexborHTMLParser, page: str) -> list[str]:
    """Listing links resolved and stripped of query and fragment (the canonical article URL)."""
    urls = []
    for link in tree.css("#main article h2.entry-title a"):
        parts = urlsplit(urljoin(page, link.attributes["href"] or ""))
        urls.append(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
    return urls


@pytest.mark.parametrize(
    ("path", "expected", "items"),
    [
        ("/?s=kyrgyzstan", "Viewing results 1 - 6 of 20", 6),
        ("/page/2/?s=kyrgyzstan", "Viewing results 7 - 12 of 20", 6),
        ("/page/4/?s=kyrgyzstan", "Viewing results 19 - 20 of 20", 2),
        ("/category/news/", "Viewing results 1 - 6 of 19", 6),  # the opinion piece is not news
        ("/category/news/page/4/", "Viewing results 19 - 19 of 19", 1),
        ("/?s=Railway", "Viewing results 1 - 5 of 5", 5),  # another term filters
    ],
)
def test_listing_counter(news_site: NewsSite, path: str, expected: str, items: int) -> None:
    status, tree = fetch(news_site.base_url + path)
    assert status == 200
    assert counter(tree) == expected
    assert len(tree.css("#main article")) == items


def test_last_page_has_no_next_and_past_it_is_404(make_site) -> None:
    site = make_site(78, per_page=6)
    status, tree = fetch(page_url(site, 12))
    next_link = tree.css_first("a.next.page-numbers")
    assert next_link is not None and next_link.attributes["href"] == page_url(site, 13)

    status, tree = fetch(page_url(site, 13))
    assert status == 200
    assert counter(tree) == "Viewing results 73 - 78 of 78"
    assert len(tree.css("#main article")) == 6
    assert tree.css_first("a.next.page-numbers") is None
    assert tree.css_first("a.prev.page-numbers") is not None

    assert fetch(page_url(site, 14))[0] == 404
    assert fetch(f"{site.base_url}/category/news/page/99/")[0] == 404
    # the 78 articles are listed newest first, each exactly once
    seen = [u for p in range(1, 14) for u in item_urls(fetch(page_url(site, p))[1], site.base_url)]
    assert seen == [site.url(a) for a in site.articles()]
    assert len(set(seen)) == 78


def test_publish_goes_on_top_and_delete_shifts_back(news_site: NewsSite) -> None:
    base = news_site.base_url
    page1 = item_urls(fetch(page_url(news_site, 1))[1], base)
    page2 = item_urls(fetch(page_url(news_site, 2))[1], base)

    fresh = news_site.publish("Kyrgyzstan Opens a New Railway Line", "Trains will run daily.")
    tree1 = fetch(page_url(news_site, 1))[1]
    after1 = item_urls(tree1, base)
    after2 = item_urls(fetch(page_url(news_site, 2))[1], base)
    assert after1 == [fresh.canonical_url(base), *page1[:5]]
    assert after2 == [page1[5], *page2[:5]]  # the old 6th item moved to page 2
    assert counter(tree1) == "Viewing results 1 - 6 of 21"
    assert fetch(news_site.url(fresh))[0] == 200

    news_site.delete(fresh)
    news_site.delete(urlsplit(page1[0]).path.strip("/"))  # by slug
    after1 = item_urls(fetch(page_url(news_site, 1))[1], base)
    assert after1 == [*page1[1:], page2[0]]  # items shift back up from page 2
    assert fetch(news_site.url(fresh))[0] == 404
    with pytest.raises(KeyError):
        news_site.delete(fresh)


def test_publish_with_an_older_date_lands_in_order(news_site: NewsSite) -> None:
    older = news_site.publish("Back-dated piece", published=datetime.fromisoformat("2025-06-01"))
    assert news_site.articles()[-1] == older
    assert older.published.tzinfo is not None


def test_fault_injection_counts_and_paths(news_site: NewsSite) -> None:
    news_site.fail(503, count=2, paths="/page/2/", retry_after=1)
    page2 = page_url(news_site, 2)
    answers = [httpx.get(page2, timeout=5) for _ in range(3)]
    assert [r.status_code for r in answers] == [503, 503, 200]
    assert answers[0].headers["retry-after"] == "1"
    assert fetch(page_url(news_site, 1))[0] == 200  # other paths unaffected

    news_site.fail(500)  # until heal()
    assert [fetch(news_site.search_url)[0] for _ in range(3)] == [500, 500, 500]
    news_site.heal()
    assert fetch(news_site.search_url)[0] == 200
    assert news_site.listing_requests() == 8  # failed answers are requests too
    news_site.reset_log()
    assert news_site.requests == []


def test_sidebar_links_are_outside_main(news_site: NewsSite) -> None:
    tree = fetch(news_site.search_url)[1]
    sidebar = [a.attributes["href"] for a in tree.css("aside#secondary article h2.entry-title a")]
    assert sidebar == [f"/{slug}/" for slug, _ in SIDEBAR]
    assert len(tree.css("article h2.entry-title a")) == 6 + len(SIDEBAR)
    main_links = [a.attributes["href"] for a in tree.css("#main article h2.entry-title a")]
    assert len(main_links) == 6
    assert not set(main_links) & set(sidebar)


def test_markup_is_wordpress_like_and_resolves_to_canonical_urls(make_site) -> None:
    site = make_site(sample=True, per_page=20)
    raw = httpx.get(site.search_url, timeout=5).text
    for entity in ("&amp;", "&#8217;", "&#8220;", "&nbsp;", "&#038;utm_medium=web", "#respond"):
        assert entity in raw
    assert "[caption id=" in raw and "[video " in raw
    assert "искусственные ледники" in raw and "Türkiye" in raw

    tree = LexborHTMLParser(raw)
    hrefs = [a.attributes["href"] or "" for a in tree.css("#main article h2.entry-title a")]
    assert any(h.startswith("http://") for h in hrefs)
    assert any(h.startswith("/") for h in hrefs)
    assert any("utm_source=search&utm_medium=web" in h for h in hrefs)  # &#038; decoded
    articles = site.articles()
    assert item_urls(tree, site.search_url) == [a.canonical_url(site.base_url) for a in articles]
    for node, article in zip(tree.css("#main article"), articles, strict=True):
        title = node.css_first("h2.entry-title a").text()
        assert " ".join(title.split()) == article.title
        stamp = node.css_first("time.entry-date").attributes["datetime"] or ""
        assert datetime.fromisoformat(stamp) == article.published
    shortcoded = next(a for a in articles if "[caption" in a.summary)
    assert "[caption" not in shortcoded.expected_summary
    assert "Image: TCA" not in shortcoded.expected_summary


def test_article_pages_robots_delay_and_restart(make_site) -> None:
    site = make_site(sample=True)
    article = site.articles()[0]
    status, tree = fetch(site.url(article) + "?utm_source=x")
    assert status == 200
    assert " ".join(tree.css_first("h1.entry-title").text().split()) == article.title
    robots = httpx.get(f"{site.base_url}/robots.txt", timeout=5)
    assert robots.status_code == 200 and "User-agent: *" in robots.text
    assert site.listing_requests() == 0  # article pages and robots.txt are not listings

    site.set_delay(0.3)
    started = time.monotonic()
    assert fetch(site.search_url)[0] == 200
    assert time.monotonic() - started >= 0.3
    site.set_delay(0)

    base = site.base_url
    site.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(site.search_url, timeout=2)
    assert site.start() == base  # back on the same port
    assert fetch(site.search_url)[0] == 200


def test_a_deleted_articles_id_and_teaser_are_never_reused(news_site: NewsSite) -> None:
    """After the newest article is deleted, the next one published gets a new id and its own
    teaser, never the deleted one's (a cached teaser keyed by a reused id would serve it)."""
    first = news_site.publish("Kyrgyzstan Opens a New Railway Line", "Trains will run daily.")
    assert fetch(news_site.search_url)[0] == 200  # its teaser is rendered and cached
    news_site.delete(first)
    second = news_site.publish("Glaciers Retreat in the Pamirs", "Nothing about trains.")
    assert second.id > first.id
    raw = httpx.get(news_site.search_url, timeout=5).text
    assert "Glaciers Retreat in the Pamirs" in raw and "New Railway Line" not in raw
    assert f"post-{first.id}" not in raw


def test_insert_puts_an_article_at_a_position_dated_between_its_neighbours(make_site) -> None:
    site = make_site(30, per_page=6)
    before = site.articles()
    late = site.insert("A Backdated Piece", position=8)
    after = site.articles()
    assert after[8] == late and after[:8] + after[9:] == before
    assert before[7].published > late.published > before[8].published
    assert site.insert("Top", position=0) == site.articles()[0]
    assert site.insert("Bottom", position=len(site.articles())) == site.articles()[-1]
    with pytest.raises(ValueError, match="outside"):
        site.insert("Nowhere", position=999)


def test_a_hook_on_a_page_changes_the_site_before_that_page_is_answered(make_site) -> None:
    site = make_site(30, per_page=6)
    top = site.articles()[0]
    site.on_request(lambda _: site.delete(top), page=3)
    tree1 = fetch(page_url(site, 1))[1]
    assert counter(tree1) == "Viewing results 1 - 6 of 30"
    tree3 = fetch(page_url(site, 3))[1]
    assert counter(tree3) == "Viewing results 13 - 18 of 29"  # deleted just before page 3
    assert site.url(top) not in item_urls(fetch(page_url(site, 1))[1], site.base_url)
    fetch(page_url(site, 3))  # the hook ran once
    assert len(site.articles()) == 29


def test_one_given_page_fails_or_comes_short_once(make_site) -> None:
    """`fail(page=N)` and `serve_short(page=N)` single out one listing page, page 1 included,
    which no path substring can (every search page's path contains "/?s=")."""
    site = make_site(30, per_page=6)
    site.fail(404, page=1, count=1)
    assert fetch(page_url(site, 1))[0] == 404
    assert fetch(page_url(site, 2))[0] == 200
    assert fetch(page_url(site, 1))[0] == 200  # once only
    site.serve_short(2, page=3)
    status, tree = fetch(page_url(site, 3))
    assert status == 200 and counter(tree) == "Viewing results 13 - 18 of 30"
    assert len(tree.css("#main article")) == 2
    assert len(fetch(page_url(site, 3))[1].css("#main article")) == 6
    site.serve_short(0, page=2)
    assert fetch(page_url(site, 2))[1].css("#main article") == []
