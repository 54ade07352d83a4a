"""The dataplane as the appliance drives it: capture rings, the kernel pre-filter, content
destination sockets and criteria, served by capture worker processes.

Where the work happens:

- The kernel runs one eBPF socket filter (:mod:`flowtap.dataplane.prefilter`) on every packet
  of a captured device, on the forwarding CPU: two longest-prefix lookups in maps that hold the
  addresses the installed criteria are filed under (:mod:`flowtap.dataplane.prefixes`). A
  packet no criterion can want costs forwarding about as much as an idle tap; one that may be
  wanted is put in a ring.
- Each device has one TPACKET_V3 ring per worker, joined in a flow-hash fanout group; worker
  processes (:mod:`flowtap.dataplane.worker`) match exactly, count and send the copies.
- This object, in the appliance process, owns every socket (so a refusal, such as a content
  destination that cannot be bound, happens here, before anything changed) and hands
  descriptors to the workers.

Why a change is live when :meth:`Dataplane.apply` returns (the DTCP 200 OK waits for it):
an install first files the criterion in the pre-filter maps (the next packet is admitted),
then every worker applies it between two packets and acknowledges; a packet that reaches the
router after that is admitted and matched. A removal is applied by every worker first (each
sends what it had queued, then stops copying the criterion) and only then leaves the maps.
Each step is proportional to the criterion itself, never to the number installed: index and
maps are updated one entry at a time.

All control calls are serialised by one lock and may block (they wait for the workers); the
intercept publisher calls :meth:`apply` from its worker thread, the flow-tap commit hook calls
:meth:`prepare`, :meth:`commit` and :meth:`abort`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from flowtap.dataplane import bpf, control
from flowtap.dataplane.counters import CriterionCounters, KernelStats
from flowtap.dataplane.encap import Outer, shim
from flowtap.dataplane.match import normalize_interface
from flowtap.dataplane.prefilter import Prefilter
from flowtap.dataplane.ring import CaptureInterface, Ring
from flowtap.dataplane.sender import Sink, validate
from flowtap.dataplane.slab import Slab, SlabSpec
from flowtap.dataplane.workers import Batch, WorkerPool
from flowtap.dataplane.x3.delivery import X3Delivery, x3_route
from flowtap.errors import CaptureError
from flowtap.intercept.criteria import X3, ContentDestination, Criterion

LOG = logging.getLogger(__name__)
LimitHook = Callable[[int], None]
FIRST_CAPACITY = 1024

__all__ = ["CaptureError", "CaptureInterface", "Dataplane", "PreparedCapture"]


def default_workers() -> int:
    """One capture worker per CPU this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))


@dataclass(frozen=True, slots=True)
class PreparedCapture:
    """Rings opened by :meth:`Dataplane.prepare` (``rings[w]``: worker w's, one per capture
    interface), not yet hooked to their devices."""

    rings: tuple[tuple[Ring, ...], ...]
    inet6: bool

    @property
    def primary(self) -> tuple[Ring, ...]:
        """One ring per capture interface (the first worker's), in interface order."""
        return self.rings[0] if self.rings else ()

    @property
    def all(self) -> tuple[Ring, ...]:
        return tuple(r for per in self.rings for r in per)


_EMPTY = PreparedCapture((), False)


@dataclass(frozen=True, slots=True)
class _Change:
    """An apply between handing its batch to the workers and their acknowledgement."""

    ops: list[tuple[control.Op, Sequence[int]]]
    slabs: list[Slab]
    gone: set[int]
    unused: list[Outer]


