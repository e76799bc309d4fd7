"""Canonical article URLs: one string per article, however a listing spells its link.

`canonicalize(url, base)` resolves a link against the page it was found on and returns the
canonical absolute http(s) URL, or None when the link is not one we can fetch or store
(javascript:, mailto:, data:, ftp:, empty, malformed, absurdly long).

Canonical form (built on w3lib's `canonicalize_url` and `url_query_cleaner`):

- lower-case scheme and host; IDN hosts in their ASCII (punycode) form; no trailing dot on the host;
- the scheme's default port dropped (``:80`` for http, ``:443`` for https); no ``user:password@``
  (credentials are no part of an article's identity and must not reach the store, logs or alerts);
- no fragment;
- tracking parameters removed (`TRACKING_PARAMS`, `TRACKING_PREFIXES`), the others kept and
  sorted, so ``?a=1&b=2`` and ``?b=2&a=1`` are one article; a blank parameter reads ``a=``;
- path percent-encoding normalised (``%7e`` -> ``~``, non-ASCII -> upper-case ``%XX``),
  dot segments resolved, the trailing slash kept as it is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

from w3lib.url import canonicalize_url, url_query_cleaner

__all__ = [
    "MAX_URL_LENGTH",
    "TRACKING_PARAMS",
    "TRACKING_PREFIXES",
    "canonicalize",
    "is_tracking_param",
    "redact_url",
]

# Longer links are refused: no article needs one, and a unique index on the URL (PostgreSQL's
# btree entries are limited to about 2.7 kB) must be able to hold every canonical URL we return.
MAX_URL_LENGTH = 2048

# Query parameters that only identify a campaign, a click or a visitor, never the article.
# Compared case-insensitively with the decoded parameter name.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # Google / Microsoft / Meta / Yandex / other ad networks' click ids
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "ysclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "epik",
        "srsltid",
        "igshid",
        "rb_clickid",
        # Mailchimp, HubSpot, Marketo, Vero, Olytics
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",
        "vero_conv",
        "vero_id",
        "oly_anon_id",
        "oly_enc_id",
        # analytics cookies passed in links, referral markers
        "_ga",
        "_gl",
        "_openstat",
        "ref_src",
        "ref_url",
        "spm",
        "s_cid",
        "wickedid",
        "pk_campaign",
        "pk_kwd",
        "pk_source",
        "pk_medium",
        "pk_content",
    }
)
# Any parameter whose (lower-cased) name starts with one of these is dropped too.
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "hsa_", "mtm_")

_ALLOWED_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# WHATWG URL parsing removes ASCII tab and newline anywhere in the input.
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
# Leading/trailing junk: whitespace of any kind (incl. NBSP), C0 controls, zero-width characters.
_STRIP_CHARS = "".join(chr(c) for c in range(0x21)) + "\x7f\u00a0\u200b\u200c\u200d\u2060\ufeff"
_LABEL_RE = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def is_tracking_param(name: str) -> bool:
    """True when a (decoded) query parameter name is a tracking parameter."""
    key = name.strip().lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


def _clean_input(value: str) -> str:
    value = value.strip(_STRIP_CHARS)
    if "\t" in value or "\n" in value or "\r" in value:  # translate() is slow: only when needed
        value = value.translate(_TAB_NEWLINE)
    return value


def _valid_host(host: str) -> bool:
    """A DNS name (ASCII after IDNA), an IPv4 address or an IPv6 literal (brackets removed)."""
    if ":" in host:  # IPv6: urlsplit already checked the brackets
        return re.fullmatch(r"[0-9a-f:.]+(?:%[0-9a-z._~-]+)?", host) is not None
    if not host or len(host) > 253:
        return False
    return all(_LABEL_RE.match(label) for label in host.split("."))


_USERINFO_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def redact_url(url: str) -> str:
    """`url` fit for a log line or an error message: credentials (`user:password@`) masked."""
    return _USERINFO_RE.sub(r"\1***@", url, count=1)


def canonicalize(url: str, base: str | None = None) -> str | None:
    """The canonical absolute http(s) form of `url` resolved against `base`, or None.

    None when the result is not an absolute http or https URL with a valid host: javascript:,
    mailto:, data:, ftp: and other schemes, an empty or whitespace-only link, malformed hosts or
    ports, and links longer than `MAX_URL_LENGTH`.
    """
    if not isinstance(url, str) or not (base is None or isinstance(base, str)):
        return None
    text = _clean_input(url)
    if not text or len(text) > MAX_URL_LENGTH:
        return None
    fast = _fast_canonicalize(text, base)
    if fast is not None:
        return fast
    return _canonicalize(text, base)


# --- fast path ---------------------------------------------------------------------------------
#
# Most links on a listing are already (nearly) canonical: "https://host/path/", "/path/" on an
# http(s) page, maybe with "#respond" or "?utm_source=..." appended. For those the slow path
# (urljoin, w3lib's canonicalize_url, urlsplit, the query cleaner: ~100 us) changes nothing but
# what the fast path below does in a few us: drop the fragment, a default port and tracking
# parameters, sort the others. It only accepts ASCII links whose every part is already in
# canonical form, and defers anything else to the slow path: a host that is not lower-case
# letters, digits, '.', '-', '_'; a port with a leading zero; userinfo; a path that is missing,
# holds '%', ';', '\\', a dot segment or any character w3lib would percent-encode; a query with
# '%' or characters other than letters, digits, '-._~+' in names and values. Equality with the
# slow path is tested over generated and real-world links (tests/test_urls.py).

_FAST_RE = re.compile(
    r"(https?://)([a-z0-9._-]+)(?::([1-9][0-9]{0,4}))?"  # scheme, host, port
    r"(/[A-Za-z0-9!$&'()*+,\-./:=@_~]*)"  # path: w3lib's safe characters, no % ; ? [ ] |
    r"(?:\?([A-Za-z0-9&+\-._=~]+))?"  # query: names and values w3lib keeps as they are
    r"(?:#.*)?",  # fragment: dropped
    re.DOTALL,
)
_ORIGIN_RE = re.compile(r"https?://[a-z0-9._-]+(?::[0-9]{1,5})?(?=[/?#]|\Z)")
_FAST_DEFAULT_PORTS = {"http://": "80", "https://": "443"}


@lru_cache(maxsize=256)
def _fast_host(host: str) -> bool:
    return not host.endswith(".") and _valid_host(host)


@lru_cache(maxsize=256)
def _base_for_fast_path(base: str) -> tuple[bool, str | None]:
    """Whether urljoin accepts `base` (the slow path gives None for any link when it raises),
    and the 'scheme://host[:port]' the fast path may join a '/path' link to (or None)."""
    cleaned = _clean_input(base)
    try:
        urlsplit(cleaned)
    except ValueError:  # "http://[::1/", a netloc that NFKC turns into "#"...
        return False, None
    match = _ORIGIN_RE.match(cleaned)
    return True, match.group(0) if match else None


def _fast_query(query: str) -> str | None:
    """The canonical query (tracking parameters dropped, the rest sorted), or None when a value
    holds '=' (w3lib would encode it)."""
    pairs = []
    for field in query.split("&"):
        if not field:
            continue
        key, _, value = field.partition("=")
        if "=" in value:
            return None
        if not is_tracking_param(key.replace("+", " ") if "+" in key else key):
            pairs.append((key, value))
    pairs.sort()  # '+' (a space) sorts before every other allowed character, as ' ' does
    return "&".join([f"{key}={value}" for key, value in pairs])


def _fast_canonicalize(text: str, base: str | None) -> str | None:
    """What `_canonicalize(text, base)` returns, for a link in already canonical form; None
    when the link needs the slow path (which may still give a URL, or None)."""
    if not text.isascii():
        return None
    if base is not None:
        joinable, origin = _base_for_fast_path(base)
        if not joinable:
            return None
        if text[0] == "/":
            if origin is None or text[1:2] == "/":  # a protocol-relative "//host/": slow path
                return None
            text = origin + text
    match = _FAST_RE.fullmatch(text)
    if match is None:
        return None
    scheme, host, port, path, query = match.groups()
    if "/." in path or not _fast_host(host):
        return None
    netloc = host
    if port is not None:
        if int(port) > 65535:
            return None
        if port != _FAST_DEFAULT_PORTS[scheme]:
            netloc = f"{host}:{port}"
    result = f"{scheme}{netloc}{path}"
    if query:
        cleaned = _fast_query(query)
        if cleaned is None:
            return None
        if cleaned:
            result = f"{result}?{cleaned}"
    return result if len(result) <= MAX_URL_LENGTH else None


@lru_cache(maxsize=8192)  # a pass re-reads the same first pages: their links repeat
def _canonicalize(text: str, base: str | None) -> str | None:
    try:
        if base is not None:
            text = urljoin(_clean_input(base), text)
        scheme = urlsplit(text).scheme.lower()
        if scheme not in _ALLOWED_SCHEMES:
            return None
        canonical = canonicalize_url(text, keep_blank_values=True, keep_fragments=False)
        parts = urlsplit(canonical)
        host = parts.hostname or ""
        port = parts.port  # ValueError when not a number or out of range
    except (ValueError, UnicodeError):
        return None
    host = host.rstrip(".")
    if not _valid_host(host) or port == 0:
        return None

    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        netloc = f"{netloc}:{port}"
    result = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))

    if parts.query:
        tracking = [
            key
            for key in {pair.partition("=")[0] for pair in parts.query.split("&")}
            if is_tracking_param(unquote_plus(key))
        ]
        if tracking:
            result = url_query_cleaner(result, tracking, remove=True, unique=False)
    if len(result) > MAX_URL_LENGTH:
        return None
    return result
