"""Time-stamped test traffic: for every packet, when it was sent and when its copy arrived.

Three parts, used by ``tests/integration/test_live_on_200.py`` and ``bench/tap_latency.py``:

* ``send``: a paced UDP stream out of one namespace; each payload carries a magic word, the
  packet's sequence number, its flow (which destination of the round robin) and its send time
  (CLOCK_MONOTONIC ns, the clock every namespace shares). Nothing is written per packet: the
  send log is kept in memory and written when the stream stops (SIGTERM or ``--seconds``).
* ``receive``: at the content destination, a raw socket sees each copy whole; the outer
  IP/UDP is taken apart by :func:`flowtap.dataplane.encap.decode` and the inner packet's stamp
  is logged with the copy's arrival time, written when the receiver stops.
* :func:`judge`: pure; given the send log, the copies and the times of each ADD/DELETE and its
  200 OK, it counts blind packets (sent more than ``grace`` after an ADD's 200 OK and before
  its DELETE was sent, without a copy) and late copies (of packets sent more than ``grace``
  after a DELETE's 200 OK and before the next ADD was sent), and the latencies
  ADD 200 OK -> first copy and DELETE 200 OK -> last copy.

Run ``python -m flowtap.tools.stamped send|receive --help`` (inside ``ip netns exec``).
"""

from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import struct
import sys
import time
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from flowtap.dataplane.encap import decode

MAGIC = b"FTst"
STAMP = struct.Struct("!4sQBq")  # magic, sequence number, flow index, send time (ns)
PAD_TO = 64  # UDP payload bytes: small packets, like the traffic an intercept mostly sees
SENT = struct.Struct("<QBq")  # send log record: seq, flow, send ns
COPY = struct.Struct("<QBqq")  # copy log record: seq, flow, send ns, arrival ns
TAIL_NS = 10_000_000  # the end of a tap's window that Verdict.blind_before_delete reports
CATCH_UP = 64  # at most this many overdue packets per burst when the sender was descheduled


@dataclass(frozen=True, slots=True)
class Sent:
    seq: int
    flow: int
    sent_ns: int


@dataclass(frozen=True, slots=True)
class Copy:
    seq: int
    flow: int
    sent_ns: int
    arrived_ns: int


def stamp(seq: int, flow: int, sent_ns: int) -> bytes:
    """The UDP payload of packet ``seq``."""
    return STAMP.pack(MAGIC, seq, flow, sent_ns).ljust(PAD_TO, b"\0")


def unstamp(inner: bytes) -> Sent | None:
    """The stamp of an inner IPv4/IPv6 UDP packet (from its IP header), or None if it has none."""
    if not inner:
        return None
    if inner[0] >> 4 == 4:
        offset, proto = (inner[0] & 15) * 4, inner[9]
    elif inner[0] >> 4 == 6:
        offset, proto = 40, inner[6]
    else:
        return None
    payload = inner[offset + 8:offset + 8 + STAMP.size]
    if proto != 17 or len(payload) < STAMP.size:
        return None
    magic, seq, flow, sent_ns = STAMP.unpack(payload)
    return Sent(seq, flow, sent_ns) if magic == MAGIC else None


def read_sent(path: Path) -> list[Sent]:
    return [Sent(*r) for r in SENT.iter_unpack(path.read_bytes())]


def read_copies(path: Path) -> list[Copy]:
    return [Copy(*r) for r in COPY.iter_unpack(path.read_bytes())]


# ---- verdict (pure) --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Cycle:
    """One ADD ... DELETE of the tap, in CLOCK_MONOTONIC ns as the control side saw them."""

    add_sent: int
    added: int  # the ADD's 200 OK read
    delete_sent: int
    deleted: int  # the DELETE's 200 OK read


