"""Progress of a long pass: a line rewritten in place on a terminal, else a log line now and then.

A source's first pass over a long listing (300 pages at one request a second is five minutes)
would otherwise be silent until its end. On a terminal one line shows, for the pass that last
read a page, `news: page 12 of 300, 70 new stored, 3.2 pages/s, ~1m30s left`; it is cleared
before any log record is written (worker.logs) and when the pass ends. When standard error is
not a terminal (a service, a pipe, a file), or logs are JSON, a log line every
PROGRESS_LOG_EVERY pages says the same. Twenty lines of our own instead of tqdm or rich: one
line, no bars, nothing else to install or import (rich costs ~60 ms of import at start).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from worker.crawl import CrawlReport

log = logging.getLogger(__name__)

PROGRESS_LOG_EVERY = 25  # pages between two progress log lines when not on a terminal
TTY_MIN_PAGES = 2  # a quiet pass (one page) never flashes a line
TTY_REFRESH = 0.1  # seconds between two redraws of the terminal line


class StatusLine:
    """One line at the bottom of standard error, rewritten in place (`\\r`, erase line)."""

    def __init__(self) -> None:
        self.enabled = True  # worker.logs turns it off for JSON logs and -q
        self._shown = False
        self._lock = threading.Lock()

    def active(self) -> bool:
        """Whether a line may be drawn: standard error is a terminal that can erase a line."""
        if not self.enabled or os.environ.get("TERM") == "dumb":
            return False
        try:
            return sys.stderr.isatty()
        except (AttributeError, ValueError):
            return False

    def show(self, text: str) -> None:
        width = shutil.get_terminal_size((80, 24)).columns - 1
        with self._lock:
            sys.stderr.write("\r\x1b[K" + text[:width])
            sys.stderr.flush()
            self._shown = True

    def clear(self) -> None:
        if not self._shown:
            return
        with self._lock:
            if self._shown:
                sys.stderr.write("\r\x1b[K")
                sys.stderr.flush()
                self._shown = False


STATUS_LINE = StatusLine()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class PassProgress:
    """The crawl's per-page observer for one pass of one source (`crawl_source(on_page=...)`)."""

    def __init__(
        self,
        source: str,
        *,
        every: int = PROGRESS_LOG_EVERY,
        terminal: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.every = every
        self.terminal = STATUS_LINE.active() if terminal is None else terminal
        self.clock = clock
        self.started = clock()
        self._drawn = 0.0
        self._logged = 0

    def text(self, report: CrawlReport) -> str:
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = report.pages / elapsed
        of = f" of {report.last_page}" if report.last_page else ""
        text = (
            f"{self.source}: page {report.pages}{of}, {report.new} new stored, {rate:.1f} pages/s"
        )
        if report.last_page and rate > 0 and report.last_page > report.pages:
            text += f", ~{_duration((report.last_page - report.pages) / rate)} left"
        return text

    def __call__(self, report: CrawlReport) -> None:
        if self.terminal:
            now = self.clock()
            if report.pages >= TTY_MIN_PAGES and now - self._drawn >= TTY_REFRESH:
                self._drawn = now
                STATUS_LINE.show(self.text(report))
        elif report.pages - self._logged >= self.every:
            self._logged = report.pages
            log.info(
                "progress %s",
                self.text(report),
                extra={
                    "source": self.source,
                    "pages": report.pages,
                    "last_page": report.last_page,
                    "new": report.new,
                },
            )

    def done(self) -> None:
        if self.terminal:
            STATUS_LINE.clear()
