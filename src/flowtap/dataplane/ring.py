"""AF_PACKET TPACKET_V3 receive ring on one interface (I/O).

Opening order (DATAPLANE.md §3): socket with protocol 0 (receives nothing), drop-all filter,
TPACKET_V3, PACKET_IGNORE_OUTGOING, ring + mmap, then bind to the device with protocol 0
(checks the device, still receives nothing). The engine attaches the real filter, then hooks
the socket in with ETH_P_ALL (:meth:`Ring.hook`); there is never an unfiltered window. SOCK_DGRAM
makes the filter and the ring see the packet from its network header on any link type.
"""

from __future__ import annotations

import contextlib
import mmap
import socket
import struct
from dataclasses import dataclass

from flowtap.dataplane import ffi
from flowtap.dataplane.bpf import Filter, drop_all
from flowtap.errors import CaptureError

BLOCK_SIZE = 1 << 18  # 256 KiB
BLOCK_COUNT = 64  # 16 MiB per interface
RETIRE_MS = 1  # a partly filled block is handed over after at most this long (first-copy latency)
PARK_PROTOCOL = 0x88B5  # IEEE local experimental EtherType: ptype bucket 5, not 0/13/6

_BLOCK_HDR = struct.Struct("=II")  # num_pkts, offset_to_first_pkt (at offset 12)
_STATUS = struct.Struct("=I")  # block_status (at offset 8)
_NUM_PKTS = struct.Struct("=I")  # num_pkts (at offset 12)
_STATS = struct.Struct("=III")  # tp_packets, tp_drops, tp_freeze_q_cnt


@dataclass(frozen=True, slots=True)
class CaptureInterface:
    """A Junos-style IFL name and the Linux device it maps to (``host-device``)."""

    name: str
    device: str


