"""The DTCP-over-SSH service as a commit hook: ``system services flow-tap-dtcp ssh`` reconciled
live.

- A listener for the SSH subsystem ``flow-tap-dtcp`` exists while both ``system services
  flow-tap-dtcp ssh`` and ``services flow-tap`` are configured. A port or address change binds
  the new listener in prepare (a busy port fails the commit cleanly) and closes the old one in
  commit; open channels carry on. Removing the service closes the listener and every DTCP
  connection; criteria stay (they belong to flow-tap, not to the transport).
- Removing ``services flow-tap`` drops every criterion and disconnects every mediation device
  (Junos: "all filters are deleted and the mediation devices are disconnected").
- ``connection-limit``, ``rate-limit`` and ``hmac-policy`` apply at commit, without touching the
  listener, the open connections or any criterion. Admission is decided when the TCP connection
  is accepted, per IP family (:mod:`flowtap.admission`): refused before the SSH version
  exchange, so without key exchange and without any RADIUS query.
- Who may tap: any principal of the shared :class:`~flowtap.auth.authenticator.Authenticator`
  (local password or key, RADIUS) holding ``flow-tap-operation``; anyone else is refused when
  opening the subsystem, and the refusal is audit-logged. Every authentication decision on this
  port is audit-logged before the client learns it. A commit that takes ``flow-tap-operation``
  away from a local user (or deletes the user) closes that user's DTCP channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from flowtap import model, sshd
from flowtap.admission import ConnectionGate
from flowtap.audit import AuditError, AuditRecord
from flowtap.auth.authenticator import Authenticator
from flowtap.auth.principal import Principal
from flowtap.dtcp.auditing import LiAudit
from flowtap.dtcp.registry import Registry
from flowtap.dtcp.session import DtcpSession
from flowtap.dtcp.tuning import DtcpTuning
from flowtap.errors import CommitFailed

LOG = logging.getLogger(__name__)
SUBSYSTEM = "flow-tap-dtcp"
PERMISSION = "flow-tap-operation"
_PATH = "/fts:system/fts:services/fts:flow-tap-dtcp/fts:ssh"

Endpoint = tuple[int, tuple[str, ...]]


def endpoint(config: model.Config) -> Endpoint | None:
    """Where the DTCP listener must be, or None when there must be none."""
    if config.dtcp is None or config.flow_tap is None:
        return None
    return config.dtcp.port, config.dtcp.listen_addresses


@dataclass
class _Prepared:
    old: model.Config
    new: model.Config
    listener: asyncssh.SSHAcceptor | None
    keep: bool  # the current listener stays as it is


class DtcpService:
    """Owns the DTCP listener, its admission limits and the open DTCP channels."""

    name = "flow-tap-dtcp"

    def __init__(
        self,
        *,
        state_dir: Path,
        authenticator: Authenticator,
        config: Callable[[], model.Config],
        registry: Registry,
        audit: LiAudit,
        tuning: DtcpTuning,
    ) -> None:
        self.key = sshd.host_key(state_dir)
        self.authenticator = authenticator
        self.registry = registry
        self.audit = audit
        self.tuning = tuning
        self._config = config
        self.listener: asyncssh.SSHAcceptor | None = None
        self.bound: Endpoint | None = None
        defaults = model.DtcpService()
        self.gate = ConnectionGate(defaults.connection_limit, defaults.rate_limit,
                                   window=tuning.rate_window)  # fmt: skip
        self._hmac_policy = defaults.hmac_policy
        self._sessions: set[DtcpSession] = set()
        self._ids = itertools.count(1)
        registry.on_clear.append(self.disconnect_all)

    # ---- what sessions read (SessionHost) ------------------------------------------------

    def config(self) -> model.Config:
        """The running configuration (authentication, interface names)."""
        return self._config()

    @property
    def hmac_policy(self) -> str:
        return self._hmac_policy

    @property
    def port(self) -> int | None:
        return sshd.bound_port(self.listener)

    # ---- commit hook -----------------------------------------------------------------------

    def validate(self, old: model.Config, new: model.Config) -> None:
        """Nothing to refuse: the NETCONF hook refuses a port shared with NETCONF."""

    async def prepare(self, old: model.Config, new: model.Config) -> _Prepared:
        wanted = endpoint(new)
        if wanted == self.bound and self.listener is not None:
            return _Prepared(old, new, None, keep=True)
        if wanted is None:
            return _Prepared(old, new, None, keep=False)
        port, addresses = wanted
        try:
            listener = await sshd.listen(
                host=list(addresses) or None, port=port, key=self.key, subsystem=SUBSYSTEM,
                handler=self._serve, config=self.config, authenticator=self.authenticator,
                admit=self.gate.admit, on_auth=self.audit.auth_listener(),
                login_timeout=self.tuning.login_timeout,
            )  # fmt: skip
        except OSError as exc:
            raise CommitFailed(f"Cannot listen for DTCP on port {port}: {exc.strerror}",
                               tag="resource-denied", path=_PATH) from None  # fmt: skip
        return _Prepared(old, new, listener, keep=False)

    async def commit(self, handle: _Prepared) -> None:
        """Swap the listener, apply limits and policy; never fails."""
        new = handle.new
        if new.dtcp is not None:
            self.gate.admission.update(new.dtcp.connection_limit, new.dtcp.rate_limit)
            self._hmac_policy = new.dtcp.hmac_policy
        if not handle.keep:
            old, self.listener = self.listener, handle.listener
            self.bound = endpoint(new)
            if old is not None:
                old.close()  # stops listening; established channels carry on
            if self.listener is None:
                self.disconnect_all()
            LOG.info("DTCP listening on %s", self.port if self.listener else "nothing")
        if handle.old.flow_tap is not None and new.flow_tap is None:
            dropped = self.registry.clear()
            LOG.info("flow-tap removed: all criteria dropped")
            LOG.debug("%d criteria dropped", dropped)  # counts are confidential (LI-1)
        self._close_unauthorized(new)

    async def abort(self, handle: _Prepared) -> None:
        if handle.listener is not None:
            handle.listener.close()
            await handle.listener.wait_closed()

    async def stop(self) -> None:
        """Close the listener and every DTCP connection (process shutdown)."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            self.bound = None
        self.disconnect_all()
        await self.gate.drained()

    # ---- connections and channels ----------------------------------------------------------

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def disconnect_all(self) -> None:
        """Close every DTCP channel and connection (service removed, criteria cleared)."""
        for session in list(self._sessions):
            session.close()
        self.gate.close_all()

    def _close_unauthorized(self, config: model.Config) -> None:
        for session in list(self._sessions):
            principal = session.principal
            if principal.method == "radius":
                continue  # its RADIUS permissions cannot be re-evaluated without a login
            user = config.users.get(principal.user)
            if user is None or PERMISSION not in config.class_permissions(user.login_class):
                session.close()

    async def _serve(self, proc: asyncssh.SSHServerProcess[bytes], principal: Principal) -> None:
        peer = proc.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        session_id = f"dtcp-{next(self._ids)}"
        conn = proc.get_extra_info("connection")
        if not principal.has(PERMISSION):
            record = AuditRecord(
                event="dtcp-session", result="refused", principal=principal.user,
                template=principal.template_user, peer=address, session=session_id,
                method=SUBSYSTEM, reason=f"no {PERMISSION} permission",
            )  # fmt: skip
            with contextlib.suppress(AuditError):
                await self.audit.submit(record)
            proc.stderr.write(b"flow-tap-dtcp: permission denied\n")
            proc.exit(1)
            if conn is not None:
                conn.close()
            return
        channel = proc.channel

        def close() -> None:
            proc.exit(0)
            if proc.get_extra_info("connection") is not None:
                asyncio.get_running_loop().call_soon(channel.close)

        session = DtcpSession(self, principal, address, session_id, proc.stdout.write,
                              proc.stdout.drain, close)  # fmt: skip
        self._sessions.add(session)
        try:
            await session.run(proc.stdin)
        finally:
            self._sessions.discard(session)
