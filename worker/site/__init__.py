"""A local WordPress-like news site served over HTTP (tests, benchmarks and `worker demo`).

It models The Times of Central Asia (timesca.com): a search listing `/?s=kyrgyzstan`, category
archives `/category/news/`, pages `/page/2/?s=kyrgyzstan` and `/category/news/page/2/`, six teasers
a page by default, the counter "Viewing results 7 - 12 of 78", a `Next` link on every page but the
last, 404 past the last page, article pages `/slug/`, `/robots.txt`, and a "Most Read" sidebar of
`article` elements outside `#main` that a crawler must not take for items.

The markup is realistic and deterministic per article (derived from its id, never random per
request): links absolute or relative, some with tracking parameters (`utm_*`) or a `#respond`
fragment; titles and summaries written with HTML entities as WordPress does (`&amp;`, `&#8217;`,
`&#8220;`, `&nbsp;`); summaries keep their shortcode leftovers (`[caption ...]...[/caption]`).

Listings:

- `/?s=TERM` (and `/page/N/?s=TERM`): when TERM is the site's own `search_term`
  (case-insensitive), *every* article is listed, so whatever a test publishes shows up in the
  search; any other TERM lists the articles whose title or summary contains it (case-insensitive).
- `/category/SLUG/`: the articles in that category (`publish()` files under "news").
- `/` and `/page/N/`: every article (the blog home page).

All list newest first (published, then id); every listing page carries the counter.

Tests publish, insert (`insert(position=N)`: dated between its neighbours, as a backdated post)
and delete articles while the server runs, also while a crawler is paging (`on_request(action,
page=N)` runs `action` when that page is asked for, before it is answered); a deleted article's id
and teaser are never given again. `fail()` injects error answers (`page=N`: that listing page
only), `serve_short(keep, page=N)` serves a page with fewer teasers than its counter says,
`set_delay()` slows every answer down, and `requests` records every request path in order.
"""

from worker.site.articles import SITE_TZ, TRACKING, SiteArticle, slugify, wp_text
from worker.site.news import NewsSite
from worker.site.render import SELECT_TOML, SIDEBAR, SITE_NAME
from worker.site.samples import sample_articles, synthetic_articles

__all__ = [
    "SELECT_TOML",
    "SIDEBAR",
    "SITE_NAME",
    "SITE_TZ",
    "TRACKING",
    "NewsSite",
    "SiteArticle",
    "sample_articles",
    "slugify",
    "synthetic_articles",
    "wp_text",
]
