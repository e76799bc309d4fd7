"""`${VAR}` substitution that keeps a URL a URL.

A value put into the user-info part of a URL (`scheme://user:${PASSWORD}@host`) or into a query
value (`?to=${ADDRESS}`) is percent-encoded, so a password holding `@`, `:`, `/` or `#` does not
change where the host, path or fragment start. SQLAlchemy and apprise decode those parts again.
Elsewhere (host, path, plain strings) a value goes in as it is: a Telegram token in the host
position holds a `:` that must stay one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _encoded_spans(template: str) -> list[tuple[int, int]]:
    """Character ranges of `template` whose substituted values are percent-encoded."""
    scheme = _SCHEME_RE.match(template)
    if scheme is None:
        return []
    start = scheme.end()
    stops = [i for i in (template.find(c, start) for c in "/?#") if i >= 0]
    end = min(stops, default=len(template))
    spans = []
    at = template.rfind("@", start, end)
    if at >= 0:
        spans.append((start, at))  # user:password
    query = template.find("?", start)
    if query >= 0:
        fragment = template.find("#", query)
        stop = fragment if fragment >= 0 else len(template)
        for part in re.finditer(r"[^&]+", template[query + 1 : stop]):
            eq = part.group().find("=")
            if eq >= 0:  # the value after "name="
                spans.append((query + 1 + part.start() + eq + 1, query + 1 + part.end()))
    return spans


def substitute(template: str, lookup: Callable[[str], str | None]) -> str:
    """`template` with every `${VAR}` replaced by `lookup(VAR)` (None: replaced by nothing; the
    caller reports the missing variable), percent-encoded where it sits in a URL's user info or
    query value."""
    spans = _encoded_spans(template) if "://" in template else []

    def sub(match: re.Match[str]) -> str:
        value = lookup(match.group(1))
        if value is None:
            return ""
        if any(a <= match.start() < b for a, b in spans):
            return quote(value, safe="")
        return value

    return VAR_RE.sub(sub, template)
