"""``flowtap-collector``: the content-destination side of a flow tap.

Listens on one or more UDP ports, takes each copy's UDP payload (the original IP packet, see
dataplane/ENCAP.md; fragmented copies are reassembled by the kernel) and writes it to a
standard pcap with LINKTYPE_RAW, readable by tcpdump and tshark. Counts copies per outer
source, can write one file per intercept, and stops on SIGINT/SIGTERM, after ``--count``
copies or after ``--duration`` seconds. The summary is printed as JSON on stdout.

Jmirror copies (a DTCP ADD with X-MD-Intercept-Id) are recognised by themselves, on any port:
their payload starts with the 8-byte jmirror header, whose first byte is below 0x40, where a
classic copy starts with an IPv4 or IPv6 header (0x45-0x6f). The header is stripped (the pcap
holds the packet), and its intercept and session IDs are counted in the summary
(``jmirror``), printed per copy with ``--print-ids``, or split into files with
``--split intercept``.

With ``--x3`` (and ``--cert``/``--key``/``--ca``) it is an X3 destination instead: TLS on the
TCP ports, ETSI TS 103 221-2 PDUs, the packets written with their XID and direction counted
(:mod:`flowtap.tools.x3_collector`).
"""

from __future__ import annotations

import argparse
import json
import selectors
import signal
import socket
import ssl
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from flowtap.about import add_version, plain
from flowtap.dataplane.encap import is_jmirror, split_jmirror
from flowtap.tools import x3_collector
from flowtap.tools.pcap import PcapWriter

SPLITS = ("none", "dport", "sport", "source", "intercept")
RCVBUF = 16 << 20


class Output:
    """One pcap, or one per intercept key (``--split``)."""

    def __init__(self, path: Path, split: str) -> None:
        self.path = path
        self.split = split
        self.writers: dict[str, tuple[BinaryIO, PcapWriter]] = {}

    def key(self, source: tuple[str, int], dport: int, intercept_id: int | None) -> str:
        if self.split == "intercept":  # classic copies stay in the file named by -w
            return "" if intercept_id is None else f"jmirror{intercept_id:08x}"
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


class Tally:
    """What the summary reports: copies per outer source, jmirror copies per intercept ID and
    session ID."""

    def __init__(self) -> None:
        self.per_source: Counter[str] = Counter()
        self.jmirror: dict[str, Counter[str]] = {}

    def count(self, source: str, ids: tuple[int, int] | None) -> None:
        self.per_source[source] += 1
        if ids is not None:
            sessions = self.jmirror.setdefault(f"0x{ids[0]:08x}", Counter())
            sessions[f"0x{ids[1]:08x}"] += 1

    @property
    def total(self) -> int:
        return sum(self.per_source.values())

    def summary(self) -> dict[str, object]:
        return {"packets": self.total, "per_source": dict(self.per_source),
                "jmirror": {mid: dict(sids) for mid, sids in self.jmirror.items()}}


def unwrap(payload: bytes) -> tuple[tuple[int, int] | None, bytes]:
    """((intercept ID, session ID) or None for a classic copy, the packet) of a copy."""
    if is_jmirror(payload):
        intercept, session, inner = split_jmirror(payload)
        return (intercept, session), inner
    return None, payload


def collect(socks: list[socket.socket], out: Output, count: int | None,
            duration: float | None, flush_each: bool, print_ids: bool = False) -> Tally:
    """Receive until ``count``/``duration``/a signal; returns what arrived."""
    stop = False

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ, s.getsockname()[1])
    tally = Tally()
    deadline = time.monotonic() + duration if duration else None
    buf = bytearray(65536)
    view = memoryview(buf)
    while not stop and (count is None or tally.total < count):
        timeout = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if timeout <= 0:
            break
        for key, _ in sel.select(timeout):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            dport: int = key.data
            while count is None or tally.total < count:
                try:
                    n, source = sock.recvfrom_into(buf)
                except BlockingIOError:
                    break
                now = time.time()
                host = source[0]
                if host.startswith("::ffff:") and "." in host:
                    host = host[7:]  # an IPv4 sender on a dual-stack socket
                src = (host, source[1])
                ids, packet = unwrap(bytes(view[:n]))
                w = out.writer(out.key(src, dport, None if ids is None else ids[0]))
                w.write(packet, now)
                if flush_each:
                    w.flush()
                tally.count(f"{src[0]}:{src[1]}", ids)
                if print_ids:
                    print(json.dumps({"copy": tally.total, "source": f"{src[0]}:{src[1]}",
                                      "dport": dport,
                                      "intercept_id": None if ids is None else ids[0],
                                      "session_id": None if ids is None else ids[1]}),
                          flush=True)
    sel.close()
    return tally


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
                    help="one file per outer destination port, source port, source, or "
                         "jmirror intercept ID (classic copies stay in the -w file)")
    ap.add_argument("--print-ids", action="store_true",
                    help="print a JSON line per copy: its outer source and port and, for a "
                         "jmirror copy, its intercept and session IDs (null for classic)")
    ap.add_argument("-c", "--count", type=int, default=None, help="stop after N copies")
    ap.add_argument("-t", "--duration", type=float, default=None, help="stop after S seconds")
    ap.add_argument("--flush", action="store_true", help="flush the pcap after every packet")
    ap.add_argument("--x3", action="store_true",
                    help="receive ETSI X3 (TS 103 221-2) over mutual TLS on the TCP ports "
                         "instead of UDP copies; needs --cert, --key and --ca")
    ap.add_argument("--cert", help="--x3: this receiver's PEM certificate (chain)")
    ap.add_argument("--key", help="--x3: its PEM private key")
    ap.add_argument("--ca", help="--x3: PEM CA certificates the senders' must chain to")
    a = ap.parse_args(argv)
    if a.x3:
        return _main_x3(a)
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
        tally = collect(socks, out, a.count, a.duration, a.flush, a.print_ids)
    finally:
        out.close()
        for s in socks:
            s.close()
    print(json.dumps({**tally.summary(), "files": out.files()}), flush=True)
    return 0


def _main_x3(a: argparse.Namespace) -> int:
    if not (a.cert and a.key and a.ca):
        print("flowtap-collector: --x3 needs --cert, --key and --ca", file=sys.stderr)
        return 2
    try:
        context = x3_collector.server_context(a.cert, a.key, a.ca)
        listeners = [socket.create_server((a.listen, p), family=socket.AF_INET6 if ":" in a.listen
                                          else socket.AF_INET, reuse_port=True) for p in a.port]
    except (OSError, ssl.SSLError) as exc:
        print(f"flowtap-collector: {exc}", file=sys.stderr)
        return 1
    out = Output(a.write, a.split)
    if a.split == "none":
        out.writer("")

    def writer_for(source: tuple[str, int], dport: int, xid: str) -> PcapWriter:
        if out.split == "intercept":
            return out.writer(x3_collector.xid_key(xid))
        return out.writer(out.key(source, dport, None))

    print(json.dumps({"listening": [s.getsockname()[1] for s in listeners], "x3": True}),
          flush=True)
    collector = x3_collector.X3Collector(listeners, context, writer_for, a.flush, a.print_ids)
    try:
        tally = collector.serve(a.count, a.duration)
    finally:
        out.close()
        for s in listeners:
            s.close()
    print(json.dumps({**tally.summary(), "files": out.files()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
