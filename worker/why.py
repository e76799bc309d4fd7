"""`worker why URL`: why an article was alerted, or why not, answered from the database.

The URL is canonicalised as the crawl does it (tracking parameters and fragments dropped, host
lower-cased, ...) and looked up in the spellings a site may use for the same page (http or
https, with or without `www.`, with or without a trailing slash). The answer: when and by which
source it was first seen, on which page of which pass; its stored title, summary and date; for
each watchlist of the current config whether it matches and why (or the source filter that
leaves it out) beside what was recorded when it was stored; and every delivery with its channel,
status, attempts and last error (channel URLs masked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from worker.config import Config
from worker.match import Explanation, explain_watchlists
from worker.store import Store
from worker.store.lookup import UrlRecord
from worker.urls import canonicalize

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/@]+@")


def spellings(url: str) -> list[str]:
    """The canonical URL first, then the variants a site may have stored for the same page."""
    canonical = canonicalize(url)
    if canonical is None:
        return []
    parts = urlsplit(canonical)
    schemes = [parts.scheme, "https" if parts.scheme == "http" else "http"]
    host = parts.netloc
    bare = host.removeprefix("www.")
    hosts = [host, bare if host != bare else f"www.{host}"]
    paths = [parts.path]
    if not parts.query and parts.path not in ("", "/"):
        paths.append(parts.path[:-1] if parts.path.endswith("/") else parts.path + "/")
    found: list[str] = []
    for scheme in schemes:
        for netloc in hosts:
            for path in paths:
                text = urlunsplit((scheme, netloc, path, parts.query, ""))
                if text not in found:
                    found.append(text)
    return found


def mask(text: str | None, config: Config) -> str | None:
    """An error text fit to show: the config's channel URLs and any `user:password@` masked."""
    if text is None:
        return None
    for name, urls in config.channels.items():
        for url in urls:
            if url and url in text:
                text = text.replace(url, f"<channel {name} URL>")
    return _USERINFO.sub(r"\1***@", text)


def _iso(value: datetime | None) -> str | None:
    # milliseconds: two passes a second apart (a fast site) must still be told apart
    return value.astimezone(UTC).isoformat(timespec="milliseconds") if value else None


@dataclass
class Answer:
    asked: str
    canonical: str | None
    record: UrlRecord | None
    watchlists: list[dict[str, Any]]
    closest: list[str]

    @property
    def seen(self) -> bool:
        return self.record is not None

    def to_json(self, config: Config) -> dict[str, Any]:
        data: dict[str, Any] = {"asked": self.asked, "canonical": self.canonical, "seen": self.seen}
        r = self.record
        if r is None:
            data["closest"] = self.closest
            return data
        data.update(
            url=r.url,
            title=r.title,
            summary=r.summary,
            published=_iso(r.published),
            first_seen=_iso(r.first_seen),
            source=r.source,
            listings=[
                {
                    "source": x.source,
                    "first_seen": _iso(x.first_seen),
                    "page": x.page,
                    "pass_started": _iso(x.pass_started),
                    "baseline": x.baseline,
                }
                for x in r.listings
            ],
            watchlists=self.watchlists,
            deliveries=[
                {
                    "watchlist": d.watchlist,
                    "channel": d.channel,
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_error": mask(d.last_error, config),
                    "created": _iso(d.created),
                    "sent_at": _iso(d.sent_at),
                    "next_attempt_at": _iso(d.next_attempt_at),
                }
                for d in r.deliveries
            ],
        )
        return data


def _watchlists(config: Config, record: UrlRecord) -> list[dict[str, Any]]:
    """Each watchlist's verdict now (config order), then those only the database remembers."""
    listed = [x.source for x in record.listings] or [record.source]
    recorded = {m.watchlist: m for m in record.matches}
    delivered = {d.watchlist for d in record.deliveries}
    silent = all(x.baseline for x in record.listings)
    explained: dict[str, Explanation] = {
        # asked of the Matcher (explain_watchlists builds one per watchlist), so that an
        # explanation never disagrees with what the matcher decides
        e.watchlist: e
        for e in explain_watchlists(config.watchlists, record.title, record.summary, record.body)
    }
    out: list[dict[str, Any]] = []
    for w in config.watchlists:
        e = explained[w.name]
        entry: dict[str, Any] = e.to_json()
        if w.sources is not None and not set(w.sources) & set(listed):
            entry.update(
                matched=False,
                failed="sources",
                reason=f"its sources ({', '.join(w.sources)}) leave out "
                f"{', '.join(sorted(set(listed)))}",
            )
        else:
            entry["failed"] = None if e.matched else ("exclude" if e.excluded_by else "keywords")
        entry["in_config"] = True
        entry.update(_history(w.name, recorded, delivered, silent, matched_now=entry["matched"]))
        out.append(entry)
    for name in sorted(recorded.keys() - {w.name for w in config.watchlists}):
        entry = {"watchlist": name, "matched": None, "keywords": [], "excluded_by": []}
        entry.update(reason="not in the current config", failed=None, in_config=False)
        entry.update(_history(name, recorded, delivered, silent, matched_now=False))
        out.append(entry)
    return out


