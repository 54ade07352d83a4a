"""Applies what changed in the registry's confirmed criteria to the dataplane, off the request
path, and tells each control source when its changes are live.

The registry tells the publisher each change as it happens (:meth:`Publisher.upsert` a criterion
to install or replace, :meth:`Publisher.remove` a key), in the *lane* of the control source the
criterion belongs to. Changes are coalesced per key, the latest state winning (an upsert then a
removal of a key never installed cancels out), and a run hands a delta to the dataplane in one
:meth:`~flowtap.intercept.sink.CriteriaSink.apply` call, which returns once the delta is live
(``flowtap.dataplane.Dataplane`` applies it incrementally: time proportional to the delta).

Runs happen in one worker thread, at most one in flight; changes that arrive meanwhile go in the
next run. A run takes at most ``batch`` changes; when several lanes have some, it takes an equal
number from each, as many as the lane with the fewest has: one agency's flood of thousands of
ADDs delays another agency's ADD by the run in flight and a run of one change per lane, not by
the flood nor by a full ``batch`` of it (issue 15: no head-of-line blocking).

:meth:`flush` is how the 200 OK waits for "live": it returns when every change of the lane
noted before the call is in the dataplane (or was rejected). The latency from a change to the end
of the run that includes it is recorded (``stats``).

Failure isolation: if ``apply`` refuses a delta (a content destination socket cannot be bound,
...), nothing changed in the dataplane, so the installed criteria keep tapping. The publisher
then applies the delta's removals alone (they need nothing new, so they cannot be what was
refused), finds the offending upserts by bisecting them (each accepted part stays installed)
and reports those through ``on_rejected``; the registry removes them and the audit log records
why. One bad criterion never blinds the others (LI-8).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from flowtap.intercept.criteria import Criterion
from flowtap.intercept.sink import CriteriaSink

LOG = logging.getLogger(__name__)
_SAMPLES = 1024
BATCH = 32  # changes per run: bounds the run in flight another lane's change waits behind (a
# run of 64 held the event loop 2-5 ms on this machine, 512 ~15 ms; a turn should last about
# 1 ms, dtcp.right_of_way.TURN; bench/dtcp_bulk_fairness.py)


@dataclass(slots=True)
class PublishStats:
    runs: int = 0
    failures: int = 0
    last_seconds: float = 0.0  # duration of the last run's apply (isolation included)
    max_latency: float = 0.0  # first unpublished change -> the apply including it returned
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class _Waiter:
    """A :meth:`Publisher.flush` call: how many of its keys are still to be published."""

    __slots__ = ("future", "remaining")

    def __init__(self, future: asyncio.Future[None], remaining: int) -> None:
        self.future = future
        self.remaining = remaining

    def done_one(self) -> None:
        self.remaining -= 1
        if self.remaining <= 0 and not self.future.done():
            self.future.set_result(None)


class Publisher:
    """Coalescing, single-flight, lane-fair application of the registry's changes to a
    :class:`CriteriaSink`."""

    def __init__(
        self,
        sink: CriteriaSink,
        on_rejected: Callable[[list[int]], None] | None = None,
        *,
        batch: int = BATCH,
    ) -> None:
        self._sink = sink
        # a sink that can await its own completion (the dataplane awaits its workers) is
        # driven on the event loop: no thread, no GIL handed back and forth per run
        self._apply_async: Callable[[Sequence[Criterion], Collection[int]],
                                    Awaitable[None]] | None = getattr(sink, "apply_async", None)
        self._on_rejected = on_rejected
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        # lane -> key -> the criterion to install, or None to remove it (insertion ordered)
        self._pending: dict[str, dict[int, Criterion | None]] = {}
        self._noted_at: dict[int, float] = {}  # key -> when its pending change was noted
        self._key_waiters: dict[int, list[_Waiter]] = {}  # waiting for the key's next run
        self._inflight: dict[int, list[_Waiter]] = {}  # keys of the run in flight
        self._flying_lanes: dict[int, str] = {}  # and their lanes
        # keys the sink holds, or will once the run in flight returns: only their removal
        # must reach it
        self._installed: set[int] = set()
        self._closed = False
        self.batch = batch
        self.stats = PublishStats()

    def upsert(self, criterion: Criterion) -> None:
        """Install ``criterion``, or replace the one with its ``criteria_id``, in the lane of
        its control source (event-loop thread). Returns at once."""
        if self._closed:
            return
        self._note(criterion.csource_id, criterion.criteria_id, criterion)

    def remove(self, key: int, lane: str) -> None:
        """Remove the criterion ``key`` of control source ``lane`` (event-loop thread)."""
        if self._closed:
            return
        if key in self._installed or key in self._inflight:
            self._note(lane, key, None)
        else:  # never installed: its pending upsert, if any, cancels out
            pending = self._pending.get(lane)
            if pending is not None and pending.pop(key, None) is not None:
                self._noted_at.pop(key, None)
                for waiter in self._key_waiters.pop(key, ()):
                    waiter.done_one()
                if not pending:
                    del self._pending[lane]

    def pending(self) -> int:
        """Changes noted and not yet handed to the dataplane."""
        return sum(len(p) for p in self._pending.values())

    async def flush(self, lane: str | None = None) -> None:
        """Wait until every change noted so far (of ``lane``, or of every lane) is in the
        dataplane or was rejected."""
        if self._closed:
            return
        lanes = [lane] if lane is not None else list(self._pending)
        keys = [k for ln in lanes for k in self._pending.get(ln, ())]
        pending = set(keys)
        flying = [k for k, ln in self._flying_lanes.items()
                  if (lane is None or ln == lane) and k not in pending]
        if not keys and not flying:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, len(keys) + len(flying))
        for k in keys:
            self._key_waiters.setdefault(k, []).append(waiter)
        for k in flying:  # a key both in flight and pending waits for its pending state
            self._inflight[k].append(waiter)
        await future

    async def close(self) -> None:
        """Finish the run in flight, then stop; later changes are ignored."""
        self._closed = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for waiters in (*self._key_waiters.values(), *self._inflight.values()):
            for w in waiters:
                if not w.future.done():
                    w.future.set_result(None)
        self._key_waiters.clear()

    def _note(self, lane: str, key: int, state: Criterion | None) -> None:
        self._pending.setdefault(lane, {})[key] = state
        self._noted_at.setdefault(key, time.monotonic())
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _take(self) -> dict[int, Criterion | None]:
        """The next run's changes (oldest first in each lane): with one lane pending, up to
        ``batch`` of its changes; with several, as many of each lane's as the lane with the
        fewest has (at most an equal part of ``batch``), so a lane with one change pending
        goes in a run that carries one change of each other lane, not ``batch`` of a flood."""
        delta: dict[int, Criterion | None] = {}
        self._flying_lanes = {}
        fewest = min(len(changes) for changes in self._pending.values())
        share = max(1, min(fewest, self.batch // len(self._pending)))
        for lane in list(self._pending):
            changes = self._pending[lane]
            for key in list(itertools.islice(changes, share)):
                delta[key] = changes.pop(key)
                self._flying_lanes[key] = lane
            if not changes:
                del self._pending[lane]
        return delta

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowtap-publish")
        try:
            while self._pending and not self._closed:
                delta = self._take()
                since = min(self._noted_at.pop(k, time.monotonic()) for k in delta)
                self._inflight = {k: self._key_waiters.pop(k, []) for k in delta}
                started = time.monotonic()
                try:
                    await self._publish(loop, delta)
                finally:
                    flown, self._inflight, self._flying_lanes = self._inflight, {}, {}
                    for waiters in flown.values():
                        for w in waiters:
                            w.done_one()
                done = time.monotonic()
                self.stats.runs += 1
                self.stats.last_seconds = done - started
                self.stats.latencies.append(done - since)
                self.stats.max_latency = max(self.stats.max_latency, done - since)
        finally:
            self._task = None

    async def _publish(self, loop: asyncio.AbstractEventLoop,
                       delta: dict[int, Criterion | None]) -> None:  # fmt: skip
        upserts = [c for c in delta.values() if c is not None]
        removals = [key for key, c in delta.items() if c is None]
        new = {c.criteria_id for c in upserts} - self._installed
        self._installed.update(c.criteria_id for c in upserts)
        self._installed.difference_update(removals)
        if not await self._apply(loop, upserts, removals):
            await self._isolate(loop, upserts, removals, new)

    async def _apply(self, loop: asyncio.AbstractEventLoop, upserts: Sequence[Criterion],
                     removals: Collection[int]) -> bool:  # fmt: skip
        try:
            if self._apply_async is not None:
                await self._apply_async(upserts, removals)
            else:
                await loop.run_in_executor(self._executor, self._sink.apply, upserts, removals)
        except Exception as exc:  # the sink's own refusal; nothing changed in it
            LOG.debug("criteria delta refused: %s", type(exc).__name__)
            return False
        return True

    async def _isolate(self, loop: asyncio.AbstractEventLoop, upserts: list[Criterion],
                       removals: list[int], new: set[int]) -> None:  # fmt: skip
        """Apply as much of a refused delta as the sink accepts; report the rest as rejected.
        ``new`` are the upserted keys the sink did not hold before."""
        self.stats.failures += 1
        rejected: list[int] = []
        if removals and not await self._apply(loop, (), removals):
            # Cannot happen: a removal needs nothing new. The criteria stay installed, and their
            # removal goes again with the next change (unless a newer state is pending).
            self._installed.update(removals)
            for key in removals:
                if not any(key in changes for changes in self._pending.values()):
                    self._note("", key, None)
            rejected = [c.criteria_id for c in upserts]
            # that intercepts exist at all is confidential (LI-1): the LI audit log records each
            # rejected criterion with its reason; the ordinary log says nothing above DEBUG
            LOG.debug("dataplane refused to remove criteria; %d new criteria rejected",
                      len(rejected))
        else:
            parts = [upserts] if upserts else []
            while parts:
                part = parts.pop()
                if await self._apply(loop, part, ()):
                    continue  # installed: it stays
                if len(part) == 1:
                    rejected.append(part[0].criteria_id)
                else:
                    middle = len(part) // 2
                    parts += [part[middle:], part[:middle]]
            if rejected:
                LOG.debug("dataplane refused %d criteria; they are removed", len(rejected))
        # a refused replacement leaves the criterion it would have replaced installed
        self._installed.difference_update(k for k in rejected if k in new)
        if rejected and self._on_rejected is not None:
            self._on_rejected(rejected)
