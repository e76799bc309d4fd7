"""A local WordPress-like news site served over HTTP (tests, benchmarks and `worker demo`).

It models The Times of Central Asia (timesca.com): a search listing `/?s=kyrgyzstan`, category
archives `/category/news/`, pages `/page/2/?s=kyrgyzstan` and `/category/news/page/2/`, six teasers
a page by default, the counter "Viewing results 7 - 12 of 78", a `Next` link on every page but the
last, 404 past the last page, article pages `/slug/`, `/robots.txt`, and a "Most Read" sidebar of
`article` elements outside `#main` that a crawler must not take for items.

The markup is realistic and deterministic per article (derived from its id, never random per
request): links absolute or relative, some with tracking parameters (`utm_*`) or a `#respond`
fragment; titles and summaries written with HTML entities as WordPress does (`&amp;`, `&#8217;`,
`&#8220;`, `&nbsp;`); summaries keep their shortcode leftovers (`[caption ...]...[/caption]`).

Listings:

- `/?s=TERM` (and `/page/N/?s=TERM`): when TERM is the site's own `search_term`
  (case-insensitive), *every* article is listed, so whatever a test publishes shows up in the
  search; any other TERM lists the articles whose title or summary contains it (case-insensitive).
- `/category/SLUG/`: the articles in that category (`publish()` files under "news").
- `/` and `/page/N/`: every article (the blog home page).

All list newest first (published, then id); every listing page carries the counter.

Tests publish and delete articles while the server runs; `fail()` injects error answers,
`set_delay()` slows every answer down, and `requests` records every request path in order.
"""

from __future__ import annotations

import html
import json
import logging
import random
import re
import socket
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from urllib.parse import parse_qs, quote_plus, urlsplit

log = logging.getLogger(__name__)

SITE_NAME = "The Times Of Central Asia"
SITE_TZ = timezone(timedelta(hours=5))  # Central Asian time, as timesca.com shows it
TRACKING = "?utm_source=search&#038;utm_medium=web"  # WordPress's esc_url writes & as &#038;

# "Most Read" sidebar: article elements outside #main that must not be taken for listing items.
SIDEBAR: tuple[tuple[str, str], ...] = (
    ("most-read-the-great-game-revisited", "Opinion: The Great Game Revisited"),
    ("most-read-central-asia-water-wars", "Analysis: Are Water Wars Coming to Central Asia?"),
    ("most-read-caspian-pipeline-explainer", "Explainer: Who Ships Oil Across the Caspian?"),
    ("most-read-samarkand-travel-guide", "Samarkand in Spring: A Traveller\u2019s Guide"),
)

_ENTITIES = {
    ord("\u2019"): "&#8217;",
    ord("\u2018"): "&#8216;",
    ord("\u201c"): "&#8220;",
    ord("\u201d"): "&#8221;",
    ord("\u2013"): "&#8211;",
    ord("\u2014"): "&#8212;",
    ord("\u2026"): "&#8230;",
    ord("\xa0"): "&nbsp;",
}
_SHORTCODE_PAIR = re.compile(r"\[(\w+)\b[^\]]*\].*?\[/\1\]", re.DOTALL)
_SHORTCODE_LONE = re.compile(r"\[/?\w+\b[^\]]*\]")


def wp_text(text: str) -> str:
    """Plain text -> HTML the way WordPress writes it (`&amp;`, `&#8217;`, `&nbsp;` ...)."""
    return html.escape(text, quote=False).translate(_ENTITIES)


