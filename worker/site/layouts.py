"""A local site serving one listing layout over several pages (the probe's test cases).

A layout is a table (tests/cases/probe/*.toml) of `str.format` templates:

- `first`, `page`: the path of page 1 and of page N (`{page}`, `{offset}` = items before it);
- `article`: the path of an article (`{slug}`, `{id}`, `{yyyy}`, `{mm}`, `{dd}`);
- `templates.page`: the whole page, with `{items}`, `{counter}`, `{pager}`, `{featured}`;
- `templates.item`: one teaser, with `{href}`, `{title}`, `{teaser}`, `{iso}` (ISO 8601 with
  the site's offset), `{human}` ("July 3, 2025"), `{dmy}` ("3 July 2025"), `{short}`
  ("Jul 3, 2025"), `{ymd}` ("2025-07-03"), `{dotted}` ("03.07.2025"), `{id}`;
- `templates.counter`: with `{first}`, `{last}`, `{total}`, `{page}`, `{pages}` (optional);
- `templates.pager` with `{links}`, and `number`/`current`/`prev`/`next` (`{href}`, `{n}`), each
  optional: a layout with only a "More" link has `next` alone, one with numbered pages only has
  `number` and `current`;
- `featured`: teasers rendered with `templates.item` into `{featured}` (a carousel of the same
  cards), taken from articles that are never in the listing.

Pages past the last answer 404; article paths answer a small article page.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from worker.site.articles import SITE_TZ, SiteArticle
from worker.site.server import Response, SiteServer

__all__ = ["Layout", "LayoutSite", "StaticSite"]


@dataclass(frozen=True)
class Layout:
    first: str
    page: str
    article: str
    templates: Mapping[str, str]
    per_page: int = 5

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Layout:
        return cls(
            first=table["first"],
            page=table["page"],
            article=table.get("article", "/{slug}/"),
            templates=dict(table["templates"]),
            per_page=int(table.get("per_page", 5)),
        )


def _fields(article: SiteArticle) -> dict[str, str]:
    local = article.published.astimezone(SITE_TZ)
    return {
        "title": html.escape(article.title, quote=False),
        "teaser": html.escape(article.expected_summary, quote=False),
        "iso": local.isoformat(),
        "human": f"{local:%B} {local.day}, {local.year}",
        "dmy": f"{local.day} {local:%B} {local.year}",
        "short": f"{local:%b} {local.day}, {local.year}",
        "ymd": f"{local:%Y-%m-%d}",
        "dotted": f"{local:%d.%m.%Y}",
        "id": str(article.id),
    }


class LayoutSite(SiteServer):
    """Serves `articles` (newest first) in `layout`, `layout.per_page` a page. Thread-safe:
    nothing changes after construction."""

    def __init__(
        self,
        layout: Layout,
        articles: Sequence[SiteArticle],
        *,
        featured: Sequence[SiteArticle] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.layout = layout
        self.articles = sorted(articles, key=lambda a: (a.published, a.id), reverse=True)
        self.featured = list(featured)
        self.pages = max(1, -(-len(self.articles) // layout.per_page))
        self._by_path = {self.article_path(a): a for a in [*self.articles, *self.featured]}

    # --- URLs ------------------------------------------------------------------------------

    def article_path(self, article: SiteArticle) -> str:
        local = article.published.astimezone(SITE_TZ)
        return self.layout.article.format(
            slug=article.slug,
            id=article.id,
            yyyy=f"{local:%Y}",
            mm=f"{local:%m}",
            dd=f"{local:%d}",
        )

    def page_path(self, number: int) -> str:
        if number == 1:
            return self.layout.first
        return self.layout.page.format(page=number, offset=(number - 1) * self.layout.per_page)

    @property
    def first_url(self) -> str:
        return self.base_url + self.layout.first

    def url(self, article: SiteArticle) -> str:
        return self.base_url + self.article_path(article)

    # --- answers ---------------------------------------------------------------------------

    def _respond(self, target: str) -> Response:
        for number in range(1, self.pages + 2):
            if _same_target(target, self.page_path(number)):
                if number > self.pages:
                    break
                return Response(200, self.listing(number).encode())
        article = self._by_path.get(urlsplit(target).path)
        if article is not None:
            title = html.escape(article.title, quote=False)
            body = (
                f"<!DOCTYPE html><html><head><title>{title}</title></head><body><article>"
                f"<h1>{title}</h1><p>{html.escape(article.expected_summary)}</p></article>"
                "</body></html>"
            )
            return Response(200, body.encode())
        return Response(404, b"<!DOCTYPE html><html><body><h1>Page not found</h1></body></html>")

    def listing(self, number: int) -> str:
        t = self.layout.templates
        per = self.layout.per_page
        chunk = self.articles[(number - 1) * per : number * per]
        items = "\n".join(self._teaser(a) for a in chunk)
        featured = "\n".join(self._teaser(a) for a in self.featured)
        counter = ""
        if "counter" in t:
            first = (number - 1) * per + 1
            counter = t["counter"].format(
                first=first,
                last=first + len(chunk) - 1,
                total=len(self.articles),
                page=number,
                pages=self.pages,
            )
        return t["page"].format(
            items=items, featured=featured, counter=counter, pager=self._pager(number)
        )

    def _teaser(self, article: SiteArticle) -> str:
        href = html.escape(self.article_path(article), quote=True)
        return self.layout.templates["item"].format(href=href, **_fields(article))

    def _pager(self, number: int) -> str:
        t = self.layout.templates
        links = []
        if number > 1 and "prev" in t:
            links.append(t["prev"].format(href=self.page_path(number - 1), n=number - 1))
        if "number" in t:
            for n in range(1, self.pages + 1):
                key = "current" if n == number else "number"
                links.append(t.get(key, t["number"]).format(href=self.page_path(n), n=n))
        if number < self.pages and "next" in t:
            links.append(t["next"].format(href=self.page_path(number + 1), n=number + 1))
        if not links:
            return ""
        return t.get("pager", "{links}").format(links="\n".join(links))


def _same_target(target: str, path: str) -> bool:
    a, b = urlsplit(target), urlsplit(path)
    return a.path.rstrip("/") == b.path.rstrip("/") and sorted(a.query.split("&")) == sorted(
        b.query.split("&")
    )


class StaticSite(SiteServer):
    """Serves fixed pages: `pages[path_and_query]` -> (status, HTML); 404 for the rest."""

    def __init__(
        self, pages: Mapping[str, tuple[int, str]], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host=host, port=port)
        self.pages = dict(pages)

    def _respond(self, target: str) -> Response:
        status, body = self.pages.get(target, (404, "<html><body>Not found</body></html>"))
        return Response(status, body.encode())
