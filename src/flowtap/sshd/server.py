"""The hardened asyncssh server shared by the NETCONF and DTCP services.

Both services authenticate through one ``Authenticator`` against the running configuration, use
the same host key, the same algorithm allow-list (SECURITY.md §3.2) and the same auth-try limit;
they differ only in the subsystem they serve and in who may open it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from flowtap.auth.authenticator import AuthDecision, Authenticator
from flowtap.auth.limits import AuthTryLimiter
from flowtap.auth.principal import Principal
from flowtap.config.model import Config
from flowtap.sshd import memory
from flowtap.sshd.channel import Channel
from flowtap.sshd.deadline import seconds_from_env
from flowtap.sshd.packets import without_cbc_ignores

LOG = logging.getLogger(__name__)

KEX_ALGS = ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org",
            "ecdh-sha2-nistp256"]  # fmt: skip
# never a CBC cipher: sshd.packets drops asyncssh's countermeasure for them
ENCRYPTION_ALGS = ["aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "aes256-ctr", "aes128-ctr"]
MAC_ALGS = ["hmac-sha2-256", "hmac-sha2-512"]
SIGNATURE_ALGS = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
LOGIN_TIMEOUT = 30
# A logged-in connection has this long to open its subsystem channel, after login and after its
# last channel ended: real clients (ncclient, NSO, netopeer2-cli, mediation devices) open it at
# once. Short, so that a user with valid credentials who logs in and opens nothing cannot hold
# the logged-in slots: within the per-source rate-limit one address keeps at most
# rate-limit * CHANNEL_WINDOW / 60 such connections (150 a minute: 12), far below the 75 slots.
CHANNEL_WINDOW = 5.0
SERVER_VERSION = "flowtap"
# An unresponsive peer (a stopped process, a dead host behind a silent network) is disconnected
# KEEPALIVE_INTERVAL * (KEEPALIVE_COUNT_MAX + 1) seconds after it last sent anything: 30 s, and
# its session (its candidate lock, its DTCP channel) ends with it. Tests shorten the interval.
KEEPALIVE_INTERVAL = seconds_from_env("FLOWTAP_SSH_KEEPALIVE_INTERVAL", 10.0)
KEEPALIVE_COUNT_MAX = 2

AuthListener = Callable[[AuthDecision, str], Awaitable[None] | None]
"""Told every authentication decision (and the service name). When it returns an awaitable,
the decision is reported to the client only after it completes (the LI audit log makes the
record durable first); if it raises, the login is refused (fail closed)."""
Admission = Callable[[asyncssh.SSHServerConnection], str | None]
"""Told every accepted TCP connection: None, or why it is refused (closed before key exchange)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a login is refused after authentication succeeded; the connection is disconnected."""

    message: str  # the SSH disconnect message the client sees
    code: int = asyncssh.DISC_TOO_MANY_CONNECTIONS
    report: Callable[[], Awaitable[None]] | None = None  # awaited after the disconnect


Authorize = Callable[[asyncssh.SSHServerConnection, Principal], Refusal | None]
"""Decides whether an authenticated principal may hold a session on this service (permission,
logged-in slots). Called synchronously when authentication completes, before the client can
open a channel."""


def host_key(state_dir: Path) -> asyncssh.SSHKey:
    """The appliance's Ed25519 host key, generated once and kept (stable fingerprint)."""
    path = state_dir / "ssh_host_ed25519_key"
    if not path.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        return key
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PermissionError(f"{path} is readable by others; refusing to use it (chmod 600)")
    return asyncssh.read_private_key(str(path))


