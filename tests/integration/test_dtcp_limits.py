"""Issue 4 acceptance 6 and SECURITY D9, D10, D11: admission limits applied live by commit,
table limits (550/551), and timeouts that free every slot; issue 15 item 5: the criteria limits
are configuration (``services flow-tap limits``), applied at boot and at every commit. The
daemons run with shortened timeouts and few content destinations through the FLOWTAP_DTCP_*
tuning variables, and with small criteria limits configured."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest
from lxml import etree
from ncclient.operations import RPCError

from flowtap.tools.dtcp_client import AsyncDtcpClient
from tests.flowtapd import NC, SVC, Flowtapd, TestUser
from tests.integration.dtcp_support import (
    FLOW_TAP,
    USERS,
    add_fields,
    commit,
    dtcp_edit,
    listed_ids,
    make_flowtapd,
    md,
    running,
)
from tests.radius_server import SECRET

TUNING = {
    "FLOWTAP_DTCP_LOGIN_TIMEOUT": "1",
    "FLOWTAP_DTCP_IDLE_TIMEOUT": "1.5",
    "FLOWTAP_DTCP_MESSAGE_TIMEOUT": "1.5",
    "FLOWTAP_DTCP_RATE_WINDOW": "2",
    "FLOWTAP_DTCP_MAX_DESTINATIONS_PER_SOURCE": "3",
    "FLOWTAP_DTCP_MAX_DESTINATIONS": "4",
}
MD3 = {"md3"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flowtapd]:
    users = {**USERS, "md3": TestUser("md3", "md3-pw-1", "li-md")}
    daemon = make_flowtapd(tmp_path_factory.mktemp("limits"), users, env=TUNING)
    daemon.extra_config = booting_with_limits(criteria=80, criteria_per_source=50)
    daemon.start()
    yield daemon
    daemon.stop()


def limits(**leaves: int) -> str:
    """``<limits>`` of ``services flow-tap`` with leaves such as criteria_per_source=3."""
    body = "".join(f"<{k.replace('_', '-')}>{v}</{k.replace('_', '-')}>" for k, v in leaves.items())
    return f"<limits>{body}</limits>"


def booting_with_limits(**leaves: int) -> str:
    """The flow-tap configuration of ``make_flowtapd``, with criteria limits from the start."""
    return FLOW_TAP.replace("</flow-tap>", limits(**leaves) + "</flow-tap>")


def limits_edit(**leaves: int) -> str:
    """An edit-config body changing ``services flow-tap limits`` leaves."""
    return f'<config xmlns="{NC}"><services xmlns="{SVC}"><flow-tap>{limits(**leaves)}' \
        "</flow-tap></services></config>"


def banner(port: int, host: str = "127.0.0.1") -> bytes:
    """What a raw TCP client reads first: the SSH version line, or nothing when refused."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(5)
        try:
            sock.connect((host, port))
            return sock.recv(64)
        except (ConnectionResetError, BrokenPipeError):
            return b""


@contextlib.asynccontextmanager
async def holding(server: Flowtapd, count: int) -> AsyncIterator[list[AsyncDtcpClient]]:
    clients = []
    try:
        for _ in range(count):
            clients.append(await AsyncDtcpClient.connect(
                "127.0.0.1", server.dtcp_port, username="md1", password="md1-pw-1",
                known_hosts=None))  # fmt: skip
        yield clients
    finally:
        for client in clients:
            client.conn.close()
            await client.conn.wait_closed()


async def until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_connection_limit_applies_at_commit_and_keeps_criteria(server: Flowtapd) -> None:
    async with md(server) as client:
        kept = (await client.add(add_fields())).criteria_id
    await asyncio.to_thread(commit, server, dtcp_edit(connection_limit=3))
    async with holding(server, 3):
        assert banner(server.dtcp_port) == b""  # 4th: refused before the SSH version exchange
        with pytest.raises((ConnectionError, asyncssh.Error, OSError)):
            await AsyncDtcpClient.connect("127.0.0.1", server.dtcp_port, username="md1",
                                          password="md1-pw-1", known_hosts=None)  # fmt: skip
        await asyncio.to_thread(commit, server, dtcp_edit(connection_limit=5))
        assert banner(server.dtcp_port).startswith(b"SSH-2.0-")  # no restart needed
    await until(lambda: banner(server.dtcp_port).startswith(b"SSH-2.0-"))
    async with md(server) as client:
        assert kept in listed_ids(await client.list())
        await client.request("DELETE", [("Criteria-ID", "*"), ("Flags", "STATIC")])
    await asyncio.to_thread(commit, server, dtcp_edit(connection_limit=75))


