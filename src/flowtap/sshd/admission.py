"""Who may hold a connection to an SSH service (NETCONF, DTCP): Junos's ``connection-limit`` and
``rate-limit``, and a pre-authentication pool modelled on OpenSSH's ``MaxStartups`` and
``PerSourceMaxStartups``.

A connection is *pre-authentication* from the TCP accept until the service accepts its login
(authenticated and, for DTCP, holding ``flow-tap-operation``); then it is *logged in*. Admission
is decided when the TCP connection is accepted, before the SSH version exchange, so a refused
connection costs no key exchange and no RADIUS query (SECURITY §3.6); the login is decided again
when authentication completes.

Decisions (issue 13 item 3; netconf/CONFORMANCE.md "Admission"):
- ``connection-limit`` (Junos: per IP family) counts logged-in connections only. Connections that
  have not logged in have a pool of their own: ``max-pre-auth`` in all and
  ``max-pre-auth-per-source`` from one address. A host that never logs in can fill at most its
  own share of that pool, never the logged-in slots of a mediation device or an administrator.
- When the pre-authentication pool is full, a connection from a source holding fewer of its
  slots than the source holding the most closes the oldest connection of the latter (OpenSSH
  drops at random instead): hosts that never log in only take turns with each other.
- ``rate-limit`` is counted per source address over the connections accepted (a host flooding
  connection attempts only throttles itself), and per IP family over the logins accepted (Junos's
  per-family count, but only of sessions that logged in, so it cannot be spent by hosts without
  credentials). Counts cover a sliding window (60 s); a refused attempt is not counted, so a
  flood does not extend its own refusal and memory stays bounded by the limits.
- An IPv4-mapped IPv6 peer (``::ffff:a.b.c.d``) is the IPv4 address it maps.
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
from typing import Protocol

import asyncssh

RATE_LIMIT = "rate-limit"
CONNECTION_LIMIT = "connection-limit"
MAX_PRE_AUTH = "max-pre-auth"
MAX_PRE_AUTH_PER_SOURCE = "max-pre-auth-per-source"


def source_of(address: str) -> str:
    """The canonical source address: no zone, IPv4-mapped IPv6 as IPv4."""
    try:
        parsed = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def family_of(address: str) -> int:
    """4 or 6; IPv4-mapped IPv6 addresses are IPv4."""
    return 6 if ":" in source_of(address) else 4


class ServiceLimits(Protocol):
    """The limit leaves of a service's configuration (``model.NetconfService``, ``DtcpService``)."""

    @property
    def connection_limit(self) -> int: ...
    @property
    def rate_limit(self) -> int: ...
    @property
    def max_pre_auth(self) -> int: ...
    @property
    def max_pre_auth_per_source(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Limits:
    connection_limit: int = 75
    rate_limit: int = 150
    max_pre_auth: int = 32
    max_pre_auth_per_source: int = 10

    @classmethod
    def of(cls, service: ServiceLimits) -> Limits:
        return cls(service.connection_limit, service.rate_limit, service.max_pre_auth,
                   service.max_pre_auth_per_source)  # fmt: skip


@dataclass(slots=True)
class _Family:
    logged_in: int = 0
    logins: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class _Source:
    pre_auth: int = 0
    accepted: deque[float] = field(default_factory=deque)


def _slide(times: deque[float], now: float, window: float) -> int:
    while times and now - times[0] >= window:
        times.popleft()
    return len(times)


class Admission:
    """Counts pre-authentication connections per source and logged-in ones per IP family."""

    def __init__(
        self, limits: Limits, *, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.window = window
        self._clock = clock
        self._families = {4: _Family(), 6: _Family()}
        self._sources: dict[str, _Source] = {}
        self._pre_auth = 0
        self._sweep_at = 1024

    def update(self, limits: Limits) -> None:
        self.limits = limits

    def admit(self, address: str) -> str | None:
        """A new TCP connection from ``address``: None, or why it is refused. An admitted
        connection is pre-authentication until :meth:`login`; :meth:`release` it when it closes."""
        now = self._clock()
        limits = self.limits
        source = self._source(source_of(address), now)
        if len(source.accepted) >= limits.rate_limit:
            return RATE_LIMIT
        if source.pre_auth >= limits.max_pre_auth_per_source:
            return MAX_PRE_AUTH_PER_SOURCE
        if self._pre_auth >= limits.max_pre_auth:
            return MAX_PRE_AUTH
        refusal = self._login_refusal(self._families[family_of(address)], now)
        if refusal is not None:  # it could not log in anyway: spare the key exchange
            return refusal
        source.accepted.append(now)
        source.pre_auth += 1
        self._pre_auth += 1
        return None

    def login(self, address: str) -> str | None:
        """An admitted connection from ``address`` logged in: None (it now holds a logged-in
        slot), or why it must be closed (it is released at once)."""
        fam = self._families[family_of(address)]
        refusal = self._login_refusal(fam, self._clock())
        self._leave_pre_auth(source_of(address))
        if refusal is None:
            fam.logged_in += 1
            fam.logins.append(self._clock())
        return refusal

    def release(self, address: str, *, logged_in: bool) -> None:
        if logged_in:
            fam = self._families[family_of(address)]
            fam.logged_in = max(0, fam.logged_in - 1)
        else:
            self._leave_pre_auth(source_of(address))

    def logged_in(self, family: int) -> int:
        return self._families[family].logged_in

    def pre_auth(self, address: str | None = None) -> int:
        """Pre-authentication connections in all, or from ``address``."""
        if address is None:
            return self._pre_auth
        source = self._sources.get(source_of(address))
        return 0 if source is None else source.pre_auth

    def _login_refusal(self, fam: _Family, now: float) -> str | None:
        if _slide(fam.logins, now, self.window) >= self.limits.rate_limit:
            return RATE_LIMIT
        if fam.logged_in >= self.limits.connection_limit:
            return CONNECTION_LIMIT
        return None

    def _leave_pre_auth(self, key: str) -> None:
        source = self._sources.get(key)
        if source is None or source.pre_auth == 0:
            return
        source.pre_auth -= 1
        self._pre_auth -= 1

    def _source(self, key: str, now: float) -> _Source:
        if len(self._sources) >= self._sweep_at:
            # forget sources with nothing open and nothing in the window; amortised: the next
            # sweep waits until the table has doubled again
            for name, entry in list(self._sources.items()):
                if not entry.pre_auth and not _slide(entry.accepted, now, self.window):
                    del self._sources[name]
            self._sweep_at = max(1024, 2 * len(self._sources))
        source = self._sources.get(key)
        if source is None:
            source = self._sources[key] = _Source()
        _slide(source.accepted, now, self.window)
        return source


class ConnectionGate:
    """Admits a service's SSH connections, promotes them at login, and keeps each counted until
    it closes."""

    def __init__(self, limits: Limits, *, window: float = 60.0) -> None:
        self.admission = Admission(limits, window=window)
        self.connections: dict[asyncssh.SSHServerConnection, tuple[str, bool]] = {}
        self._watchers: set[asyncio.Task[None]] = set()

    def admit(self, conn: asyncssh.SSHServerConnection) -> str | None:
        """``sshd``'s admission callback: None, or why the connection is refused."""
        address = _peer(conn)
        refusal = self.admission.admit(address)
        if refusal == MAX_PRE_AUTH and self._evict_for(address):
            refusal = self.admission.admit(address)
        if refusal is None:
            self.connections[conn] = (address, False)
            watcher = asyncio.get_running_loop().create_task(self._release_on_close(conn))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
        return refusal

    def login(self, conn: asyncssh.SSHServerConnection) -> str | None:
        """The service accepted the login of ``conn``: None, or why it must be closed."""
        entry = self.connections.get(conn)
        if entry is None:
            return CONNECTION_LIMIT  # not admitted (already closing): nothing to promote
        address, logged_in = entry
        if logged_in:
            return None
        refusal = self.admission.login(address)
        if refusal is None:
            self.connections[conn] = (address, True)
        else:
            del self.connections[conn]  # released now: its close must not release it again
        return refusal

    def _evict_for(self, address: str) -> bool:
        """The pre-authentication pool is full: make room for ``address`` by closing the oldest
        pre-authentication connection of the source holding the most, when that source holds
        more than ``address`` does (hosts that never log in cannot keep a newcomer out by
        spreading over many addresses: they only take turns with each other)."""
        mine = source_of(address)
        counts: dict[str, int] = {}
        oldest: dict[str, asyncssh.SSHServerConnection] = {}
        for conn, (peer, logged_in) in self.connections.items():  # in order of acceptance
            if not logged_in:
                source = source_of(peer)
                counts[source] = counts.get(source, 0) + 1
                oldest.setdefault(source, conn)
        if not counts:
            return False
        heaviest = max(counts, key=lambda source: counts[source])
        if counts[heaviest] <= counts.get(mine, 0):
            return False
        victim = oldest[heaviest]
        peer, _ = self.connections.pop(victim)
        self.admission.release(peer, logged_in=False)
        victim.abort()
        return True

    async def _release_on_close(self, conn: asyncssh.SSHServerConnection) -> None:
        try:
            await conn.wait_closed()
        finally:
            entry = self.connections.pop(conn, None)
            if entry is not None:
                self.admission.release(entry[0], logged_in=entry[1])

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()

    async def drained(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until every closed connection has been released."""
        if self._watchers:
            await asyncio.wait(set(self._watchers), timeout=timeout)


def _peer(conn: asyncssh.SSHServerConnection) -> str:
    peer = conn.get_extra_info("peername")
    return str(peer[0]) if peer else ""
