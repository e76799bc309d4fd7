"""The results counter of a listing: "Viewing results 1 - 6 of 78" -> `ResultsCount`."""

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
_DIGITS_RE = re.compile(r"\D")


def parse_results(text: str) -> ResultsCount | None:
    """ "Viewing results 1 - 6 of 78", "Showing 7–12 of 78 results", "1,201 to 1,206 of 3,000"
    -> ResultsCount(first, last, total); None unless 1 <= first <= last <= total."""
    if not isinstance(text, str):
        return None
    match = _RESULTS_RE.search(clean_text(text[:2000]))
    if match is None:
        return None
    first, last, total = (int(_DIGITS_RE.sub("", group)) for group in match.groups())
    if not 1 <= first <= last <= total:
        return None
    return ResultsCount(first=first, last=last, total=total)
