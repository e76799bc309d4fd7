"""Benchmark of worker.match.Matcher: keywords against a plain loop of compiled regular
expressions, and 10,000 boolean query watchlists.

    python bench/bench_match.py [--mode both|keywords|boolean] [--keywords 10000]
                                [--articles 100000] [--watchlists 200] [--queries 10000]
                                [--baseline-articles 500] [--seed 1] [--profile] [--lark]

Boolean part: 10,000 watchlists with queries of seven shapes (AND with a group and a NOT, ORs,
NEAR, a title: scope, two ORed groups with a NOT, a phrase OR a prefix, a NOT of a group), a
fifth of them with `stem = true`, over the same kind of articles, a fifth of which get the
words that make one query match planted in them. Figures: load (config validation + compile,
parse cache cold), reload (the same config again), memory, articles/s, and agreement with a
direct evaluation of each query's tree on a sample. `--lark` also times a lark LALR parser of
the same language over the same queries (the parser choice, worker/match/query.py).

Times are CPU time of this process (time.process_time): the work is single-threaded and
CPU-bound, and on a shared machine wall time mostly measures the other jobs.

Data are generated deterministically (seeded): the vocabulary comes from the texts in
shared/seeds/*.txt when present (else from a word list in this file), plus generated words, some
with diacritics or in Cyrillic; titles have ~12 words and summaries ~50, drawn with a Zipf-like
law; a fifth of the articles get one keyword planted in them (in another case, with a
suffix for a prefix keyword, a hyphen inside a phrase) so that matches, phrases and excludes are
really exercised. The baseline folds the text the same way and tries one
`re.compile(r"\\b...\\b", re.I)` per keyword in a loop; both must agree on every baseline article.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import random
import re
import resource
import sys
import time
import tracemalloc
import unicodedata
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.config import Config, parse_config
from worker.match import Matcher, parse_query, stem, words
from worker.match.query import And, Near, Node, Not, Or, Term

TARGET = 20_000  # articles per second on one core

FALLBACK_TEXT = """
Kyrgyzstan and Russia have reaffirmed their commitment to deepening bilateral cooperation across
diverse sectors following a high-level meeting between the presidents in Moscow. Trade increased
by over eleven percent and the development fund continues to support industrial and agricultural
initiatives. Kazakhstan and Uzbekistan signed agreements on water management, energy, transit
corridors and the construction of a railway linking China with Central Asia. The government
announced new investment in hydropower plants, solar projects, mining, logistics, education and
health care. Officials discussed the Trans-Caspian route, customs procedures, border crossings,
migration, remittances, wheat exports, cotton harvests, inflation, the national bank, currency
reserves and the budget. Tajikistan and Turkmenistan held talks on gas pipelines, security,
drug trafficking, Afghanistan, refugees, climate change, glaciers, drought and irrigation canals.
The parliament adopted amendments to the constitution, the media law and the tax code, while
journalists and human rights groups criticized restrictions on freedom of expression.
"""

EXTRA_WORDS = [
    "Türkiye", "Almatý", "Öskemen", "Şymkent", "Nur-Sultan", "Qaraǵandy", "Ürümqi", "Bişkek",
    "Кыргызстан", "Кыргызстана", "Казахстан", "Ташкент", "Бишкек", "Алматы", "Душанбе", "ёлка",
    "железная", "дорога", "Россия", "Китай", "энергетика", "Ёшлар", "Қазақстан", "Oʻzbekiston",
]  # fmt: skip

SYLLABLES = [c + v for c in "bdgklmnprstvzhjqfy" for v in "aeiouy"]  # for generated words

SUFFIXES = ["", "s", "es", "ing", "ways", "ed", "ian", "а", "у"]


def seed_text() -> str:
    here = Path(__file__).resolve()
    places: list[str | Path] = [os.environ.get("BENCH_SEEDS", "")]
    places += [here.parents[2] / "shared" / "seeds", "/work/shared/seeds"]
    for place in places:
        if place and Path(place).is_dir():
            files = sorted(Path(place).glob("*.txt"))
            if files:
                return "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    return FALLBACK_TEXT


def vocabulary(rng: random.Random, generated: int) -> list[str]:
    """Words by rank: the seed text's words (most frequent first), extras, generated words."""
    counts = Counter(w for w in re.findall(r"\w+", seed_text()) if not w.isdigit() and len(w) > 1)
    vocab = [w for w, _ in counts.most_common()]
    seen = {w.lower() for w in vocab}
    vocab += [w for w in EXTRA_WORDS if w.lower() not in seen]
    seen.update(w.lower() for w in EXTRA_WORDS)
    while len(vocab) < len(counts) + len(EXTRA_WORDS) + generated:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if rng.random() < 0.05:
            word = word.replace("a", "á", 1).replace("o", "ö", 1)
        if rng.random() < 0.3:
            word = word.capitalize()
        if word.lower() not in seen:
            seen.add(word.lower())
            vocab.append(word)
    vocab += ["5G", "2025", "COP29", "EU"]
    return vocab


