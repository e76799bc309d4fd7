"""HTML of the local news site: listing pages (counter, teasers, pagination), article pages, the
404 page, and the head and foot every page shares (navigation, ticker, "Most Read" sidebar).

Listing URLs: `/?s=TERM` and `/page/N/?s=TERM` (search), `/category/SLUG/` and
`/category/SLUG/page/N/` (category archive), `/` and `/page/N/` (the blog home page).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, quote_plus, urlsplit

from worker.site.articles import SITE_TZ, SiteArticle, wp_text
from worker.site.server import Response

__all__ = [
    "SIDEBAR",
    "SITE_NAME",
    "Listing",
    "article_page",
    "listing_page",
    "not_found",
    "route",
]


# The `[sources.select]` table that reads this markup (the shipped config uses the same selectors):
# the demo, the tests and the benchmarks build their configs from it.
SELECT_TOML = """\
[sources.select]
item = "#main article"
title = "h2.entry-title a"
link = "h2.entry-title a"
summary = ".entry-summary"
published = { css = "time.entry-date", attr = "datetime" }
results = ".search-results-count"
next = "a.next.page-numbers"
"""

SITE_NAME = "The Times Of Central Asia"

# "Most Read" sidebar: article elements outside #main that must not be taken for listing items.
SIDEBAR: tuple[tuple[str, str], ...] = (
    ("most-read-the-great-game-revisited", "Opinion: The Great Game Revisited"),
    ("most-read-central-asia-water-wars", "Analysis: Are Water Wars Coming to Central Asia?"),
    ("most-read-caspian-pipeline-explainer", "Explainer: Who Ships Oil Across the Caspian?"),
    ("most-read-samarkand-travel-guide", "Samarkand in Spring: A Traveller\u2019s Guide"),
)


@dataclass(frozen=True, slots=True)
class Listing:
    kind: str  # "search" | "category" | "home"
    key: str  # search term / category slug / ""
    page: int


_PAGE_RE = re.compile(r"^(?P<prefix>/|/category/(?P<cat>[^/]+)/)(?:page/(?P<page>\d+)/?)?$")


def route(target: str) -> tuple[str, Listing | None]:
    """Request target -> (path, listing or None when it is not a listing page)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    if not path.endswith("/") and not path.endswith(".txt"):
        path += "/"
    query = parse_qs(parts.query, keep_blank_values=True)
    match = _PAGE_RE.match(path)
    if match is None:
        return path, None
    page = int(match["page"] or 1)
    if match["cat"] is not None:
        return path, Listing("category", match["cat"].lower(), page)
    if "s" in query:
        return path, Listing("search", query["s"][0].strip(), page)
    return path, Listing("home", "", page)


