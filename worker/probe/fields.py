"""From a chosen group of teasers to the `select` table, the counter and the pagination.

- `item`: the shortest selector matching exactly the teasers (over every variant of the group:
  the card or the grid column around it, whichever is shorter; `css.group_selector`).
- `title`, `link`: the shortest selectors reading, in every teaser, the title's text and the
  link's URL (one selector for both when the title is the link's text).
- `published`: `{ css, attr = "datetime" }` when the teasers' dates are attributes, else the
  element whose text parses as a date; only when half the teasers or more have one.
- `summary`: the element holding the teaser text; only when half the teasers have one.
- `results`: the smallest element outside the teasers whose text `parse_results` reads
  ("Viewing results 1 - 6 of 78", "Showing 7 – 12 of 40", "Found: 1-6 of 40", "Page 2 of 7").
- `next`: a link to another page of the site marked as the next one, first found in this order:
  `rel=next`, an `aria-label` saying next, a text reading "Next", "Next page", "Older posts",
  "»", "›", "→", "More", "Load more", "Show more", a class naming next. Its selector may use
  lexbor's `:lexbor-contains("Next" i)` when no class or attribute names it.
- `page_url`: when there is no next link, a template from the numbered page links ("2", "3"...):
  the number in each link's URL replaced by `{page}`, kept when it gives every numbered link.
  With a next link, the template is kept aside: the next link is proposed, and the template
  takes its place when page 2 cannot be read through the next link.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.models import ResultsCount
from worker.parse import parse_date, parse_results
from worker.probe.blocks import Candidate, Teaser
from worker.probe.css import field_selector, group_selector, page_selector
from worker.probe.dom import ancestors, classes, elements, href_of, same_site, text_of, tokens
from worker.urls import canonicalize

__all__ = ["Proposal", "propose"]


@dataclass
class Proposal:
    """A `[sources]` entry proposed for a listing page, with what it was read from."""

    url: str
    item: str
    title: str
    link: str
    teasers: list[Teaser]
    summary: str | None = None
    published: tuple[str, str | None] | None = None  # (css, attr)
    results: str | None = None
    results_value: ResultsCount | None = None
    next: str | None = None
    next_url: str | None = None
    page_url: str | None = None
    page_url_alt: str | None = None  # the numbered links' template, when `next` is chosen
    notes: list[str] = field(default_factory=list)
    score: float = 0.0

    def select(self) -> dict[str, object]:
        """The `[sources.select]` table, as the config reads it."""
        table: dict[str, object] = {"item": self.item, "title": self.title, "link": self.link}
        if self.summary:
            table["summary"] = self.summary
        if self.published is not None:
            css, attr = self.published
            table["published"] = {"css": css, "attr": attr} if attr else css
        if self.results:
            table["results"] = self.results
        if self.next:
            table["next"] = self.next
        return table


def _item_selector(tree: LexborHTMLParser, candidate: Candidate) -> tuple[str, list[Teaser]] | None:
    found: list[tuple[str, list[Teaser]]] = []
    for teasers in candidate.variants or [candidate.teasers]:
        selector = group_selector(tree, [t.node for t in teasers])
        if selector is not None:
            found.append((selector, teasers))
    if not found:
        return None
    return min(found, key=lambda pair: (len(pair[0]), pair[0]))


def _text(node: LexborNode) -> str:
    return text_of(node, 5000)


def _equal_text_ancestors(teasers: list[Teaser]) -> list[str]:
    """Tokens of the summary element's ancestors holding the same text (`div.excerpt > p`)."""
    out: list[str] = []
    for teaser in teasers:
        node = teaser.summary_node
        if node is None:
            continue
        for above in ancestors(node, teaser.node):
            if _text(above) != teaser.summary:
                break
            out.extend(tokens(above))
    return list(dict.fromkeys(out))


