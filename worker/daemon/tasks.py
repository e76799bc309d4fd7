"""Small helpers every part of the daemon uses: background tasks, waiting on events, digests."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Tasks:
    """The daemon's background tasks: each named, kept until done, a crash logged (not lost)."""

    def __init__(self) -> None:
        self.running: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.running.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.running.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s crashed: %r", task.get_name(), exc, exc_info=exc)


def file_digest(path: Path) -> bytes | None:
    """The SHA-256 of a file's content, or None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


async def wait_any(events: Iterable[asyncio.Event], *, seconds: float) -> None:
    """Wait until one of `events` is set or `seconds` have passed."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
