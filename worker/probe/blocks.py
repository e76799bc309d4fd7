"""Finding the article teasers of a listing page: repeated blocks, read and scored.

1. **Groups.** Every element gets a signature, the path of tag/id/class names from the root to
   its parent (ids and classes with 3 digits or more left out: `post-1234` names one article).
   Elements with the same signature and tag are a group: the `<article>`s of one list, the `<tr>`s
   of one table, the cards of a grid even when each row of the grid is its own `div.row`.
2. **Teasers.** In a group, a teaser is an element holding a link to a distinct page of the same
   site whose text (or whose heading's text) is title-like: three words or more, 15 to 300
   characters, not "Read more" (`dom.is_title_like`). The main link is the title-like link with
   the most words, a link inside a heading first. An element holding title-like links to more
   than two pages is a container of teasers, not one. A group needs 3 teasers, and 80 % of
   their links distinct. A menu ("News", "Opinion") or a tag cloud ("Kyrgyzstan") has no
   title-like text; a pagination bar neither.
3. **Fields.** In each teaser, the date (an element with a `datetime` attribute that parses,
   else the shortest element whose text parses with worker.parse's date parser, outside the
   title; "3 hours ago" and "yesterday" are read against the fetch time, as `worker once` does) and the summary (the longest text of 40 characters or 6 words or more outside the
   title and the link).
4. **Score.** Repetition (one point a teaser, at most 20), title length (up to 4 points at 8
   words on average), links to article-like paths (a slug of three words, a number of 4 digits
   or more, `.html`; not `/tag/`, `/category/`, `/page/`, `/author/`: up to 4), a date (up to 5)
   and a summary (up to 4) in every teaser, a place in `main`/`[role=main]`/`#content`/`#main`/
   `#primary`/results (+5). Boilerplate costs 15: `aside`, `nav`, `header`, `footer`, or an id or
   class on the way up naming a sidebar, widget, carousel, slider, menu, "popular", "related",
   "trending", "most read", "featured"...; so does a heading just before the group reading
   "Popular", "Most read", "Related", "Trending", "Recommended", "Editor's picks", "Featured".
   So a "Most Read" sidebar of the same `<article>` markup loses to the results, and so does a
   carousel of the same cards.

Groups reading the same links (a card and the grid column around it) are kept together as
variants of one candidate; the caller picks the variant with the shorter selector.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.parse import parse_date
from worker.probe.dom import (
    BOILERPLATE_RE,
    ancestors,
    classes,
    elements,
    href_of,
    is_title_like,
    same_site,
    stable_classes,
    text_of,
)
from worker.urls import canonicalize

__all__ = ["MIN_TEASERS", "Candidate", "Teaser", "find_candidates"]

MIN_TEASERS = 3
MAX_DATE_TEXT = 60  # an element whose text is longer is not a date
_UNIQUE_RE = re.compile(r"\d{3,}")
_HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
_BOILERPLATE_TAGS = frozenset("aside nav header footer".split())
_MAIN_RE = re.compile(
    r"^(content|main|main-content|primary|results|search-results|posts|archive|listing)$",
    re.IGNORECASE,
)
_LABEL_RE = re.compile(
    r"popular|most (read|viewed|shared|commented)|related|trending|recommended|you may also|"
    r"editor.?s pick|featured|read next|don.?t miss",
    re.IGNORECASE,
)
_LISTING_PATH_RE = re.compile(r"/(tag|tags|category|categories|page|author|topics?|section)/")
_ARTICLE_PATH_RE = re.compile(r"[a-z0-9]+[-_][a-z0-9]+[-_][a-z0-9]+|\d{4,}|\.html?$", re.I)


@dataclass
class Teaser:
    """One article teaser of a group and what was read in it."""

    node: LexborNode
    url: str
    title: str
    title_node: LexborNode  # the element whose text is the title
    link_node: LexborNode  # the element whose href is the link (often title_node)
    published: datetime | None = None
    date_node: LexborNode | None = None
    date_attr: str | None = None  # "datetime" when the date is an attribute
    summary: str = ""
    summary_node: LexborNode | None = None


@dataclass
class Candidate:
    """A group of teasers, its score and the reasons behind it (shown as doubts)."""

    teasers: list[Teaser]
    score: float = 0.0
    notes: list[str] = field(default_factory=list)
    # the same links read from other elements (the grid column around a card) with the same
    # score: the caller picks the one with the shortest selector
    variants: list[list[Teaser]] = field(default_factory=list)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(t.url for t in self.teasers)


def _token(node: LexborNode) -> str:
    parts = [node.tag or ""]
    ident = node.attributes.get("id")
    if ident and not _UNIQUE_RE.search(ident):
        parts.append(f"#{ident}")
    parts.extend(sorted(f".{c}" for c in classes(node) if not _UNIQUE_RE.search(c)))
    return "".join(parts)


def _groups(root: LexborNode) -> list[list[LexborNode]]:
    signature: dict[int, str] = {}
    groups: dict[tuple[str, str], list[LexborNode]] = defaultdict(list)
    for node in elements(root):
        parent = node.parent
        above = signature.get(parent.mem_id, "") if parent is not None else ""
        signature[node.mem_id] = f"{above}/{_token(node)}"
        groups[(above, node.tag or "")].append(node)
    return [nodes for nodes in groups.values() if len(nodes) >= MIN_TEASERS]


def _inside(node: LexborNode, outer: LexborNode) -> bool:
    """`node` is `outer` or one of its descendants."""
    if node.mem_id == outer.mem_id:
        return True
    return any(a.mem_id == outer.mem_id for a in ancestors(node))


def _heading_of(node: LexborNode, item: LexborNode) -> LexborNode | None:
    if node.tag in _HEADINGS:
        return node
    for above in ancestors(node, item):
        if above.tag in _HEADINGS:
            return above
    if item.tag in _HEADINGS and _inside(node, item):
        return item
    return None


def _teaser(
    node: LexborNode, page_url: str, here: str | None, now: datetime | None
) -> Teaser | None:
    best: tuple[float, LexborNode, str, str] | None = None
    titled: set[str] = set()
    anchors = node.css("a[href]")
    for anchor in anchors:
        url = href_of(anchor, page_url)
        if url is None or url == here or not same_site(url, page_url):
            continue
        text = text_of(anchor, 400)
        if not is_title_like(text):
            continue
        titled.add(url)
        rank = len(text.split()) + (6 if _heading_of(anchor, node) is not None else 0)
        if best is None or rank > best[0]:
            best = (rank, anchor, url, text)
    if len(titled) > 2:
        return None  # a container of teasers
    teaser: Teaser | None = None
    if best is not None:
        _, anchor, url, text = best
        title_node = anchor
        inner = anchor.css_first("h1, h2, h3, h4, h5, h6")  # a card that is all one link
        if inner is not None and is_title_like(text_of(inner, 400)):
            title_node, text = inner, text_of(inner, 400)
        teaser = Teaser(node=node, url=url, title=text, title_node=title_node, link_node=anchor)
    else:  # a headline without a link, and a link elsewhere ("Read more", a thumbnail)
        for heading in node.css("h1, h2, h3, h4, h5, h6"):
            text = text_of(heading, 400)
            if not is_title_like(text):
                continue
            for anchor in anchors:
                url = href_of(anchor, page_url)
                if url is not None and url != here and same_site(url, page_url):
                    teaser = Teaser(
                        node=node, url=url, title=text, title_node=heading, link_node=anchor
                    )
                    break
            break
    if teaser is None:
        return None
    _read_date(teaser, now)
    _read_summary(teaser)
    return teaser


def _read_date(teaser: Teaser, now: datetime | None) -> None:
    for node in teaser.node.css("[datetime]"):
        value = parse_date(node.attributes.get("datetime") or "")
        if value is not None:
            teaser.published, teaser.date_node, teaser.date_attr = value, node, "datetime"
            return
    best: tuple[int, LexborNode, datetime] | None = None
    for node in elements(teaser.node):
        if _inside(node, teaser.title_node) or _inside(teaser.title_node, node):
            continue
        text = text_of(node, MAX_DATE_TEXT + 1)
        if not text or len(text) > MAX_DATE_TEXT:
            continue
        value = parse_date(text, now=now)  # "3 hours ago" against the fetch time
        if value is not None and (best is None or len(text) <= best[0]):
            best = (len(text), node, value)
    if best is not None:
        _, teaser.date_node, teaser.published = best


def _read_summary(teaser: Teaser) -> None:
    best: tuple[int, LexborNode, str] | None = None
    for node in elements(teaser.node):
        if node.mem_id == teaser.node.mem_id:
            continue
        if any(_inside(field, node) or _inside(node, field) for field in _fields(teaser)):
            continue
        text = text_of(node, 5000)
        if len(text) < 40 and len(text.split()) < 6:
            continue
        if best is None or len(text) >= best[0]:  # the deepest of equal texts
            best = (len(text), node, text)
    if best is not None:
        _, teaser.summary_node, teaser.summary = best


def _fields(teaser: Teaser) -> list[LexborNode]:
    """The title, link and date elements (not the teaser itself when it is the link)."""
    nodes = [teaser.title_node, teaser.link_node]
    if teaser.date_node is not None:
        nodes.append(teaser.date_node)
    return [node for node in nodes if node.mem_id != teaser.node.mem_id]


def _common_ancestor(nodes: list[LexborNode]) -> LexborNode | None:
    chains = [[n, *ancestors(n)] for n in nodes]
    shared = {a.mem_id for a in chains[0]}
    for chain in chains[1:]:
        shared &= {a.mem_id for a in chain}
    for node in chains[0]:
        if node.mem_id in shared:
            return node
    return None


def _label_near(container: LexborNode, first: LexborNode) -> str:
    """Headings just before the group: inside its container before the first teaser, and the
    container's (and its parent's) previous siblings."""
    texts: list[str] = []
    for node in elements(container):  # document order, up to the first teaser
        if node.mem_id == first.mem_id or len(texts) > 3:
            break
        if node.tag in _HEADINGS or "widget-title" in classes(node):
            texts.append(text_of(node, 200))
    for above in (container, container.parent):
        sibling = above.prev if above is not None else None
        steps = 0
        while sibling is not None and steps < 4:
            if sibling.tag and sibling.tag[0] != "-":
                text = text_of(sibling, 200)
                if sibling.tag in _HEADINGS or len(text) <= 80:  # a label, not a whole block
                    texts.append(text)
                break
            sibling = sibling.prev
            steps += 1
    return " | ".join(t for t in texts if t)


def _article_path(url: str) -> float:
    path = urlsplit(url).path
    if _LISTING_PATH_RE.search(path):
        return 0.0
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return 1.0 if _ARTICLE_PATH_RE.search(last) or _ARTICLE_PATH_RE.search(path) else 0.3


def _score(candidate: Candidate) -> None:
    teasers = candidate.teasers
    n = len(teasers)
    notes = candidate.notes
    words = sum(len(t.title.split()) for t in teasers) / n
    dated = sum(t.published is not None for t in teasers) / n
    summarised = sum(bool(t.summary) for t in teasers) / n
    article = sum(_article_path(t.url) for t in teasers) / n
    score = min(n, 20) + 4 * min(words / 8, 1) + 4 * article + 5 * dated + 4 * summarised
    container = _common_ancestor([t.node for t in teasers]) or teasers[0].node
    chain = [a for a in (container, *ancestors(container)) if a.tag not in ("html", "body")]
    in_main = any(
        a.tag == "main"
        or a.attributes.get("role") == "main"
        or _MAIN_RE.match(a.attributes.get("id") or "")
        or any(_MAIN_RE.match(c) for c in classes(a))
        for a in chain
    )
    if in_main:
        score += 5
    # what the items and their containers are called (not a teaser's own state or category:
    # a post in "category-featured" is still a result)
    named = [
        (a.tag or "", f"{a.attributes.get('id') or ''} {' '.join(stable_classes(a))}".strip())
        for a in (teasers[0].node, *chain)
    ]
    boiler = [
        tag if tag in _BOILERPLATE_TAGS else names
        for tag, names in named
        if tag in _BOILERPLATE_TAGS or BOILERPLATE_RE.search(names)
    ]
    if boiler:
        score -= 15
        notes.append(f"inside boilerplate ({boiler[0][:40]})")
    label = _label_near(container, teasers[0].node)
    if _LABEL_RE.search(label):
        score -= 15
        notes.append(f"under a heading reading {label[:60]!r}")
    candidate.score = score


def find_candidates(
    tree: LexborHTMLParser, page_url: str, *, now: datetime | None = None
) -> list[Candidate]:
    """The groups of teasers on the page, best first (see the module's docstring); relative
    dates ("3 hours ago") are read against `now`, the fetch time, as `worker once` reads them."""
    root = tree.body
    if root is None:
        return []
    here = canonicalize(page_url)
    by_links: dict[tuple[str, ...], Candidate] = {}
    for nodes in _groups(root):
        teasers = [
            t for t in (_teaser(node, page_url, here, now) for node in nodes) if t is not None
        ]
        if len(teasers) < MIN_TEASERS:
            continue
        if len({t.url for t in teasers}) < 0.8 * len(teasers):
            continue
        candidate = Candidate(teasers=teasers)
        _score(candidate)
        known = by_links.get(candidate.urls)
        if known is None or candidate.score > known.score + 0.5:
            candidate.variants.append(teasers)
            by_links[candidate.urls] = candidate
        elif candidate.score >= known.score - 0.5:
            known.variants.append(teasers)
    return sorted(by_links.values(), key=lambda c: -c.score)
