"""Alert messages: one Delivery -> title, Markdown (chat), HTML (email) and plain text.

Every scraped field (title, summary, source, keywords, link) is untrusted: it is whitespace-
collapsed, size-capped, escaped for the output format, and the link is only made clickable when
it is an http(s) URL.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from worker.match import occurs, snippet
from worker.models import Delivery

if TYPE_CHECKING:
    from worker.config import Config

TITLE_MAX = 250  # characters of the article title kept (email subjects, chat titles)
SUMMARY_MAX = 600  # characters of the summary kept
FIELD_MAX = 200  # source name, each keyword
URL_MAX = 2048
KEYWORDS_MAX = 20
SNIPPET_MAX = 200  # characters of the article's text quoted around the first matched term

# Every ASCII punctuation character may be backslash-escaped in CommonMark; these are the ones
# that can start or close Markdown syntax (emphasis, links, code, headings, lists, tables, HTML,
# strikethrough, raw HTML, entities).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")
# Chat services act on some plain text whatever the format: `@everyone`/`@here` (Discord),
# `<!channel>`/`<!here>`/`<@U123>` and `<https://evil|shown text>` (Slack, Mattermost),
# `@channel`/`@all` (Mattermost), `[shown text](https://evil)` (Markdown, and Discord and
# Mattermost in plain text too). A zero-width space after the `@` or `<`, or between `]` and
# `(`, keeps the text readable and makes it inert; backslashes would show in text-only services.
ZWSP = "\u200b"
_MENTION_RE = re.compile(
    r"(?i)(@)(?=(?:everyone|here|channel|all|group)\b)|(<)(?=[!@#&]|[a-z][a-z0-9+.-]*:)"
)
_LINK_RE = re.compile(r"(\])(\s*\()")
# Characters left as they are in a link target; everything else is percent-encoded, including
# ( ) < > and whitespace, so that the URL cannot close a Markdown link or autolink.
_URL_SAFE = ":/?#@!$&'*+,;=%-._~[]"


@dataclass(frozen=True, slots=True)
class Message:
    title: str  # "[watchlist] Article title" (plain text, one line): email subjects, console
    markdown: str  # for chat channels that take Markdown
    html: str  # for email, an HTML body
    text: str  # plain text (email's text part, console)
    chat_title: str = ""  # the title for chat: mentions and links made inert (plain text)
    chat_text: str = ""  # plain text for text-only chat services (ntfy, json...): inert too
    message_id: str | None = None  # the email Message-ID: one per delivery, the same on a resend

    def __post_init__(self) -> None:
        if not self.chat_title:
            object.__setattr__(self, "chat_title", inert(self.title))
        if not self.chat_text:
            object.__setattr__(self, "chat_text", inert(self.text))


def clean(text: str, limit: int) -> str:
    """Collapse whitespace (control characters included) and cap at `limit` on a word boundary."""
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def inert(text: str) -> str:
    """`text` with mass mentions, chat mentions and Markdown or Slack links made inert by a
    zero-width space; otherwise unchanged (for plain text and, before escaping, Markdown)."""
    return _LINK_RE.sub(rf"\1{ZWSP}\2", _MENTION_RE.sub(rf"\1\2{ZWSP}", text))


def escape_markdown(text: str) -> str:
    """Backslash-escape every Markdown control character (the text must already be one line)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def escape_html(text: str) -> str:
    return html.escape(text, quote=True)


def safe_link(url: str) -> str | None:
    """The URL when it is an absolute http(s) URL fit to be linked, with unsafe characters
    percent-encoded; else None (the caller then shows it as text)."""
    url = url.strip()
    if not url or len(url) > URL_MAX:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(url, safe=_URL_SAFE)


def _published(delivery: Delivery, tz: tzinfo = UTC) -> str:
    """The article's date in the config's time zone."""
    if delivery.published is None:
        return "unknown"
    return delivery.published.astimezone(tz).date().isoformat()


@dataclass(frozen=True, slots=True)
class Templates:
    """The user's Jinja2 templates for one watchlist (None: the built-in layout)."""

    title: str | None = None
    body: str | None = None
    digest_title: str | None = None
    digest_body: str | None = None


DEFAULT_DIGEST_TITLE = "[{{ watchlist }}] {{ count }} new article{{ '' if count == 1 else 's' }}"
DEFAULT_DIGEST_BODY = (
    "{% for a in articles %}"
    "- {{ a.title }}: {{ a.url }} ({{ a.source }}, {{ a.published }})\n"
    "{% endfor %}"
)
SNIPPET_MAX = 200
_FORMATS = ("text", "chat", "markdown", "html")


def _escaper(fmt: str) -> Callable[[str], Any]:
    """Scraped text -> the value a template sees for a format (escaped whatever it does)."""
    if fmt == "text":
        return lambda text: text
    if fmt == "chat":
        return inert
    if fmt == "markdown":
        return lambda text: escape_markdown(inert(text))
    from markupsafe import escape

    return escape  # a Markup string: autoescape leaves it as it is, escaped once


