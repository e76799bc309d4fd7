"""The reference Scrapy spider for bench/bench_backfill.py: same listing, same fields.

    scrapy runspider bench/scrapy_spider.py -a start_url=URL [-a page_url=TEMPLATE] \
        -O out.jsonl -s LOG_LEVEL=WARNING

It reads every `#main article` teaser of the local news site (worker/site.py) with the selectors of
the worker's demo config and yields {title, url, summary, published}, as the worker stores them
(text with whitespace collapsed, the link made absolute).

- Without `page_url` it follows the `a.next.page-numbers` link, one page after the other (what the
  worker does with `next` only).
- With `page_url` (a template with `{page}`) it reads "Viewing results X - Y of Z" on page 1 and
  requests every page 2..last at once, so Scrapy's own concurrency (CONCURRENT_REQUESTS=16,
  CONCURRENT_REQUESTS_PER_DOMAIN=8 by default) fetches them in parallel: the strongest Scrapy
  equivalent of the worker's `page_url` + `results` mode.

Settings are Scrapy's defaults, except what the benchmark passes on the command line (logging
WARNING) and ROBOTSTXT_OBEY off (already the default outside a generated project).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import scrapy

RESULTS_RE = re.compile(r"of\s+([\d,]+)")
SPACES_RE = re.compile(r"\s+")


def _text(parts: list[str]) -> str:
    return SPACES_RE.sub(" ", " ".join(parts)).strip()


class ListingSpider(scrapy.Spider):
    name = "listing"
    custom_settings = {"ROBOTSTXT_OBEY": False}  # noqa: RUF012

    def __init__(self, start_url: str, page_url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_url = start_url
        self.page_url = page_url or None

    async def start(self) -> Any:  # Scrapy >= 2.13
        for request in self.start_requests():
            yield request

    def start_requests(self) -> Iterator[scrapy.Request]:
        yield scrapy.Request(self.start_url, callback=self.parse_first)

    def parse_first(self, response: Any) -> Iterator[Any]:
        yield from self.items(response)
        if self.page_url is not None:
            counter = _text(response.css(".search-results-count ::text").getall())
            match = RESULTS_RE.search(counter)
            per_page = len(response.css("#main article"))
            if match and per_page:
                total = int(match.group(1).replace(",", ""))
                last = -(-total // per_page)
                for number in range(2, last + 1):
                    yield scrapy.Request(
                        self.page_url.format(page=number), callback=self.parse_page
                    )
                return
        yield from self.follow_next(response)

    def parse_page(self, response: Any) -> Iterator[Any]:
        yield from self.items(response)
        if self.page_url is None:
            yield from self.follow_next(response)

    def follow_next(self, response: Any) -> Iterator[Any]:
        href = response.css("a.next.page-numbers::attr(href)").get()
        if href:
            yield response.follow(href, callback=self.parse_page)

    def items(self, response: Any) -> Iterator[dict[str, Any]]:
        for article in response.css("#main article"):
            href = article.css("h2.entry-title a::attr(href)").get()
            title = _text(article.css("h2.entry-title a ::text").getall())
            if not href or not title:
                continue
            yield {
                "title": title,
                "url": response.urljoin(href),
                "summary": _text(article.css(".entry-summary ::text").getall()),
                "published": article.css("time.entry-date::attr(datetime)").get(),
            }
