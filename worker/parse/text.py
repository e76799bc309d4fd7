"""Text cleaning for the parse stage: control characters, whitespace, caps, WordPress shortcodes.

Scraped text is untrusted: `clean_text` drops control characters, collapses whitespace and caps
the length; `strip_shortcodes` removes WordPress shortcode leftovers from summaries.
"""

from __future__ import annotations

import re

__all__ = ["RAW_CAP", "clean_text", "recap_text", "strip_shortcodes"]

RAW_CAP = 2  # read at most cap * RAW_CAP characters (whitespace collapsed) before cleaning

# --- text cleaning -----------------------------------------------------------------------------

# C0/C1 controls (tab/newline/CR are whitespace, kept for the collapse below), zero-width space,
# word joiner, BOM and non-characters. ZWNJ/ZWJ stay: they are meaningful in Persian, emoji...
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u2060\ufeff\ufffe\uffff]")
# The controls that are whitespace too: str.split would turn them into a space, not drop them.
_SPACE_CONTROLS = "\x0b\x0c\x1c\x1d\x1e\x1f\x85"  # tests check it against _CONTROL_RE


def _has_space_control(text: str) -> bool:
    """Any of `_SPACE_CONTROLS` in `text` (seven str.find in C: faster than a regex scan)."""
    for control in _SPACE_CONTROLS:
        if control in text:
            return True
    return False


def clean_text(text: str, limit: int | None = None) -> str:
    """Control characters dropped, whitespace runs (incl. NBSP) collapsed to one space, stripped;
    cut to at most `limit` characters (ending with '…' when cut)."""
    # str.split() splits where re's \s would match (str.isspace). Every control character is
    # non-printable: a printable result shows the text held none, but for the whitespace ones
    # (split into a space where they must vanish), looked for separately.
    cleaned = " ".join(text.split())
    if not cleaned.isprintable() or _has_space_control(text):
        cleaned = " ".join(_CONTROL_RE.sub("", text).split())
    return cleaned if limit is None else _cap(cleaned, limit)


def recap_text(text: str, limit: int) -> str:
    """`clean_text(text, limit)` for a `text` that is a cut of what clean_text returned (so at
    most a trailing space left to drop), without cleaning it again."""
    return _cap(text.rstrip(), limit)


def _cap(text: str, limit: int) -> str:
    if len(text) > limit:
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
