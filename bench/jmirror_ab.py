"""A capture worker's CPU time per copied packet: classic copies on two code trees (A/B), and
jmirror copies, on a synthetic ring (no namespaces, no traffic generator).

The capture worker (:class:`flowtap.dataplane.worker.Worker`) runs in this process on an
anonymous memory map laid out as TPACKET_V3 blocks of 64-byte UDP packets of 64 flows, every
packet matched by one criterion whose copies go to a UDP socket on 127.0.0.1 that nobody reads
(the kernel drops them at the receiver; the sender's cost is whole). Each run is one child
process per tree, so the trees never share an interpreter; runs alternate (A, B, A, B, ...)
and the figure per case is the median of its runs' CPU time (user + system) per packet.

Two tables: with the copies sent (what a copy costs), and with ``sendmmsg`` replaced by a
function that reports every message sent, the same in both trees (what the Python side costs:
the packet walk, the queueing and the iovec packing, where jmirror changed code; the kernel's
2.5-3 us per copy and its noise on a shared machine are left out).

Usage: .venv/bin/python bench/jmirror_ab.py [--base /work/main/src] [--runs 7] [--blocks 400]
``--base`` is the tree to compare with (default: the main checkout's src); this worktree's src
is the other. Prints one table; exits 0.
"""

from __future__ import annotations

import argparse
import inspect
import json
import mmap
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# each child imports the tree its PYTHONPATH names (run_child)
from flowtap.dataplane import control, ffi
from flowtap.dataplane.encap import Outer
from flowtap.dataplane.index import MatchIndex
from flowtap.dataplane.ring import CaptureInterface
from flowtap.dataplane.sender import Sink
from flowtap.dataplane.slab import SENT, Slab, SlabSpec
from flowtap.dataplane.worker import Worker
from flowtap.intercept.criteria import Match, Span, ValueFilter
from flowtap.tools.traffic import udp_packet

HERE = Path(__file__).resolve().parents[1] / "src"
PACKETS_PER_BLOCK = 1024
FRAME = 160  # bytes per packet slot in a block: header, padding, 64-byte packet
NET = 64  # tp_net: where the packet starts in its slot
FIRST = 48  # offset of the first packet in a block
BLOCK = FIRST + PACKETS_PER_BLOCK * FRAME
_PKT = struct.Struct("=IIIII4xHH")  # next, sec, nsec, snaplen, len, (status), mac, net


class SyntheticRing:
    """What :meth:`Worker._drain` reads of a :class:`~flowtap.dataplane.ring.Ring`: every
    block is ready once per :meth:`rearm`."""

    def __init__(self, name: str, blocks: int, packets: list[bytes]) -> None:
        self.iface = CaptureInterface(name, "synthetic")
        self.block_count = blocks
        self.map = mmap.mmap(-1, BLOCK * blocks)
        self.base = ffi.buffer_address(self.map)
        now = time.time_ns()
        for b in range(blocks):
            off = b * BLOCK
            struct.pack_into("=II", self.map, off + 12, PACKETS_PER_BLOCK, FIRST)
            for i in range(PACKETS_PER_BLOCK):
                pos = off + FIRST + i * FRAME
                pkt = packets[(b * PACKETS_PER_BLOCK + i) % len(packets)]
                _PKT.pack_into(self.map, pos, FRAME, now // 10**9, now % 10**9, len(pkt),
                               len(pkt), 0, NET)
                self.map[pos + NET:pos + NET + len(pkt)] = pkt
        self.next_block = 0
        self.left = 0

    def rearm(self) -> None:
        self.next_block, self.left = 0, self.block_count

    def ready(self) -> int:
        return self.next_block * BLOCK if self.left else -1

    def block(self, off: int) -> tuple[int, int]:
        n, first = struct.unpack_from("=II", self.map, off + 12)
        return n, off + first

    def release(self, off: int) -> None:
        self.next_block += 1
        self.left -= 1


