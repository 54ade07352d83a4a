"""The pyrad-based RADIUS client against a real FreeRADIUS on loopback."""

from __future__ import annotations

import logging
import time

import pytest

from flowtap.auth import radius
from flowtap.config.model import RadiusServer
from tests.radius_server import FreeRadius, free_udp_port


async def test_accept_carries_permissions_and_local_user_name(radius_server: FreeRadius) -> None:
    result = await radius.authenticate([radius_server.server()], "alice", "alice-secret")
    assert result == radius.RadiusAccept(
        server="127.0.0.1",
        permissions=("flow-tap-operation configure",),
        local_user_name="remote",
    )


async def test_several_vsa_instances_are_all_returned(radius_server: FreeRadius) -> None:
    result = await radius.authenticate([radius_server.server()], "bob", "bob-secret")
    assert isinstance(result, radius.RadiusAccept)
    assert result.permissions == ("flow-tap", "flow-tap-control")
    assert result.local_user_name is None


async def test_accept_without_vsas(radius_server: FreeRadius) -> None:
    result = await radius.authenticate([radius_server.server()], "carol", "carol-secret")
    assert result == radius.RadiusAccept("127.0.0.1", (), None)


async def test_non_ascii_and_control_values_are_dropped(radius_server: FreeRadius) -> None:
    result = await radius.authenticate([radius_server.server()], "mallory", "mallory-secret")
    assert isinstance(result, radius.RadiusAccept)
    assert result.dropped_values == 2  # "flow-tap-op\xc3\xa9ration" and "flow-tap-operation\x01"
    assert all(value.isascii() and value.isprintable() for value in result.permissions)
    assert "view" in result.permissions


@pytest.mark.parametrize(("user", "password"), [("carol", "wrong"), ("nobody", "x")])
async def test_reject(radius_server: FreeRadius, user: str, password: str) -> None:
    result = await radius.authenticate([radius_server.server()], user, password)
    assert result == radius.RadiusReject(server="127.0.0.1", code=3)


async def test_server_down_is_no_answer_after_timeout() -> None:
    dead = RadiusServer("127.0.0.1", "testing123", port=free_udp_port(), timeout=1, retry=2)
    start = time.monotonic()
    result = await radius.authenticate([dead], "alice", "x")
    elapsed = time.monotonic() - start
    assert result == radius.RadiusNoAnswer(servers_tried=1)
    assert 1.9 <= elapsed < 3.5  # retry = number of attempts: 2 x 1 s


async def test_wrong_secret_is_no_answer(radius_server: FreeRadius) -> None:
    server = radius_server.server(secret="not-the-secret")
    result = await radius.authenticate([server], "alice", "alice-secret")
    assert result == radius.RadiusNoAnswer(servers_tried=1)
    assert any("Shared secret is incorrect" in line for line in radius_server.output)


async def test_servers_are_tried_in_order_until_one_answers(radius_server: FreeRadius) -> None:
    silent = radius_server.server(port=free_udp_port())
    unbindable = radius_server.server(source_address="192.0.2.1")  # not a local address
    live = radius_server.server(source_address="127.0.0.1")
    result = await radius.authenticate([silent, unbindable, live], "bob", "bob-secret")
    assert isinstance(result, radius.RadiusAccept)
    assert result.permissions == ("flow-tap", "flow-tap-control")


async def test_reject_from_first_server_is_final(radius_server: FreeRadius) -> None:
    # the second entry would accept (same server, right password) but is never asked
    first = radius_server.server()
    second = radius_server.server(source_address="127.0.0.1")
    result = await radius.authenticate([first, second], "carol", "wrong")
    assert isinstance(result, radius.RadiusReject)


async def test_no_servers_is_no_answer() -> None:
    assert await radius.authenticate([], "alice", "x") == radius.RadiusNoAnswer(0)


@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "x" * 129), ("a" * 254, "x"), ("", "x"), ("alice", ""), ("alice", "\udcff")],
)
async def test_unencodable_credentials_are_refused_without_asking(
    radius_server: FreeRadius, user: str, password: str
) -> None:
    before = len(radius_server.output)
    result = await radius.authenticate([radius_server.server()], user, password)
    assert result == radius.RadiusReject(server=None)
    assert len(radius_server.output) == before  # FreeRADIUS logged no request


async def test_max_length_password(radius_server: FreeRadius) -> None:
    result = await radius.authenticate([radius_server.server()], "carol", "y" * 128)
    assert isinstance(result, radius.RadiusReject) and result.server == "127.0.0.1"


def test_dictionary_is_package_data_loaded_once() -> None:
    first = radius.dictionary()
    assert first is radius.dictionary()
    assert "Juniper-User-Permissions" in first.attributes
    assert first.attributes["Juniper-User-Permissions"].code == 10
    assert first.attributes["Juniper-Local-User-Name"].vendor == "Juniper"


async def test_pyrad_log_records_are_redacted(
    radius_server: FreeRadius, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await radius.authenticate(
        [radius_server.server(port=free_udp_port(), timeout=1, retry=1)], "alice", "alice-secret"
    )
    pyrad_records = [r for r in caplog.records if r.name == radius.PYRAD_LOGGER]
    assert pyrad_records  # the ICMP port-unreachable error went through the filter
    for record in caplog.records:
        message = record.getMessage()
        assert "alice" not in message and "testing123" not in message
        if record.name == radius.PYRAD_LOGGER:
            assert record.levelno >= logging.WARNING and record.args == ()
