"""The query language: the table of tests/cases/query.toml (every operator, precedence, scopes,
NEAR at n and n+1, phrases, prefixes, Unicode, word forms, malformed queries), the config's
messages, and the Matcher's index checked against a direct evaluation of random queries."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Any

import pytest

from worker.config import ConfigError, WatchlistConfig, parse_config
from worker.match import Matcher, QueryError, parse_query, snippet, stem, words
from worker.match.query import And, Near, Node, Not, Or, Term

TABLE = tomllib.loads((Path(__file__).parent / "cases" / "query.toml").read_text("utf-8"))
CASES: list[dict[str, Any]] = TABLE["case"]
ERRORS: list[dict[str, Any]] = TABLE["error"]


def watchlist(query: str, *, stem: bool = False, name: str = "w", **extra: Any) -> WatchlistConfig:
    return WatchlistConfig(name=name, query=query, stem=stem, channels=["c"], **extra)


def article(case: dict[str, Any]) -> dict[str, str]:
    return {k: case[k] for k in ("title", "summary", "body") if k in case}


def test_the_table_covers_what_it_must() -> None:
    ids = [c["id"] for c in CASES + ERRORS]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    topics = ("term", "prefix", "phrase", "and", "or", "not", "precedence", "near", "field")
    for topic in (*topics, "unicode", "stem"):
        cases = [c for c in CASES if c["id"].startswith(topic + ":")]
        assert any(c["match"] for c in cases) and any(not c["match"] for c in cases), topic
    assert len(ERRORS) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_query_table(case: dict[str, Any]) -> None:
    matcher = Matcher([watchlist(case["query"], stem=case.get("stem", False))])
    expected = {"w": tuple(case["matched"])} if case["match"] else {}
    assert matcher.match_fields(article(case)) == expected
    if "body" not in case:  # the two-field entry point agrees
        assert matcher.match(case["title"], case.get("summary", "")) == expected


@pytest.mark.parametrize("case", ERRORS, ids=[c["id"] for c in ERRORS])
def test_malformed_query_message(case: dict[str, Any]) -> None:
    with pytest.raises(QueryError) as info:
        parse_query(case["query"])
    assert str(info.value) == case["message"]


def config_text(query: str) -> str:
    return (
        '[channels]\nc = "console://"\n'
        '[[watchlists]]\nname = "ok"\nkeywords = ["rail"]\nchannels = ["c"]\n'
        f'[[watchlists]]\nname = "bad"\nquery = {tomllib_string(query)}\nchannels = ["c"]\n'
    )


def tomllib_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@pytest.mark.parametrize("case", ERRORS, ids=[c["id"] for c in ERRORS])
def test_config_refuses_a_malformed_query_naming_the_key(case: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_text(case["query"]), "w.toml", env={})
    assert info.value.problems == [f"watchlists[1].query: {case['message'].strip()}"]


def test_a_watchlist_has_keywords_or_query_not_both() -> None:
    both = config_text("rail").replace('query = "rail"', 'query = "rail"\nkeywords = ["x"]')
    with pytest.raises(ConfigError) as info:
        parse_config(both, "w.toml", env={})
    assert info.value.problems == ["watchlists[1]: give either `keywords` or `query`, not both"]
    neither = config_text("rail").replace('query = "rail"\n', "")
    with pytest.raises(ConfigError) as info:
        parse_config(neither, "w.toml", env={})
    assert info.value.problems == [
        "watchlists[1]: needs `keywords` (a list of terms) or `query` (a search expression)"
    ]


def test_exclude_works_with_a_query() -> None:
    matcher = Matcher([watchlist("rail* OR water", exclude=["opinion", '"press release"'])])
    assert matcher.match("Railways", "") == {"w": ("rail*",)}
    assert matcher.match("Railways opinion", "") == {}
    assert matcher.match("Water: a press release", "") == {}


def test_stem_applies_to_keywords_too() -> None:
    config = WatchlistConfig(name="w", keywords=["sanction"], stem=True, channels=["c"])
    assert Matcher([config]).match("Banks sanctioned", "") == {"w": ("sanction",)}


def test_watchlists_sharing_terms_match_independently() -> None:
    matcher = Matcher(
        [
            watchlist("rail AND water", name="both"),
            watchlist("rail -water", name="rail-only"),
            watchlist("sanction", name="exact"),
            watchlist("sanction", name="forms", stem=True),
        ]
    )
    assert matcher.match("Rail and water", "") == {"both": ("rail", "water")}
    assert matcher.match("Rail", "sanctions") == {"rail-only": ("rail",), "forms": ("sanction",)}
    assert matcher.match("A sanction", "") == {"exact": ("sanction",), "forms": ("sanction",)}


def test_parsing_is_cached_by_text() -> None:
    assert parse_query("rail AND (water OR gas)") is parse_query("rail AND (water OR gas)")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    with pytest.raises(QueryError, match="more than 50 nested groups or NOTs"):
        parse_query("(" * 60 + "rail" + ")" * 60)
    with pytest.raises(QueryError, match="more than 50 nested groups or NOTs"):
        parse_query("rail " + "-" * 2000 + "opinion")
    with pytest.raises(QueryError, match="longer than 5000 characters"):
        parse_query("rail " * 2000)


# --- snippets ----------------------------------------------------------------------------------


def test_snippet_around_the_first_matched_word() -> None:
    body = "Intro words. " * 20 + "The new sanctions hit Kazakh banks. " + "More text here. " * 20
    cut = snippet(body, ["sanctions"])
    assert cut is not None and "sanctions hit Kazakh banks" in cut
    assert cut.startswith("…") and cut.endswith("…") and len(cut) <= 170
    assert snippet("No match at all", ["sanction"]) is None
    assert snippet("Railways grow", ["rail*"]) == "Railways grow"


def test_snippet_finds_the_forms_a_stemmed_watchlist_matched() -> None:
    assert snippet("Banks were sanctioned.", ["sanction"]) == "Banks were sanctioned."
    assert snippet("Банки под санкциями.", ["санкции"]) == "Банки под санкциями."
    assert snippet("A bird sanctuary.", ["sanction"]) is None


def test_snippet_finds_a_phrase_across_punctuation_and_folds_the_text() -> None:
    assert snippet("Not Belt. The Belt-and-Road plan", ['"Belt and Road"']) == (
        "Not Belt. The Belt-and-Road plan"
    )
    assert snippet("Belt and the Road", ['"Belt and Road"']) is None
    assert snippet("In Türkiye", ["Turkiye"]) == "In Türkiye"


def test_snippet_of_a_near_is_at_either_side_never_at_its_distance() -> None:
    near = "Kazakhstan NEAR/5 rail*"
    assert snippet("In 5 years: railways", [near]) == "In 5 years: railways"
    assert snippet("Only 5 of them", [near]) is None
    assert snippet("title and body here", ["summary:gas"]) is None  # a field is no word


# --- the index against a direct evaluation -------------------------------------------------------

VOCAB = (
    "rail railway railways trail road belt and the of kazakhstan türkiye turkiye sanction "
    "sanctions sanctioned sanctuary санкции санкциями газ кыргызстан water opinion press"
).split()


def occurrences(term: Term, seq: list[str], stemmed: bool) -> list[int]:
    n = len(term.words)
    out = []
    for i in range(len(seq) - n + 1):
        ok = True
        for k, want in enumerate(term.words):
            got = seq[i + k]
            if term.prefix and k == n - 1:
                ok = got.startswith(want)
            elif stemmed:
                ok = stem(got) == stem(want)
            else:
                ok = got == want
            if not ok:
                break
        if ok:
            out.append(i)
    return out


def evaluate(node: Node, fields: dict[str, list[str]], stemmed: bool) -> bool:
    """The query's meaning, read straight off the tree: slow and obvious."""
    if isinstance(node, Term | Near):
        for name, seq in fields.items():
            if node.fields is not None and name not in node.fields:
                continue
            if isinstance(node, Term):
                if occurrences(node, seq, stemmed):
                    return True
                continue
            a, b = node.left, node.right
            for i in occurrences(a, seq, stemmed):
                for j in occurrences(b, seq, stemmed):
                    la, lb = len(a.words), len(b.words)
                    if (i + la <= j and j - i - la <= node.distance) or (
                        j + lb <= i and i - j - lb <= node.distance
                    ):
                        return True
        return False
    if isinstance(node, Not):
        return not evaluate(node.child, fields, stemmed)
    if isinstance(node, And):
        return all(evaluate(c, fields, stemmed) for c in node.children)
    assert isinstance(node, Or)
    return any(evaluate(c, fields, stemmed) for c in node.children)