async def test_rate_limit_applies_at_commit_per_ip_family(tmp_path: Path) -> None:
    daemon = make_flowtapd(tmp_path, env=TUNING)
    with contextlib.ExitStack() as stack:
        daemon.start()
        stack.callback(daemon.stop)
        await asyncio.to_thread(commit, daemon, dtcp_edit(rate_limit=5))
        for _ in range(5):
            assert banner(daemon.dtcp_port).startswith(b"SSH-2.0-")
        assert banner(daemon.dtcp_port) == b""  # the 6th attempt in the window
        assert banner(daemon.dtcp_port, "::1").startswith(b"SSH-2.0-")  # IPv6 counts apart
        await asyncio.sleep(2.1)  # the tuned window is 2 s
        assert banner(daemon.dtcp_port).startswith(b"SSH-2.0-")  # the window slid


async def test_d10_refused_connections_cost_no_radius_query(tmp_path: Path) -> None:
    radius = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a RADIUS server that counts
    radius.bind(("127.0.0.1", 0))
    radius.setblocking(False)
    env = {**TUNING, "FLOWTAP_DTCP_LOGIN_TIMEOUT": "10"}  # the silent RADIUS costs 1 s
    daemon = make_flowtapd(tmp_path, env=env, connection_limit=1)
    daemon.extra_system = (
        "<authentication-order>radius</authentication-order>"
        "<authentication-order>password</authentication-order>"
        f"<radius-server><name>127.0.0.1</name><port>{radius.getsockname()[1]}</port>"
        f"<secret>{SECRET}</secret><timeout>1</timeout><retry>1</retry></radius-server>")

    def queries() -> int:
        count = 0
        with contextlib.suppress(BlockingIOError):
            while radius.recv(4096):
                count += 1
        return count

    with contextlib.ExitStack() as stack:
        stack.callback(radius.close)
        daemon.start()
        stack.callback(daemon.stop)
        async with holding(daemon, 1):  # RADIUS silent: local password as a last resort
            assert queries() >= 1
            for _ in range(3):
                assert banner(daemon.dtcp_port) == b""
            await asyncio.sleep(0.2)
            assert queries() == 0


async def test_d9_flood_gets_clean_limit_errors_and_spares_the_others(server: Flowtapd) -> None:
    # (channels are opened per step: this daemon closes channels idle for 1.5 s)
    async with md(server, "md3") as c3:  # 551: 3 mediation devices per source, 4 in all
        for cdest in ("a", "b", "c"):
            assert (await c3.add(add_fields(cdest=cdest))).status == 200
        full = await c3.add(add_fields(cdest="d"))
        assert full.status_line == "DTCP/0.7 551 Max Content Destination Exceeded"
    async with md(server, "md2") as c2:
        assert (await c2.add(add_fields(cdest="x"))).status == 200  # the 4th in all
    async with md(server, "md1") as c1:
        assert (await c1.add(add_fields(cdest="y"))).status == 551  # md1 has none yet
    async with md(server, "md3") as c3:  # 550: 50 criteria per source; duplicates are distinct
        replies = await c3.pipeline([c3.build("ADD", add_fields(cdest="a")) for _ in range(60)])
        ok = [r for r in replies if r.status == 200]
        assert len(ok) == 47 and len({r.criteria_id for r in ok}) == 47
        assert {r.status_line for r in replies[47:]} == {"DTCP/0.7 550 Max Criteria Limit Exceeded"}
    async with md(server, "md2") as c2:  # 550: 80 in all
        replies = await c2.pipeline([c2.build("ADD", add_fields(cdest="x")) for _ in range(40)])
        assert [r.status for r in replies].count(200) == 29
        warm = [c2.build("ADD", add_fields(cdest="x")) for _ in range(1000)]
        assert {r.status for r in await c2.pipeline(warm)} == {550}
        before = rss_kib(server)  # memory stays flat under a flood of refused ADDs
        for _ in range(10):
            batch = [c2.build("ADD", add_fields(cdest="x")) for _ in range(500)]
            assert {r.status for r in await c2.pipeline(batch)} == {550}
        assert rss_kib(server) - before < 1024
    async with md(server, "md3") as c3:
        assert len(listed_ids(await c3.list([("Flags", "Criteria")]))) == 50  # untouched
        await c3.request("DELETE", [("Cdest-ID", "a"), ("Flags", "STATIC")])
    async with md(server, "md1") as c1:  # room again, for everyone
        assert (await c1.add(add_fields(cdest="y"))).status == 200
    for user in ("md1", "md2", "md3"):
        async with md(server, user) as client:
            await client.request("DELETE", [("Criteria-ID", "*"), ("Flags", "STATIC")])


