"""The NETCONF service as a commit hook: ``system services netconf ssh`` reconciled live.

Listeners move without a gap (:mod:`flowtap.sshd.listeners`): an address, port or family change
binds the new endpoints in prepare (so a busy port fails the commit cleanly and the old listeners
keep serving) and closes the removed ones in commit; open sessions are never dropped by a rebind.
``connection-limit``, ``rate-limit``, ``max-pre-auth`` and ``max-pre-auth-per-source`` are
decided when the TCP connection is accepted (before key exchange and before any RADIUS query)
and again at login; a change applies at once and never drops an open session
(:mod:`flowtap.sshd.admission`). A connection without an open NETCONF channel is disconnected
``LOGIN_TIMEOUT`` after it was accepted, and ``sshd.CHANNEL_WINDOW`` after its login or after
its channel ended (:mod:`flowtap.sshd.server`).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncssh

from flowtap.auth.authenticator import Authenticator
from flowtap.auth.principal import Principal
from flowtap.config import li_policy, model
from flowtap.errors import CommitFailed
from flowtap.netconf.context import ServerContext
from flowtap.netconf.session import Session
from flowtap.sshd import server as sshd
from flowtap.sshd.admission import ConnectionGate, Limits
from flowtap.sshd.deadline import seconds_from_env
from flowtap.sshd.listeners import ListenerSet, Move, endpoints

LOG = logging.getLogger(__name__)
# rate-limit counts the connections of this many seconds (Junos: a minute); test suites that
# open hundreds of connections to one daemon shorten it
RATE_WINDOW = seconds_from_env("FLOWTAP_NETCONF_RATE_WINDOW", 60.0)
# to log in, and to open the NETCONF channel after login or after the last channel closed
LOGIN_TIMEOUT = seconds_from_env("FLOWTAP_NETCONF_LOGIN_TIMEOUT", sshd.LOGIN_TIMEOUT)
_PATH = "/fts:system/fts:services/fts:netconf/fts:ssh"


def _shared_port(config: model.Config) -> bool:
    ours, dtcp = config.netconf, config.dtcp
    return ours is not None and dtcp is not None and ours.port == dtcp.port and bool(ours.port)


class NetconfService:
    name = "netconf"

    def __init__(self, ctx: ServerContext, state_dir: Path, authenticator: Authenticator,
                 on_auth: sshd.AuthListener | None = None) -> None:  # fmt: skip
        self.ctx = ctx
        self.gate = ConnectionGate(Limits.of(model.NetconfService()), window=RATE_WINDOW)
        server = sshd.SshServer(
            key=sshd.host_key(state_dir), subsystem="netconf", handler=self._serve,
            config=lambda: self.ctx.txn.config, authenticator=authenticator,
            admit=self.gate.admit, authorize=self._authorize, on_auth=on_auth,
            login_timeout=LOGIN_TIMEOUT,
        )  # fmt: skip
        self.listeners = ListenerSet(server, "NETCONF", _PATH)

    @property
    def port(self) -> int | None:
        return self.listeners.port

    def validate(self, old: model.Config, new: model.Config) -> None:
        # Only a committer who reads the (hidden) DTCP configuration learns of the clash, and
        # only when this change makes it; for anyone else the bind decides (li_policy).
        if li_policy.strict() and _shared_port(new) and not _shared_port(old):
            raise CommitFailed(
                "NETCONF and flow-tap-dtcp cannot share a port", tag="invalid-value",
                path="/fts:system/fts:services/fts:netconf/fts:ssh/fts:port",
            )  # fmt: skip

    async def prepare(self, old: model.Config, new: model.Config) -> Move:
        wanted = new.netconf
        if wanted is None:
            return await self.listeners.prepare(frozenset())
        return await self.listeners.prepare(endpoints(wanted.listen_addresses, wanted.port))

    async def commit(self, move: Move) -> None:
        config = self.ctx.txn.config.netconf
        if config is not None:
            self.gate.admission.update(Limits.of(config))
        self.listeners.commit(move)

    async def abort(self, move: Move) -> None:
        await self.listeners.abort(move)

    def _authorize(self, conn: asyncssh.SSHServerConnection, principal: Principal
                   ) -> sshd.Refusal | None:  # fmt: skip
        refusal = self.gate.login(conn)
        return None if refusal is None else sshd.Refusal(f"netconf: login refused ({refusal})")

    async def _serve(self, proc: asyncssh.SSHServerProcess[bytes], principal: Principal) -> None:
        peer = proc.get_extra_info("peername")
        channel = proc.channel

        def close() -> None:
            proc.exit(0)
            if proc.get_extra_info("connection") is not None:
                asyncio.get_running_loop().call_soon(channel.close)

        session = Session(self.ctx, principal, str(peer[0]) if peer else "",
                          proc.stdout.write, close, unsent=channel.get_write_buffer_size,
                          drain=proc.stdout.drain)  # fmt: skip
        await session.run(proc.stdin)
