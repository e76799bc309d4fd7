"""`NewsSite`: the articles of the local news site, served over HTTP (see `worker.site`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

from worker.site.api import feed_response, rest_posts_response
from worker.site.articles import SiteArticle, aware, slugify
from worker.site.render import Listing, article_page, listing_page, not_found, route
from worker.site.samples import sample_articles, synthetic_articles
from worker.site.server import Response, SiteServer

__all__ = ["NewsSite"]


@dataclass(slots=True)
class _Short:
    """Serve a listing page with only its first `keep` teasers (the counter unchanged)."""

    keep: int
    remaining: int | None
    paths: str | None
    page: int | None


class NewsSite(SiteServer):
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
        super().__init__(host=host, port=port)
        self.per_page = per_page
        self.search_term = search_term
        self._articles: dict[int, SiteArticle] = {}
        self._by_slug: dict[str, SiteArticle] = {}
        # the next id to give: above every id the site ever had, so that a deleted article's id
        # (and its cached teaser) is never handed to another one, as WordPress never does
        self._next_id = 40001
        for article in articles:
            self._add(article)
        self._listings: dict[tuple[str, str], tuple[SiteArticle, ...]] = {}
        self._teasers: dict[int, str] = {}
        self._shorts: list[_Short] = []
        # the REST API at /wp-json/wp/v2/posts: "on", "404" (switched off) or "html" (a plugin
        # that answers the home page instead)
        self.rest_api = "on"
        # the REST API's counter headers: "both" (X-WP-Total and X-WP-TotalPages), "pages"
        # (X-WP-TotalPages only) or "none" (stripped, as by some proxies)
        self.rest_counter = "both"
        # a new theme (`redesign()`): the teasers are <div class="card ..."> instead of
        # <article>, as when a site changes its markup (SELECT_TOML's items match nothing)
        self.redesigned = False

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

    # --- URLs ---------------------------------------------------------------------------------

    @property
    def feed_url(self) -> str:
        return f"{self.base_url}/feed/"

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
        body: str = "",
        canonical_of: SiteArticle | None = None,
    ) -> SiteArticle:
        """Add an article. Without `published` it is the newest (now, or after the newest).

        A naive `published` is taken as UTC. The slug comes from the title (made unique).
        """
        with self._lock:
            if published is None:
                now = datetime.now(UTC).replace(microsecond=0)
                newest = max((a.published for a in self._articles.values()), default=None)
                published = now if newest is None else max(now, newest + timedelta(minutes=1))
            new_id = self._next_id
            base_slug = slug or slugify(title) or f"post-{new_id}"
            unique, n = base_slug, 2
            while unique in self._by_slug:
                unique, n = f"{base_slug}-{n}", n + 1
            article = SiteArticle(
                id=new_id,
                slug=unique,
                title=title,
                summary=summary,
                published=aware(published),
                categories=tuple(categories),
                body=body,
                canonical_slug=canonical_of.slug if canonical_of is not None else "",
            )
            self._add(article)
            self._listings.clear()
            return article

    def insert(
        self,
        title: str,
        summary: str = "",
        *,
        position: int,
        categories: Sequence[str] = ("news",),
    ) -> SiteArticle:
        """Add an article at `position` (0 = the top) of the site's own search listing, dated
        halfway between its neighbours there: a late or backdated post, as editors make them.
        Past the end, it is dated a day before the oldest."""
        with self._lock:
            listed = self.articles()
            if not 0 <= position <= len(listed):
                raise ValueError(f"position {position} is outside 0..{len(listed)}")
            if not listed:
                return self.publish(title, summary, categories=categories)
            if position == 0:
                published = listed[0].published + timedelta(minutes=1)
            elif position == len(listed):
                published = listed[-1].published - timedelta(days=1)
            else:
                newer, older = listed[position - 1].published, listed[position].published
                if newer - older < timedelta(microseconds=2):
                    raise ValueError(
                        f"no date fits between positions {position - 1} and {position}"
                    )
                published = older + (newer - older) / 2
            return self.publish(title, summary, published=published, categories=categories)

    def delete(self, article: SiteArticle | str) -> None:
        """Remove an article (object or slug); KeyError if the site does not have it. Its id is
        never given again."""
        slug = article if isinstance(article, str) else article.slug
        with self._lock:
            found = self._by_slug.pop(slug)
            del self._articles[found.id]
            self._teasers.pop(found.id, None)
            self._listings.clear()

    def serve_short(
        self,
        keep: int = 0,
        *,
        page: int | None = None,
        paths: str | None = None,
        count: int | None = 1,
    ) -> None:
        """Serve the next `count` requests (None: until `heal()`) for listing page `page` (and
        / or whose target contains `paths`) with only its first `keep` teasers, the counter
        unchanged: a page cut short by a failing backend (`keep=0`: an empty page)."""
        if count is not None and count < 1:
            raise ValueError("count must be at least 1 (or None for 'until heal()')")
        with self._lock:
            self._shorts.append(_Short(keep, count, paths, page))

    def heal(self) -> None:
        with self._lock:
            super().heal()
            self._shorts.clear()

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

    # --- request log ----------------------------------------------------------------------

    def listing_requests(self) -> int:
        """How many requests were for listing pages (search, category, home), faults included."""
        return len(self.listing_paths())

    def listing_paths(self) -> list[str]:
        with self._lock:
            logged = list(self.requests)
        return [target for target in logged if route(target)[1] is not None]

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
                aware(article.published),
                article.categories,
                article.body,
                article.canonical_slug,
            )
        self._articles[article.id] = article
        self._by_slug[article.slug] = article
        self._next_id = max(self._next_id, article.id + 1)

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
        if self.redesigned:
            snippet = snippet.replace(" <article ", ' <div data-card="1" ', 1)
            snippet = snippet.replace("</article>", "</div>")
        return snippet

    def redesign(self, on: bool = True) -> None:
        """Switch to a new theme whose teasers are no `<article>` elements (on), or back."""
        self.redesigned = on

    def _base_changed(self) -> None:
        self._teasers.clear()

    def _page_of(self, target: str) -> int | None:
        listing = route(target)[1]
        return listing.page if listing is not None else None

    def _respond(self, target: str) -> Response:
        base = self.base_url
        path, listing = route(target)
        if listing is not None:
            return self._render_listing(listing, base, target)
        if path == "/robots.txt":
            text = (
                "User-agent: *\nDisallow: /wp-admin/\nAllow: /wp-admin/admin-ajax.php\n\n"
                f"Sitemap: {base}/wp-sitemap.xml\n"
            )
            return Response(200, text.encode(), "text/plain; charset=UTF-8")
        if path == "/feed/":
            return feed_response(self._listing("home", ""), base)
        if path.startswith("/wp-json/"):
            if self.rest_api == "404":
                return not_found(base)
            if self.rest_api == "html":
                return self._render_listing(Listing("home", "", 1), base, target)
            with self._lock:
                every = tuple(self._articles.values())
            return rest_posts_response(
                path, target, every, base, self.search_term, self.rest_counter
            )
        slug = path.strip("/")
        with self._lock:
            article = self._by_slug.get(slug)
        if article is None:
            return not_found(base)
        return Response(200, article_page(article, base).encode())

    def _render_listing(self, listing: Listing, base: str, target: str) -> Response:
        if listing.kind == "category":
            with self._lock:
                known = {c for a in self._articles.values() for c in a.categories} | {"news"}
            if listing.key not in known:
                return not_found(base)
        shown = self._listing(listing.kind, listing.key or self.search_term)
        with self._lock:
            shorts = self._take(self._shorts, target, first=True)
        keep = shorts[0].keep if shorts else None
        return listing_page(listing, shown, self.per_page, base, self._teaser, keep=keep)
