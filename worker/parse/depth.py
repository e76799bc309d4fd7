"""How deep a page nests: the open-element stack of the HTML tree builder, modelled tag by tag.

lexbor's tree building costs time proportional to the depth of the stack of open elements for
each element it inserts (measured: 5 MB of 1,000-deep blocks 1.0 s, 5,000-deep 4.7 s, 10,000-deep
9.9 s; one 100k-deep block 23-28 s), so a page nesting deeper than the limit is refused before
lexbor sees it.

The scan follows the HTML standard's tokenizer where it decides what is markup: comments end
where the spec ends them (`<!-->` and `<!--->` are whole comments); `<!...>`, `<?...>` and
`</ x>` are bogus comments; raw text (script, style, title, textarea, xmp, iframe, noembed,
noframes, plaintext) exists only in HTML content (`<svg><title>` is an element, and its children
are HTML again); quoted attribute values may hold `>`. A CDATA section (SVG, MathML) is read as
a bogus comment ending at the first `>`: more markup than lexbor sees, never less.

Tree building is modelled as far as depth needs it: void elements, implied ends (p, li, dd, dt,
option, table parts...), end tags that close what is above them, special elements that stop an
end tag, breakout from foreign content (and `</p>`, `</br>` in it), the list of active formatting
elements with its reconstruction and Noah's Ark (`<button><i><font color=r>` repeated nests
without bound), framesets (after one, every start tag counts).

Where the model is unsure it keeps elements open: it may count a page deeper than lexbor builds
it (the limit is far above what real pages nest). A seeded random tag-soup test compares the
count with lexbor's own tree; left out, so counted shallower than lexbor: formatting elements
reopened by text alone, and some select/button/nobr mixes (seen: lexbor 210 deep, counted 9).
"""

from __future__ import annotations

import re
import time

__all__ = ["nesting_depth"]

_WS = "\t\n\f\r "
# A start or end tag from its "<": the name, attributes (quoted values may hold ">", a "/" not
# before ">" is ignored), then "/>" or ">". Possessive repeats inside each attribute, and a name
# without a value is not followed by "=": one way to read a tag, no backtracking on hostile
# input. (Not a possessive repeat of the whole group: Python 3.11.2, Debian 12's, then fails to
# match `<p/>` and counted 3,000 nested self-closing-syntax divs as 0 deep.)
# No match means the tag runs to the end of the input, where the spec drops it.
_TAG_RE = re.compile(
    rf"</?([A-Za-z][^{_WS}/>]*+)"
    rf"((?:[{_WS}]++|/(?!>)|[^{_WS}/>][^{_WS}/>=]*+"
    rf"(?:[{_WS}]*+=[{_WS}]*+(?:\"[^\"]*+\"|'[^']*+'|[^{_WS}>]*+)|(?![{_WS}]*+=)))*)"
    r"(/?)>"
)
_COMMENT_END_RE = re.compile(r"--!?>")
_ANNOTATION_HTML_RE = re.compile(
    rf"(?:^|[{_WS}/\"'])encoding[{_WS}]*=[{_WS}]*[\"']?(?:text/html|application/xhtml\+xml)"
    rf"(?=[\"'{_WS}/]|$)",
    re.IGNORECASE,
)

