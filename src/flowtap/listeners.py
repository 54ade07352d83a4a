"""The listening sockets of one SSH service, moved by commits without a gap.

A service listens on a set of endpoints, one listener per (address, port); the address ``""``
is every address (IPv4 and IPv6). A commit diffs the old set against the new one: unchanged
endpoints keep their listener, new ones are bound in prepare (so a port held by another process
fails the commit and the old listeners keep serving), and removed ones are closed in commit.
Established sessions never depend on a listener and survive every change.

Listeners set ``SO_REUSEPORT`` (measured on Linux: without it a specific address cannot be bound
while the wildcard holds the same port, in either order, and ``SO_REUSEADDR`` does not help), so
narrowing ``0.0.0.0:P`` to ``127.0.0.1:P``, or widening back, binds the new socket before the old
one closes. The port is shared only with sockets of this user that set the option too: a port
bound by another process without it still fails the bind with "address already in use".
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncssh

from flowtap.errors import CommitFailed
from flowtap.sshd import SshServer

LOG = logging.getLogger(__name__)

Endpoint = tuple[str, int]  # (address, port); address "" is every address
EVERY_ADDRESS = ""


def endpoints(addresses: Iterable[str], port: int) -> frozenset[Endpoint]:
    """The endpoints of ``listen-address`` leaves (none: every address) on ``port``."""
    return frozenset((address, port) for address in (tuple(addresses) or (EVERY_ADDRESS,)))


@dataclass
class Move:
    """A prepared change: listeners bound for it, and endpoints it closes when committed."""

    opened: dict[Endpoint, asyncssh.SSHAcceptor] = field(default_factory=dict)
    removed: frozenset[Endpoint] = frozenset()


class ListenerSet:
    def __init__(self, server: SshServer, service: str, path: str) -> None:
        self.server = server
        self._service = service  # for messages: "NETCONF", "DTCP"
        self._path = path  # the configuration node a bind failure points at
        self._open: dict[Endpoint, asyncssh.SSHAcceptor] = {}

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
                move.opened[endpoint] = await self.server.bind(address or None, port)
            except OSError as exc:
                await self.abort(move)
                where = f"{address} port {port}" if address else f"port {port}"
                raise CommitFailed(
                    f"Cannot listen for {self._service} on {where}: {exc.strerror}",
                    tag="resource-denied", path=self._path,
                ) from None  # fmt: skip
        return move

    def commit(self, move: Move) -> None:
        """Serve the prepared listeners and close the removed ones; never fails."""
        self._open.update(move.opened)
        for endpoint in move.removed:
            self._open.pop(endpoint).close()  # stops listening; sessions carry on
        if move.opened or move.removed:
            LOG.info("%s listening on %s", self._service, self.describe())

    async def abort(self, move: Move) -> None:
        for listener in move.opened.values():
            listener.close()
            await listener.wait_closed()
        move.opened.clear()

    def close(self) -> None:
        for listener in self._open.values():
            listener.close()
        self._open.clear()

    def describe(self) -> str:
        if not self._open:
            return "nothing"
        return ", ".join(f"{a or '*'} port {p}" for a, p in sorted(self._open))
