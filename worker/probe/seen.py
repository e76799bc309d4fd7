"""What a page is when it holds no listing: one sentence for the user.

In this order: a login page (a password field), an error page (a title or main heading saying
"not found", "error", "access denied", "404"...), an article page (`og:type` article, or one
`<article>`/`<main>` holding 5 paragraphs or 1,500 characters of prose), a page built by
JavaScript (under 300 characters of text and 3 scripts or more: the worker does not run
scripts), else a plain statement of what was counted.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

from worker.probe.blocks import MIN_TEASERS
from worker.probe.dom import href_of, same_site, text_of

__all__ = ["describe_page"]

_ERROR_RE = re.compile(
    r"not found|\b404\b|\b403\b|\b500\b|error|access denied|forbidden|unavailable|"
    r"can.?t be found|no longer exists",
    re.IGNORECASE,
)


def _title(tree: LexborHTMLParser) -> str:
    for selector in ("h1", "title"):
        node = tree.css_first(selector)
        if node is not None:
            text = text_of(node, 120)
            if text:
                return text
    return ""


def describe_page(tree: LexborHTMLParser, page_url: str, *, scripts: int = 0) -> str:
    """'a login page (...)', 'an article page (...)', ... : what this page looked like
    (`scripts`: how many <script> elements it had before they were stripped)."""
    title = _title(tree)
    shown = f" ({title!r})" if title else ""
    if tree.css_first("input[type=password]") is not None:
        return f"a login page{shown}: it asks for a password, there is no listing to read"
    head_title = tree.css_first("title")
    heading = " ".join(
        text_of(node, 200) for node in (head_title, tree.css_first("h1")) if node is not None
    )
    if _ERROR_RE.search(heading):
        return f"an error page{shown}, not a listing"
    og = tree.css_first('meta[property="og:type"]')
    kind = (og.attributes.get("content") or "").lower() if og is not None else ""
    body = tree.css_first("article") or tree.css_first("main")
    paragraphs = body.css("p") if body is not None else []
    prose = sum(len(text_of(p, 5000)) for p in paragraphs)
    if kind == "article" or len(paragraphs) >= 5 or prose >= 1500:
        return (
            f"an article page{shown}, not a listing: probe the section, archive or search page "
            "that links to it"
        )
    root = tree.body
    text = text_of(root, 301) if root is not None else ""
    if len(text) < 300 and scripts >= 3:
        return (
            f"a page{shown} built by JavaScript ({len(text)} characters of text, "
            f"{scripts} scripts): the worker reads the HTML as served and does "
            "not run scripts; look for the site's search or archive pages, or its RSS feed"
        )
    links = {
        url
        for a in tree.css("a[href]")
        if (url := href_of(a, page_url)) is not None and same_site(url, page_url)
    }
    return (
        f"a page{shown} with {len(links)} link(s) to the same site but no group of "
        f"{MIN_TEASERS} or more same-structure blocks linking to distinct pages with a title"
    )
