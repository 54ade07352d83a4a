"""``system services netconf ssh { connection-limit; rate-limit; }`` (Junos, SECURITY N6): a
connection over a limit is refused before the SSH version exchange; commits change the limits
live and never drop an open session. And ``system login class X idle-timeout``: a session of
that class ends when idle that long."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

from lxml import etree

from flowtap.tools.netconf_client import NetconfClient
from tests.flowtapd import SYS, Flowtapd, TestUser, free_port
from tests.integration.conftest import USERS

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def banner(port: int) -> bytes:
    """What a raw TCP client reads first: the SSH version line, or nothing when refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            return sock.recv(64)
        except (ConnectionResetError, BrokenPipeError):
            return b""


async def session(server: Flowtapd, user: str = "admin") -> NetconfClient:
    return await NetconfClient.connect("127.0.0.1", server.port, user, USERS[user].password)


async def set_limits(client: NetconfClient, **limits: int) -> None:
    leaves = "".join(f"<{name.replace('_', '-')}>{value}</{name.replace('_', '-')}>"
                     for name, value in limits.items())  # fmt: skip
    await client.edit_candidate(f'<system xmlns="{SYS}"><services><netconf><ssh>{leaves}'
                                "</ssh></netconf></services></system>")  # fmt: skip
    await client.commit()


async def until_admitted(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not (await asyncio.to_thread(banner, port)).startswith(b"SSH-2.0-"):
        assert time.monotonic() < deadline, "a freed slot was never reused"
        await asyncio.sleep(0.05)


async def test_connection_limit_applies_at_commit_without_dropping_sessions(
    flowtapd: Flowtapd,
) -> None:
    admin = await session(flowtapd)
    await set_limits(admin, connection_limit=2)
    other = await session(flowtapd, "viewer")
    assert await asyncio.to_thread(banner, flowtapd.port) == b""  # the third connection
    await set_limits(admin, connection_limit=1)  # below what is open: nobody is dropped
    for client in (admin, other):  # both sessions still serve
        assert (await client.get_config("running")).find(f"{{{NC}}}data") is not None
    await other.close()
    assert await asyncio.to_thread(banner, flowtapd.port) == b""  # admin alone fills 1
    await set_limits(admin, connection_limit=3)
    await until_admitted(flowtapd.port)
    await admin.close()


async def test_rate_limit_counts_admitted_connections(flowtapd: Flowtapd) -> None:
    admin = await session(flowtapd)  # the first admitted connection of the minute
    await set_limits(admin, rate_limit=3)
    assert (await asyncio.to_thread(banner, flowtapd.port)).startswith(b"SSH-2.0-")
    assert (await asyncio.to_thread(banner, flowtapd.port)).startswith(b"SSH-2.0-")
    assert await asyncio.to_thread(banner, flowtapd.port) == b""  # the fourth in 60 s
    await set_limits(admin, rate_limit=150)  # raised at once: no restart, no wait
    assert (await asyncio.to_thread(banner, flowtapd.port)).startswith(b"SSH-2.0-")
    await admin.close()


async def test_with_defaults_report_all_shows_the_junos_defaults(shared_flowtapd: Flowtapd) -> None:
    admin = await session(shared_flowtapd)
    reply = await admin.rpc(
        '<get-config><source><running/></source><filter type="subtree">'
        f'<system xmlns="{SYS}"><services><netconf/></services></system></filter>'
        '<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">'
        "report-all</with-defaults></get-config>")  # fmt: skip
    assert reply.findtext(f".//{{{SYS}}}netconf/{{{SYS}}}ssh/{{{SYS}}}connection-limit") == "75"
    assert reply.findtext(f".//{{{SYS}}}netconf/{{{SYS}}}ssh/{{{SYS}}}rate-limit") == "150"
    await admin.close()


async def test_a_login_class_idle_timeout_ends_idle_sessions_only(tmp_path: Path) -> None:
    users = dict(USERS) | {"brief": TestUser("brief", "brief-pw-1", "brief")}
    daemon = Flowtapd(tmp_path / "state", free_port(), users,
                      env={"FLOWTAP_NETCONF_IDLE_MINUTE": "0.5"})  # fmt: skip
    daemon.extra_classes = ("<class><name>brief</name><permissions>view</permissions>"
                            "<idle-timeout>1</idle-timeout></class>")  # fmt: skip
    daemon.start()
    try:
        brief = await NetconfClient.connect("127.0.0.1", daemon.port, "brief", "brief-pw-1")
        admin = await NetconfClient.connect("127.0.0.1", daemon.port, "admin",
                                            USERS["admin"].password)  # fmt: skip
        for _ in range(6):  # busy for twice its idle-timeout: kept
            await asyncio.sleep(0.15)
            await brief.rpc("<get-config><source><running/></source></get-config>")
        await asyncio.sleep(1.0)  # idle for twice its idle-timeout: closed
        try:
            await brief.rpc("<get-config><source><running/></source></get-config>")
            raise AssertionError("the idle session was not closed")
        except (ConnectionError, OSError, etree.XMLSyntaxError):
            pass
        # the admin class has no idle-timeout: an hour
        assert (await admin.get_config("running")).find(f"{{{NC}}}data") is not None
        await admin.close()
    finally:
        daemon.stop()
