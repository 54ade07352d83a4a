"""A capture worker's X3 side: its links (one per destination) and each X3 route's copy queues.

The packet walk queues an X3 copy exactly as a classic one, by three appends (address and
length of the packet in the ring, the route's counter base) to an :class:`X3Copies`; when the
ring block is done (:meth:`X3Copies.flush`, before the block goes back to the kernel) each copy
is taken out of the ring into its link's backlog with the route's PDU template and direction,
and the link sends what it can. A link exists while a route uses its destination; the worker
reports each change of its state to the appliance (``("x3", (address, port, up))``).
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import ssl
import time
import uuid
from collections.abc import Callable

from flowtap.dataplane.control import X3Route
from flowtap.dataplane.x3.link import X3Link, client_context
from flowtap.dataplane.x3.template import X3Template

LOG = logging.getLogger(__name__)
Peer = tuple[str, int]
StateEvent = Callable[[str, int, bool, str], None]  # address, port, up, why (when down)
Kind = tuple[int, X3Template, int]  # criteria ID, PDU template, direction
Appends = tuple[Callable[[int], None], Callable[[int], None], Callable[[object], None]]


class X3Outbox:
    """The copies the packet walk queued for one destination during a ring block, and the link
    that carries them. Every X3 route to the destination appends to the same lists, each copy
    with its route's kind (criteria ID, template, direction), so a block costs one flush per
    destination, not one per route."""

    __slots__ = ("addresses", "kinds", "lengths", "link", "owners")

    def __init__(self, link: X3Link | None) -> None:
        self.link = link  # None: no TLS configured; every copy is dropped (and counted)
        self.addresses: list[int] = []
        self.lengths: list[int] = []
        self.owners: list[object] = []
        self.kinds: list[Kind] = []

    def appends(self, kind: Kind) -> Appends:
        """The packet walk's three appends for a route of ``kind``."""
        put_owner, put_kind = self.owners.append, self.kinds.append

        def owner_and_kind(owner: object) -> None:
            put_owner(owner)
            put_kind(kind)

        return self.addresses.append, self.lengths.append, owner_and_kind

    def flush(self) -> list[object]:
        """Move the queued copies out of the ring into the link; the owners of those that did
        not fit (for the counters)."""
        link = self.link
        if link is None:
            failed = list(self.owners)
        else:
            failed = []
            now = time.time_ns()
            string_at, queue = ctypes.string_at, link.queue
            for address, length, owner, (cid, template, direction) in zip(
                    self.addresses, self.lengths, self.owners, self.kinds, strict=True):
                if not queue(cid, template, direction, string_at(address, length), now):
                    failed.append(owner)
            link.pump()
        self.addresses.clear()
        self.lengths.clear()
        self.owners.clear()
        self.kinds.clear()
        return failed


class X3Links:
    """The worker's X3 outboxes and links by destination, shared by every route to it."""

    def __init__(self, on_state: StateEvent) -> None:
        self._on_state = on_state
        self.context: ssl.SSLContext | None = None
        self.outboxes: dict[Peer, X3Outbox] = {}
        self._users: dict[Peer, int] = {}
        self._routes: dict[int, tuple[Peer, ...]] = {}  # criteria ID -> its destinations

    def configure(self, files: tuple[str, str, str] | None) -> None:
        """New TLS files (certificate, key, CAs), used from each link's next connection."""
        if files is None:
            self.context = None
            return
        try:
            self.context = client_context(*files)
        except (OSError, ssl.SSLError, ValueError) as exc:
            # the appliance read the same files at commit; one changed since
            LOG.error("X3 TLS files unusable (%s): X3 destinations cannot be reached", exc)
            self.context = None
            return
        for outbox in self.outboxes.values():
            if outbox.link is not None:
                outbox.link.context = self.context

    def install(self, criteria_id: int, route: X3Route) -> tuple[Appends, ...]:
        """The packet walk's appends for a new or replaced X3 route (the worker flushed every
        queued copy before it applies a change)."""
        template = X3Template(uuid.UUID(bytes=route.xid), route.correlation)
        kind = (criteria_id, template, route.direction)
        appends = tuple(self._take(peer).appends(kind) for peer in route.peers)
        for peer in self._routes.pop(criteria_id, ()):
            self._release(peer)
        self._routes[criteria_id] = route.peers
        return appends

    def remove(self, criteria_id: int) -> int:
        """Forget a route: its copies that did not reach the kernel are taken out, and what did
        is on the wire before this returns (:meth:`X3Link.settle`). Returns how many copies
        were taken out."""
        gone = 0
        for peer in self._routes.pop(criteria_id, ()):
            link = self.outboxes[peer].link
            if link is not None:
                gone += link.purge(criteria_id)
                link.settle()
            self._release(peer)
        return gone

    def __contains__(self, criteria_id: int) -> bool:
        return criteria_id in self._routes

    def flush(self) -> list[object]:
        """Every outbox's queued copies into its link; the owners of dropped ones."""
        failed: list[object] = []
        for outbox in self.outboxes.values():
            if outbox.addresses:
                failed += outbox.flush()
        return failed

    def pump(self) -> bool:
        """One step of every link; whether one has work no packet will prompt."""
        busy = False
        for outbox in self.outboxes.values():
            if outbox.link is not None:
                outbox.link.pump()
                busy = busy or outbox.link.busy
        return busy

    def exclusions(self) -> list[tuple[int, int, int]]:
        """(IP version, address, port) of every destination: its packets to us (TCP ACKs,
        keepalives) are never tapped, or a criterion matching it would feed back."""
        return [(6 if ":" in a else 4, int(ipaddress.ip_address(a)), p)
                for a, p in self.outboxes]  # fmt: skip

    def close(self) -> None:
        for outbox in self.outboxes.values():
            if outbox.link is not None:
                outbox.link.close()
        self.outboxes.clear()
        self._users.clear()
        self._routes.clear()

    def _take(self, peer: Peer) -> X3Outbox:
        outbox = self.outboxes.get(peer)
        if outbox is None:
            link = None
            if self.context is not None:
                address, port = peer
                link = X3Link(peer, self.context,
                              lambda up, why: self._on_state(address, port, up, why))  # fmt: skip
            outbox = self.outboxes[peer] = X3Outbox(link)
        self._users[peer] = self._users.get(peer, 0) + 1
        return outbox

    def _release(self, peer: Peer) -> None:
        self._users[peer] -= 1
        if self._users[peer] <= 0:
            del self._users[peer]
            outbox = self.outboxes.pop(peer)
            if outbox.link is not None:
                outbox.link.close()