_VOID = frozenset(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param "
    "source track wbr".split()
)
_RAW_TEXT = frozenset("script style xmp iframe noembed noframes title textarea".split())
# On the stack, but never counted: a sibling or an ancestor's end closes them implicitly, and
# lexbor keeps them shallow (an unclosed <p> per paragraph is common markup).
_UNCOUNTED = frozenset("html head body p li dt dd option optgroup colgroup rb rt rtc rp".split())
_SPECIAL = frozenset(
    "address applet area article aside base basefont bgsound blockquote body br button caption "
    "center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form "
    "frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li "
    "link listing main marquee menu meta nav noembed noframes noscript object ol p param "
    "plaintext pre script search section select source style summary table tbody td template "
    "textarea tfoot th thead title tr track ul wbr xmp".split()
)
# (frameset is no scope boundary in the spec: in a frameset the other tags are ignored, so
# nothing pops one but its own end tag; here it stops every search instead)
_SCOPE = frozenset("applet caption html table td th marquee object template frameset".split())
_FORMATTING = frozenset("a b big code em font i nobr s small strike strong tt u".split())
# Start tags that close an open <p> (when one is in button scope).
_CLOSES_P = frozenset(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption "
    "figure footer header hgroup main menu nav ol p search section summary ul h1 h2 h3 h4 h5 h6 "
    "pre listing form plaintext table hr xmp li dd dt".split()
)
_HEADINGS = frozenset("h1 h2 h3 h4 h5 h6".split())
# Start tags that end foreign content (the spec's breakout list; <font> with some attributes).
_BREAKOUT = frozenset(
    "b big blockquote body br center code dd div dl dt em embed h1 h2 h3 h4 h5 h6 head hr i img "
    "li listing menu meta nobr ol p pre ruby s small span strong strike sub sup table tt u ul "
    "var".split()
)
_FONT_BREAKOUT_RE = re.compile(rf"(?:^|[{_WS}/])(?:color|face|size)(?:[{_WS}=/]|$)", re.I)
_SVG_HTML_POINTS = frozenset({"foreignobject", "desc", "title"})
_MATH_TEXT_POINTS = frozenset({"mi", "mo", "mn", "ms", "mtext"})
_TABLE_SCOPE = frozenset({"table", "html", "template"})
_TABLE_PARTS = frozenset("caption col colgroup tbody td tfoot th thead tr".split())
# implied ends of a start tag: the open elements it closes (with everything above them), where
# the search stops, and whether a special element stops it too (except address, div, p)
_IMPLIED = {
    "li": (frozenset({"li"}), _SCOPE, True),
    "dd": (frozenset({"dd", "dt"}), _SCOPE, True),
    "dt": (frozenset({"dd", "dt"}), _SCOPE, True),
    "td": (frozenset({"td", "th"}), _TABLE_SCOPE, False),
    "th": (frozenset({"td", "th"}), _TABLE_SCOPE, False),
    "tr": (frozenset({"tr", "td", "th"}), _TABLE_SCOPE, False),
    "tbody": (frozenset({"tbody", "thead", "tfoot"}), _TABLE_SCOPE, False),
    "thead": (frozenset({"tbody", "thead", "tfoot"}), _TABLE_SCOPE, False),
    "tfoot": (frozenset({"tbody", "thead", "tfoot"}), _TABLE_SCOPE, False),
    "button": (frozenset({"button"}), _SCOPE, False),
}
# start tags that close only the current node when it is one of these (never counted ones)
_CLOSES_CURRENT = {
    "option": frozenset({"option"}),
    "optgroup": frozenset({"option"}),
    "rb": frozenset({"rb", "rt", "rtc", "rp"}),
    "rtc": frozenset({"rb", "rt", "rtc", "rp"}),
    "rt": frozenset({"rb", "rt", "rp"}),
    "rp": frozenset({"rb", "rt", "rp"}),
}
_LIST_STOP_EXCEPT = frozenset({"address", "div", "p"})
_P_SCOPE = _SCOPE | {"button"}
# the next "<" that means something: "/" for an end tag, nothing for a start tag, else what
# follows the "<" of a comment, CDATA, "</>" or a bogus comment
_NEXT_RE = re.compile(r"<(?:[A-Za-z]|(/)[A-Za-z]|(!--|!\[CDATA\[|/>|[!?/]))")
# start tags with a rule of their own; end tags that never simply close the current node
_RULED = (
    _VOID
    | _RAW_TEXT
    | _CLOSES_P
    | _IMPLIED.keys()
    | _CLOSES_CURRENT.keys()
    | _TABLE_PARTS
    | _FORMATTING
    | {"svg", "math", "plaintext", "frameset", "applet", "object", "marquee", "template"}
)
_KEEP = _FORMATTING | {"body", "html", "head", "form"}
WALK = 128  # stack entries an end tag (or an implied end) looks through; beyond, it is ignored

HTML, SVG, MATH = 0, 1, 2


class _Entry:
    """An entry of the list of active formatting elements (None in that list is a marker)."""

    __slots__ = ("key", "name", "on_stack")

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.key = key  # name and attributes: Noah's Ark keeps three alike at most
        self.on_stack = True


