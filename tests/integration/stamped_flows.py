"""A steady stream of UDP flows whose packets carry their sequence number and send time.

Run as a process in the sender's namespace (``python -m tests.integration.stamped_flows``) so
its pacing and time stamps do not share the test's GIL. Packet ``seq`` belongs to flow
``seq % len(FLOWS)``. Each packet is stamped (CLOCK_MONOTONIC, which every namespace and the
test share) just before ``sendto`` and the time ``sendto`` returned is recorded as well: the
packet left the sender somewhere in ``[t0, t1]``. At the end the process writes those pairs to
``--out`` (native int64 pairs, in ``seq`` order) and prints ``{"sent": N}``.
"""

from __future__ import annotations

import argparse
import array
import json
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SOURCE = "198.18.1.2"  # flowtap.tools.netns: the sender's address
STAMP = struct.Struct("!IQ")  # seq, t0 in ns (CLOCK_MONOTONIC)
PAYLOAD = 32


@dataclass(frozen=True, slots=True)
class Flow:
    dest: str
    source_port: int
    dest_port: int


# 50 flows to distinct subscribers of 198.19.0.0/26 (routed to rcv), ten destination ports
FLOWS = tuple(Flow(f"198.19.0.{1 + i}", 10000 + i, 20000 + i % 10) for i in range(50))
DEST_PORTS = sorted({f.dest_port for f in FLOWS})


def payload(seq: int, t0: int) -> bytes:
    return STAMP.pack(seq, t0).ljust(PAYLOAD, b"\0")


def stamp_of(inner_packet: bytes) -> int:
    """The ``seq`` of a copy's inner IPv4/UDP packet (no IP options: we built it)."""
    return int(STAMP.unpack_from(inner_packet, 28)[0])


def read_times(path: Path) -> tuple[array.array[int], array.array[int]]:
    """(t0, t1) of every packet, indexed by ``seq``."""
    pairs = array.array("q")
    pairs.frombytes(path.read_bytes())
    return pairs[0::2], pairs[1::2]


def send(rate: float, seconds: float) -> array.array[int]:
    socks = []
    for flow in FLOWS:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((SOURCE, flow.source_port))
        socks.append((s, (flow.dest, flow.dest_port)))
    total = int(rate * seconds)
    times = array.array("q", bytes(16 * total))
    clock = time.monotonic_ns
    start = clock()
    seq = 0
    while seq < total:
        due = min(total, int((clock() - start) * rate / 1e9) + 1)
        while seq < due:
            sock, dest = socks[seq % len(socks)]
            t0 = clock()
            sock.sendto(payload(seq, t0), dest)
            times[2 * seq], times[2 * seq + 1] = t0, clock()
            seq += 1
        time.sleep(0.0005)
    for s, _ in socks:
        s.close()
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--rate", type=float, required=True, help="packets per second, all flows")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # go
    times = send(a.rate, a.seconds)
    a.out.write_bytes(times.tobytes())
    print(json.dumps({"sent": len(times) // 2}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
