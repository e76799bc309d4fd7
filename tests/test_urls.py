"""worker.urls.canonicalize: a table of links as listings write them -> canonical URL or None."""

from __future__ import annotations

import pytest

from worker.urls import (
    MAX_URL_LENGTH,
    TRACKING_PARAMS,
    canonicalize,
    is_tracking_param,
    redact_url,
)

PAGE = "https://timesca.com/?s=kyrgyzstan"

# (link, base, expected canonical URL or None)
CASES: list[tuple[str, str | None, str | None]] = [
    # already canonical
    ("https://timesca.com/some-article/", None, "https://timesca.com/some-article/"),
    ("http://example.com/a", None, "http://example.com/a"),
    # scheme and host lower-cased, path case kept
    ("HTTPS://TimesCA.COM/Some-Article/", None, "https://timesca.com/Some-Article/"),
    # default ports dropped, others kept
    ("https://example.com:443/a", None, "https://example.com/a"),
    ("http://example.com:80/a", None, "http://example.com/a"),
    ("http://example.com:443/a", None, "http://example.com:443/a"),
    ("https://example.com:8443/a", None, "https://example.com:8443/a"),
    # an empty path is "/"; an empty query and a fragment go
    ("https://example.com", None, "https://example.com/"),
    ("https://example.com/a?", None, "https://example.com/a"),
    ("https://example.com/a#comments", None, "https://example.com/a"),
    ("https://example.com/a?x=1#top", None, "https://example.com/a?x=1"),
    # trailing slash kept as it is
    ("https://example.com/a/", None, "https://example.com/a/"),
    ("https://example.com/a", None, "https://example.com/a"),
    # tracking parameters removed, in any case; others kept and sorted
    (
        "https://example.com/a?utm_source=x&utm_medium=y&utm_campaign=z",
        None,
        "https://example.com/a",
    ),
    ("https://example.com/a?UTM_Source=x&id=3", None, "https://example.com/a?id=3"),
    ("https://example.com/a?utm_anything_new=1&p=2", None, "https://example.com/a?p=2"),
    ("https://example.com/a?fbclid=IwAR0&gclid=C&dclid=D", None, "https://example.com/a"),
    ("https://example.com/a?gbraid=1&wbraid=2&msclkid=3&yclid=4", None, "https://example.com/a"),
    ("https://example.com/a?mc_cid=1&mc_eid=2&_ga=3&_gl=4", None, "https://example.com/a"),
    ("https://example.com/a?igshid=1&ref_src=twsrc&spm=a.b.c", None, "https://example.com/a"),
    ("https://example.com/a?b=2&a=1", None, "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?a=1&b=2", None, "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?s=x&paged=2&utm_source=rss", None, "https://example.com/a?paged=2&s=x"),
    # a repeated parameter keeps both values; a blank value is written "a="
    ("https://example.com/a?tag=b&tag=a", None, "https://example.com/a?tag=a&tag=b"),
    ("https://example.com/a?flag", None, "https://example.com/a?flag="),
    # a parameter that only looks like a tracker stays
    (
        "https://example.com/a?utm=1&ref=home&source=x",
        None,
        "https://example.com/a?ref=home&source=x&utm=1",
    ),
    # percent-encoding normalised: unreserved decoded, others upper-case, non-ASCII encoded
    ("https://example.com/%7euser/", None, "https://example.com/~user/"),
    ("https://example.com/caf%c3%a9", None, "https://example.com/caf%C3%A9"),
    ("https://example.com/café", None, "https://example.com/caf%C3%A9"),
    ("https://example.com/a b", None, "https://example.com/a%20b"),
    ("https://example.com/a%2Fb", None, "https://example.com/a%2Fb"),
    ("https://example.com/?q=caf%C3%A9", None, "https://example.com/?q=caf%C3%A9"),
    (
        "https://24.example.kg/новости/",
        None,
        "https://24.example.kg/%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8/",
    ),
    # dot segments resolved, double slashes kept
    ("https://example.com/a/./b/../c", None, "https://example.com/a/c"),
    ("https://example.com/a//b/", None, "https://example.com/a//b/"),
    # IDN hosts in punycode; a trailing dot dropped
    ("https://пример.рф/", None, "https://xn--e1afmkfd.xn--p1ai/"),
    ("https://Bücher.de/", None, "https://xn--bcher-kva.de/"),
    ("https://xn--bcher-kva.de/", None, "https://xn--bcher-kva.de/"),
    ("https://example.com./a", None, "https://example.com/a"),
    # IP hosts
    ("http://127.0.0.1:8080/x", None, "http://127.0.0.1:8080/x"),
    ("http://[::1]:80/x", None, "http://[::1]/x"),
    ("http://[::1]:8080/x", None, "http://[::1]:8080/x"),
    # credentials are no part of an article's URL
    ("https://user:secret@example.com/a", None, "https://example.com/a"),
    # whitespace around and tabs/newlines inside (as a browser drops them)
    ("  https://example.com/a  ", None, "https://example.com/a"),
    ("\n\thttps://example.com/a\n", None, "https://example.com/a"),
    ("\u00a0https://example.com/a\u200b", None, "https://example.com/a"),
    ("https://exam\nple.com/a", None, "https://example.com/a"),
    # resolved against the base
    ("/2025/07/story/", PAGE, "https://timesca.com/2025/07/story/"),
    ("story/", "https://example.com/news/index.html", "https://example.com/news/story/"),
    ("../b/", "https://example.com/news/world/", "https://example.com/news/b/"),
    ("//cdn.example.org/x", PAGE, "https://cdn.example.org/x"),
    ("//cdn.example.org/x", "http://example.com/", "http://cdn.example.org/x"),
    ("?page=2", "https://example.com/search/?s=x&page=1", "https://example.com/search/?page=2"),
    ("https://other.example/x", PAGE, "https://other.example/x"),
    (" /a?utm_source=x#frag ", " https://Example.com/b ", "https://example.com/a"),
    ("#comments", "https://example.com/a?x=1#top", "https://example.com/a?x=1"),
    # not http(s), empty, malformed: None
    ("javascript:void(0)", PAGE, None),
    ("JavaScript:alert(1)", PAGE, None),
    ("java\nscript:alert(1)", PAGE, None),
    ("mailto:desk@example.org", PAGE, None),
    ("tel:+996312000000", PAGE, None),
    ("data:text/html,<b>hi</b>", PAGE, None),
    ("ftp://ftp.example.com/file", None, None),
    ("file:///etc/passwd", None, None),
    ("", PAGE, None),
    ("   ", PAGE, None),
    ("", None, None),
    ("/relative/without/base", None, None),
    ("relative", None, None),
    ("http://", None, None),
    ("https:///path-only", None, None),
    ("http://exa mple.com/", None, None),
    ("http://a..b/", None, None),
    ("http://-bad-.example/", None, None),
    ("http://example.com:99999/", None, None),
    ("http://example.com:0/", None, None),
    ("http://example.com:abc/", None, None),
    ("http://[::1/", None, None),
    ("http://exa<mple>.com/", None, None),
    ("https://" + "a" * 64 + ".com/", None, None),  # a DNS label has at most 63 characters
    ("/a", "mailto:someone@example.com", None),
    ("/a", "not a url", None),
]


