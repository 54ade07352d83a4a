"""One TLS connection per X3 destination with several capture workers: copies relayed to the
worker that owns the destination.

The kernel spreads a target's flows over every worker (PACKET_FANOUT by flow hash), but the
standard's sequence numbers count per connection and a destination expects one connection
from the NE (TS 103 221-2; LI-HANDOVER.md 3.3). So each destination has one *owner* worker
(:func:`owner_of`, the same in every worker and in the appliance), which alone keeps its
:class:`~flowtap.dataplane.x3.link.X3Link`; another worker queues that destination's copies
into a :class:`RelayOutbox` and, once its ring block is done, hands them to the owner in
datagrams of at most ``MAX_DATAGRAM`` bytes on the owner's *inbox*, an ``AF_UNIX`` datagram
socket pair the pool made (every worker holds every inbox's sending end). The inbox is bounded
by its send buffer (``INBOX_BYTES``): what does not fit is dropped and counted, as a full
backlog is, and the capture never waits for it.

The DeactivateTask guarantee holds across the hop because the owner keys what it receives by
criteria ID and looks the route up when it takes a datagram: a copy relayed by a worker that
had not yet applied a removal reaches an owner that has, finds no route and is dropped (criteria
IDs are never reused). The owner drops relayed copies of a criterion it does not know for the
same reason while an ADD is applied (they are of packets received before its 200 OK).

A datagram (:func:`parts`): ``DATAGRAM`` (when the copies were queued, how many, destination
port, address length), the criteria IDs (int64 each), the packet lengths (uint16 each), the
destination's address in ASCII, then the packets back to back. Both ends are the same program;
the codec still checks the lengths (an inconsistent datagram is dropped whole).
"""

from __future__ import annotations

import array
import itertools
import socket
import struct
import zlib
from collections.abc import Callable
from typing import Final, cast

from flowtap.dataplane.memory import views
from flowtap.dataplane.x3.copies import CopyQueue, Kind, Peer
from flowtap.dataplane.x3.link import Copy, X3Link

MAX_DATAGRAM: Final = 60 << 10  # within one skb of page fragments: no high-order allocation
MAX_COPIES: Final = 1000  # per datagram: each packet is one iovec of its sendmsg (IOV_MAX 1024)
INBOX_BYTES: Final = 8 << 20  # relayed bytes waiting for one owner (its link's MAX_BACKLOG)
# time queued (ns), number of copies, destination port, address length; 16 bytes, so that the
# criteria IDs after it are 8-byte aligned
DATAGRAM: Final = struct.Struct("=qIHBx")
PER_COPY: Final = 10  # criteria ID (8), packet length (2)


def owner_of(peer: Peer, workers: int) -> int:
    """The worker that keeps the connection to ``peer`` (stable across restarts)."""
    return zlib.crc32(f"{peer[0]}|{peer[1]}".encode()) % workers if workers > 1 else 0


def inboxes(workers: int) -> list[tuple[socket.socket, socket.socket]]:
    """One (receiving end, sending end) datagram pair per worker, bounded by ``INBOX_BYTES``."""
    pairs = []
    for _ in range(workers):
        receiving, sending = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        sending.setsockopt(socket.SOL_SOCKET, 32, INBOX_BYTES)  # SO_SNDBUFFORCE
        receiving.setsockopt(socket.SOL_SOCKET, 33, INBOX_BYTES)  # SO_RCVBUFFORCE
        receiving.shutdown(socket.SHUT_WR)
        pairs.append((receiving, sending))
    return pairs


def parts(address: bytes, port: int, when_ns: int, criteria_ids: list[int],
          packets: list[bytes] | list[memoryview]) -> list[bytes | memoryview]:  # fmt: skip
    """One datagram's pieces (for ``sendmsg``) for the destination ``address`` (ASCII) and
    ``port``: header, criteria IDs, packet lengths, address, then each packet. Columns rather
    than a record per copy, so that both ends handle a datagram with a few C-level calls, not a
    ``struct`` call per copy, and the packets are copied once, by the kernel."""
    head = DATAGRAM.pack(when_ns, len(packets), port, len(address))
    lengths = array.array("H", map(len, packets))
    return [head, array.array("q", criteria_ids).tobytes(), lengths.tobytes(), address,
            *packets]  # fmt: skip


def encode(peer: Peer, when_ns: int, copies: list[tuple[int, bytes]]) -> bytes:
    """One datagram of ``copies`` ((criteria ID, packet), ...) for ``peer``."""
    return b"".join(parts(peer[0].encode("ascii"), peer[1], when_ns, [c for c, _ in copies],
                          [p for _, p in copies]))  # fmt: skip


