"""Test-traffic generator: build IP packets and blast or pace them out of an interface.

Used by the netns tests and ``bench/dataplane.py``; frames leave through an AF_PACKET socket
(``sendmmsg``, qdisc bypass) so the generator costs as little as possible on its CPU.
``python -m flowtap.tools.traffic`` runs it as a separate process (for benchmarks, where
it must not share the tap's GIL).
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Sequence

from flowtap.dataplane import ffi
from flowtap.dataplane.encap import checksum


def udp_packet(src: str, dst: str, sport: int, dport: int, size: int, *, ident: int = 0,
               ttl: int = 64, frag: int = 0, payload_fill: int = 0) -> bytes:
    """An IPv4 or IPv6 UDP packet of ``size`` bytes (IP header included).

    ``frag`` is the raw IPv4 flags/offset field (e.g. 0x2000 = MF for a first fragment); the
    payload starts with a 4-byte sequence number ``ident`` so copies can be identified.
    """
    v6 = ":" in dst
    hdr = 40 if v6 else 20
    body_len = max(size - hdr - 8, 4)
    body = struct.pack("!I", ident) + bytes([payload_fill]) * (body_len - 4)
    ulen = 8 + body_len
    s = ipaddress.ip_address(src).packed
    d = ipaddress.ip_address(dst).packed
    if v6:
        pseudo = s + d + struct.pack("!I3xB", ulen, 17)
        csum = checksum(pseudo + struct.pack("!HHHH", sport, dport, ulen, 0) + body) or 0xFFFF
        return (struct.pack("!IHBB", 6 << 28, ulen, 17, ttl) + s + d
                + struct.pack("!HHHH", sport, dport, ulen, csum) + body)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + body
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, ident & 0xFFFF, frag, ttl, 17, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + udp


def ipv4_fragments(packet: bytes, chunk: int) -> list[bytes]:
    """Split an IPv4 packet (no options) into fragments of ``chunk`` payload bytes (x8)."""
    head, data = packet[:20], packet[20:]
    out = []
    for off in range(0, len(data), chunk):
        part = data[off:off + chunk]
        more = 0x2000 if off + chunk < len(data) else 0
        h = bytearray(head)
        struct.pack_into("!HHH", h, 2, 20 + len(part), struct.unpack_from("!H", head, 4)[0],
                         more | (off // 8))
        struct.pack_into("!H", h, 10, 0)
        struct.pack_into("!H", h, 10, checksum(bytes(h)))
        out.append(bytes(h) + part)
    return out


class Sender:
    """Frames out of one interface with sendmmsg (zero copy from prebuilt buffers)."""

    BATCH = 64

    def __init__(self, device: str, dst_mac: str, packets: Sequence[bytes]) -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.setsockopt(ffi.SOL_PACKET, ffi.PACKET_QDISC_BYPASS, 1)
        self.sock.setsockopt(ffi.SOL_SOCKET, ffi.SO_SNDBUFFORCE, 4 << 20)
        self.sock.bind((device, 0))
        src_mac = self.sock.getsockname()[4]
        dmac = bytes.fromhex(dst_mac.replace(":", ""))
        self.frames = [ctypes.create_string_buffer(
            dmac + src_mac + struct.pack("!H", 0x86DD if p[0] >> 4 == 6 else 0x0800) + p,
            14 + len(p)) for p in packets]
        self.iov = (ffi.IoVec * len(self.frames))()
        self.vec = (ffi.MMsgHdr * len(self.frames))()
        for i, f in enumerate(self.frames):
            self.iov[i].iov_base = ctypes.addressof(f)
            self.iov[i].iov_len = len(f.raw)
            self.vec[i].msg_hdr.msg_iov = ctypes.addressof(self.iov) + i * ffi.IOVEC_SIZE
            self.vec[i].msg_hdr.msg_iovlen = 1
        self.size = ctypes.sizeof(ffi.MMsgHdr)

    def send(self, count: int, rate: float | None = None, batch: int = BATCH) -> int:
        """Send ``count`` frames cycling through the list, paced to ``rate`` pps (None: as fast
        as possible); returns frames sent."""
        n, sent, total = len(self.frames), 0, count
        start = time.perf_counter()
        fd = self.sock.fileno()
        while sent < total:
            idx = sent % n
            k = min(batch, total - sent, n - idx)
            vec = (ffi.MMsgHdr * k).from_buffer(self.vec, idx * self.size)
            r = ffi.sendmmsg(fd, vec, k)
            if r < 0:
                if -r in (11, 105):  # EAGAIN / ENOBUFS
                    time.sleep(0.0002)
                    continue
                raise OSError(-r, "sendmmsg")
            sent += r
            if rate:
                due = start + sent / rate
                while time.perf_counter() < due:
                    pass
        return sent

    def close(self) -> None:
        self.sock.close()


def main(argv: list[str] | None = None) -> int:
    """Process entry: send a UDP flow and print ``{"sent": N, "seconds": S}`` as JSON."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--dst-mac", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--dst", required=True, help="destination address (first of --flows)")
    ap.add_argument("--sport", type=int, default=10000)
    ap.add_argument("--dport", type=int, default=20000)
    ap.add_argument("--flows", type=int, default=1, help="distinct destination addresses")
    ap.add_argument("--size", type=int, default=46, help="IP packet size")
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--rate", type=float, default=0.0, help="pps, 0 = flat out")
    ap.add_argument("--cpu", type=int, default=None)
    a = ap.parse_args(argv)
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    base = ipaddress.ip_address(a.dst)
    pkts = [udp_packet(a.src, str(base + i), a.sport, a.dport, a.size, ident=i)
            for i in range(a.flows)]
    s = Sender(a.dev, a.dst_mac, pkts)
    t0 = time.perf_counter()
    sent = s.send(a.count, a.rate or None)
    print(json.dumps({"sent": sent, "seconds": time.perf_counter() - t0}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