def random_term(rng: random.Random) -> str:
    text = " ".join(rng.choice(VOCAB) for _ in range(rng.choice([1, 1, 1, 2])))
    if rng.random() < 0.2:
        text = text[: max(1, len(text) - rng.randint(0, 3))].rstrip() + "*"
    if " " in text:
        text = f'"{text}"'
    if rng.random() < 0.2:
        text = rng.choice(["title:", "summary:", "body:"]) + text
    return text


def random_query(rng: random.Random, depth: int = 0) -> str:
    roll = rng.random()
    if depth > 2 or roll < 0.35:
        return random_term(rng)
    if roll < 0.45:
        return f"{random_term(rng).split(':')[-1]} NEAR/{rng.randint(1, 3)} {random_term(rng)}"
    if roll < 0.55:
        return "-" + random_query(rng, depth + 1)
    op = rng.choice([" AND ", " OR ", " "])
    return f"({random_query(rng, depth + 1)}{op}{random_query(rng, depth + 1)})"


def random_text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(VOCAB) + rng.choice(["", "", ",", "’s", " —"]) for _ in range(n))


def test_index_agrees_with_a_direct_evaluation() -> None:
    rng = random.Random(2026)
    checked = matched = 0
    for _ in range(120):
        configs = []
        for i in range(rng.randint(1, 6)):
            try:
                query = parse_query(random_query(rng))
            except QueryError:
                continue  # e.g. a query of NOTs only, or a NEAR across fields
            configs.append((watchlist(query.text, stem=rng.random() < 0.3, name=f"w{i}"), query))
        matcher = Matcher([c for c, _ in configs])
        for _ in range(15):
            fields = {"title": random_text(rng, rng.randint(1, 8))}
            if rng.random() < 0.8:
                fields["summary"] = random_text(rng, rng.randint(0, 20))
            if rng.random() < 0.4:
                fields["body"] = random_text(rng, rng.randint(0, 30))
            split = {k: words(v) for k, v in fields.items()}
            expected = {c.name for c, q in configs if evaluate(q.root, split, c.stem)}
            got = matcher.match_fields(fields)
            assert set(got) == expected, (fields, [c.query for c, _ in configs])
            checked += 1
            matched += bool(expected)
    assert checked > 1000 and 200 < matched < checked - 200


def test_any_text_parses_or_gives_a_query_error() -> None:
    """Random strings of the language's pieces: a tree or a QueryError, never another exception;
    and every tree compiles into a matcher that answers."""
    pieces = [
        "rail", "Rail*", "*", '"', "“", "»", "(", ")", " ", " ", "AND", "OR", "NOT", "-",
        "NEAR/2", "NEAR", "title:", "titel:", "body:", "é", "ё", ":", "10:30", "'", "and",
    ]  # fmt: skip
    rng = random.Random(99)
    parsed = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        try:
            query = parse_query(text)
        except QueryError as exc:
            assert str(exc) and "\n" not in str(exc)
            continue
        parsed += 1
        Matcher([watchlist(query.text)]).match_fields({"title": "rail é", "body": "10 30"})
    assert parsed > 200
