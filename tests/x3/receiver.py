"""A real X3 receiver for tests: a TLS server (mutual TLS, the test PKI) in a thread that decodes
every PDU, answers keepalives if asked to, and can stop reading to fill the sender's window."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flowtap.dataplane.x3.pdu import Pdu, PduType, keepalive, keepalive_ack
from flowtap.dataplane.x3.stream import X3StreamDecoder
from flowtap.tools.x3_collector import server_context
from tests.x1.pki import Authority, Issued


@dataclass
class Connection:
    sock: ssl.SSLSocket
    pdus: list[Pdu] = field(default_factory=list)
    closed: bool = False


class X3Receiver:
    def __init__(self, ca: Authority, server: Issued, *, host: str = "127.0.0.1",
                 port: int = 0, answer_keepalives: bool = True,
                 on_pdu: Callable[[Pdu, float], None] | None = None) -> None:  # fmt: skip
        self.on_pdu = on_pdu  # called with each PDU and its arrival (time.monotonic())
        self.context = server_context(str(server.cert), str(server.key), str(ca.cert_path))
        self.answer_keepalives = answer_keepalives
        self.reading = threading.Event()
        self.reading.set()
        self.listener = socket.create_server((host, port), reuse_port=True)
        self.port = self.listener.getsockname()[1]
        self.connections: list[Connection] = []
        self.failed_handshakes = 0
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def pdus(self) -> list[Pdu]:
        with self._lock:
            return [p for c in self.connections for p in c.pdus]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Pdu]:
        deadline = time.monotonic() + timeout
        while len(self.pdus) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.pdus

    def send_keepalive(self, number: int) -> None:
        with self._lock:
            self.connections[-1].sock.sendall(keepalive(number))

    def close(self) -> None:
        self._stop = True
        self.reading.set()
        self.listener.close()
        with self._lock:
            for c in self.connections:
                with contextlib.suppress(OSError):
                    c.sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                plain, _ = self.listener.accept()
            except OSError:
                return
            try:
                tls = self.context.wrap_socket(plain, server_side=True)
            except (ssl.SSLError, OSError):
                self.failed_handshakes += 1
                plain.close()
                continue
            conn = Connection(tls)
            with self._lock:
                self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: Connection) -> None:
        decoder = X3StreamDecoder()
        while not self._stop:
            self.reading.wait()
            try:
                data = conn.sock.recv(65536)
            except (OSError, ssl.SSLError):
                break
            if not data:
                break
            now = time.monotonic()
            for pdu in decoder.feed(data):
                if self.on_pdu is not None:
                    self.on_pdu(pdu, now)
                with self._lock:
                    conn.pdus.append(pdu)
                if pdu.pdu_type == PduType.KEEPALIVE and self.answer_keepalives:
                    conn.sock.sendall(keepalive_ack(pdu))
        conn.closed = True