class Ring:
    """One TPACKET_V3 ring bound to one device, ingress only.

    The appliance opens, filters and hooks it (``Ring(iface)``, ``mapped=False``); the capture
    worker that reads it maps the same socket, received as a file descriptor
    (:meth:`adopt`).
    """

    def __init__(self, iface: CaptureInterface, *, block_size: int = BLOCK_SIZE,
                 block_count: int = BLOCK_COUNT, mapped: bool = True) -> None:
        """Open and bind; the drop-all filter is attached first.

        Raises:
            CaptureError: the device does not exist or the socket cannot be set up.
        """
        self.iface = iface
        self.block_size = block_size
        self.block_count = block_count
        self.next_block = 0
        self.packets = 0
        self.drops = 0
        self.hooked = False
        self.ring_id = 0
        try:
            self.ifindex = socket.if_nametoindex(iface.device)
        except OSError as exc:
            raise CaptureError(iface.name, f"device {iface.device!r} not found") from exc
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        try:
            self.attach(drop_all())
            self.sock.setsockopt(ffi.SOL_PACKET, ffi.PACKET_VERSION, ffi.TPACKET_V3)
            self.sock.setsockopt(ffi.SOL_PACKET, ffi.PACKET_IGNORE_OUTGOING, 1)
            req = struct.pack("=7I", block_size, block_count, block_size, block_count,
                              RETIRE_MS, 0, 0)
            self.sock.setsockopt(ffi.SOL_PACKET, ffi.PACKET_RX_RING, req)
            if mapped:
                self._map()
            self.sock.bind((iface.device, 0))  # checks the device; no hook yet (see hook())
        except OSError as exc:
            self.sock.close()
            raise CaptureError(iface.name, str(exc.strerror or exc)) from exc
        self.fd = self.sock.fileno()

    @classmethod
    def adopt(cls, iface: CaptureInterface, fd: int, *, block_size: int = BLOCK_SIZE,
              block_count: int = BLOCK_COUNT) -> Ring:
        """Map the ring of a socket another process set up (the capture worker's side); the
        ring takes ownership of ``fd``."""
        ring = cls.__new__(cls)
        ring.iface = iface
        ring.block_size = block_size
        ring.block_count = block_count
        ring.next_block = 0
        ring.packets = ring.drops = 0
        ring.hooked = True
        ring.ring_id = 0
        ring.ifindex = 0
        ring.sock = socket.socket(fileno=fd)
        ring.fd = fd
        ring._map()
        return ring

    def _map(self) -> None:
        self.map = mmap.mmap(self.sock.fileno(), self.block_size * self.block_count,
                             mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.base = ffi.buffer_address(self.map)

    def attach_ebpf(self, program_fd: int) -> None:
        """Replace the socket filter by an eBPF socket-filter program (atomic in the kernel)."""
        self.sock.setsockopt(ffi.SOL_SOCKET, ffi.SO_ATTACH_BPF, program_fd)

    def join_fanout(self, group: int, unique: bool) -> int:
        """Join (or with ``unique``, create with a kernel-chosen id) the flow-hash fanout group
        that spreads this device's packets over the workers' rings; returns the group id.

        Raises:
            CaptureError: the kernel refused.
        """
        mode = ffi.PACKET_FANOUT_HASH | (ffi.PACKET_FANOUT_FLAG_UNIQUEID if unique else 0)
        try:
            self.sock.setsockopt(ffi.SOL_PACKET, ffi.PACKET_FANOUT, (mode << 16) | group)
            raw = self.sock.getsockopt(ffi.SOL_PACKET, ffi.PACKET_FANOUT)
        except OSError as exc:
            raise CaptureError(self.iface.name, f"fanout: {exc.strerror or exc}") from exc
        return int(raw) & 0xFFFF

    def attach(self, program: Filter) -> None:
        """Replace the socket filter (atomic in the kernel)."""
        ffi.attach_filter(self.sock, program.insns)

    def hook(self, on: bool) -> None:
        """Put the socket on the device's receive path (bound to it with ETH_P_ALL) or take it
        off. Off, the forwarding CPU pays nothing for it, not even the call that runs the
        drop-all program: rings are hooked only while they have criteria. (Binding with
        protocol 0 would keep the old protocol, so "off" parks the socket on every device with
        an EtherType that IPv4/IPv6/ARP never meet: it sits in another ptype hash bucket.)"""
        if on == self.hooked:
            return
        try:
            if on:
                self.sock.bind((self.iface.device, ffi.ETH_P_ALL))
            else:
                ffi.bind_packet(self.sock, 0, PARK_PROTOCOL)
        except OSError as exc:
            raise CaptureError(self.iface.name, str(exc.strerror or exc)) from exc
        self.hooked = on

    def ready(self) -> int:
        """Offset of the next block if user space owns it, else -1."""
        off = self.next_block * self.block_size
        if _STATUS.unpack_from(self.map, off + 8)[0] & ffi.TP_STATUS_USER:
            return off
        return -1

    def filling(self) -> int:
        """Packets in the block the kernel is filling (call when :meth:`ready` is -1: the
        next block to read is then the one being filled)."""
        return int(_NUM_PKTS.unpack_from(self.map, self.next_block * self.block_size + 12)[0])

    def block(self, off: int) -> tuple[int, int]:
        """``(num_pkts, offset of the first packet)`` of the block at ``off``."""
        n, first = _BLOCK_HDR.unpack_from(self.map, off + 12)
        return n, off + first

    def release(self, off: int) -> None:
        """Give the block back to the kernel and move on (all sends from it are done)."""
        _STATUS.pack_into(self.map, off + 8, ffi.TP_STATUS_KERNEL)
        self.next_block = (self.next_block + 1) % self.block_count

    def poll_stats(self) -> tuple[int, int]:
        """Accumulate PACKET_STATISTICS (the kernel resets them on read); totals."""
        raw = self.sock.getsockopt(ffi.SOL_PACKET, ffi.PACKET_STATISTICS, _STATS.size)
        packets, drops, _freeze = _STATS.unpack(raw)
        self.packets += packets
        self.drops += drops
        return self.packets, self.drops

    def close(self) -> None:
        self.sock.close()  # unmapping waits for the GC of the last buffer export
        if hasattr(self, "map"):
            with contextlib.suppress(BufferError):  # an export still alive: freed by the GC
                self.map.close()
