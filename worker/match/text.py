"""Text as the matcher sees it: folded words, word forms (stems), and `keywords` terms.

Rules:

- case-insensitive and Unicode-aware: text and keywords are folded the same way by `fold()`
  (NFKD, casefold, combining marks dropped), so "Türkiye" = "turkiye" and "ё" = "е";
- whole words: a word is a run of Unicode word characters (`\\w`), so "Kyrgyzstan’s" holds the
  word "kyrgyzstan" and "rail" does not match "trail" or "railway";
- a keyword of several words (quoted or not) matches those words in sequence, whatever
  punctuation lies between them ("Trans-Caspian" = trans, caspian); a phrase never runs from the
  title into the summary;
- a trailing `*` on the last word matches any word starting with the rest ("rail*");
- word forms: `stem()` gives a folded word's Snowball stem, English for Latin script, Russian
  for Cyrillic (the script of the word decides), other words unchanged.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Keyword", "fold", "parse_keyword", "stem", "words"]

_WORD_RE = re.compile(r"\w+")
_QUOTES = {'"': '"', "'": "'", "“": "”", "„": "“", "«": "»", "‘": "’"}
_ASTRAL_RE = re.compile("[\U00010000-\U0010ffff]")


_MARKS_TABLE = Path(__file__).resolve().parent.parent / "data" / "combining_marks.json"


def _scan_marks() -> tuple[list[list[int]], list[list[int]]]:
    """Combining marks (category Mn/Me or a non-zero combining class) as ranges of code points:
    (in the BMP, above it). Marks live in planes 0, 1 and 14 only: the scan skips the rest."""
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
    return bmp, astral


def _marks() -> tuple[list[list[int]], list[list[int]]]:
    """The ranges of `_scan_marks` for this Python's Unicode version: read from the table
    shipped for the versions of Python 3.11-3.13 (1 ms), or scanned (~20 ms of every command
    that folds a non-ASCII word)."""
    try:
        table = json.loads(_MARKS_TABLE.read_text("utf-8")).get(unicodedata.unidata_version)
    except (OSError, ValueError):
        table = None
    if table is None:
        return _scan_marks()
    return table["bmp"], table["astral"]


@functools.cache
def _marks_re() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Combining marks as two classes: (in the BMP, above it). Two, because `re` tests a class
    of BMP characters in one step but ranges above the BMP one by one."""
    bmp, astral = _marks()

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
# the same for UTF-8 text, the bytes of non-ASCII characters (>= 0x80) left as they are
_UTF8_WORDS = _ASCII_WORDS[:128] + bytes(range(128, 256))
_PUNCTUATION = "’‘“”–—…«»"  # common non-ASCII non-word characters in news text
_FOLDED: dict[str, list[str]] = {}  # non-ASCII token -> its folded words
_FOLDED_LIMIT = 20_000  # tokens remembered (~3 MB); emptied when full


def _fold_words(text: str) -> list[str]:
    text = fold(text)
    for char in _PUNCTUATION:
        if char in text:
            text = text.replace(char, " ")
    if not text.isascii():
        return _WORD_RE.findall(text)
    return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()


def words(text: str) -> list[str]:
    """The folded words of a text, in order: runs of Unicode word characters.

    The same as `_WORD_RE.findall(fold(text))`, faster: folding is character by character (NFKD,
    casefold, marks dropped), an ASCII non-word character or a Unicode space folds to non-word
    characters, so the text is first split there with one bytes.translate (ASCII lowercased),
    and only its non-ASCII tokens are folded, each once (remembered). A text with non-ASCII
    words: ~6 us instead of ~28 for folding and splitting the whole (bench/bench_match.py).
    """
    if text.isascii():
        return text.encode("ascii").translate(_ASCII_WORDS).decode("ascii").split()
    out: list[str] = []
    folded = _FOLDED
    for token in (
        text.encode("utf-8", "surrogatepass")
        .translate(_UTF8_WORDS)
        .decode("utf-8", "surrogatepass")
        .split()
    ):
        if token.isascii():
            out.append(token)
            continue
        found = folded.get(token)
        if found is None:
            found = _fold_words(token)
            if len(folded) >= _FOLDED_LIMIT:
                folded.clear()
            folded[token] = found
        out += found
    return out


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


_CYRILLIC_RE = re.compile("[\u0400-\u04ff]")


@functools.cache
def _stemmers() -> tuple[object, object]:
    import Stemmer  # PyStemmer: Snowball in C, ~0.7 us a word

    stemmers = Stemmer.Stemmer("english"), Stemmer.Stemmer("russian")
    for stemmer in stemmers:
        # its own cache purges by sorting when full: 5.2 us a word instead of 0.7 over 30,000
        # distinct words; the Matcher remembers stems itself
        stemmer.maxCacheSize = 0
    return stemmers


def stem(word: str) -> str:
    """The Snowball stem of one folded word: 'sanctioned' -> 'sanction', 'санкциями' -> 'санкц'.

    The script decides the language: Latin letters English, Cyrillic Russian; a word in another
    script (or digits) is its own stem.
    """
    english, russian = _stemmers()
    if word.isascii():
        return english.stemWord(word)  # type: ignore[attr-defined]
    if _CYRILLIC_RE.search(word):
        return russian.stemWord(word)  # type: ignore[attr-defined]
    return word
