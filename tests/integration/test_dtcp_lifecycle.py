"""Issue 4: the DTCP endpoint follows the configuration (commit hook), and criteria live with the
control source and the flow-tap service, not with SSH channels (Junos behaviour)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from tests.flowtapd import NC, SVC, SYS, Flowtapd, free_port
from tests.integration.dtcp_support import (
    FLOW_TAP,
    add_fields,
    audit_records,
    commit,
    dtcp_edit,
    dtcp_service,
    listed_ids,
    make_flowtapd,
    md,
    running,
)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def system_services(body: str) -> str:
    return f'<config xmlns="{NC}"><system xmlns="{SYS}"><services>{body}</services></system></config>'


async def apply(server: Flowtapd, config: str) -> None:
    await asyncio.to_thread(commit, server, config)


async def test_listener_follows_the_configuration(tmp_path: Path) -> None:
    with running(make_flowtapd(tmp_path, dtcp=False)) as server:
        assert not listening(server.dtcp_port)
        await apply(server, system_services(dtcp_service(server.dtcp_port)))
        assert listening(server.dtcp_port)
        async with md(server) as client:
            kept = (await client.add(add_fields())).criteria_id
            first_port, server.dtcp_port = server.dtcp_port, free_port()
            await apply(server, dtcp_edit(port=server.dtcp_port))  # rebind: channels carry on
            assert listening(server.dtcp_port) and not listening(first_port)
            assert (await client.noop()).status == 200
            await apply(server, system_services(
                f'<flow-tap-dtcp xmlns:nc="{NC}" nc:operation="delete"/>'))
            assert not listening(server.dtcp_port)
            assert await asyncio.wait_for(client.process.stdout.read(), 5) == b""  # closed
        await apply(server, system_services(dtcp_service(server.dtcp_port)))
        async with md(server) as client:
            assert listed_ids(await client.list()) == [kept]  # criteria stayed
            await apply(server, f'<config xmlns="{NC}"><services xmlns="{SVC}">'
                                f'<flow-tap xmlns:nc="{NC}" nc:operation="delete"/></services>'
                                "</config>")  # fmt: skip
            assert not listening(server.dtcp_port)  # DTCP needs flow-tap
            assert await asyncio.wait_for(client.process.stdout.read(), 5) == b""
        await apply(server, f'<config xmlns="{NC}">{FLOW_TAP}</config>')
        async with md(server) as client:
            assert listed_ids(await client.list()) == []  # flow-tap removed: all dropped
            assert (await client.add(add_fields())).criteria_id == kept + 1  # never reused
    cleared = [r for r in audit_records(server) if r["event"] == "dtcp-remove"]
    assert [(r["result"], r["criteria_id"], r["principal"]) for r in cleared] == [
        ("cleared", kept, "md1"), ("service stopped", kept + 1, "md1")]


async def test_criteria_survive_the_channel_but_not_a_restart(tmp_path: Path) -> None:
    server = make_flowtapd(tmp_path)
    with running(server):
        for _ in range(2):  # Toby-style: a fresh connection per batch
            async with md(server) as client:
                await client.add(add_fields())
        async with md(server) as client:
            assert listed_ids(await client.list()) == [1, 2]
    with running(server):  # same configuration, new process: criteria are runtime state
        async with md(server) as client:
            assert listed_ids(await client.list()) == []
    stopped = [r for r in audit_records(server) if r["result"] == "service stopped"]
    assert [r["criteria_id"] for r in stopped] == [1, 2]


async def test_a_commit_taking_flow_tap_operation_away_closes_the_channel(tmp_path: Path) -> None:
    with running(make_flowtapd(tmp_path)) as server:
        async with md(server) as client, md(server, "md2") as other:
            await client.add(add_fields())
            await apply(server, (
                f'<config xmlns="{NC}" xmlns:nc="{NC}"><system xmlns="{SYS}"><login>'
                "<user><name>md1</name><class>ops</class></user></login></system></config>"))
            assert await asyncio.wait_for(client.process.stdout.read(), 5) == b""
            assert (await other.noop()).status == 200  # md2 keeps its permission
