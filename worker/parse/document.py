"""The document of a listing page, refused when it is not HTML or nests hostile depths.

lexbor's tree building takes time quadratic in the depth of the open-element stack, so a page
nesting more than MAX_DEPTH elements is a `ParseError` before it is parsed.
"""

from __future__ import annotations

import re
from itertools import accumulate
from operator import itemgetter, sub

from selectolax.lexbor import LexborDocumentOptions, LexborHTMLParser

from worker.urls import redact_url

__all__ = ["MAX_DEPTH", "ParseError", "html_document"]

MAX_DEPTH = 5000  # unclosed elements at once: beyond this the page is refused (see _check_depth)


class ParseError(Exception):
    """A listing page that cannot be read with the source's selectors."""


_LOOKS_LIKE_HTML_RE = re.compile(r"<(?:!doctype|!--|[a-z][a-z0-9-]*[\s/>])", re.IGNORECASE)

# Elements that never stay open: void ones, SVG/MathML leaves written "<path/>", and those a
# sibling closes implicitly (p, li, option, td...). Only the others can pile up on the stack.
_NOT_COUNTED = frozenset(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr path circle rect line polyline polygon ellipse use stop animate "
    "animatetransform fegaussianblur feoffset feblend fecolormatrix mi mo mn mspace html head "
    "body p li dt dd option optgroup tr td th thead tbody tfoot colgroup caption rb rt rtc "
    "rp".split()
)
# Comments and raw-text elements, whose content is not markup.
_RAW_TEXT_RE = re.compile(
    r"<(?:!--.*?(?:-->|\Z)"
    r"|(script|style|textarea|title|xmp|iframe|noembed|noframes)\b.*?(?:</\1\s*>|\Z))",
    re.IGNORECASE | re.DOTALL,
)
_TAG_RE = re.compile(r"<(/?)([a-z][^\s/>]*)")  # run on lower-cased text
_STEP = {"": 1, "/": -1}
_NO_STEP = {(slash, name): 0 for slash in ("", "/") for name in _NOT_COUNTED}
_SCAN_CHUNK = 1 << 20


def _max_depth(html: str, limit: int) -> int:
    """An estimate of the deepest stack of open elements while parsing `html`, or a number
    over `limit` as soon as it is clear: start tags add one, end tags take one off (never below
    zero). Reads 1 MB at a time; every loop over tags runs in C (re, map, accumulate, max)."""
    text = _RAW_TEXT_RE.sub("", html).lower()
    level = lowest = deepest = 0
    for start in range(0, len(text), _SCAN_CHUNK):
        tokens = _TAG_RE.findall(text, start, start + _SCAN_CHUNK)
        if not tokens:
            continue
        steps = map(_NO_STEP.get, tokens, map(_STEP.__getitem__, map(itemgetter(0), tokens)))
        levels = list(accumulate(steps, initial=level))
        lows = list(accumulate(levels, min, initial=lowest))[1:]
        # depth floored at zero = the level minus the lowest level reached before it
        deepest = max(deepest, max(map(sub, levels, lows)))
        if deepest > limit:
            break
        level, lowest = levels[-1], lows[-1]
    return deepest


_BOUND_CHUNK = 4096


def _depth_bound(html: str, limit: int) -> int:
    """A cheap upper bound of the depth (str.count per 4 kB chunk, no tokenizing), or a number
    over `limit` as soon as the bound passes it. Within a chunk the depth grows at most by the
    chunk's start tags; at its end it is at most max(depth + starts - ends, starts)."""
    depth = worst = 0
    for start in range(0, len(html), _BOUND_CHUNK):
        chunk = html[start : start + _BOUND_CHUNK]
        ends = chunk.count("</")
        starts = chunk.count("<") - ends
        worst = max(worst, depth + starts)
        if worst > limit:
            break
        depth = max(depth + starts - ends, starts)
    return worst


def _check_depth(html: str, page_url: str) -> None:
    """Refuse pages nesting more than MAX_DEPTH elements: lexbor's tree building takes time
    quadratic in the depth of the open-element stack (100k nested divs take 20 s).

    Three steps, each only when the one before cannot clear the page: the number of start tags
    (str.count of '<', less that of '</' when needed), a bound per 4 kB chunk (void tags and
    unclosed <p> count as open), then the scan of every tag (about 0.2 s per MB).
    """
    starts = html.count("<")
    if starts <= MAX_DEPTH or starts - html.count("</") <= MAX_DEPTH:
        return
    if _depth_bound(html, MAX_DEPTH) <= MAX_DEPTH:
        return
    if _max_depth(html, MAX_DEPTH) > MAX_DEPTH:
        raise ParseError(
            f"page nests more than {MAX_DEPTH} elements (broken or hostile markup) "
            f"on {redact_url(page_url)}"
        )


def html_document(html: str, page_url: str) -> LexborHTMLParser:
    if isinstance(html, bytes):
        data = html
        html = html.decode("utf-8", "replace")
    else:
        try:
            data = html.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: lexbor reads their bytes as U+FFFD
            data = html.encode("utf-8", "surrogatepass")
    if not _LOOKS_LIKE_HTML_RE.search(html):
        raise ParseError(f"not an HTML document: {redact_url(page_url)}")
    _check_depth(html, page_url)
    # WO_EVENTS: no DOM mutation side effects (<selectedcontent> cloning is quadratic in options)
    return LexborHTMLParser(data, options=LexborDocumentOptions.WO_EVENTS)
