"""Parse stage: one listing page's HTML -> `ListingPage` (items, results counter, next link).

Everything read here is untrusted: text is entity-decoded (by the HTML parser), stripped of
control characters, whitespace-collapsed and capped; links are resolved against the page and
canonicalized (`worker.urls.canonicalize`), so only absolute http(s) URLs leave this module.
Hostile markup (huge attributes, deep nesting, NUL bytes, undecodable leftovers) never crashes
the parser or blows up time or memory: at worst it is a `ParseError` for that page.
"""

from worker.parse.dates import MAX_DATE_TEXT as MAX_DATE_TEXT
from worker.parse.dates import MAX_YEAR as MAX_YEAR
from worker.parse.dates import MIN_YEAR as MIN_YEAR
from worker.parse.dates import parse_date
from worker.parse.document import MAX_DEPTH, HostilePage, ParseError
from worker.parse.listing import MAX_ITEMS, MAX_SUMMARY, MAX_TITLE, parse_listing
from worker.parse.offload import (
    PARSE_BUDGET,
    listing_of,
    parse_listing_async,
    parse_listings_ahead,
)
from worker.parse.results import parse_results
from worker.parse.text import clean_text, strip_shortcodes

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_SUMMARY",
    "MAX_TITLE",
    "PARSE_BUDGET",
    "HostilePage",
    "ParseError",
    "clean_text",
    "listing_of",
    "parse_date",
    "parse_listing",
    "parse_listing_async",
    "parse_listings_ahead",
    "parse_results",
    "strip_shortcodes",
]
