"""Applies what changed in the registry's confirmed criteria to the dataplane, off the request
path.

The registry tells the publisher each change as it happens (:meth:`Publisher.upsert` a criterion
to install or replace, :meth:`Publisher.remove` a key); the publisher coalesces them into one
pending delta, the latest state per key winning (an upsert then a removal of a key never
installed cancels out), and a run hands that delta to the dataplane in one
:meth:`~flowtap.intercept.sink.CriteriaSink.apply` call. Nobody builds or hands over a
snapshot of the table: the dataplane keeps its own.

``apply`` may be slow (``flowtap.dataplane.Dataplane`` still rebuilds its match tables, BPF
programs and sockets in O(N) for each delta), so it must not run once per ADD: runs happen in
one worker thread, at most one in flight. Changes that arrive while a run is in flight are
picked up by one re-run with everything that changed meanwhile. A criterion confirmed while no
run is in flight is therefore active after one ``apply``; in the worst case after the tail of
the running one plus its own. The latency from the first unpublished change to the end of the
run that includes it is recorded (``stats``) for LI-9 ("filter active within 1 s of 200 OK").

Duty cycle: today's ``apply`` is pure Python and holds the GIL for its whole run (0.35-0.5 s at
10,000 criteria with one capture ring), so while it runs each wake-up of the event loop waits
up to a switch interval (5 ms) for the GIL, several times per request. When more changes arrived
during a run, the publisher therefore rests ``rest_factor`` times that run's duration (at most
``max_rest``) before the next one: under a flood the event loop has two thirds of the time to
itself (bench/dtcp_add.py at 10,000 criteria: about 300 ADD/s without the rest, 2,000-2,500
with it). The price is publication latency under a flood (up to about 3 s at 10,000-15,000
criteria). A change on a quiet system is published at once: active after one ``apply``
(0.35 s at 10,000 criteria). The real fix belongs behind ``apply``: an incremental dataplane.

Failure isolation: if ``apply`` refuses a delta (a content destination socket cannot be bound,
...), nothing changed in the dataplane, so the installed criteria keep tapping. The publisher
then applies the delta's removals alone (they need nothing new, so they cannot be what was
refused), finds the offending upserts by bisecting them (each accepted part stays installed)
and reports those through ``on_rejected``; the registry removes them and the audit log records
why. One bad criterion never blinds the others (LI-8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from flowtap.intercept.criteria import Criterion
from flowtap.intercept.sink import CriteriaSink

LOG = logging.getLogger(__name__)
_SAMPLES = 1024
REST_FACTOR = 2.0
MAX_REST = 2.0


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


class Publisher:
    """Coalescing, single-flight application of the registry's changes to a
    :class:`CriteriaSink`, one delta per run."""

    def __init__(
        self,
        sink: CriteriaSink,
        on_rejected: Callable[[list[int]], None] | None = None,
        *,
        rest_factor: float = REST_FACTOR,
        max_rest: float = MAX_REST,
    ) -> None:
        self._sink = sink
        self._on_rejected = on_rejected
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed_at: float | None = None  # first change not yet taken by a run
        self._requested = 0  # generation of the newest change
        self._published = 0  # generation included in the dataplane
        # key -> the criterion to install, or None to remove it; taken whole by each run
        self._pending: dict[int, Criterion | None] = {}
        # keys the sink holds, or will once the run in flight returns: only their removal
        # must reach it
        self._installed: set[int] = set()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closed = False
        self._closing = asyncio.Event()  # ends a rest at once: shutdown must not wait for it
        self.stats = PublishStats()
        self.rest_factor = rest_factor
        self.max_rest = max_rest

    def upsert(self, criterion: Criterion) -> None:
        """Install ``criterion``, or replace the one with its ``criteria_id`` (event-loop
        thread). Returns at once."""
        if self._closed:
            return
        self._pending[criterion.criteria_id] = criterion
        self._noted()

    def remove(self, key: int) -> None:
        """Remove the criterion ``key`` (event-loop thread). Returns at once."""
        if self._closed:
            return
        if key in self._installed:
            self._pending[key] = None
        else:  # never installed: its pending upsert, if any, cancels out
            self._pending.pop(key, None)
        self._noted()

    async def flush(self) -> None:
        """Wait until every change noted so far is in the dataplane (or rejected)."""
        if self._published >= self._requested or self._closed:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._requested, future))
        await future

    async def close(self) -> None:
        """Finish the run in flight, then stop; later changes are ignored."""
        self._closed = True
        self._closing.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._release_waiters(force=True)

    def _noted(self) -> None:
        self._requested += 1
        if self._changed_at is None:
            self._changed_at = time.monotonic()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowtap-publish")
        try:
            while self._changed_at is not None and not self._closed:
                since, self._changed_at = self._changed_at, None
                generation = self._requested
                delta, self._pending = self._pending, {}
                if not delta:  # every change since the last run cancelled out
                    self._published = generation
                    self._release_waiters()
                    continue
                started = time.monotonic()
                await self._publish(loop, delta)
                done = time.monotonic()
                self.stats.runs += 1
                self.stats.last_seconds = done - started
                self.stats.latencies.append(done - since)
                self.stats.max_latency = max(self.stats.max_latency, done - since)
                self._published = generation
                self._release_waiters()
                if self._changed_at is not None and self.rest_factor:
                    rest = min(self.max_rest, self.rest_factor * (done - started))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), rest)
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
                self._pending.setdefault(key, None)
            rejected = [c.criteria_id for c in upserts]
            # how many intercepts exist is itself confidential (LI-1): counts stay at DEBUG
            LOG.error("dataplane refused to remove criteria; the new criteria are rejected")
            LOG.debug("%d new criteria rejected", len(rejected))
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
                LOG.warning("dataplane refused some criteria; they are removed")
                LOG.debug("%d criteria refused", len(rejected))
        # a refused replacement leaves the criterion it would have replaced installed
        self._installed.difference_update(k for k in rejected if k in new)
        if rejected and self._on_rejected is not None:
            self._on_rejected(rejected)

    def _release_waiters(self, force: bool = False) -> None:
        keep = []
        for generation, future in self._waiters:
            if force or generation <= self._published:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((generation, future))
        self._waiters = keep
