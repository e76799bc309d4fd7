"""The compiled watchlists: which watchlists an article matches, and by which terms.

A watchlist is one boolean query: `query` as parsed by worker.match.query, or its `keywords`
(any one of them) read as `k1 OR k2 ...`; `exclude` adds `AND NOT (x1 OR x2 ...)`. Each query
is put in negation normal form (NOTs pushed down to the terms) and compiled to:

- its leaves: a term or phrase (a sequence of units: exact word, stem, prefix), or a NEAR of two,
  with the fields it may look in; identical leaves of different watchlists are one leaf;
- its triggers: a set of leaves of which one must be true for the query to be true (an OR needs
  one of each side's, an AND one side's: the side with the rarer-looking leaves); a query is
  evaluated only for an article in which one of its triggers is true;
- an evaluator over the set of true leaves (one Python expression; none for `a OR b ...`, which
  is true as soon as it is triggered).

Per article (one pass): each field is folded and split into words once; each word is looked
up once, all words in one C call (`map(entries.get, ...)`), in a dict of the words seen to their
entry: the single-word leaves they make true, the ids of the phrase/NEAR units they match, and
for a word that starts a phrase or a NEAR or is a scoped term a pseudo-leaf (negative) naming
what to check; a new word's entry is computed from the indexes of exact words, stems (computed
only for words that start like a stem) and prefixes. All the ids of an article are one C
`set.union`; a phrase or NEAR is checked by position only when all its units occur (a C subset
test), and never across two fields; then only the triggered queries are evaluated. The word
cache has two generations: when full, the entries of the previous one are taken over as words
recur. The work grows with the words of the article and the leaves that occur, not with the
number of watchlists (bench/bench_match.py: 10,000 queries).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from itertools import compress
from typing import Any

from worker.gcpause import collector_paused
from worker.match.query import FIELDS, And, Near, Node, Not, Or, Term, parse_query
from worker.match.text import parse_keyword, stem, words

__all__ = ["Matcher"]

# distinct article words remembered by one Matcher, in each of two generations: ~25 MB at
# 150,000 (words, entries, stems); 100,000 articles of the benchmark hold 148,000
_CACHE_LIMIT = 200_000
EXACT, STEM, PREFIX = 0, 1, 2  # kinds of unit
_BITS = {name: 1 << i for i, name in enumerate(FIELDS)}  # title 1, summary 2, body 4
_ALL = (1 << len(FIELDS)) - 1

Unit = tuple[int, str]
_Other = tuple[str, tuple[tuple[int, int], ...], tuple[tuple[int, frozenset[int]], ...]]
# (the word, (leaf, field mask) true when it occurs in those fields, (leaf, the ids of the units
# it needs) to check by position)
_Cache = tuple[
    dict[str, tuple[int, ...]],
    dict[int, _Other],
    dict[str, tuple[int, ...]],
    dict[int, _Other],
    Any,
]
# (word -> entry, pseudo-leaf -> its details, the same of the previous generation, the known
# words: the entries again)


def _mask(fields: frozenset[str] | None) -> int:
    return _ALL if fields is None else sum(_BITS[f] for f in fields)


def _units(term: Term, stemmed: bool) -> tuple[Unit, ...]:
    last = len(term.words) - 1
    out: list[Unit] = []
    for i, word in enumerate(term.words):
        if i == last and term.prefix:
            out.append((PREFIX, word))
        elif stemmed:
            out.append((STEM, stem(word)))
        else:
            out.append((EXACT, word))
    return tuple(out)


def _keyword_term(text: str) -> Term:
    keyword = parse_keyword(text)
    return Term(keyword.words, keyword.prefix, None, text)


Evaluator = Callable[[set[int]], bool]
# ("+", leaf) | ("-", leaf) | ("and" or "or", positive leaves, negated leaves, sub-forms)
_Form = tuple[Any, ...]


def _evaluator(form: _Form) -> Evaluator:
    """A function of the set of true leaves for an AND or an OR (or one leaf): set operations in
    C for its leaves, so a query of 3 to 5 leaves costs one or two calls."""
    if form[0] == "+":
        leaf = form[1]
        return lambda t: leaf in t
    if form[0] == "-":
        leaf = form[1]
        return lambda t: leaf not in t
    op, pos, neg, sub_forms = form
    # sub-forms that are ORs of positive leaves (`(rail* OR road)`, a watchlist's keywords)
    # are tested as sets too
    ors = [f[1] for f in sub_forms if f[0] == "or" and not f[2] and not f[3]]
    subs = [_evaluator(f) for f in sub_forms if not (f[0] == "or" and not f[2] and not f[3])]
    if op == "and":
        if not subs and not ors:
            if not neg:
                return pos.issubset
            if not pos:
                return neg.isdisjoint
            return lambda t: pos <= t and neg.isdisjoint(t)
        if not subs and len(ors) == 1:
            (any_of,) = ors
            return lambda t: pos <= t and neg.isdisjoint(t) and not any_of.isdisjoint(t)

        def all_of(t: set[int]) -> bool:
            if not pos <= t or not neg.isdisjoint(t):
                return False
            for group in ors:
                if group.isdisjoint(t):
                    return False
            for sub in subs:
                if not sub(t):
                    return False
            return True

        return all_of
    pos = pos.union(*ors)  # an OR inside an OR is flat already; kept for safety
    if not subs:
        if not neg:
            return lambda t: not pos.isdisjoint(t)
        return lambda t: not pos.isdisjoint(t) or not neg <= t

    def one_of(t: set[int]) -> bool:
        if not pos.isdisjoint(t) or (neg and not neg <= t):
            return True
        for sub in subs:
            if sub(t):
                return True
        return False

    return one_of


class _Article:
    """What checking phrases and NEARs needs of one article, built as first needed."""

    __slots__ = ("fields", "stems")

    def __init__(self, fields: list[tuple[int, list[str]]]) -> None:
        self.fields = fields
        self.stems: dict[int, list[str]] = {}  # field -> the stems of its words


class _Compiled:
    """One watchlist's query, its leaves numbered in the matcher's shared table."""

    __slots__ = ("evaluate", "report_at", "reported", "triggers")

    def __init__(self) -> None:
        self.evaluate: Evaluator | None = None  # over the set of true leaves; None: always true
        self.reported: list[tuple[int, str]] = []  # positive leaves (leaf, as written), in order
        self.report_at: dict[int, tuple[int, str]] | None = None  # the same by leaf, when many
        self.triggers: set[int] = set()


class Matcher:
    """Compiled watchlists. `match()` and `match_fields()` are safe to call from several threads.

    Takes WatchlistConfig objects (or anything with `name`, `keywords`, `exclude` and, optionally,
    `query` and `stem`).
    """

    def __init__(self, watchlists: Sequence[Any]) -> None:
        # the build allocates ~10 objects a watchlist, all kept or freed by reference counting:
        # the collector's full walks would be half its time (worker/gcpause.py)
        with collector_paused():
            self._build(watchlists)

    def _build(self, watchlists: Sequence[Any]) -> None:
        self._names: list[str] = []
        self._leaf_ids: dict[tuple[Any, ...], int] = {}
        self._units: list[tuple[Unit, ...]] = []  # leaf -> units (the left side of a NEAR)
        self._near: list[tuple[int, tuple[Unit, ...]] | None] = []  # leaf -> (distance, right)
        self._masks: list[int] = []
        self._uses_stems = False
        compiled = [self._compile(w) for w in watchlists]
        # (leaf, as written) of each query as two tuples, for itertools.compress
        self._reported_leaves = [tuple(leaf for leaf, _ in c.reported) for c in compiled]
        self._reported_texts = [tuple(text for _, text in c.reported) for c in compiled]
        self._report_at = [c.report_at for c in compiled]
        self._evaluators = [c.evaluate for c in compiled]

        triggers: list[list[int]] = [[] for _ in self._units]
        for index, c in enumerate(compiled):
            for leaf in c.triggers:
                triggers[leaf].append(index)

        exact: dict[str, list[int]] = {}
        stems: dict[str, list[int]] = {}
        prefixes: dict[str, list[int]] = {}
        by_kind = (exact, stems, prefixes)
        # each unit of a phrase or a NEAR also has an id (after the leaves'), in the entries of
        # the words it matches: a phrase or NEAR is checked by position only when all its units
        # occur in the article (one C subset test against the same set of ids)
        self._n_leaves = n_leaves = len(self._units)
        unit_ids: dict[Unit, int] = {}
        self._needs: list[frozenset[int]] = []  # leaf -> the unit ids it cannot match without
        for leaf, units in enumerate(self._units):
            kind, key = units[0]
            by_kind[kind].setdefault(key, []).append(leaf)
            near = self._near[leaf]
            needs: set[int] = set()
            if len(units) > 1 or near is not None:
                for unit in (*units, *(near[1] if near else ())):
                    uid = unit_ids.get(unit)
                    if uid is None:
                        uid = unit_ids[unit] = n_leaves + len(unit_ids)
                        by_kind[unit[0]].setdefault(unit[1], []).append(uid)
                    needs.add(uid)
            self._needs.append(frozenset(needs))
        self._triggers = [tuple(t) for t in triggers] + [()] * len(unit_ids)
        self._exact, self._stems, self._prefixes = exact, stems, prefixes
        self._prefix_lengths = sorted({len(p) for p in prefixes})
        # the starts of the prefix keys at those lengths: a word whose start at one length is
        # none can stop there (one lookup for most words instead of one a length)
        self._prefix_starts = {
            key[:n] for key in prefixes for n in self._prefix_lengths if n <= len(key)
        }
        # A word's Snowball stem, but for its last letter, is a start of the word: Russian
        # only strips endings, English strips or rewrites endings and changes at most the
        # stem's last letter (happy -> happi, hoping -> hope), "...ying" -> "...ie" aside (dying
        # -> die; checked over 557,000 words, tests/test_matcher_index.py). So a word that
        # starts with no stem key but its last letter matches no stem without being stemmed
        # (stemming is most of a new word's cost: ~2.5 of ~4.3 us). Found by the same walk as
        # the prefixes: lengths, starts at those lengths, the heads themselves.
        heads = {
            key[:-1]
            for units, near in zip(self._units, self._near, strict=True)
            for kind, key in (*units, *(near[1] if near else ()))
            if kind == STEM
        }
        # (heads under 4 letters tried one by one: at 1-3 letters nearly every word is a start)
        self._stem_short = {h for h in heads if len(h) < 4}
        self._stem_short_lengths = sorted({len(h) for h in self._stem_short})
        self._stem_heads = heads = {h for h in heads if len(h) >= 4}
        self._stem_lengths = sorted({len(h) for h in heads})
        self._stem_starts = {h[:n] for h in heads for n in (4, *self._stem_lengths) if n <= len(h)}
        self._stem_cache: dict[str, str] = {}
        self._ids = itertools.count(1)  # pseudo-leaves -1, -2, ...: see _entry
        base: dict[str, tuple[int, ...]] = {}
        base_others: dict[int, _Other] = {}
        for word in exact:
            entry = self._entry(word, base_others)
            if entry:
                base[word] = entry
        self._base, self._base_others = base, base_others
        self._base_stems = dict(self._stem_cache)
        entries = dict(base)
        self._cache: _Cache = (entries, dict(base_others), {}, {}, entries)

    # --- compiling ---------------------------------------------------------------------------

    def _leaf(self, node: Term | Near, stemmed: bool) -> int:
        if isinstance(node, Term):
            units = _units(node, stemmed)
            near = None
        else:
            units = _units(node.left, stemmed)
            near = (node.distance, _units(node.right, stemmed))
        mask = _mask(node.fields)
        key = (units, near, mask)
        leaf = self._leaf_ids.get(key)
        if leaf is None:
            leaf = self._leaf_ids[key] = len(self._units)
            self._units.append(units)
            self._near.append(near)
            self._masks.append(mask)
            if stemmed and any(k == STEM for k, _ in (*units, *(near[1] if near else ()))):
                self._uses_stems = True
        return leaf

    def _compile(self, watchlist: Any) -> _Compiled:
        self._names.append(watchlist.name)
        stemmed = bool(getattr(watchlist, "stem", False))
        query = getattr(watchlist, "query", None)
        root: Node
        if query:
            root = parse_query(query).root
        else:
            root = Or(tuple(_keyword_term(k) for k in watchlist.keywords))
        if watchlist.exclude:
            root = And((root, Not(Or(tuple(_keyword_term(x) for x in watchlist.exclude)))))
        out = _Compiled()
        seen: set[int] = set()

        top, triggers, _ = self._walk(root, False, stemmed, seen, out)
        assert triggers is not None  # parse_query refuses queries without one
        out.triggers = triggers
        # a positive leaf, or an OR of them, is true as soon as one of its triggers is
        simple = top[0] == "+" or (top[0] == "or" and not top[2] and not top[3])
        out.evaluate = None if simple else _evaluator(top)
        if len(out.reported) > 4:
            out.report_at = {leaf: (i, text) for i, (leaf, text) in enumerate(out.reported)}
        return out

    def _walk(
        self, node: Node, negate: bool, stemmed: bool, seen: set[int], out: _Compiled
    ) -> tuple[_Form, set[int] | None, float]:
        """Negation normal form on the way (NOTs pushed down to the leaves, nested ANDs or
        ORs flattened): (the form, its triggers or None, their cost). A method, not a closure
        in `_compile`: a closure that calls itself is a reference cycle holding the Matcher,
        which only the cyclic collector frees, and a reload freezes what it built out of the
        collector's reach (worker/daemon/collector.py)."""
        if isinstance(node, Not):
            return self._walk(node.child, not negate, stemmed, seen, out)
        if isinstance(node, Term | Near):
            leaf = self._leaf(node, stemmed)
            if negate:
                return ("-", leaf), None, 0.0
            if leaf not in seen:
                seen.add(leaf)
                out.reported.append((leaf, node.text))
            return ("+", leaf), {leaf}, _cost(node)
        op = "and" if isinstance(node, And) != negate else "or"  # De Morgan
        pos: set[int] = set()
        neg: set[int] = set()
        subs: list[_Form] = []
        triggers: list[tuple[set[int] | None, float]] = []
        for child in node.children:
            form, found, cost = self._walk(child, negate, stemmed, seen, out)
            triggers.append((found, cost))
            if form[0] == "+":
                pos.add(form[1])
            elif form[0] == "-":
                neg.add(form[1])
            elif form[0] == op:  # (a AND b) AND c = a AND b AND c
                pos |= form[1]
                neg |= form[2]
                subs.extend(form[3])
            else:
                subs.append(form)
        form = (op, frozenset(pos), frozenset(neg), tuple(subs))
        if op == "or":
            if any(t is None for t, _ in triggers):
                return form, None, 0.0
            union: set[int] = set()
            for t, _ in triggers:
                union |= t  # type: ignore[arg-type]
            return form, union, sum(c for _, c in triggers)
        anchored = [(t, c) for t, c in triggers if t is not None]
        if not anchored:
            return form, None, 0.0
        best = min(anchored, key=lambda tc: tc[1])
        return form, best[0], best[1]

    # --- the word index ----------------------------------------------------------------------

    def _reset_cache(self, old: _Cache) -> None:
        # replaced as one tuple, never cleared in place: a concurrent match() reads the parts
        # together and keeps its own consistent copies. The old entries stay one generation, to
        # be taken over when seen again: the words of every article (the, and, Kazakhstan ...)
        # are not computed again after each reset, only the once-seen tail is dropped.
        entries = dict(self._base)
        self._cache = (entries, dict(self._base_others), old[0], old[1], entries)
        self._stem_cache = dict(self._base_stems)

    def _stem(self, word: str) -> str:
        found = self._stem_cache.get(word)
        if found is None:  # (emptied with the word cache: the stems of known words stay known)
            found = self._stem_cache[word] = stem(word)
        return found

    def _entry(self, word: str, others: dict[int, _Other]) -> tuple[int, ...]:
        """A word's entry: the single-word leaves it makes true wherever it occurs, and when it
        also starts a phrase or a NEAR or is a scoped term, a pseudo-leaf (negative, last) whose
        details (the word, its scoped leaves, its leaves to check) are put in `others`."""
        leaves: list[int] = list(self._exact.get(word, ()))
        if self._stems:
            if self._may_stem(word):
                leaves.extend(self._stems.get(self._stem(word), ()))
        if self._prefix_lengths:
            size = len(word)
            starts = self._prefix_starts
            for length in self._prefix_lengths:
                if length > size:
                    break
                head = word[:length]
                if head not in starts:
                    break
                leaves.extend(self._prefixes.get(head, ()))
        if not leaves:
            return ()
        direct: list[int] = []
        scoped: list[tuple[int, int]] = []
        checks: list[tuple[int, frozenset[int]]] = []
        n_leaves = self._n_leaves
        for leaf in leaves:
            if leaf >= n_leaves:  # a unit of phrases or NEARs
                direct.append(leaf)
            elif len(self._units[leaf]) > 1 or self._near[leaf] is not None:
                checks.append((leaf, self._needs[leaf]))
            elif self._masks[leaf] == _ALL:
                direct.append(leaf)
            else:
                scoped.append((leaf, self._masks[leaf]))
        if scoped or checks:
            pseudo = -next(self._ids)
            others[pseudo] = (word, tuple(scoped), tuple(checks))  # before the entry is seen
            direct.append(pseudo)
        return tuple(direct)

    # --- checking phrases and NEARs ------------------------------------------------------------

    def _stems_of(self, words_: list[str] | set[str]) -> list[str]:
        """The stems of words, "" for a word that starts like no stem (it can match none)."""
        found = list(map(self._stem_cache.get, words_))
        if None in found:  # words never stemmed (or the cache was just emptied)
            for i, word in enumerate(words_):
                if found[i] is None:
                    found[i] = self._stem(word) if self._may_stem(word) else ""
                    self._stem_cache[word] = found[i]  # type: ignore[assignment]
        return found  # type: ignore[return-value]

    def _may_stem(self, word: str) -> bool:
        """Whether `word` may have the stem of a STEM unit (False: it surely has none)."""
        if "ying" in word:
            return True
        for length in self._stem_short_lengths:
            if word[:length] in self._stem_short:
                return True
        starts = self._stem_starts
        if word[:4] not in starts:
            return False
        heads = self._stem_heads
        size = len(word)
        for length in self._stem_lengths:
            if length > size:
                return False
            head = word[:length]
            if head in heads:
                return True
            if head not in starts:
                return False
        return False

    def _starts(
        self, units: tuple[Unit, ...], art: _Article, bit: int, seq: list[str]
    ) -> list[int]:
        """Where `units` occur in sequence in the field `bit` (words `seq`) of the article."""
        kind, key = units[0]
        n = len(units)
        size = len(seq)
        if kind == PREFIX:
            found = [i for i, w in enumerate(seq) if w.startswith(key)]
        else:  # list.index scans in C: ~10x a loop in Python over a 50-word summary
            base = seq if kind == EXACT else self._field_stems(art, bit, seq)
            found = []
            i = -1
            try:
                while True:
                    i = base.index(key, i + 1)
                    found.append(i)
            except ValueError:
                pass
        if n == 1 or not found:
            return found
        out = []
        for i in found:
            if i + n > size:
                continue
            for k in range(1, n):
                kind, key = units[k]
                if kind == EXACT:
                    if seq[i + k] != key:
                        break
                elif kind == STEM:
                    if self._field_stems(art, bit, seq)[i + k] != key:
                        break
                elif not seq[i + k].startswith(key):
                    break
            else:
                out.append(i)
        return out

    def _field_stems(self, art: _Article, bit: int, seq: list[str]) -> list[str]:
        found = art.stems.get(bit)
        if found is None:
            found = art.stems[bit] = self._stems_of(seq)
        return found

    def _check(self, leaf: int, art: _Article) -> bool:
        units = self._units[leaf]
        near = self._near[leaf]
        mask = self._masks[leaf]
        for bit, seq in art.fields:
            if not bit & mask:
                continue
            left = self._starts(units, art, bit, seq)
            if not left:
                continue
            if near is None:
                return True
            distance, right_units = near
            right = self._starts(right_units, art, bit, seq)
            n_left, n_right = len(units), len(right_units)
            for i in left:
                for j in right:
                    if i + n_left <= j:  # left ... right
                        if j - (i + n_left) <= distance:
                            return True
                    elif j + n_right <= i and i - (j + n_right) <= distance:  # right ... left
                        return True
        return False

    # --- matching ------------------------------------------------------------------------------

    def match(self, title: str, summary: str) -> dict[str, tuple[str, ...]]:
        """Watchlist name -> the terms that matched (as written, in query order), for an article
        of a title and a summary. Watchlists that did not match are left out."""
        head = words(title)
        if not summary:
            return self._match([(1, head)], head)
        tail = words(summary)
        return self._match([(1, head), (2, tail)], head + tail)

    def match_fields(self, fields: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
        """As `match`, for an article given as {"title": ..., "summary": ..., "body": ...} (any
        of them may be missing: `body:` then matches nothing)."""
        split = []
        seq: list[str] = []
        for name, bit in _BITS.items():
            text = fields.get(name)
            if text:
                found = words(text)
                split.append((bit, found))
                seq += found
        return self._match(split, seq)

    def _match(
        self, fields: list[tuple[int, list[str]]], seq: list[str]
    ) -> dict[str, tuple[str, ...]]:
        """`fields`: (field bit, its words) of the article; `seq`: all its words, in one list
        (concatenated by the caller in C: a comprehension over them was ~8 % of an article)."""
        cache = self._cache
        if len(cache[0]) > _CACHE_LIMIT:
            self._reset_cache(cache)
            cache = self._cache
        entries, others, previous, previous_others, _ = cache
        # one lookup a word, in C; the entries of words without leaves are () (falsy)
        found = list(map(entries.get, seq))
        if None in found:  # new words (or repeated ones, known once the first is)
            i = -1
            try:
                while True:
                    i = found.index(None, i + 1)
                    word = seq[i]
                    entry = entries.get(word)
                    if entry is None:
                        entry = previous.get(word)
                        if entry is None:
                            entry = self._entry(word, others)
                        elif entry and entry[-1] < 0:
                            others[entry[-1]] = previous_others[entry[-1]]
                        entries[word] = entry
                    found[i] = entry
            except ValueError:
                pass
        # the single-word leaves of every word at once, in C (most words have only those)
        true: set[int] = set().union(*filter(None, found))
        if not true:
            return {}
        if min(true) < 0:  # words that start a phrase or a NEAR, or scoped terms
            art: _Article | None = None
            for pseudo in [leaf for leaf in true if leaf < 0]:
                true.discard(pseudo)
                word, scoped, checks = others[pseudo]
                for leaf, mask in scoped:
                    if leaf not in true and any(bit & mask and word in s for bit, s in fields):
                        true.add(leaf)
                for leaf, needs in checks:
                    # most phrases and NEARs lack one of their units: a C-level subset test first
                    if leaf not in true and needs <= true:
                        if art is None:
                            art = _Article(fields)
                        if self._check(leaf, art):
                            true.add(leaf)
            if not true:
                return {}

        triggered: set[int] = set().union(*map(self._triggers.__getitem__, true))
        if not triggered:
            return {}
        evaluators = self._evaluators
        result: dict[str, tuple[str, ...]] = {}
        for index in sorted(triggered):
            evaluate = evaluators[index]
            if evaluate is None or evaluate(true):
                at = self._report_at[index]
                if at is not None and len(true) < len(at):  # a few true of many: look those up
                    terms = tuple(
                        text for _, text in sorted(at[leaf] for leaf in true if leaf in at)
                    )
                else:  # (in C: ~2x the generator)
                    terms = tuple(
                        compress(
                            self._reported_texts[index],
                            map(true.__contains__, self._reported_leaves[index]),
                        )
                    )
                result[self._names[index]] = terms
        return result


def _cost(node: Term | Near) -> float:
    """A guess at how often a leaf is true (no word frequencies at hand): longer words are rarer,
    a prefix is commoner than its word, a phrase or a NEAR rarer than its rarest word."""

    def term_cost(term: Term) -> float:
        costs = [max(1.0, 12.0 - len(w)) for w in term.words]
        if term.prefix:
            costs[-1] *= 3
        return min(costs) / len(term.words)

    if isinstance(node, Term):
        return term_cost(node)
    return min(term_cost(node.left), term_cost(node.right)) / 2
