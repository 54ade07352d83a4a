"""Deadlines of criteria timeouts on the event loop (total and idle; packets and bytes are counted
by the dataplane, which reports them through ``Registry.expire_by_limit``).

One heap of ``(deadline, key, version, kind)`` and one loop timer for the earliest entry. Items
are never removed from the heap: a criterion that was deleted or refreshed since (its version
changed) is skipped when its item comes up. Firings are coalesced: everything due within
``granularity`` is handled together and two firings are at least ``granularity`` apart, so
checking idle criteria (which needs one O(N) counters snapshot) runs at most 1/granularity times
per second whatever the number of criteria. Expiry is therefore late by at most ``granularity``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

TOTAL = "total"
IDLE = "idle"
Due = tuple[int, int, str]  # key, version, kind


class ExpiryQueue:
    def __init__(
        self,
        on_due: Callable[[list[Due]], None],
        clock: Callable[[], float],
        granularity: float = 0.2,
    ) -> None:
        self._on_due = on_due
        self._clock = clock
        self._granularity = granularity
        self._heap: list[tuple[float, int, int, int, str]] = []
        self._tie = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._last_fire = float("-inf")

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline: float, key: int, version: int, kind: str) -> None:
        heapq.heappush(self._heap, (deadline, next(self._tie), key, version, kind))
        self._arm()

    def clear(self) -> None:
        self._heap.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if not self._heap:
            return
        when = max(self._heap[0][0], self._last_fire + self._granularity)
        if self._timer is not None:
            if self._timer_at <= when:
                return
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        # the clock is time.monotonic, as the loop's (asserted by the registry's tests)
        self._timer = loop.call_at(max(when, loop.time()), self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        self._timer = None
        now = self._clock()
        self._last_fire = now
        horizon = now + self._granularity / 2
        due: list[Due] = []
        while self._heap and self._heap[0][0] <= horizon:
            _, _, key, version, kind = heapq.heappop(self._heap)
            due.append((key, version, kind))
        try:
            if due:
                self._on_due(due)
        finally:
            self._arm()
