"""Listing pages: items (title, link, summary, date), the results counter and the next link.

Fields are read with the source's selectors; every read is bounded (characters and nodes), links
are resolved against the page (or its <base href>) and canonicalized, so only absolute http(s)
URLs leave this module.
"""

from __future__ import annotations

import logging
from datetime import datetime

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.config import FieldSelector, SelectConfig
from worker.models import Item, ListingPage
from worker.parse.dates import MAX_DATE_TEXT, DateOrder, parse_date
from worker.parse.document import ParseError, html_document
from worker.parse.results import parse_results
from worker.parse.text import RAW_CAP, clean_text, recap_text, strip_shortcodes
from worker.urls import canonicalize, redact_url

__all__ = ["MAX_ITEMS", "MAX_SUMMARY", "MAX_TITLE", "node_text", "parse_listing"]

log = logging.getLogger(__name__)

MAX_ITEMS = 500  # elements matched by `item` that are read on one page; the rest are ignored
MAX_TITLE = 500  # characters, after cleaning
MAX_SUMMARY = 4000  # characters, after cleaning and shortcode removal

_BLOCK = frozenset(
    "address article aside blockquote br caption dd details dialog div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre "
    "section summary table tbody td tfoot th thead tr ul".split()
)
_NO_TEXT = frozenset("script style template noscript head title iframe object svg math".split())


def node_text(node: LexborNode, limit: int, *, nodes: int | None = None) -> str:
    """`_node_text` with a node budget of its own (`nodes`): an article's whole text."""
    parts: list[str] = []
    _collect_text(node, limit, parts, nodes)
    return clean_text("".join(parts))[:limit]


def _node_text(node: LexborNode, limit: int) -> str:
    """The visible text under `node`, with a space between block elements (so paragraphs do
    not run together), without script/style, whitespace collapsed, at most `limit` characters.

    Reading stops after about `limit` characters of text (indentation not counted) or
    `limit // 8` nodes (at least 50, at most 400), so hostile markup (a million tiny nodes,
    items nested in items) costs a bounded time per field.
    """
    parts: list[str] = []
    _collect_text(node, limit, parts)
    return clean_text("".join(parts))[:limit]


def _collect_text(node: LexborNode, limit: int, parts: list[str], nodes: int | None = None) -> None:
    """The walk of `_node_text`: appends the text pieces (and block separators) to `parts`."""
    size = 0
    budget = min(400, max(50, limit // 8)) if nodes is None else nodes
    append = parts.append
    # (children of an element, whether it is a block: a space follows its text)
    stack = [(node.iter(include_text=True), False)]
    while stack:
        children, closes_block = stack[-1]
        for child in children:
            budget -= 1
            if budget < 0:
                return
            tag = child.tag
            if tag == "-text":
                text = child.text_content or ""
                append(text)
                size += len(text.strip())
                if size >= limit:
                    return
            elif tag and tag[0] != "-" and tag not in _NO_TEXT:  # not a comment, doctype...
                block = tag in _BLOCK
                if block:
                    append(" ")
                stack.append((child.iter(include_text=True), block))
                break  # read the child's children first
        else:  # every child read
            stack.pop()
            if closes_block:
                append(" ")


def _value(target: LexborNode, field: FieldSelector, limit: int) -> str | None:
    """The raw value of a field in its matched element: the attribute when the field names
    one, else the text."""
    if field.attr:
        value = target.attributes.get(field.attr)
        return value[:limit] if value is not None else None
    return _node_text(target, limit)


def _read(
    scope: LexborNode | LexborHTMLParser, field: FieldSelector | None, limit: int
) -> str | None:
    """The raw value of the first match of a field in `scope` (a node itself included, or the
    whole document): the attribute when the field names one, else the text."""
    if field is None:
        return None
    target = scope.css_first(field.css)
    if target is None:
        return None
    return _value(target, field, limit)


def _title(target: LexborNode | None, field: FieldSelector) -> str:
    raw = _value(target, field, MAX_TITLE * RAW_CAP) if target is not None else None
    if not raw:
        return ""
    if field.attr:
        return clean_text(raw, MAX_TITLE)
    return recap_text(raw, MAX_TITLE)  # _node_text cleaned it already


def _summary(node: LexborNode, field: FieldSelector | None) -> str:
    raw = _read(node, field, MAX_SUMMARY * RAW_CAP)
    if not raw:
        return ""
    if field is not None and not field.attr and "[" not in raw:
        return recap_text(raw, MAX_SUMMARY)  # cleaned by _node_text, no shortcode to strip
    return clean_text(strip_shortcodes(raw), MAX_SUMMARY)


def _base_url(tree: LexborHTMLParser, page_url: str) -> str:
    """The page URL, or the document's <base href> resolved against it."""
    base = tree.css_first("base[href]")
    if base is not None:
        href = base.attributes.get("href")
        resolved = canonicalize(href, page_url) if href else None
        if resolved:
            return resolved
    return page_url


def parse_listing(
    html: str,
    page_url: str,
    select: SelectConfig,
    *,
    date_order: DateOrder | None = None,
    now: datetime | None = None,
) -> ListingPage:
    """Read one listing page. Raises ParseError when `select.item` matches nothing.

    Dates are read as `parse_date` reads them, with the source's `date_order` and `now` (the
    fetch time) for relative dates ("2 hours ago").

    An element without a title or without an http(s) link is skipped (counted in `skipped`);
    items are deduplicated by canonical URL (the first wins) and keep the page's order.
    """
    tree = html_document(html, page_url)
    nodes = tree.css(select.item)
    if not nodes:
        raise ParseError(
            f"selector matched nothing: item '{select.item}' on {redact_url(page_url)}"
        )
    if len(nodes) > MAX_ITEMS:
        log.warning(
            "%s: item %r matched %d elements, reading the first %d",
            redact_url(page_url),
            select.item,
            len(nodes),
            MAX_ITEMS,
        )
        nodes = nodes[:MAX_ITEMS]
    base = _base_url(tree, page_url)

    items: list[Item] = []
    seen: set[str] = set()
    skipped = 0
    title_field, link_field = select.title, select.link
    same_element = title_field.css == link_field.css  # e.g. both "h2.entry-title a"
    for node in nodes:
        title_target = node.css_first(title_field.css)
        link_target = title_target if same_element else node.css_first(link_field.css)
        title = _title(title_target, title_field)
        href = _value(link_target, link_field, 4 * 2048) if link_target is not None else None
        url = canonicalize(href, base) if href and not href.strip().startswith("#") else None
        if not title or url is None:
            skipped += 1
            continue
        if url in seen:
            continue
        seen.add(url)
        summary = _summary(node, select.summary)
        published_raw = _read(node, select.published, MAX_DATE_TEXT * RAW_CAP)
        published = parse_date(published_raw, order=date_order, now=now) if published_raw else None
        items.append(Item(url=url, title=title, summary=summary, published=published))

    results = None
    if select.results is not None:
        raw = _read(tree, select.results, 2000)
        results = parse_results(raw) if raw else None

    next_url = None
    if select.next is not None:
        href = _read(tree, select.next, 4 * 2048)
        next_url = canonicalize(href, base) if href else None
        if next_url is not None and next_url == canonicalize(page_url):
            next_url = None  # a link to this very page is no next page

    if skipped:
        log.debug(
            "%s: skipped %d elements without a title or an http(s) link",
            redact_url(page_url),
            skipped,
        )
    return ListingPage(
        url=page_url, items=tuple(items), results=results, next_url=next_url, skipped=skipped
    )
