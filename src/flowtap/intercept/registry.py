"""The criteria registry: every installed intercept, by control source. Runtime state only.

Decisions (DTCP.md §2.3-2.7, §7; draft §5.5-5.11):
- A control source is the authenticated SSH user; the session refuses a Csource-ID naming
  anyone else before the registry is consulted. Each source sees, lists, refreshes and deletes
  only its own criteria.
- Criteria-IDs are numbered per control source, 1, 2, 3 ..., and never reused while the process
  runs, even after the flow-tap service clears the table (draft §5.5: unique per source, never
  reuse a recently freed ID). Per-source numbering is deliberate: a global counter would tell
  one agency how many criteria the others add (LI-1), and an ID of another source is then simply
  an unknown ID (LI-3). The dataplane sees a separate global key (``Entry.key``).
- Limits (``RegistryLimits``): criteria per source and in all (``InterceptLimitError``, DTCP
  550); content destinations (mediation devices: distinct Cdest-IDs of a source in use by its
  criteria) per source and in all (``DestinationLimitError``, 551). Identical ADDs are not
  merged: each gets its own ID (criteria are independent), so a flood of duplicates ends at the
  per-source limit. An ADD the dataplane cannot serve is refused before any limit is counted
  (``UnservableInterceptError``, 901): the sink's ``check`` is the only way in.
- DELETE/REFRESH/LIST: a listed single Criteria-ID unknown to the source ->
  ``UnknownInterceptError`` (DTCP 431, echoing the Criteria-ID header) and nothing changes;
  ranges and ``*`` may match nothing. STATIC criteria
  are deleted only with ``Flags: Static`` and are never refreshed (not counted). A Cdest-ID in
  DELETE or REFRESH that matches nothing counts 0 (draft §5.7, §5.9); in LIST it is 430, the
  only place the draft leaves for "Unknown Content Destination" over SSH.
- REFRESH replaces, for each timeout it carries, that timeout's remaining value; the others keep
  running. Packet and byte limits restart from the counters at the time of the REFRESH. LIST
  shows the timeouts as last specified (by the ADD, then by REFRESHes).
- Restart: criteria are runtime state, so a new process starts empty and numbers from 1 again
  (Junos drops all filters and disconnects the mediation devices when flow-tap restarts).
- An ADD is *pending* until its audit record is durable (``confirm``): it counts against the
  limits and shows in the source's LIST, but it is not published to the dataplane. ``discard``
  and ``restore``/``unrefresh`` undo a request whose audit record could not be written.

Complexity: ADD, confirm and DELETE by ID or Cdest-ID are O(1) per criterion (dicts and an
index per source); LIST and range selectors are O(criteria of the source); the table given to
the publisher is a dict copied in C. The session applies DELETE and REFRESH of many criteria,
and renders LIST rows, in slices (``methods.SLICE``) so other sessions run in between; hence
``holds`` and the lazy ``list_slices``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from flowtap.errors import (
    DestinationLimitError,
    InterceptLimitError,
    UnknownInterceptError,
    UnservableInterceptError,
)
from flowtap.intercept.criteria import Criterion, Timeouts
from flowtap.intercept.expiry import IDLE, TOTAL, Due, ExpiryQueue
from flowtap.intercept.publisher import Publisher
from flowtap.intercept.sink import CriteriaSink
from flowtap.intercept.stats import CriterionStats, statistics

MAX_CRITERIA_ID = 2**32 - 1  # replies carry 32-bit IDs (draft §8)
MAX_CRITERIA_PER_SOURCE = 16384
MAX_CRITERIA = 32768
MAX_DESTINATIONS_PER_SOURCE = 16  # Junos: mediation devices per user
MAX_DESTINATIONS = 64  # Junos: mediation devices per system

DELETED = "deleted"
CLEARED = "cleared"
REJECTED = "install-failed"
LIMIT = "timeout-packets-or-bytes"

RemovalListener = Callable[[Sequence["Entry"], str], None]


class IdSelection(Protocol):
    """Which of its criteria a control source means (DTCP's ``CriteriaSelector`` is one)."""

    @property
    def listed_ids(self) -> tuple[int, ...]:
        """IDs named one by one: each must be one of the source's criteria."""
        ...

    @property
    def only_listed(self) -> bool:
        """Whether the selection is exactly ``listed_ids`` (no range, ``*`` or negation)."""
        ...

    def matches(self, criteria_id: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class RegistryLimits:
    """Criteria and content destinations per control source and in all (the defaults are the
    production values; see :mod:`flowtap.dtcp.tuning` for why)."""

    per_source: int = MAX_CRITERIA_PER_SOURCE
    total: int = MAX_CRITERIA
    destinations_per_source: int = MAX_DESTINATIONS_PER_SOURCE
    destinations: int = MAX_DESTINATIONS


@dataclass(slots=True, eq=False)
class Entry:
    """One criterion as the registry keeps it; ``criterion`` is what its source sees."""

    key: int
    source: str
    criterion: Criterion
    peer: str
    added: datetime
    last_refresh: datetime
    timeouts: Timeouts
    total_deadline: float | None = None
    idle_start: float = 0.0
    packet_limit: int | None = None  # absolute, on the dataplane's counter
    byte_limit: int | None = None
    num_refresh: int = 0
    version: int = 0
    active: bool = False
    published: Criterion | None = None
    samples: list[tuple[float, int]] = field(default_factory=list)  # (time, bytes), newest last

    @property
    def criteria_id(self) -> int:
        return self.criterion.criteria_id

    @property
    def cdest_ids(self) -> tuple[str, ...]:
        return tuple(d.cdest_id for d in self.criterion.destinations)


@dataclass(slots=True)
class _Source:
    next_id: int = 1
    entries: dict[int, Entry] = field(default_factory=dict)
    cdests: dict[str, set[int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Saved:
    entry: Entry
    state: tuple[object, ...]


_TIMING = ("criterion", "timeouts", "total_deadline", "idle_start", "packet_limit", "byte_limit",
           "num_refresh", "last_refresh", "version", "published")  # fmt: skip


class Registry:
    """Criteria by control source; publishes to a :class:`CriteriaSink` through a Publisher."""

    def __init__(
        self,
        sink: CriteriaSink,
        limits: RegistryLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        granularity: float = 0.2,
    ) -> None:
        self.limits = limits or RegistryLimits()
        self.sink = sink
        self.clock = clock
        self.publisher = Publisher(sink, self.snapshot, self._reject)
        self.on_removed: list[RemovalListener] = []
        self.on_clear: list[Callable[[], None]] = []
        self._sources: dict[str, _Source] = {}
        self._by_key: dict[int, Entry] = {}
        self._published: dict[int, Criterion] = {}
        self._cdest_total = 0
        self._next_key = 1
        self._epoch = 0
        self._expiry = ExpiryQueue(self._due, clock, granularity)

    # ---- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_key)

    def snapshot(self) -> tuple[Criterion, ...]:
        """The immutable table for the dataplane: confirmed criteria, keyed by ``Entry.key``."""
        return tuple(self._published.values())

    def next_id(self, source: str) -> int:
        """The Criteria-ID the next ADD of ``source`` gets (consumed only by :meth:`add`)."""
        src = self._sources.get(source)
        return 1 if src is None else src.next_id

    def entries(self, source: str) -> list[Entry]:
        src = self._sources.get(source)
        return [] if src is None else list(src.entries.values())

    def knows_cdest(self, source: str, cdest_id: str) -> bool:
        src = self._sources.get(source)
        return src is not None and cdest_id in src.cdests

    def select(
        self, source: str, selector: IdSelection | None, cdest_id: str | None
    ) -> list[Entry]:
        """The source's criteria matching both selectors (None = any), in ID order.

        Raises:
            UnknownInterceptError: a listed single ID is not one of the source's criteria.
        """
        src = self._sources.get(source) or _Source()
        if selector is not None:
            for criteria_id in selector.listed_ids:
                if criteria_id not in src.entries:
                    raise UnknownInterceptError(criteria_id)
        if cdest_id is not None:
            ids: Iterable[int] = sorted(src.cdests.get(cdest_id, ()))
            found = [src.entries[i] for i in ids]
            return [e for e in found if selector is None or selector.matches(e.criteria_id)]
        if selector is not None and selector.only_listed:
            return [src.entries[i] for i in sorted(set(selector.listed_ids))]
        return [e for e in src.entries.values() if selector is None or selector.matches(
            e.criteria_id)]  # fmt: skip

    def holds(self, entry: Entry) -> bool:
        """Whether ``entry`` is still in the table (not deleted, expired or cleared since)."""
        return self._by_key.get(entry.key) is entry

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
        name = criterion.csource_id
        src = self._sources.setdefault(name, _Source())
        if criterion.criteria_id != src.next_id:
            raise ValueError("criterion must carry next_id(source)")
        if len(src.entries) >= self.limits.per_source or len(self) >= self.limits.total:
            raise InterceptLimitError("criteria limit reached")
        new = {d.cdest_id for d in criterion.destinations} - src.cdests.keys()
        if new and (len(src.cdests) + len(new) > self.limits.destinations_per_source
                    or self._cdest_total + len(new) > self.limits.destinations):  # fmt: skip
            raise DestinationLimitError("content destination limit reached")
        if src.next_id > MAX_CRITERIA_ID:
            raise InterceptLimitError("criteria IDs of this source exhausted")
        src.next_id += 1
        now = datetime.now()
        entry = Entry(self._next_key, name, criterion, peer, now, now, criterion.timeouts)
        self._next_key += 1
        self._insert(src, entry)
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
        changed = False
        for entry in entries:
            if self._by_key.get(entry.key) is entry:
                changed |= entry.active
                self._remove(entry)
        if changed:
            self.publisher.changed()
        return self._epoch

    def restore(self, entries: Sequence[Entry], epoch: int) -> None:
        """Undo :meth:`delete` (unless the table was cleared meanwhile)."""
        if epoch != self._epoch:
            return
        for entry in entries:
            if entry.key not in self._by_key:
                self._insert(self._sources.setdefault(entry.source, _Source()), entry)
                if entry.active:
                    entry.version += 1
                    self._publish(entry, notify=False)
                    self._schedule(entry)
        self.publisher.changed()

    def refresh(self, entries: Sequence[Entry], timeouts: Timeouts) -> list[_Saved]:
        """Replace the given timeouts of non-static ``entries``; returns what :meth:`unrefresh`
        needs. Packet and byte limits restart from the counters now."""
        # only those still held: a REFRESH applied in slices must not republish one deleted
        # or expired meanwhile
        targets = [e for e in entries if not e.criterion.static and self.holds(e)]
        counters = self.sink.counters() if targets and (timeouts.packets or timeouts.bytes) else {}
        saved = []
        for entry in targets:
            saved.append(_Saved(entry, tuple(getattr(entry, a) for a in _TIMING)))
            c = counters.get(entry.key)
            self._set_timeouts(entry, timeouts, {"packets": c.packets if c else 0,
                                                 "bytes": c.bytes if c else 0})  # fmt: skip
            entry.criterion = dataclasses.replace(entry.criterion, timeouts=entry.timeouts)
            entry.num_refresh += 1
            entry.last_refresh = datetime.now()
            entry.version += 1
            if entry.active:
                self._publish(entry, notify=False)
                self._schedule(entry)
        if any(s.entry.active for s in saved):
            self.publisher.changed()
        return saved

    def unrefresh(self, saved: Sequence[_Saved]) -> None:
        for item in reversed(saved):
            for attribute, value in zip(_TIMING, item.state, strict=True):
                setattr(item.entry, attribute, value)
            item.entry.version += 1
            if item.entry.active and item.entry.key in self._by_key:
                self._publish(item.entry, notify=False)
                self._schedule(item.entry)
        self.publisher.changed()

    def expire_by_limit(self, key: int) -> None:
        """The dataplane stopped copies for ``key`` (packet or byte limit): delete it. Call on
        the event loop (``loop.call_soon_threadsafe`` from the capture thread)."""
        entry = self._by_key.get(key)
        if entry is not None and entry.active:
            self._expire([entry], LIMIT)

    def clear(self, reason: str = CLEARED) -> int:
        """Drop every criterion (flow-tap removed, restarted or stopped; the service stopped);
        the ``on_clear`` listeners then disconnect the control sources."""
        dropped = list(self._by_key.values())
        for src in self._sources.values():
            src.entries.clear()
            src.cdests.clear()
        self._by_key.clear()
        self._published.clear()
        self._cdest_total = 0
        self._epoch += 1
        self._expiry.clear()
        self.publisher.changed()
        if dropped:
            self._notify(dropped, reason)
        for listener in list(self.on_clear):
            listener()
        return len(dropped)

    # ---- internals -------------------------------------------------------------------------

    def _insert(self, src: _Source, entry: Entry) -> None:
        src.entries[entry.criteria_id] = entry
        for cdest in entry.cdest_ids:
            users = src.cdests.setdefault(cdest, set())
            if not users:
                self._cdest_total += 1
            users.add(entry.criteria_id)
        self._by_key[entry.key] = entry

    def _remove(self, entry: Entry) -> None:
        src = self._sources[entry.source]
        del src.entries[entry.criteria_id]
        for cdest in entry.cdest_ids:
            users = src.cdests[cdest]
            users.discard(entry.criteria_id)
            if not users:
                del src.cdests[cdest]
                self._cdest_total -= 1
        del self._by_key[entry.key]
        self._published.pop(entry.key, None)
        entry.version += 1

    def _publish(self, entry: Entry, notify: bool = True) -> None:
        entry.published = dataclasses.replace(
            entry.criterion, criteria_id=entry.key,
            timeouts=Timeouts(packets=entry.packet_limit, bytes=entry.byte_limit),
        )  # fmt: skip
        self._published[entry.key] = entry.published
        if notify:
            self.publisher.changed()

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
            self.publisher.changed()
            self._notify(entries, reason)

    def _reject(self, keys: list[int]) -> None:
        self._expire([self._by_key[k] for k in keys if k in self._by_key], REJECTED)

    def _notify(self, entries: Sequence[Entry], reason: str) -> None:
        for listener in list(self.on_removed):
            listener(entries, reason)