def make_keywords(rng: random.Random, vocab: list[str], total: int, n_watchlists: int):
    """`total` distinct terms (keywords and excludes) spread over `n_watchlists` watchlists."""
    # a few keywords are common words ("Kyrgyzstan"), most are rarer names and terms
    common = [w for w in vocab[20:1000] if w[0].isupper()]  # names: "Kazakhstan", "European"
    pool = [w for w in vocab[5000:] if len(w) >= 5]
    mixed = common + pool
    made: set[str] = set()
    terms: list[tuple[str, list[str], bool]] = []  # text, display words, prefix
    while len(terms) < total:
        kind = rng.random()
        if kind < 0.002:
            shown, prefix = [rng.choice(common)], False  # "Kyrgyzstan": matches often
        elif kind < 0.55:
            shown, prefix = [rng.choice(pool)], False
        elif kind < 0.80:
            shown = [rng.choice(mixed) for _ in range(rng.randint(2, 4))]
            if rng.random() < 0.3:
                shown[1:-1] = ["and"] * (len(shown) - 2)  # "Belt and Road"-like
            prefix = False
        elif kind < 0.95:
            stem = rng.choice(pool)
            shown, prefix = [stem[: max(5, len(stem) - rng.randint(0, 2))]], True
        else:
            shown = [rng.choice(mixed) for _ in range(rng.randint(2, 3))]
            prefix = True
        text = " ".join(shown) + ("*" if prefix else "")
        if rng.random() < 0.5:
            text = text.lower()
        if len(shown) > 1 and rng.random() < 0.5:
            text = f'"{text}"'
        if text.lower() in made:
            continue
        made.add(text.lower())
        terms.append((text, shown, prefix))
    n_exclude = total // 25
    excludes, keywords = terms[:n_exclude], terms[n_exclude:]
    watchlists = []
    for i in range(n_watchlists):
        watchlists.append(
            SimpleNamespace(
                name=f"wl{i:04d}",
                keywords=[t for t, _, _ in keywords[i::n_watchlists]],
                exclude=[t for t, _, _ in excludes[i::n_watchlists]],
                channels=["bench"],
                sources=None,
            )
        )
    return watchlists, keywords + excludes


def make_articles(rng: random.Random, vocab: list[str], terms, count: int):
    cum = []
    acc = 0.0
    for rank in range(len(vocab)):
        acc += (rank + 10) ** -1.3  # Zipf-like: common words dominate
        cum.append(acc)

    def text(n: int) -> list[str]:
        return rng.choices(vocab, cum_weights=cum, k=n)

    articles = []
    for _ in range(count):
        title = text(rng.randint(8, 16))
        summary = text(rng.randint(35, 65)) if rng.random() > 0.05 else []
        if rng.random() < 0.2:
            _, shown, prefix = rng.choice(terms)
            planted = [w.upper() if rng.random() < 0.2 else w for w in shown]
            if prefix:
                planted[-1] += rng.choice(SUFFIXES)
            target = title if (rng.random() < 0.4 or not summary) else summary
            at = rng.randint(0, len(target))
            if len(planted) > 1 and rng.random() < 0.3:
                target.insert(at, "-".join(planted))
            else:
                target[at:at] = planted
        title[0] = title[0].capitalize()
        body = " ".join(summary)
        if body:
            body = body[0].upper() + body[1:] + "."
        articles.append((" ".join(title), body))
    return articles


# --- the baseline: one compiled regex per keyword ---------------------------------------------


def slow_fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).casefold()
    return "".join(c for c in text if not unicodedata.combining(c))


