"""Parse stage: one listing page's HTML -> `ListingPage` (items, results counter, next link).

Everything read here is untrusted: text is entity-decoded (by the HTML parser), stripped of
control characters, whitespace-collapsed and capped; links are resolved against the page and
canonicalized (`worker.urls.canonicalize`), so only absolute http(s) URLs leave this module.
Hostile markup (huge attributes, deep nesting, NUL bytes, undecodable leftovers) never crashes
the parser or blows up time or memory: at worst it is a `ParseError` for that page.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from functools import lru_cache
from itertools import accumulate
from operator import itemgetter, sub

from dateutil import parser as dateutil_parser
from dateutil import tz
from selectolax.lexbor import LexborDocumentOptions, LexborHTMLParser, LexborNode

from worker.config import FieldSelector, SelectConfig
from worker.models import Item, ListingPage, ResultsCount
from worker.urls import canonicalize, redact_url

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_SUMMARY",
    "MAX_TITLE",
    "ParseError",
    "clean_text",
    "parse_date",
    "parse_listing",
    "parse_results",
    "strip_shortcodes",
]

log = logging.getLogger(__name__)

MAX_ITEMS = 500  # elements matched by `item` that are read on one page; the rest are ignored
MAX_TITLE = 500  # characters, after cleaning
MAX_SUMMARY = 4000  # characters, after cleaning and shortcode removal
MAX_DATE_TEXT = 200  # a longer `published` text is not a date
MAX_DEPTH = 5000  # unclosed elements at once: beyond this the page is refused (see _check_depth)
_RAW_CAP = 2  # read at most cap * _RAW_CAP characters (whitespace collapsed) before cleaning

MIN_YEAR, MAX_YEAR = 1990, 2100


class ParseError(Exception):
    """A listing page that cannot be read with the source's selectors."""


# --- text cleaning -----------------------------------------------------------------------------

# C0/C1 controls (tab/newline/CR are whitespace, kept for the collapse below), zero-width space,
# word joiner, BOM and non-characters. ZWNJ/ZWJ stay: they are meaningful in Persian, emoji...
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff\ufffe\uffff]")
_SPACE_RE = re.compile(r"\s+")  # Unicode-aware: NBSP, thin and narrow spaces, ideographic...


def clean_text(text: str, limit: int | None = None) -> str:
    """Control characters dropped, whitespace runs (incl. NBSP) collapsed to one space, stripped;
    cut to at most `limit` characters (ending with '…' when cut)."""
    text = _SPACE_RE.sub(" ", _CONTROL_RE.sub("", text)).strip()
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


# --- WordPress shortcode leftovers -------------------------------------------------------------

# WordPress registers shortcodes in lower case; "[Video]" or "[VIDEO]" in prose is a label.
# Shortcodes whose content is media markup or a caption, never article text: removed with it.
_MEDIA_SHORTCODES = (
    "caption wp_caption embed video audio gallery playlist wpvideo youtube vimeo soundcloud "
    "spotify tweet twitter instagram googlemaps slideshow rev_slider smartslider3 metaslider "
    "soliloquy envira-gallery foogallery nggallery ngg jwplayer contact-form-7 contact-form "
    "gravityform wpforms fluentform ninja_form"
).split()
# Layout shortcodes (page builders, themes): the tags go, their content (the real text) stays.
_LAYOUT_SHORTCODES = (
    "row column col one_half one_third two_third one_fourth three_fourth dropcap highlight "
    "pullquote tabs tab accordion toggle divider spacer related inline_related_posts adsense "
    "audio_player shortcode"
).split()
_LAYOUT_PREFIXES = ("vc_", "et_pb_", "fusion_", "su_", "av_", "themify_", "tie_")
_KNOWN_SHORTCODES = frozenset(_MEDIA_SHORTCODES + _LAYOUT_SHORTCODES)

