"""The local site's RSS feed (`/feed/`) and WordPress REST API (`/wp-json/wp/v2/posts`), written
the way WordPress 6 writes them.

- `/feed/`: RSS 2.0, the 10 newest posts (WordPress's `posts_per_rss`), each with `description`
  (the excerpt) and `content:encoded` (the whole text, in CDATA), `pubDate` in RFC 2822 UTC.
- `/wp-json/wp/v2/posts`: `search`, `categories`, `tags` (comma-separated ids), `per_page`
  (1..100, default 10), `page`, `order`/`orderby` (newest first only); the answer carries
  `X-WP-Total`, `X-WP-TotalPages` and a `Link` header; `title`/`excerpt`/`content` are
  `{"rendered": HTML}`, `date` is the site's local time and `date_gmt` UTC, both without a zone.
  A page past the last is HTTP 400 `rest_post_invalid_page_number`; a bad `per_page` is 400
  `rest_invalid_param`; an unknown route under /wp-json/ is 404 `rest_no_route`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from datetime import UTC
from email.utils import format_datetime
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape

from worker.site.articles import SITE_TZ, SiteArticle, wp_text
from worker.site.server import Response

__all__ = ["FEED_ITEMS", "category_id", "feed_response", "rest_posts_response"]

FEED_ITEMS = 10
SITE_NAME = "The Times Of Central Asia"
JSON_TYPE = "application/json; charset=UTF-8"


def category_id(name: str) -> int:
    """The REST API's id of a category (stable per name)."""
    return 1 if name == "news" else 2 + zlib.crc32(name.encode()) % 9000


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def feed_response(newest_first: Sequence[SiteArticle], base: str) -> Response:
    items = []
    for article in newest_first[:FEED_ITEMS]:
        url = article.canonical_url(base)
        items.append(
            "\t<item>\n"
            f"\t\t<title>{escape(wp_text(article.title))}</title>\n"
            f"\t\t<link>{escape(url)}</link>\n"
            f"\t\t<dc:creator>{_cdata('Staff')}</dc:creator>\n"
            f"\t\t<pubDate>{format_datetime(article.published.astimezone(UTC), usegmt=False)}"
            "</pubDate>\n"
            + "".join(f"\t\t<category>{_cdata(c.title())}</category>\n" for c in article.categories)
            + f'\t\t<guid isPermaLink="false">{escape(base)}/?p={article.id}</guid>\n'
            f"\t\t<description>{_cdata(wp_text(article.expected_summary) + ' [&#8230;]')}"
            "</description>\n"
            f"\t\t<content:encoded>{_cdata(article.content_html())}</content:encoded>\n"
            "\t</item>\n"
        )
    build = newest_first[0].published if newest_first else None
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"\n'
        '\txmlns:content="http://purl.org/rss/1.0/modules/content/"\n'
        '\txmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '\txmlns:atom="http://www.w3.org/2005/Atom"\n>\n<channel>\n'
        f"\t<title>{SITE_NAME}</title>\n"
        f'\t<atom:link href="{escape(base)}/feed/" rel="self" type="application/rss+xml" />\n'
        f"\t<link>{escape(base)}</link>\n"
        "\t<description>Independent news from Central Asia</description>\n"
        + (
            f"\t<lastBuildDate>{format_datetime(build.astimezone(UTC))}</lastBuildDate>\n"
            if build
            else ""
        )
        + "\t<language>en-US</language>\n"
        + "".join(items)
        + "</channel>\n</rss>\n"
    )
    return Response(200, body.encode(), "application/rss+xml; charset=UTF-8")


def _error(status: int, code: str, message: str, data: dict[str, object]) -> Response:
    body = json.dumps({"code": code, "message": message, "data": {"status": status, **data}})
    return Response(status, body.encode(), JSON_TYPE)


