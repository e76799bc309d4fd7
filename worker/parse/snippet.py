"""A short snippet of an article's body around a watchlist keyword (for an alert whose match is
in the body only). Plain text: the notify stage escapes it as it escapes the summary."""

from __future__ import annotations

import re

__all__ = ["SNIPPET_CHARS", "body_snippet"]

SNIPPET_CHARS = 240  # characters shown around the match


def _pattern(keyword: str) -> re.Pattern[str] | None:
    words = re.findall(r"\w+", keyword)
    if not words:
        return None
    tail = r"\w*" if keyword.rstrip().rstrip('"').endswith("*") else r"\b"
    return re.compile(r"\b" + r"\W+".join(map(re.escape, words)) + tail, re.IGNORECASE)


def body_snippet(body: str | None, keywords: tuple[str, ...], listing_text: str) -> str | None:
    """ "… text around the first keyword …" from `body`, when no keyword occurs in
    `listing_text` (the title and summary) but one does in the body; else None."""
    if not body or not keywords:
        return None
    patterns = [p for p in map(_pattern, keywords[:20]) if p is not None]
    if any(p.search(listing_text) for p in patterns):
        return None
    found = [m for m in (p.search(body) for p in patterns) if m is not None]
    if not found:
        return None
    match = min(found, key=lambda m: m.start())
    half = (SNIPPET_CHARS - (match.end() - match.start())) // 2
    start, end = max(0, match.start() - half), min(len(body), match.end() + half)
    if start > 0:
        space = body.find(" ", start, match.start())
        start = space + 1 if space != -1 else start
    if end < len(body):
        space = body.rfind(" ", match.end(), end)
        end = space if space != -1 else end
    text = body[start:end].strip()
    return ("… " if start > 0 else "") + text + (" …" if end < len(body) else "")
