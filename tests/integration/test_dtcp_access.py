"""Issue 4 acceptance 5 and SECURITY D13: who may tap, with a real FreeRADIUS on loopback.

Decision under test: a principal without ``flow-tap-operation`` authenticates (the same login
serves NETCONF) but is refused when it opens the ``flow-tap-dtcp`` subsystem; the refusal and
every authentication decision are in the LI audit log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from ncclient import manager

from flowtap.tools.dtcp_client import AsyncDtcpClient
from tests.flowtapd import SVC, SYS, Flowtapd, TestUser
from tests.integration.dtcp_support import (
    USERS,
    add_fields,
    audit_records,
    listed_ids,
    make_flowtapd,
    md,
)
from tests.radius_server import DEFAULT_USERS, SECRET, FreeRadius, free_udp_port

RADIUS_USERS = DEFAULT_USERS + (
    'ravi    Cleartext-Password := "ravi-secret"\n'
    '        Juniper-User-Permissions = "flow-tap-operation"\n'
)
LOCAL = {
    **USERS,
    "remote": TestUser("remote", "", "admin-system"),  # the RADIUS template: "admin system"
    "frank": TestUser("frank", "frank-local", "li-md"),
}


def radius_system(port: int, order: str = "radius password") -> str:
    methods = "".join(f"<authentication-order>{m}</authentication-order>" for m in order.split())
    return (f"{methods}<radius-server><name>127.0.0.1</name><port>{port}</port>"
            f"<secret>{SECRET}</secret><timeout>1</timeout><retry>1</retry></radius-server>")


@pytest.fixture(scope="module")
def radius(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeRadius]:
    with FreeRadius(tmp_path_factory.mktemp("radius"), users=RADIUS_USERS) as server:
        yield server


def radius_flowtapd(path: Path, port: int, users: dict[str, TestUser] | None = None) -> Flowtapd:
    daemon = make_flowtapd(path, users or LOCAL)
    daemon.extra_system = radius_system(port)
    return daemon


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, radius: FreeRadius) -> Iterator[Flowtapd]:
    daemon = radius_flowtapd(tmp_path_factory.mktemp("access"), radius.port)
    daemon.start()
    yield daemon
    daemon.stop()


async def connect(server: Flowtapd, user: str, password: str) -> AsyncDtcpClient:
    return await AsyncDtcpClient.connect(
        "127.0.0.1", server.dtcp_port, username=user, password=password,
        known_hosts=None)  # fmt: skip


@pytest.mark.parametrize(("user", "password"), [("ops", "ops-pw-1"),  # local, no LI bit
                                                ("mallory", "mallory-secret"),  # D13 garbage VSA
                                                ("carol", "carol-secret")])  # RADIUS, no VSA
async def test_without_flow_tap_operation_the_login_is_disconnected_at_once(
    server: Flowtapd, user: str, password: str,
) -> None:
    """Issue 13 row 2: a login without flow-tap-operation is disconnected as soon as it
    authenticates (it used to stay connected, holding a connection-limit slot, until it opened
    the subsystem), and never gets a channel."""
    with pytest.raises(asyncssh.Error) as refused_login:
        async with asyncssh.connect("127.0.0.1", server.dtcp_port, username=user,
                                    password=password, known_hosts=None) as conn:  # fmt: skip
            await asyncio.wait_for(conn.create_process(subsystem="flow-tap-dtcp"), 5)
    if isinstance(refused_login.value, asyncssh.DisconnectError):
        assert refused_login.value.reason == "flow-tap-dtcp: permission denied"
    await asyncio.sleep(0.1)
    refused = [r for r in audit_records(server) if r["event"] == "dtcp-session"
               and r["principal"] == user]  # fmt: skip
    assert [r["result"] for r in refused] == ["refused"]
    assert not [r for r in audit_records(server) if r["event"] == "dtcp" and r["principal"] == user]


async def test_radius_only_user_through_the_remote_template(server: Flowtapd) -> None:
    client = await connect(server, "ravi", "ravi-secret")
    async with client:
        assert (await client.add(add_fields())).status == 200
        assert len(listed_ids(await client.list())) == 1
    (auth,) = [r for r in audit_records(server) if r["event"] == "auth" and r["principal"] == "ravi"]
    assert (auth["result"], auth["template"], auth["method"]) == ("accept", "remote", "radius")
    ops = [r for r in audit_records(server) if r["event"] == "dtcp" and r["principal"] == "ravi"]
    assert {r["template"] for r in ops} == {"remote"}


def netconf_as(server: Flowtapd, user: str, password: str) -> manager.Manager:
    return manager.connect(host="127.0.0.1", port=server.port, username=user, password=password,
                           hostkey_verify=False, allow_agent=False, look_for_keys=False,
                           timeout=30)  # fmt: skip


async def test_seed_example_radius_and_class_permissions_unite(server: Flowtapd) -> None:
    """RADIUS "flow-tap-operation configure" + class "admin system": tap and configure."""

    def check_netconf() -> None:
        with netconf_as(server, "alice", "alice-secret") as m:
            data = m.get(filter=("subtree", f'<authorization xmlns="{SYS}"/>')).data_xml
            assert "<template-user>remote</template-user>" in data
            perms = {p.split("</permissions>")[0] for p in data.split("<permissions>")[1:]}
            assert perms == {"flow-tap-operation", "configure", "admin", "system"}
            m.edit_config(target="candidate", config=(  # "configure" may edit [services]
                '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
                f'<services xmlns="{SVC}"><dynamic-flow-capture/></services></config>'))
            m.discard_changes()

    await asyncio.to_thread(check_netconf)
    async with await connect(server, "alice", "alice-secret") as client:
        assert (await client.add(add_fields())).status == 200
    nc = [r for r in audit_records(server) if r["event"] == "auth" and r["session"] == "netconf"
          and r["principal"] == "alice"]  # fmt: skip
    assert [r["result"] for r in nc] == ["accept"]


async def test_d13_wrong_passwords_past_the_limit(server: Flowtapd) -> None:
    guesses: list[str] = []

    class Guesser(asyncssh.SSHClient):
        def password_auth_requested(self) -> str | None:
            guesses.append(f"wrong-{len(guesses)}")
            return guesses[-1] if len(guesses) <= 10 else None

    with pytest.raises(asyncssh.PermissionDenied):
        await asyncssh.create_connection(
            Guesser, "127.0.0.1", server.dtcp_port, username="md2",
            known_hosts=None, client_keys=None, agent_path=None)  # fmt: skip
    assert len(guesses) == 3  # then password authentication is no longer offered
    rejects = [r for r in audit_records(server) if r["event"] == "auth"
               and r["principal"] == "md2" and r["result"] == "reject"]  # fmt: skip
    assert len(rejects) == 3 and all("radius:reject" in r["reason"] for r in rejects)


async def test_radius_down_falls_back_to_local_passwords(tmp_path: Path) -> None:
    """authentication-order [radius password] with a silent RADIUS server: local last resort."""
    daemon = radius_flowtapd(tmp_path, free_udp_port())
    daemon.start()
    try:
        async with md(daemon, "frank", login_timeout=10) as client:
            assert (await client.add(add_fields())).status == 200
        with pytest.raises(asyncssh.PermissionDenied):
            await connect(daemon, "ravi", "ravi-secret")  # RADIUS-only: nobody to ask
    finally:
        daemon.stop()
    (frank,) = [r for r in audit_records(daemon) if r["principal"] == "frank"
                and r["event"] == "auth"]  # fmt: skip
    assert frank["reason"] == "radius:no-answer, password:accept"


async def test_d13_radius_user_without_any_template_is_refused(
    tmp_path: Path, radius: FreeRadius,
) -> None:
    users = {k: v for k, v in LOCAL.items() if k != "remote"}
    daemon = radius_flowtapd(tmp_path, radius.port, users)
    daemon.start()
    try:
        for user in ("ravi", "oscar"):  # oscar names a Juniper-Local-User-Name nobody has
            with pytest.raises(asyncssh.PermissionDenied):
                await connect(daemon, user, f"{user}-secret")
    finally:
        daemon.stop()
    reasons = {r["principal"]: r["reason"] for r in audit_records(daemon) if r["event"] == "auth"}
    assert reasons["ravi"] == reasons["oscar"] == "radius:accept-without-template"