@dataclass
class Verdict:
    blind: int = 0  # tapped-flow packets sent > grace after an ADD's 200 OK, no copy
    blind_before_delete: int = 0  # of those, sent in the last TAIL_NS before the DELETE was
    # sent: an established tap that stopped copying before its DELETE (for instance packets
    # still queued in the router when the deletion was applied), not a tap that came on late
    late: int = 0  # copies of packets sent > grace after a DELETE's 200 OK
    should_copy: int = 0  # tapped-flow packets inside the "must copy" windows
    foreign: int = 0  # copies of packets of a flow that no criterion matched
    duplicates: int = 0  # copies beyond the first of one packet
    first_copy_ns: list[int | None] = field(default_factory=list)  # per cycle (None: no copy)
    last_copy_ns: list[int | None] = field(default_factory=list)  # per cycle, may be negative

    def summary(self) -> str:
        missing = sum(1 for x in self.first_copy_ns if x is None)
        return (f"{self.blind} blind packets ({self.blind_before_delete} of them sent in the "
                f"{TAIL_NS // 1_000_000} ms before the DELETE was) of {self.should_copy} that "
                "must be copied, "
                f"{self.late} late copies, {self.foreign} copies of untapped flows, "
                f"{self.duplicates} duplicates, {missing} of {len(self.first_copy_ns)} cycles "
                "without any copy")


def judge(sent: Sequence[Sent], copies: Sequence[Copy], cycles: Sequence[Cycle],
          tapped_flows: set[int], grace_ns: int = 1_000_000) -> Verdict:
    """Compare what was sent with what was copied, cycle by cycle (see the module docstring).

    The stream must outlast the cycles: the last cycle's "no copy" window ends with the stream.
    """
    verdict = Verdict()
    first_arrival: dict[int, int] = {}
    for c in copies:
        if c.flow not in tapped_flows:
            verdict.foreign += 1
        elif c.seq in first_arrival:
            verdict.duplicates += 1
            first_arrival[c.seq] = min(first_arrival[c.seq], c.arrived_ns)
        else:
            first_arrival[c.seq] = c.arrived_ns
    tapped = sorted((s for s in sent if s.flow in tapped_flows), key=lambda s: s.sent_ns)
    times = [s.sent_ns for s in tapped]
    if cycles:  # before the first ADD no criterion existed: any copy is one too many
        verdict.late += sum(1 for s in tapped[:bisect_left(times, cycles[0].add_sent)]
                            if s.seq in first_arrival)
    ends = [c.add_sent for c in cycles[1:]] + [times[-1] + 1 if times else 0]
    for cycle, end in zip(cycles, ends, strict=True):
        first: int | None = None
        last: int | None = None
        for s in tapped[bisect_left(times, cycle.add_sent):bisect_left(times, end)]:
            arrived = first_arrival.get(s.seq)
            if cycle.added + grace_ns < s.sent_ns < cycle.delete_sent:
                verdict.should_copy += 1
                if arrived is None:
                    verdict.blind += 1
                    verdict.blind_before_delete += s.sent_ns > cycle.delete_sent - TAIL_NS
            if arrived is None:
                continue
            if s.sent_ns > cycle.deleted + grace_ns:
                verdict.late += 1
            if s.sent_ns >= cycle.added:
                first = arrived if first is None else min(first, arrived)
            last = arrived if last is None else max(last, arrived)
        verdict.first_copy_ns.append(None if first is None else first - cycle.added)
        verdict.last_copy_ns.append(None if last is None else last - cycle.deleted)
    return verdict


# ---- the two processes -----------------------------------------------------------------------

class _Stop:
    """Set by SIGTERM/SIGINT: the loops check it between packets."""

    def __init__(self) -> None:
        self.now = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._set)

    def _set(self, _sig: int, _frame: FrameType | None) -> None:
        self.now = True


