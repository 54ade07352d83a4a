"""The daemon's garbage-collector policy: no long collector pause on the event loop.

CPython's cyclic collector scans every tracked container of the generation it collects, and it
collects the oldest one each time the long-lived heap has grown by a quarter. With tens of
thousands of criteria installed that heap is hundreds of thousands of objects: during
``bench/dtcp_bulk_fairness.py`` (15,000 criteria), ``gc.callbacks`` timed twelve full
collections in flowtapd of 17 to 166 ms each, growing with the table, and every one held the
event loop, so every NETCONF and DTCP session, for that long: they were the worst of the
delays another agency's ADD saw.

So what has survived is frozen (``gc.freeze``, which splices lists: O(1)) every
``FREEZE_EVERY`` seconds: the collector no longer scans it, and reference counting still frees
it as soon as nothing refers to it (criteria, entries and replies hold no cycles). What the
collector then misses is cyclic garbage among frozen objects (an exception and its traceback,
frozen while still alive); to bound that, every ``RECLAIM_EVERY`` seconds everything is
unfrozen and collected once: the old pause, at a known and rare rate, logged at DEBUG with its
length. Measured: freezing every 0.1 s through that benchmark, a reclaim after 20 s found 27
unreachable objects among 270,599 frozen ones, so an hour between reclaims costs little memory.

Capture workers hold the whole table too (their match indexes), in processes of their own
without an event loop: each calls :meth:`GcPolicy.tick` after every control batch it applies.
Unfrozen, a worker's full collection took 110-120 ms at 15,000 criteria, and every ADD's 200
OK waits for every worker's acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable

LOG = logging.getLogger(__name__)
FREEZE_EVERY = 0.1
RECLAIM_EVERY = 3600.0


class GcPolicy:
    def __init__(self, *, freeze_every: float = FREEZE_EVERY,
                 reclaim_every: float = RECLAIM_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.freeze_every = freeze_every
        self.reclaim_every = reclaim_every
        self._clock = clock
        self._reclaimed_at = clock()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.freeze()  # the boot's schema, configuration and modules
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        gc.unfreeze()

    def tick(self) -> None:
        """Freeze what survived; reclaim once ``reclaim_every`` has passed since the last."""
        now = self._clock()
        if now - self._reclaimed_at < self.reclaim_every:
            gc.freeze()
            return
        self._reclaimed_at = now
        frozen = gc.get_freeze_count()
        started = time.perf_counter()
        gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        LOG.debug("garbage collection over %d frozen objects: %d unreachable, %.1f ms",
                  frozen, found, (time.perf_counter() - started) * 1000)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.freeze_every)
            self.tick()
