"""Small reads of a parsed page that every heuristic of the probe shares.

Nodes are selectolax/lexbor nodes; two reads of the same element are different Python objects,
so elements are compared by `mem_id` (the address of the lexbor node).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from selectolax.lexbor import LexborNode

from worker.parse import clean_text, parse_date
from worker.urls import canonicalize

__all__ = [
    "BOILERPLATE_RE",
    "ancestors",
    "classes",
    "elements",
    "href_of",
    "is_title_like",
    "same_site",
    "stable_classes",
    "text_of",
    "tokens",
]

# A CSS identifier we can write without escaping.
_IDENT_RE = re.compile(r"^-?[A-Za-z_][A-Za-z0-9_-]*$")
# Ids and classes that name one element (post-1234, item_98765): no use to select a group.
_UNIQUE_RE = re.compile(r"\d{3,}")
# Classes that tell one article's state or kind, not that it is a teaser (WordPress's
# format-video, category-news, has-post-thumbnail; a carousel's active slide; odd/even rows):
# a selector built on them would miss the next article that differs.
_STATE_RE = re.compile(
    r"^(format|category|tag|status|has|author|sticky|odd|even|first|last|active|current|"
    r"selected|hidden|visible|new|hot|lazy|loaded)(-|$)",
    re.IGNORECASE,
)
# Where boilerplate lives: names of sidebars, widgets, menus, carousels, "Popular"/"Related" lists.
BOILERPLATE_RE = re.compile(
    r"sidebar|widget|popular|related|trending|most-?read|mostread|recommend|carousel|slider|"
    r"swiper|slick|glide|ticker|breaking|footer|menu|navbar|nav-|breadcrumb|tag-?cloud|"
    r"share|social|promo|advert|banner|featured|editors?-?pick|also-?like",
    re.IGNORECASE,
)
_TEXT_SKIP = frozenset("script style template noscript svg math".split())
_NOT_TITLES = re.compile(
    r"^(read|continue|more|next|previous|prev|older|newer|comments?|share|view|see|load)\b",
    re.IGNORECASE,
)


def elements(root: LexborNode) -> Iterator[LexborNode]:
    """Every element under `root` (itself included), document order, without script/style."""
    stack = [root]
    while stack:
        node = stack.pop()
        tag = node.tag
        if not tag or tag[0] == "-" or tag in _TEXT_SKIP:
            continue
        yield node
        children = [child for child in node.iter() if child.tag and child.tag[0] != "-"]
        stack.extend(reversed(children))


def ancestors(node: LexborNode, stop: LexborNode | None = None) -> Iterator[LexborNode]:
    """The element's ancestors, nearest first, up to (not including) `stop` or the document."""
    stop_id = stop.mem_id if stop is not None else None
    parent = node.parent
    while parent is not None and parent.tag not in (None, "-document"):
        if parent.mem_id == stop_id:
            return
        yield parent
        parent = parent.parent


def classes(node: LexborNode) -> list[str]:
    value = node.attributes.get("class") or ""
    return value.split()


def stable_classes(node: LexborNode) -> list[str]:
    """The classes that say what the element is, not its state or kind (`category-featured`,
    `format-video`, `active`) and not which one it is (`post-1234`)."""
    return [c for c in classes(node) if not _UNIQUE_RE.search(c) and not _STATE_RE.match(c)]


def tokens(node: LexborNode) -> list[str]:
    """Simple selectors naming this element that could name its look-alikes too: its tag, its
    id (unless it looks unique: digits), its classes (same rule), short attribute tests."""
    tag = node.tag or ""
    out = [tag]
    ident = node.attributes.get("id")
    if ident and _IDENT_RE.match(ident) and not _UNIQUE_RE.search(ident):
        out.append(f"#{ident}")
    for name in classes(node):
        if _IDENT_RE.match(name) and not _UNIQUE_RE.search(name) and not _STATE_RE.match(name):
            out.append(f".{name}")
            out.append(f"{tag}.{name}")
    for attr in ("rel", "itemprop", "role"):
        value = node.attributes.get(attr)
        if value and _IDENT_RE.match(value.split()[0]):
            out.append(f"[{attr}~={value.split()[0]}]")
            out.append(f"{tag}[{attr}~={value.split()[0]}]")
    label = node.attributes.get("aria-label")
    if label and len(label) <= 30 and label.replace(" ", "").isalnum():
        out.append(f'[aria-label="{label}"]')
        out.append(f'{tag}[aria-label="{label}"]')
    return out


def text_of(node: LexborNode, limit: int = 2000) -> str:
    """The element's visible text, whitespace collapsed (a space between text nodes)."""
    return clean_text(node.text(deep=True, separator=" ", strip=False))[:limit]


def href_of(node: LexborNode, page_url: str) -> str | None:
    """The canonical absolute URL of a link, or None (no href, '#...', javascript:...)."""
    href = node.attributes.get("href")
    if not href or href.strip().startswith("#"):
        return None
    return canonicalize(href, page_url)


def same_site(url: str, page_url: str) -> bool:
    """The same host, a leading 'www.' aside."""
    a = (urlsplit(url).hostname or "").removeprefix("www.")
    b = (urlsplit(page_url).hostname or "").removeprefix("www.")
    return bool(a) and a == b


def is_title_like(text: str) -> bool:
    """A headline: 3 words or more, 15 to 300 characters, not "Read more", not a date."""
    if not 15 <= len(text) <= 300 or len(text.split()) < 3:
        return False
    if _NOT_TITLES.match(text) and len(text.split()) <= 4:
        return False
    return any(ch.isalpha() for ch in text) and (len(text) > 60 or parse_date(text) is None)
