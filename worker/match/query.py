"""The watchlist query language: `parse_query(text)` -> a tree of Term, Near, And, Or, Not.

    Kazakhstan AND (rail* OR "Belt and Road") -opinion
    title:(sanction* OR embargo) -summary:"press release"     Tokayev NEAR/5 "Belt and Road"

- terms: `word`, prefix `rail*`, phrase `"belt and road"` (any punctuation between its words);
  a bare term with punctuation inside (`Trans-Caspian`) is the phrase of its words;
- `AND`, `OR`, `NOT` in upper case only (a lower-case `and` is a word), parentheses; two terms
  side by side mean AND; `-term`, `-"phrase"`, `-(...)` mean NOT; NOT binds tighter than AND,
  AND tighter than OR;
- `a NEAR/n b`: a and b (terms or phrases) with at most n other words between them, in either
  order, in one field; it binds tightest (`NOT a NEAR/3 b` = NOT (a NEAR/3 b));
- `title:`, `summary:`, `body:` before a term, phrase or group limit it to that field.

A query must contain a term that has to occur (`NOT opinion` alone would alert on nearly every
article): that is refused, and it is what lets the matcher evaluate a query only when one of its
terms occurs.

Why a hand-written recursive-descent parser rather than lark: the grammar is five rules, and
what matters is the message a reader gets. Every error here names what is wrong and where
(`unbalanced '(' at column 17`, `NEAR needs a distance, e.g. NEAR/5`, `unknown field 'titel:'`);
with lark those come from mapping UnexpectedToken/UnexpectedCharacters (expected-token sets)
back to sentences, plus a contextual lexer for `-` (NOT at the start of a term, a joiner inside
`Trans-Caspian`) and `title:` (a scope, but `10:30` is a term). Measured (bench_match.py --lark,
bench/README.md): this parser reads the 10,000 benchmark queries in ~0.5 s; a lark LALR grammar
of the same language took ~0.85 s to build only its parse tree, and `import lark` plus the
grammar add ~70 ms to every command.
Results are cached by text: a config validated and then compiled parses each query once.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

from worker.match.text import fold, words

__all__ = [
    "FIELDS",
    "And",
    "Near",
    "Node",
    "Not",
    "Or",
    "Query",
    "QueryError",
    "Term",
    "parse_query",
]

FIELDS = ("title", "summary", "body")
MAX_NEAR = 100  # words between the two sides of a NEAR
MAX_LENGTH = 5000  # characters of one query
MAX_DEPTH = 50  # nested parentheses and NOTs

_OPEN = {'"': '"', "“": '”"', "„": "“”", "«": "»"}  # opening quote -> its closing quotes
_NEAR_RE = re.compile(r"NEAR/(\d+)")
_WORD_CHAR_RE = re.compile(r"\w")
# One token at a time, the kind told by the group that matched (one C call per token, ~3x
# faster than scanning character by character in Python; bench_match.py's "parse" line): spaces,
# a parenthesis, an opening quote (the phrase is read by _Lexer.phrase), a NOT dash, a field
# scope (letters and a colon at the start of a run: `title:`, but `10:30` is a term), or a bare
# run up to a space, a parenthesis or an opening quote
_TOKEN_RE = re.compile(
    r'(?P<space>\s+)|(?P<paren>[()])|(?P<quote>["“„«])|(?P<dash>-)'
    r'|(?P<field>[^\W\d_]+:)|(?P<bare>[^\s()"“„«]+)'
)


class QueryError(ValueError):
    """A query a reader can fix: the message says what is wrong and where (1-based column)."""


@dataclass(frozen=True, slots=True)
class Term:
    words: tuple[str, ...]  # folded
    prefix: bool  # `*` on the last word
    fields: frozenset[str] | None  # None: every field the article has
    text: str  # as written: rail*, "Belt and Road"


@dataclass(frozen=True, slots=True)
class Near:
    left: Term
    right: Term
    distance: int  # at most this many words between them
    fields: frozenset[str] | None
    text: str  # as written: Kazakhstan NEAR/5 rail*


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Node


Node = Term | Near | And | Or | Not


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    root: Node


class _Token(NamedTuple):  # a tuple: built ~3x faster than a frozen dataclass
    kind: str  # ( ) AND OR NOT - NEAR FIELD TERM EOF
    start: int
    end: int
    value: object = None  # NEAR: distance; FIELD: name; TERM: (words, prefix)


def _where(text: str, pos: int) -> str:
    if "\n" not in text:
        return f"column {pos + 1}"
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _closing(text: str, closers: str, start: int) -> int:
    """Where the first of `closers` is in text from `start`, or -1."""
    found = [at for at in (text.find(c, start) for c in closers) if at >= 0]
    return min(found) if found else -1


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[_Token] = []

    def error(self, message: str, pos: int) -> QueryError:
        return QueryError(f"{message} at {_where(self.text, pos)}")

    def run(self) -> list[_Token]:
        text, n, i = self.text, len(self.text), 0
        tokens, scan = self.tokens, _TOKEN_RE.match
        while i < n:
            found = scan(text, i)
            kind = found.lastgroup  # type: ignore[union-attr]
            if kind == "bare":
                i = self.bare(i, found.end())  # type: ignore[union-attr]
            elif kind == "space":
                i = found.end()  # type: ignore[union-attr]
            elif kind == "paren":
                tokens.append(_Token(text[i], i, i + 1))
                i += 1
            elif kind == "quote":
                i = self.phrase(i)
            elif kind == "dash":
                after = text[i + 1 : i + 2]
                if not after or after.isspace() or after == ")":
                    raise self.error(
                        "'-' must be followed directly by a term, phrase or '(', e.g. -opinion,", i
                    )
                tokens.append(_Token("-", i, i + 1))
                i += 1
            else:
                i = self.field(i, found.end())  # type: ignore[union-attr]
        tokens.append(_Token("EOF", n, n))
        return tokens

    def phrase(self, start: int) -> int:
        text = self.text
        closers = _OPEN[text[start]]
        end = _closing(text, closers, start + 1)
        if end < 0:
            raise self.error(f"unterminated '{text[start]}'", start)
        raw = text[start + 1 : end]
        inner = raw.strip()
        body_at = start + 1 + len(raw) - len(raw.lstrip())
        end += 1
        prefix = False
        if text[end : end + 1] == "*":
            prefix, end = True, end + 1
        elif inner.endswith("*"):
            prefix, inner = True, inner[:-1]
        self.tokens.append(
            _Token("TERM", start, end, self.term_words(inner, prefix, start, body_at))
        )
        return end

    def bare(self, start: int, end: int) -> int:
        run = self.text[start:end]
        if run in ("AND", "OR", "NOT"):
            self.tokens.append(_Token(run, start, end))
            return end
        if run == "NEAR" or run.startswith("NEAR/"):
            match = _NEAR_RE.fullmatch(run)
            if not match:
                raise self.error("NEAR needs a distance, e.g. NEAR/5,", start)
            distance = int(match.group(1))
            if not 1 <= distance <= MAX_NEAR:
                raise self.error(
                    f"{run}: the distance must be from 1 to {MAX_NEAR} words, e.g. NEAR/5,", start
                )
            self.tokens.append(_Token("NEAR", start, end, distance))
            return end
        prefix = run.endswith("*")
        self.tokens.append(
            _Token(
                "TERM",
                start,
                end,
                self.term_words(run[:-1] if prefix else run, prefix, start, start),
            )
        )
        return end

    def field(self, start: int, end: int) -> int:
        """`title:` and the like: letters and a colon at the start of a bare run."""
        text = self.text
        name = text[start : end - 1]
        if name.lower() not in FIELDS:
            raise self.error(f"unknown field '{name}:' (fields: {', '.join(FIELDS)})", start)
        if end >= len(text) or text[end].isspace() or text[end] == ")":
            raise self.error(
                f"'{name}:' must be followed directly by a term, phrase or '(', "
                f"e.g. {name.lower()}:rail,",
                start,
            )
        self.tokens.append(_Token("FIELD", start, end, name.lower()))
        return end

    def term_words(
        self, body: str, prefix: bool, start: int, body_at: int
    ) -> tuple[tuple[str, ...], bool]:
        star = body.find("*")
        if star >= 0:
            raise self.error("'*' may only end a term, e.g. rail*,", body_at + star)
        found = tuple(words(body))
        if not found:
            shown = self.text[start : start + len(body) + 2].strip() or body
            raise self.error(f"{shown!r} has no letters or digits", start)
        if prefix and not _WORD_CHAR_RE.match(fold(body)[-1:]):
            raise self.error("'*' must follow a word directly, e.g. rail*,", start)
        return found, prefix


_STARTS = frozenset({"TERM", "(", "NOT", "-", "FIELD"})  # tokens that can begin an operand


class _Parser:
    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def error(self, message: str, token: _Token) -> QueryError:
        return QueryError(f"{message} at {_where(self.text, token.start)}")

    def shown(self, token: _Token) -> str:
        return self.text[token.start : token.end]

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def operand_after(self, op: _Token) -> None:
        if self.peek().kind not in _STARTS:
            raise self.error(f"'{self.shown(op)}' needs a term after it", op)

    def parse(self) -> Node:
        if self.peek().kind == "EOF":
            raise QueryError("the query is empty")
        node = self.or_(None)
        token = self.peek()
        if token.kind == ")":
            raise self.error("unbalanced ')'", token)
        return node

    def or_(self, scope: frozenset[str] | None) -> Node:
        parts = [self.and_(scope)]
        while self.peek().kind == "OR":
            self.operand_after(self.take())
            parts.append(self.and_(scope))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self, scope: frozenset[str] | None) -> Node:
        parts = [self.unary(scope)]
        tokens = self.tokens
        while True:
            kind = tokens[self.pos].kind
            if kind == "AND":
                self.operand_after(self.take())
            elif kind not in _STARTS:  # side by side = AND
                break
            parts.append(self.unary(scope))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self, scope: frozenset[str] | None) -> Node:
        pos = self.pos
        token = self.tokens[pos]
        if token.kind == "TERM" and self.tokens[pos + 1].kind != "NEAR":
            # the common case, what near() -> scoped() -> primary() would build, in one call
            # (a third of the parse time of the 10,000 benchmark queries)
            self.pos = pos + 1
            term_words: tuple[str, ...]
            term_prefix: bool
            term_words, term_prefix = token.value  # type: ignore[misc]
            return Term(term_words, term_prefix, scope, self.text[token.start : token.end])
        if token.kind in ("NOT", "-"):
            self.take()
            self.operand_after(token)
            self.nest(token)
            node = Not(self.unary(scope))
            self.depth -= 1
            return node
        return self.near(scope)

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"more than {MAX_DEPTH} nested groups or NOTs", token)

    def near(self, scope: frozenset[str] | None) -> Node:
        left = self.scoped(scope)
        if self.peek().kind != "NEAR":
            return left
        op = self.take()
        self.operand_after(op)
        right = self.scoped(scope)
        if not isinstance(left, Term) or not isinstance(right, Term):
            raise self.error(
                f"{self.shown(op)} joins two terms or phrases, not a group or a NOT", op
            )
        if self.peek().kind == "NEAR":
            raise self.error(
                "one NEAR at a time: join two with AND, e.g. a NEAR/3 b AND b NEAR/3 c;",
                self.peek(),
            )
        if left.fields and right.fields and left.fields != right.fields:
            raise self.error(
                f"{self.shown(op)} joins terms of two fields: a NEAR looks in one field", op
            )
        fields = left.fields or right.fields
        text = f"{left.text} {self.shown(op)} {right.text}"
        return Near(left, right, op.value, fields, text)  # type: ignore[arg-type]

    def scoped(self, scope: frozenset[str] | None) -> Node:
        token = self.peek()
        if token.kind != "FIELD":
            return self.primary(scope)
        self.take()
        field = frozenset({str(token.value)})
        if scope is not None and scope != field:
            raise self.error(
                f"'{self.shown(token)}' inside '{next(iter(scope))}:(...)': a term has one field",
                token,
            )
        return self.primary(field)

    def primary(self, scope: frozenset[str] | None) -> Node:
        token = self.take()
        if token.kind == "TERM":
            found: tuple[str, ...]
            prefix: bool
            found, prefix = token.value  # type: ignore[misc]
            return Term(found, prefix, scope, self.shown(token))
        if token.kind == "(":
            if self.peek().kind == ")":
                raise self.error("empty parentheses", token)
            self.nest(token)
            node = self.or_(scope)
            if self.take().kind != ")":
                raise self.error("unbalanced '('", token)
            self.depth -= 1
            return node
        if token.kind == ")":
            raise self.error("unbalanced ')'", token)
        # AND, OR or NEAR where a term should be: at the start or after '(' or 'title:'
        raise self.error(f"'{self.shown(token)}' needs a term before it", token)


def _true_without_terms(node: Node) -> bool:
    """The query's value for an article in which none of its terms occurs."""
    if isinstance(node, Term | Near):
        return False
    if isinstance(node, Not):
        return not _true_without_terms(node.child)
    if isinstance(node, And):
        return all(_true_without_terms(c) for c in node.children)
    return any(_true_without_terms(c) for c in node.children)


@functools.lru_cache(maxsize=32_768)
def parse_query(text: str) -> Query:
    """Parse a query; QueryError says what is wrong and where. Cached by text (the tree is
    immutable), so validating a config and then compiling its matcher parses once."""
    if len(text) > MAX_LENGTH:
        raise QueryError(f"the query is longer than {MAX_LENGTH} characters")
    root = _Parser(text, _Lexer(text).run()).parse()
    if _true_without_terms(root):
        raise QueryError(
            "the query matches articles that contain none of its terms (as 'NOT opinion' "
            "alone would): add a term that must occur, e.g. 'rail* -opinion'"
        )
    return Query(text, root)
