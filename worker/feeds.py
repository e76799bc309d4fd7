"""A feed of a watchlist's matches: Atom 1.0 and JSON Feed 1.1, the last 100, newest first.

Served by the daemon's health listener (`/feeds/WATCHLIST.atom`, `/feeds/WATCHLIST.json`) and
printed by `worker feed WATCHLIST`. Scraped text is untrusted: control characters (which XML
cannot hold) are dropped, XML is written by ElementTree (which escapes), and a link is only a
link when it is an http(s) URL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from worker.notify.render import SUMMARY_MAX, TITLE_MAX, clean, safe_link
from worker.store import MatchRow

FEED_SIZE = 100
FORMATS = {"atom": "application/atom+xml; charset=utf-8", "json": "application/feed+json"}
ATOM_NS = "http://www.w3.org/2005/Atom"


def _when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def _entry_id(row: MatchRow) -> str:
    return safe_link(row.url) or "urn:worker:article:" + clean(row.url, 500).replace(" ", "%20")


def atom_feed(watchlist: str, rows: Sequence[MatchRow], *, now: datetime | None = None) -> bytes:
    ET.register_namespace("", ATOM_NS)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
        if text is not None:
            element.text = text
        return element

    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    sub(feed, "id", f"urn:worker:feed:{watchlist}")
    sub(feed, "title", f"worker: {watchlist}")
    newest = rows[0].matched_at if rows else (now or datetime.now(UTC))
    sub(feed, "updated", _when(newest))
    sub(sub(feed, "author"), "name", "worker")
    for row in rows:
        entry = sub(feed, "entry")
        sub(entry, "id", _entry_id(row))
        sub(entry, "title", clean(row.title, TITLE_MAX) or "(untitled)")
        link = safe_link(row.url)
        if link:
            sub(entry, "link", href=link, rel="alternate")
        sub(entry, "updated", _when(row.matched_at))
        if row.published:
            sub(entry, "published", _when(row.published))
        sub(sub(entry, "author"), "name", clean(row.source, 200) or "unknown")
        if row.summary:
            sub(entry, "summary", clean(row.summary, SUMMARY_MAX))
        for keyword in row.keywords[:20]:
            sub(entry, "category", term=clean(keyword, 200))
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def json_feed(watchlist: str, rows: Sequence[MatchRow]) -> bytes:
    items: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {
            "id": _entry_id(row),
            "title": clean(row.title, TITLE_MAX) or "(untitled)",
            "content_text": clean(row.summary, SUMMARY_MAX),
            "date_modified": _when(row.matched_at),
            "authors": [{"name": clean(row.source, 200) or "unknown"}],
            "tags": [clean(k, 200) for k in row.keywords[:20]],
        }
        link = safe_link(row.url)
        if link:
            item["url"] = link
        if row.published:
            item["date_published"] = _when(row.published)
        items.append(item)
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": f"worker: {watchlist}",
        "items": items,
    }
    return json.dumps(feed, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"


def feed(watchlist: str, rows: Sequence[MatchRow], fmt: str) -> bytes:
    """The feed in `fmt` ("atom" or "json")."""
    if fmt == "atom":
        return atom_feed(watchlist, rows)
    if fmt == "json":
        return json_feed(watchlist, rows)
    raise ValueError(f"unknown feed format {fmt!r} (atom or json)")