class RegexLoop:
    def __init__(self, watchlists) -> None:
        def compile_term(term: str) -> re.Pattern[str]:
            body = term.strip().strip('"').strip()
            prefix = body.endswith("*")
            found = re.findall(r"\w+", slow_fold(body.rstrip("*")))
            pattern = r"\W+".join(map(re.escape, found)) + (r"\w*" if prefix else "")
            return re.compile(rf"\b{pattern}\b", re.IGNORECASE)

        self.watchlists = [
            (
                w.name,
                [(k, compile_term(k)) for k in w.keywords],
                [compile_term(x) for x in w.exclude],
            )
            for w in watchlists
        ]

    def match(self, title: str, summary: str) -> dict[str, tuple[str, ...]]:
        texts = (slow_fold(title), slow_fold(summary))
        result = {}
        for name, keywords, exclude in self.watchlists:
            hit = []
            for text, regex in keywords:
                if text not in hit and any(regex.search(t) for t in texts):
                    hit.append(text)
            if hit and not any(regex.search(t) for regex in exclude for t in texts):
                result[name] = tuple(hit)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["both", "keywords", "boolean"], default="both")
    parser.add_argument("--keywords", type=int, default=10_000)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--watchlists", type=int, default=200)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--baseline-articles", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile the matching loop")
    parser.add_argument("--lark", action="store_true", help="also time a lark parser")
    args = parser.parse_args(argv)
    code = 0
    if args.mode in ("both", "keywords"):
        code |= keywords_main(args)
    if args.mode in ("both", "boolean"):
        code |= boolean_main(args)
    return code


def keywords_main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    started = time.process_time()
    vocab = vocabulary(rng, generated=200_000)
    watchlists, terms = make_keywords(rng, vocab, args.keywords, args.watchlists)
    articles = make_articles(rng, vocab, terms, args.articles)
    n_phrases = sum(1 for _, shown, _ in terms if len(shown) > 1)
    n_prefix = sum(1 for _, _, prefix in terms if prefix)
    n_exclude = sum(len(w.exclude) for w in watchlists)
    print(
        f"data: {len(vocab)} words of vocabulary, generated in {time.process_time() - started:.1f} s"
    )
    print(
        f"keywords: {len(terms)} ({n_phrases} phrases, {n_prefix} with *, {n_exclude} excludes) "
        f"in {len(watchlists)} watchlists"
    )
    avg_words = sum(len(t.split()) + len(s.split()) for t, s in articles) / len(articles)
    print(f"articles: {len(articles)} (~{avg_words:.0f} words each)")

    tracemalloc.start()
    Matcher(watchlists)
    _, build_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    t0 = time.process_time()
    matcher = Matcher(watchlists)
    build = time.process_time() - t0
    print(f"build: {build * 1000:.0f} ms, {build_peak / 1e6:.1f} MB allocated at peak")

    gc.collect()  # as the daemon's start-up does (see boolean_main)
    gc.freeze()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    t0 = time.process_time()
    matched = 0
    hits = 0
    for title, summary in articles:
        result = matcher.match(title, summary)
        if result:
            matched += 1
            hits += len(result)
    ours = time.process_time() - t0
    if profiler:
        profiler.disable()
    ours_rate = len(articles) / ours
    print(
        f"ours: {ours_rate:,.0f} articles/s ({ours:.2f} s, one pass, word cache cold); "
        f"{matched / len(articles):.0%} of articles match a watchlist, "
        f"{hits / max(matched, 1):.2f} watchlists each"
    )
    t0 = time.process_time()
    for title, summary in articles:
        matcher.match(title, summary)
    warm = time.process_time() - t0
    print(f"ours, second pass (word cache warm): {len(articles) / warm:,.0f} articles/s")

    sample = articles[: args.baseline_articles]
    t0 = time.process_time()
    loop = RegexLoop(watchlists)
    regex_build = time.process_time() - t0
    t0 = time.process_time()
    expected = [loop.match(t, s) for t, s in sample]
    regex_time = time.process_time() - t0
    regex_rate = len(sample) / regex_time
    print(
        f"regex loop: {regex_rate:,.0f} articles/s on {len(sample)} articles "
        f"(compile {regex_build * 1000:.0f} ms)"
    )
    agree = sum(matcher.match(t, s) == e for (t, s), e in zip(sample, expected, strict=True))
    with_match = sum(1 for e in expected if e)
    print(f"agreement: {agree}/{len(sample)} articles ({with_match} of them with a match)")
    for (t, s), e in zip(sample, expected, strict=True):
        got = matcher.match(t, s)
        if got != e:
            print(f"  DIFFER: {t!r}\n    ours {got}\n    regex {e}")
            break
    print(f"speed-up: {ours_rate / regex_rate:,.0f}x")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak_rss:.0f} MB RSS (whole process, data included)")
    verdict = "OK" if ours_rate >= TARGET else "BELOW TARGET"
    print(f"target {TARGET:,} articles/s: {verdict}")

    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    return 0 if agree == len(sample) else 1