def listing_page(
    listing: Listing,
    shown: Sequence[SiteArticle],
    per_page: int,
    base: str,
    teaser: Callable[[SiteArticle, str], str],
    *,
    keep: int | None = None,
) -> Response:
    """Page `listing.page` of a listing showing `shown` (newest first), `per_page` teasers a
    page (`teaser(article, base)` gives one); 404 past the last page. `keep`: only the first
    `keep` teasers are written (a page cut short), the counter unchanged."""
    total = len(shown)
    per = per_page
    last_page = max(1, -(-total // per))
    if listing.page < 1 or listing.page > last_page:
        return not_found(base)
    first = (listing.page - 1) * per
    chunk = shown[first : first + per]
    if listing.kind == "search":
        term = html.escape(listing.key)
        title = f"You searched for {term} - {SITE_NAME}"
        body_class = "search search-results" if total else "search search-no-results"
    elif listing.kind == "category":
        label = html.escape(listing.key.replace("-", " ").title())
        title = f"{label} Archives - {SITE_NAME}"
        body_class = f"archive category category-{html.escape(listing.key)}"
    else:
        title = f"{SITE_NAME} - Independent news from Central Asia"
        body_class = "home blog"
    if listing.page > 1:
        title = title.replace(f" - {SITE_NAME}", f" - Page {listing.page} - {SITE_NAME}", 1)
    parts = [head(title, body_class, base), '<main id="main" class="site-main">\n']
    if total:
        parts.append(
            f' <div class="search-results-count">Viewing results {first + 1} - '
            f"{first + len(chunk)} of {total}</div>\n"
        )
        parts.extend(teaser(a, base) for a in (chunk if keep is None else chunk[:keep]))
        parts.append(pagination(listing, last_page, base))
    else:
        parts.append(
            ' <section class="no-results not-found"><header class="page-header">'
            '<h1 class="page-title">Nothing Found</h1></header><div class="page-content">'
            "<p>Sorry, but nothing matched your search terms.</p></div></section>\n"
        )
    parts.append("</main>\n")
    parts.append(foot(base))
    return Response(200, "".join(parts).encode())


def page_link(listing: Listing, page: int, base: str) -> str:
    if listing.kind == "search":
        query = f"?s={quote_plus(listing.key)}"
        return f"{base}/{query}" if page == 1 else f"{base}/page/{page}/{query}"
    prefix = f"{base}/category/{listing.key}/" if listing.kind == "category" else f"{base}/"
    return prefix if page == 1 else f"{prefix}page/{page}/"


def pagination(listing: Listing, last: int, base: str) -> str:
    if last == 1:
        return ""
    page = listing.page
    links = []
    if page > 1:
        href = page_link(listing, page - 1, base)
        links.append(f'<a class="prev page-numbers" href="{href}">Previous</a>')
    shown = sorted({n for n in (1, page - 1, page, page + 1, last) if 1 <= n <= last})
    previous = 0
    for n in shown:
        if n - previous > 1:
            links.append('<span class="page-numbers dots">&hellip;</span>')
        if n == page:
            links.append(f'<span aria-current="page" class="page-numbers current">{n}</span>')
        else:
            href = page_link(listing, n, base)
            links.append(f'<a class="page-numbers" href="{href}">{n}</a>')
        previous = n
    if page < last:
        href = page_link(listing, page + 1, base)
        links.append(f'<a class="next page-numbers" href="{href}">Next</a>')
    return (
        ' <nav class="navigation pagination" aria-label="Posts">'
        '<h2 class="screen-reader-text">Posts navigation</h2><div class="nav-links">\n  '
        + "\n  ".join(links)
        + "</div></nav>\n"
    )


def head(title: str, body_class: str, base: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
        f"<title>{title}</title>"
        f'<link rel="alternate" type="application/rss+xml" href="{base}/feed/"></head>\n'
        f'<body class="{body_class}">\n'
        '<header id="masthead" class="site-header"><nav class="main-navigation">'
        f'<a href="{base}/">Home</a> <a href="/category/news/">News</a> '
        '<a href="/category/opinion/">Opinion</a> <a href="/category/kyrgyzstan/">Kyrgyzstan'
        '</a> <a href="/category/kazakhstan/">Kazakhstan</a> <a href="/about-us/">About</a>'
        "</nav>\n"
        ' <ul class="ticker"><li>KGS/USD = 0.01144 0%</li><li>KZT/USD = 0.00192 0.52%</li>'
        "<li>TJS/USD = 0.10013 0%</li><li>UZS/USD = 0.00008 0%</li></ul>\n"
        ' <form role="search" method="get" action="/"><input type="search" name="s">'
        "</form></header>\n"
        '<div id="content" class="site-content">\n'
    )


def foot(base: str) -> str:
    minis = "".join(
        f'<article class="post mini"><h2 class="entry-title"><a href="/{slug}/">'
        f"{wp_text(title)}</a></h2></article>\n "
        for slug, title in SIDEBAR
    )
    return (
        '<aside id="secondary" class="widget-area"><section class="widget">'
        f'<h2 class="widget-title">Most Read</h2>\n {minis}</section></aside></div>\n'
        '<footer id="colophon" class="site-footer"><a href="/privacy-policy/">Privacy</a> '
        f'&copy; 2025 <a href="{base}/">{SITE_NAME}</a></footer></body></html>\n'
    )


def not_found(base: str) -> Response:
    page = (
        head(f"Page not found - {SITE_NAME}", "error404", base)
        + '<main id="main" class="site-main"><section class="error-404 not-found">'
        '<h1 class="page-title">Oops! That page can&rsquo;t be found.</h1></section></main>\n'
        + foot(base)
    )
    return Response(404, page.encode())


# What surrounds an article's text on its page, as themes and plugins add it: a crawler's main
# text must not take it in (its words are chosen to be ones tests look for).
RELATED = (
    '<section class="jp-relatedposts"><h3>Related</h3><ul>'
    '<li><a href="/related-one/">Hydropower and the Kambarata dam: the related story</a></li>'
    '<li><a href="/related-two/">Why the Middle Corridor railway matters</a></li></ul></section>'
)
COMMENTS = (
    '<div id="comments" class="comments-area"><h2 class="comments-title">2 comments</h2>'
    '<ol class="comment-list"><li class="comment"><div class="comment-content">'
    "<p>A reader writes: what about the Taliban and the Trans-Afghan line?</p></div></li>"
    "</ol></div>"
)


def article_page(article: SiteArticle, base: str) -> str:
    """An article's page: the date in `<meta property="article:published_time">` (not on
    every article), JSON-LD `datePublished` (not on every article) and `<time>`; navigation,
    share links, related posts, comments and footer around the text (`entry-content`)."""
    title = article._title_html()
    local = article.published.astimezone(SITE_TZ).isoformat()
    extra = f'<link rel="canonical" href="{article.page_canonical(base)}">'
    if article.id % 3 == 0:
        extra += f'<meta property="article:published_time" content="{local}">'
    if article.id % 3 in (0, 1):
        graph = {
            "@context": "https://schema.org",
            "@graph": [
                {"@type": "WebPage", "@id": article.canonical_url(base)},
                {
                    "@type": "NewsArticle",
                    "headline": article.title,
                    "datePublished": local,
                    "author": {"@type": "Person", "name": "Staff"},
                },
            ],
        }
        extra += f'<script type="application/ld+json">{json.dumps(graph)}</script>'
    return (
        head(f"{title} - {SITE_NAME}", f"single single-post postid-{article.id}", base).replace(
            "</head>", f"{extra}</head>"
        )
        + f'<main id="main" class="site-main"><article id="post-{article.id}" '
        f'class="post-{article.id} post type-post status-publish hentry">\n'
        f'<header class="entry-header"><h1 class="entry-title">{title}</h1>'
        f'<div class="entry-meta">{article._time_html()} by <a href="/author/staff/">Staff</a>'
        "</div></header>\n"
        f'<div class="entry-content">{article.content_html()}'
        '<div class="sharedaddy"><a href="#share-x">Share on X</a> '
        '<a href="#share-fb">Share on Facebook</a></div></div>\n'
        f"{RELATED}</article>{COMMENTS}"
        '<nav class="post-navigation"><a href="/previous-post/" rel="prev">Previous: Railway '
        "strike ends</a></nav>"
        "</main>\n" + foot(base)
    )
