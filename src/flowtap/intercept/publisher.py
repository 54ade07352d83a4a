"""Pushes the registry's criteria table to the dataplane, off the request path.

The dataplane is reached through :class:`~flowtap.intercept.sink.CriteriaSink` (implemented by
``flowtap.dataplane.Dataplane``). ``set_criteria`` rebuilds match tables, BPF
programs and sockets in O(N), so it must not run once per ADD: :class:`Publisher` coalesces
changes and runs it in one worker thread, at most one call in flight. Changes that arrive while
a call runs are picked up by one re-run with the newest table. A criterion confirmed while no
call runs is therefore active after one ``set_criteria``; in the worst case after the tail of
the running one plus its own. The latency from the first unpublished change to the end of the
call that includes it is recorded (``stats``) for LI-9 ("filter active within 1 s of 200 OK").

Duty cycle: ``set_criteria`` is pure Python and holds the GIL for its whole run (0.35-0.5 s at
10,000 criteria with one capture ring), so while it runs each wake-up of the event loop waits
up to a switch interval (5 ms) for the GIL, several times per request. When more changes arrived
during a run, the publisher therefore rests ``rest_factor`` times that run's duration (at most
``max_rest``) before the next one: under a flood the event loop has two thirds of the time to
itself (bench/dtcp_add.py at 10,000 criteria: about 300 ADD/s without the rest, 2,000-2,500
with it). The price is publication latency under a flood (up to about 3 s at 10,000-15,000
criteria). A change on a quiet system is published at once: active after one ``set_criteria``
(0.35 s at 10,000 criteria). The real fix belongs to the dataplane: an incremental rebuild.

Failure isolation: if ``set_criteria`` refuses a table (a content destination socket cannot be
bound, ...), nothing changed in the dataplane, so the previous table keeps tapping. The publisher
then finds the offending criteria by bisecting the ones not yet published (the others were
accepted before) and reports them through ``on_rejected``; the registry removes them and the
audit log records why. One bad criterion never blinds the others (LI-8).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
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
    last_seconds: float = 0.0  # duration of the last set_criteria
    max_latency: float = 0.0  # first unpublished change -> its set_criteria returned
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Publisher:
    """Coalescing, single-flight publication of ``snapshot()`` to a :class:`CriteriaSink`."""

    def __init__(
        self,
        sink: CriteriaSink,
        snapshot: Callable[[], Sequence[Criterion]],
        on_rejected: Callable[[list[int]], None] | None = None,
        *,
        rest_factor: float = REST_FACTOR,
        max_rest: float = MAX_REST,
    ) -> None:
        self._sink = sink
        self._snapshot = snapshot
        self._on_rejected = on_rejected
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed_at: float | None = None  # first change not yet in a snapshot
        self._requested = 0  # generation of the newest change
        self._published = 0  # generation included in the dataplane
        self._good: dict[int, Criterion] = {}  # what the dataplane accepted last
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closed = False
        self._closing = asyncio.Event()  # ends a rest at once: shutdown must not wait for it
        self.stats = PublishStats()
        self.rest_factor = rest_factor
        self.max_rest = max_rest

    def changed(self) -> None:
        """Note that the registry changed (event-loop thread). Returns at once."""
        if self._closed:
            return
        self._requested += 1
        if self._changed_at is None:
            self._changed_at = time.monotonic()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> None:
        """Wait until every change noted so far is in the dataplane (or rejected)."""
        if self._published >= self._requested or self._closed:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._requested, future))
        await future

    async def close(self) -> None:
        """Finish the call in flight, then stop; later changes are ignored."""
        self._closed = True
        self._closing.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._release_waiters(force=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowtap-publish")
        try:
            while self._changed_at is not None and not self._closed:
                since, self._changed_at = self._changed_at, None
                generation = self._requested
                table = tuple(self._snapshot())
                started = time.monotonic()
                if await self._install(loop, table):
                    self._good = {c.criteria_id: c for c in table}
                else:
                    await self._isolate(loop, table)
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

    async def _install(self, loop: asyncio.AbstractEventLoop, table: Sequence[Criterion]) -> bool:
        try:
            await loop.run_in_executor(self._executor, self._sink.set_criteria, table)
        except Exception as exc:  # the sink's own refusal; the old table stays installed
            LOG.debug("criteria table refused: %s", type(exc).__name__)
            return False
        return True

    async def _isolate(self, loop: asyncio.AbstractEventLoop, table: tuple[Criterion, ...]) -> None:
        """Install as much of ``table`` as the sink accepts; report the rest as rejected."""
        self.stats.failures += 1
        base = [c for c in table if self._good.get(c.criteria_id) is c]
        fresh = [c for c in table if self._good.get(c.criteria_id) is not c]
        rejected: list[int] = []
        if not await self._install(loop, base):
            # Cannot happen for a subset of an accepted table; the previous one stays installed.
            rejected = [c.criteria_id for c in fresh]
            # how many intercepts exist is itself confidential (LI-1): counts stay at DEBUG
            LOG.error("dataplane refused the criteria table; the new criteria are rejected")
            LOG.debug("%d new criteria rejected", len(rejected))
        else:
            accepted: list[Criterion] = []
            pending = [fresh] if fresh else []
            while pending:
                part = pending.pop()
                if await self._install(loop, [*base, *accepted, *part]):
                    accepted.extend(part)
                elif len(part) == 1:
                    rejected.append(part[0].criteria_id)
                else:
                    middle = len(part) // 2
                    pending += [part[middle:], part[:middle]]
            installed = [*base, *accepted]
            if not await self._install(loop, installed):  # the last attempt may have failed
                LOG.error("dataplane refused a table it accepted before")
            self._good = {c.criteria_id: c for c in installed}
            if rejected:
                LOG.warning("dataplane refused some criteria; they are removed")
                LOG.debug("%d criteria refused", len(rejected))
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
