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


UNITS = [
    "<div>", "</div>", "<span>", "</span>", "<p>", "</p>", "<b>", "</b>", "<i>", "</i>", "<a>",
    "</a>", "<svg>", "</svg>", "<math>", "<mi>", "<title>", "</title>", "<desc>", "<g>", "<g/>",
    "<x/>", "<br>", "<table>", "<td>", "<tr>", "</table>", "<li>", "<ul>", "<section>", "<!-->",
    "<!--", "-->", "<![CDATA[", "]]>", "<script>", "</script>", "<style>", "</style>",
    "<textarea>", "</textarea>", "<form>", "</form>", "</body>", "<object>", "<select>",
    "<option>", "<font color=r>", "<nobr>", "<button>", "<h1>", "<template>", "</template>",
    "<foreignObject>", "</x>", "<em>", "x", " ", "'", '"', "<div a='>'>", '<div a=">',
    "<annotation-xml encoding=text/html>", "<frameset>", "<noscript>", "<iframe>", "</iframe>",
    "<plaintext>",
]  # fmt: skip


def test_random_tag_soup_lexbor_nests_deep_is_never_counted_under_a_third() -> None:
    """400 repeats of 300 seeded random mixes of the constructs above: wherever lexbor nests
    deeper than 60, the scan counts at least a third of it (found by this: reconstruction of
    formatting elements, framesets, </p> in MathML, li after a heading)."""
    import random

    rng = random.Random(9)
    worst: list[tuple[float, int, int, str]] = []
    for _ in range(300):
        unit = "".join(rng.choice(UNITS) for _ in range(rng.randint(2, 8)))
        html = unit * 400
        real = lexbor_depth(html)
        if real > 60:
            counted = nesting_depth(html, 10**9)
            worst.append((counted / real, real, counted, unit))
    worst.sort()
    assert len(worst) > 20  # the mixes do nest
    assert worst[0][0] >= 1 / 3, worst[:5]


def test_a_hostile_page_after_the_first_fails_the_pass_instead_of_ending_the_listing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hostile_server: Any
) -> None:
    """Page 2 nests 5,000 elements: over the depth budget, which is a failure of the pass (exit
    1, the reason named), not "no items on page 2", the quiet end of a listing."""
    from tests.e2e import run_worker
    from tests.fixtures.hostile import LISTING_SELECT, answer, listing_html

    base = hostile_server.url("")
    page1 = listing_html(base + "/a", ["one", "two"]).replace(
        "</main>", f'</main><a class="next" href="{base}/list/2">Next</a>'
    )
    deep = "<!doctype html><html><body><main>" + "<div>" * 5000 + "</main></body></html>"
    hostile_server.add("/list/2", lambda _r: answer(body=deep))
    hostile_server.add("/list", lambda _r: answer(body=page1))
    config = tmp_path / "w.toml"
    config.write_text(
        f'database = "sqlite:///{tmp_path / "w.db"}"\n[http]\nmin_delay = 0\n'
        f'[channels]\nc = "console://"\n[[watchlists]]\nname = "rail"\nkeywords = ["rail"]\n'
        f'channels = ["c"]\n[[sources]]\nname = "deep"\nurl = "{base}/list"\n'
        f'{LISTING_SELECT}next = "a.next"\n',
        encoding="utf-8",
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 1, run
    assert "deep: FAILED after 1 page(s)" in run.out and "nests more than" in run.out