def _article_context(delivery: Delivery, tz: tzinfo, fmt: str, quote: str | None) -> dict[str, Any]:
    """What a template sees of one article; `quote`: body_quote(delivery), found once for all
    formats (it reads the whole body)."""
    esc = _escaper(fmt)
    link = safe_link(delivery.article_url)
    raw = clean(delivery.article_url, URL_MAX)
    if link is not None:
        url = link if fmt in ("text", "chat", "markdown") else esc(link)
    else:
        url = esc(raw + " (not an http(s) link)")
    summary = clean(delivery.summary, SUMMARY_MAX)
    return {
        "title": esc(clean(delivery.title, TITLE_MAX) or "(untitled)"),
        "url": url,
        "summary": esc(summary),
        "published": esc(_published(delivery, tz)),
        "source": esc(clean(delivery.source, FIELD_MAX)),
        "snippet": esc(clean(quote or summary, SNIPPET_MAX)),
        "matched": [esc(clean(k, FIELD_MAX)) for k in delivery.keywords[:KEYWORDS_MAX]],
    }


def _render_formats(
    title_source: str, body_source: str, contexts: dict[str, dict[str, Any]]
) -> dict[str, str]:
    from worker.templates import render_template

    out = {}
    for fmt in _FORMATS:
        out[fmt] = render_template(body_source, contexts[fmt], autoescape=fmt == "html")
    out["html"] = out["html"].strip().replace("\n", "<br>\n")
    out["title"] = clean(render_template(title_source, contexts["text"]), TITLE_MAX + FIELD_MAX)
    out["chat_title"] = inert(out["title"])  # (clean() would turn the zero-width spaces to spaces)
    return out


def render(delivery: Delivery, *, tz: tzinfo = UTC, templates: Templates | None = None) -> Message:
    """Build the alert for one delivery; every scraped field is escaped for its format. With
    templates, the user's title and/or body replace the built-in ones."""
    quote = body_quote(delivery)
    base = _render_builtin(delivery, tz, quote)
    if templates is None or (templates.title is None and templates.body is None):
        return base
    contexts = {}
    for fmt in _FORMATS:
        article = _article_context(delivery, tz, fmt, quote)
        contexts[fmt] = {
            "watchlist": _escaper(fmt)(clean(delivery.watchlist, FIELD_MAX)),
            "article": article,
            "matched": article["matched"],
        }
    out = _render_formats(templates.title or "{{ '' }}", templates.body or "{{ '' }}", contexts)
    fields: dict[str, str] = {}
    if templates.title is not None:
        fields |= {"title": out["title"], "chat_title": out["chat_title"]}
    if templates.body is not None:
        fields |= {
            "markdown": out["markdown"],
            "html": out["html"],
            "text": out["text"],
            "chat_text": out["chat"],
        }
    return replace(base, **fields)


def render_digest(
    key: str,
    items: Sequence[Delivery],
    *,
    tz: tzinfo = UTC,
    templates: Templates | None = None,
) -> Message:
    """One message listing `items` (a digest, or alerts held by quiet hours or a rate limit);
    `key` identifies it (its Message-ID is derived from it, the same on a resend)."""
    import hashlib

    templates = templates or Templates()
    names = sorted({d.watchlist for d in items})
    contexts = {}
    quotes = [body_quote(d) for d in items]
    for fmt in _FORMATS:
        esc = _escaper(fmt)
        articles = [_article_context(d, tz, fmt, q) for d, q in zip(items, quotes, strict=True)]
        contexts[fmt] = {
            "watchlist": esc(", ".join(clean(n, FIELD_MAX) for n in names)),
            "articles": articles,
            "count": len(articles),
            "matched": sorted({k for a in articles for k in a["matched"]}),
        }
    out = _render_formats(
        templates.digest_title or DEFAULT_DIGEST_TITLE,
        templates.digest_body or DEFAULT_DIGEST_BODY,
        contexts,
    )
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return Message(
        title=out["title"],
        markdown=out["markdown"],
        html=out["html"],
        text=out["text"],
        chat_title=out["chat_title"],
        chat_text=out["chat"],
        message_id=f"<worker.digest.{digest}@alerts.invalid>",
    )


@dataclass(frozen=True, slots=True)
class Rendering:
    """How the config wants messages: its time zone and each watchlist's templates."""

    tz: tzinfo = UTC
    default: Templates | None = None
    by_watchlist: Mapping[str, Templates] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Rendering:
        t = config.templates
        default = Templates(t.title, t.body, t.digest_title, t.digest_body)
        # only the watchlists with templates of their own (the others use `default`: one
        # Templates each took 58 ms of a reload at 10,000 watchlists)
        by_watchlist = {
            w.name: replace(
                default,
                title=w.title_template or default.title,
                body=w.body_template or default.body,
            )
            for w in config.watchlists
            if w.title_template or w.body_template
        }
        return cls(config.tz, default, by_watchlist)

    def message(self, delivery: Delivery) -> Message:
        templates = self.by_watchlist.get(delivery.watchlist, self.default)
        return render(delivery, tz=self.tz, templates=templates)

    def digest(self, key: str, items: Sequence[Delivery]) -> Message:
        names = {d.watchlist for d in items}
        templates = self.by_watchlist.get(names.pop()) if len(names) == 1 else None
        return render_digest(key, items, tz=self.tz, templates=templates or self.default)


