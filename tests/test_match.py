"""Keyword matching: the rules table (tests/cases/match.toml), parse_keyword, fold/words, and the
Matcher's index checked against a brute-force reference on generated articles."""

from __future__ import annotations

import random
import threading
import tomllib
from pathlib import Path
from typing import Any

import pydantic
import pytest

from worker.config import WatchlistConfig
from worker.match import Keyword, Matcher, fold, parse_keyword, words
from worker.match import matcher as matcher_module
from worker.match import text as text_module

CASES = tomllib.loads((Path(__file__).parent / "cases" / "match.toml").read_text("utf-8"))["case"]


def watchlist(name: str, keywords: list[str], exclude: list[str] | None = None) -> WatchlistConfig:
    return WatchlistConfig(name=name, keywords=keywords, exclude=exclude or [], channels=["c"])


def test_the_table_covers_what_it_must() -> None:
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 50
    for topic in ("word", "prefix", "phrase", "exclude", "cyrillic", "diacritics", "apostrophe"):
        assert any(i.startswith(topic) for i in ids), topic
    assert any(not case.get("match", True) for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_rules_table(case: dict[str, Any]) -> None:
    if "watchlists" in case:
        configs = [
            watchlist(w["name"], w["keywords"], w.get("exclude")) for w in case["watchlists"]
        ]
        expected = {name: tuple(kws) for name, kws in case.get("expected", {}).items()}
    else:
        configs = [watchlist("w", case["keywords"], case.get("exclude"))]
        expected = {"w": tuple(case["matched"])} if case["match"] else {}
    result = Matcher(configs).match(case["title"], case.get("summary", ""))
    assert result == expected
    # watchlists come out in config order
    order = [c.name for c in configs]
    assert list(result) == [n for n in order if n in result]


# --- parse_keyword -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected_words", "prefix"),
    [
        ("rail", ("rail",), False),
        ("rail*", ("rail",), True),
        ("  Rail*  ", ("rail",), True),
        ('"Belt and Road"', ("belt", "and", "road"), False),
        ("Belt and Road", ("belt", "and", "road"), False),
        ('"high speed rail*"', ("high", "speed", "rail"), True),
        ('"high speed rail"*', ("high", "speed", "rail"), True),
        ("“Belt and Road”", ("belt", "and", "road"), False),
        ("Trans-Caspian", ("trans", "caspian"), False),
        ("Kyrgyzstan’s", ("kyrgyzstan", "s"), False),
        ("Türkiye", ("turkiye",), False),
        ("КЫРГЫЗСТАН*", ("кыргызстан",), True),
        ("5G", ("5g",), False),
    ],
)
def test_parse_keyword(text: str, expected_words: tuple[str, ...], prefix: bool) -> None:
    keyword = parse_keyword(text)
    assert keyword == Keyword(text=text, words=expected_words, prefix=prefix)


@pytest.mark.parametrize("text", ["", "   ", '""', "''", "*", "**", "!!", "-", '"*"', "’"])
def test_parse_keyword_without_words_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="at least one word of letters or digits"):
        parse_keyword(text)


@pytest.mark.parametrize("text", ["*rail", "ra*il", "rail**", "rail* road", '"rail*" road'])
def test_parse_keyword_star_only_at_the_end(text: str) -> None:
    with pytest.raises(ValueError, match=r"only allowed at the end of the last word"):
        parse_keyword(text)


@pytest.mark.parametrize("text", ["rail *", "rail !*", '"rail" *'])
def test_parse_keyword_star_must_touch_the_word(text: str) -> None:
    with pytest.raises(ValueError, match=r"must follow a word directly"):
        parse_keyword(text)


def test_config_rejects_a_bad_keyword_with_its_index() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        WatchlistConfig(name="w", keywords=["rail", "!!"], channels=["c"])
    message = str(info.value)
    assert "[1] '!!'" in message and "at least one word" in message
    with pytest.raises(pydantic.ValidationError, match="only allowed at the end"):
        WatchlistConfig(name="w", keywords=["rail"], exclude=["*opinion"], channels=["c"])


