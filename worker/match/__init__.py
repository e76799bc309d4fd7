"""Matching: which watchlists an article matches, and by which terms.

- text.py: folding, words, stems (`fold`, `words`, `stem`), `keywords` terms (`parse_keyword`),
  and the snippet of a text around a matched term (`snippet`);
- query.py: the query language (`parse_query`, `QueryError`), a hand-written parser (why: there);
- matcher.py: `Matcher(watchlists).match(title, summary)` / `.match_fields({...})`, one pass over
  an article's words whatever the number of watchlists.
"""

from worker.match.explain import Explanation, explain_watchlists
from worker.match.matcher import Matcher
from worker.match.query import FIELDS, Query, QueryError, parse_query
from worker.match.text import Keyword, fold, parse_keyword, snippet, stem, words

__all__ = [
    "FIELDS",
    "Explanation",
    "Keyword",
    "Matcher",
    "Query",
    "QueryError",
    "explain_watchlists",
    "fold",
    "parse_keyword",
    "parse_query",
    "snippet",
    "stem",
    "words",
]