@pytest.mark.parametrize(("url", "base", "expected"), CASES)
def test_canonicalize(url: str, base: str | None, expected: str | None) -> None:
    assert canonicalize(url, base) == expected


@pytest.mark.parametrize(("url", "base", "expected"), [c for c in CASES if c[2] is not None])
def test_canonical_form_is_a_fixed_point(url: str, base: str | None, expected: str) -> None:
    assert canonicalize(expected) == expected
    assert canonicalize(expected, "https://somewhere.else/x/") == expected


def test_spellings_of_one_article_agree() -> None:
    spellings = [
        "https://timesca.com/kyrgyz-rail/?b=2&a=1",
        "HTTPS://TIMESCA.COM:443/kyrgyz-rail/?a=1&b=2#comments",
        "/kyrgyz-rail/?utm_source=telegram&a=1&b=2&fbclid=xyz",
        "  https://timesca.com/kyrgyz-rail/?a=1&b=2&utm_medium=social  ",
    ]
    assert {canonicalize(s, "https://timesca.com/?s=rail") for s in spellings} == {
        "https://timesca.com/kyrgyz-rail/?a=1&b=2"
    }


def test_too_long_urls_are_refused() -> None:
    base = "https://example.com/"
    fits = base + "a" * (MAX_URL_LENGTH - len(base))
    assert canonicalize(fits) == fits
    assert canonicalize(fits + "a") is None
    assert canonicalize(base + "a" * 5_000_000) is None


@pytest.mark.parametrize(
    ("name", "tracking"),
    [
        ("utm_source", True),
        ("UTM_CAMPAIGN", True),
        ("utm_whatever", True),
        ("fbclid", True),
        ("gclid", True),
        ("_ga", True),
        ("spm", True),
        ("hsa_acc", True),
        ("utm", False),
        ("id", False),
        ("page", False),
        ("s", False),
        ("ref", False),
        ("ga", False),
    ],
)
def test_is_tracking_param(name: str, tracking: bool) -> None:
    assert is_tracking_param(name) is tracking


def test_tracking_params_named_in_the_brief_are_listed() -> None:
    named = {"fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "mc_cid"}
    named |= {"mc_eid", "_ga", "_gl", "igshid", "ref_src", "spm"}
    assert named <= TRACKING_PARAMS
    assert all(name == name.lower() for name in TRACKING_PARAMS)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@example.com/a?s=x", "https://***@example.com/a?s=x"),
        ("https://token@example.com", "https://***@example.com"),
        ("https://a:b@example.com:8443/p/q@r", "https://***@example.com:8443/p/q@r"),
        ("https://example.com/p?email=a@b.c", "https://example.com/p?email=a@b.c"),
        ("https://example.com?email=a@b.c", "https://example.com?email=a@b.c"),
        ("https://example.com#a@b", "https://example.com#a@b"),
        ("https://example.com/", "https://example.com/"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