def _history(
    name: str, recorded: dict[str, Any], delivered: set[str], silent: bool, *, matched_now: bool
) -> dict[str, Any]:
    """What the database says happened for one watchlist, and why no alert when none was sent."""
    m = recorded.get(name)
    result: dict[str, Any] = {
        "recorded": None
        if m is None
        else {"keywords": list(m.keywords), "matched_at": _iso(m.matched_at)},
        "alerted": name in delivered,
        "note": None,
    }
    if name in delivered:
        return result
    if m is not None and silent:
        result["note"] = (
            "matched when stored, but by the source's first pass, which stores silently "
            "(alert_backfill = false): no alert"
        )
    elif m is not None:
        result["note"] = "matched when stored; no delivery was queued"
    elif matched_now:
        result["note"] = (
            "matches now but did not when it was stored (the watchlist changed since, or "
            "did not cover its source then): no alert"
        )
    return result


def explain_url(config: Config, store: Store, url: str) -> Answer:
    candidates = spellings(url)
    record = store.lookup_url(candidates)
    canonical = candidates[0] if candidates else None
    if record is None:
        closest = store.closest_urls(canonical or url.strip())
        return Answer(url, canonical, None, [], closest)
    return Answer(url, canonical, record, _watchlists(config, record), [])


def render(answer: Answer, config: Config) -> str:
    """The text `worker why` prints."""
    data = answer.to_json(config)
    if not answer.seen:
        lines = [f"{answer.canonical or answer.asked}: never seen"]
        if data["closest"]:
            lines.append("closest stored URLs:")
            lines += [f"  {url}" for url in data["closest"]]
        return "\n".join(lines)
    spelled = "" if data["url"] == answer.asked.strip() else f"  (asked: {answer.asked})"
    lines = [
        f"{data['url']}{spelled}",
        f"  title:     {data['title']}",
        f"  published: {data['published'] or 'unknown'}",
        f"  summary:   {data['summary'] or '(none)'}",
        f"  first seen {data['first_seen']} by {data['source']}",
        "listed by:",
    ]
    for x in data["listings"]:
        page = f"page {x['page']}" if x["page"] is not None else "page unknown"
        started = f" of the pass started {x['pass_started']}" if x["pass_started"] else ""
        kind = " (the source's first pass: its baseline)" if x["baseline"] else ""
        lines.append(f"  {x['source']}: {page}{started}{kind}, first seen {x['first_seen']}")
    lines.append("watchlists:")
    for w in data["watchlists"]:
        verdict = "matched" if w["matched"] else "not matched"
        if w["matched"] is None:
            verdict = "gone"
        line = f"  {w['watchlist']}: {verdict}: {w['reason']}"
        if w["recorded"] is not None:
            kws = ", ".join(repr(k) for k in w["recorded"]["keywords"])
            line += f" [recorded when stored: {kws} at {w['recorded']['matched_at']}]"
        lines.append(line)
        if w["note"]:
            lines.append(f"    {w['note']}")
    lines.append("deliveries:" if data["deliveries"] else "deliveries: none")
    for d in data["deliveries"]:
        line = f"  {d['watchlist']} -> {d['channel']}: {d['status']}, {d['attempts']} attempt(s)"
        if d["sent_at"]:
            line += f", sent {d['sent_at']}"
        elif d["status"] == "pending":
            line += f", next try {d['next_attempt_at'] or 'now'}"
        if d["last_error"]:
            line += f"; last error: {d['last_error']}"
        lines.append(line)
    return "\n".join(lines)
