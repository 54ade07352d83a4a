"""One capture worker's TLS connection to one X3 destination, driven from the worker's loop.

The worker never blocks on a destination: the socket is non-blocking and TLS runs over memory
BIOs (``SSLContext.wrap_bio``), so connecting, the handshake, sending and reading keepalives are
steps :meth:`X3Link.pump` takes whenever the worker passes by (after each ring block, and at
least every ``TICK`` while the link has work). The forwarding of the original traffic never
waits for X3: what the destination cannot take waits here, up to ``MAX_BACKLOG`` bytes, and
copies beyond that are dropped and counted against their criterion.

What may still leave, and when (the DeactivateTask guarantee): copies wait as *plaintext*
(packet, template, direction, time) until the kernel can take their ciphertext, so a copy of a
removed criterion that has not reached the kernel is simply taken out (:meth:`purge`). A PDU
that did reach the kernel but is not on the wire yet (SIOCOUTQNSD) could leave after the
removal is acknowledged; :meth:`settle` waits up to ``SETTLE`` for it to go, and resets the
connection otherwise (the kernel then sends nothing more; the link reconnects and the other
criteria's waiting copies follow). So once a removal is acknowledged, no PDU of it leaves.

Sequence numbers (attribute 8) count per connection from 0 and are given when a PDU is
encrypted, so they stay gap-free and increasing on every connection, a reconnect included
(LI-HANDOVER.md 3.3). The timestamp (attribute 9) is the time the worker queued the copy.
Keepalives: the destination's (type 3) are answered (type 4, its sequence number echoed); this
end sends one after ``KEEPALIVE_IDLE`` without traffic and reconnects when its answer does not
come within ``KEEPALIVE_WAIT``. The destination's certificate must chain to the configured CAs
(``client-ca-file``); its name is not checked (destinations are given by address).
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from flowtap.dataplane.memory import detach
from flowtap.dataplane.x3.pdu import PduType, keepalive, keepalive_ack
from flowtap.dataplane.x3.stream import X3StreamDecoder
from flowtap.dataplane.x3.template import X3Template, encode_backlog
from flowtap.errors import X3Error

MAX_BACKLOG: Final = 8 << 20  # plaintext bytes waiting per link and worker
WRITE_SIZE: Final = 64 << 10  # plaintext handed to TLS at once
SETTLE: Final = 0.05  # seconds a removal waits for the kernel to send what it holds
TICK: Final = 0.01  # the worker's longest sleep while a link has work
FIRST_RETRY: Final = 0.25
LAST_RETRY: Final = 30.0
HANDSHAKE_TIME: Final = 10.0
KEEPALIVE_IDLE: Final = 30.0
KEEPALIVE_WAIT: Final = 30.0
_SIOCOUTQNSD: Final = 0x894B  # bytes in the send queue not yet sent
_INT: Final = struct.Struct("i")

DOWN, CONNECTING, HANDSHAKE, UP = "down", "connecting", "handshake", "up"
# (criterion's owner token, template, direction, packet, time in ns)
Copy = tuple[object, X3Template, int, bytes | memoryview, int]


class X3Link:
    """Copies for one destination ``(address, port)``, and the connection that carries them:
    kept up (reconnecting with backoff from ``FIRST_RETRY`` to ``LAST_RETRY``) for as long as
    the link exists, so that a task's first copy does not wait for a handshake and a
    destination that is down shows as such before any copy is due."""

    def __init__(
        self,
        peer: tuple[str, int],
        context: ssl.SSLContext,
        on_state: Callable[[bool, str], None] = lambda up, why: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.peer = peer
        self.context = context
        self._on_state = on_state
        self._clock = clock
        self.state = DOWN
        self.backlog: deque[Copy] = deque()
        self.backlog_bytes = 0
        self.sent = 0  # PDUs handed to the kernel, every connection together
        self._sock: socket.socket | None = None
        self._tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._cipher = bytearray()  # encrypted, not yet taken by the kernel
        self._decoder = X3StreamDecoder()
        self._sequence = 0
        self._keepalives = 0
        self._retry_at = 0.0
        self._backoff = FIRST_RETRY
        self._since = 0.0  # when the current connection attempt began
        self._last_traffic = 0.0
        self._keepalive_due: float | None = None  # when our keepalive's answer must be in
        self._reported: bool | None = None
        self.readable = False  # the worker saw the socket readable since the last read
        self._read_at = 0.0  # when to read even so
        self._why = ""

    # ---- copies ----------------------------------------------------------------------------

    def queue(self, owner: object, template: X3Template, direction: int,
              packet: bytes | memoryview, when_ns: int) -> bool:  # fmt: skip
        """Queue one copy; False (and nothing queued) when the backlog is full."""
        size = len(packet) + 60
        if self.backlog_bytes + size > MAX_BACKLOG:
            return False
        self.backlog.append((owner, template, direction, packet, when_ns))
        self.backlog_bytes += size
        return True

    def queue_many(self, copies: list[Copy]) -> int:
        """Queue ``copies`` in order while the backlog has room; returns how many were."""
        size = sum(len(copy[3]) for copy in copies) + 60 * len(copies)
        if self.backlog_bytes + size <= MAX_BACKLOG:
            self.backlog.extend(copies)
            self.backlog_bytes += size
            return len(copies)
        taken = 0
        for copy in copies:
            if not self.queue(*copy):
                break
            taken += 1
        return taken

    def detach(self, newest: int) -> None:
        """Give the ``newest`` waiting copies bytes of their own (they were queued as views of
        a ring block that goes back to the kernel now)."""
        backlog = self.backlog
        tail = [backlog.pop() for _ in range(min(newest, len(backlog)))]
        backlog.extend((o, t, d, detach(p), w) for o, t, d, p, w in reversed(tail))

    def purge(self, owner: object) -> int:
        """Take every waiting copy of ``owner`` out; returns how many."""
        kept = deque(c for c in self.backlog if c[0] != owner)
        gone = len(self.backlog) - len(kept)
        if gone:
            self.backlog = kept
            self.backlog_bytes = sum(len(c[3]) + 60 for c in kept)
        return gone

    def settle(self) -> None:
        """Return once nothing encrypted waits here or in the kernel (see the module doc)."""
        deadline = self._clock() + SETTLE
        while self._sock is not None and (self._cipher or _unsent(self._sock)):
            if self._clock() >= deadline:
                self._fail(abort=True)
                return
            self._send_cipher()
            if self._cipher or _unsent(self._sock):
                time.sleep(0.001)

    @property
    def busy(self) -> bool:
        """Whether the link has work that no packet will prompt (see :data:`TICK`)."""
        return self.state in (CONNECTING, HANDSHAKE) or bool(self.backlog or self._cipher)

    @property
    def room(self) -> int:
        """Bytes the backlog can still take."""
        return MAX_BACKLOG - self.backlog_bytes

    def wants(self) -> tuple[int, int] | None:
        """(socket, poll events) to wake the worker for: readable (keepalives, handshake), and
        writable while something waits to be sent; None without a connection."""
        if self._sock is None:
            return None
        events = select.POLLIN
        if self.state == CONNECTING or self._cipher or (self.state == UP and self.backlog):
            events |= select.POLLOUT
        return self._sock.fileno(), events

    def close(self) -> None:
        """Close (gracefully: what the kernel holds still goes; a removal settled before)."""
        self._fail(retry=False)
        self.backlog.clear()
        self.backlog_bytes = 0

    # ---- the connection ----------------------------------------------------------------------

    def pump(self) -> None:
        """Take every step that can be taken now without waiting."""
        now = self._clock()
        try:
            if self.state == DOWN and now >= self._retry_at:
                self._connect(now)
            if self.state == CONNECTING:
                self._connected(now)
            if self.state == HANDSHAKE:
                self._handshake(now)
            if self.state == UP:
                if self.readable or now >= self._read_at:
                    # the worker's poll says when the destination sent something; without it a
                    # recv per pump (one per ring block) would find nothing nearly every time
                    self.readable, self._read_at = False, now + TICK
                    self._read()
                self._keepalive(now)
                self._write()
        except (OSError, ssl.SSLError, X3Error) as exc:
            self._fail(why=_why(exc))

    def _connect(self, now: float) -> None:
        family = socket.AF_INET6 if ":" in self.peer[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(self.peer)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(code, os.strerror(code))
        self._sock, self._since, self.state = sock, now, CONNECTING

    def _connected(self, now: float) -> None:
        assert self._sock is not None
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))
        try:
            self._sock.getpeername()
        except OSError:
            if now - self._since > HANDSHAKE_TIME:
                raise
            return  # not yet
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = self.context.wrap_bio(self._in, self._out, server_side=False)
        self.state = HANDSHAKE

    def _handshake(self, now: float) -> None:
        assert self._tls is not None
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._cipher += self._out.read()
            self._send_cipher()
            self._receive()
            if now - self._since > HANDSHAKE_TIME:
                raise OSError(errno.ETIMEDOUT, "TLS handshake") from None
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return
        self._cipher += self._out.read()
        self._send_cipher()
        self.state, self._sequence, self._keepalives = UP, 0, 0
        self._decoder = X3StreamDecoder()
        self._backoff, self._last_traffic, self._keepalive_due = FIRST_RETRY, now, None
        self._report(True)

    def _write(self) -> None:
        """Encrypt waiting copies while the kernel takes what was encrypted before."""
        tls = self._tls
        assert tls is not None
        self._send_cipher()
        while self.backlog and not self._cipher:
            out, count, size = encode_backlog(self.backlog, WRITE_SIZE, self._sequence)
            self.backlog_bytes -= size
            self.sent += count
            self._sequence += count
            tls.write(out)
            self._last_traffic = self._clock()
            self._send_fresh(self._out.read())

    def _send_fresh(self, data: bytes) -> None:
        """Send newly encrypted bytes (nothing older waits: see :meth:`_write`), keeping what
        the kernel does not take; one copy less than going through :attr:`_cipher`."""
        assert self._sock is not None and not self._cipher
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._cipher += memoryview(data)[sent:]

    def _send_cipher(self) -> None:
        if not self._cipher or self._sock is None:
            return
        try:
            sent = self._sock.send(self._cipher)
        except BlockingIOError:
            return
        del self._cipher[:sent]

    def _receive(self) -> None:
        """Feed what the socket holds to TLS; a closed stream is a failure."""
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            if not data:
                raise OSError(errno.ECONNRESET, "closed by the destination")
            self._in.write(data)

    def _read(self) -> None:
        """Answer the destination's keepalives; take the answers to ours."""
        tls = self._tls
        assert tls is not None
        self._receive()
        while True:
            try:
                data = tls.read(65536)
            except ssl.SSLWantReadError:
                break
            if not data:
                raise OSError(errno.ECONNRESET, "TLS closed by the destination")
            for pdu in self._decoder.feed(data):
                if pdu.pdu_type == PduType.KEEPALIVE:
                    tls.write(keepalive_ack(pdu))
                    self._cipher += self._out.read()
                elif pdu.pdu_type == PduType.KEEPALIVE_ACK:
                    self._keepalive_due = None

    def _keepalive(self, now: float) -> None:
        if self._keepalive_due is not None:
            if now > self._keepalive_due:
                raise OSError(errno.ETIMEDOUT, "keepalive unanswered")
            return
        if now - self._last_traffic >= KEEPALIVE_IDLE and self._tls is not None:
            self._tls.write(keepalive(self._keepalives))
            self._keepalives += 1
            self._cipher += self._out.read()
            self._last_traffic, self._keepalive_due = now, now + KEEPALIVE_WAIT

    def _fail(self, *, abort: bool = False, retry: bool = True, why: str = "closed") -> None:
        sock, self._sock, self._tls = self._sock, None, None
        if sock is not None:
            if abort:  # RST: the kernel drops what it still holds for the destination
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        self._cipher.clear()
        self.state = DOWN
        self._retry_at = self._clock() + (self._backoff if retry else 0.0)
        self._backoff = min(self._backoff * 2, LAST_RETRY)
        self._report(False, why)

    def _report(self, up: bool, why: str = "") -> None:
        """Tell the appliance of a change (and of a new reason while down: the first attempt's
        "connection refused" may become a handshake failure)."""
        if self._reported != up or (not up and why != self._why):
            self._reported, self._why = up, why
            self._on_state(up, why)


def _why(exc: BaseException) -> str:
    """Why a link is down, for the ADMF's GetDestinationDetails."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return f"{exc.strerror or os.strerror(exc.errno)}"
    return str(exc) or type(exc).__name__


def _unsent(sock: socket.socket) -> int:
    try:
        return int(_INT.unpack(fcntl.ioctl(sock.fileno(), _SIOCOUTQNSD, bytes(4)))[0])
    except OSError:
        return 0


def client_context(certificate_file: str, private_key_file: str, ca_file: str) -> ssl.SSLContext:
    """X3's TLS client side: this NE's certificate (the X1 one), TLS 1.2 or later, and the
    destination's certificate verified against ``ca_file`` (its name is not checked: a
    destination is an address).

    Raises:
        OSError, ssl.SSLError: a file cannot be read or used.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(certificate_file, private_key_file)
    context.load_verify_locations(cafile=ca_file)
    return context
