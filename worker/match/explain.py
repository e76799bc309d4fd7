"""Why a watchlist matches an article or does not (`worker why`).

Asked of the Matcher itself, one watchlist at a time, so an explanation can never disagree with
what `Matcher.match` decides: the watchlist as configured; without its `exclude` (did its terms
occur at all?); and its `exclude` terms as keywords of their own (which of them occurred?).
Slow and plain, for one article at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from worker.match.matcher import Matcher


@dataclass(frozen=True, slots=True)
class Explanation:
    """`keywords` are the terms that matched (as written), `excluded_by` the exclude terms that
    matched, `reason` says it in words: what matched, or which part failed."""

    watchlist: str
    matched: bool
    keywords: tuple[str, ...] = ()
    excluded_by: tuple[str, ...] = ()
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "watchlist": self.watchlist,
            "matched": self.matched,
            "keywords": list(self.keywords),
            "excluded_by": list(self.excluded_by),
            "reason": self.reason,
        }


def _terms(watchlist: Any, fields: dict[str, str], **change: Any) -> tuple[str, ...] | None:
    config = {
        "name": watchlist.name,
        "keywords": watchlist.keywords,
        "query": getattr(watchlist, "query", None),
        "stem": getattr(watchlist, "stem", False),
        "exclude": watchlist.exclude,
    } | change
    one = Matcher([SimpleNamespace(**config)])
    return one.match_fields(fields).get(watchlist.name)


def explain_one(watchlist: Any, title: str, summary: str, body: str | None = None) -> Explanation:
    query = getattr(watchlist, "query", None)
    # the fields as the pipeline matches them (pipeline.py): the body apart, when there is one
    fields = {"title": title, "summary": summary} | ({"body": body} if body else {})
    where = "the title, summary or text" if body else "the title or summary"
    found = _terms(watchlist, fields)
    if found is not None:
        shown = ", ".join(repr(k) for k in found)
        return Explanation(watchlist.name, True, found, reason=f"matched {shown}")
    hits = _terms(watchlist, fields, exclude=[]) if watchlist.exclude else None
    if hits is None:
        if query is not None:
            reason = f"its query does not match {where}: {query!r}"
        else:
            quoted = ", ".join(repr(k) for k in watchlist.keywords or ())
            reason = f"none of its keywords occurs in {where}: {quoted}"
        return Explanation(watchlist.name, False, reason=reason)
    excluded = _terms(watchlist, fields, keywords=watchlist.exclude, query=None, exclude=[])
    by = excluded or tuple(watchlist.exclude)
    return Explanation(
        watchlist.name,
        False,
        hits,
        by,
        reason=(
            f"matched {', '.join(repr(k) for k in hits)} but excluded by "
            f"{', '.join(repr(k) for k in by)}"
        ),
    )


def explain_watchlists(
    watchlists: Sequence[Any], title: str, summary: str, body: str | None = None
) -> list[Explanation]:
    """For each watchlist (in config order): whether it matches this title, summary and body,
    and why."""
    return [explain_one(w, title, summary, body) for w in watchlists]