def send(destinations: Sequence[tuple[str, int]], rate: float, seconds: float,
         out: Path) -> dict[str, float]:
    """Send to ``destinations`` in turn (flow = index) at ``rate`` packets/s until SIGTERM or
    ``seconds``; write the send log to ``out``."""
    stop = _Stop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    seqs, flows, times = array("Q"), array("B"), array("q")
    period = 1e9 / rate
    start = time.monotonic_ns()
    until = start + int(seconds * 1e9)
    seq = dropped = 0
    while not stop.now:
        now = time.monotonic_ns()
        if now >= until:
            break
        due = start + int(seq * period)
        if now < due:  # sleep until the next packet is due; no busy wait on a shared machine
            time.sleep((due - now) / 1e9)
            continue
        if now - due > CATCH_UP * period:  # descheduled for long: resume the pace from here
            start += now - due - int(CATCH_UP * period)
        burst = 0
        while burst < CATCH_UP and start + int(seq * period) <= now:
            flow = seq % len(destinations)
            sent_ns = time.monotonic_ns()
            try:
                sock.sendto(stamp(seq, flow, sent_ns), destinations[flow])
            except OSError:  # ENOBUFS, EAGAIN: the kernel had no room
                dropped += 1  # never left this host: not logged, so never judged
            else:
                seqs.append(seq)
                flows.append(flow)
                times.append(sent_ns)
            seq += 1
            burst += 1
    elapsed = (time.monotonic_ns() - start) / 1e9
    out.write_bytes(b"".join(SENT.pack(s, f, t) for s, f, t in zip(seqs, flows, times,
                                                                   strict=True)))
    return {"sent": len(seqs), "not_sent": dropped, "seconds": elapsed,
            "pps": len(seqs) / elapsed if elapsed else 0.0}


def receive(port: int, out: Path, ready: bool = True) -> dict[str, int]:
    """Log every stamped copy arriving for UDP ``port`` until SIGTERM; write the log to ``out``.

    A UDP socket is bound to ``port`` too, so the host answers no copy with ICMP unreachable.
    """
    stop = _Stop()
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    raw.setblocking(False)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # drops silently when full
    sink.bind(("0.0.0.0", port))
    records = bytearray()
    copies = unstamped = 0
    if ready:
        print(json.dumps({"listening": port}), flush=True)
    while not stop.now:
        try:
            readable, _, _ = select.select([raw], [], [], 0.05)
        except InterruptedError:
            continue
        while readable:
            try:
                datagram = raw.recv(65535)
            except BlockingIOError:
                break
            arrived = time.monotonic_ns()
            try:
                copy = decode(datagram)
            except (ValueError, struct.error):
                continue
            if copy.outer.dest_port != port:
                continue
            stamped = unstamp(copy.inner)
            if stamped is None:
                unstamped += 1
                continue
            records += COPY.pack(stamped.seq, stamped.flow, stamped.sent_ns, arrived)
            copies += 1
    out.write_bytes(bytes(records))
    return {"copies": copies, "unstamped": unstamped}


def _destination(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    return address, int(port)


def main(argv: list[str] | None = None) -> int:
    """``send`` or ``receive``; each prints one JSON line when it stops (receive also one at
    start, ``{"listening": PORT}``)."""
    ap = argparse.ArgumentParser(prog="python -m flowtap.tools.stamped", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    tx = sub.add_parser("send", help="a paced, stamped UDP stream")
    tx.add_argument("--dest", action="append", type=_destination, required=True,
                    help="ADDRESS:PORT, repeatable; packets go to each in turn (flow = index)")
    tx.add_argument("--rate", type=float, default=5000.0, help="packets/s, all flows together")
    tx.add_argument("--seconds", type=float, default=120.0, help="stop after this long at most")
    tx.add_argument("--out", type=Path, required=True, help="send log (written at the end)")
    rx = sub.add_parser("receive", help="log stamped copies at a content destination")
    rx.add_argument("--port", type=int, required=True, help="the content destination's port")
    rx.add_argument("--out", type=Path, required=True, help="copy log (written at the end)")
    a = ap.parse_args(argv)
    if a.command == "send":
        result: dict[str, float] | dict[str, int] = send(a.dest, a.rate, a.seconds, a.out)
    else:
        result = receive(a.port, a.out)
    print(json.dumps(result), flush=True)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
