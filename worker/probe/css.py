"""The shortest CSS selector that names exactly the chosen elements.

Candidates are built from the simple selectors (`dom.tokens`: tag, id, classes, rel/itemprop/role)
the chosen elements share, alone, after one shared ancestor's (`A S`, `A > S` for the parent),
then after two (`A B S`); they are tried shortest first and the first that matches exactly wins.
"Exactly" is by element for the items (the set `tree.css(S)` is the set of items), by value for a
field (every match inside an item reads the same value as the chosen element, so the parser's
first match is right whatever the order), and by value for the counter and the next link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import TypeVar

from selectolax.lexbor import LexborHTMLParser, LexborNode

from worker.probe.dom import ancestors, tokens

__all__ = ["field_selector", "group_selector", "page_selector"]

V = TypeVar("V")

MAX_TRIES = 3000  # selectors tried for one field before giving up (each is one CSS query)
_USELESS = frozenset({"html", "body"})


def _common(sets: Iterable[list[str]]) -> list[str]:
    """The tokens every list holds, in the order of the first one."""
    lists = list(sets)
    if not lists:
        return []
    rest = [set(other) for other in lists[1:]]
    seen: set[str] = set()
    out = []
    for token in lists[0]:
        if token not in seen and all(token in other for other in rest):
            seen.add(token)
            out.append(token)
    return out


def _compounds(shared: list[str]) -> list[str]:
    """The shared tokens, and pairs of class tokens (`.a.b`, `tag.a.b`)."""
    out = list(shared)
    tag = shared[0] if shared and shared[0][:1].isalpha() else ""
    names = [t for t in shared if t.startswith(".")]
    for i, a in enumerate(names[:8]):
        for b in names[i + 1 : 8]:
            out.append(f"{a}{b}")
            if tag:
                out.append(f"{tag}{a}{b}")
    return out


def _by_length(candidates: Iterable[str]) -> list[str]:
    return sorted(set(candidates), key=lambda s: (len(s), s))


def _contexts(nodes: Sequence[LexborNode], stop: LexborNode | None = None) -> list[str]:
    """Tokens of the ancestors (below `stop`) that every node has at the same distance, and
    tokens of ancestors every node has somewhere (ids and classes, not bare tags)."""
    chains = [list(ancestors(node, stop)) for node in nodes]
    out: list[str] = []
    depth = min((len(c) for c in chains), default=0)
    for level in range(depth):
        out.extend(_common(tokens(chain[level]) for chain in chains))
    anywhere = _common([t for a in chain for t in tokens(a)] for chain in chains)
    out.extend(t for t in anywhere if not t[:1].isalpha())
    return [t for t in dict.fromkeys(out) if t not in _USELESS]


def _parents(nodes: Sequence[LexborNode]) -> list[str]:
    parents = [node.parent for node in nodes]
    if any(p is None for p in parents):
        return []
    return [t for t in _common(tokens(p) for p in parents if p is not None) if t not in _USELESS]


def _candidates(compounds: list[str], contexts: list[str], parents: list[str]) -> Iterable[str]:
    yield from _by_length(compounds)
    one = [f"{c} {s}" for c in contexts for s in compounds]
    one += [f"{p} > {s}" for p in parents for s in compounds]
    yield from _by_length(one)
    two = [
        f"{a} {b} {s}" for a in contexts[:12] for b in contexts[:12] if a != b for s in compounds
    ]
    yield from _by_length(two)


def _query(scope: LexborHTMLParser | LexborNode, selector: str) -> list[LexborNode] | None:
    """The matches, or None for a selector lexbor refuses."""
    try:
        return scope.css(selector)
    except Exception:  # selectolax raises SelectolaxError (no public base class)
        return None


def group_selector(tree: LexborHTMLParser, items: Sequence[LexborNode]) -> str | None:
    """The shortest selector whose matches on the page are exactly `items`."""
    want = {node.mem_id for node in items}
    compounds = _compounds(_common(tokens(node) for node in items))
    for selector in islice(_candidates(compounds, _contexts(items), _parents(items)), MAX_TRIES):
        found = _query(tree, selector)
        if (
            found is not None
            and len(found) == len(want)
            and {node.mem_id for node in found} == want
        ):
            return selector
    return None


def field_selector(
    items: Sequence[LexborNode],
    targets: Sequence[LexborNode | None],
    value: Callable[[LexborNode], V],
    *,
    extra: Sequence[str] = (),
) -> str | None:
    """The shortest selector that, inside every item with a target, matches only elements
    reading the target's value (and at least one)."""
    pairs = [(item, target) for item, target in zip(items, targets, strict=True) if target]
    if not pairs:
        return None
    expected = [value(target) for _, target in pairs]
    shared = _common(tokens(target) for _, target in pairs)
    compounds = _compounds(shared) + list(extra)
    chains = [
        [] if target.mem_id == item.mem_id else list(ancestors(target, item))
        for item, target in pairs
    ]
    contexts = [
        t
        for t in _common([t for a in chain for t in tokens(a)] for chain in chains)
        if t not in _USELESS
    ]
    for selector in islice(_candidates(compounds, contexts, []), MAX_TRIES):
        if _reads(pairs, expected, selector, value):
            return selector
    return None


def _reads(
    pairs: Sequence[tuple[LexborNode, LexborNode]],
    expected: Sequence[V],
    selector: str,
    value: Callable[[LexborNode], V],
) -> bool:
    for (item, _), want in zip(pairs, expected, strict=True):
        found = _query(item, selector)
        if not found or any(value(node) != want for node in found):
            return False
    return True


def page_selector(
    tree: LexborHTMLParser,
    target: LexborNode,
    value: Callable[[LexborNode], V],
    *,
    extra: Sequence[str] = (),
) -> str | None:
    """The shortest selector whose every match on the page reads the target's value."""
    want = value(target)
    compounds = _compounds(tokens(target)) + list(extra)
    contexts = [t for a in ancestors(target) for t in tokens(a) if t not in _USELESS]
    contexts = list(dict.fromkeys(contexts))
    parent = target.parent
    parents = [t for t in tokens(parent) if t not in _USELESS] if parent is not None else []
    for selector in islice(_candidates(compounds, contexts, parents), MAX_TRIES):
        found = _query(tree, selector)
        if found and all(value(node) == want for node in found):
            return selector
    return None
