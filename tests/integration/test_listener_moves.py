"""Issue 13 row 7 (item 5): listeners move without a gap. Any change of addresses, ports or
families in one commit works, including on the same port and between the wildcard and a specific
address in both directions; open sessions survive; a port taken by another process fails the
commit and leaves the old listeners serving."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from ncclient.operations import RPCError

from flowtap.tools.dtcp_client import AsyncDtcpClient
from tests.flowtapd import NC, SYS, Flowtapd, free_port
from tests.integration.conftest import USERS
from tests.integration.dtcp_support import commit, make_flowtapd, md


def listening(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(5)
        return sock.connect_ex((host, port)) == 0


def addresses(service: str, remove: list[str], add: list[str], port: int | None = None) -> str:
    """An edit of ``system services <service> ssh``: listen-address values out and in."""
    gone = "".join(f'<listen-address nc:operation="delete">{a}</listen-address>' for a in remove)
    new = "".join(f"<listen-address>{a}</listen-address>" for a in add)
    port_leaf = f"<port>{port}</port>" if port is not None else ""
    return (f'<config xmlns="{NC}" xmlns:nc="{NC}"><system xmlns="{SYS}"><services>'
            f"<{service}><ssh>{port_leaf}{gone}{new}</ssh></{service}></services></system>"
            "</config>")  # fmt: skip


def where(port: int) -> set[str]:
    return {h for h in ("127.0.0.1", "127.0.0.2", "::1") if listening(h, port)}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Flowtapd]:
    server = Flowtapd(tmp_path / "state", free_port(), dict(USERS))  # listen-address 127.0.0.1
    server.start()
    yield server
    server.stop()


def test_netconf_listener_moves_on_the_same_port_and_the_session_survives(
    daemon: Flowtapd,
) -> None:
    port = daemon.port
    steps = [  # (remove, add) -> where it listens afterwards
        ([], ["::1"], {"127.0.0.1", "::1"}),  # a family added on the same port
        (["127.0.0.1", "::1"], ["0.0.0.0"], {"127.0.0.1", "127.0.0.2"}),  # specific -> wildcard
        (["0.0.0.0"], ["127.0.0.1"], {"127.0.0.1"}),  # wildcard -> specific, same port
    ]
    with daemon.connect("admin") as m:
        for remove, add, expected in steps:
            m.edit_config(target="candidate", config=addresses("netconf", remove, add))
            m.commit()
            assert where(port) == expected, (remove, add)
            assert m.get_config("running").ok  # the session that moved the listener serves on
            with daemon.connect("viewer") as other:  # and new sessions are admitted
                assert other.get_config("running").ok


async def test_dtcp_listener_moves_and_a_failing_bind_keeps_the_old_ones(tmp_path: Path) -> None:
    server = make_flowtapd(tmp_path)
    port, second = server.dtcp_port, free_port()
    server.system_services = f"<flow-tap-dtcp><ssh><port>{port}</port></ssh></flow-tap-dtcp>"
    server.start()
    try:
        assert where(port) == {"127.0.0.1", "127.0.0.2", "::1"}  # default: every address
        async with md(server) as client:
            steps = [
                (addresses("flow-tap-dtcp", [], ["127.0.0.1"]), port, {"127.0.0.1"}),
                (addresses("flow-tap-dtcp", [], ["::1"]), port, {"127.0.0.1", "::1"}),
                (addresses("flow-tap-dtcp", ["127.0.0.1", "::1"], []), port,
                 {"127.0.0.1", "127.0.0.2", "::1"}),  # back to every address, same port
                (addresses("flow-tap-dtcp", [], ["::1"], second), second, {"::1"}),  # port, family
            ]  # fmt: skip
            for config, now_port, expected in steps:
                await asyncio.to_thread(commit, server, config)
                assert where(now_port) == expected, config
                assert (await client.noop()).status == 200  # the open session survives
            assert where(port) == set()
            taken = socket.socket()  # another process's port (no SO_REUSEPORT)
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            try:
                busy = taken.getsockname()[1]
                with pytest.raises(RPCError) as refused:
                    await asyncio.to_thread(commit, server, addresses(
                        "flow-tap-dtcp", ["::1"], ["127.0.0.1"], busy))  # fmt: skip
                assert refused.value.tag == "resource-denied"
                assert "address already in use" in str(refused.value).lower()
            finally:
                taken.close()
            assert where(second) == {"::1"}  # the old listener still serves...
            other = await AsyncDtcpClient.connect("::1", second, username="md2",
                                                  password="md2-pw-1", known_hosts=None)
            assert (await other.noop()).status == 200  # ...new sessions too
            await other.close()
            assert (await client.noop()).status == 200
    finally:
        server.stop()
