"""Issue 13 row 2 and the lock part of row 10: a login that holds no session must not hold a
slot, and an unresponsive client must not hold its session (and its candidate lock).

- A connection without an open subsystem channel is disconnected the login timeout after it was
  accepted, and again after its last channel ended (FLOWTAP_NETCONF_LOGIN_TIMEOUT,
  FLOWTAP_DTCP_LOGIN_TIMEOUT shorten it here).
- SSH keepalives end the connection of a peer that stopped answering (FLOWTAP_SSH_KEEPALIVE_INTERVAL
  shortens the 10 s interval here; 2 unanswered keepalives are tolerated).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest
from ncclient.operations import RPCError

from flowtap.sshd import server as sshd
from tests.flowtapd import Flowtapd, free_port
from tests.integration.conftest import USERS
from tests.integration.dtcp_support import make_flowtapd, md

HELLO_10 = (b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
            b"<capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>"
            b"]]>]]>")  # fmt: skip
CLOSE = (b'<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><close-session/>'
         b"</rpc>]]>]]>")  # fmt: skip
SHORT = {"FLOWTAP_NETCONF_LOGIN_TIMEOUT": "1", "FLOWTAP_NETCONF_HELLO_TIMEOUT": "1"}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Flowtapd]:
    server = Flowtapd(tmp_path / "state", free_port(), dict(USERS), env=SHORT)
    server.start()
    yield server
    server.stop()


async def login(port: int, user: str, password: str) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect("127.0.0.1", port, username=user, password=password,
                                  known_hosts=None)  # fmt: skip


@contextlib.asynccontextmanager
async def idle_logins(port: int, user: str, count: int, *, hello: bool
                      ) -> AsyncIterator[list[asyncssh.SSHClientConnection]]:  # fmt: skip
    """``count`` logins that open no channel, or (``hello``) one that never sends a hello."""
    conns = []
    try:
        for _ in range(count):
            conn = await login(port, user, USERS[user].password)
            conns.append(conn)
            if hello:
                await conn.create_process(subsystem="netconf", encoding=None)
        yield conns
    finally:
        for conn in conns:
            conn.close()


async def admin_logs_in(server: Flowtapd, timeout: float) -> float:
    """Seconds until admin gets a NETCONF session (retrying refused connections)."""
    start = time.monotonic()
    while True:
        try:
            with await asyncio.to_thread(server.connect, "admin") as m:
                m.get_config("running")
            return time.monotonic() - start
        except Exception:
            if time.monotonic() - start > timeout:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("hello", [False, True], ids=["no-channel", "no-hello"])
async def test_75_idle_logins_end_and_admin_gets_in(daemon: Flowtapd, hello: bool) -> None:
    async with idle_logins(daemon.port, "viewer", 75, hello=hello) as conns:  # connection-limit
        waited = await admin_logs_in(daemon, 15)
        for conn in conns:  # each was disconnected by the server
            await asyncio.wait_for(conn.wait_closed(), 5)
    print(f"\nadmin NETCONF login with 75 idle logins (hello={hello}) open: {waited:.2f} s")


async def test_a_connection_is_disconnected_after_its_channel_closes(daemon: Flowtapd) -> None:
    conn = await login(daemon.port, "admin", USERS["admin"].password)
    try:
        proc = await conn.create_process(subsystem="netconf", encoding=None)
        await proc.stdout.readuntil(b"]]>]]>")
        proc.stdin.write(HELLO_10 + CLOSE)
        assert b"<ok/>" in await asyncio.wait_for(proc.stdout.read(), 5)
        await asyncio.wait_for(conn.wait_closed(), 10)  # no channel left: disconnected
    finally:
        conn.close()


async def test_logins_without_flow_tap_operation_do_not_lock_out_the_mediation_device(
    tmp_path: Path,
) -> None:
    server = make_flowtapd(tmp_path, connection_limit=5, rate_limit=20)
    server.start()
    try:
        held = []
        for _ in range(5):  # netops logs in five times and opens nothing
            with contextlib.suppress(asyncssh.Error, OSError):
                held.append(await login(server.dtcp_port, "ops", "ops-pw-1"))
        async with md(server) as client:
            assert (await client.noop()).status == 200
        for conn in held:
            conn.close()
    finally:
        server.stop()


async def test_idle_mediation_device_logins_end_and_free_their_slots(tmp_path: Path) -> None:
    server = make_flowtapd(tmp_path, env={"FLOWTAP_DTCP_LOGIN_TIMEOUT": "1"}, connection_limit=5,
                           rate_limit=50)  # fmt: skip
    server.start()
    try:
        held = [await login(server.dtcp_port, "md2", "md2-pw-1") for _ in range(5)]
        for conn in held:
            await asyncio.wait_for(conn.wait_closed(), 10)
        async with md(server) as client:
            assert (await client.noop()).status == 200
    finally:
        server.stop()


LOCK_HOLDER = """
import sys, time
from ncclient import manager
m = manager.connect(host="127.0.0.1", port=int(sys.argv[1]), username="admin",
                    password=sys.argv[2], hostkey_verify=False, allow_agent=False,
                    look_for_keys=False, timeout=30)
m.lock("candidate")
print("locked", flush=True)
time.sleep(600)
"""


def test_keepalive_defaults_end_an_unresponsive_peer_within_30_s() -> None:
    assert sshd.KEEPALIVE_INTERVAL * (sshd.KEEPALIVE_COUNT_MAX + 1) <= 30


def test_a_stopped_client_loses_its_candidate_lock_at_the_keepalive_timeout(
    tmp_path: Path,
) -> None:
    interval = 1.0  # production: 10 s, so the lock ends within 30 s
    server = Flowtapd(tmp_path / "state", free_port(), dict(USERS),
                      env={"FLOWTAP_SSH_KEEPALIVE_INTERVAL": str(interval)})  # fmt: skip
    server.start()
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(server.port), USERS["admin"].password],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        holder.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        with server.connect("ops") as m:
            while True:
                try:
                    m.lock("candidate")
                    break
                except RPCError:
                    # 3 intervals of silence (+ margins for a loaded machine)
                    assert time.monotonic() - stopped < 3 * interval + 10, "lock never freed"
                    time.sleep(0.25)
            print(f"\nlock of a SIGSTOPped client freed after {time.monotonic() - stopped:.1f} s"
                  f" (keepalive interval {interval} s)")
            m.unlock("candidate")
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait()
        server.stop()



async def test_a_login_that_opens_no_channel_is_closed_within_the_channel_window(
        tmp_path: Path) -> None:  # fmt: skip
    """With the production 30 s login timeout, a logged-in connection still gets only
    ``sshd.CHANNEL_WINDOW`` to open its channel: one address within its rate-limit cannot hold
    the 75 logged-in slots (issue 13 row 2, an attacker with view-only credentials)."""
    server = Flowtapd(tmp_path / "state", free_port(), dict(USERS))
    server.start()
    try:
        conn = await login(server.port, "admin", USERS["admin"].password)
        started = time.monotonic()
        await asyncio.wait_for(conn.wait_closed(), sshd.CHANNEL_WINDOW + 7)
        assert time.monotonic() - started >= sshd.CHANNEL_WINDOW - 1
    finally:
        server.stop()
