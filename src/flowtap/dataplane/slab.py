"""Per-criterion counters in memory shared by the capture workers and the appliance.

Each capture worker writes only its own region (one writer per word: no locks, no atomics);
the appliance reads every region and sums them, so LIST, the idle timeout and kernel statistics
cost no message to a worker. A criterion has a *slot*, given by the appliance when it is first
installed and kept while it stays (a replaced criterion keeps its counters); a worker zeroes its
own record of a slot when it removes the criterion holding it (so the slot is clean in every
region once it is free) and when a criterion newly takes it (a restarted worker's region).

One more region, the *carry*, holds what workers that are gone counted (the appliance writes it
when it replaces the workers, e.g. after ``capture-workers`` changed): sums include it.

A worker enforcing a packet or byte limit reads the other regions' records of that slot too:
the sum is what the limit is about. Two workers can pass the check at the same instant, so a
limit may be overshot by at most one packet per other worker (flows are spread over workers
by hash; one flow never is).

Layout: per region (each worker, then the carry), a header of ``HEADER`` int64 words (see the
``H_*`` indexes), then ``capacity`` records of ``FIELDS`` int64 words. The memory is a memfd,
inherited by the workers through the fd they are given; growing means a new slab, handed to
the workers in a control message, each copying its own region over (the appliance copies the
carry).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from flowtap.dataplane.counters import CriterionCounters

PACKETS, BYTES, SENT, DROPPED, LAST_NS, LIMITED = range(6)
FIELDS = 6
HEADER = 8
H_ANNOUNCED, H_APPLIED = 0, 1  # control batch numbers: written by the appliance / the worker
WORD = 8


@dataclass(frozen=True, slots=True)
class SlabSpec:
    """What a worker needs to map a slab: its fd (inherited or received), size and shape."""

    workers: int
    capacity: int

    @property
    def regions(self) -> int:
        """Every worker's region and the carry's (the last)."""
        return self.workers + 1

    @property
    def carry(self) -> int:
        return self.workers

    @property
    def size(self) -> int:
        return self.regions * (HEADER + self.capacity * FIELDS) * WORD


class Slab:
    """The mapped slab; ``words`` is the whole of it as int64."""

    def __init__(self, spec: SlabSpec, fd: int | None = None) -> None:
        """Create a new zeroed slab (``fd`` None), or map an existing one."""
        self.spec = spec
        if fd is None:
            fd = os.memfd_create("flowtap-counters", os.MFD_CLOEXEC)
            os.ftruncate(fd, spec.size)
        self.fd = fd
        self.map = mmap.mmap(fd, spec.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.words = memoryview(self.map).cast("q")

    def header(self, worker: int) -> int:
        """Index of ``worker``'s header in :attr:`words`."""
        return worker * (HEADER + self.spec.capacity * FIELDS)

    def record(self, worker: int, slot: int) -> int:
        """Index of ``worker``'s record of ``slot`` in :attr:`words`."""
        return _record(self.spec, worker, slot)

    def clear_limited(self, worker: int, slot: int) -> None:
        """New limits (a REFRESH): copies resume if the counts are under them."""
        self.words[self.record(worker, slot) + LIMITED] = 0

    def zero(self, worker: int, slot: int) -> None:
        base = self.record(worker, slot)
        self.words[base : base + FIELDS] = memoryview(bytes(FIELDS * WORD)).cast("q")

    def copy_region(self, worker: int, other: Slab) -> None:
        """Copy ``worker``'s records of the slots both slabs have from ``other`` (growth)."""
        n = min(self.spec.capacity, other.spec.capacity) * FIELDS
        src, dst = other.record(worker, 0), self.record(worker, 0)
        self.words[dst : dst + n] = other.words[src : src + n]

    def total(self, slot: int, field: int) -> int:
        """``field`` of ``slot`` summed over every worker."""
        w = self.words
        return sum(w[self.record(i, slot) + field] for i in range(self.spec.regions))

    def snapshot(self, slot: int) -> CriterionCounters:
        """The counters of ``slot`` over every worker (last packet: the latest of any)."""
        return _read(self.words, self.spec, slot)

    def frozen(self, slots: Mapping[int, int]) -> FrozenCounters:
        """Every criterion's counters at this instant (``slots``: criteria ID -> slot)."""
        return FrozenCounters(self, slots)

    def carry_in(self, slot: int, counters: CriterionCounters) -> None:
        """Add what retired workers counted for ``slot`` to the carry region."""
        w, b = self.words, self.record(self.spec.carry, slot)
        w[b + PACKETS] += counters.packets
        w[b + BYTES] += counters.bytes
        w[b + SENT] += counters.sent
        w[b + DROPPED] += counters.dropped
        if counters.last_packet is not None:
            w[b + LAST_NS] = max(w[b + LAST_NS], int(counters.last_packet * 1e9))
        w[b + LIMITED] |= int(counters.limit_reached)

    def close(self) -> None:
        self.words.release()
        self.map.close()
        os.close(self.fd)


class FrozenCounters(Mapping[int, CriterionCounters]):
    """The slab as it was at one instant, read lazily: taking it is one copy of the memory,
    so a reader of 100,000 criteria (a LIST, the idle timeout) holds the event loop for a
    memcpy, not for 100,000 sums, and still sees every criterion at the same instant."""

    __slots__ = ("_slots", "_spec", "_words")

    def __init__(self, slab: Slab, slots: Mapping[int, int]) -> None:
        self._words = memoryview(bytes(slab.map)).cast("q")
        self._spec = slab.spec
        self._slots = dict(slots)

    def __getitem__(self, criteria_id: int) -> CriterionCounters:
        return _read(self._words, self._spec, self._slots[criteria_id])

    def __iter__(self) -> Iterator[int]:
        return iter(self._slots)

    def __len__(self) -> int:
        return len(self._slots)


def _record(spec: SlabSpec, worker: int, slot: int) -> int:
    return worker * (HEADER + spec.capacity * FIELDS) + HEADER + slot * FIELDS


def _read(w: memoryview, spec: SlabSpec, slot: int) -> CriterionCounters:
    packets = octets = sent = dropped = last = limited = 0
    for i in range(spec.regions):
        b = _record(spec, i, slot)
        packets += w[b + PACKETS]
        octets += w[b + BYTES]
        sent += w[b + SENT]
        dropped += w[b + DROPPED]
        last = max(last, w[b + LAST_NS])
        limited |= w[b + LIMITED]
    return CriterionCounters(packets, octets, sent, dropped, last / 1e9 if last else None,
                             bool(limited))
