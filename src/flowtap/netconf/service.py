"""The NETCONF service as a commit hook: ``system services netconf ssh`` reconciled live.

A port or address change binds the new listener in prepare (so a busy port fails the commit
cleanly) and closes the old one in commit; open sessions are never dropped by a rebind.
``connection-limit`` and ``rate-limit`` (Junos defaults 75 and 150 per minute, per IP family)
are decided when the TCP connection is accepted, before key exchange and before any RADIUS
query; a change applies at once and never drops an open session (:mod:`flowtap.admission`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from flowtap import li_policy, model, sshd
from flowtap.admission import ConnectionGate
from flowtap.auth.authenticator import Authenticator
from flowtap.auth.principal import Principal
from flowtap.errors import CommitFailed
from flowtap.netconf.context import ServerContext
from flowtap.netconf.session import Session, seconds_from_env

LOG = logging.getLogger(__name__)
# rate-limit counts the connections of this many seconds (Junos: a minute); test suites that
# open hundreds of connections to one daemon shorten it
RATE_WINDOW = seconds_from_env("FLOWTAP_NETCONF_RATE_WINDOW", 60.0)


def _endpoint(service: model.NetconfService) -> tuple[int, tuple[str, ...]]:
    return service.port, service.listen_addresses


def _shared_port(config: model.Config) -> bool:
    ours, dtcp = config.netconf, config.dtcp
    return ours is not None and dtcp is not None and ours.port == dtcp.port and bool(ours.port)


@dataclass
class _Prepared:
    listener: asyncssh.SSHAcceptor | None
    keep: bool  # the current listener stays as it is


class NetconfService:
    name = "netconf"

    def __init__(self, ctx: ServerContext, state_dir: Path, authenticator: Authenticator,
                 on_auth: sshd.AuthListener | None = None) -> None:  # fmt: skip
        self.ctx = ctx
        self.key = sshd.host_key(state_dir)
        self.authenticator = authenticator
        self.on_auth = on_auth
        self.listener: asyncssh.SSHAcceptor | None = None
        self.bound: tuple[int, tuple[str, ...]] | None = None  # port, addresses
        defaults = model.NetconfService()
        self.gate = ConnectionGate(defaults.connection_limit, defaults.rate_limit,
                                   window=RATE_WINDOW)  # fmt: skip

    @property
    def port(self) -> int | None:
        return sshd.bound_port(self.listener)

    def validate(self, old: model.Config, new: model.Config) -> None:
        # Only a committer who reads the (hidden) DTCP configuration learns of the clash, and
        # only when this change makes it; for anyone else the bind decides (li_policy).
        if li_policy.strict() and _shared_port(new) and not _shared_port(old):
            raise CommitFailed(
                "NETCONF and flow-tap-dtcp cannot share a port", tag="invalid-value",
                path="/fts:system/fts:services/fts:netconf/fts:ssh/fts:port",
            )  # fmt: skip

    async def prepare(self, old: model.Config, new: model.Config) -> _Prepared:
        wanted = new.netconf
        if wanted is not None and _endpoint(wanted) == self.bound and self.listener is not None:
            return _Prepared(None, keep=True)
        if wanted is None:
            return _Prepared(None, keep=False)
        try:
            listener = await sshd.listen(
                host=list(wanted.listen_addresses), port=wanted.port, key=self.key,
                subsystem="netconf", handler=self._serve, config=lambda: self.ctx.txn.config,
                authenticator=self.authenticator, admit=self.gate.admit, on_auth=self.on_auth,
            )  # fmt: skip
        except OSError as exc:
            raise CommitFailed(
                f"Cannot listen for NETCONF on port {wanted.port}: {exc.strerror}",
                tag="resource-denied",
                path="/fts:system/fts:services/fts:netconf/fts:ssh",
            ) from None
        return _Prepared(listener, keep=False)

    async def commit(self, handle: _Prepared) -> None:
        config = self.ctx.txn.config.netconf
        if config is not None:
            self.gate.admission.update(config.connection_limit, config.rate_limit)
        if handle.keep:
            return
        old, self.listener = self.listener, handle.listener
        self.bound = None if config is None else _endpoint(config)
        if old is not None:
            old.close()  # stops listening; established sessions carry on
        LOG.info("NETCONF listening on %s", self.port if self.listener else "nothing")

    async def abort(self, handle: _Prepared) -> None:
        if handle.listener is not None:
            handle.listener.close()
            await handle.listener.wait_closed()

    async def _serve(self, proc: asyncssh.SSHServerProcess[bytes], principal: Principal) -> None:
        peer = proc.get_extra_info("peername")
        channel = proc.channel

        def close() -> None:
            proc.exit(0)
            if proc.get_extra_info("connection") is not None:
                asyncio.get_running_loop().call_soon(channel.close)

        session = Session(self.ctx, principal, str(peer[0]) if peer else "",
                          proc.stdout.write, close)  # fmt: skip
        await session.run(proc.stdin)