def rss_kib(server: Flowtapd) -> int:
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1])


async def test_d11_timeouts_close_and_free_every_slot(server: Flowtapd) -> None:
    await asyncio.to_thread(commit, server, dtcp_edit(connection_limit=3))
    try:
        # login_timeout: a TCP connection that never authenticates
        reader, writer = await asyncio.open_connection("127.0.0.1", server.dtcp_port)
        assert (await reader.readline()).startswith(b"SSH-2.0-")
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        writer.close()
        # idle: an authenticated channel that sends nothing
        async with md(server) as idle:
            assert await asyncio.wait_for(idle.process.stdout.read(), 10) == b""
        # partial message: bytes keep trickling but the message never ends
        async with md(server) as slow:
            slow.process.stdin.write(b"ADD DTCP/0.7\r\nCsource-ID: md1\r\n")
            closed = False
            for _ in range(40):
                await asyncio.sleep(0.25)
                if slow.process.stdout.at_eof():
                    closed = True
                    break
                with contextlib.suppress(BrokenPipeError):
                    slow.process.stdin.write(b"X")
            assert closed or await asyncio.wait_for(slow.process.stdout.read(), 5) == b""
        # every slot is free again: three connections fit under connection-limit 3
        await until(lambda: banner(server.dtcp_port).startswith(b"SSH-2.0-"))
        await asyncio.sleep(1.2)  # the probe above holds a slot until its login timeout
        async with holding(server, 3) as clients:
            for c in clients:
                assert (await c.noop()).status == 200
    finally:
        await asyncio.to_thread(commit, server, dtcp_edit(connection_limit=75))


FULL = "DTCP/0.7 550 Max Criteria Limit Exceeded"


async def statuses(server: Flowtapd, user: str, count: int) -> list[int]:
    """The statuses of ``count`` ADDs of ``user``, one after another."""
    async with md(server, user) as client:
        return [(await client.add(add_fields())).status for _ in range(count)]


async def delete(server: Flowtapd, user: str, selector: str) -> None:
    async with md(server, user) as client:
        reply = await client.request("DELETE", [("Criteria-ID", selector), ("Flags", "STATIC")])
        assert reply.status == 200, reply.raw


async def installed(server: Flowtapd, user: str) -> list[int]:
    async with md(server, user) as client:
        return listed_ids(await client.list([("Flags", "Criteria")]))


async def test_criteria_limits_apply_at_commit_and_never_drop_criteria(tmp_path: Path) -> None:
    daemon = make_flowtapd(tmp_path)
    with contextlib.ExitStack() as stack:
        daemon.start()
        stack.callback(daemon.stop)
        await asyncio.to_thread(commit, daemon, limits_edit(criteria_per_source=3))
        async with md(daemon) as md1:
            assert [(await md1.add(add_fields())).status for _ in range(3)] == [200] * 3
            assert (await md1.add(add_fields())).status_line == FULL  # the 4th
        assert await statuses(daemon, "md2", 1) == [200]  # a limit per source
        await asyncio.to_thread(commit, daemon, limits_edit(criteria_per_source=5))
        assert await statuses(daemon, "md1", 3) == [200, 200, 550]  # the 4th, 5th; 6th
        # lowered below what md1 has installed: accepted, and all five stay
        await asyncio.to_thread(commit, daemon, limits_edit(criteria_per_source=2))
        assert await installed(daemon, "md1") == [1, 2, 3, 4, 5]
        assert await statuses(daemon, "md1", 1) == [550]
        await delete(daemon, "md1", "1-3")
        assert await statuses(daemon, "md1", 1) == [550]  # 2 of 2
        await delete(daemon, "md1", "4")
        assert await statuses(daemon, "md1", 2) == [200, 550]  # below the limit again
        # the total: md1 2 + md2 1 = 3 of 4, whatever the per-source room
        await asyncio.to_thread(commit, daemon, limits_edit(criteria=4, criteria_per_source=4))
        assert await statuses(daemon, "md2", 2) == [200, 550]
        assert await statuses(daemon, "md1", 1) == [550]
        # a restart boots the persisted limits (criteria do not survive it)
        daemon.stop()
        daemon.start(init=False)
        assert await statuses(daemon, "md1", 5) == [200, 200, 200, 200, 550]


