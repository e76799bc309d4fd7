"""The probe's answer as a `[[sources]]` TOML block (appendable to a config as it is) or data.

Scraped text only ever appears in comments, cleaned (no control characters, one line, capped);
every value is written as a TOML basic string with its quotes, backslashes and control
characters escaped. The block is parsed back (tomllib) and validated as a source by the config's
own model before it is printed, so what is printed is what `worker check` accepts.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from worker.config import SourceConfig
from worker.parse import clean_text
from worker.probe.run import ProbeResult

__all__ = ["to_data", "to_toml"]

SHOWN_ITEMS = 3
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _string(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _CONTROL_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'


def _value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_string(str(v))}" for k, v in value.items()) + " }"
    return _string(str(value))


def _comment(text: str, limit: int = 150) -> str:
    return clean_text(_CONTROL_RE.sub(" ", text), limit)


def to_toml(result: ProbeResult) -> str:
    """The `[[sources]]` block, starting with a blank line (safe after a file without one)."""
    proposal = result.proposal
    assert proposal is not None
    lines = ["", f"# worker probe {_comment(result.url, 300)}"]
    first = result.page1
    count = len(first.items) if first is not None else len(proposal.teasers)
    how = "next link" if proposal.next else "page_url" if proposal.page_url else "no pagination"
    summary = f"# {count} item(s) on page 1"
    if result.page2 is not None:
        summary += f", {len(result.page2.items)} on page 2 ({how})"
    if proposal.results_value is not None:
        summary += f"; the counter says {proposal.results_value.last_page} page(s)"
    lines.append(summary)
    items = first.items if first is not None else ()
    if items:
        lines.append("# first items:")
        for item in items[:SHOWN_ITEMS]:
            when = item.published.date().isoformat() if item.published else "????-??-??"
            lines.append(f"#   {when}  {_comment(item.title, 100)}")
            lines.append(f"#               {_comment(item.url, 200)}")
    if result.doubts:
        lines.append("# unsure:")
        lines.extend(f"#   - {_comment(doubt, 200)}" for doubt in result.doubts)
    lines.append("[[sources]]")
    lines.append(f"name = {_string(result.name)}")
    lines.append(f"url = {_string(result.url)}")
    if proposal.page_url:
        lines.append(f"page_url = {_string(proposal.page_url)}")
    lines.append('# every = "15m"              # the default; or cron = "*/15 * * * *"')
    lines.append("")
    lines.append("[sources.select]")
    lines.extend(f"{key} = {_value(value)}" for key, value in proposal.select().items())
    text = "\n".join(lines) + "\n"
    _check(text)
    return text


def _check(text: str) -> None:
    """The block parses as TOML and is a valid source (a bug otherwise: never printed)."""
    data = tomllib.loads(text)
    SourceConfig.model_validate(data["sources"][0])


def to_data(result: ProbeResult) -> dict[str, Any]:
    """The same as data (`worker probe --json`)."""
    if not result.found or result.proposal is None:
        return {"found": False, "url": result.url, "reason": result.reason}
    proposal = result.proposal
    source: dict[str, Any] = {"name": result.name, "url": result.url}
    if proposal.page_url:
        source["page_url"] = proposal.page_url
    source["select"] = proposal.select()
    items = result.page1.items if result.page1 is not None else ()
    return {
        "found": True,
        "url": result.url,
        "source": source,
        "items": [
            {
                "url": i.url,
                "title": i.title,
                "summary": i.summary,
                "published": i.published.isoformat() if i.published else None,
            }
            for i in items
        ],
        "page2": {
            "url": result.page2_url,
            "items": len(result.page2.items) if result.page2 is not None else None,
        },
        "results": (
            {
                "first": proposal.results_value.first,
                "last": proposal.results_value.last,
                "total": proposal.results_value.total,
            }
            if proposal.results_value is not None
            else None
        ),
        "score": round(proposal.score, 1),
        "candidates": result.candidates,
        "doubts": result.doubts,
        "toml": to_toml(result),
    }