def body_quote(delivery: Delivery) -> str | None:
    """For a match in the article's text (which the alert does not show otherwise): the words
    around the first matched term that occurs in neither the title nor the summary; None when
    every matched term is in them (the reader sees why there) or there is no text."""
    if not delivery.body:
        return None
    terms = delivery.keywords[:KEYWORDS_MAX]
    only_in_body = [
        t for t in terms if not occurs(delivery.title, [t]) and not occurs(delivery.summary, [t])
    ]
    return snippet(delivery.body, only_in_body) if only_in_body else None


def _render_builtin(delivery: Delivery, tz: tzinfo, quote: str | None) -> Message:
    title = clean(delivery.title, TITLE_MAX) or "(untitled)"
    summary = clean(delivery.summary, SUMMARY_MAX)
    source = clean(delivery.source, FIELD_MAX)
    keywords = [clean(k, FIELD_MAX) for k in delivery.keywords[:KEYWORDS_MAX]]
    watchlist = clean(delivery.watchlist, FIELD_MAX)
    published = _published(delivery, tz)
    link = safe_link(delivery.article_url)
    raw_link = clean(delivery.article_url, URL_MAX)
    quote_text = clean(quote, SNIPPET_MAX) if quote else ""

    full_title = f"[{watchlist}] {title}"

    # --- Markdown (chat) ---
    def md(text: str) -> str:
        return escape_markdown(inert(text))

    md_kw = ", ".join(md(k) for k in keywords) or "none"
    if link:
        md_link = f"<{link}>"
    else:
        md_link = f"{md(raw_link)} (not an http(s) link)"
    md_lines = [
        f"**{md(title)}**",
        "",
        f"- Link: {md_link}",
        f"- Source: {md(source)}",
        f"- Published: {md(published)}",
        f"- Keywords: {md_kw}",
    ]
    if quote_text:
        md_lines.append(f"- In the text: {escape_markdown(quote_text)}")
    if summary:
        md_lines += ["", md(summary)]
    markdown = "\n".join(md_lines)

    # --- HTML (email) ---
    if link:
        href = escape_html(link)
        html_link = f'<a href="{href}">{href}</a>'
        html_title = f'<a href="{href}">{escape_html(title)}</a>'
    else:
        html_link = f"{escape_html(raw_link)} (not an http(s) link)"
        html_title = escape_html(title)
    html_kw = ", ".join(escape_html(k) for k in keywords) or "none"
    html_parts = [
        f"<p><strong>{html_title}</strong></p>",
        "<ul>",
        f"<li>Link: {html_link}</li>",
        f"<li>Source: {escape_html(source)}</li>",
        f"<li>Published: {escape_html(published)}</li>",
        f"<li>Keywords: {html_kw}</li>",
        *([f"<li>In the text: {escape_html(quote_text)}</li>"] if quote_text else []),
        "</ul>",
    ]
    if summary:
        html_parts.append(f"<p>{escape_html(summary)}</p>")
    html_body = "\n".join(html_parts)

    # --- plain text ---
    text_lines = [
        title,
        "",
        f"Link: {link or raw_link + ' (not an http(s) link)'}",
        f"Source: {source}",
        f"Published: {published}",
        f"Keywords: {', '.join(keywords) or 'none'}",
    ]
    if quote_text:
        text_lines.append(f"In the text: {quote_text}")
    if summary:
        text_lines += ["", summary]
    text = "\n".join(text_lines)
    # the same for chat services that take plain text; the link is ours (checked http(s)), so
    # only a link that is not one is made inert
    chat_lines = [inert(line) for line in text_lines]
    if link:
        chat_lines[2] = f"Link: {link}"

    return Message(
        title=full_title,
        markdown=markdown,
        html=html_body,
        text=text,
        chat_title=inert(full_title),
        chat_text="\n".join(chat_lines),
        message_id=message_id(delivery),
    )


def message_id(delivery: Delivery) -> str:
    """`<worker.ID.DIGEST@alerts.invalid>`: derived from the delivery (its id, and a digest of
    its article, watchlist and channel, so that two databases' ids do not collide), so a resend
    after a crash carries the same Message-ID and mail clients show it once."""
    import hashlib

    key = f"{delivery.id}\n{delivery.article_url}\n{delivery.watchlist}\n{delivery.channel}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"<worker.{delivery.id}.{digest}@alerts.invalid>"


def alert_test_message(channel: str) -> Message:
    """The message `worker test-alert` sends."""
    name = clean(channel, FIELD_MAX)
    body = f"This is a test alert from the worker for channel {name}. If you see it, it works."
    return Message(
        title="[worker] test alert",
        markdown=escape_markdown(body),
        html=f"<p>{escape_html(body)}</p>",
        text=body,
    )
