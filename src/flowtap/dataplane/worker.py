"""A capture worker: one process reading its share of every capture ring, matching, sending.

The appliance starts one worker per configured core (``python -m flowtap.dataplane.worker``);
the kernel spreads each device's packets over the workers' rings by flow hash (PACKET_FANOUT),
so one flow always meets the same worker, in order. A worker holds its own match index per
capture interface (:class:`~flowtap.dataplane.index.MatchIndex`), its own copies of the content
destination sockets, and writes its counters into the shared slab (:mod:`flowtap.dataplane.slab`).
Being a process, it shares no GIL with the control plane: NETCONF, DTCP and the publisher never
wait for packet work, and packet work never waits for them.

Changes arrive as batches on the control channel (:mod:`flowtap.dataplane.control`). The
appliance first bumps this worker's *announced* batch number in the slab, then sends; the worker
compares that number with the last batch it took before every packet (one memory read), so it
takes a batch within one packet's work even in the middle of a ring block. A batch that changes
criteria then applies at a precise instant, the moment the worker took it: every packet the
kernel received before that instant (its ring timestamp) is handled by the criteria as they
were, every later one by the new ones. So the worker first handles what is queued in its rings
up to that instant (a partly filled block is handed over by the kernel within ``RETIRE_MS``),
sends every copy it has queued, applies the batch between two packets and acknowledges. The
appliance answers 200 OK only after every worker acknowledged: a DELETE's target packets that
arrived before the DELETE still get their copies (they were intercepted under the warrant),
and none that arrives after the 200 OK does; an ADD taps every packet arriving after its 200 OK.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Iterable

from flowtap.dataplane import control
from flowtap.dataplane.encap import MAX_INNER
from flowtap.dataplane.index import MatchIndex
from flowtap.dataplane.outputs import Outputs
from flowtap.dataplane.ring import CaptureInterface, Ring
from flowtap.dataplane.route import V4_PORTS, Memo, Route, commit, over, resolve
from flowtap.dataplane.slab import (
    BYTES,
    DROPPED,
    H_ANNOUNCED,
    H_APPLIED,
    LAST_NS,
    LIMITED,
    PACKETS,
    SENT,
    Slab,
    SlabSpec,
)
from flowtap.dataplane.x3.link import TICK as X3_TICK
from flowtap.gc_policy import GcPolicy

LOG = logging.getLogger(__name__)
_TIMED = frozenset({"up", "rm", "rings", "stop"})  # operations that apply at an instant
# tpacket3_hdr: tp_next_offset, tp_snaplen, tp_len, tp_net (what every packet needs) ...
_PKT = struct.Struct("=I8xII6xH")
# ... and tp_sec, tp_nsec (kernel receive time, CLOCK_REALTIME): only while a batch waits
_TS = struct.Struct("=4xII")
_MAX_INNER4 = MAX_INNER[4]


class Worker:
    def __init__(self, me: int, ctl: socket.socket, events: socket.socket) -> None:
        self.me = me
        self.ctl = ctl
        self.events = events
        self.slab: Slab | None = None
        self.rings: tuple[Ring, ...] = ()
        self.inet6 = False
        self.indexes: dict[str, MatchIndex[Route]] = {}
        self.matches: dict[int, control.Upsert] = {}
        self.routes: dict[int, Route] = {}
        # per interface: the packet walk's memo (route.resolve); every batch empties it
        self.memos: dict[str, Memo] = {}
        self.out = Outputs(self._x3_state, self._x3_dropped)  # destination sockets, X3 links
        self.sinks = self.out.sinks
        self.x3 = self.out.x3
        self.retired: list[Ring] = []
        self.pending: tuple[int, list[control.Op], int] | None = None  # batch, ops, since (ns)
        self.applied = 0
        self.stopping = False
        # a worker's index is the whole table again: without freezing it, a full collection
        # of 15,000 criteria held a worker, so every ADD's acknowledgement, 110-120 ms
        self.collector = GcPolicy()

    # ---- control ----------------------------------------------------------------------

    def announced(self) -> int:
        assert self.slab is not None
        return self.slab.words[self.slab.header(self.me) + H_ANNOUNCED]

    def take_batch(self) -> None:
        """Receive the next batch whole. A batch that changes criteria, replaces rings or
        stops the worker waits (see :meth:`due`), so that what the rings hold from before it
        is handled first; any other applies at once."""
        batch, ops = control.receive_batch(self.ctl)
        self.pending = (batch, ops, time.time_ns())
        if not self.rings or not any(op[0] in _TIMED for op in ops):
            self.apply_pending()

    def due(self) -> bool:
        """Whether the pending batch may apply now though no newer packet came: every packet
        received before it has been handled (no ring holds a ready block or a partly filled
        one; the kernel hands a partly filled block over within ``RETIRE_MS``)."""
        return all(ring.ready() < 0 and ring.filling() == 0 for ring in self.rings)

    def apply_pending(self) -> None:
        """Send queued copies, apply the pending batch, acknowledge it."""
        assert self.pending is not None
        batch, ops, _since = self.pending
        self.pending = None
        self._flush_all()
        self.memos = {}
        sinks_changed = False
        for op in ops:
            kind = op[0]
            if kind == "up":
                self._upsert(op[1])
            elif kind == "rm":
                self._remove(op[1])
            elif kind == "sink":
                self.out.add_sink(op[1], op[2])
                sinks_changed = True
            elif kind == "unsink":
                self.out.remove_sink(op[1])
                sinks_changed = True
            elif kind == "rings":
                self._rings(op[1], op[2])
                sinks_changed = True
            elif kind == "slab":
                self._slab(op[1], op[2])
            elif kind == "x3tls":
                self.x3.configure(op[1])
            elif kind == "stop":
                self.stopping = True
        if sinks_changed:
            self._exclusions()
        self.applied = batch
        if self.slab is not None:
            self.slab.words[self.slab.header(self.me) + H_APPLIED] = batch
        control.send(self.ctl, ("ack", batch))
        self.collector.tick()  # what the batch installed is long-lived: freeze it (O(1))

    def _upsert(self, up: control.Upsert) -> None:
        route, new_destination = self.out.route(up)
        if new_destination:
            self._exclusions()
        before = self.matches.get(up.criteria_id)
        if self.slab is not None:
            if up.fresh:
                self.slab.zero(self.me, up.slot)
            elif before is not None and (before.packet_limit, before.byte_limit) != (
                    up.packet_limit, up.byte_limit):
                self.slab.clear_limited(self.me, up.slot)
            route.place(self.slab, self.me)
        self.matches[up.criteria_id] = up
        self.routes[up.criteria_id] = route
        for index in self.indexes.values():
            index.add(up.criteria_id, up.match, route)

    def _remove(self, criteria_id: int) -> None:
        if self.matches.pop(criteria_id, None) is None:
            return
        route = self.routes.pop(criteria_id)
        if criteria_id in self.x3:
            self._failed([route.base] * self.x3.remove(criteria_id))
        if self.slab is not None:
            # the slot is freed once every worker let go of it: a criterion taking it next must
            # not see this one's counts in our region (its limit reads every region)
            self.slab.zero(self.me, route.slot)
        for index in self.indexes.values():
            index.remove(criteria_id)

    def _rings(self, rings: Iterable[tuple[int, str, int]], inet6: bool) -> None:
        """Read these rings from now on: one this worker reads already (same id) goes on where
        it is; the others are closed once the block in hand is done. The indexes are filed
        afresh (a change of capture interfaces is a configuration commit, not an ADD)."""
        have = {r.ring_id: r for r in self.rings}
        kept: list[Ring] = []
        for ring_id, name, fd in rings:
            if ring_id in have:
                os.close(fd)
                kept.append(have.pop(ring_id))
            else:
                ring = Ring.adopt(CaptureInterface(name, ""), fd)
                ring.ring_id = ring_id
                kept.append(ring)
        self.retired.extend(have.values())
        self.rings = tuple(kept)
        if inet6 == self.inet6 and set(self.indexes) == {r.iface.name for r in kept}:
            return
        self.inet6 = inet6
        self.indexes = {}
        for ring in self.rings:
            index: MatchIndex[Route] = MatchIndex(ring.iface.name, inet6=inet6)
            for cid, up in self.matches.items():
                index.add(cid, up.match, self.routes[cid])
            self.indexes[ring.iface.name] = index

    def _slab(self, spec: SlabSpec, fd: int) -> None:
        new = Slab(spec, fd)
        old, self.slab = self.slab, new
        if old is not None:
            new.copy_region(self.me, old)
            old.close()
        for route in self.routes.values():
            route.place(new, self.me)

    def _exclusions(self) -> None:
        """Our own copies (and ICMP errors about them) are never tapped."""
        excluded, error_sinks, tcp = self.out.exclusions()
        for index in self.indexes.values():
            index.set_exclusions(excluded, error_sinks, tcp)

    # ---- packets ----------------------------------------------------------------------

    def run(self) -> None:
        control.send(self.ctl, ("ready", os.getpid()))
        while not self.stopping:
            for ring in self.retired:
                ring.close()
            self.retired = []
            poller = select.poll()
            poller.register(self.ctl.fileno(), select.POLLIN)
            if self.x3.inbox is not None:  # copies other workers relay to our X3 links
                poller.register(self.x3.inbox.sock.fileno(), select.POLLIN)
            rings = self.rings
            for r in rings:
                poller.register(r.fd, select.POLLIN | select.POLLERR)
            watched: set[int] = set()  # X3 connections' sockets, while they have work
            while not self.stopping and rings is self.rings:
                busy = False
                for ring in rings:
                    busy = self._drain(ring) or busy
                if (self.pending is None and self.slab is not None
                        and self.announced() != self.applied):
                    self.take_batch()
                    continue
                if self.pending is not None and not busy:
                    if self.due():
                        self.apply_pending()
                    else:  # a block is being filled: it is handed over within RETIRE_MS
                        poller.poll(1)
                    continue
                # links progress (handshakes, keepalives, a backlog) with or without packets
                x3_busy = self.x3.pump() if self.x3.outboxes else False
                if self.x3.outboxes or watched:
                    watched = self._watch_links(poller, watched)
                if not busy:
                    for fd, events in poller.poll(int(X3_TICK * 1000) if x3_busy else 200):
                        if fd == self.ctl.fileno():
                            self.take_batch()
                            break
                        self.x3.ready(fd, events)  # an X3 connection, or the relay inbox
                        self.x3.pump()

    def _watch_links(self, poller: select.poll, watched: set[int]) -> set[int]:
        """Wake for X3 connections that can take or give something (a destination's kernel
        buffer draining must not wait for the next ring block or a tick)."""
        wanted = dict(self.x3.wants())
        for fd in watched - wanted.keys():
            poller.unregister(fd)
        for fd, events in wanted.items():
            poller.register(fd, events)
        return set(wanted)

    def _flush_all(self) -> None:
        """Send every queued copy (a block's copies go out together, before it is released:
        they point into it)."""
        self._failed(self.out.flush())

    def _drain(self, ring: Ring) -> bool:
        """Process every block user space owns; True if there was any.

        The per-packet path is written for the interpreter (a copy costs the kernel 2.5-3 us
        of the worker's CPU, and the walk around it cost as much again): locals instead of
        attributes, one memory read to see whether a control batch waits (:meth:`_between`
        does the rest), a memo of the whole answer keyed by the packet's first header words
        (:func:`~flowtap.dataplane.route.resolve`), so a packet of a known flow costs two
        unpacks and a dict get, and copies queued by three list appends, sent once the block
        is done (:meth:`_flush_all`)."""
        slab = self.slab
        if slab is None:  # nothing can match before the counters exist (first batch)
            return self._skip(ring)
        unpack, fast, mm, base = _PKT.unpack_from, V4_PORTS.unpack_from, ring.map, ring.base
        least = V4_PORTS.size
        touched: list[Route] = []  # routes holding counts (see route.commit)
        name, did = ring.iface.name, False
        words, announced = slab.words, slab.header(self.me) + H_ANNOUNCED
        applied, table, memo = self.applied, self.indexes.get(name), self._memo(name)
        for _ in range(ring.block_count):
            if (off := ring.ready()) < 0:
                break
            did = True
            n, pos = ring.block(off)
            now = time.monotonic_ns()
            expired: list[Route] = []
            for _ in range(n):
                nxt, snap, plen, net = unpack(mm, pos)
                if words[announced] != applied:  # a batch was announced or waits: rare
                    commit(touched, words, now)
                    self._between(mm, pos)
                    if self.applied != applied:
                        applied, table, memo = self.applied, self.indexes.get(name), self._memo(
                            name)
                        slab = self.slab
                        assert slab is not None
                        words, announced = slab.words, slab.header(self.me) + H_ANNOUNCED
                p = pos + net
                pos += nxt
                if snap >= least:
                    key = fast(mm, p)
                    routes = memo.get(key)
                    if routes is None:
                        routes = resolve(table, memo, key, mm, p, snap)
                else:
                    routes = resolve(table, None, None, mm, p, snap)
                if not routes:
                    continue
                whole = snap == plen and plen <= _MAX_INNER4
                for r in routes:
                    b = r.base
                    if r.limited:
                        if words[b + LIMITED] or over(r, words, plen, expired):
                            continue
                        words[b + PACKETS] += 1
                        words[b + BYTES] += plen
                        words[b + LAST_NS] = now
                        if whole:
                            words[b + SENT] += r.fanout
                    else:
                        if not r.held:
                            touched.append(r)
                        r.held += 1
                        r.held_bytes += plen
                        if whole:
                            r.held_sent += r.fanout
                    if not whole:
                        words[b + DROPPED] += r.fanout
                        continue
                    for put_address, put_length, put_owner in r.appends:
                        put_address(base + p)
                        put_length(snap)
                        put_owner(b)
            commit(touched, words, now)
            self._flush_all()
            ring.release(off)
            for r in expired:
                control_event(self.events, r.criteria_id)
            if ring in self.retired:
                break
        return did

    def _between(self, mm: mmap.mmap, pos: int) -> None:
        """Between two packets, while a batch is announced or waits for its instant: take it,
        and apply it if this packet (header at ``pos``) was received at or after that instant
        (see the module docstring)."""
        if self.pending is None:
            self.take_batch()
        if self.pending is not None:
            sec, nsec = _TS.unpack_from(mm, pos)
            if sec * 1_000_000_000 + nsec >= self.pending[2]:
                self.apply_pending()

    def _memo(self, name: str) -> Memo:
        memo = self.memos.get(name)
        if memo is None:
            memo = self.memos[name] = {}
        return memo

    def _skip(self, ring: Ring) -> bool:
        """Release every ready block unread (no slab yet: no criterion can count or copy)."""
        did = False
        for _ in range(ring.block_count):
            if (off := ring.ready()) < 0:
                break
            ring.release(off)
            did = True
        return did

    def _x3_state(self, address: str, port: int, up: bool, why: str) -> None:
        with contextlib.suppress(OSError):  # the appliance is going away
            control.send(self.events, ("x3", (address, port, up, why)))

    def _x3_dropped(self, criteria_ids: list[int]) -> None:
        """Relayed copies this worker's links could not take: counted as dropped here (the
        relaying worker counted them sent)."""
        routes = self.routes
        self._failed([routes[c].base for c in criteria_ids if c in routes])

    def _failed(self, owners: list[object]) -> None:
        if self.slab is None:
            return
        words = self.slab.words
        for b in owners:
            assert isinstance(b, int)
            words[b + SENT] -= 1
            words[b + DROPPED] += 1


def control_event(events: socket.socket, criteria_id: int) -> None:
    with contextlib.suppress(OSError):  # the appliance is going away
        control.send(events, ("limit", criteria_id))


def main(argv: list[str]) -> int:
    """``python -m flowtap.dataplane.worker CTL_FD EVENTS_FD INDEX [CPU|-] [INBOXES]``;
    ``INBOXES``: this worker's X3 relay inbox, then every worker's sending end, comma-separated
    (:mod:`flowtap.dataplane.x3.relay`)."""
    ctl_fd, events_fd, me = int(argv[0]), int(argv[1]), int(argv[2])
    if len(argv) > 3 and argv[3] != "-":
        os.sched_setaffinity(0, {int(argv[3])})
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="flowtap-worker[%(process)d] %(levelname)s %(message)s")
    ctl = socket.socket(fileno=ctl_fd)
    events = socket.socket(fileno=events_fd)
    worker = Worker(me, ctl, events)
    if len(argv) > 4:
        inbox, *owners = (socket.socket(fileno=int(fd)) for fd in argv[4].split(","))
        worker.x3.relay(me, inbox, owners)
    try:
        worker.run()
    except EOFError:
        return 0  # the appliance is gone: nothing to tap for
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
