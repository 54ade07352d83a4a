"""The per-connection auth-try limiter, alone and inside a real asyncssh server."""

from __future__ import annotations

import asyncio
import time

import asyncssh
import pytest

from flowtap.auth import passwords
from flowtap.auth.authenticator import Authenticator
from flowtap.auth.limits import AuthTryLimiter
from flowtap.config.model import Config, User

CONFIG = Config(users={"frank": User("frank", "read-only", passwords.make_hash("ok", rounds=1000))})


def test_counts_and_backoff() -> None:
    tries = AuthTryLimiter(max_tries=3, base_delay=0.1, max_delay=0.25)
    assert tries.allowed and tries.delay() == 0.0
    assert [tries.record_failure() for _ in range(4)] == [0.1, 0.2, 0.25, 0.25]
    assert tries.exhausted and not tries.allowed and tries.failures == 4
    with pytest.raises(ValueError):
        AuthTryLimiter(max_tries=0)


async def test_failed_sleeps_the_backoff() -> None:
    tries = AuthTryLimiter(max_tries=3, base_delay=0.05)
    start = time.monotonic()
    await tries.failed()
    await tries.failed()
    assert time.monotonic() - start >= 0.14  # 0.05 + 0.1
    assert tries.allowed
    await tries.failed()
    assert tries.exhausted


class _Server(asyncssh.SSHServer):
    attempts: list[int] = []

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._tries = AuthTryLimiter(max_tries=3, base_delay=0.01)
        self._peer = str(conn.get_extra_info("peername")[0])

    def begin_auth(self, username: str) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        return False

    def password_auth_supported(self) -> bool:
        return self._tries.allowed

    async def validate_password(self, username: str, password: str) -> bool:
        _Server.attempts.append(1)
        decision = await Authenticator().password(CONFIG, username, password, self._peer)
        if not decision.accepted:
            await self._tries.failed()
        return decision.accepted


class _Client(asyncssh.SSHClient):
    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.asked = 0

    def password_auth_requested(self) -> str | None:
        self.asked += 1
        return self.answers.pop(0) if self.answers else "still-wrong"


@pytest.fixture
async def ssh_port() -> int:
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        _Server, "127.0.0.1", 0, server_host_keys=[key], login_timeout=10
    )
    _Server.attempts = []
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def _connect(port: int, answers: list[str]) -> tuple[_Client, BaseException | None]:
    client = _Client(answers)
    try:
        conn = await asyncssh.connect(
            "127.0.0.1", port, username="frank", known_hosts=None, client_keys=None,
            agent_path=None, preferred_auth="password", client_factory=lambda: client,
        )  # fmt: skip
    except (asyncssh.PermissionDenied, asyncssh.DisconnectError) as exc:
        return client, exc
    conn.close()
    await conn.wait_closed()
    return client, None


async def test_password_stops_being_offered_after_three_failures(ssh_port: int) -> None:
    client, exc = await asyncio.wait_for(_connect(ssh_port, []), 10)
    assert isinstance(exc, asyncssh.PermissionDenied)
    assert client.asked == 3 and len(_Server.attempts) == 3


async def test_success_on_third_try(ssh_port: int) -> None:
    client, exc = await asyncio.wait_for(_connect(ssh_port, ["bad", "worse", "ok"]), 10)
    assert exc is None and client.asked == 3