# --- fold and words --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Kyrgyzstan", "kyrgyzstan"),
        ("Türkiye", "turkiye"),
        ("Tu\u0308rkiye", "turkiye"),
        ("Almatý", "almaty"),
        ("ЁЛКА", "елка"),
        ("Йод", "иод"),
        ("Straße", "strasse"),
        ("İstanbul", "istanbul"),
        ("ﬁnance", "finance"),
        ("Қазақстан", "қазақстан"),
        ("Oʻzbekiston", "oʻzbekiston"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_words() -> None:
    assert words("Kyrgyzstan’s China-Kyrgyzstan-Uzbekistan rail, 5G (2025).") == [
        "kyrgyzstan",
        "s",
        "china",
        "kyrgyzstan",
        "uzbekistan",
        "rail",
        "5g",
        "2025",
    ]
    assert words("«Кыргызстан» — TÜRKİYE…") == ["кыргызстан", "turkiye"]
    assert words("snake_case stays one word") == ["snake_case", "stays", "one", "word"]
    assert words("") == []
    assert words(" — ’ … ") == []


def test_words_ascii_fast_path_agrees_with_the_regex() -> None:
    rng = random.Random(7)
    alphabet = [chr(c) for c in range(128)] + list("’‘“”–—…«»éЁßİ\u0301")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert words(text) == text_module._WORD_RE.findall(fold(text)), repr(text)


# --- the Matcher -----------------------------------------------------------------------------------


def test_matched_keywords_in_config_order_without_duplicates() -> None:
    matcher = Matcher(
        [
            watchlist(
                "w",
                [
                    "water",
                    "Belt and Road",
                    "rail*",
                    "RAILWAY",
                    "railway",
                    '"belt and road"',
                    "rail*",
                ],
            )
        ]
    )
    result = matcher.match("Railway and water", "Belt and Road, water and rails")
    assert result == {"w": ("water", "Belt and Road", "rail*", "RAILWAY")}


def test_no_entry_when_nothing_matches() -> None:
    matcher = Matcher([watchlist("a", ["rail"]), watchlist("b", ["water"], ["rail"])])
    assert matcher.match("Roads", "and bridges") == {}
    assert matcher.match("Rail and water", "") == {"a": ("rail",)}  # b excluded


def test_no_watchlists() -> None:
    assert Matcher([]).match("Anything at all", "really") == {}


def test_an_exclude_shared_with_another_watchlist_keyword() -> None:
    matcher = Matcher(
        [watchlist("opinions", ["opinion"]), watchlist("news", ["rail"], ["opinion"])]
    )
    assert matcher.match("Opinion: rail", "") == {"opinions": ("opinion",)}


def test_repeated_calls_give_the_same_answer() -> None:
    matcher = Matcher([watchlist("w", ["rail*", "Belt and Road"], ["opinion"])])
    for _ in range(3):
        assert matcher.match("Railways of the Belt and Road", "") == {
            "w": ("rail*", "Belt and Road")
        }
        assert matcher.match("Opinion: railways", "") == {}


# --- the index against a brute-force reference -------------------------------------------------


def reference(configs: list[WatchlistConfig], title: str, summary: str) -> dict[str, tuple]:
    """Every keyword tried at every position of each text separately: slow and obvious."""
    texts = [words(title), words(summary)]

    def occurs(keyword: Keyword) -> bool:
        n = len(keyword.words)
        for seq in texts:
            for i in range(len(seq) - n + 1):
                window = seq[i : i + n]
                if keyword.prefix:
                    if window[:-1] == list(keyword.words[:-1]) and window[-1].startswith(
                        keyword.words[-1]
                    ):
                        return True
                elif window == list(keyword.words):
                    return True
        return False

    result = {}
    for config in configs:
        seen: set[tuple] = set()
        found = []
        for text in config.keywords:
            keyword = parse_keyword(text)
            key = (keyword.words, keyword.prefix)
            if key not in seen and occurs(keyword):
                found.append(text)
            seen.add(key)
        if found and not any(occurs(parse_keyword(x)) for x in config.exclude):
            result[config.name] = tuple(found)
    return result


VOCAB = (
    "rail railway railways trail road belt and the of kyrgyzstan kazakhstan türkiye turkiye "
    "кыргызстан кыргызстана almaty almatý water watershed 5g 2025 high speed opinion press "
    "release sponsored central asia trans caspian"
).split()


def random_keyword(rng: random.Random) -> str:
    n = rng.choice([1, 1, 1, 2, 2, 3])
    text = " ".join(rng.choice(VOCAB) for _ in range(n))
    if rng.random() < 0.25:
        text = text[: max(1, len(text) - rng.randint(0, 3))].rstrip() + "*"
    if rng.random() < 0.3:
        text = text.upper()
    if n > 1 and rng.random() < 0.3:
        text = f'"{text}"'
    return text


def random_text(rng: random.Random, n: int) -> str:
    seps = [" ", " ", " ", "-", ", ", "’s ", " — "]
    out = ""
    for _ in range(n):
        word = rng.choice(VOCAB)
        out += (word.capitalize() if rng.random() < 0.3 else word) + rng.choice(seps)
    return out


def random_configs(rng: random.Random) -> list[WatchlistConfig]:
    configs = []
    for i in range(rng.randint(1, 6)):
        keywords = [random_keyword(rng) for _ in range(rng.randint(1, 6))]
        exclude = [random_keyword(rng) for _ in range(rng.choice([0, 0, 1, 2]))]
        configs.append(watchlist(f"w{i}", keywords, exclude))
    return configs


def test_index_agrees_with_brute_force() -> None:
    rng = random.Random(2025)
    matched = 0
    for _ in range(150):
        configs = random_configs(rng)
        matcher = Matcher(configs)
        for _ in range(20):
            title = random_text(rng, rng.randint(0, 8))
            summary = random_text(rng, rng.randint(0, 25))
            expected = reference(configs, title, summary)
            assert matcher.match(title, summary) == expected, (configs, title, summary)
            matched += bool(expected)
    assert 300 < matched < 2700  # the data exercise both outcomes


def test_word_cache_reset_keeps_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_module, "_CACHE_LIMIT", 40)
    rng = random.Random(5)
    configs = [*random_configs(rng), watchlist("rail", ["rail*", "high speed rail*"])]
    matcher = Matcher(configs)
    for _ in range(300):
        title, summary = random_text(rng, 6), random_text(rng, 20)
        assert matcher.match(title, summary) == reference(configs, title, summary)
    assert len(matcher._cache[4]) <= 40 + 40  # the cache was emptied on the way


