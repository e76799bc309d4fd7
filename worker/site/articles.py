"""The articles of the local news site and their teaser markup, written the way WordPress does.

The markup is deterministic per article (derived from its id, never random per request): links
absolute or relative, some with tracking parameters (`utm_*`) or a `#respond` fragment; titles and
summaries written with HTML entities (`&amp;`, `&#8217;`, `&#8220;`, `&nbsp;`); summaries keep
their shortcode leftovers (`[caption ...]...[/caption]`).
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["SITE_TZ", "TRACKING", "SiteArticle", "aware", "slugify", "wp_text"]

SITE_TZ = timezone(timedelta(hours=5))  # Central Asian time, as timesca.com shows it
TRACKING = "?utm_source=search&#038;utm_medium=web"  # WordPress's esc_url writes & as &#038;

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


def aware(value: datetime) -> datetime:
    """`value`, a naive one taken as UTC."""
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
    body: str = ""  # the article's full text (paragraphs split by blank lines); "" : the summary
    canonical_slug: str = ""  # a syndicated copy: its page's rel=canonical names this article

    @property
    def paragraphs(self) -> list[str]:
        """The article's text, paragraph by paragraph (the summary when it has no body)."""
        text = self.body or self.expected_summary
        return [p.strip() for p in text.split("\n\n") if p.strip()]

    def content_html(self) -> str:
        """The article's text as WordPress renders `the_content` (entities, <p>s)."""
        return "\n".join(f"<p>{wp_text(p)}</p>" for p in self.paragraphs)

    def canonical_url(self, base: str) -> str:
        """The URL a crawler must end up with: `http://127.0.0.1:PORT/slug/`."""
        return f"{base.rstrip('/')}/{self.slug}/"

    def page_canonical(self, base: str) -> str:
        """The `<link rel="canonical">` of its page: its own URL, or the original's."""
        return f"{base.rstrip('/')}/{self.canonical_slug or self.slug}/"

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
