"""The cyclic garbage collector around a reload's build, which runs in a thread.

A reload of 10,000 watchlists allocates a few hundred thousand objects (the config's models, the
matcher's index). Those allocations trigger full collections, and a full collection walks every
object the collector tracks while it holds the interpreter lock: the event loop waits for it
(~57 ms a collection at 10,000 watchlists on this machine, loaded; more than one a reload). So
the build runs with the collector paused, and what it built, once accepted, is frozen out of the
full collections, as start-up's objects are (`Daemon.startup`): it lives until the next reload,
and refcounting still frees it then (frozen objects are only skipped by the collector's walks).
The cost: garbage in reference cycles that is alive at the freeze stays allocated; a reload is a
rare event (a person edits a file), and a pass leaves little such garbage.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0  # builds in progress; the collector runs again when the last one ends
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


def keep_out_of_full_collections() -> None:
    """Move every object alive now to the collector's permanent generation (`gc.freeze`)."""
    gc.freeze()
