"""An article's own page -> its text, its date and its canonical link (`[sources.article]`).

The text is the `body` selector's element, or the page's main text as trafilatura extracts it
(navigation, related links, footers and comments dropped). The date is the `published`
selector's, or in this order `<meta property="article:published_time">`, JSON-LD
`datePublished`, the first `<time datetime>`. Everything is untrusted and capped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.config import ArticleConfig
from worker.parse.dates import MAX_DATE_TEXT, DateOrder, parse_date
from worker.parse.document import html_document
from worker.parse.feeds import BODY_NODES, MAX_BODY
from worker.parse.listing import node_text
from worker.parse.text import clean_text, strip_shortcodes
from worker.urls import canonicalize

__all__ = ["ArticlePage", "parse_article"]

MAX_JSON_LD = 200_000  # characters of one JSON-LD script read at most


@dataclass(frozen=True, slots=True)
class ArticlePage:
    body: str  # "" when no text was found
    published: datetime | None
    canonical: str | None  # <link rel="canonical">, canonicalized


def _json_ld_date(tree: Any) -> str | None:
    for script in tree.css('script[type="application/ld+json"]')[:20]:
        raw = (script.text(deep=True) or "")[:MAX_JSON_LD]
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        stack = [data]
        seen = 0
        while stack and seen < 200:  # a @graph of objects: breadth bounded
            node = stack.pop()
            seen += 1
            if isinstance(node, dict):
                value = node.get("datePublished")
                if isinstance(value, str):
                    return value
                stack.extend(v for v in node.values() if isinstance(v, dict | list))
            elif isinstance(node, list):
                stack.extend(node[:50])
    return None


def _date(tree: Any, config: ArticleConfig, order: DateOrder | None) -> datetime | None:
    candidates: list[str | None] = []
    if config.published is not None:
        node = tree.css_first(config.published.css)
        if node is not None:
            value = (
                node.attributes.get(config.published.attr)
                if config.published.attr
                else node_text(node, MAX_DATE_TEXT)
            )
            candidates.append(value)
    else:
        meta = tree.css_first('meta[property="article:published_time"]')
        candidates.append(meta.attributes.get("content") if meta is not None else None)
        candidates.append(_json_ld_date(tree))
        time_node = tree.css_first("time[datetime]")
        candidates.append(time_node.attributes.get("datetime") if time_node is not None else None)
    for value in candidates:
        if value:
            parsed = parse_date(value[: MAX_DATE_TEXT * 2], order=order)
            if parsed is not None:
                return parsed
    return None


def _main_text(html: str) -> str:
    import trafilatura  # ~0.3 s to import: only when a source reads article pages

    text = trafilatura.extract(
        html,
        include_comments=False,
        include_tables=False,
        include_links=False,
        include_images=False,
        favor_precision=True,
        # not deduplicate=True: its cache is process-wide, so an article read a second time
        # (another source, a retry) would come back empty
        deduplicate=False,
    )
    return text or ""


def parse_article(
    html: str, url: str, config: ArticleConfig, *, date_order: DateOrder | None = None
) -> ArticlePage:
    """Read one article page. Raises ParseError when the document is not HTML."""
    tree = html_document(html, url)
    if config.body is not None:
        node = tree.css_first(config.body.css)
        raw = node_text(node, MAX_BODY * 2, nodes=BODY_NODES) if node is not None else ""
    else:
        raw = _main_text(html)
    body = clean_text(strip_shortcodes(raw), MAX_BODY) if raw else ""
    link = tree.css_first('link[rel="canonical"][href]')
    href = link.attributes.get("href") if link is not None else None
    canonical = canonicalize(href, url) if href else None
    return ArticlePage(body=body, published=_date(tree, config, date_order), canonical=canonical)