# --- boolean queries -----------------------------------------------------------------------------


def make_queries(rng: random.Random, vocab: list[str], n: int):
    """`n` (query, stem, witness) triples: the witness is (title words, summary words) that make
    the query match when planted in an article."""
    lower = {w for w in vocab if w.islower()}
    # frequent names ("Tokayev", "Mongolia"): capitalised and never written in lower case (not
    # "In" or "Trade" at the start of a sentence)
    common = [w for w in vocab[20:2000] if w[0].isupper() and w.lower() not in lower]
    pool = [w for w in vocab[5000:] if len(w) >= 5]

    def word() -> str:
        # one term in 100 is a frequent name: it occurs in many articles, and the queries using
        # it in an AND must not be evaluated for each of them (the triggers pick the rarer side)
        return rng.choice(common) if rng.random() < 0.01 else rng.choice(pool)

    def term() -> tuple[str, list[str]]:  # (as written, words that make it occur)
        roll = rng.random()
        if roll < 0.6:
            w = word()
            return w, [w]
        if roll < 0.8:
            w = rng.choice(pool)
            stem_ = w[: max(5, len(w) - 2)]
            return stem_ + "*", [stem_ + rng.choice(SUFFIXES)]
        ws = [word() for _ in range(rng.randint(2, 3))]
        return '"' + " ".join(ws) + '"', ws

    out = []
    seen: set[str] = set()
    while len(out) < n:
        shape = rng.randrange(7)
        t = [term() for _ in range(5)]
        (a, wa), (b, wb), (c, wc), (d, _), (e, _) = t
        title: list[str] = []
        summary: list[str] = []
        if shape == 0:
            query, summary = f"{a} AND ({b} OR {c}) -{d}", [*wa, "x", *wb]
        elif shape == 1:
            query, summary = f"{a} OR {b} OR {c}", wc
        elif shape == 2:
            k = rng.randint(2, 8)
            query, summary = f"{a} NEAR/{k} {b}", wb + ["y"] * rng.randint(0, k) + wa
        elif shape == 3:
            query, title, summary = f"title:{a} {b}", wa, wb
        elif shape == 4:
            query, summary = f"({a} OR {b}) ({c} OR {d}) NOT {e}", [*wb, "z", *wc]
        elif shape == 5:
            query, summary = f"{c} OR {a}", wa
        else:
            query, summary = f"{a} -({b} OR {c})", wa
        if query in seen:
            continue
        seen.add(query)
        out.append((query, rng.random() < 0.2, (title, summary)))
    return out


def make_boolean_articles(rng: random.Random, vocab: list[str], queries, count: int):
    cum = []
    acc = 0.0
    for rank in range(len(vocab)):
        acc += (rank + 10) ** -1.3
        cum.append(acc)
    articles = []
    for _ in range(count):
        title = rng.choices(vocab, cum_weights=cum, k=rng.randint(8, 16))
        summary = rng.choices(vocab, cum_weights=cum, k=rng.randint(35, 65))
        if rng.random() < 0.2:
            _, _, (t_words, s_words) = rng.choice(queries)
            at = rng.randint(0, len(title))
            title[at:at] = t_words
            at = rng.randint(0, len(summary))
            summary[at:at] = s_words
        articles.append((" ".join(title), " ".join(summary) + "."))
    return articles


def _occurs(term: Term, seq: list[str], stemmed: bool) -> list[int]:
    n = len(term.words)
    found = []
    for i in range(len(seq) - n + 1):
        for k, want in enumerate(term.words):
            got = seq[i + k]
            if term.prefix and k == n - 1:
                ok = got.startswith(want)
            else:
                ok = stem(got) == stem(want) if stemmed else got == want
            if not ok:
                break
        else:
            found.append(i)
    return found


