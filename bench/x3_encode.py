"""The X3 per-packet encoder (src/flowtap/dataplane/x3/template.py): ns per xCC PDU.

Figures printed (best of --repeat runs of --count PDUs each, one CPU, no I/O):
  encode_backlog  template.encode_backlog of 64 queued copies at a time, as the X3 link
                  encodes what it sends in one TLS write: the hot path
  header          X3Template.header alone (writers that send header and payload apart)
  patch template  the alternative the template rejected: copy a 60-byte header template and
                  patch it with two struct.pack_into calls
  decode          dataplane.x3.pdu.decode of one whole PDU (a receiver's cost, for scale)

Payload: a 100-byte IPv4 packet. Usage: .venv/bin/python bench/x3_encode.py [--count N]
About 2 s with the defaults.
"""

from __future__ import annotations

import argparse
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable

from flowtap.dataplane.x3 import pdu
from flowtap.dataplane.x3.template import X3Template, encode_backlog

PACKET = b"\x45" + bytes(99)
BATCH = 64


def _per_pdu(run: Callable[[int], None], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        run(count)
        best = min(best, (time.perf_counter_ns() - start) / count)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    template = X3Template(uuid.uuid4(), bytes(range(8)))
    now = time.time_ns()

    queued = [(None, template, 2, PACKET, now)] * BATCH

    def append(count: int) -> None:
        for i in range(0, count, BATCH):
            encode_backlog(deque(queued), 1 << 30, i)

    def header(count: int) -> None:
        make = template.header
        for i in range(count):
            make(100, 5, 2, i, now)

    fixed = template.header(0, 0, 0, 0, 0)
    lengths, tail = struct.Struct("!IHH"), struct.Struct("!IHHII")

    def patch(count: int) -> None:
        out = bytearray()
        for i in range(count):
            start = len(out)
            out += fixed
            lengths.pack_into(out, start + 8, len(PACKET), 5, 2)
            seconds, nanoseconds = divmod(now, 1_000_000_000)
            tail.pack_into(out, start + 44, i, 9, 8, seconds & 0xFFFFFFFF, nanoseconds)
            out += PACKET
            if i % BATCH == BATCH - 1:
                out.clear()

    one = template.pdu(PACKET, 2, 1, now)

    def decode(count: int) -> None:
        for _ in range(count):
            pdu.decode(one)

    for name, run, count in (("encode_backlog", append, args.count),
                             ("header", header, args.count),
                             ("patch template", patch, args.count),
                             ("decode", decode, args.count // 4)):  # fmt: skip
        print(f"{name:15s} {_per_pdu(run, count, args.repeat):7.0f} ns per PDU")


if __name__ == "__main__":
    main()
