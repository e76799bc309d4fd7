"""`worker probe URL`: look at a listing page nobody has described yet and propose a working
`[[sources]]` block for it.

The steps, one module each (their docstrings give the heuristics and their figures):

- `blocks`: the repeated blocks that are article teasers (same-structure siblings, each linking
  to a distinct page of the site with a title-like text), scored; menus, tag clouds, footers,
  "Popular"/"Related" lists and carousels lose;
- `fields`: the `select` table (item, title, link, summary, published), the results counter and
  the pagination (`next` link or a `page_url` template);
- `css`: the shortest selectors naming exactly the chosen elements;
- `run`: fetching (the worker's Fetcher), trying the best candidates, verifying each with the
  worker's own parser on this page and on page 2;
- `seen`: what the page is when it holds no listing (a login page, an error, an article);
- `output`: the TOML block (with the first items and the doubts as comments) or JSON.
"""

from worker.probe.output import to_data, to_toml
from worker.probe.run import BadUrl, ProbeResult, probe, source_name

__all__ = ["BadUrl", "ProbeResult", "probe", "source_name", "to_data", "to_toml"]
