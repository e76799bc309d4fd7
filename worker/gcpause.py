"""`collector_paused()`: no automatic cyclic garbage collection while a block runs.

Building a config of 10,000 watchlists and its matcher allocates a few hundred thousand
objects, which trigger full collections, each a walk over every object the collector tracks:
about half of the build's time (bench/bench_match.py, 2026-12-02: load 1.34-1.73 s with the
collector running, 0.69-0.97 s with it paused; reload 1.07-1.14 s against 0.43-0.54 s). What
such a build leaves is long-lived (the daemon freezes it out of the full collections:
worker/daemon/collector.py) or freed by reference counting (the matcher holds no cycles:
tests/test_reload_matcher.py), so the walks find nothing to free.

The pause is counted, since the collector is one for all threads: it runs again when the last
block ends, and only if it was running when the first began. A bottom module (it imports
nothing of the worker) so that every stage may use it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_paused = 0  # blocks in progress
_was_enabled = True


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection while the block runs (in any thread: the collector is global)."""
    global _paused, _was_enabled
    with _lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()