def propose(
    tree: LexborHTMLParser, page_url: str, candidate: Candidate, *, now: datetime | None = None
) -> Proposal | None:
    """The select table for `candidate` on this page, or None when no selector names its
    teasers exactly; relative dates are read against `now` (the fetch time)."""
    chosen = _item_selector(tree, candidate)
    if chosen is None:
        return None
    item, teasers = chosen
    nodes = [t.node for t in teasers]
    title = field_selector(nodes, [t.title_node for t in teasers], _text)
    if title is None:
        return None
    if all(t.title_node.mem_id == t.link_node.mem_id for t in teasers):
        link: str | None = title
    else:
        link = field_selector(nodes, [t.link_node for t in teasers], lambda n: href_of(n, page_url))
    if link is None:
        return None
    proposal = Proposal(url=page_url, item=item, title=title, link=link, teasers=teasers)
    proposal.score = candidate.score
    proposal.notes.extend(candidate.notes)
    _published(proposal, nodes, now)
    _summary(proposal, nodes)
    skip = {t.node.mem_id for t in teasers}
    _results(proposal, tree, skip)
    _pagination(proposal, tree, skip)
    return proposal


def _published(proposal: Proposal, nodes: list[LexborNode], now: datetime | None) -> None:
    teasers = proposal.teasers
    dated = [t for t in teasers if t.date_node is not None]
    if len(dated) * 2 < len(teasers):
        proposal.notes.append("no date found in most teasers: `published` left out")
        return
    by_attr = sum(t.date_attr == "datetime" for t in dated) * 2 >= len(dated)
    targets = [t.date_node if (t.date_attr == "datetime") == by_attr else None for t in teasers]
    if by_attr:
        css = field_selector(
            nodes, targets, lambda n: parse_date(n.attributes.get("datetime") or "")
        )
        attr: str | None = "datetime"
    else:

        def as_date(node: LexborNode) -> datetime | None:
            return parse_date(text_of(node, 200), now=now)

        css = field_selector(nodes, targets, as_date)
        attr = None
    if css is None:
        proposal.notes.append("the dates found have no common selector: `published` left out")
        return
    proposal.published = (css, attr)
    if len(dated) < len(teasers):
        proposal.notes.append(f"{len(teasers) - len(dated)} teaser(s) show no date")


def _summary(proposal: Proposal, nodes: list[LexborNode]) -> None:
    teasers = proposal.teasers
    with_text = [t for t in teasers if t.summary_node is not None]
    if len(with_text) * 2 < len(teasers):
        return
    css = field_selector(
        nodes,
        [t.summary_node for t in teasers],
        _text,
        extra=_equal_text_ancestors(with_text),
    )
    if css is None:
        proposal.notes.append("the teaser texts have no common selector: `summary` left out")
        return
    proposal.summary = css


def _outside(node: LexborNode, skip: set[int]) -> bool:
    return node.mem_id not in skip and not any(a.mem_id in skip for a in ancestors(node))


_COUNTER_HINT_RE = re.compile(r"\d\s*(?:of|из|/)\s*\d", re.IGNORECASE)


def _results(proposal: Proposal, tree: LexborHTMLParser, skip: set[int]) -> None:
    body = tree.body
    if body is None or not _COUNTER_HINT_RE.search(text_of(body, 10**7)):
        return
    best: tuple[int, LexborNode, ResultsCount] | None = None
    for node in elements(body):
        text = text_of(node, 201)
        if len(text) > 200 or not _COUNTER_HINT_RE.search(text):
            continue
        value = parse_results(text)
        if value is None or not _outside(node, skip):
            continue
        if best is None or len(text) <= best[0]:
            best = (len(text), node, value)
    if best is None:
        return
    _, node, value = best
    css = page_selector(tree, node, lambda n: parse_results(text_of(n, 2000)))
    if css is None:
        proposal.notes.append(f"a counter reads {text_of(node, 80)!r} but no selector names it")
        return
    proposal.results, proposal.results_value = css, value


_NEXT_TEXT_RE = re.compile(
    r"^(?:next(?: page| posts?| articles?| stories)?|older(?: posts| entries| articles| news)?|"
    r"[»›→>]|>>)\s*[»›→>]*$",
    re.IGNORECASE,
)
_MORE_TEXT_RE = re.compile(
    r"^(?:more(?: stories| news| articles| posts)?|load more|show more|see more)\s*[»›→>]*$",
    re.IGNORECASE,
)
_NEXT_WORDS = ("Next", "Older", "More", "»", "›", "→")