def _ids(raw: str) -> set[int] | None:
    try:
        return {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        return None


def _post(article: SiteArticle, base: str) -> dict[str, object]:
    local = article.published.astimezone(SITE_TZ).replace(tzinfo=None)
    gmt = article.published.astimezone(UTC).replace(tzinfo=None)
    excerpt = f"<p>{wp_text(article.expected_summary)} [&hellip;]</p>\n"
    return {
        "id": article.id,
        "date": local.isoformat(timespec="seconds"),
        "date_gmt": gmt.isoformat(timespec="seconds"),
        "guid": {"rendered": f"{base}/?p={article.id}"},
        "modified": local.isoformat(timespec="seconds"),
        "modified_gmt": gmt.isoformat(timespec="seconds"),
        "slug": article.slug,
        "status": "publish",
        "type": "post",
        "link": article.canonical_url(base),
        "title": {"rendered": wp_text(article.title)},
        "content": {"rendered": article.content_html() + "\n", "protected": False},
        "excerpt": {"rendered": excerpt, "protected": False},
        "author": 3,
        "featured_media": 0,
        "categories": [category_id(c) for c in article.categories],
        "tags": [],
        "_links": {"self": [{"href": f"{base}/wp-json/wp/v2/posts/{article.id}"}]},
    }


def rest_posts_response(
    path: str,
    target: str,
    every: Sequence[SiteArticle],
    base: str,
    site_term: str,
    counter: str = "both",
) -> Response:
    """One page of posts; `counter`: the headers "both" X-WP-Total and X-WP-TotalPages, only
    "pages" (X-WP-TotalPages), or "none" (a proxy that strips them)."""
    if path.rstrip("/") != "/wp-json/wp/v2/posts":
        return _error(
            404, "rest_no_route", "No route was found matching the URL and request method.", {}
        )
    query = {k: v[-1] for k, v in parse_qs(urlsplit(target).query).items()}
    try:
        per_page = int(query.get("per_page", "10"))
        page = int(query.get("page", "1"))
    except ValueError:
        return _error(400, "rest_invalid_param", "Invalid parameter(s): page", {})
    if not 1 <= per_page <= 100:
        return _error(
            400,
            "rest_invalid_param",
            "Invalid parameter(s): per_page",
            {"params": {"per_page": "per_page must be between 1 (inclusive) and 100 (inclusive)"}},
        )
    if page < 1:
        return _error(400, "rest_invalid_param", "Invalid parameter(s): page", {})
    chosen = list(every)
    term = query.get("search", "").strip().lower()
    if term and term != site_term.lower():
        chosen = [
            a
            for a in chosen
            if term in a.title.lower() or term in a.summary.lower() or term in a.body.lower()
        ]
    for key in ("categories", "tags"):
        if key in query:
            wanted = _ids(query[key])
            if wanted is None:
                return _error(400, "rest_invalid_param", f"Invalid parameter(s): {key}", {})
            if key == "tags":  # the site's posts have no tags
                chosen = [] if wanted else chosen
            else:
                chosen = [a for a in chosen if wanted & {category_id(c) for c in a.categories}]
    chosen.sort(key=lambda a: (a.published, a.id), reverse=True)
    total = len(chosen)
    pages = -(-total // per_page)
    if page > max(pages, 1):
        return _error(
            400,
            "rest_post_invalid_page_number",
            "The page number requested is larger than the number of pages available.",
            {},
        )
    shown = chosen[(page - 1) * per_page : page * per_page]
    links = []
    params = {k: v for k, v in query.items() if k != "page"}
    if page > 1:
        links.append(
            f'<{base}/wp-json/wp/v2/posts?{urlencode({**params, "page": page - 1})}>; rel="prev"'
        )
    if page < pages:
        links.append(
            f'<{base}/wp-json/wp/v2/posts?{urlencode({**params, "page": page + 1})}>; rel="next"'
        )
    headers = {
        "X-WP-Total": str(total),
        "X-WP-TotalPages": str(pages),
        "Access-Control-Expose-Headers": "X-WP-Total, X-WP-TotalPages, Link",
        "Allow": "GET",
        "X-Content-Type-Options": "nosniff",
    }
    if counter != "both":
        del headers["X-WP-Total"]
    if counter == "none":
        del headers["X-WP-TotalPages"]
    if links:
        headers["Link"] = ", ".join(links)
    body = json.dumps([_post(a, base) for a in shown], ensure_ascii=False)
    return Response(200, body.encode(), JSON_TYPE, headers)
