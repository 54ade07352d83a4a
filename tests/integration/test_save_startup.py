"""Saving startup with split duties (issue 17 item 3): copy-config running -> startup and
delete-config startup are a copy and a delete of the whole datastore, allowed to a user holding
``configure`` + ``maintenance`` even when running holds what that user cannot read (LI
configuration, secrets). Nothing of it comes back to them; without ``maintenance`` the
node-by-node rules stay. Real daemon, ncclient."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ncclient.operations import RPCError

from tests.flowtapd import IFS, SVC, Flowtapd, TestUser, free_port

from .conftest import USERS

MAINT_CLASS = ("<class><name>ops-maint</name><permissions>view</permissions>"
               "<permissions>configure</permissions><permissions>maintenance</permissions>"
               "</class>")  # fmt: skip
SP = (f'<interfaces xmlns="{IFS}"><interface><name>sp-0/0/0</name><host-device>lo</host-device>'
      "<unit><name>0</name><family><inet/></family></unit></interface></interfaces>")
FLOW_TAP = f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap></services>'


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Flowtapd]:
    users = {**USERS, "maint": TestUser("maint", "maint-pw-1", "ops-maint"),
             "su": TestUser("su", "su-pw-1", "super-user")}  # fmt: skip
    daemon = Flowtapd(tmp_path / "state", free_port(), users, extra_classes=MAINT_CLASS,
                      extra_config=SP + FLOW_TAP)  # fmt: skip
    daemon.start()
    yield daemon
    daemon.stop()


def startup_of(server: Flowtapd, user: str = "admin") -> str:
    with server.connect(user) as m:
        return str(m.get_config(source="startup").data_xml)


@pytest.mark.parametrize("user", ["maint", "su"])
def test_configure_and_maintenance_save_and_delete_the_whole_startup(
    server: Flowtapd, user: str
) -> None:
    with server.connect(user) as m:
        reply = m.copy_config(source="running", target="startup")
        assert reply.ok
        assert "<flow-tap" not in reply.xml  # nothing of the copy comes back
        assert "<flow-tap" not in str(m.get_config(source="startup").data_xml)  # still pruned
    saved = startup_of(server)  # the LI administrator sees the whole of it
    assert "<flow-tap>" in saved and "sp-0/0/0.0" in saved
    assert (server.state_dir / "startup.xml").read_bytes().count(b"<flow-tap>") == 1
    with server.connect(user) as m:
        assert m.delete_config(target="startup").ok
    with server.connect("admin") as m, pytest.raises(RPCError, match="startup datastore is empty"):
        m.get_config(source="startup")


def test_without_maintenance_the_node_by_node_rules_stay(server: Flowtapd) -> None:
    with server.connect("admin") as m:
        m.copy_config(source="running", target="startup")
    with server.connect("ops") as m:  # view + configure, no maintenance
        with pytest.raises(RPCError) as refused:
            m.copy_config(source="running", target="startup")
        assert refused.value.tag == "access-denied"
        with pytest.raises(RPCError) as refused:
            m.delete_config(target="startup")
        assert refused.value.tag == "access-denied"
        assert "<flow-tap" not in str(refused.value)
    assert "<flow-tap>" in startup_of(server)


def test_only_running_is_saved_whole(server: Flowtapd) -> None:
    with server.connect("maint") as m:  # candidate -> startup is a write of what it holds
        with pytest.raises(RPCError) as refused:
            m.copy_config(source="candidate", target="startup")
        assert refused.value.tag == "access-denied"
        m.lock("startup")
        with server.connect("su") as other:  # a lock on startup holds against the save
            with pytest.raises(RPCError) as refused:
                other.copy_config(source="running", target="startup")
            assert refused.value.tag == "lock-denied"
