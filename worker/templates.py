"""Message templates: Jinja2 in a sandbox, with undefined variables an error.

The templates are the user's; the values are scraped (untrusted). worker.notify.render escapes
every value for the channel's format before it reaches a template, so whatever a template does
with a value (`|safe`, `{% autoescape false %}`) it cannot put markup of the page's in a message.
The sandbox keeps a template from reaching Python internals (`''.__class__`...).

A template is checked when the config loads: compiled, then rendered against a sample article
(and a sample digest), so a syntax error or an unknown variable is a config error with its key.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

TEMPLATE_MAX = 20_000  # characters of one template; a message template longer is a mistake
OUTPUT_MAX = 100_000  # characters of one rendered message, cut beyond


@functools.cache
def environment(autoescape: bool = False) -> Any:
    """The sandboxed Jinja2 environment (one with HTML autoescape for email)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@functools.cache
def compiled(source: str, autoescape: bool = False) -> Any:
    """The compiled template (cached: a config holds a handful)."""
    return environment(autoescape).from_string(source)


def render_template(source: str, context: Mapping[str, Any], *, autoescape: bool = False) -> str:
    """Render `source` with `context`; raises jinja2's errors (TemplateError) as they come."""
    out = compiled(source, autoescape).render(**context)
    return out if len(out) <= OUTPUT_MAX else out[: OUTPUT_MAX - 1] + "…"


def sample_article() -> dict[str, Any]:
    return {
        "title": "Sample article",
        "url": "https://example.org/news/sample",
        "summary": "A sample summary.",
        "published": "2026-01-01",
        "source": "sample-source",
        "snippet": "A sample summary.",
    }


def sample_context(*, digest: bool) -> dict[str, Any]:
    article = sample_article()
    context: dict[str, Any] = {"watchlist": "sample", "matched": ["sample"]}
    if digest:
        context["articles"] = [article | {"matched": ["sample"]}, article | {"matched": []}]
        context["count"] = 2
    else:
        context["article"] = article
    return context


def check_template(source: str, *, digest: bool) -> None:
    """ValueError (one line) when `source` does not compile or does not render against a sample
    article (an unknown variable, a call the sandbox refuses)."""
    from jinja2 import TemplateError

    if len(source) > TEMPLATE_MAX:
        raise ValueError(f"a template is at most {TEMPLATE_MAX:,} characters")
    for autoescape in (False, True):
        try:
            render_template(source, sample_context(digest=digest), autoescape=autoescape)
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f" (line {line})" if line else ""
            text = " ".join(str(exc).split())[:200]
            raise ValueError(f"template error{where}: {type(exc).__name__}: {text}") from None
        except Exception as exc:  # a filter given a wrong value (int('x')...) in the template
            text = " ".join(str(exc).split())[:200]
            raise ValueError(f"template fails on a sample article: {text}") from None
