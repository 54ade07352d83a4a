"""The intercept registry: the one owner of intercepts and of their lifecycle. Runtime state only.

Protocol-neutral: a tasking protocol (DTCP today, ETSI X1 next) translates its requests into
these operations and the intercept errors (:mod:`flowtap.errors`) back into its replies. The
registry alone talks to the dataplane, through :class:`~flowtap.intercept.sink.CriteriaSink`.
The table itself (IDs, limits, selection) is :mod:`flowtap.intercept.table`.

Lifecycle of a criterion:
- added (``add``): the dataplane's ``check`` comes first, so one it cannot serve is refused
  before any limit is counted (``UnservableInterceptError``, DTCP 901). The criterion is then
  *pending* until its audit record is durable (``confirm``): it counts against the limits and
  shows in the source's LIST, but it is not published to the dataplane. ``discard`` undoes it.
- live (``confirm``): published (handed to the :class:`~flowtap.intercept.publisher.Publisher`,
  which installs it off the request path) and its timers run.
- refreshed (``refresh``): for each timeout given, that timeout's remaining value is replaced;
  the others keep running. Packet and byte limits restart from the counters at the time of the
  refresh. LIST shows the timeouts as last specified (by the ADD, then by refreshes). STATIC
  criteria are never refreshed (not counted). ``unrefresh`` undoes it.
- ended, each end reported to the ``on_removed`` listeners with its reason (the LI audit log):
  deleted by its source (``delete``; ``restore`` undoes it; STATIC ones only with ``Flags:
  Static``); expired by total or idle timeout (:mod:`flowtap.intercept.expiry`) or by a packet
  or byte limit (``expire_by_limit``, from the dataplane); refused by the dataplane when its
  table was installed (``install-failed``); cleared when flow-tap stops, restarts or is removed
  (``dataplane_stopped``) or the service stops (``clear``). A clear also runs the ``on_clear``
  listeners, which disconnect the control sources (Junos drops all filters and disconnects the
  mediation devices when flow-tap restarts).
- Restart: criteria are runtime state, so a new process starts empty and numbers from 1 again.

Publication: every change to a live criterion is told to the publisher as it happens (the
criterion to install or replace under ``Entry.key``, or the key's removal); no snapshot of the
table is taken for the dataplane.

Complexity: ADD, confirm and DELETE by ID or Cdest-ID are O(1) per criterion, their publication
included. The session applies DELETE and REFRESH of many criteria, and renders LIST rows, in
slices (``methods.SLICE``) so other sessions run in between; hence ``holds`` and the lazy
``stats_slices``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from flowtap.errors import UnservableInterceptError
from flowtap.intercept.criteria import Criterion, Timeouts
from flowtap.intercept.expiry import IDLE, TOTAL, Due, ExpiryQueue
from flowtap.intercept.publisher import Publisher
from flowtap.intercept.sink import CriteriaSink
from flowtap.intercept.stats import CriterionStats, statistics
from flowtap.intercept.table import CriteriaTable, Entry, IdSelection, RegistryLimits

LOG = logging.getLogger(__name__)
__all__ = ["CLEARED", "DELETED", "LIMIT", "REJECTED", "Entry", "IdSelection", "Registry",
           "RegistryLimits", "RemovalListener"]

DELETED = "deleted"
CLEARED = "cleared"
REJECTED = "install-failed"
LIMIT = "timeout-packets-or-bytes"

RemovalListener = Callable[[Sequence[Entry], str], None]


@dataclass(frozen=True, slots=True)
class _Saved:
    entry: Entry
    state: tuple[object, ...]


_TIMING = ("criterion", "timeouts", "total_deadline", "idle_start", "packet_limit", "byte_limit",
           "num_refresh", "last_refresh", "version", "published")  # fmt: skip


class Registry(CriteriaTable):
    """The criteria table and its lifecycle; publishes to a :class:`CriteriaSink`."""

    def __init__(
        self,
        sink: CriteriaSink,
        limits: RegistryLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        granularity: float = 0.2,
    ) -> None:
        super().__init__(limits)
        self.sink = sink
        self.clock = clock
        self.publisher = Publisher(sink, self._reject)
        self.on_removed: list[RemovalListener] = []
        self.on_clear: list[Callable[[], None]] = []
        self._epoch = 0
        self._expiry = ExpiryQueue(self._due, clock, granularity)

    # ---- reading -------------------------------------------------------------------------

    def snapshot(self) -> tuple[Criterion, ...]:
        """The confirmed criteria as published, keyed by ``Entry.key`` (for reading: publication
        goes through the publisher change by change). O(criteria)."""
        return tuple(e.published for e in self._by_key.values()
                     if e.active and e.published is not None)  # fmt: skip

    def stats_slices(
        self, entries: Sequence[Entry], counted: bool, size: int
    ) -> Iterator[list[tuple[Entry, CriterionStats]]]:
        """``entries`` with their statistics, ``size`` at a time, made as each slice is asked
        for; without ``counted`` only the refresh time. The counters and the clock are read
        now, once, so every slice shows the same instant."""
        counters = self.sink.counters() if counted and entries else {}
        now = self.clock()

        def rows(part: Sequence[Entry]) -> list[tuple[Entry, CriterionStats]]:
            if counted:
                return list(zip(part, statistics(part, counters, now), strict=True))
            return [(e, CriterionStats(e.last_refresh)) for e in part]

        return (rows(entries[i : i + size]) for i in range(0, len(entries), size))

    # ---- changing --------------------------------------------------------------------------

    def add(self, criterion: Criterion, peer: str) -> Entry:
        """Insert a pending criterion for ``criterion.csource_id`` numbered ``next_id``.

        Raises:
            UnservableInterceptError: the dataplane cannot serve it (checked first).
            InterceptLimitError, DestinationLimitError: a limit would be exceeded.
            Nothing changes when any is raised.
        """
        try:
            self.sink.check(criterion)
        except ValueError:
            raise UnservableInterceptError("content destination cannot be served") from None
        entry = self._admit(criterion, peer)
        self._set_timeouts(entry, criterion.timeouts, {}, initial=True)
        return entry

    def confirm(self, entry: Entry) -> None:
        """The ADD is audited: publish it and start its timers."""
        if self._by_key.get(entry.key) is not entry or entry.active:
            return
        entry.active = True
        entry.samples = [(self.clock(), 0)]
        self._publish(entry)
        self._schedule(entry)

    def discard(self, entry: Entry) -> None:
        """Undo a pending ADD (its ID stays consumed)."""
        if self._by_key.get(entry.key) is entry and not entry.active:
            self._remove(entry)

    def delete(self, entries: Sequence[Entry]) -> int:
        """Remove ``entries``; returns the epoch to pass to :meth:`restore`."""
        for entry in entries:
            if self._by_key.get(entry.key) is entry:
                self._remove(entry)
        return self._epoch

    def restore(self, entries: Sequence[Entry], epoch: int) -> None:
        """Undo :meth:`delete` (unless the table was cleared meanwhile)."""
        if epoch != self._epoch:
            return
        for entry in entries:
            if entry.key not in self._by_key:
                self._insert(entry)
                if entry.active:
                    entry.version += 1
                    self._publish(entry)
                    self._schedule(entry)

    def refresh(self, entries: Sequence[Entry], timeouts: Timeouts) -> list[_Saved]:
        """Replace the given timeouts of non-static ``entries``; returns what :meth:`unrefresh`
        needs. Packet and byte limits restart from the counters now."""
        # only those still held: a REFRESH applied in slices must not republish one deleted
        # or expired meanwhile
        targets = [e for e in entries if not e.criterion.static and self.holds(e)]
        counters = self.sink.counters() if targets and (timeouts.packets or timeouts.bytes) else {}
        saved = []
        for entry in targets:
            before = entry.published
            saved.append(_Saved(entry, tuple(getattr(entry, a) for a in _TIMING)))
            c = counters.get(entry.key)
            self._set_timeouts(entry, timeouts, {"packets": c.packets if c else 0,
                                                 "bytes": c.bytes if c else 0})  # fmt: skip
            entry.criterion = dataclasses.replace(entry.criterion, timeouts=entry.timeouts)
            entry.num_refresh += 1
            entry.last_refresh = datetime.now()
            entry.version += 1
            if entry.active:
                self._publish(entry, unless_same_as=before)
                self._schedule(entry)
        return saved

    def unrefresh(self, saved: Sequence[_Saved]) -> None:
        for item in reversed(saved):
            before = item.entry.published
            for attribute, value in zip(_TIMING, item.state, strict=True):
                setattr(item.entry, attribute, value)
            item.entry.version += 1
            if item.entry.active and item.entry.key in self._by_key:
                self._publish(item.entry, unless_same_as=before)
                self._schedule(item.entry)

    def expire_by_limit(self, key: int) -> None:
        """The dataplane stopped copies for ``key`` (packet or byte limit): delete it. Call on
        the event loop (``loop.call_soon_threadsafe`` from the capture thread)."""
        entry = self._by_key.get(key)
        if entry is not None and entry.active:
            self._expire([entry], LIMIT)

    def dataplane_stopped(self) -> None:
        """flow-tap stopped, restarted or was removed: the dataplane forgot every criterion, so
        the registry drops them too (or its next publication would bring them back)."""
        dropped = self.clear()
        # each removal is in the LI audit log; its existence stays out of the ordinary log (LI-1)
        LOG.debug("flow-tap stopped: %d criteria dropped", dropped)

    def clear(self, reason: str = CLEARED) -> int:
        """Drop every criterion (flow-tap removed, restarted or stopped; the service stopped);
        the ``on_clear`` listeners then disconnect the control sources."""
        dropped = self._remove_all()
        for entry in dropped:
            if entry.active:
                self.publisher.remove(entry.key, entry.source)
        self._epoch += 1
        self._expiry.clear()
        if dropped:
            self._notify(dropped, reason)
        for listener in list(self.on_clear):
            listener()
        return len(dropped)

    # ---- internals -------------------------------------------------------------------------

    def _remove(self, entry: Entry) -> None:
        super()._remove(entry)
        if entry.active:
            self.publisher.remove(entry.key, entry.source)
        entry.version += 1

    def _publish(self, entry: Entry, unless_same_as: Criterion | None = None) -> None:
        """Hand the live ``entry`` to the publisher as the dataplane must see it: keyed by
        ``Entry.key``, with its packet and byte limits on the dataplane's counters. A refresh
        passes what the publisher holds (``unless_same_as``): a REFRESH of the total or idle
        timeout changes nothing the dataplane sees, and 10,000 such upserts would keep the
        publisher and the capture workers busy in front of other agencies' ADDs."""
        entry.published = dataclasses.replace(
            entry.criterion, criteria_id=entry.key,
            timeouts=Timeouts(packets=entry.packet_limit, bytes=entry.byte_limit),
        )  # fmt: skip
        if unless_same_as is None or entry.published != unless_same_as:
            self.publisher.upsert(entry.published)

    def _set_timeouts(
        self, entry: Entry, given: Timeouts, counted: dict[str, int], initial: bool = False
    ) -> None:
        now = self.clock()
        if initial:
            entry.timeouts = given
        else:
            old = entry.timeouts  # field by field: dataclasses.astuple deep-copies (slow)
            entry.timeouts = Timeouts(
                old.idle if given.idle is None else given.idle,
                old.total if given.total is None else given.total,
                old.packets if given.packets is None else given.packets,
                old.bytes if given.bytes is None else given.bytes,
            )
        if given.total is not None:
            entry.total_deadline = now + given.total
        if given.idle is not None:
            entry.idle_start = now
        if given.packets is not None:
            entry.packet_limit = counted.get("packets", 0) + given.packets
        if given.bytes is not None:
            entry.byte_limit = counted.get("bytes", 0) + given.bytes

    def _schedule(self, entry: Entry) -> None:
        if entry.criterion.static:
            return
        if entry.total_deadline is not None:
            self._expiry.push(entry.total_deadline, entry.key, entry.version, TOTAL)
        if entry.timeouts.idle is not None:
            self._expiry.push(entry.idle_start + entry.timeouts.idle, entry.key, entry.version,
                              IDLE)  # fmt: skip

    def _due(self, due: list[Due]) -> None:
        counters = None
        now = self.clock()
        expired: dict[str, list[Entry]] = {}
        for key, version, kind in due:
            entry = self._by_key.get(key)
            if entry is None or entry.version != version or not entry.active:
                continue
            if kind == TOTAL:
                expired.setdefault("timeout-total", []).append(entry)
                continue
            if counters is None:
                counters = self.sink.counters()
            c = counters.get(key)
            idle = entry.timeouts.idle or 0
            last = max(entry.idle_start, (c.last_packet if c and c.last_packet else 0.0))
            if now - last >= idle:
                expired.setdefault("timeout-idle", []).append(entry)
            else:
                self._expiry.push(last + idle, key, version, IDLE)
        for reason, entries in expired.items():
            self._expire(list(dict.fromkeys(entries)), reason)

    def _expire(self, entries: list[Entry], reason: str) -> None:
        entries = [e for e in entries if self._by_key.get(e.key) is e]
        for entry in entries:
            self._remove(entry)
        if entries:
            self._notify(entries, reason)

    def _reject(self, keys: list[int]) -> None:
        self._expire([self._by_key[k] for k in keys if k in self._by_key], REJECTED)

    def _notify(self, entries: Sequence[Entry], reason: str) -> None:
        for listener in list(self.on_removed):
            listener(entries, reason)
