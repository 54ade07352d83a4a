"""Linux constants and the few libc calls the stdlib lacks: ``sendmmsg``, ``setns``, socket filters.

Everything here is a thin, typed ctypes wrapper; the policy lives in the callers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

# <linux/if_ether.h>, <linux/if_packet.h>
ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
PACKET_HOST = 0
PACKET_OTHERHOST = 3
PACKET_OUTGOING = 4

# <asm-generic/socket.h>, <linux/in.h>, <linux/in6.h>
SOL_SOCKET = 1
SO_NO_CHECK = 11
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
SO_ATTACH_BPF = 50
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
IP_TOS = 1
IP_TTL = 2
IP_MTU_DISCOVER = 10
IP_PMTUDISC_DONT = 0
IP_TRANSPARENT = 19
IPV6_UNICAST_HOPS = 16
IPV6_MTU_DISCOVER = 23
IPV6_PMTUDISC_DONT = 0
IPV6_TCLASS = 67
IPV6_TRANSPARENT = 75
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int
_bind = _libc.bind
_bind.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_bind.restype = ctypes.c_int
_setns = _libc.setns
_setns.argtypes = [ctypes.c_int, ctypes.c_int]
_setns.restype = ctypes.c_int


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]


class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.c_void_p),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


IOVEC_SIZE = ctypes.sizeof(IoVec)


def attach_filter(sock: socket.socket, program: Sequence[tuple[int, int, int, int]]) -> None:
    """Attach (atomically replace) a classic BPF program on ``sock``.

    Raises:
        OSError: the kernel refused the program (too long, invalid jump).
    """
    insns = (SockFilter * len(program))(*(SockFilter(*i) for i in program))
    fprog = SockFprog(len(program), ctypes.cast(insns, ctypes.POINTER(SockFilter)))
    sock.setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))  # copied by the kernel


def bind_packet(sock: socket.socket, ifindex: int, protocol: int) -> None:
    """``bind()`` an AF_PACKET socket by interface index (0: every device), which Python's
    address tuple cannot express.

    Raises:
        OSError: the kernel refused (no such device).
    """
    sll = struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(protocol), ifindex, 0, 0, 0,
                      b"")
    if _bind(sock.fileno(), sll, len(sll)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def sendmmsg(fd: int, vec: ctypes.Array[MMsgHdr], count: int) -> int:
    """Send ``count`` prepared messages; returns how many went out, or -errno (GIL released)."""
    n: int = _sendmmsg(fd, ctypes.addressof(vec), count, 0)
    return n if n >= 0 else -ctypes.get_errno()


def buffer_address(buf: object) -> int:
    """Address of a writable buffer (mmap, bytearray); keep ``buf`` alive while it is used."""
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))  # type: ignore[arg-type]


def sockaddr(address: str, port: int) -> bytes:
    """A raw ``sockaddr_in``/``sockaddr_in6`` for ``msg_name``."""
    if ":" in address:
        return struct.pack(
            "=HHI16sI", socket.AF_INET6, socket.htons(port), 0,
            socket.inet_pton(socket.AF_INET6, address), 0,
        )
    return struct.pack(
        "=HH4s8x", socket.AF_INET, socket.htons(port), socket.inet_pton(socket.AF_INET, address)
    )


@contextmanager
def netns(name: str | None) -> Iterator[None]:
    """Run the calling *thread* in network namespace ``name`` (None: stay where it is).

    Sockets created inside keep their namespace after the block ends, so one process can hold
    sockets in several namespaces (tests, bench).
    """
    if name is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            if _setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns({name})")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _setns(own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns(back)")
    finally:
        os.close(own)