def slugify(title: str) -> str:
    """A WordPress-like slug: ASCII, lower case, punctuation dropped, words joined by '-'."""
    text = re.sub("[\u2013\u2014]", "-", title)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9\s-]", "", text)
    return re.sub(r"[\s-]+", "-", text).strip("-")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SiteArticle:
    """One article of the site. `title` and `summary` are plain text (summary with shortcodes)."""

    id: int
    slug: str
    title: str
    summary: str
    published: datetime  # timezone-aware
    categories: tuple[str, ...] = ("news",)

    def canonical_url(self, base: str) -> str:
        """The URL a crawler must end up with: `http://127.0.0.1:PORT/slug/`."""
        return f"{base.rstrip('/')}/{self.slug}/"

    def href(self, base: str) -> str:
        """The link as the listing writes it (decoded): absolute or relative, maybe tracked."""
        return html.unescape(self._href(base.rstrip("/")))

    @property
    def expected_summary(self) -> str:
        """The summary a reader sees: shortcodes (and a caption's text) removed, spaces collapsed."""
        text = _SHORTCODE_LONE.sub(" ", _SHORTCODE_PAIR.sub(" ", self.summary))
        return " ".join(text.split())

    def _href(self, base: str) -> str:
        # Deterministic per article: five link styles, in turn by id.
        path = f"/{self.slug}/"
        style = self.id % 5
        if style == 0:
            return base + path
        if style == 1:
            return path
        if style == 2:
            return base + path + TRACKING
        if style == 3:
            return path + "#respond"
        return base + path + "#respond"

    def _title_html(self) -> str:
        title = self.title
        if self.id % 7 == 0 and " " in title:  # a "no widows" plugin: last space non-breaking
            head, _, tail = title.rpartition(" ")
            title = f"{head}\xa0{tail}"
        return wp_text(title)

    def _summary_html(self) -> str:
        summary = self.summary
        if self.id % 3 == 0:
            summary = summary.replace(" ", "\xa0", 1)
        return wp_text(summary)

    def _time_html(self) -> str:
        local = self.published.astimezone(SITE_TZ)
        shown = f"{local:%B} {local.day}, {local.year}"
        html_ = f'<time class="entry-date published" datetime="{local.isoformat()}">{shown}</time>'
        if self.id % 4 == 1:
            updated = local + timedelta(hours=3)
            html_ += f'<time class="updated" datetime="{updated.isoformat()}">{shown}</time>'
        return html_

    def teaser_html(self, base: str) -> str:
        """The `<article>` element of this article on a listing page."""
        href = html.escape(self._href(base), quote=True).replace("&amp;#038;", "&#038;")
        cats = " ".join(f"category-{html.escape(c)}" for c in self.categories)
        thumb = ""
        if self.id % 2 == 0:  # a thumbnail link before the title, as many themes have
            thumb = (
                f'<a class="post-thumbnail" href="{base}/{self.slug}/" aria-hidden="true">'
                f'<img src="/wp-content/uploads/2025/06/{self.slug}.jpg" alt=""></a>\n  '
            )
        return (
            f' <article id="post-{self.id}" class="post-{self.id} post type-post status-publish'
            f' format-standard has-post-thumbnail hentry {cats}">\n  {thumb}'
            f'<header class="entry-header">\n'
            f'   <h2 class="entry-title"><a href="{href}" rel="bookmark">{self._title_html()}</a>'
            f"</h2>\n"
            f'   <div class="entry-meta"><span class="posted-on">{self._time_html()}</span></div>\n'
            f"  </header>\n"
            f'  <div class="entry-summary"><p>{self._summary_html()}</p></div>\n'
            f" </article>\n"
        )


@dataclass(slots=True)
class _Fault:
    status: int
    remaining: int | None  # None: until heal()
    paths: str | None  # substring of the request path (with query); None: every path
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class _Listing:
    kind: str  # "search" | "category" | "home"
    key: str  # search term / category slug / ""
    page: int


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=UTF-8"
    headers: dict[str, str] = field(default_factory=dict)


_PAGE_RE = re.compile(r"^(?P<prefix>/|/category/(?P<cat>[^/]+)/)(?:page/(?P<page>\d+)/?)?$")