def _next_candidates(
    tree: LexborHTMLParser, page_url: str, skip: set[int], last_teaser: LexborNode
) -> list[LexborNode]:
    """Links that may lead to page 2, best first: by kind (rel=next, aria-label, a "Next"
    text, a "More" text, a class), then those after the last teaser (pagination sits below
    the list; a menu's "More" above it), then in document order."""
    here = canonicalize(page_url)
    after = _after(tree, last_teaser)
    ranked: list[tuple[int, int, int, LexborNode]] = []
    for index, anchor in enumerate(tree.css("a[href], link[rel~=next]")):
        url = href_of(anchor, page_url)
        if url is None or url == here or not same_site(url, page_url):
            continue
        if not _outside(anchor, skip):
            continue
        rel = (anchor.attributes.get("rel") or "").lower().split()
        label = (anchor.attributes.get("aria-label") or "").lower()
        text = text_of(anchor, 60).strip(" \u00a0")
        names = " ".join(classes(anchor)).lower()
        if "next" in rel:
            rank = 0 if anchor.tag == "a" else 1
        elif "next" in label:
            rank = 2
        elif _NEXT_TEXT_RE.match(text):
            rank = 3
        elif _MORE_TEXT_RE.match(text):
            rank = 4
        elif re.search(r"(^|[-_ ])next($|[-_ ])", names):
            rank = 5
        else:
            continue
        ranked.append((rank, 0 if anchor.mem_id in after else 1, index, anchor))
    return [entry[3] for entry in sorted(ranked, key=lambda r: r[:3])]


def _after(tree: LexborHTMLParser, node: LexborNode) -> set[int]:
    """The elements that come after `node` (and outside it) in document order."""
    out: set[int] = set()
    root = tree.root
    if root is None:
        return out
    inside = {node.mem_id}
    passed = False
    for element in elements(root):
        if element.mem_id == node.mem_id:
            passed = True
            continue
        if passed:
            parent = element.parent
            if parent is not None and parent.mem_id in inside:
                inside.add(element.mem_id)
            else:
                out.add(element.mem_id)
    return out


def _contains(anchor: LexborNode) -> list[str]:
    """`:lexbor-contains(...)` selectors for a link named by its text only."""
    text = text_of(anchor, 60)
    out = []
    for word in _NEXT_WORDS:
        if word.lower() in text.lower():
            out.append(f'a:lexbor-contains("{word}" i)')
    return out


def _pagination(proposal: Proposal, tree: LexborHTMLParser, skip: set[int]) -> None:
    page_url = proposal.url
    template = _page_template(tree, page_url, skip)
    for anchor in _next_candidates(tree, page_url, skip, proposal.teasers[-1].node):
        url = href_of(anchor, page_url)
        css = page_selector(tree, anchor, lambda n: href_of(n, page_url), extra=_contains(anchor))
        if css is not None and url is not None:
            proposal.next, proposal.next_url = css, url
            proposal.page_url_alt = template
            return
    if template is not None:
        proposal.page_url = template
        return
    proposal.notes.append("no next link and no numbered page links: only this page will be read")


def _page_template(tree: LexborHTMLParser, page_url: str, skip: set[int]) -> str | None:
    numbered: dict[int, str] = {}
    for anchor in tree.css("a[href]"):
        text = text_of(anchor, 12).strip()
        if not text.isdigit() or not 2 <= int(text) <= 100_000 or not _outside(anchor, skip):
            continue
        url = href_of(anchor, page_url)
        if url is None or not same_site(url, page_url) or "{" in url or "}" in url:
            continue
        numbered.setdefault(int(text), url)
    for number, url in sorted(numbered.items()):
        for match in reversed(list(re.finditer(rf"(?<!\d){number}(?!\d)", url))):
            template = url[: match.start()] + "{page}" + url[match.end() :]
            if all(canonicalize(template.format(page=n)) == other for n, other in numbered.items()):
                return template
        break  # the lowest number decides
    return None
