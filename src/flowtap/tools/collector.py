"""``flowtap-collector``: the content-destination side of a flow tap.

Listens on one or more UDP ports, takes each copy's UDP payload (the original IP packet, see
dataplane/ENCAP.md; fragmented copies are reassembled by the kernel) and writes it to a
standard pcap with LINKTYPE_RAW, readable by tcpdump and tshark. Counts copies per outer
source, can write one file per intercept, and stops on SIGINT/SIGTERM, after ``--count``
copies or after ``--duration`` seconds. The summary is printed as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import selectors
import signal
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from flowtap.about import add_version, plain
from flowtap.tools.pcap import PcapWriter

SPLITS = ("none", "dport", "sport", "source")
RCVBUF = 16 << 20


class Output:
    """One pcap, or one per intercept key (``--split``)."""

    def __init__(self, path: Path, split: str) -> None:
        self.path = path
        self.split = split
        self.writers: dict[str, tuple[BinaryIO, PcapWriter]] = {}

    def key(self, source: tuple[str, int], dport: int) -> str:
        if self.split == "dport":
            return str(dport)
        if self.split == "sport":
            return str(source[1])
        if self.split == "source":
            return f"{source[0]}-{source[1]}".replace(":", "_")
        return ""

    def writer(self, key: str) -> PcapWriter:
        if key not in self.writers:
            path = self.path if not key else self.path.with_name(
                f"{self.path.stem}-{key}{self.path.suffix or '.pcap'}")
            stream = path.open("wb")
            self.writers[key] = (stream, PcapWriter(stream))
        return self.writers[key][1]

    def files(self) -> list[str]:
        return [s.name for s, _ in self.writers.values()]

    def close(self) -> None:
        for stream, _ in self.writers.values():
            stream.close()


def _open(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE (root)
    except PermissionError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    s.bind((address, port))
    s.setblocking(False)
    return s


def collect(socks: list[socket.socket], out: Output, count: int | None,
            duration: float | None, flush_each: bool) -> dict[str, int]:
    """Receive until ``count``/``duration``/a signal; returns copies per outer source."""
    stop = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ, s.getsockname()[1])
    per_source: Counter[str] = Counter()
    total = 0
    deadline = time.monotonic() + duration if duration else None
    buf = bytearray(65536)
    view = memoryview(buf)
    while not stop and (count is None or total < count):
        timeout = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if timeout <= 0:
            break
        for key, _ in sel.select(timeout):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            dport: int = key.data
            while count is None or total < count:
                try:
                    n, source = sock.recvfrom_into(buf)
                except BlockingIOError:
                    break
                now = time.time()
                host = source[0]
                if host.startswith("::ffff:") and "." in host:
                    host = host[7:]  # an IPv4 sender on a dual-stack socket
                src = (host, source[1])
                w = out.writer(out.key(src, dport))
                w.write(bytes(view[:n]), now)
                if flush_each:
                    w.flush()
                per_source[f"{src[0]}:{src[1]}"] += 1
                total += 1
    sel.close()
    return dict(per_source)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="flowtap-collector", description=plain(__doc__),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_version(ap)
    ap.add_argument("-l", "--listen", default="0.0.0.0",
                    help="local address (an IPv6 address, or :: for both families)")
    ap.add_argument("-p", "--port", type=int, action="append", required=True,
                    help="UDP port (repeat for several)")
    ap.add_argument("-w", "--write", type=Path, required=True, help="pcap file")
    ap.add_argument("--split", choices=SPLITS, default="none",
                    help="one file per outer destination port, source port or source")
    ap.add_argument("-c", "--count", type=int, default=None, help="stop after N copies")
    ap.add_argument("-t", "--duration", type=float, default=None, help="stop after S seconds")
    ap.add_argument("--flush", action="store_true", help="flush the pcap after every packet")
    a = ap.parse_args(argv)
    try:
        socks = [_open(a.listen, p) for p in a.port]
    except OSError as exc:
        print(f"flowtap-collector: {exc}", file=sys.stderr)
        return 1
    out = Output(a.write, a.split)
    if a.split == "none":
        out.writer("")  # the file exists even if nothing arrives
    print(json.dumps({"listening": [s.getsockname()[1] for s in socks]}), flush=True)
    try:
        per_source = collect(socks, out, a.count, a.duration, a.flush)
    finally:
        out.close()
        for s in socks:
            s.close()
    print(json.dumps({"packets": sum(per_source.values()), "per_source": per_source,
                      "files": out.files()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