_PAIRED_RE = re.compile(
    rf"\[({'|'.join(map(re.escape, sorted(_MEDIA_SHORTCODES, key=len, reverse=True)))})"
    r"(?=[\s\]/])[^\[\]]{0,2000}\]"
    # the content cannot hold another tag of the same name (they do not nest), so a scan from
    # one opener stops at the next one: linear time, however many unclosed openers there are
    r"(?:(?!\[/?\1[\s\]/]).){0,4000}\[/\1\s*\]",
    re.DOTALL,
)
# Any bracketed word, with what follows it up to the closing bracket; _lone_tag decides.
_BRACKETED_RE = re.compile(r"\[(/?)([A-Za-z_][\w-]*)([^\[\]]{0,2000})\]")
_ATTRIBUTE_RE = re.compile(r"\s+[\w-]+\s*=")


def _lone_tag(match: re.Match[str]) -> str:
    """' ' for a shortcode tag, else the bracketed text unchanged."""
    closing, name, rest = match.groups()
    if (name in _KNOWN_SHORTCODES or name.startswith(_LAYOUT_PREFIXES)) and (
        not rest or rest[0] in " \t\n/"
    ):
        return " "  # a known shortcode's opening, self-closing or closing tag
    if closing:
        return " " if not rest.strip() else match.group(0)  # any closing tag: [/foo]
    if _ATTRIBUTE_RE.match(rest):
        return " "  # any tag with name="value" attributes: [foo id="1"], [gallery ids="1" /]
    return match.group(0)


def strip_shortcodes(text: str) -> str:
    """Remove WordPress shortcode leftovers; keep ordinary brackets such as [sic], [1], [Updated].

    Media blocks (`[caption ...]...[/caption]`, `[video ...][/video]`, `[embed]...[/embed]`...) go
    with their content; other shortcode tags (`[gallery ids="1,2"]`, `[/caption]`, page-builder
    tags) go alone.
    """
    if "[" not in text:
        return text
    if "[/" in text:
        text = _PAIRED_RE.sub(" ", text)
    return _BRACKETED_RE.sub(_lone_tag, text)


# --- dates -------------------------------------------------------------------------------------


class _ParserInfo(dateutil_parser.parserinfo):
    """dateutil's English names plus Russian month names (nominative, genitive, short)."""

    MONTHS: list[tuple[str, ...]] = [  # type: ignore[assignment]  # noqa: RUF012
        ("Jan", "January", "январь", "января", "янв"),
        ("Feb", "February", "февраль", "февраля", "фев"),
        ("Mar", "March", "март", "марта", "мар"),
        ("Apr", "April", "апрель", "апреля", "апр"),
        ("May", "мая", "май"),
        ("Jun", "June", "июнь", "июня", "июн"),
        ("Jul", "July", "июль", "июля", "июл"),
        ("Aug", "August", "август", "августа", "авг"),
        ("Sep", "Sept", "September", "сентябрь", "сентября", "сен", "сент"),
        ("Oct", "October", "октябрь", "октября", "окт"),
        ("Nov", "November", "ноябрь", "ноября", "ноя"),
        ("Dec", "December", "декабрь", "декабря", "дек"),
    ]


_PARSER_INFO = _ParserInfo()
_UTC_NAMES = frozenset({"UTC", "GMT", "UT", "Z", "ZULU"})
# Abbreviations that name one offset only; others (IST, CST...) are ambiguous and taken as UTC.
_TZ_OFFSETS = {
    "EST": -5,
    "EDT": -4,
    "PST": -8,
    "PDT": -7,
    "MST": -7,
    "MDT": -6,
    "CET": 1,
    "CEST": 2,
    "EET": 2,
    "EEST": 3,
    "MSK": 3,
    "ALMT": 5,
    "UZT": 5,
    "TJT": 5,
    "TMT": 5,
    "KGT": 6,
}
# Two defaults that differ in year, month and day: a component missing from the text shows.
_DEFAULT_A = datetime(2000, 1, 1)
_DEFAULT_B = datetime(2001, 2, 2)


def _tzinfos(name: str | None, offset: int | None) -> tzinfo | None:
    if offset is not None:
        return tz.tzoffset(name, offset)
    if name is None:
        return None
    key = name.upper()
    if key in _UTC_NAMES:
        return tz.UTC
    hours = _TZ_OFFSETS.get(key)
    return tz.tzoffset(key, hours * 3600) if hours is not None else None