def _route(target: str) -> tuple[str, _Listing | None]:
    """Request target -> (path, listing or None when it is not a listing page)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    if not path.endswith("/") and not path.endswith(".txt"):
        path += "/"
    query = parse_qs(parts.query, keep_blank_values=True)
    match = _PAGE_RE.match(path)
    if match is None:
        return path, None
    page = int(match["page"] or 1)
    if match["cat"] is not None:
        return path, _Listing("category", match["cat"].lower(), page)
    if "s" in query:
        return path, _Listing("search", query["s"][0].strip(), page)
    return path, _Listing("home", "", page)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], site: NewsSite) -> None:
        self.site = site
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "nginx"
    timeout = 15  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr log."""

    def setup(self) -> None:
        super().setup()
        self.server.site._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.site._track(self.connection, open_=False)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        try:
            response = self.server.site._handle(self.path)
        except Exception:  # a bug in the test site must not hang the client
            log.exception("test site failed to answer %s", self.path)
            response = _Response(500, b"internal error", "text/plain; charset=UTF-8")
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(response.body)
        except OSError:  # client gone, or the site stopped mid-answer
            self.close_connection = True


class NewsSite:
    """A WordPress-like news site on 127.0.0.1, served from a thread. Thread-safe."""

    def __init__(
        self,
        articles: Iterable[SiteArticle] = (),
        *,
        per_page: int = 6,
        host: str = "127.0.0.1",
        port: int = 0,
        search_term: str = "kyrgyzstan",
    ) -> None:
        if per_page < 1:
            raise ValueError("per_page must be at least 1")
        self.per_page = per_page
        self.host = host
        self.search_term = search_term
        self._port = port
        self._lock = threading.RLock()
        self._articles: dict[int, SiteArticle] = {}
        self._by_slug: dict[str, SiteArticle] = {}
        for article in articles:
            self._add(article)
        self._listings: dict[tuple[str, str], tuple[SiteArticle, ...]] = {}
        self._teasers: dict[int, str] = {}
        self._faults: list[_Fault] = []
        self._delay = 0.0
        self._base: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self.requests: list[str] = []  # request targets (path and query), in arrival order

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def sample(
        cls,
        *,
        per_page: int = 6,
        host: str = "127.0.0.1",
        port: int = 0,
        search_term: str = "kyrgyzstan",
    ) -> NewsSite:
        """The 20 realistic articles of worker/site_data/articles.json (June-July 2025)."""
        return cls(
            sample_articles(), per_page=per_page, host=host, port=port, search_term=search_term
        )

    @classmethod
    def synthetic(
        cls,
        n: int,
        *,
        per_page: int = 10,
        seed: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        search_term: str = "kyrgyzstan",
    ) -> NewsSite:
        """`n` generated articles (deterministic for a seed), e.g. 3,000 for benchmarks."""
        return cls(
            synthetic_articles(n, seed=seed),
            per_page=per_page,
            host=host,
            port=port,
            search_term=search_term,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving (idempotent); return the base URL `http://127.0.0.1:PORT`.

        After `stop()`, `start()` serves again on the same port (a site that went down and
        came back).
        """
        with self._lock:
            if self._server is not None:
                assert self._base is not None
                return self._base
            self._stopping.clear()
            server = _Server((self.host, self._port), self)
            self._port = server.server_address[1]
            base = f"http://{self.host}:{self._port}"
            if base != self._base:
                self._teasers.clear()
            self._base = base
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"news-site-{self._port}",
                daemon=True,
            )
            self._thread.start()
            return base

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            conns = list(self._conns)
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> NewsSite:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- URLs ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base is None:
            raise RuntimeError("the site is not started: call start() first")
        return self._base

    @property
    def search_url(self) -> str:
        return f"{self.base_url}/?s={quote_plus(self.search_term)}"

    @property
    def page_url_template(self) -> str:
        return f"{self.base_url}/page/{{page}}/?s={quote_plus(self.search_term)}"

    def category_url(self, category: str = "news") -> str:
        return f"{self.base_url}/category/{category}/"

    def url(self, article: SiteArticle | str) -> str:
        """The canonical URL of an article (object or slug) on this running site."""
        slug = article if isinstance(article, str) else article.slug
        return f"{self.base_url}/{slug}/"

    # --- content --------------------------------------------------------------------------

    def publish(
        self,
        title: str,
        summary: str = "",
        *,
        published: datetime | None = None,
        categories: Sequence[str] = ("news",),
        slug: str | None = None,
    ) -> SiteArticle:
        """Add an article. Without `published` it is the newest (now, or after the newest).

        A naive `published` is taken as UTC. The slug comes from the title (made unique).
        """
        with self._lock:
            if published is None:
                now = datetime.now(UTC).replace(microsecond=0)
                newest = max((a.published for a in self._articles.values()), default=None)
                published = now if newest is None else max(now, newest + timedelta(minutes=1))
            new_id = max(self._articles, default=40000) + 1
            base_slug = slug or slugify(title) or f"post-{new_id}"
            unique, n = base_slug, 2
            while unique in self._by_slug:
                unique, n = f"{base_slug}-{n}", n + 1
            article = SiteArticle(
                id=new_id,
                slug=unique,
                title=title,
                summary=summary,
                published=_aware(published),
                categories=tuple(categories),
            )
            self._add(article)
            self._listings.clear()
            return article

    def delete(self, article: SiteArticle | str) -> None:
        """Remove an article (object or slug); KeyError if the site does not have it."""
        slug = article if isinstance(article, str) else article.slug
        with self._lock:
            found = self._by_slug.pop(slug)
            del self._articles[found.id]
            self._listings.clear()

    def articles(
        self, *, category: str | None = None, term: str | None = None
    ) -> list[SiteArticle]:
        """What a listing shows, newest first: the search for `term` (default: the site's own
        search, i.e. every article), or the category archive `category`."""
        if category is not None:
            return list(self._listing("category", category.lower()))
        return list(self._listing("search", self.search_term if term is None else term))

    def get(self, slug: str) -> SiteArticle:
        with self._lock:
            return self._by_slug[slug]

    # --- faults and observation -----------------------------------------------------------

    def fail(
        self,
        status: int = 503,
        *,
        count: int | None = None,
        paths: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer `status` to the next `count` requests (None: until `heal()`) whose target
        (path and query) contains `paths` (None: every request); optional Retry-After header."""
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for 'until heal()')")
        with self._lock:
            self._faults.append(_Fault(status, count, paths, retry_after))

    def heal(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    def set_delay(self, seconds: float) -> None:
        """Delay every answer by `seconds` (0: none); stop() cuts pending delays short."""
        if seconds < 0:
            raise ValueError("delay cannot be negative")
        self._delay = seconds

    def listing_requests(self) -> int:
        """How many requests were for listing pages (search, category, home), faults included."""
        return len(self.listing_paths())

    def listing_paths(self) -> list[str]:
        with self._lock:
            logged = list(self.requests)
        return [target for target in logged if _route(target)[1] is not None]

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- internals ----------------------------------------------------------------------------

    def _add(self, article: SiteArticle) -> None:
        if article.id in self._articles:
            raise ValueError(f"duplicate article id {article.id}")
        if article.slug in self._by_slug:
            raise ValueError(f"duplicate article slug {article.slug!r}")
        if article.published.tzinfo is None:
            article = SiteArticle(
                article.id,
                article.slug,
                article.title,
                article.summary,
                _aware(article.published),
                article.categories,
            )
        self._articles[article.id] = article
        self._by_slug[article.slug] = article

    def _listing(self, kind: str, key: str) -> tuple[SiteArticle, ...]:
        cache_key = (kind, key.lower())
        with self._lock:
            cached = self._listings.get(cache_key)
            if cached is not None:
                return cached
            chosen: Iterable[SiteArticle] = self._articles.values()
            needle = key.lower()
            if kind == "category":
                chosen = [a for a in chosen if needle in a.categories]
            elif kind == "search" and needle != self.search_term.lower():
                chosen = [
                    a for a in chosen if needle in a.title.lower() or needle in a.summary.lower()
                ]
            result = tuple(sorted(chosen, key=lambda a: (a.published, a.id), reverse=True))
            self._listings[cache_key] = result
            return result

    def _teaser(self, article: SiteArticle, base: str) -> str:
        snippet = self._teasers.get(article.id)
        if snippet is None:
            snippet = article.teaser_html(base)
            self._teasers[article.id] = snippet
        return snippet

    def _track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _handle(self, target: str) -> _Response:
        with self._lock:
            self.requests.append(target)
        if self._delay > 0:
            self._stopping.wait(self._delay)
        fault = self._take_fault(target)
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            body = f"<html><body><h1>Error {fault.status}</h1></body></html>".encode()
            return _Response(fault.status, body, headers=headers)
        base = self.base_url
        path, listing = _route(target)
        if listing is not None:
            return self._render_listing(listing, base)
        if path == "/robots.txt":
            text = (
                "User-agent: *\nDisallow: /wp-admin/\nAllow: /wp-admin/admin-ajax.php\n\n"
                f"Sitemap: {base}/wp-sitemap.xml\n"
            )
            return _Response(200, text.encode(), "text/plain; charset=UTF-8")
        slug = path.strip("/")
        with self._lock:
            article = self._by_slug.get(slug)
        if article is None:
            return self._not_found(base)
        return _Response(200, self._article_page(article, base).encode())

    def _take_fault(self, target: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.paths is not None and fault.paths not in target:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _page_link(self, listing: _Listing, page: int, base: str) -> str:
        if listing.kind == "search":
            query = f"?s={quote_plus(listing.key)}"
            return f"{base}/{query}" if page == 1 else f"{base}/page/{page}/{query}"
        prefix = f"{base}/category/{listing.key}/" if listing.kind == "category" else f"{base}/"
        return prefix if page == 1 else f"{prefix}page/{page}/"

    def _render_listing(self, listing: _Listing, base: str) -> _Response:
        if listing.kind == "category":
            with self._lock:
                known = {c for a in self._articles.values() for c in a.categories} | {"news"}
            if listing.key not in known:
                return self._not_found(base)
        shown = self._listing(listing.kind, listing.key or self.search_term)
        total = len(shown)
        per = self.per_page
        last_page = max(1, -(-total // per))
        if listing.page < 1 or listing.page > last_page:
            return self._not_found(base)
        first = (listing.page - 1) * per
        chunk = shown[first : first + per]
        if listing.kind == "search":
            term = html.escape(listing.key)
            title = f"You searched for {term} - {SITE_NAME}"
            body_class = "search search-results" if total else "search search-no-results"
        elif listing.kind == "category":
            label = html.escape(listing.key.replace("-", " ").title())
            title = f"{label} Archives - {SITE_NAME}"
            body_class = f"archive category category-{html.escape(listing.key)}"
        else:
            title = f"{SITE_NAME} - Independent news from Central Asia"
            body_class = "home blog"
        if listing.page > 1:
            title = title.replace(f" - {SITE_NAME}", f" - Page {listing.page} - {SITE_NAME}", 1)
        parts = [self._head(title, body_class, base), '<main id="main" class="site-main">\n']
        if total:
            parts.append(
                f' <div class="search-results-count">Viewing results {first + 1} - '
                f"{first + len(chunk)} of {total}</div>\n"
            )
            parts.extend(self._teaser(a, base) for a in chunk)
            parts.append(self._pagination(listing, last_page, base))
        else:
            parts.append(
                ' <section class="no-results not-found"><header class="page-header">'
                '<h1 class="page-title">Nothing Found</h1></header><div class="page-content">'
                "<p>Sorry, but nothing matched your search terms.</p></div></section>\n"
            )
        parts.append("</main>\n")
        parts.append(self._foot(base))
        return _Response(200, "".join(parts).encode())

    def _pagination(self, listing: _Listing, last: int, base: str) -> str:
        if last == 1:
            return ""
        page = listing.page
        links = []
        if page > 1:
            href = self._page_link(listing, page - 1, base)
            links.append(f'<a class="prev page-numbers" href="{href}">Previous</a>')
        shown = sorted({n for n in (1, page - 1, page, page + 1, last) if 1 <= n <= last})
        previous = 0
        for n in shown:
            if n - previous > 1:
                links.append('<span class="page-numbers dots">&hellip;</span>')
            if n == page:
                links.append(f'<span aria-current="page" class="page-numbers current">{n}</span>')
            else:
                href = self._page_link(listing, n, base)
                links.append(f'<a class="page-numbers" href="{href}">{n}</a>')
            previous = n
        if page < last:
            href = self._page_link(listing, page + 1, base)
            links.append(f'<a class="next page-numbers" href="{href}">Next</a>')
        return (
            ' <nav class="navigation pagination" aria-label="Posts">'
            '<h2 class="screen-reader-text">Posts navigation</h2><div class="nav-links">\n  '
            + "\n  ".join(links)
            + "</div></nav>\n"
        )

    def _head(self, title: str, body_class: str, base: str) -> str:
        return (
            '<!DOCTYPE html><html lang="en-US"><head><meta charset="UTF-8">'
            f"<title>{title}</title>"
            f'<link rel="alternate" type="application/rss+xml" href="{base}/feed/"></head>\n'
            f'<body class="{body_class}">\n'
            '<header id="masthead" class="site-header"><nav class="main-navigation">'
            f'<a href="{base}/">Home</a> <a href="/category/news/">News</a> '
            '<a href="/category/opinion/">Opinion</a> <a href="/category/kyrgyzstan/">Kyrgyzstan'
            '</a> <a href="/category/kazakhstan/">Kazakhstan</a> <a href="/about-us/">About</a>'
            "</nav>\n"
            ' <ul class="ticker"><li>KGS/USD = 0.01144 0%</li><li>KZT/USD = 0.00192 0.52%</li>'
            "<li>TJS/USD = 0.10013 0%</li><li>UZS/USD = 0.00008 0%</li></ul>\n"
            ' <form role="search" method="get" action="/"><input type="search" name="s">'
            "</form></header>\n"
            '<div id="content" class="site-content">\n'
        )

    def _foot(self, base: str) -> str:
        minis = "".join(
            f'<article class="post mini"><h2 class="entry-title"><a href="/{slug}/">'
            f"{wp_text(title)}</a></h2></article>\n "
            for slug, title in SIDEBAR
        )
        return (
            '<aside id="secondary" class="widget-area"><section class="widget">'
            f'<h2 class="widget-title">Most Read</h2>\n {minis}</section></aside></div>\n'
            '<footer id="colophon" class="site-footer"><a href="/privacy-policy/">Privacy</a> '
            f'&copy; 2025 <a href="{base}/">{SITE_NAME}</a></footer></body></html>\n'
        )

    def _not_found(self, base: str) -> _Response:
        page = (
            self._head(f"Page not found - {SITE_NAME}", "error404", base)
            + '<main id="main" class="site-main"><section class="error-404 not-found">'
            '<h1 class="page-title">Oops! That page can&rsquo;t be found.</h1></section></main>\n'
            + self._foot(base)
        )
        return _Response(404, page.encode())

    def _article_page(self, article: SiteArticle, base: str) -> str:
        title = article._title_html()
        return (
            self._head(
                f"{title} - {SITE_NAME}", f"single single-post postid-{article.id}", base
            ).replace(
                "</head>", f'<link rel="canonical" href="{article.canonical_url(base)}"></head>'
            )
            + f'<main id="main" class="site-main"><article id="post-{article.id}" '
            f'class="post-{article.id} post type-post status-publish hentry">\n'
            f'<header class="entry-header"><h1 class="entry-title">{title}</h1>'
            f'<div class="entry-meta">{article._time_html()}</div></header>\n'
            f'<div class="entry-content"><p>{article._summary_html()}</p></div></article>'
            "</main>\n" + self._foot(base)
        )


# --- article sets --------------------------------------------------------------------------


def sample_articles() -> list[SiteArticle]:
    """The realistic articles of worker/site_data/articles.json, in file order (oldest first)."""
    raw = resources.files("worker").joinpath("site_data/articles.json").read_text("utf-8")
    return [
        SiteArticle(
            id=int(item["id"]),
            slug=item["slug"],
            title=item["title"],
            summary=item["summary"],
            published=_aware(datetime.fromisoformat(item["published"])),
            categories=tuple(item["categories"]),
        )
        for item in json.loads(raw)["articles"]
    ]


_COUNTRIES = (
    "Kazakhstan",
    "Kyrgyzstan",
    "Uzbekistan",
    "Tajikistan",
    "Turkmenistan",
    "Afghanistan",
    "Mongolia",
    "China",
    "Türkiye",
    "Azerbaijan",
)
_TOPICS = (
    "Rail Freight",
    "Water Management",
    "Renewable Energy",
    "Digital Trade",
    "Critical Minerals",
    "Higher Education",
    "Tourism",
    "Logistics",
    "Agriculture",
    "Glacier Conservation",
)
_PROJECTS = (
    "China\u2013Kyrgyzstan\u2013Uzbekistan Railway",
    "Trans-Caspian Route",
    "Trans-Afghan Railway",
    "Belt and Road Initiative",
    "Digital Silk Road",
    "Kambarata-1 Hydropower Plant",
)
_TITLES = (
    "{a} and {b} Sign {n} Agreements on {topic}",
    "{a} Eyes ${n}0 Million Investment in {project}",
    "{a} Launches New {topic} Programme",
    "Opinion: What the {project} Means for {a}",
    "{a}\u2019s Parliament Approves {topic} Reform",
    "{a} & {b} Discuss {topic} and the {project}",
    "Interview: {a}\u2019s Minister on \u201c{topic}\u201d",
)
_SENTENCES = (
    "Officials in {a} said talks with {b} on {topic_l} would continue later this year.",
    "The {project} is expected to cut transit times between {a} and {b}.",
    "Trade between the two countries grew by {n}% last year, according to official data.",
    "Experts say the plan could attract up to ${n}0 million in new investment.",
    "The agreement also covers {topic_l}, a priority for both governments.",
)
_EXTRAS = (
    "Министерство транспорта сообщило о новых маршрутах.",
    '[caption id="attachment_{id}" align="aligncenter" width="1600"] Image: TCA[/caption]',
    '[video width="1920" height="1080" mp4="https://timesca.com/wp-content/uploads/2025/06/{id}.mp4"]'
    "[/video]",
)


def synthetic_articles(n: int, *, seed: int = 1) -> list[SiteArticle]:
    """`n` generated articles, deterministic for a seed, oldest first; the newest is dated
    2025-06-30 20:00 +05:00 and the others 15-60 minutes apart."""
    rng = random.Random(seed)
    moment = datetime(2025, 6, 30, 20, 0, tzinfo=SITE_TZ)
    newest_first: list[SiteArticle] = []
    for i in range(n):
        article_id = 100_000 + (n - i) * 3
        a, b = rng.sample(_COUNTRIES, 2)
        values = {
            "a": a,
            "b": b,
            "n": rng.randint(2, 40),
            "topic": rng.choice(_TOPICS),
            "project": rng.choice(_PROJECTS),
            "id": article_id,
        }
        values["topic_l"] = str(values["topic"]).lower()
        title = rng.choice(_TITLES).format(**values)
        sentences = [s.format(**values) for s in rng.sample(_SENTENCES, 3)]
        if i % 9 == 4:
            sentences.insert(1, _EXTRAS[0])
        if i % 11 == 5:
            sentences.insert(1, _EXTRAS[1].format(**values))
        if i % 13 == 6:
            sentences.append(_EXTRAS[2].format(**values))
        newest_first.append(
            SiteArticle(
                id=article_id,
                slug=f"{slugify(title)}-{article_id}",
                title=title,
                summary=" ".join(sentences),
                published=moment.astimezone(UTC),
                categories=("news",) if i % 10 else ("news", "opinion"),
            )
        )
        moment -= timedelta(minutes=rng.randint(15, 60))
    return newest_first[::-1]
