"""Keyword watchlists: which watchlists an article (title + summary) matches, and by which keywords.

Rules (the issue's contract):

- case-insensitive and Unicode-aware: text and keywords are folded the same way by `fold()`
  (NFKD, casefold, combining marks dropped), so "Türkiye" = "turkiye" and "ё" = "е";
- whole words: a word is a run of Unicode word characters (`\\w`), so "Kyrgyzstan’s" holds the
  word "kyrgyzstan" and "rail" does not match "trail" or "railway";
- a keyword of several words (quoted or not) matches those words in sequence, whatever
  punctuation lies between them ("Trans-Caspian" = trans, caspian); a phrase never runs from the
  title into the summary;
- a trailing `*` on the last word matches any word starting with the rest ("rail*");
- a watchlist matches when one of its keywords matches and none of its `exclude` terms does.

Speed: keywords are indexed by their first word; single-word prefixes by their prefix, looked up
once per distinct article word (and remembered); phrases are checked by position only when their
first word occurs. Each article is folded and split once and shared by every watchlist.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.config import WatchlistConfig

__all__ = ["Keyword", "Matcher", "fold", "parse_keyword", "words"]

_WORD_RE = re.compile(r"\w+")
_QUOTES = {'"': '"', "'": "'", "“": "”", "„": "“", "«": "»", "‘": "’"}
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")
_CACHE_LIMIT = 100_000  # distinct article words remembered by one Matcher


@functools.cache
def _marks_re() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Combining marks (category Mn/Me or a non-zero combining class): (in the BMP, above it).

    Two classes because `re` tests a class of BMP characters in one step but ranges above the
    BMP one by one. Marks live in planes 0, 1 and 14 only: the scan skips the rest (~25 ms, once).
    """
    bmp: list[list[int]] = []
    astral: list[list[int]] = []
    for code in (*range(0x20000), *range(0xE0000, 0xE1000)):
        char = chr(code)
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me"):
            ranges = bmp if code < 0x10000 else astral
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])

    def char_class(ranges: list[list[int]]) -> re.Pattern[str]:
        parts = (f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
        return re.compile("[" + "".join(parts) + "]+")

    return char_class(bmp), char_class(astral)


def fold(text: str) -> str:
    """Casefold and strip diacritics: 'Türkiye' -> 'turkiye', 'ЁЛКА' -> 'елка', 'Straße' -> 'strasse'."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKD", text).casefold()
    if text.isascii():
        return text
    bmp_marks, astral_marks = _marks_re()
    if bmp_marks.search(text):
        text = bmp_marks.sub("", text)
    if _ASTRAL_RE.search(text) and astral_marks.search(text):
        text = astral_marks.sub("", text)
    return text


# ASCII fast path: bytes.translate lowercases word characters and blanks the rest, then split()
_ASCII_WORDS = bytes(
    ord(chr(b).lower()) if chr(b).isalnum() or chr(b) == "_" else ord(" ") for b in range(128)
).ljust(256, b" ")
_PUNCTUATION = "’‘“”–—…«»"  # common non-ASCII non-word characters in news text


def words(text: str) -> list[str]:
    """The folded words of a text, in order: runs of Unicode word characters."""
    if not text.isascii():
        text = fold(text)
        for char in _PUNCTUATION:
            if char in text:
                text = text.replace(char, " ")
        if not text.isascii():
            return _WORD_RE.findall(text)
    return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()


@dataclass(frozen=True, slots=True)
class Keyword:
    text: str  # as written in the config
    words: tuple[str, ...]  # folded words
    prefix: bool  # trailing * on the last word


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        return text[1:-1].strip()
    return text


def parse_keyword(text: str) -> Keyword:
    """'rail*' / '"Belt and Road"' / 'Trans-Caspian' -> Keyword; ValueError when it has no words.

    Surrounding quotes are optional and stripped. A `*` may only end the last word.
    """
    body = _unquote(text)
    prefix = body.endswith("*")
    if prefix:
        body = body[:-1]
    found = tuple(words(body))
    if not found:
        raise ValueError(
            "a keyword needs at least one word of letters or digits, "
            "e.g. 'rail', 'rail*' or '\"Belt and Road\"'"
        )
    if "*" in body:
        raise ValueError("'*' is only allowed at the end of the last word, e.g. 'rail*'")
    if prefix:
        body = _unquote(body) if body[-1:] in _QUOTES.values() else body  # '"high speed rail"*'
        if not _WORD_RE.search(fold(body)[-1:]):
            raise ValueError("'*' must follow a word directly, e.g. 'rail*' (not 'rail *')")
    return Keyword(text=text, words=found, prefix=prefix)


_Entry = tuple[tuple[int, ...], tuple[int, ...]]  # (keywords matched outright, phrases to check)


class Matcher:
    """Compiled watchlists. `match()` is safe to call from several threads."""

    def __init__(self, watchlists: Sequence[WatchlistConfig]) -> None:
        self._watchlists = list(watchlists)  # for explain()
        self._names: list[str] = []
        self._spellings: list[list[str]] = []  # per watchlist: its keywords as written
        ids: dict[tuple[tuple[str, ...], bool], int] = {}
        self._phrase: list[list[str]] = []  # keyword id -> folded words
        self._is_prefix: list[bool] = []
        # keyword id -> (watchlist index, keyword position or -1 for an exclude term)
        self._refs: list[list[tuple[int, int]]] = []

        for wl_index, watchlist in enumerate(watchlists):
            self._names.append(watchlist.name)
            self._spellings.append(list(watchlist.keywords))
            seen: set[int] = set()
            terms = [(pos, kw) for pos, kw in enumerate(watchlist.keywords)]
            terms += [(-1, kw) for kw in watchlist.exclude]
            for pos, text in terms:
                keyword = parse_keyword(text)
                key = (keyword.words, keyword.prefix)
                kid = ids.get(key)
                if kid is None:
                    kid = ids[key] = len(self._phrase)
                    self._phrase.append(list(keyword.words))
                    self._is_prefix.append(keyword.prefix)
                    self._refs.append([])
                if pos >= 0 and kid in seen:
                    continue  # the same keyword twice: report its first spelling only
                seen.add(kid)
                self._refs[kid].append((wl_index, pos))

        exact: dict[str, list[int]] = {}  # one word, no *
        prefixes: dict[str, list[int]] = {}  # one word with *: keyed by the prefix
        first: dict[str, list[int]] = {}  # several words: keyed by the first word
        for kid, phrase in enumerate(self._phrase):
            if len(phrase) > 1:
                first.setdefault(phrase[0], []).append(kid)
            elif self._is_prefix[kid]:
                prefixes.setdefault(phrase[0], []).append(kid)
            else:
                exact.setdefault(phrase[0], []).append(kid)
        self._exact = exact
        self._prefixes = prefixes
        self._prefix_lengths = sorted({len(p) for p in prefixes})
        self._first = first

        base: dict[str, _Entry] = {}
        for word in (*exact, *prefixes, *first):
            entry = self._entry(word)
            if entry is not None:
                base[word] = entry
        self._base = base
        self._reset_cache()

    def _reset_cache(self) -> None:
        # replaced as one tuple, never cleared in place: a concurrent match() reads the three
        # together and keeps its own consistent copies
        # (word -> entry; words with an entry; words whose entry is known, maybe none)
        self._cache: tuple[dict[str, _Entry], set[str], set[str]] = (
            dict(self._base),
            set(self._base),
            set(self._base),
        )

    def _entry(self, word: str) -> _Entry | None:
        direct: list[int] = list(self._exact.get(word, ()))
        size = len(word)
        for length in self._prefix_lengths:
            if length > size:
                break
            direct.extend(self._prefixes.get(word[:length], ()))
        phrases = self._first.get(word, ())
        if not direct and not phrases:
            return None
        return tuple(direct), tuple(phrases)

    def _phrase_in(self, kid: int, present: set[str], *texts: list[str]) -> bool:
        """Whether keyword `kid` (several words) occurs in sequence in one of `texts`."""
        phrase = self._phrase[kid]
        prefix = self._is_prefix[kid]
        exact = phrase[:-1] if prefix else phrase
        for word in exact:  # cheap rejection: each exact word must occur somewhere
            if word not in present:
                return False
        first, last, n = phrase[0], phrase[-1], len(phrase)
        for seq in texts:
            if first not in seq:
                continue
            i = seq.index(first)
            stop = len(seq) - n
            while i <= stop:
                if prefix:
                    if seq[i : i + n - 1] == exact and seq[i + n - 1].startswith(last):
                        return True
                elif seq[i : i + n] == phrase:
                    return True
                try:
                    i = seq.index(first, i + 1)
                except ValueError:
                    break
        return False

    def match(self, title: str, summary: str) -> dict[str, tuple[str, ...]]:
        """Watchlist name -> the keywords that matched (as written, in config order).

        Watchlists that matched nothing, or whose `exclude` matched, are left out.
        """
        t_words = words(title)
        s_words = words(summary) if summary else []
        present = set(t_words)
        present.update(s_words)

        hits, hit_words, known = self._cache
        new = present - known
        if new:
            if len(known) + len(new) > _CACHE_LIMIT:
                self._reset_cache()
                hits, hit_words, known = self._cache
                new = present - known
            for word in new:
                entry = self._entry(word)
                if entry is not None:
                    hits[word] = entry  # before hit_words and known: see _reset_cache
                    hit_words.add(word)
            known.update(new)

        candidates = present & hit_words
        if not candidates:
            return {}
        matched: set[int] = set()
        for word in candidates:
            direct, phrases = hits[word]
            matched.update(direct)
            for kid in phrases:
                if kid not in matched and self._phrase_in(kid, present, t_words, s_words):
                    matched.add(kid)
        if not matched:
            return {}

        found: dict[int, list[int]] = {}
        excluded: set[int] = set()
        for kid in matched:
            for wl_index, pos in self._refs[kid]:
                if pos < 0:
                    excluded.add(wl_index)
                else:
                    found.setdefault(wl_index, []).append(pos)
        result: dict[str, tuple[str, ...]] = {}
        for wl_index in sorted(found):
            if wl_index in excluded:
                continue
            spellings = self._spellings[wl_index]
            result[self._names[wl_index]] = tuple(spellings[p] for p in sorted(found[wl_index]))
        return result

    def explain(self, title: str, summary: str) -> list[Explanation]:
        """Each watchlist's Explanation for this article (see `explain_watchlists`)."""
        return explain_watchlists(self._watchlists, title, summary)


def _occurs(keyword: Keyword, *texts: list[str]) -> bool:
    """Whether `keyword` occurs in one of `texts` (folded words): the rule, written plainly."""
    n = len(keyword.words)
    for seq in texts:
        for i in range(len(seq) - n + 1):
            window = seq[i : i + n]
            if keyword.prefix:
                if window[:-1] == list(keyword.words[:-1]) and window[-1].startswith(
                    keyword.words[-1]
                ):
                    return True
            elif tuple(window) == keyword.words:
                return True
    return False


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a watchlist matches an article or does not (`worker why`).

    `keywords` are the terms that matched (as written), `excluded_by` the exclude terms that
    matched, `reason` says it in words: what matched, or which part failed. A matcher with a
    richer rule (a query) fills `reason` with the part of its query that failed.
    """

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


def _explain_one(watchlist: WatchlistConfig, t_words: list[str], s_words: list[str]) -> Explanation:
    hits: list[str] = []
    seen: set[tuple[tuple[str, ...], bool]] = set()
    for text in watchlist.keywords:
        keyword = parse_keyword(text)
        key = (keyword.words, keyword.prefix)
        if key not in seen:  # the same keyword twice: its first spelling only, as match() does
            seen.add(key)
            if _occurs(keyword, t_words, s_words):
                hits.append(text)
    excluded = tuple(k for k in watchlist.exclude if _occurs(parse_keyword(k), t_words, s_words))
    quoted = ", ".join(repr(k) for k in watchlist.keywords)
    if not hits:
        return Explanation(
            watchlist.name,
            False,
            reason=f"none of its keywords occurs in the title or summary: {quoted}",
        )
    found = ", ".join(repr(k) for k in hits)
    if excluded:
        return Explanation(
            watchlist.name,
            False,
            tuple(hits),
            excluded,
            reason=f"matched {found} but excluded by {', '.join(repr(k) for k in excluded)}",
        )
    return Explanation(watchlist.name, True, tuple(hits), reason=f"matched {found}")


def explain_watchlists(
    watchlists: Sequence[WatchlistConfig], title: str, summary: str
) -> list[Explanation]:
    """For each watchlist (in config order): whether it matches this title and summary, and why.

    The same rule as `Matcher.match`, checked term by term (slow and plain: for one article).
    """
    t_words = words(title)
    s_words = words(summary) if summary else []
    return [_explain_one(w, t_words, s_words) for w in watchlists]
