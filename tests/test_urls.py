"""worker.urls.canonicalize: a table of links as listings write them -> canonical URL or None."""

from __future__ import annotations

import random

import pytest

from worker.urls import (
    MAX_URL_LENGTH,
    TRACKING_PARAMS,
    _canonicalize,
    _clean_input,
    _fast_canonicalize,
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


# --- the fast path: the same result as the slow one --------------------------------------------
#
# `canonicalize` answers links already in canonical form (absolute, or "/path" on an http(s)
# page; maybe a fragment, a default port, tracking parameters or unsorted ones) without urljoin
# and w3lib. Whenever it answers, it must return what the slow path returns.

_slow = _canonicalize.__wrapped__

REAL_WORLD_LINKS = [
    "https://timesca.com/kyrgyzstan-and-uzbekistan-sign-border-deal/",
    "https://timesca.com/page/2/?s=rail+freight",
    "https://www.rferl.org/a/kazakhstan-protests/31640015.html",
    "https://www.azattyk.org/a/32345678.html",
    "https://24.kg/english/312345_Kyrgyzstan_to_build_railway/",
    "https://akipress.com/news:789012:Kyrgyzstan_news/",
    "https://kaktus.media/doc/512345_v_bishkeke.html",
    "https://ru.sputnik.kg/20250703/kyrgyzstan-1090000000.html",
    "https://www.gazeta.uz/ru/2025/07/03/news/",
    "https://kun.uz/en/news/2025/07/03/uzbekistan-news",
    "https://kursiv.media/news/ekonomika/2025-07-03/?utm_campaign=ok&utm_source=tg",
    "https://eurasianet.org/kazakhstan-story?fbclid=IwAR0abc_DEF-123",
    "https://www.bbc.com/news/world-asia-12345678?at_medium=RSS&at_campaign=KARANGA",
    "https://www.reuters.com/world/asia-pacific/story-2025-07-03/?utm_source=x&utm_medium=social",
    "https://www.nytimes.com/2025/07/03/world/asia/kyrgyzstan.html?smid=url-share",
    "https://www.theguardian.com/world/2025/jul/03/story#comments",
    "https://apnews.com/article/kazakhstan-abc123def456",
    "https://www.aljazeera.com/news/2025/7/3/story",
    "https://www.washingtonpost.com/world/2025/07/03/story/?itid=hp&utm_term=.abc",
    "https://www.ft.com/content/1234abcd-5678-ef90-1234-567890abcdef",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&feature=youtu.be",
    "https://m.facebook.com/story.php?story_fbid=1&id=2",
    "https://x.com/user/status/123?s=20&t=abc",
    "https://t.me/s/channel/123",
    "https://www.example.com/search?q=rail+way&page=2",
    "https://example.com/index.php?option=com_content&view=article&id=123:slug&Itemid=45",
    "https://www.example.com/?p=12345",
    "https://www.example.com/news/story.html;jsessionid=ABC123",
    "https://www.example.com/caf%C3%A9/",
    "https://www.example.com/a/./b/../c/",
    "https://www.example.com/.well-known/x",
    "https://news.example.com:8443/a",
    "https://news.example.com:443/a",
    "http://news.example.com:80/a?b=2&a=1",
    "https://News.Example.com/A",
    "http://127.0.0.1:8123/some-slug-108940/",
    "http://127.0.0.1:8123/some-slug-108937/?utm_source=search&utm_medium=web",
    "/some-slug-108938/",
    "/some-slug-108939/#respond",
    "/2025/07/03/story/?amp=1#comments",
    "/?p=12345",
    "/page/2/?s=kyrgyzstan",
    "//cdn.example.org/x",
    "story/",
    "?page=2",
    "#top",
    "javascript:void(0)",
]
BASES: list[str | None] = [
    None,
    PAGE,
    "http://127.0.0.1:8123/page/2/?s=kyrgyzstan",
    "https://www.rferl.org/z/1.html",
    "https://Example.com/a/b",
    "http://example.com:80/x",
    "https://u:p@example.com/",
    " https://example.com/b ",
    "https://example.com\t/x",
    "https://example.com.:8080/",
    "https://bücher.de/",
    "mailto:x@example.com",
    "not a url",
    "http://[::1/",  # urljoin raises on these: the slow path gives None
    "https://exa]mple.com/",
    "http://ex\uff03ample.com/",
]


def _generated_links(count: int, seed: int) -> list[str]:
    """Links built from pieces: mostly canonical, with now and then one part that is not."""
    rng = random.Random(seed)
    good_hosts = ["example.com", "timesca.com", "www.example.co.uk", "127.0.0.1", "a_b.example"]
    hosts = [
        *good_hosts,
        "xn--bcher-kva.de", "Example.com", "example.com.", "a..b", "-bad-.example", "[::1]",
        "a" * 64 + ".com", "bücher.de", "exa mple.com", "", "u:p@example.com", "ex%41mple.com",
    ]  # fmt: skip
    good_ports = ["", "", "", ":80", ":443", ":8080", ":8123", ":1", ":65535"]
    ports = [*good_ports, ":0", ":00", ":080", ":65536", ":99999", ":", ":abc"]
    good_chars = [*"abcxyzAZ019-._~!$&'()*+,=:@", "index.html", "2025", "..x", ".x", "x."]
    chars = [
        *good_chars,
        "%41", "%7e", "%2F", "%25", "%", "%zz", ";", ";p=1", " ", "é", "\\", "[", "]", "|", "{",
        '"', "<", "^", "`", "..", ".", "", "?",
    ]  # fmt: skip
    keys = ["a", "b", "s", "page", "utm_source", "UTM_Medium", "utm_", "fbclid", "_ga", "a+b"]
    keys += ["utm_source+", "+utm_source", "a-b", "a~", "", "x.y", "%75tm_source", "k%20", "é"]
    values = ["", "1", "x", "abc", "a+b", "++", "a b", "a=b", "%41", "~", "-", "é", "a;b", "Z"]
    frags = ["", "", "#", "#respond", "#a?b", "#x#y", "#é", "#[x]", "#\\", "#%zz", "#a b"]

    def pick(pool: list[str], good: list[str], p: float) -> str:
        return rng.choice(good if rng.random() < p else pool)

    def query() -> str:
        if rng.random() < 0.5:
            return rng.choice(["", "?"])
        fields = []
        for _ in range(rng.randint(1, 4)):
            key = rng.choice(keys)
            fields.append(key if rng.random() < 0.1 else f"{key}={rng.choice(values)}")
        return "?" + "&".join(fields)

    links = []
    for _ in range(count):
        p = 0.97 if rng.random() < 0.7 else 0.5
        path = "".join(
            "/" + "".join(pick(chars, good_chars, p) for _ in range(rng.randint(0, 4)))
            for _ in range(rng.randint(0, 4))
        )
        head = (
            pick(["HTTP://", "Https://", "ftp://", "http:/", "//", ""], ["http://", "https://"], p)
            + pick(hosts, good_hosts, p)
            + pick(ports, good_ports, p)
        )
        if rng.random() < 0.3:
            head = ""  # a link relative to the page
        links.append(head + path + query() + pick(frags, frags[:4], p))
    return links


def test_the_fast_path_gives_what_the_slow_path_gives() -> None:
    rng = random.Random(7)
    pairs = [(link, base) for link in REAL_WORLD_LINKS for base in BASES]
    pairs += [(url, base) for url, base, _ in CASES]
    pairs += [(link, rng.choice(BASES)) for link in _generated_links(10_000, seed=1)]
    fast_answers = 0
    for link, base in pairs:
        text = _clean_input(link)
        if not text:
            continue
        fast = _fast_canonicalize(text, base)
        if fast is not None:
            fast_answers += 1
            assert fast == _slow(text, base), (link, base)
        assert canonicalize(link, base) == (_slow(text, base) if len(text) <= 2048 else None)
    assert fast_answers > 1_500  # the comparison did test the fast path


@pytest.mark.parametrize(
    ("link", "base"),
    [
        ("https://timesca.com/some-article/", None),
        ("https://timesca.com/some-article/#comments", PAGE),
        ("/2025/07/story/", PAGE),
        ("/slug/#respond", "http://127.0.0.1:8123/page/2/?s=kyrgyzstan"),
        ("http://127.0.0.1:8123/slug/?utm_source=search&utm_medium=web", None),
        ("https://example.com:443/a?b=2&a=1&fbclid=x", None),
        ("https://timesca.com/page/2/?s=kyrgyzstan", None),
    ],
)
def test_links_already_canonical_take_the_fast_path(link: str, base: str | None) -> None:
    fast = _fast_canonicalize(_clean_input(link), base)
    assert fast is not None
    assert fast == _slow(_clean_input(link), base)