def evaluate(node: Node, fields: dict[str, list[str]], stemmed: bool) -> bool:
    """A query's meaning read straight off its tree (slow, obvious): the reference."""
    if isinstance(node, Term | Near):
        for name, seq in fields.items():
            if node.fields is not None and name not in node.fields:
                continue
            if isinstance(node, Term):
                if _occurs(node, seq, stemmed):
                    return True
                continue
            la, lb = len(node.left.words), len(node.right.words)
            for i in _occurs(node.left, seq, stemmed):
                for j in _occurs(node.right, seq, stemmed):
                    if (i + la <= j and j - i - la <= node.distance) or (
                        j + lb <= i and i - j - lb <= node.distance
                    ):
                        return True
        return False
    if isinstance(node, Not):
        return not evaluate(node.child, fields, stemmed)
    if isinstance(node, And):
        return all(evaluate(c, fields, stemmed) for c in node.children)
    assert isinstance(node, Or)
    return any(evaluate(c, fields, stemmed) for c in node.children)


LARK_GRAMMAR = r"""
?start: or_
?or_: and_ ("OR" and_)*
?and_: unary (("AND")? unary)*
?unary: ("NOT" | MINUS) unary -> not_
      | near
?near: scoped (NEAR scoped)?
?scoped: (FIELD)? primary
?primary: TERM | PHRASE | "(" or_ ")"
NEAR: /NEAR\/\d+/
FIELD.2: /(title|summary|body):/i
MINUS.2: /-(?=[^\s)])/
PHRASE: /"[^"]*"\*?/
TERM: /(?!(AND|OR|NOT|NEAR\/\d+)(?![^\s()"]))[^\s()"-][^\s()"]*/
%ignore /\s+/
"""


def time_lark(queries: list[str]) -> str:
    t0 = time.process_time()
    import lark

    parser = lark.Lark(LARK_GRAMMAR, parser="lalr")
    setup = time.process_time() - t0
    t0 = time.process_time()
    failed = 0
    for query in queries:
        try:
            parser.parse(query)
        except lark.exceptions.LarkError:
            failed += 1
    took = time.process_time() - t0
    return (
        f"lark LALR: import + grammar {setup * 1000:.0f} ms, {len(queries)} queries parsed in "
        f"{took * 1000:.0f} ms (tree only, no error messages; {failed} refused)"
    )


def word_cache_mb(matcher: Matcher) -> str:
    """What the matcher's word cache holds (its private parts, read by sys.getsizeof: words,
    entries, stems and the dicts; not counted in the memory kept after loading)."""
    cache = getattr(matcher, "_cache", None)
    stems = getattr(matcher, "_stem_cache", {})
    if not isinstance(cache, tuple) or len(cache) != 5:
        return "n/a (another matcher)"
    entries, others, previous, previous_others, _ = cache
    size = sum(map(sys.getsizeof, (entries, others, previous, previous_others, stems)))
    for d in (entries, previous):
        size += sum(sys.getsizeof(k) + (sys.getsizeof(v) if v else 0) for k, v in d.items())
    size += sum(map(sys.getsizeof, stems.values()))
    size += sum(sys.getsizeof(v) for d in (others, previous_others) for v in d.values())
    return (
        f"{len(entries):,} + {len(previous):,} words (two generations), {len(stems):,} stems, "
        f"~{size / 1e6:.0f} MB"
    )