# start tags that put a marker in the list of active formatting elements
_MARKERS = frozenset("applet object marquee template td th caption".split())
# start tags before which formatting elements are not reconstructed (blocks, tables, head)
_NO_RECONSTRUCT = _CLOSES_P | frozenset(
    "li dd dt form table hr textarea iframe noembed template frameset title style script "
    "meta link base head body html td th tr caption col colgroup tbody thead tfoot".split()
)


def nesting_depth(html: str, limit: int, budget: float | None = None) -> int:
    """The deepest the open-element stack gets (counted elements only), or a number over
    `limit` as soon as the stack passes it. TimeoutError when the scan takes longer than
    `budget` seconds (about 2 s per million tags left after `collapse_pairs`)."""
    return _Scan(collapse_pairs(html), limit, budget).run()


# Inline elements without a rule of their own, opened and closed around plain text: each such
# pair pushes and pops, so it is replaced by ">" before the scan (in C: 4 MB of "<i>x</i>" go
# from 4 s of scanning to 0.1 s). A ">" is text where the pair was markup or text, and ends
# at most earlier what the pair sat inside (a tag, a comment, raw text): the scan then sees
# more markup, never less. With SVG or MathML in the page, names that end foreign content
# (b, i, span...) are kept: staying in SVG would make `<x/>` self-closing.
_INLINE = "a abbr bdi bdo cite data del dfn ins kbd label mark q samp time"
_INLINE_BREAKOUT = "b big code em font i s small span strong sub sup tt u var"


def _pair_re(names: str) -> re.Pattern[str]:
    alternatives = "|".join(sorted(names.split(), key=len, reverse=True))
    return re.compile(rf"<({alternatives})(?:[{_WS}][^<>]*+)?>[^<]*+</\1[{_WS}]*>", re.IGNORECASE)


_PAIRS_RE = _pair_re(_INLINE)
_PAIRS_ALL_RE = _pair_re(_INLINE + " " + _INLINE_BREAKOUT)
_COLLAPSE_CHUNK = 256 * 1024
_FOREIGN_RE = re.compile(r"<(?:svg|math)", re.IGNORECASE)


def collapse_pairs(html: str) -> str:
    """`html` with inline pairs around plain text replaced by ">" (three rounds: nested pairs
    such as <b><i>x</i></b> go too)."""
    pattern = _PAIRS_RE if _FOREIGN_RE.search(html) else _PAIRS_ALL_RE
    # 256 KB at a time, cut before a "<": one regex call holds the GIL (4 MB at once held it
    # for a second); a pair across a cut is simply kept
    pieces = []
    start = 0
    while start < len(html):
        cut = html.find("<", start + _COLLAPSE_CHUNK)
        cut = len(html) if cut < 0 else cut
        piece = html[start:cut]
        for _ in range(3):
            piece, count = pattern.subn(">", piece)
            if not count:
                break
        pieces.append(piece)
        start = cut
    return "".join(pieces)


