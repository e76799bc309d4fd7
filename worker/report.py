"""What one source's pass did (`PassReport`): made by the pipeline, read by the watchdog, the
daemon and the commands (its own module, so the watchdog needs not import the pipeline)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from worker.crawl import CrawlReport


@dataclass
class PassReport:
    """What one source's pass did: the line `worker once` prints and the daemon logs."""

    source: str
    ok: bool
    crawl: CrawlReport
    error: str | None = None
    failures: int = 0  # failed passes in a row, this one included (0: it succeeded)
    held_until: datetime | None = None  # the breaker is open: no pass before then

    def line(self) -> str:
        c = self.crawl
        if not self.ok:
            return (
                f"{self.source}: FAILED after {c.pages} page(s), {c.new} new stored "
                f"({c.duration:.1f}s): {self.error}"
            )
        text = (
            f"{self.source}: {c.pages} page(s), {c.items} item(s), {c.new} new, "
            f"{c.alerts} alert(s) queued ({c.duration:.1f}s; {'; '.join([c.stop, *c.notes])})"
        )
        if c.silent:
            would = ", ".join(f"{w}={n}" for w, n in sorted(c.would_alert.items())) or "none"
            text += f" [first pass: stored silently; would have alerted: {would}]"
        return text
