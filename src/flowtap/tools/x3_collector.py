"""``flowtap-collector --x3``: an X3 destination (ETSI TS 103 221-2 over mutual TLS).

Accepts TLS connections from network elements whose certificate chains to ``--ca`` (it presents
``--cert``), decodes the PDU stream of each, answers keepalives (type 3 with type 4, the sequence
number echoed) and writes the packet of every xCC PDU (payload format 5 or 6: the IP packet
unchanged) to the pcap, stamped with the PDU's timestamp attribute (the time the NE took the
copy). The summary counts PDUs per XID and direction; ``--print-ids`` prints one JSON line per
PDU (XID, direction, sequence number, correlation ID, timestamp, length); ``--split intercept``
writes one file per XID. A connection whose stream is malformed is closed (the stream cannot be
resynchronised); the others carry on.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from types import FrameType

from flowtap.dataplane.x3.pdu import AttributeType, Pdu, PduType, keepalive_ack
from flowtap.dataplane.x3.stream import X3StreamDecoder
from flowtap.errors import X3Error
from flowtap.tools.pcap import PcapWriter

HANDSHAKE_TIMEOUT = 10.0
DIRECTIONS = {1: "unknown", 2: "to-target", 3: "from-target", 4: "both", 5: "n/a"}


def server_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """The receiver's TLS: its certificate, and the NE's verified against ``ca`` (required)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=ca)
    return context


class X3Tally:
    def __init__(self) -> None:
        self.per_xid: dict[str, Counter[str]] = {}
        self.per_source: Counter[str] = Counter()
        self.keepalives = 0
        self.connections = 0
        self.refused = 0

    @property
    def total(self) -> int:
        return sum(self.per_source.values())

    def summary(self) -> dict[str, object]:
        return {"packets": self.total, "per_source": dict(self.per_source),
                "x3": {xid: dict(d) for xid, d in self.per_xid.items()},
                "keepalives": self.keepalives, "connections": self.connections,
                "refused_handshakes": self.refused}  # fmt: skip


# (the sender's address and port, the local port, the XID) -> where that PDU's packet goes
WriterFor = Callable[[tuple[str, int], int, str], PcapWriter]


class X3Collector:
    def __init__(self, listeners: list[socket.socket], context: ssl.SSLContext,
                 writer_for: WriterFor, flush_each: bool, print_ids: bool) -> None:  # fmt: skip
        self.listeners = listeners
        self.context = context
        self.writer_for = writer_for
        self.flush_each = flush_each
        self.print_ids = print_ids
        self.tally = X3Tally()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._count: int | None = None
        self._connections: list[ssl.SSLSocket] = []

    def serve(self, count: int | None, duration: float | None) -> X3Tally:
        """Receive until ``count`` packets, ``duration`` seconds or SIGINT/SIGTERM."""
        self._count = count

        def on_signal(_sig: int, _frame: FrameType | None) -> None:
            self.stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        for listener in self.listeners:
            listener.settimeout(0.2)
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        deadline = time.monotonic() + duration if duration else None
        while not self.stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.stop.wait(0.1)
        self.stop.set()
        with self.lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.close()
        return self.tally

    def _accept(self, listener: socket.socket) -> None:
        dport = listener.getsockname()[1]
        while not self.stop.is_set():
            try:
                plain, address = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_one, args=(plain, address, dport),
                             daemon=True).start()  # fmt: skip

    def _serve_one(self, plain: socket.socket, address: tuple[str, int], dport: int) -> None:
        plain.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = self.context.wrap_socket(plain, server_side=True)
        except (ssl.SSLError, OSError):
            plain.close()
            with self.lock:
                self.tally.refused += 1
            return
        conn.settimeout(0.5)
        with self.lock:
            self.tally.connections += 1
            self._connections.append(conn)
        source = (address[0], address[1])
        decoder = X3StreamDecoder()
        try:
            while not self.stop.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                for pdu in decoder.feed(data):
                    self._take(conn, pdu, source, dport)
        except (OSError, ssl.SSLError, X3Error):
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _take(self, conn: ssl.SSLSocket, pdu: Pdu, source: tuple[str, int], dport: int) -> None:
        if pdu.pdu_type == PduType.KEEPALIVE:
            with contextlib.suppress(X3Error):
                conn.sendall(keepalive_ack(pdu))
            with self.lock:
                self.tally.keepalives += 1
            return
        if pdu.pdu_type != PduType.X3 or pdu.payload_format not in (5, 6):
            return
        xid = str(pdu.xid)
        stamp = pdu.attribute(AttributeType.TIMESTAMP)
        when = time.time()
        if stamp is not None and len(stamp) == 8:
            when = int.from_bytes(stamp[:4], "big") + int.from_bytes(stamp[4:], "big") / 1e9
        sequence = pdu.attribute(AttributeType.SEQUENCE_NUMBER)
        with self.lock:
            if self._count is not None and self.tally.total >= self._count:
                self.stop.set()
                return
            writer = self.writer_for(source, dport, xid)
            writer.write(pdu.payload, when)
            if self.flush_each:
                writer.flush()
            direction = DIRECTIONS.get(pdu.direction, str(pdu.direction))
            self.tally.per_source[f"{source[0]}:{source[1]}"] += 1
            self.tally.per_xid.setdefault(xid, Counter())[direction] += 1
            if self.print_ids:
                print(json.dumps({
                    "copy": self.tally.total, "source": f"{source[0]}:{source[1]}", "xid": xid,
                    "direction": direction,
                    "sequence": None if sequence is None else int.from_bytes(sequence, "big"),
                    "correlation_id": int.from_bytes(pdu.correlation_id, "big"),
                    "timestamp": when, "length": len(pdu.payload)}), flush=True)  # fmt: skip
            if self._count is not None and self.tally.total >= self._count:
                self.stop.set()


def xid_key(xid: str) -> str:
    """The file-name key of an XID for ``--split intercept``."""
    return f"x3-{uuid.UUID(xid)}"
