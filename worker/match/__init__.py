"""Matching: which watchlists an article matches, and by which terms.

- text.py: folding, words, stems (`fold`, `words`, `stem`), `keywords` terms (`parse_keyword`);
- query.py: the query language (`parse_query`, `QueryError`), a hand-written parser (why: there);
- matcher.py: `Matcher(watchlists).match(title, summary)` / `.match_fields({...})`, one pass over
  an article's words whatever the number of watchlists;
- snippet.py: where a matched term occurs in a text, and the words around it (`snippet`);
- explain.py: why a watchlist matches an article or not (`worker why`).
"""

from worker.match.explain import Explanation, explain_watchlists
from worker.match.matcher import Matcher
from worker.match.query import FIELDS, Query, QueryError, parse_query
from worker.match.snippet import occurs, snippet
from worker.match.text import Keyword, fold, parse_keyword, stem, words

__all__ = [
    "FIELDS",
    "Explanation",
    "Keyword",
    "Matcher",
    "Query",
    "QueryError",
    "explain_watchlists",
    "fold",
    "occurs",
    "parse_keyword",
    "parse_query",
    "snippet",
    "stem",
    "words",
]