class ServerConnection(asyncssh.SSHServer):
    """Per-connection authentication state, and the watchdog that disconnects a connection without
    an open subsystem channel: ``login_timeout`` seconds after it was accepted, and
    ``channel_timeout`` seconds after its login or after its last channel ended (an idle login
    must not keep its slot)."""

    def __init__(self, server: SshServer) -> None:
        self._server = server
        self._principals = server.principals
        self._tries = AuthTryLimiter()
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer = ""
        self._pending: Principal | None = None
        self._channels = 0
        self._watchdog: asyncio.TimerHandle | None = None
        self._lost = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        without_cbc_ignores(conn)
        peer = conn.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""
        if self._server.admit is not None:
            refusal = self._server.admit(conn)
            if refusal is not None:
                # at INFO for every service: a limit the operator set was reached (who tried is
                # not known yet, and the LI audit log has no pre-authentication records)
                LOG.info("%s: connection refused (%s)", self._server.subsystem, refusal)
                conn.abort()  # before key exchange and before any RADIUS query
                return
        self._arm_watchdog(self._server.login_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._conn is not None:
            self._principals.pop(self._conn, None)
        self._lost = True
        memory.release_soon()  # what its session buffered

    # -- the no-channel watchdog -----------------------------------------------------------------

    def channel_opened(self) -> None:
        self._channels += 1
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def channel_closed(self) -> None:
        self._channels -= 1
        if self._channels == 0:
            self._arm_watchdog(self._server.channel_timeout)

    def _arm_watchdog(self, seconds: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(seconds, self._no_channel)

    def _no_channel(self) -> None:
        self._watchdog = None
        if self._channels == 0 and self._conn is not None:
            LOG.debug("%s: no open channel; disconnected", self._server.subsystem)
            self._conn.disconnect(asyncssh.DISC_BY_APPLICATION, "no session opened")

    # -- authentication --------------------------------------------------------------------------

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def kbdint_auth_supported(self) -> bool:
        return False

    def password_auth_supported(self) -> bool:
        return self._tries.allowed

    async def validate_password(self, username: str, password: str) -> bool:
        decision = await self._server.authenticator.password(
            self._server.config(), username, password, self._peer)
        return await self._decide(decision)

    def public_key_auth_supported(self) -> bool:
        return self._tries.allowed

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        decision = self._server.authenticator.public_key(
            self._server.config(), username, key, self._peer)
        self._pending = decision.principal
        return decision.principal is not None

    async def auth_completed(self) -> None:
        conn = self._conn
        if conn is None:
            return
        key_decision: AuthDecision | None = None
        principal = self._principals.get(conn)
        if self._lost:
            return
        if principal is None and self._pending is not None:
            principal = self._pending
            key_decision = AuthDecision(
                principal.user, self._peer, principal, "public-key",
                principal.template_user, None, ("public-key:accept",),
            )  # fmt: skip
            self._principals[conn] = principal
        if principal is None:
            return
        # Decided before the first suspension: the client may open its channel as soon as it
        # reads the success, and a refused login must never get one.
        authorize = self._server.authorize
        refusal = authorize(conn, principal) if authorize is not None else None
        if refusal is not None:
            self._principals.pop(conn, None)
        # ``on_auth`` starts its record before its first suspension, so a later record (a request
        # served on the channel) cannot be durable before this one; a failure closes the
        # connection.
        if key_decision is not None and not await self._notify(key_decision):
            self._principals.pop(conn, None)
            conn.abort()
            return
        if refusal is not None:
            # names the service and the reason, never the user
            LOG.log(self._server.log_level, "%s", refusal.message)
            conn.disconnect(refusal.code, refusal.message)
            if refusal.report is not None:
                await refusal.report()
        elif self._channels == 0 and not self._lost:
            self._arm_watchdog(self._server.channel_timeout)

    async def _notify(self, decision: AuthDecision) -> bool:
        """Report a decision to ``on_auth``; False when it failed (the login must not proceed)."""
        on_auth = self._server.on_auth
        if on_auth is None:
            return True
        try:
            result = on_auth(decision, self._server.subsystem)
            if inspect.isawaitable(result):
                await result
        except Exception:
            LOG.exception("%s: authentication listener failed; login refused",
                          self._server.subsystem)  # fmt: skip
            return False
        return True

    async def _decide(self, decision: AuthDecision) -> bool:
        if not await self._notify(decision):
            return False
        if decision.principal is None:
            await self._tries.failed()
            return False
        if self._conn is not None and not self._lost:  # (closed while RADIUS answered)
            self._principals[self._conn] = decision.principal
        return True


SessionHandler = Callable[[Channel, Principal], Awaitable[None]]
"""Serves one subsystem channel of an authenticated principal; the channel ends when it returns."""


class SshServer:
    """One service's SSH server: what its listeners share (host key, authentication, admission,
    the subsystem it serves). :meth:`bind` opens one listener on one address."""

    def __init__(
        self,
        *,
        key: asyncssh.SSHKey,
        subsystem: str,
        handler: SessionHandler,
        config: Callable[[], Config],
        authenticator: Authenticator,
        admit: Admission | None = None,
        authorize: Authorize | None = None,
        on_auth: AuthListener | None = None,
        login_timeout: float = LOGIN_TIMEOUT,
        confidential: bool = False,
    ) -> None:
        """``login_timeout`` closes connections that have not authenticated by then (slowloris),
        and connections without an open subsystem channel that long after their acceptance or
        after their last channel ended. ``confidential``: a lawful-intercept service, whose
        refusals of authenticated users are logged at DEBUG only (who tried to use it is an LI
        fact, and its own audit record has it)."""
        self.key = key
        self.subsystem = subsystem
        self.handler = handler
        self.config = config
        self.authenticator = authenticator
        self.admit = admit
        self.authorize = authorize
        self.on_auth = on_auth
        self.login_timeout = login_timeout
        self.log_level = logging.DEBUG if confidential else logging.INFO
        self.channel_timeout = min(login_timeout, CHANNEL_WINDOW)
        self.principals: dict[asyncssh.SSHServerConnection, Principal] = {}

    async def _process(self, proc: asyncssh.SSHServerProcess[bytes]) -> None:
        conn = proc.get_extra_info("connection")
        principal = self.principals.get(conn)
        if proc.subsystem != self.subsystem or principal is None:
            proc.stderr.write(f"only the {self.subsystem} subsystem is served here\n".encode())
            proc.exit(1)
            return
        owner = conn.get_owner()
        watched = owner if isinstance(owner, ServerConnection) else None
        if watched is not None:
            watched.channel_opened()
        try:
            await self.handler(Channel.of(proc), principal)
        finally:
            if not proc.is_closing():
                proc.exit(0)
            if watched is not None:
                watched.channel_closed()

    async def bind(self, host: str | None, port: int) -> asyncssh.SSHAcceptor:
        """Listen on ``host`` (None: every address, IPv4 and IPv6) and ``port``.

        Raises:
            OSError: the address cannot be bound.
        """
        options: dict[str, Any] = {
            "server_host_keys": [self.key],
            "process_factory": self._process,
            "encoding": None,
            "line_editor": False,
            "allow_pty": False,
            "agent_forwarding": False,
            "x11_forwarding": False,
            "allow_scp": False,
            "kex_algs": KEX_ALGS,
            "encryption_algs": ENCRYPTION_ALGS,
            "mac_algs": MAC_ALGS,
            "signature_algs": SIGNATURE_ALGS,
            "compression_algs": None,
            "login_timeout": self.login_timeout,
            "keepalive_interval": KEEPALIVE_INTERVAL,
            "keepalive_count_max": KEEPALIVE_COUNT_MAX,
            "server_version": SERVER_VERSION,
            "reuse_address": True,
            # a specific address and the wildcard may share a port while listeners move
            # (flowtap.sshd.listeners); only processes of this user can join the port
            "reuse_port": True,
        }
        return await asyncssh.create_server(lambda: ServerConnection(self), host, port, **options)