def test_word_cache_reset_in_the_middle_of_an_article(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_module, "_CACHE_LIMIT", 5)
    matcher = Matcher([watchlist("rail", ["rail*"])])
    assert matcher.match("railway x1 x2", "") == {"rail": ("rail*",)}  # "railway" now known
    # the new words overflow the cache: it is emptied, and "railway" must be looked up again
    assert matcher.match("railway y1 y2 y3", "") == {"rail": ("rail*",)}
    assert matcher.match("y4 y5 y6", "railways") == {"rail": ("rail*",)}


def test_match_from_several_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matcher_module, "_CACHE_LIMIT", 30)  # resets happen while others run
    rng = random.Random(11)
    configs = [*random_configs(rng), watchlist("rail", ["rail*", "Belt and Road"], ["opinion"])]
    articles = [(random_text(rng, 6), random_text(rng, 20)) for _ in range(400)]
    expected = [reference(configs, t, s) for t, s in articles]
    matcher = Matcher(configs)
    errors: list[str] = []

    def work(offset: int) -> None:
        for i in range(len(articles)):
            j = (i + offset) % len(articles)
            if matcher.match(*articles[j]) != expected[j]:
                errors.append(f"article {j}")

    threads = [threading.Thread(target=work, args=(k * 97,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


def test_the_shipped_table_of_combining_marks_is_what_this_python_scans() -> None:
    """The marks `fold()` drops come from a table shipped per Unicode version (a scan of every
    code point costs ~20 ms a command); this Python's table must be what it scans itself."""
    import json
    import unicodedata

    from worker.match import text

    tables = json.loads(text._MARKS_TABLE.read_text("utf-8"))
    assert unicodedata.unidata_version in tables  # the Pythons we support have a table
    assert text._marks() == text._scan_marks()


def test_combining_marks_are_scanned_for_a_unicode_version_without_a_table(
    tmp_path, monkeypatch
) -> None:
    from worker.match import text

    monkeypatch.setattr(text, "_MARKS_TABLE", tmp_path / "none.json")
    assert text._marks() == text._scan_marks()
