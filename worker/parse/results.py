"""The results counter of a listing: "Viewing results 1 - 6 of 78" or "Page 2 of 7" ->
`ResultsCount`."""

from __future__ import annotations

import re

from worker.models import ResultsCount
from worker.parse.text import clean_text

__all__ = ["parse_results"]

# A number, maybe with thousands separators (comma, dot, apostrophe, plain/no-break/thin spaces).
_NUM = r"\d{1,3}(?:[,.'\u00a0\u2009\u202f ]\d{3})+(?!\d)|\d{1,12}(?!\d)"
_RESULTS_RE = re.compile(
    rf"(?<![\d.,])({_NUM})\s*(?:[-‐‑‒–—―−~]|to)\s*({_NUM})\s+(?:of|из)\s+(?:about\s+)?({_NUM})",
    re.IGNORECASE,
)
# "Page 2 of 7", "Page 2 / 7", "Страница 2 из 7": a counter of pages, not of items.
_PAGES_RE = re.compile(
    rf"\b(?:page|стр(?:аница)?\.?)\s*({_NUM})\s*(?:of|/|из)\s*({_NUM})(?![\d.,]*\d)",
    re.IGNORECASE,
)
_DIGITS_RE = re.compile(r"\D")


def parse_results(text: str) -> ResultsCount | None:
    """ "Viewing results 1 - 6 of 78", "Showing 7–12 of 78 results", "1,201 to 1,206 of 3,000"
    -> ResultsCount(first, last, total); None unless 1 <= first <= last <= total.

    A page counter, "Page 2 of 7", reads as ResultsCount(2, 2, 7, pages=True), whose `last_page`
    is 7; it gives no count of articles.
    """
    if not isinstance(text, str):
        return None
    cleaned = clean_text(text[:2000])
    match = _RESULTS_RE.search(cleaned)
    if match is not None:
        first, last, total = (int(_DIGITS_RE.sub("", group)) for group in match.groups())
    else:
        pages = _PAGES_RE.search(cleaned)
        if pages is None:
            return None
        page, count = (int(_DIGITS_RE.sub("", group)) for group in pages.groups())
        if not 1 <= page <= count:
            return None
        return ResultsCount(first=page, last=page, total=count, pages=True)
    if not 1 <= first <= last <= total:
        return None
    return ResultsCount(first=first, last=last, total=total)
