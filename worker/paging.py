"""The page numbers hidden in a listing's next links, to read ahead while following them.

A listing read by its next links alone is read one page after the other: page n+1's address is
known only once page n is read, so a 300-page backfill waits 300 round trips in a row (6 s at
20 ms each) where a `page_url` template lets the pages be fetched several at once. Most next
links are numbered, though: `/page/2/`, `/page/3/`; `?start=20`, `?start=40`. `guess_pages`
reads such a pattern off the links to pages 2 and 3 (one number differs, and by a step that is
not zero); a walk then fetches a few pages ahead on the guess, and uses a page fetched ahead
only when the next link it reaches names exactly that address, so what it reads is what
following the links reads. A guess that a next link contradicts is dropped for the rest of the
pass; at the end of the listing the pages fetched past it (at most the read-ahead) go unused.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["guess_pages"]

_NUMBER = re.compile(r"\d+")
_MAX_DIGITS = 9  # a longer number is an id or a timestamp, not a page


def guess_pages(second: str, third: str) -> Callable[[int], str] | None:
    """The address of page n (n >= 2) from the links to pages 2 and 3, if they differ in one
    number alone; None when they do not (a cursor, a token, two numbers changing)."""
    a, b = _NUMBER.split(second), _NUMBER.split(third)
    if a != b:
        return None  # not the same text around the numbers
    x, y = _NUMBER.findall(second), _NUMBER.findall(third)
    differ = [i for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q]
    if len(differ) != 1:
        return None
    (i,) = differ
    if max(len(x[i]), len(y[i])) > _MAX_DIGITS or (x[i].startswith("0") and x[i] != "0"):
        return None  # too long, or zero-padded (`page/02`): not a count we can continue
    start, step = int(x[i]), int(y[i]) - int(x[i])
    if step <= 0:
        return None

    def page(n: int) -> str:
        numbers = [*x[:i], str(start + (n - 2) * step), *x[i + 1 :]]
        out = [a[0]]
        for number, text in zip(numbers, a[1:], strict=True):
            out += (number, text)
        return "".join(out)

    return page
