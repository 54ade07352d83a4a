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

A datagram: ``DATAGRAM`` (when the copies were queued, destination port, address length), the
destination's address in ASCII, then per copy ``COPY`` (criteria ID, packet length) and the
packet. Both ends are the same program; the codec is still checked (a short or inconsistent
datagram is dropped whole).
"""

from __future__ import annotations

import ctypes
import socket
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Final

from flowtap.dataplane.x3.copies import CopyQueue, Kind, Peer
from flowtap.dataplane.x3.link import X3Link

MAX_DATAGRAM: Final = 256 << 10
INBOX_BYTES: Final = 8 << 20  # relayed bytes waiting for one owner (its link's MAX_BACKLOG)
DATAGRAM: Final = struct.Struct("=qHB")  # time queued (ns), destination port, address length
COPY: Final = struct.Struct("=qH")  # criteria ID, packet length


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


def encode(peer: Peer, when_ns: int, copies: list[tuple[int, bytes]]) -> bytes:
    """One datagram of ``copies`` ((criteria ID, packet), ...) for ``peer`` (tests, tools)."""
    address = peer[0].encode("ascii")
    out = bytearray(DATAGRAM.pack(when_ns, peer[1], len(address)) + address)
    for cid, packet in copies:
        out += COPY.pack(cid, len(packet))
        out += packet
    return bytes(out)


def decode(datagram: bytes | memoryview) -> tuple[Peer, int, Iterator[tuple[int, bytes]]]:
    """(destination, time queued, the copies) of one datagram.

    Raises:
        ValueError: the datagram is too short for its header (the copies' iterator raises it
            for a copy cut short).
    """
    view = memoryview(datagram)
    if len(view) < DATAGRAM.size:
        raise ValueError("relay datagram shorter than its header")
    when, port, size = DATAGRAM.unpack_from(view)
    start = DATAGRAM.size + size
    if len(view) < start:
        raise ValueError("relay datagram shorter than its address")
    address = bytes(view[DATAGRAM.size:start]).decode("ascii")
    return (address, port), when, _copies(view, start)


def _copies(view: memoryview, pos: int) -> Iterator[tuple[int, bytes]]:
    unpack, step, end = COPY.unpack_from, COPY.size, len(view)
    while pos < end:
        if end - pos < step:
            raise ValueError("relay copy header cut short")
        cid, length = unpack(view, pos)
        pos += step
        if end - pos < length:
            raise ValueError("relay copy cut short")
        yield cid, bytes(view[pos:pos + length])
        pos += length


class RelayOutbox(CopyQueue):
    """The copies queued for a destination another worker owns."""

    __slots__ = ("header", "inbox")

    def __init__(self, peer: Peer, inbox: socket.socket) -> None:
        super().__init__()
        self.inbox = inbox  # the owner's, sending end
        self.header = (peer[1], peer[0].encode("ascii"))

    def flush(self, now_ns: int) -> list[object]:
        """Hand the queued copies to the owner; the owners (counter bases) of those that did
        not fit its inbox."""
        port, address = self.header
        head = DATAGRAM.pack(now_ns, port, len(address)) + address
        failed: list[object] = []
        out, first = bytearray(head), 0
        pack, string_at, send = COPY.pack, ctypes.string_at, self.inbox.send
        count = len(self.addresses)
        for i, (where, length, (cid, _template, _direction)) in enumerate(
                zip(self.addresses, self.lengths, self.kinds, strict=True)):
            if len(out) + COPY.size + length > MAX_DATAGRAM and i > first:
                if not _send(send, out):
                    failed += self.owners[first:i]
                out, first = bytearray(head), i
            out += pack(cid, length)
            out += string_at(where, length)
        if count > first and not _send(send, out):
            failed += self.owners[first:count]
        self.clear()
        return failed


def _send(send: Callable[[bytes | bytearray, int], int], datagram: bytearray) -> bool:
    try:
        send(datagram, socket.MSG_DONTWAIT)
    except (BlockingIOError, OSError):
        return False  # the owner's inbox is full (or the owner is restarting): dropped
    return True


class RelayInbox:
    """The owner's side: relayed copies into the links it keeps."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray(MAX_DATAGRAM + 4096)

    def take(self, links: dict[Peer, X3Link | None], kind_of: Callable[[int, Peer], Kind | None]
             ) -> tuple[list[int], bool]:  # fmt: skip
        """Queue every waiting datagram's copies into ``links`` (by destination; the caller
        pumps them); the criteria IDs of copies a full backlog or a missing TLS link dropped
        (one ID per copy), and whether anything was taken. Copies of a criterion ``kind_of``
        does not know (removed, or not yet applied here) are dropped uncounted (see the
        module doc)."""
        failed: list[int] = []
        took = False
        view = memoryview(self._buffer)
        while True:
            try:
                size = self.sock.recv_into(self._buffer, len(self._buffer), socket.MSG_DONTWAIT)
            except BlockingIOError:
                return failed, took
            took = True
            try:
                peer, when, copies = decode(view[:size])
                if peer not in links:
                    continue
                link = links[peer]
                for cid, packet in copies:
                    kind = kind_of(cid, peer)
                    if kind is None:
                        continue
                    if link is None or not link.queue(cid, kind[1], kind[2], packet, when):
                        failed.append(cid)
            except ValueError:
                continue  # a malformed datagram: the rest of it cannot be trusted
