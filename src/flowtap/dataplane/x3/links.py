"""A capture worker's X3 side: the links it keeps (one per destination it owns), the relays to
the owners of the others (:mod:`flowtap.dataplane.x3.relay`), and each X3 route's copy queues.

The packet walk queues an X3 copy exactly as a classic one, by three appends (address and
length of the packet in the ring, the route's counter base) to its destination's queue
(:class:`~flowtap.dataplane.x3.copies.CopyQueue`); when the ring block is done
(:meth:`X3Outbox.flush`, before the block goes back to the kernel) the copies go into the
link's backlog with the route's PDU template and direction, and the link sends what it can.
A link exists while a route uses its destination; the worker reports each change of its state
to the appliance (``("x3", (address, port, up))``). A copy for a destination another worker
owns goes the same way into a relay outbox instead, and the owner takes it from its inbox into
the link.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import socket
import ssl
import time
import uuid
from collections.abc import Callable

from flowtap.dataplane.control import X3Route
from flowtap.dataplane.memory import views
from flowtap.dataplane.x3.copies import Appends, CopyQueue, Kind, Peer
from flowtap.dataplane.x3.link import Copy, X3Link, client_context
from flowtap.dataplane.x3.relay import MAX_DATAGRAM, RelayInbox, RelayOutbox, owner_of
from flowtap.dataplane.x3.template import X3Template

LOG = logging.getLogger(__name__)
RELAY_ROUND = 8  # relay datagrams (up to 480 KiB) taken between two pumps of the links
StateEvent = Callable[[str, int, bool, str], None]  # address, port, up, why (when down)
DropEvent = Callable[[list[int]], None]  # criteria IDs of relayed copies dropped, one per copy


class X3Outbox(CopyQueue):
    """The copies queued for a destination this worker owns, and the link that carries them."""

    __slots__ = ("link",)

    def __init__(self, link: X3Link | None) -> None:
        super().__init__()
        self.link = link  # None: no TLS configured; every copy is dropped (and counted)

    def flush(self) -> list[object]:
        """Move the queued copies out of the ring into the link; the owners of those that did
        not fit (for the counters)."""
        link = self.link
        if link is None:
            failed = list(self.owners)
        else:
            now = time.time_ns()
            packets = views(self.addresses, self.lengths)
            copies: list[Copy] = [
                (kind[0], kind[1], kind[2], packet, now)
                for kind, packet in zip(self.kinds, packets, strict=True)]  # fmt: skip
            taken = link.queue_many(copies)
            failed = self.owners[taken:]
            link.pump()  # encrypts them straight out of the ring while the link keeps up
            link.detach(taken)  # what waits now is copied before the block is released
        self.clear()
        return failed


class X3Links:
    """The worker's X3 outboxes and links by destination, shared by every route to it: a link
    for each destination this worker owns, a relay outbox for each other one."""

    def __init__(self, on_state: StateEvent, on_dropped: DropEvent = lambda cids: None) -> None:
        self._on_state = on_state
        self._on_dropped = on_dropped
        self.context: ssl.SSLContext | None = None
        self.outboxes: dict[Peer, X3Outbox] = {}
        self.relayed: dict[Peer, RelayOutbox] = {}
        self.me = 0
        self.inbox: RelayInbox | None = None  # ours (None: a single worker owns everything)
        self._owners: list[socket.socket] = []  # every worker's inbox, sending end
        self._users: dict[Peer, int] = {}
        self._routes: dict[int, tuple[Peer, ...]] = {}  # criteria ID -> its destinations
        self._kinds: dict[int, Kind] = {}
        self._links: dict[Peer, X3Link | None] = {}  # the owned destinations' links
        self._by_fd: dict[int, X3Link] = {}  # sockets the worker polls (see wants)

    def relay(self, me: int, inbox: socket.socket, owners: list[socket.socket]) -> None:
        """Worker ``me`` of ``len(owners)``: its inbox, and every worker's (to relay to)."""
        self.me, self.inbox, self._owners = me, RelayInbox(inbox), owners

    @property
    def active(self) -> bool:
        return bool(self.outboxes or self.relayed)

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
        self._kinds[criteria_id] = kind
        return appends

    def remove(self, criteria_id: int) -> int:
        """Forget a route: its copies that did not reach the kernel are taken out, and what did
        is on the wire before this returns (:meth:`X3Link.settle`). Returns how many copies
        were taken out."""
        gone = 0
        self._kinds.pop(criteria_id, None)
        for peer in self._routes.pop(criteria_id, ()):
            outbox = self.outboxes.get(peer)  # a relayed one was flushed before the removal
            if outbox is not None and outbox.link is not None:
                gone += outbox.link.purge(criteria_id)
                outbox.link.settle()
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
        if self.relayed:
            now = time.time_ns()
            for relayed in self.relayed.values():
                if relayed.addresses:
                    failed += relayed.flush(now)
        return failed

    def pump(self) -> bool:
        """Take what other workers relayed, then one step of every link; whether one has work
        no packet will prompt.

        The inbox is taken a few datagrams at a time with the links pumped in between, for
        as long as a link's backlog has room for a round: what the destinations cannot take
        yet stays in the inbox (so inbox and backlog together absorb a slow destination), and
        what the worker finds there after being away goes out while it takes the rest, rather
        than all of it moving into a backlog at once and overflowing it while the connection
        sat idle."""
        inbox = self.inbox
        while True:
            took = 0
            if inbox is not None:
                dropped, took = inbox.take(self._links, self._kind_of, RELAY_ROUND)
                if dropped:
                    self._on_dropped(dropped)
            busy = False
            for outbox in self.outboxes.values():
                if outbox.link is not None:
                    outbox.link.pump()
                    busy = busy or outbox.link.busy
            if took < RELAY_ROUND or (self._links and all(
                    link is None or link.room < RELAY_ROUND * MAX_DATAGRAM
                    for link in self._links.values())):  # fmt: skip
                return busy

    def wants(self) -> list[tuple[int, int]]:
        """(socket, poll events) of the links that wait for their connection."""
        self._by_fd = {}
        wanted = []
        for outbox in self.outboxes.values():
            if outbox.link is not None and (want := outbox.link.wants()) is not None:
                wanted.append(want)
                self._by_fd[want[0]] = outbox.link
        return wanted

    def ready(self, fd: int, events: int) -> None:
        """The worker's poll saw ``events`` on ``fd`` (a link's socket, as :meth:`wants` said,
        or the inbox): the next :meth:`pump` reads it."""
        link = self._by_fd.get(fd)
        if link is not None and events & (select.POLLIN | select.POLLERR | select.POLLHUP):
            link.readable = True

    def exclusions(self) -> list[tuple[int, int, int]]:
        """(IP version, address, port) of every destination: its packets to us (TCP ACKs,
        keepalives) are never tapped, or a criterion matching it would feed back."""
        return [(6 if ":" in a else 4, int(ipaddress.ip_address(a)), p)
                for a, p in (*self.outboxes, *self.relayed)]  # fmt: skip

    def close(self) -> None:
        for outbox in self.outboxes.values():
            if outbox.link is not None:
                outbox.link.close()
        self.outboxes.clear()
        self.relayed.clear()
        self._links.clear()
        self._users.clear()
        self._routes.clear()
        self._kinds.clear()

    def _kind_of(self, criteria_id: int, peer: Peer) -> Kind | None:
        """The kind of a relayed copy's criterion, if it still goes to ``peer``."""
        if peer in self._routes.get(criteria_id, ()):
            return self._kinds.get(criteria_id)
        return None

    def _take(self, peer: Peer) -> X3Outbox | RelayOutbox:
        self._users[peer] = self._users.get(peer, 0) + 1
        outbox = self.outboxes.get(peer) or self.relayed.get(peer)
        if outbox is not None:
            return outbox
        owner = owner_of(peer, len(self._owners))
        if self._owners and owner != self.me:
            relayed = self.relayed[peer] = RelayOutbox(peer, self._owners[owner])
            return relayed
        link = None
        if self.context is not None:
            address, port = peer
            link = X3Link(peer, self.context,
                          lambda up, why: self._on_state(address, port, up, why))  # fmt: skip
        self._links[peer] = link
        owned = self.outboxes[peer] = X3Outbox(link)
        return owned

    def _release(self, peer: Peer) -> None:
        self._users[peer] -= 1
        if self._users[peer] <= 0:
            del self._users[peer]
            if self.relayed.pop(peer, None) is not None:
                return
            self._links.pop(peer, None)
            outbox = self.outboxes.pop(peer)
            if outbox.link is not None:
                outbox.link.close()
