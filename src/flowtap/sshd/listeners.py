"""The listening sockets of one service (SSH: NETCONF, DTCP; HTTPS: X1), moved by commits
without a gap.

A service listens on a set of endpoints, one listener per (address, port); the address ``""``
is every address (IPv4 and IPv6). A commit diffs the old set against the new one: unchanged
endpoints keep their listener, new ones are bound in prepare (so a port held by another process
fails the commit and the old listeners keep serving), and removed ones are closed in commit.
Established sessions never depend on a listener and survive every change.

Listeners set ``SO_REUSEPORT`` (measured on Linux: without it a specific address cannot be bound
while the wildcard holds the same port, in either order, and ``SO_REUSEADDR`` does not help), so
narrowing ``0.0.0.0:P`` to ``127.0.0.1:P``, or widening back, binds the new socket before the old
one closes. The port is shared only with sockets of this user that set the option too: a port
bound by another process without it still fails the bind with "address already in use". Because
the option would also let two services of this process share a port (the kernel would then deal
connections to both), an endpoint that overlaps another service's fails here with the same
"address already in use" the kernel gives for a foreign socket: whoever moves NETCONF onto the
(hidden) DTCP port learns nothing a busy port would not tell them.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flowtap.errors import CommitFailed

LOG = logging.getLogger(__name__)
OPERATOR_LOG = logging.getLogger("flowtap.operator")  # flowtap.oplog's, named: sshd is below it

Endpoint = tuple[str, int]  # (address, port); address "" is every address
EVERY_ADDRESS = ""


def endpoints(addresses: Iterable[str], port: int) -> frozenset[Endpoint]:
    """The endpoints of ``listen-address`` leaves (none: every address) on ``port``."""
    return frozenset((address, port) for address in (tuple(addresses) or (EVERY_ADDRESS,)))


def _covers(wide: str, address: str) -> bool:
    """Whether a listener on ``wide`` takes connections to ``address`` (same port)."""
    if wide in (EVERY_ADDRESS, "::") or wide == address:
        return True
    if wide == "0.0.0.0":
        try:
            return ipaddress.ip_address(address).version == 4
        except ValueError:
            return False
    return False


def _overlap(a: Endpoint, b: Endpoint) -> bool:
    return a[1] == b[1] != 0 and (_covers(a[0], b[0]) or _covers(b[0], a[0]))


class Listener(Protocol):
    """What a bind returns: an asyncssh acceptor or an asyncio server."""

    @property
    def sockets(self) -> Sequence[socket.socket]: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


# listens on (address or None for every address, port); raises OSError
Binder = Callable[[str | None, int], Awaitable[Listener]]


@dataclass
class Move:
    """A prepared change: listeners bound for it, and endpoints it closes when committed."""

    opened: dict[Endpoint, Listener] = field(default_factory=dict)
    removed: frozenset[Endpoint] = frozenset()


class ListenerSet:
    _all: list[ListenerSet] = []  # every service's set in this process (see the module doc)

    def __init__(
        self, bind: Binder, service: str, path: str, *, confidential: bool = False
    ) -> None:
        self._bind_to = bind
        self._moves_log = LOG if confidential else OPERATOR_LOG
        self._service = service  # for messages: "NETCONF", "DTCP"
        self._path = path  # the configuration node a bind failure points at
        self._open: dict[Endpoint, Listener] = {}
        self._prepared: frozenset[Endpoint] = frozenset()
        ListenerSet._all.append(self)

    def _held_elsewhere(self, endpoint: Endpoint) -> bool:
        return any(_overlap(endpoint, theirs) for other in ListenerSet._all if other is not self
                   for theirs in (*other._open, *other._prepared))  # fmt: skip

    async def _bind(self, endpoint: Endpoint) -> Listener:
        if self._held_elsewhere(endpoint):
            raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
        address, port = endpoint
        return await self._bind_to(address or None, port)

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        return frozenset(self._open)

    @property
    def port(self) -> int | None:
        """The port actually bound (differs from the configured one only for port 0)."""
        for _, listener in sorted(self._open.items()):
            return int(listener.sockets[0].getsockname()[1])
        return None

    async def prepare(self, wanted: frozenset[Endpoint]) -> Move:
        """Bind every endpoint of ``wanted`` not open yet.

        Raises:
            CommitFailed: an endpoint cannot be bound (resource-denied); nothing was changed.
        """
        move = Move(removed=frozenset(self._open) - wanted)
        for endpoint in sorted(wanted - frozenset(self._open)):
            address, port = endpoint
            try:
                move.opened[endpoint] = await self._bind(endpoint)
                self._prepared = frozenset(move.opened)
            except OSError as exc:
                await self.abort(move)
                where = f"{address} port {port}" if address else f"port {port}"
                # asyncio words the same errno per call site; the reason alone reads the same
                reason = os.strerror(exc.errno) if exc.errno else exc.strerror
                raise CommitFailed(
                    f"Cannot listen for {self._service} on {where}: {reason}",
                    tag="resource-denied", path=self._path,
                ) from None  # fmt: skip
        return move

    def commit(self, move: Move) -> None:
        """Serve the prepared listeners and close the removed ones; never fails."""
        self._open.update(move.opened)
        self._prepared = frozenset()
        for endpoint in move.removed:
            self._open.pop(endpoint).close()  # stops listening; sessions carry on
        if move.opened or move.removed:
            level = logging.DEBUG if self._moves_log is LOG else logging.INFO
            self._moves_log.log(level, "%s listening on %s", self._service, self.describe())

    async def abort(self, move: Move) -> None:
        self._prepared = frozenset()
        for listener in move.opened.values():
            listener.close()
            await listener.wait_closed()
        move.opened.clear()

    def close(self) -> None:
        for listener in self._open.values():
            listener.close()
        self._open.clear()
        if self in ListenerSet._all:
            ListenerSet._all.remove(self)

    def describe(self) -> str:
        if not self._open:
            return "nothing"
        return ", ".join(f"{a or '*'} port {p}" for a, p in sorted(self._open))
