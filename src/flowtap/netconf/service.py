"""The NETCONF service as a commit hook: ``system services netconf ssh`` reconciled live.

The SSH side is the shared :class:`~flowtap.sshd.service.SshService`: listeners move without a
gap (an address, port or family change binds the new endpoints in prepare, so a busy port fails
the commit cleanly and the old listeners keep serving, and closes the removed ones in commit;
open sessions are never dropped by a rebind); ``connection-limit``, ``rate-limit``,
``max-pre-auth`` and ``max-pre-auth-per-source`` are decided when the TCP connection is accepted
(before key exchange and before any RADIUS query) and again at login, and a change applies at
once and never drops an open session (:mod:`flowtap.sshd.admission`). A connection without an
open NETCONF channel is disconnected ``LOGIN_TIMEOUT`` after it was accepted, and
``sshd.CHANNEL_WINDOW`` after its login or after its channel ended (:mod:`flowtap.sshd.server`).

NETCONF's own: the subsystem ``netconf``, one :class:`~flowtap.netconf.session.Session` per
channel, and the refusal of a port shared with flow-tap-dtcp (validate).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flowtap.auth.authenticator import Authenticator
from flowtap.auth.principal import Principal
from flowtap.config import li_policy, model
from flowtap.errors import CommitFailed
from flowtap.netconf.context import ServerContext
from flowtap.netconf.session import Session
from flowtap.sshd import server as sshd
from flowtap.sshd.admission import Limits
from flowtap.sshd.channel import Channel
from flowtap.sshd.deadline import seconds_from_env
from flowtap.sshd.listeners import Endpoint, endpoints
from flowtap.sshd.service import Prepared, SshService

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


def wanted_endpoints(config: model.Config) -> frozenset[Endpoint]:
    """Where the NETCONF listeners must be: none without the NETCONF service."""
    wanted = config.netconf
    if wanted is None:
        return frozenset()
    return endpoints(wanted.listen_addresses, wanted.port)


class NetconfService:
    name = "netconf"

    def __init__(self, ctx: ServerContext, state_dir: Path, authenticator: Authenticator,
                 on_auth: sshd.AuthListener | None = None) -> None:  # fmt: skip
        self.ctx = ctx
        self.ssh = SshService(
            label="NETCONF", subsystem="netconf", path=_PATH, state_dir=state_dir,
            authenticator=authenticator, config=lambda: self.ctx.txn.config, serve=self._serve,
            endpoints_of=wanted_endpoints, limits_of=lambda config: config.netconf,
            limits=Limits.of(model.NetconfService()), rate_window=RATE_WINDOW,
            login_timeout=LOGIN_TIMEOUT, on_auth=on_auth,
        )  # fmt: skip

    @property
    def port(self) -> int | None:
        return self.ssh.port

    def close(self) -> None:
        """Stop listening (process shutdown); the appliance ends the open sessions."""
        self.ssh.close()

    def validate(self, old: model.Config, new: model.Config) -> None:
        # Only a committer who reads the (hidden) DTCP configuration learns of the clash, and
        # only when this change makes it; for anyone else the bind decides (li_policy).
        if li_policy.strict() and _shared_port(new) and not _shared_port(old):
            raise CommitFailed(
                "NETCONF and flow-tap-dtcp cannot share a port", tag="invalid-value",
                path="/fts:system/fts:services/fts:netconf/fts:ssh/fts:port",
            )  # fmt: skip

    async def prepare(self, old: model.Config, new: model.Config) -> Prepared:
        return await self.ssh.prepare(old, new)

    async def commit(self, handle: Prepared) -> None:
        self.ssh.commit(handle)

    async def abort(self, handle: Prepared) -> None:
        await self.ssh.abort(handle)

    async def _serve(self, channel: Channel, principal: Principal) -> None:
        session = Session(self.ctx, principal, channel.peer, channel.write, channel.close,
                          unsent=channel.unsent, drain=channel.drain)  # fmt: skip
        await session.run(channel.input)
