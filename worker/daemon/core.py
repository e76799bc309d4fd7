"""The state the parts of the daemon share, and the helpers they all use."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Iterable
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from worker.health import HealthServer, Metrics
from worker.notify import DeliveryReport, Notifier
from worker.pipeline import PassReport, Runtime

if TYPE_CHECKING:
    from worker.daemon.deliveries import _ChannelLoop

log = logging.getLogger(__name__)


class DaemonCore:
    """The daemon's state and its task bookkeeping; the mixins and `Daemon` build on it."""

    def __init__(
        self,
        runtime: Runtime,
        config_path: str | Path,
        *,
        stopping: asyncio.Event | None = None,
        config_digest: bytes | None = None,
    ) -> None:
        self.runtime = runtime
        self.config_path = Path(config_path)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.metrics = Metrics()
        self.stopping = stopping if stopping is not None else asyncio.Event()
        self.health: HealthServer | None = None
        self._hurry = asyncio.Event()  # a second stop signal: cancel now
        self._passes: dict[str, asyncio.Task[PassReport]] = {}
        self._channel_loops: dict[str, _ChannelLoop] = {}
        self._rounds: dict[asyncio.Task[DeliveryReport], Notifier] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._config_digest = (
            config_digest if config_digest is not None else _file_digest(self.config_path)
        )
        self._missing_logged = False

    def _spawn(self, coro: Awaitable[Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s crashed: %r", task.get_name(), exc, exc_info=exc)


def _file_digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


async def _wait_any(events: Iterable[asyncio.Event], *, seconds: float) -> None:
    """Wait until one of `events` is set or `seconds` have passed."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