class _Scan:
    def __init__(self, text: str, limit: int, budget: float | None) -> None:
        self.text = text
        self.limit = limit
        self.budget = budget
        self.names: list[str] = []  # the stack of open elements, lower-case names
        self.spaces: list[int] = []  # their namespaces (HTML, SVG, MATH)
        self.html_points: list[bool] = []  # whether their children are HTML (integration points)
        self.links: list[_Entry | None] = []  # their entries among the active formatting ones
        self.active: list[_Entry | None] = []  # the list of active formatting elements
        self.open: dict[str, int] = {}  # how many of each name are on the stack
        self.raw_text = True  # whether raw-text elements are skipped (not after a <frameset>)
        self.frameset = False  # a <frameset> was met: start tags after it all count
        self.extra = 0  # start tags after it
        self.depth = 0
        self.deepest = 0

    # --- the stack ---------------------------------------------------------------------------

    def push(self, name: str, space: int, html_children: bool, link: _Entry | None = None) -> None:
        self.names.append(name)
        self.links.append(link)
        self.spaces.append(space)
        self.html_points.append(html_children)
        self.open[name] = self.open.get(name, 0) + 1
        if space != HTML or name not in _UNCOUNTED:
            self.depth += 1
            if self.depth > self.deepest:
                self.deepest = self.depth

    def pop_to(self, index: int) -> None:
        """Pop the element at `index` and everything above it."""
        open_ = self.open
        for i in range(len(self.names) - 1, index - 1, -1):
            name = self.names[i]
            open_[name] -= 1
            link = self.links[i]
            if link is not None:
                link.on_stack = False
            elif name in _MARKERS and self.spaces[i] == HTML:
                self.clear_to_marker()
            if self.spaces[i] != HTML or name not in _UNCOUNTED:
                self.depth -= 1
        del self.names[index:], self.spaces[index:], self.html_points[index:]
        del self.links[index:]

    def remove(self, index: int) -> None:
        """Take one element out of the stack (the adoption agency's formatting element)."""
        self.open[self.names[index]] -= 1
        if self.spaces[index] != HTML or self.names[index] not in _UNCOUNTED:
            self.depth -= 1
        del self.names[index], self.spaces[index], self.html_points[index]
        link = self.links.pop(index)
        if link is not None:
            link.on_stack = False

    def find(
        self,
        wanted: frozenset[str] | str,
        stop: frozenset[str],
        special_stops: bool,
        allowed: frozenset[str] = frozenset(),
    ) -> int:
        """Index of the nearest open HTML element named in `wanted`, looking down from the top
        through at most WALK entries, not past an element in `stop` (nor a special one when
        `special_stops`), nor past foreign content; -1 when there is none."""
        open_ = self.open
        if isinstance(wanted, str):
            if not open_.get(wanted):
                return -1
        elif not any(open_.get(name) for name in wanted):
            return -1
        names, spaces = self.names, self.spaces
        bottom = max(-1, len(names) - 1 - WALK)
        for i in range(len(names) - 1, bottom, -1):
            name = names[i]
            if spaces[i] != HTML:
                return -1
            if name == wanted if isinstance(wanted, str) else name in wanted:
                return i
            if name in stop or (special_stops and name in _SPECIAL and name not in allowed):
                return -1
        return -1

    def lowest(self, wanted: frozenset[str], stop: frozenset[str]) -> int:
        """Index of the lowest open HTML element named in `wanted` above the nearest `stop`
        element (within WALK entries of the top), or -1."""
        if not any(self.open.get(name) for name in wanted):
            return -1
        names, spaces = self.names, self.spaces
        found = -1
        for i in range(len(names) - 1, max(-1, len(names) - 1 - WALK), -1):
            if spaces[i] != HTML:
                return -1
            if names[i] in stop:
                return found
            if names[i] in wanted:
                found = i
        return -1  # no table within reach: pop nothing

    def foreign(self) -> bool:
        """Whether the current node is SVG or MathML (CDATA sections exist; no raw text)."""
        return bool(self.spaces) and self.spaces[-1] != HTML

    def html_content(self) -> bool:
        """Whether a start tag here is handled by the HTML rules (not as foreign content)."""
        return not self.spaces or self.spaces[-1] == HTML or self.html_points[-1]

    # --- tokens ------------------------------------------------------------------------------

    def run(self) -> int:
        text, limit = self.text, self.limit
        search, tag_match = _NEXT_RE.search, _TAG_RE.match
        names, spaces = self.names, self.spaces
        end = len(text)
        clock = time.monotonic
        deadline = None if self.budget is None else clock() + self.budget
        tokens = 0
        found = search(text)
        while found is not None:
            pos = found.start()
            kind = found.group(1) or found.group(2)
            tokens += 1
            if deadline is not None and not tokens & 4095 and clock() > deadline:
                raise TimeoutError(f"the tag scan took longer than {self.budget:g}s")
            if kind == "/":  # an end tag
                match = tag_match(text, pos)
                if match is None:
                    break  # a tag running to the end of the input is dropped
                name = match.group(1).lower()
                pos = match.end()
                if names and names[-1] == name and spaces[-1] == HTML and name not in _KEEP:
                    self.pop_to(len(names) - 1)  # the common case: closes the current node
                else:
                    self._end_tag(name)
            elif kind is None:  # a start tag
                match = tag_match(text, pos)
                if match is None:
                    break
                name = match.group(1).lower()
                if name in _RULED or (spaces and spaces[-1] != HTML) or self.frameset:
                    pos = self._start_tag(match, name)
                else:  # the common case: an element with no rule of its own, in HTML
                    pos = match.end()
                    if self.active:
                        self.reconstruct()
                    self.push(name, HTML, False)
                if self.deepest > limit:
                    break
            elif kind == "!--":
                pos = self._comment(pos)
            elif kind == "/>":
                pos += 3
            else:  # <!...>, <?...>, </ x>: bogus comments, to the next ">"
                close = text.find(">", pos + 2)
                pos = end if close < 0 else close + 1
            found = search(text, pos)
        return self.deepest

    def _comment(self, pos: int) -> int:
        text = self.text
        after = pos + 4
        if text.startswith(">", after):  # <!-->
            return after + 1
        if text.startswith("->", after):  # <!--->
            return after + 2
        match = _COMMENT_END_RE.search(text, after)
        return len(text) if match is None else match.end()

    def _start_tag(self, match: re.Match[str], name: str) -> int:
        attrs = match.group(2)
        self_closing = bool(match.group(3))
        end = match.end()
        if self.frameset:
            self.extra += 1
            self.deepest = max(self.deepest, self.depth + self.extra)
        if not self.html_content():
            breakout = name in _BREAKOUT or (name == "font" and _FONT_BREAKOUT_RE.search(attrs))
            if not breakout:
                space = self.spaces[-1]
                if not self_closing:
                    self.push(name, space, self._integration_point(name, space, attrs))
                return end
            # pop foreign elements until an HTML element or an integration point is current
            while self.spaces and self.spaces[-1] != HTML and not self.html_points[-1]:
                self.pop_to(len(self.names) - 1)
        if name == "plaintext" and self.raw_text:
            return len(self.text)  # the rest is text
        if name in _CLOSES_P:
            index = self.find("p", _P_SCOPE, special_stops=False)
            if index >= 0:
                self.pop_to(index)
            # (the spec then pops a heading that is the current node; lexbor does not always:
            # `<h1>` after `<p>` inside an `<h1>` nests, so headings are left open here)
        if name in _TABLE_PARTS and not self.open.get("table"):
            return end  # outside a table these start tags are ignored
        implied = _IMPLIED.get(name)
        if implied is not None:
            wanted, stop, special_stops = implied
            if stop is _TABLE_SCOPE:  # a row or section closes its cells too: the lowest one
                index = self.lowest(wanted, stop)
            else:
                index = self.find(wanted, stop, special_stops, _LIST_STOP_EXCEPT)
            if index >= 0:
                self.pop_to(index)
        current = _CLOSES_CURRENT.get(name)
        while current is not None and self.names and self.names[-1] in current:
            self.pop_to(len(self.names) - 1)
        if name in ("a", "nobr"):  # an open one leaves the stack (the adoption agency)
            index = self.find(name, _SCOPE, special_stops=False)
            if index >= 0:
                self._adopt(index)
        if name == "frameset":
            # frameset parsing (its own insertion mode, honoured or not by a frameset-ok flag
            # this scan does not track) is not modelled: from here on every start tag counts
            # as one more level, and raw text is not skipped. Real framesets hold a few frames.
            self.raw_text = False
            self.frameset = True
        if name not in _NO_RECONSTRUCT:
            self.reconstruct()
        if name in ("svg", "math"):
            if not self_closing:
                self.push(name, SVG if name == "svg" else MATH, False)
            return end
        if name in _VOID:
            return end
        if name in _RAW_TEXT and self.raw_text:
            return self._skip_raw_text(name, end)
        if name in _FORMATTING:
            self.push(name, HTML, False, self.add_formatting(name, attrs))
            return end
        if name in _MARKERS:
            self.active.append(None)
        self.push(name, HTML, False)
        return end

    def _adopt(self, index: int) -> None:
        """The adoption agency, as far as depth goes. Without a special element above the
        formatting element, it and everything above it are popped. With one (the furthest
        block), the formatting element and the plain elements between them leave the stack
        and a clone of it goes on top of that block."""
        names, spaces = self.names, self.spaces
        block = next(
            (i for i in range(index + 1, len(names)) if spaces[i] == HTML and names[i] in _SPECIAL),
            -1,
        )
        link = self.links[index]
        if block < 0:
            self.pop_to(index)
            self._forget(link)
            return
        name = names[index]
        removed = 1
        for i in range(block - 1, index, -1):
            if names[i] not in _FORMATTING:
                self.remove(i)
                removed += 1
        self.remove(index)
        # the clone holds the block's children; lexbor does not reopen it after the block
        # ends (`<b><div>x</b></div>` repeated stays flat), so its entry is dropped
        self.insert(block - removed + 1, name)
        self._forget(link)

    def _forget(self, link: _Entry | None) -> None:
        if link is not None and link in self.active:
            self.active.remove(link)

    def reconstruct(self) -> None:
        """The spec's reconstruction: entries after the last marker that left the stack (an
        ancestor's end popped them) are opened again, in order, where the tree now is. This
        is how `<button><i><font color=r>` repeated nests without bound."""
        active = self.active
        if not active or active[-1] is None or active[-1].on_stack:
            return
        start = len(active) - 1
        while start > 0:
            before = active[start - 1]
            if before is None or before.on_stack:
                break
            start -= 1
        for entry in active[start:]:
            assert entry is not None
            self.push(entry.name, HTML, False, entry)
            entry.on_stack = True

    def add_formatting(self, name: str, attrs: str) -> _Entry:
        """A new entry, Noah's Ark first: a fourth alike after the last marker drops the
        earliest (its element stays on the stack)."""
        key = name + " " + " ".join(sorted(attrs.split()))
        alike = []
        for entry in reversed(self.active):
            if entry is None:
                break
            if entry.key == key:
                alike.append(entry)
        if len(alike) >= 3:
            self.active.remove(alike[-1])
        entry = _Entry(name, key)
        self.active.append(entry)
        return entry

    def clear_to_marker(self) -> None:
        while self.active:
            if self.active.pop() is None:
                break

    def insert(self, index: int, name: str, link: _Entry | None = None) -> None:
        self.names.insert(index, name)
        self.links.insert(index, link)
        if link is not None:
            link.on_stack = True
        self.open[name] = self.open.get(name, 0) + 1
        self.spaces.insert(index, HTML)
        self.html_points.insert(index, False)
        self.depth += 1
        if self.depth > self.deepest:
            self.deepest = self.depth

    def _integration_point(self, name: str, space: int, attrs: str) -> bool:
        if space == SVG:
            return name in _SVG_HTML_POINTS
        if name in _MATH_TEXT_POINTS:
            return True
        return name == "annotation-xml" and bool(_ANNOTATION_HTML_RE.search(attrs.strip()))

    def _skip_raw_text(self, name: str, pos: int) -> int:
        """Past the raw text of <name>: its end tag (`</name` then space, "/" or ">")."""
        text = self.text
        pattern = _raw_end(name)
        match = pattern.search(text, pos)
        if match is None:
            return len(text)
        tag = _TAG_RE.match(text, match.start())
        return len(text) if tag is None else tag.end()

    def _end_tag(self, name: str) -> None:
        if self.spaces and self.spaces[-1] != HTML and name in ("p", "br"):
            # </p> and </br> end foreign content, as a breakout start tag does
            while self.spaces and self.spaces[-1] != HTML and not self.html_points[-1]:
                self.pop_to(len(self.names) - 1)
        if self.spaces and self.spaces[-1] != HTML:
            # foreign content: the nearest element of that name, foreign ones only
            names = self.names
            bottom = max(-1, len(names) - 1 - WALK)
            for i in range(len(names) - 1, bottom, -1):
                if self.spaces[i] == HTML:
                    break
                if names[i] == name:
                    self.pop_to(i)
                    return
        if name in _FORMATTING:
            index = self.find(name, _SCOPE, special_stops=False)
            if index >= 0:
                self._adopt(index)
            return
        if name in ("body", "html", "head"):  # the stack stays: later tags go on nesting
            return
        if name == "form":  # only the form element leaves the stack
            index = self.find(name, _SCOPE, special_stops=False)
            if index >= 0:
                self.remove(index)
            return
        if name in _SPECIAL:
            stop = _P_SCOPE if name == "p" else _SCOPE
            index = self.find(name, stop - {name}, special_stops=False)
        else:
            index = self.find(name, frozenset(), special_stops=True)
        if index >= 0:
            self.pop_to(index)


_RAW_END_CACHE: dict[str, re.Pattern[str]] = {}


def _raw_end(name: str) -> re.Pattern[str]:
    pattern = _RAW_END_CACHE.get(name)
    if pattern is None:
        pattern = re.compile(rf"</{name}(?=[{_WS}/>])", re.IGNORECASE)
        _RAW_END_CACHE[name] = pattern
    return pattern
