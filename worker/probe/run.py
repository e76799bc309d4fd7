"""`probe(url)`: fetch a listing page, propose a source for it, verify the proposal.

The page is fetched with the worker's own `Fetcher` (deadline, retries, per-host delay, size
cap). The best candidates (`blocks.find_candidates`, at most `MAX_TRIED`) are turned into select
tables (`fields.propose`) and each is verified with the worker's own parser
(`worker.parse.parse_listing`), the way `worker once` will read it:

- on this page, the parser must read the teasers the probe saw (same links, same order);
- page 2, reached as the crawl will reach it (the next link the parser reads, else `page_url`
  with 2), must give items of the same shape (a title and a link each; dates and summaries when
  page 1 had them) and mostly other articles than page 1's: a list that comes out the same on
  every page is a sidebar or a carousel, not the results.

When page 2 cannot be read through the next link but the numbered page links give a `page_url`
template, the template is verified in its place. The first candidate that passes is kept; when none does, the best one is proposed with its
doubts (they are printed as comments).

Cost, measured on the local news site (one core): finding and deriving take 0.03 s on a page of
6 teasers (8 KB), 0.2 s on 50 (53 KB), 0.8 s on 200 (205 KB); the two fetches add their time.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import ValidationError

from worker.config import HttpConfig, SelectConfig
from worker.fetch import Fetcher, FetchError, NotFound, Page
from worker.models import ListingPage
from worker.parse import ParseError, parse_listing
from worker.parse.document import html_document
from worker.probe.blocks import find_candidates
from worker.probe.fields import Proposal, propose
from worker.probe.seen import describe_page
from worker.robots import Robots
from worker.urls import redact_url

__all__ = ["BadUrl", "ProbeResult", "probe", "source_name"]

log = logging.getLogger(__name__)

MAX_TRIED = 4  # candidates verified before giving up on a clean proposal (each may cost a fetch)


class BadUrl(ValueError):
    """The URL given is not an http(s) URL with a host."""


@dataclass
class ProbeResult:
    url: str
    name: str
    found: bool
    reason: str = ""  # when nothing was found: what the page looked like
    proposal: Proposal | None = None
    page1: ListingPage | None = None
    page2: ListingPage | None = None
    page2_url: str | None = None
    doubts: list[str] = field(default_factory=list)
    candidates: int = 0


def source_name(url: str) -> str:
    """A config name from the URL: host and path words, e.g. 'example.org-news-world'."""
    parts = urlsplit(url)
    host = (parts.hostname or "source").removeprefix("www.")
    words = [w for w in re.split(r"[^A-Za-z0-9]+", parts.path) if w and not w.isdigit()]
    for _key, value in parse_qsl(parts.query):  # the first query value in words: "?s=water"
        found = [w for w in re.split(r"[^A-Za-z0-9]+", value) if w and not w.isdigit()]
        if found:
            words += found
            break
    name = "-".join([host, *words])[:80].strip("-.")
    return name if re.match(r"^[A-Za-z0-9]", name) else f"s-{name}"


def check_url(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        target = httpx.URL(url.strip())
    except (ValueError, httpx.InvalidURL) as exc:
        raise BadUrl(f"not a URL: {url!r} ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or not target.host:
        raise BadUrl(f"not an http(s) URL: {url!r}")
    return url.strip()


async def probe(
    url: str,
    http: HttpConfig,
    *,
    name: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ProbeResult:
    """Probe `url`; raises BadUrl for a URL that is not http(s)."""
    url = check_url(url)
    result = ProbeResult(url=url, name=name or source_name(url), found=False)
    # a person runs probe once: robots.txt is obeyed but kept in memory only
    gate = Robots(http, transport=transport) if http.robots else None
    async with Fetcher(http, transport=transport, gate=gate) as fetcher:
        try:
            page = await fetcher.get_html(url)
            now = datetime.now(UTC)  # relative dates ("3 hours ago") are read against it
        except NotFound as exc:
            result.reason = f"the server answered {exc.reason}: an error, not a listing"
            return result
        except FetchError as exc:
            result.reason = f"could not fetch the page: {exc.reason}"
            return result
        try:
            tree = html_document(page.text, page.url)
        except ParseError as exc:
            result.reason = f"the page cannot be read: {exc}"
            return result
        scripts = len(tree.css("script"))
        tree.strip_tags(["script", "style", "noscript", "template"])  # never read as text
        candidates = find_candidates(tree, page.url, now=now)
        result.candidates = len(candidates)
        log.info("probe %s: %d candidate group(s)", redact_url(page.url), len(candidates))
        if not candidates:
            result.reason = f"it looks like {describe_page(tree, page.url, scripts=scripts)}"
            return result
        tried: list[tuple[Proposal, list[str], ListingPage | None, ListingPage | None, str]] = []
        for candidate in candidates[:MAX_TRIED]:
            proposal = propose(tree, page.url, candidate, now=now)
            if proposal is None:
                log.info("probe: no exact selector for a group of %d", len(candidate.teasers))
                continue
            proposal.url = url
            doubts, first, second, second_url = await _verify(proposal, page, fetcher, now)
            if doubts and proposal.next and proposal.page_url_alt:  # try the page numbers
                by_number = replace(
                    proposal, next=None, next_url=None, page_url=proposal.page_url_alt
                )
                again = await _verify(by_number, page, fetcher, now)
                if not again[0]:
                    log.info("probe: page 2 by the next link: %s; by number: verified", doubts)
                    proposal, (doubts, first, second, second_url) = by_number, again
            log.info(
                "probe: item %r (score %.1f): %s",
                proposal.item,
                proposal.score,
                "; ".join(doubts) or "verified",
            )
            tried.append((proposal, doubts, first, second, second_url))
            if not doubts:
                break
        if not tried:
            result.reason = (
                "it has repeated blocks of article links, but no CSS selector names them "
                "exactly: write the source block by hand"
            )
            return result
        proposal, doubts, first, second, second_url = next((t for t in tried if not t[1]), tried[0])
        result.found = True
        result.proposal = proposal
        result.page1, result.page2, result.page2_url = first, second, second_url or None
        result.doubts = [*proposal.notes, *doubts]
        return result


async def _verify(
    proposal: Proposal, page: Page, fetcher: Fetcher, now: datetime
) -> tuple[list[str], ListingPage | None, ListingPage | None, str]:
    """(doubts, page 1 as parsed, page 2 as parsed, page 2's URL); no doubts: verified."""
    doubts: list[str] = []
    try:
        select = SelectConfig.model_validate(proposal.select())
    except ValidationError as exc:  # a selector lexbor refuses: never proposed
        return [f"the proposal is not a valid config: {exc.errors()[0]['msg']}"], None, None, ""
    try:
        first = parse_listing(page.text, page.url, select, now=now)
    except ParseError as exc:
        return [f"the worker's parser cannot read this page with it: {exc}"], None, None, ""
    seen = list(dict.fromkeys(t.url for t in proposal.teasers))
    got = [item.url for item in first.items]
    if got != seen:
        doubts.append(f"the parser reads {len(got)} item(s) here, the probe saw {len(seen)}")
    dated = sum(t.published is not None for t in proposal.teasers)
    if proposal.published and sum(i.published is not None for i in first.items) < dated:
        doubts.append("the parser reads fewer dates than the probe saw")

    if proposal.next:
        second_url = first.next_url or ""
        if not second_url:
            doubts.append("the parser reads no next link on this page")
    elif proposal.page_url:
        second_url = proposal.page_url.format(page=2)
    else:
        return doubts, first, None, ""
    if not second_url:
        return doubts, first, None, ""
    try:
        page2 = await fetcher.get_html(second_url)
        second = parse_listing(page2.text, page2.url, select, now=now)
    except NotFound:
        doubts.append(f"page 2 ({second_url}) was not found")
        return doubts, first, None, second_url
    except (FetchError, ParseError) as exc:
        doubts.append(f"page 2 ({second_url}) cannot be read: {exc}")
        return doubts, first, None, second_url
    if not second.items:
        doubts.append(f"page 2 ({second_url}) has no items")
        return doubts, first, second, second_url
    overlap = len(set(got) & {i.url for i in second.items})
    if overlap * 2 > len(second.items):
        doubts.append(
            f"page 2 lists {overlap} of page 1's {len(got)} articles: the pagination or the "
            "items are not the results"
        )
    if proposal.published and not any(i.published for i in second.items):
        doubts.append("no item of page 2 has a date")
    if proposal.summary and not any(i.summary for i in second.items):
        doubts.append("no item of page 2 has a summary")
    return doubts, first, second, second_url
