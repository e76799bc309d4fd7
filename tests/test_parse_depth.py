"""The nesting-depth guard against lexbor's own tree: hostile markup that nests deep in lexbor
is counted deep (so it is refused), benign markup that lexbor keeps shallow is counted shallow.
Cases: tests/cases/depth.toml."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from selectolax.lexbor import LexborDocumentOptions, LexborHTMLParser

from worker.config import SelectConfig
from worker.parse import MAX_DEPTH, ParseError, parse_listing
from worker.parse.depth import nesting_depth

CASES = tomllib.loads((Path(__file__).parent / "cases" / "depth.toml").read_text("utf-8"))
SELECT = SelectConfig(item="article", title="h2 a", link="h2 a")  # type: ignore[arg-type]
N = 3000  # repeats compared with lexbor (its cost grows with depth: 3,000 is quick)


def markup(case: dict[str, Any], n: int) -> str:
    return case.get("prefix", "") + case["unit"] * n + case.get("suffix", "")


def lexbor_depth(html: str) -> int:
    """The deepest element in lexbor's tree (html = 1)."""
    tree = LexborHTMLParser(html, options=LexborDocumentOptions.WO_EVENTS)
    deepest = 0
    stack = [(tree.root, 1)] if tree.root is not None else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        child = node.child
        while child is not None:
            if child.tag and child.tag[0] != "-":
                stack.append((child, depth + 1))
            child = child.next
    return deepest


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


@pytest.mark.parametrize("case", CASES["deep"], ids=ids(CASES["deep"]))
def test_markup_lexbor_nests_deep_is_counted_at_least_a_third_as_deep(
    case: dict[str, Any],
) -> None:
    html = markup(case, N)
    real = lexbor_depth(html)
    assert real > N / 2, f"lexbor nests this only {real} deep: not a deep case"
    counted = nesting_depth(html, 10**9)
    assert counted >= real / 3, (counted, real)


@pytest.mark.parametrize("case", CASES["deep"], ids=ids(CASES["deep"]))
def test_200k_repeats_of_deep_markup_are_refused_within_5s(case: dict[str, Any]) -> None:
    html = "<html><body><main><article><h2><a href='/a'>A</a></h2></article></main>"
    html += markup(case, 200_000)
    started = time.perf_counter()
    with pytest.raises(ParseError, match=f"nests more than {MAX_DEPTH} elements"):
        parse_listing(html, "https://example.com/", SELECT)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("case", CASES["flat"], ids=ids(CASES["flat"]))
def test_markup_lexbor_keeps_shallow_is_not_counted_deep(case: dict[str, Any]) -> None:
    html = markup(case, N)
    real = lexbor_depth(html)
    assert real < 50, f"lexbor nests this {real} deep: not a flat case"
    assert nesting_depth(html, 10**9) <= 50
    assert nesting_depth(markup(case, 100_000), MAX_DEPTH) <= MAX_DEPTH


async def test_a_page_over_its_parse_budget_fails_with_the_budget_named() -> None:
    from worker.parse import parse_listing_async

    html = "<html><body><article><h2><a href='/a'>A</a></h2></article>" + "<p>x" * 200_000
    with pytest.raises(ParseError) as info:
        await parse_listing_async(html, "https://example.com/l", SELECT, budget=0.001)
    assert str(info.value) == (
        "page took longer than 0.001s to parse (hostile or broken markup) on https://example.com/l"
    )
    page = await parse_listing_async(html, "https://example.com/l", SELECT)  # within 30 s
    assert [i.title for i in page.items] == ["A"]
