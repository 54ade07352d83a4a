"""``connection-limit`` and ``rate-limit`` of an SSH service (NETCONF, DTCP), per IP family.

Junos (12.3 and later) counts both limits separately for IPv4 and IPv6; so does this class.
An IPv4-mapped IPv6 peer (``::ffff:a.b.c.d``) counts as IPv4. The decision is taken when the TCP
connection is accepted, before the SSH version exchange, so a refused connection costs no key
exchange and no RADIUS query (SECURITY §3.6).

Decisions:
- ``rate-limit`` counts connections *admitted* in the sliding window (60 s): a refused attempt
  does not extend the refusal, so memory stays bounded by the limit under a flood and admission
  recovers as soon as the window slides past the oldest admitted connection.
- The rate is checked before the connection count; a connection refused for either reason is
  not counted at all.
- A commit that changes the limits applies at once (``update``). Connections already open are
  never dropped for being over a lowered limit; new ones wait until the count is below it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncssh

RATE_LIMIT = "rate-limit"
CONNECTION_LIMIT = "connection-limit"


def family_of(address: str) -> int:
    """4 or 6; IPv4-mapped IPv6 addresses are IPv4."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return 4
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is None:
        return 6
    return 4


@dataclass(slots=True)
class _Family:
    active: int = 0
    admitted: deque[float] = field(default_factory=deque)


class Admission:
    """Counts open connections and recent admissions per IP family."""

    def __init__(
        self,
        connection_limit: int,
        rate_limit: int,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connection_limit = connection_limit
        self.rate_limit = rate_limit
        self.window = window
        self._clock = clock
        self._families = {4: _Family(), 6: _Family()}

    def update(self, connection_limit: int, rate_limit: int) -> None:
        self.connection_limit = connection_limit
        self.rate_limit = rate_limit

    def admit(self, address: str) -> str | None:
        """Admit a new connection from ``address``: None, or why it is refused. An admitted
        connection must be :meth:`release`\\ d when it closes."""
        fam = self._families[family_of(address)]
        now = self._clock()
        admitted = fam.admitted
        while admitted and now - admitted[0] >= self.window:
            admitted.popleft()
        if len(admitted) >= self.rate_limit:
            return RATE_LIMIT
        if fam.active >= self.connection_limit:
            return CONNECTION_LIMIT
        admitted.append(now)
        fam.active += 1
        return None

    def release(self, address: str) -> None:
        fam = self._families[family_of(address)]
        fam.active = max(0, fam.active - 1)

    def active(self, family: int) -> int:
        return self._families[family].active


class ConnectionGate:
    """Admits a service's SSH connections and keeps an admitted one counted until it closes."""

    def __init__(self, connection_limit: int, rate_limit: int, *, window: float = 60.0) -> None:
        self.admission = Admission(connection_limit, rate_limit, window=window)
        self.connections: dict[asyncssh.SSHServerConnection, str] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    def admit(self, conn: asyncssh.SSHServerConnection) -> str | None:
        """``sshd.listen``'s admission callback: None, or why the connection is refused."""
        peer = conn.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        refusal = self.admission.admit(address)
        if refusal is None:
            self.connections[conn] = address
            watcher = asyncio.get_running_loop().create_task(self._release_on_close(conn))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
        return refusal

    async def _release_on_close(self, conn: asyncssh.SSHServerConnection) -> None:
        try:
            await conn.wait_closed()
        finally:
            address = self.connections.pop(conn, "")
            self.admission.release(address)

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    async def drained(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until every closed connection has been released."""
        if self._watchers:
            await asyncio.wait(set(self._watchers), timeout=timeout)
