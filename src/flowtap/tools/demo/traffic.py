"""Subscriber traffic for the lab: UDP flows from the sender to subscribers behind the receiver,
every packet distinct (its IP ID and first payload word are a running number), paced out of the
sender's veth through an AF_PACKET socket."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from flowtap.dataplane import ffi
from flowtap.dataplane.encap import checksum
from flowtap.tools.demo.lab import SENDER, Lab
from flowtap.tools.traffic import udp_packet


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    dst: str
    sport: int
    dport: int


def packets(flows: Sequence[Flow], per_flow: int, first_ident: int = 0
            ) -> list[tuple[Flow, bytes]]:  # fmt: skip
    """``per_flow`` packets of each flow, interleaved, sizes 60..1300 bytes."""
    out = []
    ident = first_ident
    for _ in range(per_flow):
        for flow in flows:
            size = 60 + (ident * 37) % 1240
            out.append((flow, udp_packet(SENDER, flow.dst, flow.sport, flow.dport, size,
                                         ident=ident)))  # fmt: skip
            ident += 1
    return out


def forwarded(packet: bytes) -> bytes:
    """``packet`` as a router forwards it: TTL one less, header checksum updated, nothing else."""
    head = bytearray(packet[:20])
    head[8] -= 1
    struct.pack_into("!H", head, 10, 0)
    struct.pack_into("!H", head, 10, checksum(bytes(head)))
    return bytes(head) + packet[20:]


class Sender:
    """Frames out of the sender namespace's ``snd0`` towards the router's ingress."""

    def __init__(self, lab: Lab) -> None:
        with ffi.netns(lab.ns("snd")):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.sock.bind(("snd0", 0))
        self.src_mac: bytes = self.sock.getsockname()[4]
        self.dst_mac = bytes.fromhex(lab.topo.mac(1, 1).replace(":", ""))
        self.sent = 0

    def send(self, batch: Sequence[bytes], rate: float,
             stop: threading.Event | None = None) -> int:  # fmt: skip
        """Send ``batch`` at ``rate`` packets/s (in bursts of 10); stops early when ``stop``
        is set. Returns the packets sent; :attr:`sent` counts along (read it from another
        thread for progress)."""
        head = self.dst_mac + self.src_mac + b"\x08\x00"
        start, done = time.monotonic(), 0
        for i, pkt in enumerate(batch):
            if stop is not None and stop.is_set():
                break
            if i % 10 == 0:
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.sock.send(head + pkt)
            done += 1
            self.sent += 1
        return done

    def close(self) -> None:
        self.sock.close()
