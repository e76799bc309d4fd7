"""The Matcher's speed-ups keep its meaning: words() split before folding, the stem filter on
whole stem starts, and the two-generation word cache (bench/bench_match.py, bench/README.md)."""

from __future__ import annotations

import random
import re

import pytest

from tests.test_query import evaluate, random_query, random_text, watchlist
from worker.match import Matcher, QueryError, fold, parse_query, stem, words
from worker.match import matcher as matcher_module

WORD_RE = re.compile(r"\w+")


def test_words_are_the_words_of_the_whole_text_folded() -> None:
    rng = random.Random(10)
    # ASCII, letters with marks (precomposed and combining), Cyrillic with ё, ligatures and
    # compatibility forms that fold into letters (ﬁ ™ ½ ①), Unicode spaces and punctuation,
    # an astral letter and mark, a lone surrogate
    alphabet = [chr(c) for c in range(32, 127)] + list(
        "éÉüßİıЁёКиї\u0301\u0308ﬁ™½①\u00a0\u2009\u3000’‘“”–—…«»ʻ·\U0001d400\U0001e944\ud800"
    )
    for _ in range(4000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert words(text) == WORD_RE.findall(fold(text)), repr(text)


def test_a_word_starts_with_its_stem_but_the_stems_last_letter() -> None:
    """What the stem filter relies on (a word that starts with no stem key less its last letter
    is not stemmed), for English endings in combination and Russian forms; "...ying" words are
    the exception the filter lets through."""
    starts = ["hop", "tap", "sens", "poss", "stab", "relat", "cry", "happ", "sky", "ly", "d"]
    starts += ["gener", "commun", "proce", "inn", "herr", "ugl", "gent", "sanction", "rail"]
    endings = ["", "s", "es", "ies", "ied", "ed", "edly", "eed", "ing", "ingly", "y", "ly"]
    endings += ["ational", "tional", "enci", "izer", "ization", "ator", "alism", "aliti"]
    endings += ["fulness", "ousli", "iveness", "biliti", "bli", "ogi", "lessli", "alize"]
    endings += ["icate", "ical", "ness", "ative", "ement", "ance", "ible", "able", "ably"]
    checked = 0
    for start in starts:
        for first in endings:
            for second in ("", "s", "ly", "ing", "ed", "ness"):
                word = start + first + second
                assert word.startswith(stem(word)[:-1]) or "ying" in word, (word, stem(word))
                checked += 1
    russian = "санкции санкциями санкций железная железнодорожных дорогами казахстанской "
    russian += "ёлками каменный каменного сильнейший подписанная ответственность"
    for word in words(russian):
        assert word.startswith(stem(word)), (word, stem(word))
    assert checked > 4000


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("shy", "A shy reader"),  # stem "shi": the 3-letter filter of before skipped "shy"
        ("dry", "Rivers dried up"),
        ("dry", "drying rivers"),
        ("lie", "Lying officials"),  # "lying" -> "lie"
        ("санкции", "под санкциями"),
    ],
)
def test_a_stemmed_term_matches_its_forms(query: str, text: str) -> None:
    assert Matcher([watchlist(query, stem=True)]).match(text, "") == {"w": (query,)}


def test_the_index_agrees_with_a_direct_evaluation_across_cache_generations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(matcher_module, "_CACHE_LIMIT", 8)  # a new generation every few articles
    rng = random.Random(77)
    checked = 0
    for _ in range(60):
        configs = []
        for i in range(rng.randint(2, 6)):
            try:
                query = parse_query(random_query(rng))
            except QueryError:
                continue
            configs.append((watchlist(query.text, stem=rng.random() < 0.4, name=f"w{i}"), query))
        matcher = Matcher([c for c, _ in configs])
        for _ in range(25):
            fields = {"title": random_text(rng, rng.randint(1, 8))}
            if rng.random() < 0.8:
                fields["summary"] = random_text(rng, rng.randint(0, 20))
            split = {k: words(v) for k, v in fields.items()}
            expected = {c.name for c, q in configs if evaluate(q.root, split, c.stem)}
            assert set(matcher.match_fields(fields)) == expected, (fields, configs)
            checked += 1
        assert matcher._cache[2]  # entries were taken over from a previous generation
    assert checked == 1500