def child(delivery: str, blocks: int, port: int, send: bool) -> dict[str, float]:
    """One run in this (child) process: CPU seconds per packet and copies sent."""
    if not send:
        def sent_all(_fd: int, _vec: object, n: int) -> int:
            return n

        ffi.sendmmsg = sent_all  # type: ignore[assignment]
    packets = [udp_packet("198.18.1.2", "198.19.0.1", 10000 + f, 20000, 64, ident=f)
               for f in range(64)]
    ring = SyntheticRing("ge-0/0/0", blocks, packets)
    ctl, _peer = socket.socketpair()
    events, _events_peer = socket.socketpair()
    worker = Worker(0, ctl, events)
    worker.slab = Slab(SlabSpec(1, 16))
    worker.indexes = {ring.iface.name: MatchIndex(ring.iface.name, inet6=False)}
    outer = Outer(4, "127.0.0.1", port + 1, "127.0.0.1", port, 64)
    worker.sinks[outer] = Sink(outer)
    match = Match(protocol=ValueFilter((Span(17, 17),)))
    args: list[Any] = [1, 0, True, match, (outer,), None, None]
    if delivery == "jmirror":
        if "shim" not in inspect.signature(control.Upsert).parameters:
            raise SystemExit("this tree has no jmirror")
        args.append(bytes.fromhex("0101010130010002"))
    worker._upsert(control.Upsert(*args))
    ring.rearm()
    worker._drain(ring)  # warm: the memo holds every flow
    before = time.process_time()
    ring.rearm()
    worker._drain(ring)
    spent = time.process_time() - before
    route = worker.routes[1]
    sent = worker.slab.words[route.base + SENT]
    return {"cpu_per_packet_us": spent / (blocks * PACKETS_PER_BLOCK) * 1e6, "sent": sent}


def run_child(src: Path, delivery: str, blocks: int, port: int, send: bool
              ) -> dict[str, float]:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, __file__, "--child", delivery, "--blocks", str(blocks),
         "--port", str(port), *([] if send else ["--no-send"])], env=env, capture_output=True,
        text=True, check=True)  # fmt: skip
    return dict(json.loads(out.stdout))


def table(title: str, figures: dict[str, list[float]]) -> None:
    base = statistics.median(figures["A classic (base)"])
    print(title)
    print(f"  {'case':<24}{'median us':>10}{'min':>8}{'max':>8}{'vs A':>8}")
    for name, xs in figures.items():
        med = statistics.median(xs)
        print(f"  {name:<24}{med:>10.3f}{min(xs):>8.3f}{max(xs):>8.3f}{med / base:>8.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, default=Path("/work/main/src"))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--blocks", type=int, default=400)
    ap.add_argument("--child", choices=("classic", "jmirror"))
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-send", action="store_true")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.blocks, a.port, not a.no_send)))
        return 0
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # nobody reads: the kernel drops
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    cases = {"A classic (base)": (a.base, "classic"), "B classic (this tree)": (HERE, "classic"),
             "B jmirror (this tree)": (HERE, "jmirror")}
    sending = {send: {name: [] for name in cases} for send in (True, False)}
    for _ in range(a.runs):
        for send, figures in sending.items():
            for name, (src, delivery) in cases.items():
                result = run_child(src, delivery, a.blocks, port, send)
                assert result["sent"] == 2 * a.blocks * PACKETS_PER_BLOCK, result  # warm+timed
                figures[name].append(result["cpu_per_packet_us"])
    packets = a.blocks * PACKETS_PER_BLOCK
    print(f"capture worker CPU time per copied packet: {a.runs} interleaved runs of {packets} "
          f"packets each (64-byte UDP, one criterion, one copy per packet)")
    table("copies sent (sendmmsg to 127.0.0.1):", sending[True])
    table("sendmmsg replaced (the Python side only):", sending[False])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