def _to_utc(value: datetime) -> datetime | None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _human_date(text: str) -> datetime | None:
    """dateutil's parser, fuzzy, but only when the text itself gives year, month and day."""
    try:
        a = dateutil_parser.parse(
            text, parserinfo=_PARSER_INFO, default=_DEFAULT_A, fuzzy=True, tzinfos=_tzinfos
        )
        b = dateutil_parser.parse(
            text, parserinfo=_PARSER_INFO, default=_DEFAULT_B, fuzzy=True, tzinfos=_tzinfos
        )
    except (ValueError, OverflowError, TypeError, LookupError):
        return None
    if a != b:  # a component was filled from the default: "May I help", "July 2025", "12"
        return None
    # the year must be written out in full ("1 2 3" would otherwise read as 2003-01-02)
    if not re.search(rf"(?<!\d){a.year:04d}(?!\d)", text):
        return None
    return a


# The shape of an RFC 2822 date ("Thu, 03 Jul 2025 10:00:00 +0000"), so that email.utils'
# lenient parser is not given other forms it would misread ("July 3, 2025 4:30 pm" as 04:30).
_RFC2822_RE = re.compile(r"(?:[A-Za-z]{3},\s*)?\d{1,2}\s+[A-Za-z]{3}\s+\d{2,4}\s+\d{1,2}:\d{2}")


@lru_cache(maxsize=4096)
def _parse_date_cached(text: str) -> datetime | None:
    try:
        value: datetime | None = datetime.fromisoformat(text)
    except ValueError:
        value = None
    if value is None and _RFC2822_RE.match(text):
        try:
            value = parsedate_to_datetime(text)  # RFC 2822 (a "-0000" zone gives a naive value)
        except (ValueError, TypeError, IndexError, OverflowError):
            value = None
    if value is None:
        value = _human_date(text)
    return _to_utc(value) if value is not None else None


def parse_date(text: str) -> datetime | None:
    """ISO 8601, RFC 2822 or a human date ("July 3, 2025", "3 July 2025") -> aware UTC datetime.

    A value without a zone is taken as UTC. Anything else (garbage, a partial date such as
    "July 2025", a year outside 1990..2100) gives None; this function never raises.
    """
    if not isinstance(text, str):
        return None
    cleaned = clean_text(text[: MAX_DATE_TEXT * _RAW_CAP])
    if not cleaned or len(cleaned) > MAX_DATE_TEXT:
        return None
    return _parse_date_cached(cleaned)


# --- "Viewing results 1 - 6 of 78" -------------------------------------------------------------

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


