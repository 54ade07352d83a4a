"""The dataplane: capture rings, exact match, encapsulated copies, counters.

Threading model: one dedicated capture thread reads every ring, matches and sends. The
NETCONF/DTCP asyncio loop never runs packet work, and the thread blocks only in ``poll()`` and
``sendmmsg()``, both of which release the GIL, so an idle tap costs the event loop nothing.
A separate process would avoid sharing the GIL under load, but then every criteria change, the
counters and the limit notifications would need IPC; a ring block holds hundreds of packets
per wakeup, so the GIL is handed over at most every 5 ms (``sys.getswitchinterval``) and the
control plane stays responsive. Pin the thread to a core other than the forwarding one
(``cpu=``) for the DATAPLANE.md figures.

Control operations (``apply``, ``set_criteria``, ``commit`` ...) run on the caller's thread under
a lock; they publish immutable state (``_State``) that the capture thread reads once per ring block,
*after* it has seen the block ready. Criteria changes publish the new match tables before the
new BPF programs are attached, so any packet admitted by a new program is matched against the
new table; packets admitted by an old program are re-checked exactly by the new table.
Sockets and rings that a change retires are closed by the capture thread itself at the top of
its next iteration, when it holds no reference to them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from flowtap.dataplane import bpf
from flowtap.dataplane.counters import Counter, CriterionCounters, KernelStats
from flowtap.dataplane.encap import MAX_INNER, Outer
from flowtap.dataplane.match import MatchTable, normalize_interface
from flowtap.dataplane.packet import parse
from flowtap.dataplane.ring import CaptureInterface, Ring
from flowtap.dataplane.sender import Sink, validate
from flowtap.dataplane.tables import Route, build_routes, build_tables
from flowtap.errors import CaptureError
from flowtap.intercept.criteria import Criterion

LOG = logging.getLogger(__name__)
_PKT = struct.Struct("=I8xII6xH")  # tp_next_offset, tp_snaplen, tp_len, tp_net
LimitHook = Callable[[int], None]

__all__ = ["CaptureError", "CaptureInterface", "Dataplane", "PreparedCapture"]


@dataclass(frozen=True, slots=True)
class PreparedCapture:
    """Rings opened by :meth:`Dataplane.prepare`, not yet in use (drop-all filter)."""

    rings: tuple[Ring, ...]
    inet6: bool


@dataclass(frozen=True, slots=True)
class _State:
    generation: int
    capture: PreparedCapture
    tables: dict[str, MatchTable[Route]]  # by IFL name
    routes: dict[int, Route]
    sinks: dict[Outer, Sink]


class Dataplane:
    """Capture → match → encapsulate → send, for the criteria currently installed."""

    def __init__(self, *, cpu: int | None = None, on_limit: LimitHook | None = None,
                 exact_budget: int = bpf.EXACT_BUDGET) -> None:
        """Args:
            cpu: pin the capture thread to this CPU.
            on_limit: called **from the capture thread** with a criteria id the first time
                its packet or byte limit stops its copies (use ``loop.call_soon_threadsafe``).
            exact_budget: instruction budget of the exact BPF program (tests lower it).
        """
        self._cpu = cpu
        self._on_limit = on_limit
        self._exact_budget = exact_budget
        self._lock = threading.RLock()
        self._criteria: dict[int, Criterion] = {}
        self._state = _State(0, PreparedCapture((), False), {}, {}, {})
        self._graveyard: list[Ring | Sink] = []
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._closed_stats = KernelStats()
        self.filters: dict[str, bpf.Filter] = {}  # by IFL name, for inspection

    # ---- capture interfaces (commit hook: prepare / commit / abort) ----

    def prepare(self, interfaces: Sequence[CaptureInterface], inet6: bool) -> PreparedCapture:
        """Open a ring per interface with a drop-all filter; nothing changes yet.

        Raises:
            CaptureError: an interface is missing or cannot be captured (nothing left open).
        """
        rings: list[Ring] = []
        try:
            for iface in interfaces:
                rings.append(Ring(CaptureInterface(normalize_interface(iface.name), iface.device)))
        except BaseException:
            for r in rings:
                r.close()
            raise
        return PreparedCapture(tuple(rings), inet6)

    def commit(self, prepared: PreparedCapture) -> None:
        """Swap in prepared rings, keeping every criterion; starts the capture thread. Never
        fails on account of the rings (they are open already)."""
        with self._lock:
            old = self._state.capture
            self._publish(self._criteria, prepared, self._state.sinks)
            self._retire(old.rings)
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name="flowtap-dataplane",
                                                daemon=True)
                self._thread.start()

    def abort(self, prepared: PreparedCapture) -> None:
        """Close rings from :meth:`prepare` that will not be committed."""
        for r in prepared.rings:
            r.close()

    def start(self, interfaces: Sequence[CaptureInterface], inet6: bool) -> None:
        """``prepare`` + ``commit``."""
        self.commit(self.prepare(interfaces, inet6))

    def rebind(self, interfaces: Sequence[CaptureInterface], inet6: bool) -> None:
        """Change capture interfaces or the IPv6 setting without losing criteria."""
        self.commit(self.prepare(interfaces, inet6))

    def stop(self) -> None:
        """Stop the capture thread and close every ring and socket; criteria are forgotten."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._wake()
        if thread is not None:
            thread.join()
        with self._lock:
            st = self._state
            self._retire(st.capture.rings)
            self._retire(st.sinks.values())
            self._reap()
            self._criteria = {}
            self._state = _State(st.generation + 1, PreparedCapture((), False), {}, {}, {})

    # ---- criteria ----

    @staticmethod
    def check(criterion: Criterion) -> None:
        """Raise ValueError for a criterion no socket could serve (TTL 0, >2 destinations);
        the intercept registry asks before it accepts one (``CriteriaSink.check``)."""
        if not 1 <= len(criterion.destinations) <= 2:
            raise ValueError("a criterion needs one or two content destinations")
        for cd in criterion.destinations:
            validate(Outer.of(cd))

    def set_criteria(self, criteria: Iterable[Criterion]) -> None:
        """Replace the installed criteria atomically (tables, BPF, sockets). O(N): batch changes.

        Raises:
            ValueError: a criterion is invalid (see :meth:`check`); nothing changed.
            flowtap.errors.SendError: a destination socket cannot be opened;
                nothing changed.
        """
        new = {c.criteria_id: c for c in criteria}
        for c in new.values():
            self.check(c)
        with self._lock:
            st = self._state
            self._publish(new, st.capture, st.sinks)

    def apply(self, upserts: Sequence[Criterion], removals: Collection[int]) -> None:
        """Install or replace ``upserts`` by ``criteria_id`` and remove the ``removals`` ids (ids
        not installed are ignored), all at once (``CriteriaSink.apply``). A criterion kept or
        replaced keeps its counters. The new table is rebuilt whole, O(N) as ``set_criteria``.

        Raises:
            ValueError: an upsert is invalid (see :meth:`check`) or also removed; nothing
                changed.
            flowtap.errors.SendError: a destination socket cannot be opened; nothing changed.
        """
        gone = set(removals)
        for c in upserts:
            self.check(c)
            if c.criteria_id in gone:
                raise ValueError("a criterion cannot be installed and removed at once")
        with self._lock:
            new = {i: c for i, c in self._criteria.items() if i not in gone}
            new.update((c.criteria_id, c) for c in upserts)
            st = self._state
            self._publish(new, st.capture, st.sinks)

    def add(self, criterion: Criterion) -> None:
        with self._lock:
            self.set_criteria([*self._criteria.values(), criterion])

    def remove(self, criteria_id: int) -> None:
        with self._lock:
            self.set_criteria(c for i, c in self._criteria.items() if i != criteria_id)

    # ---- statistics ----

    def counters(self) -> dict[int, CriterionCounters]:
        """Snapshot of every installed criterion's counters."""
        routes = self._state.routes
        return {cid: r.counter.snapshot() for cid, r in routes.items()}

    def kernel_stats(self) -> KernelStats:
        """Packets the kernel handed to the rings and packets it dropped (ring full)."""
        with self._lock:
            packets, drops = self._closed_stats.packets, self._closed_stats.drops
            for r in self._state.capture.rings:
                p, d = r.poll_stats()
                packets, drops = packets + p, drops + d
            return KernelStats(packets, drops)

    # ---- internals (control side) ----

    def _publish(self, criteria: dict[int, Criterion], capture: PreparedCapture,
                 old_sinks: dict[Outer, Sink]) -> None:
        st = self._state
        sinks: dict[Outer, Sink] = {}
        try:
            for c in criteria.values():
                for cd in c.destinations:
                    o = Outer.of(cd)
                    if o not in sinks:
                        sinks[o] = old_sinks.get(o) or Sink(o)
        except BaseException:
            for o, s in sinks.items():
                if o not in old_sinks:
                    s.close()
            raise
        routes = build_routes(criteria, sinks, st.routes)
        tables, programs = build_tables(criteria, routes, sinks.keys(), capture.rings,
                                        inet6=capture.inet6, exact_budget=self._exact_budget)
        self._criteria = dict(criteria)
        self._state = _State(st.generation + 1, capture, tables, routes, sinks)
        for ring in capture.rings:  # after the tables: see the module docstring
            prog = programs[ring.iface.name]
            try:
                ring.attach(prog)
            except OSError:
                LOG.exception("BPF program (%s, %d insns) refused; accepting all IP",
                              prog.kind, len(prog))
                ring.attach(bpf.broad_filter(capture.inet6))
            try:  # no criteria for this interface: off the receive path altogether
                ring.hook(prog.kind != "drop")
            except CaptureError:
                LOG.exception("capture interface %s cannot be hooked", ring.iface.name)
        self.filters = programs
        LOG.debug("dataplane generation %d: %d criteria, %d destinations",
                  st.generation + 1, len(criteria), len(sinks))
        self._retire(s for o, s in old_sinks.items() if o not in sinks)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a wakeup is already pending
            os.write(self._wake_w, b"x")

    def _retire(self, items: Iterable[Ring | Sink]) -> None:
        """Hand rings/sockets no longer published to the capture thread for closing (caller
        holds the lock); ring statistics are folded into the totals now."""
        items = list(items)
        packets, drops = self._closed_stats.packets, self._closed_stats.drops
        for r in items:
            if isinstance(r, Ring):
                p, d = r.poll_stats()
                packets, drops = packets + p, drops + d
        self._closed_stats = KernelStats(packets, drops)
        self._graveyard.extend(items)
        if self._thread is None:
            self._reap()

    def _reap(self) -> None:
        with self._lock:
            dead, self._graveyard = self._graveyard, []
        for d in dead:
            d.close()

    # ---- the capture thread ----

    def _run(self) -> None:
        if self._cpu is not None:
            os.sched_setaffinity(threading.get_native_id(), {self._cpu})
        poller = select.poll()
        registered: tuple[Ring, ...] = ()
        try:
            while not self._stopping:
                if self._graveyard:
                    for r in registered:
                        poller.unregister(r.fd)
                    registered = ()
                    self._reap()
                rings = self._state.capture.rings
                if rings != registered:
                    for r in registered:
                        poller.unregister(r.fd)
                    poller = select.poll()
                    poller.register(self._wake_r, select.POLLIN)
                    for r in rings:
                        poller.register(r.fd, select.POLLIN | select.POLLERR)
                    registered = rings
                busy = False
                for ring in rings:
                    busy = self._drain(ring) or busy
                if not busy:
                    for fd, _ev in poller.poll(200):
                        if fd == self._wake_r:
                            os.read(self._wake_r, 4096)
        except Exception:
            LOG.exception("dataplane capture thread failed")
            raise

    def _drain(self, ring: Ring) -> bool:
        """Process every block user space owns; True if there was any."""
        unpack, mm, base = _PKT.unpack_from, ring.map, ring.base
        name, did = ring.iface.name, False
        for _ in range(ring.block_count):
            if (off := ring.ready()) < 0:
                break
            did = True
            st = self._state  # read after the block was seen ready
            table = st.tables.get(name)
            n, pos = ring.block(off)
            now = time.monotonic()
            pending: list[Sink] = []
            expired: list[Route] = []
            for _ in range(n):
                nxt, snap, plen, net = unpack(mm, pos)
                p = pos + net
                pos += nxt
                parsed = parse(mm, p, snap)
                if parsed is None or table is None:
                    continue
                routes = table.lookup(parsed[0], parsed[1])
                if not routes:
                    continue
                whole = snap == plen and plen <= MAX_INNER[4]
                for r in routes:
                    c = r.counter
                    if r.limited:
                        if c.limit_reached:
                            continue
                        if (r.packet_limit is not None and c.packets + 1 >= r.packet_limit) or (
                                r.byte_limit is not None and c.bytes + plen >= r.byte_limit):
                            c.limit_reached = True
                            expired.append(r)
                    c.packets += 1
                    c.bytes += plen
                    c.last_packet = now
                    if not whole:
                        c.dropped += len(r.sinks)
                        continue
                    c.sent += len(r.sinks)
                    for s in r.sinks:
                        if s.n == 0:
                            pending.append(s)
                        if s.add(base + p, snap, c):
                            self._failed(s.flush())
            for s in pending:
                if s.n:
                    self._failed(s.flush())
            ring.release(off)
            for r in expired:
                self._notify(r.criteria_id)
        return did

    @staticmethod
    def _failed(owners: list[object]) -> None:
        for c in owners:
            assert isinstance(c, Counter)
            c.sent -= 1
            c.dropped += 1

    def _notify(self, criteria_id: int) -> None:
        if self._on_limit is not None:
            try:
                self._on_limit(criteria_id)
            except Exception:
                LOG.exception("on_limit hook failed")
