"""The document of a listing page, refused when it is not HTML or nests hostile depths.

lexbor's tree building costs time proportional to the depth of the open-element stack for each
element it inserts, so a page nesting more than MAX_DEPTH elements (counted by the tag scan of
depth.py, which follows the HTML standard's tokenizer) is a `ParseError` before it is parsed.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborDocumentOptions, LexborHTMLParser

from worker.parse.depth import nesting_depth
from worker.urls import redact_url

__all__ = ["MAX_DEPTH", "ParseError", "html_document"]

# open elements at once: beyond this the page is refused. lexbor on 5 MB of blocks this deep:
# 1.0 s (5,000 deep: 4.7 s); real listings nest 20 to 60 deep.
MAX_DEPTH = 1000
SCAN_BUDGET = 10.0  # seconds the tag scan may take (about 1 s per million tags)


class ParseError(Exception):
    """A listing page that cannot be read with the source's selectors."""


class HostilePage(ParseError):
    """A page over the parse budget (nesting depth, scan or parse time): it fails its source's
    pass on whatever page it is met, never read as the end of a listing."""


_LOOKS_LIKE_HTML_RE = re.compile(r"<(?:!doctype|!--|[a-z][a-z0-9-]*[\s/>])", re.IGNORECASE)


def _check_depth(html: str, page_url: str) -> None:
    """Refuse pages nesting more than MAX_DEPTH elements: lexbor's tree building costs time
    proportional to the depth of the open-element stack for each element (see depth.py).

    The number of start tags ('<' less '</') bounds the depth: a page with fewer is not
    scanned. (A bound per chunk that let end tags undo start tags was wrong: `<div></x>`
    repeated nests, the end tag being ignored.)
    """
    if html.count("<") - html.count("</") <= MAX_DEPTH:
        return
    try:
        deep = nesting_depth(html, MAX_DEPTH, budget=SCAN_BUDGET) > MAX_DEPTH
    except TimeoutError as exc:
        raise HostilePage(f"{exc} (hostile markup) on {redact_url(page_url)}") from None
    if deep:
        raise HostilePage(
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
