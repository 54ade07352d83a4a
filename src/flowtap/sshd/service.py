"""The SSH half of a service's commit hook, shared by NETCONF and DTCP-over-SSH.

A service composes one :class:`SshService` and adds what is its own (the subsystem, what runs on a
channel, its checks). The SshService owns:
- the :class:`~flowtap.sshd.server.SshServer` with the appliance's host key and the shared
  authenticator;
- admission (:class:`~flowtap.sshd.admission.ConnectionGate`): decided when a TCP connection is
  accepted, before key exchange and before any RADIUS query, and again at login, where a
  service's own refusal (``refuse``) comes first and a login it accepts must find a logged-in
  slot. Limits change at commit and never drop an open connection;
- the listeners (:class:`~flowtap.sshd.listeners.ListenerSet`): moved without a gap, new
  endpoints bound in prepare (a busy port fails the commit and the old listeners keep serving),
  removed ones closed in commit; open sessions survive every move.

The commit-hook steps take the old and the new configuration from their :class:`Prepared` handle,
never from the transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from flowtap.auth.authenticator import Authenticator
from flowtap.auth.principal import Principal
from flowtap.config.model import Config
from flowtap.sshd.admission import ConnectionGate, Limits, ServiceLimits
from flowtap.sshd.listeners import Endpoint, ListenerSet, Move
from flowtap.sshd.server import (
    LOGIN_TIMEOUT,
    AuthListener,
    Authorize,
    Refusal,
    SessionHandler,
    SshServer,
    host_key,
)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A prepared commit: the configurations it moves between and the listeners it moves."""

    old: Config
    new: Config
    move: Move


class SshService:
    def __init__(
        self,
        *,
        label: str,
        subsystem: str,
        path: str,
        state_dir: Path,
        authenticator: Authenticator,
        config: Callable[[], Config],
        serve: SessionHandler,
        endpoints_of: Callable[[Config], frozenset[Endpoint]],
        limits_of: Callable[[Config], ServiceLimits | None],
        limits: Limits,
        rate_window: float,
        login_timeout: float = LOGIN_TIMEOUT,
        on_auth: AuthListener | None = None,
        refuse: Authorize | None = None,
        confidential: bool = False,
    ) -> None:
        """``label`` names the service in log and error messages ("NETCONF"), ``path`` is the
        configuration node a failed bind points at, ``config`` the running configuration (to
        authenticate against), ``serve`` runs one subsystem channel. ``endpoints_of`` and
        ``limits_of`` read where to listen and the limits from a configuration (None: the limits
        stay); ``limits`` apply until a commit sets them. ``refuse`` is the service's own reason
        to refuse an authenticated login, asked before it takes a logged-in slot.
        ``confidential``: the service exists only for lawful intercept, so where it listens and
        which authenticated users it refuses are not for the ordinary log (DEBUG only; the LI
        audit log has the refusals)."""
        self.subsystem = subsystem
        self._endpoints_of = endpoints_of
        self._limits_of = limits_of
        self._refuse = refuse
        self.gate = ConnectionGate(limits, window=rate_window)
        self.server = SshServer(
            key=host_key(state_dir), subsystem=subsystem, handler=serve, config=config,
            authenticator=authenticator, admit=self.gate.admit, authorize=self._authorize,
            on_auth=on_auth, login_timeout=login_timeout, confidential=confidential,
        )  # fmt: skip
        self.listeners = ListenerSet(self.server.bind, label, path, confidential=confidential)

    @property
    def port(self) -> int | None:
        return self.listeners.port

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        return self.listeners.endpoints

    # ---- commit hook -----------------------------------------------------------------------

    async def prepare(self, old: Config, new: Config) -> Prepared:
        """Bind the endpoints ``new`` adds.

        Raises:
            CommitFailed: an endpoint cannot be bound (resource-denied); nothing was changed.
        """
        return Prepared(old, new, await self.listeners.prepare(self._endpoints_of(new)))

    def commit(self, handle: Prepared) -> None:
        """Apply the new limits, serve the new listeners and close the removed ones; never
        fails."""
        limits = self._limits_of(handle.new)
        if limits is not None:
            self.gate.admission.update(Limits.of(limits))
        self.listeners.commit(handle.move)

    async def abort(self, handle: Prepared) -> None:
        await self.listeners.abort(handle.move)

    # ---- connections -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop listening (process shutdown); open connections carry on."""
        self.listeners.close()

    def disconnect_all(self) -> None:
        self.gate.close_all()

    async def drained(self) -> None:
        """Wait (bounded) until every closed connection has been released."""
        await self.gate.drained()

    def _authorize(self, conn: asyncssh.SSHServerConnection, principal: Principal
                   ) -> Refusal | None:  # fmt: skip
        if self._refuse is not None:
            refusal = self._refuse(conn, principal)
            if refusal is not None:
                return refusal
        reason = self.gate.login(conn)
        return None if reason is None else Refusal(f"{self.subsystem}: login refused ({reason})")