def test_limits_are_validated_at_commit(tmp_path: Path) -> None:
    daemon = make_flowtapd(tmp_path, dtcp=False)
    with running(daemon), daemon.connect("admin") as m:
        defaults = etree.fromstring(m.dispatch(etree.fromstring(
            f'<get-config xmlns="{NC}"><source><running/></source><filter type="subtree">'
            f'<services xmlns="{SVC}"><flow-tap><limits/></flow-tap></services></filter>'
            '<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">'
            "report-all</with-defaults></get-config>")).xml.encode())  # fmt: skip
        assert defaults.findtext(f".//{{{SVC}}}criteria") == "32768"
        assert defaults.findtext(f".//{{{SVC}}}criteria-per-source") == "16384"
        m.edit_config(target="candidate", config=limits_edit(criteria_per_source=40000))
        with pytest.raises(RPCError) as exc:
            m.commit()
        assert exc.value.message == ("flow-tap limits criteria-per-source (default 16384) must "
                                     "not exceed limits criteria (default 32768)")  # fmt: skip
        m.discard_changes()
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate", config=limits_edit(criteria=1000001))
            m.commit()
        assert exc.value.tag == "invalid-value"
        m.discard_changes()
        m.edit_config(target="candidate", config=limits_edit(criteria=100000,
                                                             criteria_per_source=100000))
        m.commit()
        data = m.get_config("running").data_xml
        assert "<criteria>100000</criteria>" in data
        assert "<criteria-per-source>100000</criteria-per-source>" in data


def workers_edit(value: int) -> str:
    return (f'<config xmlns="{NC}"><services xmlns="{SVC}"><flow-tap>'
            f"<capture-workers>{value}</capture-workers></flow-tap></services></config>")


def test_capture_workers_round_trip_and_range(tmp_path: Path) -> None:
    daemon = make_flowtapd(tmp_path, dtcp=False)
    with running(daemon), daemon.connect("admin") as m:
        assert "capture-workers" not in m.get_config("running").data_xml  # absent: one per CPU
        for wrong in (0, 65):
            with pytest.raises(RPCError) as exc:
                m.edit_config(target="candidate", config=workers_edit(wrong))
                m.commit()
            assert exc.value.tag == "invalid-value"
            m.discard_changes()
        m.edit_config(target="candidate", config=workers_edit(2))
        m.commit()
        flt = f'<services xmlns="{SVC}"><flow-tap><capture-workers/></flow-tap></services>'
        data = m.get_config("running", filter=("subtree", flt)).data_xml
        assert "<capture-workers>2</capture-workers>" in data


def test_only_flow_tap_holders_see_or_change_the_limits(tmp_path: Path) -> None:
    users = {**USERS, "ftctl": TestUser("ftctl", "ftctl-pw-1", "ft-ctl")}
    daemon = make_flowtapd(tmp_path, users, dtcp=False)
    daemon.extra_config = booting_with_limits(criteria=1000, criteria_per_source=100)
    with running(daemon):
        with daemon.connect("ops") as m:  # view and configure, no flow-tap
            for reply in (m.get_config("running").data_xml, m.get().data_xml):
                assert "limits" not in reply and "1000" not in reply
            flt = f'<services xmlns="{SVC}"><flow-tap><limits/></flow-tap></services>'
            assert "limits" not in m.get_config("running", filter=("subtree", flt)).data_xml
            for edit in (limits_edit(criteria=2000), workers_edit(2)):
                with pytest.raises(RPCError) as exc:
                    m.edit_config(target="candidate", config=edit)
                    m.commit()
                assert exc.value.tag == "access-denied"
                assert "2000" not in exc.value.message and not exc.value.path
                m.discard_changes()
        with daemon.connect("ftctl") as m:
            assert "<criteria>1000</criteria>" in m.get_config("running").data_xml
            m.edit_config(target="candidate", config=limits_edit(criteria=2000))
            m.commit()
            assert "<criteria>2000</criteria>" in m.get_config("running").data_xml
