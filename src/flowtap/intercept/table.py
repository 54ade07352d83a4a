"""The criteria table: every intercept by control source, its IDs, indexes and limits.

Decisions (DTCP.md §2.3-2.7, §7; draft §5.5-5.11):
- A control source is the authenticated user of a tasking session; the session refuses a
  source naming anyone else before the table is consulted. Each source sees, lists, refreshes
  and deletes only its own criteria.
- Criteria-IDs are numbered per control source, 1, 2, 3 ..., and never reused while the process
  runs, even after the flow-tap service clears the table (draft §5.5: unique per source, never
  reuse a recently freed ID). Per-source numbering is deliberate: a global counter would tell
  one agency how many criteria the others add (LI-1), and an ID of another source is then simply
  an unknown ID (LI-3). The dataplane sees a separate global key (``Entry.key``).
- Limits (``RegistryLimits``): criteria per source and in all (``InterceptLimitError``, DTCP
  550), configured (``services flow-tap limits``) and changed at commit by
  :meth:`CriteriaTable.set_criteria_limits`; content destinations (mediation devices: distinct
  Cdest-IDs of a source in use by its criteria) per source and in all
  (``DestinationLimitError``, 551). Identical ADDs are not merged: each gets its own ID
  (criteria are independent), so a flood of duplicates ends at the per-source limit.
- Selection (DELETE/REFRESH/LIST): a listed single ID unknown to the source ->
  ``UnknownInterceptError`` (DTCP 431, echoing the Criteria-ID header) and nothing changes;
  ranges and ``*`` may match nothing. A Cdest-ID that matches nothing selects nothing.

Complexity: adding, removing and selecting by ID or Cdest-ID are O(1) per criterion (dicts and
an index per source); range selectors are O(criteria of the source).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from flowtap.errors import DestinationLimitError, InterceptLimitError, UnknownInterceptError
from flowtap.intercept.criteria import Criterion, Timeouts

MAX_CRITERIA_ID = 2**32 - 1  # replies carry 32-bit IDs (draft §8)
DEFAULT_CRITERIA_PER_SOURCE = 16384  # the YANG defaults of services flow-tap limits
DEFAULT_CRITERIA = 32768
MAX_DESTINATIONS_PER_SOURCE = 16  # Junos: mediation devices per user
MAX_DESTINATIONS = 64  # Junos: mediation devices per system


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

    per_source: int = DEFAULT_CRITERIA_PER_SOURCE
    total: int = DEFAULT_CRITERIA
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


class CriteriaTable:
    """Criteria by control source and by dataplane key, with the limits enforced on entry."""

    def __init__(self, limits: RegistryLimits | None = None) -> None:
        self.limits = limits or RegistryLimits()
        self._sources: dict[str, _Source] = {}
        self._by_key: dict[int, Entry] = {}
        self._cdest_total = 0
        self._next_key = 1

    # ---- reading -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_key)

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

    # ---- changing ------------------------------------------------------------------------

    def set_criteria_limits(self, *, total: int, per_source: int) -> None:
        """Enforce new criteria limits from the next ADD on (a commit changed them).

        Nothing installed is removed, even above a lowered limit: a commit never ends a
        warrant's tap. ADDs are then refused until enough criteria have gone.

        Raises:
            ValueError: not ``0 < per_source <= total`` (YANG refuses such a configuration).
        """
        if not 0 < per_source <= total:
            raise ValueError("criteria limits must satisfy 0 < per_source <= total")
        self.limits = dataclasses.replace(self.limits, total=total, per_source=per_source)

    # ---- the registry's lifecycle calls these ---------------------------------------------

    def _admit(self, criterion: Criterion, peer: str) -> Entry:
        """Insert a new entry for ``criterion`` numbered ``next_id`` of its source.

        Raises:
            InterceptLimitError, DestinationLimitError: a limit would be exceeded (nothing
                changes).
        """
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
        self._insert(entry)
        return entry

    def _insert(self, entry: Entry) -> None:
        src = self._sources.setdefault(entry.source, _Source())
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

    def _remove_all(self) -> list[Entry]:
        """Empty the table (the IDs stay consumed); returns what it held."""
        dropped = list(self._by_key.values())
        for src in self._sources.values():
            src.entries.clear()
            src.cdests.clear()
        self._by_key.clear()
        self._cdest_total = 0
        return dropped