def boolean_main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed + 1)
    vocab = vocabulary(rng, generated=200_000)
    queries = make_queries(rng, vocab, args.queries)
    n_stem = sum(1 for _, s, _ in queries if s)
    articles = make_boolean_articles(rng, vocab, queries, args.articles)
    print(f"\nboolean: {len(queries)} query watchlists ({n_stem} with stem = true)")
    raw = {
        "channels": {"c": "console://"},
        "watchlists": [
            {"name": f"q{i:05d}", "query": q, "stem": s, "channels": ["c"]}
            for i, (q, s, _) in enumerate(queries)
        ],
    }

    parse_query.cache_clear()
    t0 = time.process_time()
    for query, _, _ in queries:
        parse_query(query)
    parse_time = time.process_time() - t0
    print(f"parse: {len(queries)} queries in {parse_time * 1000:.0f} ms (hand-written parser)")
    if args.lark:
        print(time_lark([q for q, _, _ in queries]))

    # the config as a reader writes it, loaded as the daemon and `worker check` load it
    # (parse_config: TOML, validation with the collector paused, cross checks)
    toml = '[channels]\nc = "console://"\n' + "".join(
        f"\n[[watchlists]]\nname = {json.dumps(w['name'])}\nquery = "
        f"{json.dumps(w['query'], ensure_ascii=False)}\nstem = {str(w['stem']).lower()}\n"
        'channels = ["c"]\n'
        for w in raw["watchlists"]
    )
    assert parse_config(toml).watchlists == Config.model_validate(raw).watchlists
    parse_query.cache_clear()
    tracemalloc.start()  # memory first (tracemalloc slows allocation ~3x), then time
    config = parse_config(toml)
    matcher = Matcher(config.watchlists)
    retained, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del config, matcher
    parse_query.cache_clear()
    t0 = time.process_time()
    config = parse_config(toml)
    validated = time.process_time() - t0
    matcher = Matcher(config.watchlists)
    load = time.process_time() - t0
    # what the daemon's start-up adds: one full collection, then a freeze (Daemon.startup)
    t1 = time.process_time()
    gc.collect()
    collected = time.process_time() - t1
    print(
        f"load: {load * 1000:.0f} ms (TOML and config validation {validated * 1000:.0f} ms, parse "
        f"cache cold; matcher {(load - validated) * 1000:.0f} ms; then the daemon's one full "
        f"collection {collected * 1000:.0f} ms); memory: {retained / 1e6:.1f} MB "
        f"kept (config + matcher), {peak / 1e6:.1f} MB at peak"
    )
    t0 = time.process_time()
    Matcher(parse_config(toml).watchlists)
    reload_time = time.process_time() - t0
    print(f"reload: {reload_time * 1000:.0f} ms (the same 10,000 again, parse cache warm)")

    # as the daemon's start-up does once its matcher is built (Daemon.startup): one collection,
    # then what is alive (here also the generated articles) is out of the full collections'
    # walks, which otherwise grow with the benchmark's own data, not the worker's (~4 %)
    gc.collect()
    gc.freeze()
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    t0 = time.process_time()
    matched = hits = 0
    for title, summary in articles:
        result = matcher.match(title, summary)
        if result:
            matched += 1
            hits += len(result)
    took = time.process_time() - t0
    if profiler:
        profiler.disable()
    rate = len(articles) / took
    print(
        f"boolean: {rate:,.0f} articles/s ({took:.2f} s, word cache cold); "
        f"{matched / len(articles):.0%} of articles match a watchlist, "
        f"{hits / max(matched, 1):.2f} watchlists each"
    )
    t0 = time.process_time()
    for title, summary in articles:
        matcher.match(title, summary)
    warm = time.process_time() - t0
    print(f"boolean, second pass (word cache warm): {len(articles) / warm:,.0f} articles/s")
    print(f"word cache after the two passes: {word_cache_mb(matcher)}")

    # agreement on a sample: every 50th watchlist, the first articles
    sample_wl = config.watchlists[::50]
    parsed = [(w.name, parse_query(w.query).root, w.stem) for w in sample_wl]  # type: ignore[arg-type]
    names = {n for n, _, _ in parsed}
    sample = articles[: args.baseline_articles]
    agree = 0
    for title, summary in sample:
        fields = {"title": words(title), "summary": words(summary)}
        expected = {n for n, root, st in parsed if evaluate(root, fields, st)}
        got = set(matcher.match(title, summary)) & names
        agree += got == expected
    print(
        f"agreement with a direct evaluation: {agree}/{len(sample)} articles "
        f"({len(parsed)} watchlists compared)"
    )
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak_rss:.0f} MB RSS (whole process, both parts and their data)")
    ok = rate >= TARGET and load < 2 and reload_time < 2 and retained < 100e6
    print(
        f"targets (>= {TARGET:,} articles/s, load and reload < 2 s, < 100 MB): "
        f"{'OK' if ok else 'BELOW TARGET'}"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    return 0 if agree == len(sample) else 1


if __name__ == "__main__":
    sys.exit(main())
