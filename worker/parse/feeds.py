"""Feeds (RSS 2.0, Atom, JSON Feed) and WordPress REST API pages -> `ListingPage`.

The same guarantees as a listing page: every text is untrusted, HTML in it (a feed's
`content:encoded`, the API's `content.rendered`) is turned into text by the HTML parser
(entities decoded, scripts dropped, shortcode leftovers removed), every field is capped, and
links are canonicalized (only absolute http(s) URLs leave this module). A document that is not
the feed or the JSON it should be is a `ParseError`.
"""

from __future__ import annotations

import json
import logging
from calendar import timegm
from datetime import UTC, datetime
from html import unescape
from typing import Any

from worker.models import Item, ListingPage, ResultsCount
from worker.parse.dates import DateOrder, parse_date
from worker.parse.document import ParseError, html_document
from worker.parse.listing import MAX_ITEMS, MAX_SUMMARY, MAX_TITLE, node_text
from worker.parse.text import clean_text, strip_shortcodes
from worker.urls import canonicalize, redact_url

__all__ = ["MAX_BODY", "WP_PER_PAGE", "html_text", "parse_feed", "parse_wordpress"]

log = logging.getLogger(__name__)

MAX_BODY = 100_000  # characters of an article's text kept (after cleaning)
BODY_NODES = 20_000  # nodes of one article's HTML read at most (a bounded time per article)
WP_PER_PAGE = 100  # the REST API's largest page


def html_text(html: str, limit: int, url: str = "about:blank") -> str:
    """The visible text of an HTML fragment (entities decoded, script/style dropped, blocks
    separated by a space, shortcode leftovers removed), at most `limit` characters."""
    if not html or not html.strip():
        return ""
    if "<" not in html:  # text, maybe with entities: no document to build (~50 µs saved)
        return clean_text(strip_shortcodes(unescape(html)), limit)
    try:
        tree = html_document(html, url)
    except ParseError:  # "<" in text that is no markup ("a < b"): read it as text
        return clean_text(strip_shortcodes(unescape(html)), limit)
    root = tree.body or tree.root
    if root is None:
        return ""
    text = node_text(root, limit * 2, nodes=BODY_NODES)
    return clean_text(strip_shortcodes(text), limit)


def _item(
    link: Any,
    base: str,
    title: Any,
    summary: Any,
    body: Any,
    published: datetime | None,
) -> Item | None:
    url = canonicalize(link, base) if isinstance(link, str) and link.strip() else None
    title_text = html_text(title, MAX_TITLE) if isinstance(title, str) else ""
    if url is None or not title_text:
        return None
    summary_text = html_text(summary, MAX_SUMMARY) if isinstance(summary, str) else ""
    body_text = html_text(body, MAX_BODY) if isinstance(body, str) else ""
    return Item(
        url=url,
        title=title_text,
        summary=summary_text,
        published=published,
        body=body_text or None,
    )


def _page(url: str, items: list[Item | None], results: ResultsCount | None = None) -> ListingPage:
    kept: list[Item] = []
    seen: set[str] = set()
    skipped = 0
    for item in items[:MAX_ITEMS]:
        if item is None:
            skipped += 1
        elif item.url not in seen:
            seen.add(item.url)
            kept.append(item)
    return ListingPage(url=url, items=tuple(kept), results=results, skipped=skipped)


# --- feeds ---------------------------------------------------------------------------------------


def _feed_date(entry: Any, order: DateOrder | None, now: datetime | None) -> datetime | None:
    for key in ("published", "updated", "created"):
        raw = entry.get(key)
        if isinstance(raw, str) and raw:
            value = parse_date(raw, order=order, now=now)
            if value is not None:
                return value
        parsed = entry.get(f"{key}_parsed")
        if parsed is not None:  # feedparser's own reading of a form parse_date does not know
            try:
                return datetime.fromtimestamp(timegm(parsed), UTC)
            except (OverflowError, ValueError, TypeError):
                continue
    return None


def _json_feed(data: Any, url: str, order: DateOrder | None, now: datetime | None) -> ListingPage:
    raw_items = data.get("items")
    if not isinstance(raw_items, list):
        raise ParseError(f"JSON Feed without items: {redact_url(url)}")
    items: list[Item | None] = []
    for entry in raw_items[:MAX_ITEMS]:
        if not isinstance(entry, dict):
            items.append(None)
            continue
        body = entry.get("content_html") or entry.get("content_text")
        date = entry.get("date_published") or entry.get("date_modified")
        published = parse_date(date, order=order, now=now) if isinstance(date, str) else None
        items.append(
            _item(
                entry.get("url") or entry.get("external_url"),
                url,
                entry.get("title"),
                entry.get("summary"),
                body,
                published,
            )
        )
    return _page(url, items)


