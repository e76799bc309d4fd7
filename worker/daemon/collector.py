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
`collector_paused` itself is in worker/gcpause.py: the config loader and the matcher pause the
collector too, wherever they run.
"""

from __future__ import annotations

import gc

from worker.gcpause import collector_paused

__all__ = ["collector_paused", "keep_out_of_full_collections"]


def keep_out_of_full_collections() -> None:
    """Move every object alive now to the collector's permanent generation (`gc.freeze`)."""
    gc.freeze()