# --- the document ------------------------------------------------------------------------------

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
    (two str.count), a bound per 4 kB chunk (void tags and unclosed <p> count as open), then
    the scan of every tag (about 0.2 s per MB).
    """
    if html.count("<") - html.count("</") <= MAX_DEPTH:
        return
    if _depth_bound(html, MAX_DEPTH) <= MAX_DEPTH:
        return
    if _max_depth(html, MAX_DEPTH) > MAX_DEPTH:
        raise ParseError(
            f"page nests more than {MAX_DEPTH} elements (broken or hostile markup) "
            f"on {redact_url(page_url)}"
        )


def _document(html: str, page_url: str) -> LexborHTMLParser:
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


# --- reading fields ----------------------------------------------------------------------------

_BLOCK = frozenset(
    "address article aside blockquote br caption dd details dialog div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr li main nav ol p pre "
    "section summary table tbody td tfoot th thead tr ul".split()
)
_NO_TEXT = frozenset("script style template noscript head title iframe object svg math".split())


def _node_text(node: LexborNode, limit: int) -> str:
    """The visible text under `node`, with a space between block elements (so paragraphs do
    not run together), without script/style, whitespace collapsed, at most `limit` characters.

    Reading stops after about `limit` characters of text (indentation not counted) or
    `limit // 8` nodes (at least 50, at most 400), so hostile markup (a million tiny nodes,
    items nested in items) costs a bounded time per field.
    """
    parts: list[str] = []
    size = 0
    budget = min(400, max(50, limit // 8))
    stack = [node.iter(include_text=True)]
    closers = [False]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            if closers.pop():
                parts.append(" ")
            continue
        budget -= 1
        if budget < 0:
            break
        tag = child.tag
        if tag == "-text":
            text = child.text_content or ""
            parts.append(text)
            size += len(text.strip())
            if size >= limit:
                break
        elif tag and tag[0] != "-" and tag not in _NO_TEXT:  # not a comment, doctype...
            block = tag in _BLOCK
            if block:
                parts.append(" ")
            stack.append(child.iter(include_text=True))
            closers.append(block)
    return clean_text("".join(parts))[:limit]


def _read(
    scope: LexborNode | LexborHTMLParser, field: FieldSelector | None, limit: int
) -> str | None:
    """The raw value of the first match of a field in `scope` (a node itself included, or the
    whole document): the attribute when the field names one, else the text."""
    if field is None:
        return None
    target = scope.css_first(field.css)
    if target is None:
        return None
    if field.attr:
        value = target.attributes.get(field.attr)
        return value[:limit] if value is not None else None
    return _node_text(target, limit)


def _base_url(tree: LexborHTMLParser, page_url: str) -> str:
    """The page URL, or the document's <base href> resolved against it."""
    base = tree.css_first("base[href]")
    if base is not None:
        href = base.attributes.get("href")
        resolved = canonicalize(href, page_url) if href else None
        if resolved:
            return resolved
    return page_url


def parse_listing(html: str, page_url: str, select: SelectConfig) -> ListingPage:
    """Read one listing page. Raises ParseError when `select.item` matches nothing.

    An element without a title or without an http(s) link is skipped (counted in `skipped`);
    items are deduplicated by canonical URL (the first wins) and keep the page's order.
    """
    tree = _document(html, page_url)
    nodes = tree.css(select.item)
    if not nodes:
        raise ParseError(
            f"selector matched nothing: item '{select.item}' on {redact_url(page_url)}"
        )
    if len(nodes) > MAX_ITEMS:
        log.warning(
            "%s: item %r matched %d elements, reading the first %d",
            redact_url(page_url),
            select.item,
            len(nodes),
            MAX_ITEMS,
        )
        nodes = nodes[:MAX_ITEMS]
    base = _base_url(tree, page_url)

    items: list[Item] = []
    seen: set[str] = set()
    skipped = 0
    for node in nodes:
        title = clean_text(_read(node, select.title, MAX_TITLE * _RAW_CAP) or "", MAX_TITLE)
        href = _read(node, select.link, 4 * 2048)
        url = canonicalize(href, base) if href and not href.strip().startswith("#") else None
        if not title or url is None:
            skipped += 1
            continue
        if url in seen:
            continue
        seen.add(url)
        summary_raw = _read(node, select.summary, MAX_SUMMARY * _RAW_CAP)
        summary = clean_text(strip_shortcodes(summary_raw), MAX_SUMMARY) if summary_raw else ""
        published_raw = _read(node, select.published, MAX_DATE_TEXT * _RAW_CAP)
        published = parse_date(published_raw) if published_raw else None
        items.append(Item(url=url, title=title, summary=summary, published=published))

    results = None
    if select.results is not None:
        raw = _read(tree, select.results, 2000)
        results = parse_results(raw) if raw else None

    next_url = None
    if select.next is not None:
        href = _read(tree, select.next, 4 * 2048)
        next_url = canonicalize(href, base) if href else None
        if next_url is not None and next_url == canonicalize(page_url):
            next_url = None  # a link to this very page is no next page

    if skipped:
        log.debug(
            "%s: skipped %d elements without a title or an http(s) link",
            redact_url(page_url),
            skipped,
        )
    return ListingPage(
        url=page_url, items=tuple(items), results=results, next_url=next_url, skipped=skipped
    )
