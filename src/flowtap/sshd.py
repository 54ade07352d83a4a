"""The hardened asyncssh server shared by the NETCONF and DTCP services.

Both services authenticate through one ``Authenticator`` against the running configuration, use
the same host key, the same algorithm allow-list (SECURITY.md §3.2) and the same auth-try limit;
they differ only in the subsystem they serve and in who may open it.
"""

from __future__ import annotations

import inspect
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh

from flowtap.auth.authenticator import AuthDecision, Authenticator
from flowtap.auth.limits import AuthTryLimiter
from flowtap.auth.principal import Principal
from flowtap.model import Config

LOG = logging.getLogger(__name__)

KEX_ALGS = ["mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org",
            "ecdh-sha2-nistp256"]  # fmt: skip
ENCRYPTION_ALGS = ["aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "aes256-ctr", "aes128-ctr"]
MAC_ALGS = ["hmac-sha2-256", "hmac-sha2-512"]
SIGNATURE_ALGS = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
LOGIN_TIMEOUT = 30
SERVER_VERSION = "flowtap"

AuthListener = Callable[[AuthDecision, str], Awaitable[None] | None]
"""Told every authentication decision (and the service name). When it returns an awaitable,
the decision is reported to the client only after it completes (the LI audit log makes the
record durable first); if it raises, the login is refused (fail closed)."""
Admission = Callable[[asyncssh.SSHServerConnection], str | None]


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
    """Per-connection authentication state."""

    def __init__(
        self,
        config: Callable[[], Config],
        authenticator: Authenticator,
        principals: dict[asyncssh.SSHServerConnection, Principal],
        admit: Admission | None,
        on_auth: AuthListener | None,
        service: str,
    ) -> None:
        self._config = config
        self._auth = authenticator
        self._principals = principals
        self._admit = admit
        self._on_auth = on_auth
        self._service = service
        self._tries = AuthTryLimiter()
        self._conn: asyncssh.SSHServerConnection | None = None
        self._peer = ""
        self._pending: Principal | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        peer = conn.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else ""
        if self._admit is not None:
            refusal = self._admit(conn)
            if refusal is not None:
                LOG.info("%s: connection refused (%s)", self._service, refusal)
                conn.abort()  # before key exchange and before any RADIUS query

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._principals.pop(self._conn, None)

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is always required

    def kbdint_auth_supported(self) -> bool:
        return False

    def password_auth_supported(self) -> bool:
        return self._tries.allowed

    async def validate_password(self, username: str, password: str) -> bool:
        decision = await self._auth.password(self._config(), username, password, self._peer)
        return await self._decide(decision)

    def public_key_auth_supported(self) -> bool:
        return self._tries.allowed

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        decision = self._auth.public_key(self._config(), username, key, self._peer)
        self._pending = decision.principal
        return decision.principal is not None

    async def auth_completed(self) -> None:
        if self._conn is not None and self._conn not in self._principals and self._pending:
            decision = AuthDecision(
                self._pending.user, self._peer, self._pending, "public-key",
                self._pending.template_user, None, ("public-key:accept",),
            )  # fmt: skip
            # The client may open its channel at once: register first. ``on_auth`` starts its
            # record before its first suspension, so a later record (a request served on the
            # channel) cannot be durable before this one; a failure closes the connection.
            self._principals[self._conn] = self._pending
            if not await self._notify(decision):
                self._principals.pop(self._conn, None)
                self._conn.abort()

    async def _notify(self, decision: AuthDecision) -> bool:
        """Report a decision to ``on_auth``; False when it failed (the login must not proceed)."""
        if self._on_auth is None:
            return True
        try:
            result = self._on_auth(decision, self._service)
            if inspect.isawaitable(result):
                await result
        except Exception:
            LOG.exception("%s: authentication listener failed; login refused", self._service)
            return False
        return True

    async def _decide(self, decision: AuthDecision) -> bool:
        if not await self._notify(decision):
            return False
        if decision.principal is None:
            await self._tries.failed()
            return False
        if self._conn is not None:
            self._principals[self._conn] = decision.principal
        return True


SessionHandler = Callable[[asyncssh.SSHServerProcess[bytes], Principal], Awaitable[None]]


def bound_port(listener: asyncssh.SSHAcceptor | None) -> int | None:
    """The port a listener actually bound (differs from the configured one only for port 0)."""
    if listener is None:
        return None
    return int(listener.sockets[0].getsockname()[1])


async def listen(
    *,
    host: str | list[str] | None,
    port: int,
    key: asyncssh.SSHKey,
    subsystem: str,
    handler: SessionHandler,
    config: Callable[[], Config],
    authenticator: Authenticator,
    admit: Admission | None = None,
    on_auth: AuthListener | None = None,
    login_timeout: float = LOGIN_TIMEOUT,
) -> asyncssh.SSHAcceptor:
    """Bind an SSH listener that serves exactly one subsystem.

    ``login_timeout`` closes connections that have not authenticated by then (slowloris).
    """
    principals: dict[asyncssh.SSHServerConnection, Principal] = {}

    async def process(proc: asyncssh.SSHServerProcess[bytes]) -> None:
        conn = proc.get_extra_info("connection")
        principal = principals.get(conn)
        if proc.subsystem != subsystem or principal is None:
            proc.stderr.write(f"only the {subsystem} subsystem is served here\n".encode())
            proc.exit(1)
            return
        try:
            await handler(proc, principal)
        finally:
            if not proc.is_closing():
                proc.exit(0)

    def factory() -> ServerConnection:
        return ServerConnection(config, authenticator, principals, admit, on_auth, subsystem)

    options: dict[str, Any] = {
        "server_host_keys": [key],
        "process_factory": process,
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
        "login_timeout": login_timeout,
        "keepalive_interval": 30,
        "keepalive_count_max": 3,
        "server_version": SERVER_VERSION,
        "reuse_address": True,
    }
    return await asyncssh.create_server(factory, host, port, **options)
