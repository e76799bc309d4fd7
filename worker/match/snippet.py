"""The words of a text around a matched term: what an alert quotes for a match in the body.

`snippet(text, terms)` finds the first place in `text` where one of `terms` occurs (the terms
as an alert reports them: `rail*`, `"Belt and Road"`, `sanction`, `Kazakhstan NEAR/5 rail*`)
and cuts the text around it. A term is read as the matcher reads it: folded words in sequence,
whatever punctuation lies between them, a trailing `*` a prefix; a NEAR occurs where either of
its sides does. A word also matches by its Snowball stem, so the form a `stem = true` watchlist
matched ("sanctioned" for `sanction`) is found; the report does not say whether the watchlist
stems, and for a snippet a nearby form is as good a quote.
"""

from __future__ import annotations

import functools
import re

from worker.match.query import Near, Node, Not, QueryError, Term, parse_query
from worker.match.text import fold, parse_keyword, stem

__all__ = ["SNIPPET_WIDTH", "occurs", "snippet"]

SNIPPET_WIDTH = 160  # characters of text around the first matched word
_WORD_RE = re.compile(r"\w+")

_Pattern = tuple[tuple[str, ...], bool]  # folded words, the last one a prefix


def _leaves(node: Node) -> list[Term]:
    if isinstance(node, Term):
        return [node]
    if isinstance(node, Near):
        return [node.left, node.right]
    if isinstance(node, Not):
        return _leaves(node.child)
    return [t for child in node.children for t in _leaves(child)]


@functools.lru_cache(maxsize=4096)
def _patterns(term: str) -> tuple[_Pattern, ...]:
    """The word sequences a reported term stands for: one for a term or phrase, two for a NEAR
    (a keyword that is no query, such as `AND`, as a keyword)."""
    try:
        leaves = _leaves(parse_query(term).root)
    except QueryError:
        try:
            keyword = parse_keyword(term)
        except ValueError:
            return ()
        return ((keyword.words, keyword.prefix),)
    return tuple((leaf.words, leaf.prefix) for leaf in leaves)


def _first(text: str, terms: tuple[str, ...] | list[str]) -> re.Match[str] | None:
    """The first word of `text` at which one of `terms` occurs (its first word)."""
    patterns = [p for term in terms for p in _patterns(term)]
    if not patterns:
        return None
    found = list(_WORD_RE.finditer(text))
    folded = [fold(m.group()) for m in found]
    stems: dict[int, str] = {}

    def same(i: int, want: str, prefix: bool) -> bool:
        got = folded[i]
        if prefix:
            return got.startswith(want)
        if got == want:
            return True
        if i not in stems:
            stems[i] = stem(got)
        return stems[i] == stem(want)

    for i in range(len(found)):
        for words, prefix in patterns:
            n = len(words)
            if i + n <= len(found) and all(
                same(i + k, word, prefix and k == n - 1) for k, word in enumerate(words)
            ):
                return found[i]
    return None


def occurs(text: str, terms: tuple[str, ...] | list[str]) -> bool:
    """Whether one of `terms` occurs in `text` (as `snippet` finds them)."""
    return _first(text, terms) is not None


def snippet(
    text: str, terms: tuple[str, ...] | list[str], *, width: int = SNIPPET_WIDTH
) -> str | None:
    """About `width` characters of `text` around the first place one of `terms` occurs, cut at
    spaces, "…" where text was left out; None when none occurs. Raw text: the caller escapes
    it for its format."""
    match = _first(text, terms)
    if match is None:
        return None
    start = max(0, match.start() - width // 3)
    if start:
        space = text.rfind(" ", 0, start + 1)
        start = space + 1 if space >= 0 and match.start() - space < width // 2 else start
    end = min(len(text), start + width)
    if end < len(text):
        space = text.rfind(" ", match.end(), end)
        end = space if space > 0 else end
    cut = " ".join(text[start:end].split())
    return ("…" if start else "") + cut + ("…" if end < len(text) else "")