def decode(datagram: bytes | bytearray | memoryview
           ) -> tuple[Peer, int, list[int], list[memoryview]]:  # fmt: skip
    """(destination, time queued, criteria IDs, packets) of one datagram; the packets are
    views of ``datagram`` (which they keep alive), not copies.

    Raises:
        ValueError: the datagram is shorter or longer than its header and lengths say.
    """
    view = memoryview(datagram)
    if len(view) < DATAGRAM.size:
        raise ValueError("relay datagram shorter than its header")
    when, count, port, size = DATAGRAM.unpack_from(view)
    ids_end = DATAGRAM.size + 8 * count
    lengths_end = ids_end + 2 * count
    if len(view) < lengths_end + size:
        raise ValueError("relay datagram shorter than its columns")
    criteria_ids = view[DATAGRAM.size:ids_end].cast("q").tolist()
    lengths = view[ids_end:lengths_end].cast("H").tolist()
    start = lengths_end + size
    if len(view) - start != sum(lengths):
        raise ValueError("relay datagram's packets do not add up to their lengths")
    address = bytes(view[lengths_end:start]).decode("ascii")
    ends = itertools.accumulate(lengths, initial=start)
    packets = [view[end:end + length] for end, length in zip(ends, lengths, strict=False)]
    return (address, port), when, criteria_ids, packets


class RelayOutbox(CopyQueue):
    """The copies queued for a destination another worker owns."""

    __slots__ = ("address", "inbox", "port")

    def __init__(self, peer: Peer, inbox: socket.socket) -> None:
        super().__init__()
        self.inbox = inbox  # the owner's, sending end
        self.address, self.port = peer[0].encode("ascii"), peer[1]

    def flush(self, now_ns: int) -> list[object]:
        """Hand the queued copies to the owner; the owners (counter bases) of those that did
        not fit its inbox."""
        packets = views(self.addresses, self.lengths)  # sendmsg copies them, once
        criteria_ids = [kind[0] for kind in self.kinds]
        failed: list[object] = []
        first, size = 0, 0
        for i, length in enumerate(self.lengths):
            if i > first and (size + PER_COPY + length > MAX_DATAGRAM - 64
                              or i - first >= MAX_COPIES):  # fmt: skip
                if not self._send(now_ns, criteria_ids[first:i], packets[first:i]):
                    failed += self.owners[first:i]
                first, size = i, 0
            size += PER_COPY + length
        count = len(packets)
        if count > first and not self._send(now_ns, criteria_ids[first:], packets[first:]):
            failed += self.owners[first:count]
        self.clear()
        return failed

    def _send(self, now_ns: int, criteria_ids: list[int], packets: list[memoryview]) -> bool:
        try:
            self.inbox.sendmsg(parts(self.address, self.port, now_ns, criteria_ids, packets),
                               [], socket.MSG_DONTWAIT)  # fmt: skip
        except OSError:
            return False  # the owner's inbox is full (or the owner is restarting): dropped
        return True


class RelayInbox:
    """The owner's side: relayed copies into the links it keeps."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def take(self, links: dict[Peer, X3Link | None], kind_of: Callable[[int, Peer], Kind | None],
             limit: int) -> tuple[list[int], int]:  # fmt: skip
        """Queue the copies of up to ``limit`` waiting datagrams into ``links`` (by
        destination; the caller pumps them); the criteria IDs of copies a full backlog or a
        missing TLS link dropped (one ID per copy), and how many datagrams were taken. Copies
        of a criterion ``kind_of`` does not know (removed, or not yet applied here) are
        dropped uncounted (see the module doc)."""
        failed: list[int] = []
        for took in range(limit):
            try:
                datagram = self.sock.recv(MAX_DATAGRAM, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return failed, took
            try:
                peer, when, criteria_ids, packets = decode(datagram)
            except ValueError:
                continue  # malformed (both ends are this program: cannot happen)
            if peer not in links:
                continue
            kinds = {cid: kind_of(cid, peer) for cid in set(criteria_ids)}
            copies: list[Copy] = [(cid, kind[1], kind[2], packet, when)
                      for cid, packet in zip(criteria_ids, packets, strict=True)
                      if (kind := kinds[cid]) is not None]  # fmt: skip
            link = links[peer]
            taken = 0 if link is None else link.queue_many(copies)
            failed += [cast(int, copy[0]) for copy in copies[taken:]]  # owner = criteria ID
        return failed, limit
