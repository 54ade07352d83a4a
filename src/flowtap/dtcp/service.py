"""The DTCP-over-SSH service as a commit hook: ``system services flow-tap-dtcp ssh`` reconciled
live.

- A listener for the SSH subsystem ``flow-tap-dtcp`` exists while both ``system services
  flow-tap-dtcp ssh`` and ``services flow-tap`` are configured, on every address unless
  ``listen-address`` narrows it. Listeners move without a gap (:mod:`flowtap.sshd.listeners`): new
  endpoints are bound in prepare (a busy port fails the commit cleanly and the old listeners keep
  serving), removed ones closed in commit; open channels carry on. Removing the service closes
  the listeners and every DTCP connection; criteria stay (they belong to flow-tap, not to the
  transport).
- Removing ``services flow-tap`` drops every criterion and disconnects every mediation device
  (Junos: "all filters are deleted and the mediation devices are disconnected").
- The limits (``connection-limit``, ``rate-limit``, ``max-pre-auth``,
  ``max-pre-auth-per-source``) and ``hmac-policy`` apply at commit, without touching the
  listeners, the open connections or any criterion. Admission is decided when the TCP connection
  is accepted (:mod:`flowtap.sshd.admission`): refused before the SSH version exchange, so
  without key exchange and without any RADIUS query; a logged-in slot is taken only at login.
- Who may tap: any principal of the shared :class:`~flowtap.auth.authenticator.Authenticator`
  (local password or key, RADIUS) holding ``flow-tap-operation``; anyone else is disconnected as
  soon as authentication completes ("flow-tap-dtcp: permission denied"), before it can open a
  channel or take a logged-in slot, and the refusal is audit-logged. Every authentication
  decision on this port is audit-logged before the client learns it. A commit that takes
  ``flow-tap-operation`` away from a local user (or deletes the user) closes that user's DTCP
  channels.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import asyncssh

from flowtap.audit import AuditRecord
from flowtap.auth.authenticator import Authenticator
from flowtap.auth.principal import Principal
from flowtap.config import model
from flowtap.dtcp.auditing import LiAudit
from flowtap.dtcp.right_of_way import RightOfWay
from flowtap.dtcp.session import DtcpSession
from flowtap.dtcp.tuning import DtcpTuning
from flowtap.errors import AuditError
from flowtap.intercept.registry import Registry
from flowtap.sshd import server as sshd
from flowtap.sshd.admission import Limits
from flowtap.sshd.channel import Channel
from flowtap.sshd.listeners import Endpoint, endpoints
from flowtap.sshd.service import Prepared, SshService

LOG = logging.getLogger(__name__)
SUBSYSTEM = "flow-tap-dtcp"
PERMISSION = "flow-tap-operation"
_PATH = "/fts:system/fts:services/fts:flow-tap-dtcp/fts:ssh"



def wanted_endpoints(config: model.Config) -> frozenset[Endpoint]:
    """Where the DTCP listeners must be: none without flow-tap or the DTCP service."""
    if config.dtcp is None or config.flow_tap is None:
        return frozenset()
    return endpoints(config.dtcp.listen_addresses, config.dtcp.port)


class DtcpService:
    """Owns the DTCP listeners and admission limits (through its :class:`SshService`) and the
    open DTCP channels."""

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
        self.registry = registry
        self.audit = audit
        self.tuning = tuning
        self.right_of_way = RightOfWay()
        self._config = config
        defaults = model.DtcpService()
        self.ssh = SshService(
            label="DTCP", subsystem=SUBSYSTEM, path=_PATH, state_dir=state_dir,
            authenticator=authenticator, config=self.config, serve=self._serve,
            endpoints_of=wanted_endpoints, limits_of=lambda config: config.dtcp,
            limits=Limits.of(defaults), rate_window=tuning.rate_window,
            login_timeout=tuning.login_timeout, on_auth=audit.auth_listener(),
            refuse=self._refuse, confidential=True,
        )  # fmt: skip
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
        return self.ssh.port

    # ---- commit hook -----------------------------------------------------------------------

    def validate(self, old: model.Config, new: model.Config) -> None:
        """Nothing to refuse: the NETCONF hook refuses a port shared with NETCONF."""

    async def prepare(self, old: model.Config, new: model.Config) -> Prepared:
        return await self.ssh.prepare(old, new)

    async def commit(self, handle: Prepared) -> None:
        """Move the listeners, apply limits and policy; never fails."""
        new = handle.new
        if new.dtcp is not None:
            self._hmac_policy = new.dtcp.hmac_policy
        self.ssh.commit(handle)
        if not self.ssh.endpoints:
            self.disconnect_all()
        self._close_unauthorized(new)

    async def abort(self, handle: Prepared) -> None:
        await self.ssh.abort(handle)

    async def stop(self) -> None:
        """Close the listeners and every DTCP connection (process shutdown)."""
        self.ssh.close()
        self.disconnect_all()
        await self.ssh.drained()

    # ---- connections and channels ----------------------------------------------------------

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    def disconnect_all(self) -> None:
        """Close every DTCP channel and connection (service removed, criteria cleared)."""
        for session in list(self._sessions):
            session.close()
        self.ssh.disconnect_all()

    def _close_unauthorized(self, config: model.Config) -> None:
        for session in list(self._sessions):
            principal = session.principal
            if principal.method == "radius":
                continue  # its RADIUS permissions cannot be re-evaluated without a login
            user = config.users.get(principal.user)
            if user is None or PERMISSION not in config.class_permissions(user.login_class):
                session.close()

    def _refuse(self, conn: asyncssh.SSHServerConnection, principal: Principal
                ) -> sshd.Refusal | None:  # fmt: skip
        """A login without ``flow-tap-operation`` is disconnected at once (it must not hold a
        slot the mediation devices need); one with it goes on to take a logged-in slot."""
        if principal.has(PERMISSION):
            return None
        peer = conn.get_extra_info("peername")
        record = AuditRecord(
            event="dtcp-session", result="refused", principal=principal.user,
            template=principal.template_user, peer=str(peer[0]) if peer else "",
            session=f"dtcp-{next(self._ids)}", method=SUBSYSTEM,
            reason=f"no {PERMISSION} permission",
        )  # fmt: skip

        async def report() -> None:
            with contextlib.suppress(AuditError):
                await self.audit.submit(record)

        return sshd.Refusal("flow-tap-dtcp: permission denied",
                            asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, report)  # fmt: skip

    async def _serve(self, channel: Channel, principal: Principal) -> None:
        session_id = f"dtcp-{next(self._ids)}"
        session = DtcpSession(self, principal, channel.peer, session_id, channel.write,
                              channel.drain, channel.close)  # fmt: skip
        self._sessions.add(session)
        try:
            await session.run(channel.input)
        finally:
            self._sessions.discard(session)