class Dataplane:
    """Capture → pre-filter → match → encapsulate → send, for the criteria installed."""

    def __init__(self, *, cpu: int | None = None, workers: int | None = None,
                 on_limit: LimitHook | None = None) -> None:
        """Args:
            cpu: pin every capture worker to this CPU (benchmarks); None: no pinning.
            workers: number of capture worker processes (None: one per CPU).
            on_limit: called **from an event thread** with a criteria id the first time its
                packet or byte limit stops its copies (use ``loop.call_soon_threadsafe``).
        """
        self._cpu = cpu
        self.workers = workers or default_workers()
        self._on_limit = on_limit
        self._lock = threading.RLock()
        self._async_lock = asyncio.Lock()
        self._criteria: dict[int, Criterion] = {}
        self._slots: dict[int, int] = {}
        self._free: list[int] = []
        self._next_slot = 0
        self._sockets: dict[Outer, socket.socket] = {}
        self._users: dict[Outer, int] = {}
        self._capture = _EMPTY
        self._ring_ids = itertools.count(1)
        self._closed_stats = KernelStats()
        self._prefilter: Prefilter | None = None
        self._prefilter_failed = False
        self._pool: WorkerPool | None = None
        self._slab: Slab | None = None
        self.x3 = X3Delivery()  # TLS files and the workers' link states

    # ---- capture interfaces (commit hook: prepare / commit / abort) ----

    def prepare(self, interfaces: Sequence[CaptureInterface], inet6: bool,
                workers: int | None = None) -> PreparedCapture:
        """Open a ring per interface and worker (``workers``: a new number of capture
        workers, taking effect at :meth:`commit`), filtered, not hooked yet; nothing changes.

        Raises:
            CaptureError: an interface is missing or cannot be captured (nothing left open).
        """
        count = workers or self.workers
        with self._lock:
            per_worker: list[list[Ring]] = [[] for _ in range(count)]
            opened: list[Ring] = []
            try:
                for iface in interfaces:
                    ci = CaptureInterface(normalize_interface(iface.name), iface.device)
                    for w in range(count):
                        ring = Ring(ci, mapped=False)
                        ring.ring_id = next(self._ring_ids)
                        opened.append(ring)
                        self._filter(ring)
                        per_worker[w].append(ring)
            except BaseException:
                for r in opened:
                    r.close()
                raise
            return PreparedCapture(tuple(tuple(p) for p in per_worker), inet6)

    def commit(self, prepared: PreparedCapture) -> None:
        """Hook the prepared rings and hand them to the workers, keeping every criterion.
        A device captured already keeps its rings (the workers go on reading them where they
        are, and no packet is seen twice or missed); the prepared duplicates are closed.
        Never fails on account of the rings (they are open already)."""
        with self._lock:
            if len(prepared.rings) != self.workers:
                self._resize(prepared)
                return
            self._ensure_workers()
            assert self._pool is not None
            old = self._capture
            running = {(r.iface.name, r.iface.device, w): r
                       for w, per in enumerate(old.rings) for r in per}
            spare: list[Ring] = []
            rings: list[tuple[Ring, ...]] = []
            for w, per in enumerate(prepared.rings):
                kept = []
                for ring in per:
                    same = running.pop((ring.iface.name, ring.iface.device, w), None)
                    if same is not None:
                        spare.append(ring)
                    kept.append(same or ring)
                rings.append(tuple(kept))
            current = PreparedCapture(tuple(rings), prepared.inet6)
            self._hook(current, [r for r in current.all if r not in set(old.all)])
            refile = prepared.inet6 != old.inet6
            self._capture = current

            def own(w: int) -> Batch:
                per = current.rings[w] if w < len(current.rings) else ()
                return [(("rings", tuple((r.ring_id, r.iface.name) for r in per),
                          current.inet6), tuple(r.fd for r in per))]

            self._pool.run([], own=own)
            self._retire(running.values())
            for ring in spare:
                ring.close()
            if refile and self._prefilter is not None:
                for cid, c in self._criteria.items():
                    with contextlib.suppress(OSError):
                        self._prefilter.add(cid, c.match, self._versions())

    def _resize(self, prepared: PreparedCapture) -> None:
        """Another number of workers: a new pool with the whole state starts on the prepared
        rings before the old pool stops (a packet arriving in between may be copied twice,
        none is missed); what the old workers counted goes to the new slab's carry region."""
        old_pool, old_slab, old_capture = self._pool, self._slab, self._capture
        self.workers = len(prepared.rings)
        capacity = old_slab.spec.capacity if old_slab is not None else FIRST_CAPACITY
        self._slab = Slab(SlabSpec(self.workers, capacity))
        self._capture = prepared
        self._pool = None
        self._ensure_workers(state=True)
        self._hook(prepared, prepared.all)
        if old_pool is not None:
            old_pool.stop()
        self._retire(old_capture.all)
        if old_slab is not None:
            for slot in self._slots.values():
                self._slab.carry_in(slot, old_slab.snapshot(slot))
            old_slab.close()
        if prepared.inet6 != old_capture.inet6 and self._prefilter is not None:
            for cid, c in self._criteria.items():
                with contextlib.suppress(OSError):
                    self._prefilter.add(cid, c.match, self._versions())
        LOG.debug("dataplane: %d capture workers", self.workers)

    def abort(self, prepared: PreparedCapture) -> None:
        """Close rings from :meth:`prepare` that will not be committed."""
        for r in prepared.all:
            r.close()

    def start(self, interfaces: Sequence[CaptureInterface], inet6: bool) -> None:
        """``prepare`` + ``commit``."""
        self.commit(self.prepare(interfaces, inet6))

    def rebind(self, interfaces: Sequence[CaptureInterface], inet6: bool) -> None:
        """Change capture interfaces or the IPv6 setting without losing criteria."""
        self.commit(self.prepare(interfaces, inet6))

    def stop(self) -> None:
        """Stop the workers and close every ring and socket; criteria are forgotten."""
        with self._lock:
            if self._pool is not None:
                self._pool.stop()
                self._pool = None
            self._retire(self._capture.all)
            self._capture = _EMPTY
            for s in self._sockets.values():
                s.close()
            self._sockets, self._users = {}, {}
            self._criteria, self._slots, self._free, self._next_slot = {}, {}, [], 0
            if self._prefilter is not None:
                self._prefilter.close()
                self._prefilter = None
            if self._slab is not None:
                self._slab.close()
                self._slab = None

    # ---- criteria ----

    def check(self, criterion: Criterion) -> None:
        """Raise ValueError for a criterion no socket could serve (TTL 0, >2 destinations, X3
        without TLS files); the intercept registry asks before it accepts one
        (``CriteriaSink.check``)."""
        if not 1 <= len(criterion.destinations) <= 2:
            raise ValueError("a criterion needs one or two content destinations")
        if isinstance(criterion.delivery, X3):
            self.x3.check(criterion)
            return
        for cd in criterion.destinations:
            validate(Outer.of(cd))

    def set_x3_tls(self, files: tuple[str, str, str] | None) -> None:
        """The TLS files (certificate, key, CAs) of X3 connections, checked by the caller;
        None: X3 is off (criteria installed keep their links until removed)."""
        with self._lock:
            self.x3.files = files
            if self._pool is not None:
                self._pool.run([(("x3tls", files), ())])

    def destination_state(self, address: str, port: int) -> tuple[bool, int, int]:
        """(its link is up, PDUs sent, PDUs dropped) of an X3 destination."""
        with self._lock:
            users = [cid for cid, c in self._criteria.items() if isinstance(c.delivery, X3)
                     and any((cd.dest_address, cd.dest_port) == (address, port)
                             for cd in c.destinations)]  # fmt: skip
            counters = self.counters()
            sent = sum(counters[cid].sent for cid in users if cid in counters)
            dropped = sum(counters[cid].dropped for cid in users if cid in counters)
            return self.x3.connected(address, port, self.workers), sent, dropped

    def destination_problem(self, address: str, port: int) -> str | None:
        """Why the X3 connection to a destination is down, as its worker last saw it (None:
        it is up, or it has not been tried yet)."""
        return self.x3.problem(address, port, self.workers)

    def apply(self, upserts: Sequence[Criterion], removals: Collection[int]) -> None:
        """Install or replace ``upserts`` by ``criteria_id`` and remove the ``removals`` ids
        (ids not installed are ignored), all at once (``CriteriaSink.apply``); returns when
        the change is live in the kernel pre-filter and in every worker. A criterion kept or
        replaced keeps its counters. Cost: proportional to the delta.

        Raises:
            ValueError: an upsert is invalid (see :meth:`check`) or also removed; nothing
                changed.
            flowtap.errors.SendError: a destination socket cannot be opened; nothing changed.
            OSError: the pre-filter maps are full (ENOSPC); nothing changed.
        """
        with self._lock:
            change = self._begin(upserts, removals)
            assert self._pool is not None
            self._pool.run(change.ops, change.slabs)
            self._end(change)

    async def apply_async(self, upserts: Sequence[Criterion], removals: Collection[int]) -> None:
        """:meth:`apply` for the event loop: the workers' acknowledgements are awaited, not
        blocked on, so NETCONF and DTCP go on meanwhile and no thread hands the GIL over."""
        async with self._async_lock:
            with self._lock:
                change = self._begin(upserts, removals)
                pool = self._pool
                assert pool is not None
            await pool.run_async(change.ops, change.slabs)
            with self._lock:
                if self._pool is pool:  # a stop() in between forgot everything already
                    self._end(change)

    def _begin(self, upserts: Sequence[Criterion], removals: Collection[int]) -> _Change:
        """Everything before the workers: sockets, pre-filter filing, slots; the batch."""
        for c in upserts:
            self.check(c)
            if c.criteria_id in removals:
                raise ValueError("a criterion cannot be installed and removed at once")
        gone = {i for i in removals if i in self._criteria}
        # a moot upsert (e.g. a REFRESH of Timeout-Total) changes nothing a worker or the kernel
        # holds: only the table takes it
        moot: list[Criterion] = []
        changed: list[Criterion] = []
        for c in upserts:
            (moot if self._moot(c) else changed).append(c)
        upserts = changed
        self._ensure_workers()
        outers = self._open_sockets(upserts)
        try:
            self._file(upserts)
        except BaseException:
            for o in outers:
                self._sockets.pop(o).close()
            raise
        for c in moot:
            self._criteria[c.criteria_id] = c
        ops: list[tuple[control.Op, Sequence[int]]] = []
        slabs = self._grow(len(self._criteria) + len(upserts))
        if slabs:
            ops.append((("slab", self._slab_spec()), (self._slab_fd(),)))
        ops += [(("sink", o), (self._sockets[o].fileno(),)) for o in outers]
        ops += [(("up", self._upsert(c)), ()) for c in upserts]
        ops += [(("rm", cid), ()) for cid in gone]
        unused = self._release(gone)
        ops += [(("unsink", o), ()) for o in unused]
        return _Change(ops, slabs, gone, unused)

    def _end(self, change: _Change) -> None:
        """Everything after every worker acknowledged: what removals leave behind."""
        assert self._slab is not None
        for old in change.slabs:
            self._slab.copy_region(self._slab.spec.carry, old)  # the workers copied theirs
            old.close()
        for cid in change.gone:
            if self._prefilter is not None:
                self._prefilter.remove(cid)
            slot = self._slots.pop(cid)
            self._slab.zero(self._slab.spec.carry, slot)
            self._free.append(slot)
            del self._criteria[cid]
        for o in change.unused:
            self._sockets.pop(o).close()

    def set_criteria(self, criteria: Iterable[Criterion]) -> None:
        """Replace the installed criteria by ``criteria`` (one delta; tests and benchmarks)."""
        new = {c.criteria_id: c for c in criteria}
        with self._lock:
            changed = [c for i, c in new.items() if self._criteria.get(i) != c]
            self.apply(changed, [i for i in self._criteria if i not in new])

    def add(self, criterion: Criterion) -> None:
        self.apply([criterion], ())

    def remove(self, criteria_id: int) -> None:
        self.apply((), [criteria_id])

    # ---- statistics ----

    def counters(self) -> Mapping[int, CriterionCounters]:
        """Every installed criterion's counters (summed over the workers) at this instant,
        each read when asked for (``FrozenCounters``)."""
        with self._lock:
            slab = self._slab
            if slab is None:
                return {cid: CriterionCounters() for cid in self._criteria}
            return slab.frozen(self._slots)

    def kernel_stats(self) -> KernelStats:
        """Packets the kernel handed to the rings and packets it dropped (ring full)."""
        with self._lock:
            packets, drops = self._closed_stats.packets, self._closed_stats.drops
            for r in self._capture.all:
                p, d = r.poll_stats()
                packets, drops = packets + p, drops + d
            return KernelStats(packets, drops)

    @property
    def prefilter_length(self) -> int:
        """Instructions of the kernel pre-filter program (0: none loaded): the same program
        whatever the number of criteria, which live in its maps."""
        return self._prefilter.program_length if self._prefilter is not None else 0

    @property
    def prefilter_kind(self) -> str:
        """``ebpf`` (address maps in the kernel) or ``broad`` (every IP packet reaches the
        workers: eBPF is unavailable)."""
        return "broad" if self._prefilter_failed else "ebpf"

    def worker_pids(self) -> list[int]:
        with self._lock:
            return self._pool.pids() if self._pool is not None else []

    # ---- internals ----

    def _versions(self) -> frozenset[int]:
        return frozenset({4, 6}) if self._capture.inet6 else frozenset({4})

    def _ensure_prefilter(self) -> Prefilter | None:
        if self._prefilter is None and not self._prefilter_failed:
            try:
                self._prefilter = Prefilter()
            except (OSError, CaptureError) as exc:
                self._prefilter_failed = True
                LOG.warning("eBPF pre-filter unavailable (%s): every IP packet of the captured "
                            "interfaces goes to the capture workers", exc)
        return self._prefilter

    def _filter(self, ring: Ring) -> None:
        prefilter = self._ensure_prefilter()
        if prefilter is not None:
            try:
                prefilter.attach(ring.sock)
                return
            except OSError as exc:
                LOG.warning("eBPF pre-filter refused on %s (%s)", ring.iface.name, exc)
        ring.attach(bpf.broad_filter(True))

    def _hook(self, capture: PreparedCapture, new: Sequence[Ring]) -> None:
        """Put the new rings on their devices' receive path and join each device's rings in
        one fanout group (one flow, one worker)."""
        fresh = {r.ring_id for r in new}
        for ring in new:
            try:
                ring.hook(True)
            except CaptureError:
                LOG.exception("capture interface %s cannot be hooked", ring.iface.name)
        if self.workers < 2:
            return
        for column in zip(*capture.rings, strict=True):
            if not any(r.ring_id in fresh for r in column):
                continue
            try:
                group = column[0].join_fanout(0, unique=True)
                for ring in column[1:]:
                    ring.join_fanout(group, unique=False)
            except CaptureError:
                LOG.exception("capture interface %s: fanout refused", column[0].iface.name)

    def _ensure_workers(self, state: bool = False) -> None:
        """Start the pool if it is not running; it gets the slab, or with ``state`` everything
        (criteria, sinks, rings) the appliance holds."""
        if self._pool is not None:
            return
        if self._slab is None:
            self._slab = Slab(SlabSpec(self.workers, FIRST_CAPACITY))
        pool = WorkerPool(self.workers, cpus=None if self._cpu is None else [self._cpu],
                          on_limit=self._limit_reached, state=self._state,
                          on_x3=self.x3.hook())
        pool.start()
        self._pool = pool
        pool.slab = self._slab
        if state:
            pool.run([], own=self._state)
        else:
            pool.run([(("slab", self._slab_spec()), (self._slab_fd(),))])

    def _limit_reached(self, criteria_id: int) -> None:
        if self._on_limit is not None:
            self._on_limit(criteria_id)

    def _slab_spec(self) -> SlabSpec:
        assert self._slab is not None
        return self._slab.spec

    def _slab_fd(self) -> int:
        assert self._slab is not None
        return self._slab.fd

    def _grow(self, needed: int) -> list[Slab]:
        """A bigger slab when ``needed`` slots may not fit; returns the old one (announced
        too, then closed once every worker copied its records over)."""
        assert self._slab is not None
        if needed <= self._slab.spec.capacity:
            return []
        capacity = self._slab.spec.capacity
        while capacity < needed:
            capacity *= 2
        old, self._slab = self._slab, Slab(SlabSpec(self.workers, capacity))
        assert self._pool is not None
        self._pool.slab = self._slab
        return [old]

    def _open_sockets(self, upserts: Sequence[Criterion]) -> list[Outer]:
        opened: list[Outer] = []
        try:
            for c in upserts:
                for cd in _udp_destinations(c):
                    o = Outer.of(cd)
                    if o not in self._sockets:
                        self._sockets[o] = Sink.open_socket(o)
                        opened.append(o)
        except BaseException:
            for o in opened:
                self._sockets.pop(o).close()
            raise
        return opened

    def _file(self, upserts: Sequence[Criterion]) -> None:
        """File every upsert in the pre-filter, or none (a full map undoes the others)."""
        prefilter = self._ensure_prefilter()
        if prefilter is None:
            return
        done: list[Criterion] = []
        try:
            for c in upserts:
                prefilter.add(c.criteria_id, c.match, self._versions())
                done.append(c)
        except BaseException:
            for c in done:
                before = self._criteria.get(c.criteria_id)
                if before is None:
                    prefilter.remove(c.criteria_id)
                else:
                    prefilter.add(c.criteria_id, before.match, self._versions())
            raise

    def _moot(self, c: Criterion) -> bool:
        """Whether replacing the installed criterion by ``c`` changes nothing in the pre-filter
        or the workers (same match, destinations and limits)."""
        old = self._criteria.get(c.criteria_id)
        if (old is None or old.match != c.match or _limits(old) != _limits(c)
                or old.delivery != c.delivery):
            return False
        return old.destinations == c.destinations or (not isinstance(c.delivery, X3) and
            [Outer.of(cd) for cd in old.destinations] == [Outer.of(cd) for cd in c.destinations])

    def _upsert(self, c: Criterion) -> control.Upsert:
        fresh = c.criteria_id not in self._slots
        if fresh:
            slot = self._free.pop() if self._free else self._take_slot()
            self._slots[c.criteria_id] = slot
            assert self._slab is not None
            self._slab.zero(self._slab.spec.carry, slot)  # a reused slot's old carry
            for cd in _udp_destinations(c):
                o = Outer.of(cd)
                self._users[o] = self._users.get(o, 0) + 1
        else:
            old = self._criteria[c.criteria_id]
            if _limits(old) != _limits(c):  # new limits: what retired workers saw is moot
                assert self._slab is not None
                self._slab.clear_limited(self._slab.spec.carry, self._slots[c.criteria_id])
            for cd in _udp_destinations(old):
                self._users[Outer.of(cd)] -= 1
            for cd in _udp_destinations(c):
                o = Outer.of(cd)
                self._users[o] = self._users.get(o, 0) + 1
        self._criteria[c.criteria_id] = c
        return _upsert_op(c, self._slots[c.criteria_id], fresh)

    def _take_slot(self) -> int:
        slot = self._next_slot
        self._next_slot += 1
        return slot

    def _release(self, gone: Iterable[int]) -> list[Outer]:
        """Outers no criterion uses once ``gone`` are removed (their sockets go after the
        workers dropped theirs)."""
        for cid in gone:
            for cd in _udp_destinations(self._criteria[cid]):
                self._users[Outer.of(cd)] -= 1
        unused = [o for o, n in self._users.items() if n <= 0]
        for o in unused:
            del self._users[o]
        return unused

    def _state(self, worker: int) -> Batch:
        """Everything worker ``worker`` holds, as one batch (a restarted worker)."""
        assert self._slab is not None
        ops: list[tuple[control.Op, Sequence[int]]] = [
            (("slab", self._slab.spec), (self._slab.fd,))]
        ops += [(("sink", o), (s.fileno(),)) for o, s in self._sockets.items()]
        ops.append((("x3tls", self.x3.files), ()))
        rings = self._capture.rings[worker] if worker < len(self._capture.rings) else ()
        ops.append((("rings", tuple((r.ring_id, r.iface.name) for r in rings),
                     self._capture.inet6), tuple(r.fd for r in rings)))
        ops += [(("up", _upsert_op(c, self._slots[cid], False)), ())
                for cid, c in self._criteria.items()]
        return ops

    def _retire(self, rings: Iterable[Ring]) -> None:
        packets, drops = self._closed_stats.packets, self._closed_stats.drops
        for r in rings:
            with contextlib.suppress(OSError):
                p, d = r.poll_stats()
                packets, drops = packets + p, drops + d
            r.close()
        self._closed_stats = KernelStats(packets, drops)


def _upsert_op(c: Criterion, slot: int, fresh: bool) -> control.Upsert:
    if isinstance(c.delivery, X3):
        return control.Upsert(c.criteria_id, slot, fresh, c.match, (), *_limits(c),
                              x3=x3_route(c.delivery, c.destinations))
    return control.Upsert(c.criteria_id, slot, fresh, c.match,
                          tuple(Outer.of(cd) for cd in c.destinations), *_limits(c),
                          shim(c.delivery))


def _udp_destinations(c: Criterion) -> tuple[ContentDestination, ...]:
    """The destinations that are UDP sockets of this process (an X3 criterion's are TLS peers
    the workers connect to)."""
    return () if isinstance(c.delivery, X3) else c.destinations


def _limits(c: Criterion) -> tuple[int | None, int | None]:
    """The packet and byte limits the workers enforce (none for a static criterion)."""
    t = c.timeouts
    return (None if c.static or not t.packets else t.packets,
            None if c.static or not t.bytes else t.bytes)
