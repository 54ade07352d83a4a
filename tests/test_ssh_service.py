"""SshService, the SSH half of the NETCONF and DTCP commit hooks: listeners move between the
configurations of its handle, limits apply at commit, a service's own refusal comes before the
logged-in slot. Real listening sockets on 127.0.0.1, no daemon."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from flowtap.auth.authenticator import Authenticator
from flowtap.auth.principal import Principal
from flowtap.config import model
from flowtap.errors import CommitFailed
from flowtap.sshd.admission import Limits
from flowtap.sshd.channel import Channel
from flowtap.sshd.listeners import Endpoint
from flowtap.sshd.server import Refusal
from flowtap.sshd.service import SshService

PRINCIPAL = Principal("alice", "alice", "super-user", frozenset(), "password")


def endpoints_of(config: model.Config) -> frozenset[Endpoint]:
    if config.netconf is None:
        return frozenset()
    return frozenset({("127.0.0.1", config.netconf.port)})


def config(port: int | None, connection_limit: int = 75) -> model.Config:
    if port is None:
        return model.Config()
    return model.Config(netconf=model.NetconfService(port=port, connection_limit=connection_limit))


async def serve(channel: Channel, principal: Principal) -> None:
    raise AssertionError("no channel is opened in these tests")


def make(tmp_path: Path, refuse: Any = None) -> SshService:
    return SshService(
        label="TEST", subsystem="test", path="/test", state_dir=tmp_path,
        authenticator=Authenticator(), config=model.Config, serve=serve,
        endpoints_of=endpoints_of, limits_of=lambda c: c.netconf,
        limits=Limits(connection_limit=7), rate_window=60.0, refuse=refuse,
    )  # fmt: skip


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[SshService]:
    ssh = make(tmp_path)
    yield ssh
    ssh.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_commit_moves_to_the_new_configuration_of_its_handle(service: SshService) -> None:
    old, new = config(None), config(free_port(), connection_limit=3)
    handle = await service.prepare(old, new)
    assert (handle.old, handle.new) == (old, new)
    assert service.port is None  # bound, not served before commit
    service.commit(handle)
    assert new.netconf is not None and service.port == new.netconf.port
    assert service.gate.admission.limits == Limits.of(new.netconf)
    with socket.create_connection(("127.0.0.1", new.netconf.port), timeout=2):
        pass
    gone = await service.prepare(new, old)
    service.commit(gone)
    assert service.port is None
    assert service.gate.admission.limits == Limits.of(new.netconf)  # no netconf: limits stay


async def test_abort_closes_what_prepare_bound(service: SshService) -> None:
    port = free_port()
    handle = await service.prepare(config(None), config(port))
    await service.abort(handle)
    assert service.port is None
    assert service.gate.admission.limits == Limits(connection_limit=7)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # free again


async def test_a_busy_port_fails_prepare(service: SshService) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(CommitFailed, match="Cannot listen for TEST"):
            await service.prepare(config(None), config(busy.getsockname()[1]))


class Conn:
    """The part of an asyncssh connection the gate and the login check use."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    def get_extra_info(self, name: str) -> Any:
        return ("192.0.2.1", 40000) if name == "peername" else None

    async def wait_closed(self) -> None:
        await self.closed.wait()

    def close(self) -> None:
        self.closed.set()


async def test_login_takes_a_logged_in_slot(service: SshService) -> None:
    conn = Conn()
    assert service.gate.admit(conn) is None  # type: ignore[arg-type]
    assert service.server.authorize is not None
    assert service.server.authorize(conn, PRINCIPAL) is None  # type: ignore[arg-type]
    assert service.gate.admission.logged_in(4) == 1
    service.disconnect_all()
    await service.drained()
    assert service.gate.admission.logged_in(4) == 0


async def test_login_without_a_free_slot_is_refused(service: SshService) -> None:
    service.gate.admission.update(Limits(connection_limit=1))
    first, second = Conn(), Conn()
    for conn in (first, second):
        assert service.gate.admit(conn) is None  # type: ignore[arg-type]
    assert service.server.authorize is not None
    assert service.server.authorize(first, PRINCIPAL) is None  # type: ignore[arg-type]
    refusal = service.server.authorize(second, PRINCIPAL)  # type: ignore[arg-type]
    assert refusal is not None and refusal.message == "test: login refused (connection-limit)"
    second.close()  # (the refused one is no longer the gate's to close)
    service.disconnect_all()
    await service.drained()


async def test_the_services_own_refusal_comes_before_the_slot(tmp_path: Path) -> None:
    asked: list[Principal] = []

    def refuse(conn: Any, principal: Principal) -> Refusal:
        asked.append(principal)
        return Refusal("test: permission denied")

    ssh = make(tmp_path, refuse)
    conn = Conn()
    try:
        assert ssh.gate.admit(conn) is None  # type: ignore[arg-type]
        assert ssh.server.authorize is not None
        refusal = ssh.server.authorize(conn, PRINCIPAL)  # type: ignore[arg-type]
        assert refusal is not None and refusal.message == "test: permission denied"
        assert asked == [PRINCIPAL]
        assert ssh.gate.admission.logged_in(4) == 0  # no slot taken
    finally:
        ssh.disconnect_all()
        await ssh.drained()
        ssh.close()
