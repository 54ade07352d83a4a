"""What a match means inside a capture worker, and the memo of the worker's packet walk.

A :class:`Route` is one criterion as a worker holds it: where its counters sit in the slab
(:mod:`flowtap.dataplane.slab`), the content destination sinks its copies go to, its limits.
:func:`resolve` answers which routes a packet has, and remembers the answer where the packet's
first header words alone decide it, so that the next packet of the flow costs one dict get.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from collections.abc import Callable
from typing import TypeAlias

from flowtap.dataplane import control
from flowtap.dataplane.index import MatchIndex
from flowtap.dataplane.match import CACHE_LIMIT
from flowtap.dataplane.packet import PORT_PROTOCOLS, parse
from flowtap.dataplane.sender import Sink
from flowtap.dataplane.slab import BYTES, LAST_NS, LIMITED, PACKETS, SENT, Slab

# an IPv4 header without options and 4 bytes after it, as few objects as the memo key needs
# (see resolve): version/IHL, TOS and total length; fragment field; protocol; source and
# destination; source and destination ports
V4_PORTS = struct.Struct("!I2xHxB2xQI")
# what the packet walk calls per copy: the packet's address, its length, the route's owner token
Appends = tuple[Callable[[int], None], Callable[[int], None], Callable[[object], None]]


class Route:
    """What an index hit means in this worker: a criterion's counters, sinks and limits."""

    __slots__ = ("appends", "base", "byte_limit", "criteria_id", "fanout", "header", "held",
                 "held_bytes", "held_sent", "limited", "outers", "packet_limit", "peers", "sinks",
                 "slot")

    def __init__(self, up: control.Upsert, sinks: tuple[Sink, ...],
                 appends: tuple[Appends, ...] | None = None) -> None:
        """``sinks``: plain ones for a criterion without header (``up.shim``), framed ones of
        that header's size otherwise; or, for X3 (``up.x3``), no sinks but the appends of its
        destinations' outboxes (:meth:`flowtap.dataplane.x3.links.X3Links.install`)."""
        self.criteria_id = up.criteria_id
        self.slot = up.slot
        self.outers = up.outers
        self.sinks = sinks
        # the criterion's header, made once: every copy's first iovec points at it (the
        # buffer lives as long as the route; a route goes only after its copies were sent)
        self.header = ctypes.create_string_buffer(up.shim, len(up.shim)) if up.shim else None
        # each sink's pending-copy lists' appends, bound once: the packet walk calls them
        if appends is not None:
            self.appends = appends
        elif self.header is None:
            self.appends = tuple((s.addresses.append, s.lengths.append, s.owners.append)
                                 for s in sinks)
        else:
            address = ctypes.addressof(self.header)
            self.appends = tuple((s.addresses.append, s.lengths.append, _owner_and_header(
                s, address)) for s in sinks)
        self.fanout = len(self.appends)
        self.packet_limit = up.packet_limit
        self.byte_limit = up.byte_limit
        self.limited = up.packet_limit is not None or up.byte_limit is not None
        self.base = 0
        self.peers: tuple[int, ...] = ()
        # what the packet walk counted for a criterion without limits and not yet added to
        # the slab (see commit): a Python int costs a packet less than a slab word
        self.held = self.held_bytes = self.held_sent = 0

    def place(self, slab: Slab, me: int) -> None:
        """Where this worker's record (and the other regions', for limits) of the slot is."""
        self.base = slab.record(me, self.slot)
        self.peers = tuple(slab.record(w, self.slot) for w in range(slab.spec.regions)
                           if w != me)


def _owner_and_header(sink: Sink, address: int) -> Callable[[object], None]:
    """The packet walk's third append for a framed sink: the owner, and the header with it."""
    put_owner, put_header = sink.owners.append, sink.headers.append

    def put(owner: object) -> None:
        put_owner(owner)
        put_header(address)

    return put


Memo: TypeAlias = dict[tuple[int, ...], tuple[Route, ...]]


def commit(touched: list[Route], words: memoryview, now: int) -> None:
    """Add what the routes in ``touched`` hold to their slab records, and empty ``touched``.
    The packet walk commits at the end of every block and before any control batch is taken
    (a batch may zero, clear or move records), so the slab lags by a block at most; a route
    with limits is never held (its limit reads the slab at every packet)."""
    for r in touched:
        b = r.base
        words[b + PACKETS] += r.held
        words[b + BYTES] += r.held_bytes
        words[b + SENT] += r.held_sent
        words[b + LAST_NS] = now
        r.held = r.held_bytes = r.held_sent = 0
    touched.clear()


def resolve(table: MatchIndex[Route] | None, memo: Memo | None, key: tuple[int, ...] | None,
            mm: mmap.mmap, p: int, snap: int) -> tuple[Route, ...]:
    """The routes of the packet at ``mm[p:p+snap]``; remembered under ``key`` (its words as
    :data:`V4_PORTS` unpacks them) when those words alone decide the answer: IPv4 without
    options, not a later fragment, a protocol with ports (the answer is then a function of
    the addresses, protocol and ports; the total length is in the key only to check it)."""
    parsed = parse(mm, p, snap)
    if parsed is None or table is None:
        return ()
    routes = table.lookup(parsed[0], parsed[1])
    if memo is not None and key is not None and key[0] >> 24 == 0x45 and parsed[0] == 4 and (
            key[2] in PORT_PROTOCOLS):
        if len(memo) >= CACHE_LIMIT:
            memo.clear()
        memo[key] = routes
    return routes


def over(r: Route, words: memoryview, plen: int, expired: list[Route]) -> bool:
        """Whether the limit stops this packet's copy (already reached, by any worker); marks
        the packet that reaches it (copied, then the criterion is reported)."""
        b = r.base
        packets = words[b + PACKETS] + sum(words[x + PACKETS] for x in r.peers)
        octets = words[b + BYTES] + sum(words[x + BYTES] for x in r.peers)
        pl, bl = r.packet_limit, r.byte_limit
        if (pl is not None and packets >= pl) or (bl is not None and octets >= bl):
            words[b + LIMITED] = 1
            return True
        if (pl is not None and packets + 1 >= pl) or (bl is not None and octets + plen >= bl):
            words[b + LIMITED] = 1
            expired.append(r)
        return False
