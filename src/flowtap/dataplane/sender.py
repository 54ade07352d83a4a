"""Send copies to a content destination in batches (I/O).

One UDP socket per distinct outer tuple (source, source port, destination, destination port,
TTL), shared by every criterion that names the same tuple. The socket is bound with
IP_TRANSPARENT / IPV6_TRANSPARENT so the outer source address can be any address the ADD asks
for, local or not; the kernel writes the outer IP and UDP headers (TTL from the ADD, TOS 0, DF
clear so it fragments copies larger than the MTU, UDP checksum 0 on IPv4) and routes the copy.

The socket is connected to the content destination when a route to it exists at opening: a
send then skips the route lookup and the address copy (a tenth of a copy's kernel cost).
Failing that it stays unconnected and every copy names its destination. A connected
UDP socket reports a hard ICMP error (port unreachable, say) as the error of its next send, and
that send sends nothing; :meth:`Sink.flush` sends such a copy again at once, so ICMP errors
from the content destination never cost a copy. Each copy is one ``iovec`` pointing into the
capture ring: the batch must be flushed before the ring block is released (zero copy).

A copy with a header in front of the packet (jmirror, see :func:`flowtap.dataplane.encap.shim`)
goes through a *framed* sink of the same socket: two ``iovec`` per copy, the criterion's header
(made once, when the criterion is installed) and the packet in the ring. Classic copies never
meet that code: their sink is the plain one.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import socket
import struct
import time

from flowtap.dataplane import ffi
from flowtap.dataplane.encap import Outer
from flowtap.errors import SendError

BATCH = 256
SNDBUF = 4 << 20
IPV6_AUTOFLOWLABEL = 70
_EAGAIN = {11, 105}  # EAGAIN, ENOBUFS: retried once after a short wait


@functools.cache
def _iovecs(n: int) -> struct.Struct:
    """``n`` iovecs (base, length)."""
    return struct.Struct(f"={2 * n}Q")


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def validate(outer: Outer) -> None:
    """Reject what no socket can send.

    Raises:
        ValueError: TTL outside 1..255, port outside 0..65535, or mixed address families.
    """
    if not 1 <= outer.ttl <= 255:
        raise ValueError("X-JTap-Cdest-TTL must be 1..255")
    if not (0 <= outer.source_port <= 65535 and 0 < outer.dest_port <= 65535):
        raise ValueError("content destination port out of range")
    if (":" in outer.source) != (":" in outer.dest):
        raise ValueError("content destination source and destination families differ")


class Sink:
    """A content destination socket and its pending batch of copies."""

    def __init__(self, outer: Outer, sock: socket.socket | None = None,
                 header_size: int = 0) -> None:
        """Open and bind the socket, or use ``sock``, one that another process opened for
        ``outer`` (a capture worker receives the appliance's). With ``header_size``, every
        copy is a header of that many bytes (queued in :attr:`headers`) then the packet.

        Raises:
            SendError: the socket cannot be created or bound.
        """
        validate(outer)
        self.outer = outer
        if sock is None:
            sock = self.open_socket(outer)
        self.sock = sock
        self.fd = self.sock.fileno()
        self.header_size = header_size
        per_copy = 2 if header_size else 1
        self._name = ctypes.create_string_buffer(ffi.sockaddr(outer.dest, outer.dest_port))
        self.iov = (ffi.IoVec * (BATCH * per_copy))()
        self.iov_view = memoryview(self.iov).cast("B")
        self.vec = (ffi.MMsgHdr * BATCH)()
        self.connected = _connected(sock)
        name, namelen = ctypes.addressof(self._name), len(self._name.raw)
        if self.connected:  # naming the peer would make the kernel look the route up again
            name, namelen = 0, 0
        for i in range(BATCH):
            hdr = self.vec[i].msg_hdr
            hdr.msg_name = name
            hdr.msg_namelen = namelen
            hdr.msg_iov = ctypes.addressof(self.iov) + i * per_copy * ffi.IOVEC_SIZE
            hdr.msg_iovlen = per_copy
        # the pending copies: the capture worker appends to these lists through bound methods
        # (three appends cost a packet less than a call), so they are cleared, never replaced
        self.addresses: list[int] = []
        self.lengths: list[int] = []
        self.owners: list[object] = []  # who queued each copy (for failure accounting)
        self.headers: list[int] = []  # framed sinks: the address of each copy's header

    @staticmethod
    def open_socket(outer: Outer) -> socket.socket:
        """The bound content destination socket for ``outer``.

        Raises:
            SendError: the socket cannot be created or bound.
        """
        family = socket.AF_INET6 if outer.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            s = sock
            s.setsockopt(ffi.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(ffi.SOL_SOCKET, ffi.SO_SNDBUFFORCE, SNDBUF)
            s.setsockopt(ffi.SOL_SOCKET, ffi.SO_RCVBUFFORCE, 4096)
            if outer.version == 6:
                s.setsockopt(socket.IPPROTO_IPV6, ffi.IPV6_TRANSPARENT, 1)
                s.setsockopt(socket.IPPROTO_IPV6, ffi.IPV6_UNICAST_HOPS, outer.ttl)
                s.setsockopt(socket.IPPROTO_IPV6, ffi.IPV6_TCLASS, 0)
                s.setsockopt(socket.IPPROTO_IPV6, ffi.IPV6_MTU_DISCOVER, ffi.IPV6_PMTUDISC_DONT)
                s.setsockopt(socket.IPPROTO_IPV6, IPV6_AUTOFLOWLABEL, 0)
            else:
                s.setsockopt(socket.IPPROTO_IP, ffi.IP_TRANSPARENT, 1)
                s.setsockopt(socket.IPPROTO_IP, ffi.IP_TTL, outer.ttl)
                s.setsockopt(socket.IPPROTO_IP, ffi.IP_TOS, 0)
                s.setsockopt(socket.IPPROTO_IP, ffi.IP_MTU_DISCOVER, ffi.IP_PMTUDISC_DONT)
                s.setsockopt(ffi.SOL_SOCKET, ffi.SO_NO_CHECK, 1)
            s.bind((outer.source, outer.source_port))
        except OSError as exc:
            sock.close()
            raise SendError(exc.errno, f"content destination socket: {exc.strerror}") from exc
        with contextlib.suppress(OSError):  # no route yet: stays unconnected (docstring)
            sock.connect((outer.dest, outer.dest_port))
        return sock

    @property
    def n(self) -> int:
        """Copies pending."""
        return len(self.addresses)

    def add(self, address: int, length: int, owner: object) -> None:
        """Queue one copy of ``length`` bytes at ``address`` (sent by :meth:`flush`)."""
        self.addresses.append(address)
        self.lengths.append(length)
        self.owners.append(owner)

    def flush(self) -> list[object]:
        """Send every pending copy, ``BATCH`` per ``sendmmsg``; returns the owners of the
        copies that could not be sent."""
        failed: list[object] = []
        total, addresses, lengths = len(self.addresses), self.addresses, self.lengths
        headers, size = self.headers, self.header_size
        for start in range(0, total, BATCH):
            n = min(BATCH, total - start)
            if size:
                iovs = [size] * (4 * n)  # header address, header size, packet address, length
                iovs[0::4] = headers[start:start + n]
                iovs[2::4] = addresses[start:start + n]
                iovs[3::4] = lengths[start:start + n]
                _iovecs(2 * n).pack_into(self.iov_view, 0, *iovs)
            else:
                iovs = [0] * (2 * n)
                iovs[0::2] = addresses[start:start + n]
                iovs[1::2] = lengths[start:start + n]
                _iovecs(n).pack_into(self.iov_view, 0, *iovs)
            self._send(n, start, failed)
        addresses.clear()
        self.lengths.clear()
        self.owners.clear()
        headers.clear()
        return failed

    def _send(self, n: int, first: int, failed: list[object]) -> None:
        """Send the ``n`` copies the iovecs describe (``owners[first:]`` queued them)."""
        done, retried, reported = 0, False, -1
        while done < n:
            sent = ffi.sendmmsg(self.fd, self._slice(done), n - done)
            if sent > 0:
                done += sent
                continue
            if self.connected and reported != done:
                reported = done  # maybe an ICMP error reported (and cleared) by this send
                continue
            if -sent in _EAGAIN and not retried:
                retried = True
                time.sleep(0.001)
                continue
            failed.append(self.owners[first + done])  # EMSGSIZE, unreachable...: dropped
            done += 1

    def _slice(self, start: int) -> ctypes.Array[ffi.MMsgHdr]:
        if start == 0:
            return self.vec
        return (ffi.MMsgHdr * (BATCH - start)).from_buffer(self.vec, start * ctypes.sizeof(
            ffi.MMsgHdr))

    def close(self) -> None:
        self.sock.close()