def parse_feed(
    text: str,
    url: str,
    *,
    content_type: str | None = None,
    date_order: DateOrder | None = None,
    now: datetime | None = None,
) -> ListingPage:
    """An RSS 2.0 / Atom / RDF feed (feedparser) or a JSON Feed -> one page of items: title,
    link, summary (`description` / Atom `summary`), body (`content:encoded` / Atom `content` /
    `content_html`) and date. Raises ParseError when the text is no feed."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise ParseError(f"not a JSON Feed ({exc}): {redact_url(url)}") from None
        if not isinstance(data, dict) or not str(data.get("version", "")).startswith(
            "https://jsonfeed.org/version/"
        ):
            raise ParseError(f"JSON that is no JSON Feed: {redact_url(url)}")
        return _json_feed(data, url, date_order, now)

    import feedparser  # ~60 ms to import: only when a feed source runs

    # bytes, never a str: feedparser would fetch a str that looks like a URL. The text is
    # decoded already (by the fetcher): say so, over the document's own declaration.
    parsed = feedparser.parse(
        text.encode("utf-8"),
        response_headers={"content-type": "application/xml; charset=utf-8"},
        sanitize_html=False,  # the HTML is turned into text by our parser, never kept
        resolve_relative_uris=False,
    )
    if not parsed.get("version") and not parsed.entries:
        reason = parsed.get("bozo_exception") or "no RSS, Atom or RDF root element"
        raise ParseError(f"not a feed ({str(reason)[:200]}): {redact_url(url)}")
    base = parsed.feed.get("link") if isinstance(parsed.feed.get("link"), str) else None
    base = canonicalize(base, url) if base else None
    items: list[Item | None] = []
    for entry in parsed.entries[:MAX_ITEMS]:
        contents = entry.get("content") or []
        body = next(
            (c.get("value") for c in contents if isinstance(c, dict) and c.get("value")), None
        )
        summary = entry.get("summary")
        if summary and body and summary == body:  # Atom with only <content>: no summary
            summary = None
        items.append(
            _item(
                entry.get("link"),
                base or url,
                entry.get("title"),
                summary,
                body,
                _feed_date(entry, date_order, now),
            )
        )
    return _page(url, items)


# --- the WordPress REST API ----------------------------------------------------------------------


def _rendered(post: dict[str, Any], key: str) -> Any:
    value = post.get(key)
    return value.get("rendered") if isinstance(value, dict) else None


def _wp_date(post: dict[str, Any]) -> datetime | None:
    raw = post.get("date_gmt")
    if isinstance(raw, str) and raw:
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            value = None
        if value is not None:  # date_gmt has no zone and is UTC
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    raw = post.get("date")  # the site's local time, no zone: better than nothing
    return parse_date(raw) if isinstance(raw, str) else None


def _header_int(headers: dict[str, str], name: str) -> int | None:
    raw = headers.get(name, "").strip()
    return int(raw) if raw.isdigit() and len(raw) < 10 else None


def parse_wordpress(
    text: str, url: str, headers: dict[str, str], *, number: int, per_page: int = WP_PER_PAGE
) -> ListingPage:
    """One page (`number`) of /wp-json/wp/v2/posts -> items, with `X-WP-Total` as the counter
    ("results first - last of total"). Raises ParseError when the answer is no list of posts."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ParseError(
            f"the WordPress REST API answered something that is not JSON: {redact_url(url)}"
        ) from None
    if not isinstance(data, list):
        code = data.get("code") if isinstance(data, dict) else None
        raise ParseError(
            f"the WordPress REST API answered no list of posts"
            f"{f' ({str(code)[:100]})' if code else ''}: {redact_url(url)}"
        )
    items: list[Item | None] = []
    for post in data[:MAX_ITEMS]:
        if not isinstance(post, dict):
            items.append(None)
            continue
        items.append(
            _item(
                post.get("link"),
                url,
                _rendered(post, "title"),
                _rendered(post, "excerpt"),
                _rendered(post, "content"),
                _wp_date(post),
            )
        )
    results = None
    total = _header_int(headers, "x-wp-total")
    pages = _header_int(headers, "x-wp-totalpages")
    first = (number - 1) * per_page + 1
    if number == 1 and (total == 0 or (total is None and pages == 0)):
        # no post at all (X-WP-TotalPages: 0): the empty first page is the last one, read as
        # "page 1 of 1" (no request for a page 2 that would answer 400)
        results = ResultsCount(first=1, last=1, total=1, pages=True)
    elif total is not None and first <= total:
        # read as a listing's "results first - last of total": a page holding fewer posts than
        # that shows as short to the crawl's completeness checks
        results = ResultsCount(first=first, last=min(total, first + per_page - 1), total=total)
    elif total is None:
        if pages is not None:
            results = ResultsCount(first=number, last=number, total=pages, pages=True)
    return _page(url, items, results)
