"""Request slots of the fetcher: at most `total` requests in flight, at most `per_host` to one
host, starts to one host `min_delay` apart, handed out fairly.

The landed fetcher took a per-host lock, then a first-come global semaphore while holding it: 100
sources on a host that accepts and never answers held every slot for 20 s x 4 attempts each, and
a good source on another host got one request in 200 s. Here a free slot goes to the waiting
request whose host has the fewest requests in flight (so a hanging host holds at most its own
`per_host` slots and the other hosts keep theirs), then to the source pass whose requests to that
host are expected to be the shortest (what they took lately; the host's figure for a pass new to
it; at least how long one of its requests has hung so far), so on one host a source whose
requests hang waits behind the ones answered quickly, then to the pass that has held slots for
the least time, then first come, first served.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

__all__ = ["Owner", "Slots"]


@dataclass(eq=False)
class Owner:
    """Who asks for slots: one source's pass (or everything else, together)."""

    name: str
    used: float = 0.0  # slot-seconds of released requests
    holding: list[float] = field(default_factory=list)  # start times of requests in flight
    took: dict[str, float] = field(default_factory=dict)  # host -> recent seconds a request

    def usage(self, now: float) -> float:
        return self.used + sum(now - start for start in self.holding)


@dataclass(eq=False)
class _Waiter:
    host: str
    owner: Owner
    seq: int
    future: asyncio.Future[float]


@dataclass
class _Host:
    busy: int = 0
    next_start: float = 0.0  # time.monotonic() before which no request to it may start
    took: float = 0.0  # recent seconds a request to it took, all passes together


class Slots:
    def __init__(self, total: int, per_host: int, min_delay: float) -> None:
        self.total = total
        self.per_host = per_host
        self.min_delay = min_delay
        self.delays: dict[str, float] = {}  # hosts that asked for more (robots.txt Crawl-delay)
        self.busy = 0
        self._hosts: dict[str, _Host] = {}
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def set_delay(self, host: str, delay: float) -> None:
        """`host` asked for `delay` seconds between the starts of two requests (Crawl-delay):
        the longer of that and `min_delay` applies to it."""
        self.delays[host] = delay

    def in_flight(self, host: str) -> int:
        state = self._hosts.get(host)
        return state.busy if state else 0

    async def acquire(self, host: str, owner: Owner) -> float:
        """Wait for a slot for `host`; returns the start time to give back to `release`."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(host, owner, next(self._seq), future)
        self._waiting.append(waiter)
        self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled
                self.release(host, owner, future.result())
            elif waiter in self._waiting:
                self._waiting.remove(waiter)
            raise

    def release(self, host: str, owner: Owner, started: float) -> None:
        state = self._hosts[host]
        state.busy -= 1
        self.busy -= 1
        if started in owner.holding:
            owner.holding.remove(started)
        took = time.monotonic() - started
        owner.used += took
        before = owner.took.get(host)
        owner.took[host] = took if before is None else (before + took) / 2
        state.took = took if state.took == 0 else 0.8 * state.took + 0.2 * took
        if state.busy == 0 and not any(w.host == host for w in self._waiting):
            if state.next_start <= time.monotonic() and len(self._hosts) > 256:
                del self._hosts[host]  # forget idle hosts: a daemon may meet many over time
        self._dispatch()

    def _dispatch(self) -> None:
        now = time.monotonic()
        soonest: float | None = None
        while self.busy < self.total and self._waiting:
            best: _Waiter | None = None
            best_key: tuple[int, float, float, int] | None = None
            for waiter in self._waiting:
                state = self._hosts.get(waiter.host)
                if state is None:
                    state = self._hosts[waiter.host] = _Host()
                if state.busy >= self.per_host:
                    continue
                if state.next_start > now:
                    soonest = (
                        state.next_start if soonest is None else min(soonest, state.next_start)
                    )
                    continue
                owner = waiter.owner
                # shortest expected request first: what this pass's requests to the host took
                # lately (the host's own figure for a pass that has not asked it yet), or how
                # long one of its requests has been hanging now
                expected = owner.took.get(waiter.host, state.took)
                if owner.holding:
                    expected = max(expected, now - min(owner.holding))
                key = (state.busy, expected, owner.usage(now), waiter.seq)
                if best_key is None or key < best_key:
                    best, best_key = waiter, key
            if best is None:
                break
            self._waiting.remove(best)
            if best.future.done():  # cancelled while waiting
                continue
            state = self._hosts[best.host]
            state.busy += 1
            self.busy += 1
            delay = max(self.min_delay, self.delays.get(best.host, 0.0))
            if delay > 0:
                state.next_start = now + delay
            best.owner.holding.append(now)
            best.future.set_result(now)
        if soonest is not None and self._waiting and self.busy < self.total:
            if self._timer is not None:
                self._timer.cancel()
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, soonest - now), self._dispatch)
