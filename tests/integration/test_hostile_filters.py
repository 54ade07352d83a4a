"""Issue 13 row 1: no request can starve the appliance (real flowtapd, real SSH, loopback).

A view-only user sends the XPath filter that froze the daemon for 210 s. While it is handled,
another NETCONF session must get its reply and the DTCP port its SSH banner within about a
second, the hostile request must get an rpc-error within seconds, and SIGTERM must end the
daemon (and its XPath workers) within 5 s. Every wait here has a client-side deadline, so on a
daemon that freezes these tests fail instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from lxml import etree

from flowtap.tools.netconf_client import NetconfClient
from tests.flowtapd import NC, SYS, Flowtapd, TestUser
from tests.integration.dtcp_support import USERS, make_flowtapd

HOSTILE = "//*[count(//*[count(//*[count(//*)>0])>0])>0]"
HOSTILE_GET = f'<get><filter type="xpath" select="{HOSTILE}"/></get>'
HOSTNAME_GET = (f'<get-config><source><running/></source><filter type="subtree">'
                f'<system xmlns="{SYS}"><host-name/></system></filter></get-config>')  # fmt: skip
RESPONSIVE = 2.0  # "about a second", with a margin for a loaded two-core machine
ERROR_WITHIN = 5.0  # the hostile request's rpc-error (the daemon's deadline is 0.5 s)
SIGTERM_WITHIN = 5.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Flowtapd]:
    # netops: the predefined read-only class (view only, no LI bits), as in the campaign
    users = dict(USERS) | {"netops": TestUser("netops", "netops-pw-1", "read-only")}
    srv = make_flowtapd(tmp_path, users)
    srv.start()
    yield srv
    srv.stop()


@contextlib.asynccontextmanager
async def session(server: Flowtapd, user: str) -> AsyncIterator[NetconfClient]:
    u = server.users[user]
    client = await asyncio.wait_for(
        NetconfClient.connect("127.0.0.1", server.port, u.name, u.password), 30
    )
    try:
        yield client
    finally:  # no close-session: a frozen daemon would never answer it
        if client.conn is not None:
            client.conn.close()


async def dtcp_banner(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await reader.readline()
    finally:
        writer.close()


def error_tags(reply: etree._Element) -> list[str]:
    return [e.findtext(f"{{{NC}}}error-tag") or "" for e in reply.iter(f"{{{NC}}}rpc-error")]


async def test_hostile_xpath_gets_an_error_while_others_are_served(server: Flowtapd) -> None:
    async with session(server, "admin") as other, session(server, "netops") as attacker:
        started = time.monotonic()
        hostile = asyncio.create_task(attacker.rpc(HOSTILE_GET, check=False))
        await asyncio.sleep(0.2)  # the request is in the daemon now
        assert not hostile.done()
        reply = await asyncio.wait_for(other.rpc(HOSTNAME_GET), RESPONSIVE)
        assert reply.findtext(f".//{{{SYS}}}host-name") == "test"
        banner = await asyncio.wait_for(dtcp_banner(server.dtcp_port), RESPONSIVE)
        assert banner.startswith(b"SSH-2.0-")
        error = await asyncio.wait_for(hostile, ERROR_WITHIN)
        assert time.monotonic() - started < ERROR_WITHIN
        assert error_tags(error) == ["operation-failed"]
        # the attacker's session and the daemon carry on
        again = await asyncio.wait_for(attacker.rpc(HOSTNAME_GET), RESPONSIVE * 5)
        assert again.findtext(f".//{{{SYS}}}host-name") == "test"


async def test_hostile_xpath_as_super_user_on_get_config(server: Flowtapd) -> None:
    async with session(server, "admin") as attacker:
        body = (f'<get-config><source><running/></source><filter type="xpath" '
                f'select="{HOSTILE}"/></get-config>')  # fmt: skip
        error = await asyncio.wait_for(attacker.rpc(body, check=False), ERROR_WITHIN)
        assert error_tags(error) == ["operation-failed"]


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_sigterm_during_hostile_requests_stops_within_5_s(server: Flowtapd) -> None:
    proc = server.proc
    assert proc is not None
    async with session(server, "admin") as idle, session(server, "netops") as a, \
            session(server, "admin") as b:  # fmt: skip
        assert idle.session_id  # an open, idle session must not keep the daemon alive
        requests = [asyncio.create_task(c.rpc(HOSTILE_GET, check=False)) for c in (a, b, a)]
        await asyncio.sleep(0.3)
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            await asyncio.to_thread(proc.wait, SIGTERM_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"flowtapd still running {SIGTERM_WITHIN} s after SIGTERM") from None
        assert time.monotonic() - started < SIGTERM_WITHIN
        assert workers, "no XPath worker was running"
        assert not [pid for pid in workers if _alive(pid)], "XPath workers outlived flowtapd"
        for request in requests:
            request.cancel()
        await asyncio.gather(*requests, return_exceptions=True)


def _classes(count: int) -> str:
    entries = "".join(f"<class><name>c{i}</name><permissions>view</permissions></class>"
                      for i in range(count))  # fmt: skip
    return (f'<edit-config><target><candidate/></target><config xmlns="{NC}">'
            f'<system xmlns="{SYS}"><login>{entries}</login></system></config></edit-config>')


async def test_huge_edit_is_too_big_while_others_are_served(server: Flowtapd) -> None:
    async with session(server, "admin") as other, session(server, "admin") as editor:
        huge = asyncio.create_task(editor.rpc(_classes(30_000), check=False))  # ~1.9 MiB
        await asyncio.sleep(0.5)  # sent and being parsed or edited
        reply = await asyncio.wait_for(other.rpc(HOSTNAME_GET), RESPONSIVE)
        assert reply.findtext(f".//{{{SYS}}}host-name") == "test"
        error = await asyncio.wait_for(huge, ERROR_WITHIN)
        assert error_tags(error) == ["too-big"]
        ok = await asyncio.wait_for(editor.rpc(_classes(1_000)), ERROR_WITHIN)
        assert ok.find(f"{{{NC}}}ok") is not None
