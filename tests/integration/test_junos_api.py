"""Issue 17 item 1: the Junos XML API subset, driven by ncclient's Junos device handler
(``device_params={'name': 'junos'}``) against a real flowtapd on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from ncclient.operations import RPCError

from tests.flowtapd import SVC, SYS, Flowtapd, TestUser, free_port
from tests.integration.conftest import USERS
from tests.integration.test_access import LI_CONFIG

JUNOS = {"device_params": {"name": "junos"}}


def output(reply: object) -> str:
    """The text of a compare_configuration reply (``configuration-output``)."""
    return str(reply.findtext(".//configuration-output"))  # type: ignore[attr-defined]


def host_name(m) -> str:  # type: ignore[no-untyped-def]
    reply = m.get_configuration(format="xml", filter=etree.fromstring(
        "<configuration><system><host-name/></system></configuration>"))
    return str(reply.findtext(".//configuration/system/host-name"))


def test_load_compare_commit_rollback(flowtapd: Flowtapd) -> None:
    with flowtapd.connect("admin", **JUNOS) as m:
        text = m.get_configuration(format="text").findtext(".//configuration-text")
        assert text.startswith("## Last commit: ") and " by system\n" in text
        assert "system {\n    host-name test;\n" in text
        assert "## SECRET-DATA" in text  # encrypted passwords, as Junos marks them

        m.load_configuration(config="system { host-name j1; }", format="text", action="merge")
        assert output(m.compare_configuration(rollback=0)) == (
            "[edit system]\n-   host-name test;\n+   host-name j1;\n")
        reply = m.commit(comment="text load")
        assert reply.find(".//commit-results/routing-engine/commit-success") is not None
        assert host_name(m) == "j1"
        assert output(m.compare_configuration(rollback=0)) == "\n"
        assert "+   host-name j1;" in output(m.compare_configuration(rollback=1))

        m.load_configuration(config=etree.fromstring(
            "<system><login><user><name>carol</name><class>ops</class></user></login></system>"),
            format="xml", action="merge")
        m.load_configuration(action="set", config=[
            "set system host-name j2", "delete system authentication-order password",
            "set system login user carol full-name \"Carol C\""])
        m.load_configuration(format="text", action="replace", config=(
            "system { login { replace: user carol { class read-only; } } }"))
        diff = output(m.compare_configuration(rollback=0))
        assert "[edit system login]\n+   user carol {\n+       class read-only;\n+   }\n" in diff
        assert "full-name" not in diff  # replace: dropped what the user entry had before
        m.commit()
        assert host_name(m) == "j2"

        m.rollback(1)
        assert "-   host-name j2;\n+   host-name j1;" in output(m.compare_configuration(rollback=0))
        m.commit(comment="back to j1")
        assert host_name(m) == "j1"

        history = m.rpc(etree.fromstring("<get-commit-information/>"))
        logs = [h.findtext("log") for h in history.findall(".//commit-history")]
        assert logs[:3] == ["back to j1", None, "text load"]
        assert [h.findtext("sequence-number") for h in history.findall(".//commit-history")][:3] \
            == ["0", "1", "2"]
        assert history.findtext(".//commit-history/user") == "admin"


def test_confirmed_commit_in_minutes_then_confirm(flowtapd: Flowtapd) -> None:
    with flowtapd.connect("admin", **JUNOS) as m, flowtapd.connect("admin") as other:
        m.load_configuration(action="set", config=["set system host-name temporary"])
        before = time.time()
        m.commit(confirmed=True, timeout="300")  # ncclient sends <confirm-timeout>5</...>
        pending = json.loads((flowtapd.state_dir / "pending-confirm.json").read_text())
        assert 290 <= pending["deadline"] - before <= 310
        assert host_name(m) == "temporary"
        with pytest.raises(RPCError) as exc:  # another session cannot commit meanwhile
            other.commit()
        assert exc.value.tag == "in-use"
        m.commit()  # confirms
        assert not (flowtapd.state_dir / "pending-confirm.json").exists()
        other.commit()
        assert host_name(m) == "temporary"


def test_commit_check_changes_nothing(flowtapd: Flowtapd) -> None:
    with flowtapd.connect("admin", **JUNOS) as m:
        m.load_configuration(action="set", config=["set system host-name checked"])
        reply = m.commit(check=True)
        assert reply.find(".//routing-engine/commit-check-success") is not None
        assert host_name(m) == "checked"  # the candidate (get-configuration's default)
        committed = m.get_configuration(format="text").findtext(".//configuration-text")
        assert "host-name checked;" in committed
        assert "host-name test;" in m.rpc(etree.fromstring(
            '<get-configuration database="committed" format="text"/>'
        )).findtext(".//configuration-text")
        m.load_configuration(action="set", config=["set system login user dave class nosuch"])
        with pytest.raises(RPCError) as exc:
            m.commit(check=True)
        assert "super-user" in exc.value.message or exc.value.tag == "operation-failed"
        m.discard_changes()
        assert m.rpc(etree.fromstring('<get-configuration compare="rollback" rollback="0"/>')
                     ).findtext(".//configuration-output") == "\n"


def test_errors_leave_the_candidate(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect("admin", **JUNOS) as m:
        for config, fmt, action, tag in [
            ("system { hostname x; }", "text", "merge", "operation-failed"),
            ("system { host-name x; ", "text", "merge", "operation-failed"),
            ("set system nonsense 1", "text", "set", "operation-failed"),
            ('{"system": {}}', "json", "merge", "operation-not-supported"),
            ("system { host-name x; }", "text", "update", "operation-not-supported"),
            ("system { services { netconf { ssh { port 99999; } } } }", "text", "merge",
             "invalid-value"),
        ]:
            with pytest.raises(RPCError) as exc:
                m.load_configuration(config=config, format=fmt, action=action)
            assert exc.value.tag == tag, config
        assert output(m.compare_configuration(rollback=0)) == "\n"
        with pytest.raises(RPCError) as exc:
            m.rpc(etree.fromstring('<get-configuration format="text" bogus="1"/>'))
        assert exc.value.tag == "bad-attribute"
        with pytest.raises(RPCError) as exc:
            m.command("show version")
        assert exc.value.tag == "operation-not-supported"


def test_software_information(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect("viewer", **JUNOS) as m:
        assert "http://xml.juniper.net/netconf/junos/1.0" in m.server_capabilities
        info = m.rpc(etree.fromstring("<get-software-information/>"))
        assert info.findtext(".//software-information/host-name") == "test"
        assert info.findtext(".//software-information/junos-version") == "0.1R1"
        assert info.findtext(".//software-information/product-model") == "flowtap"


# -- lawful-intercept confidentiality --------------------------------------------------------------

PLAIN = TestUser("plain", "plain-pw-1", "super-user")  # every bit but the LI ones


@pytest.fixture
def li_flowtapd(tmp_path: Path) -> Iterator[Flowtapd]:
    server = Flowtapd(tmp_path / "state", free_port(), {**USERS, "plain": PLAIN})
    server.start()
    with server.connect("admin") as m:
        m.edit_config(target="candidate", config=LI_CONFIG)
        m.commit()
    yield server
    server.stop()


# the LI subtrees (services flow-tap, system services flow-tap-dtcp) in every notation; login
# classes holding LI bits are ordinary login configuration, shown to admins as by get-config
LI_WORDS = ("sp-0/0/0.0", "connection-limit", "flow-tap-dtcp", "flow-tap {", "<flow-tap>",
            "<flow-tap/>", "services flow-tap")


def test_plain_admin_sees_no_li_configuration(li_flowtapd: Flowtapd) -> None:
    with li_flowtapd.connect("admin", **JUNOS) as li:
        assert "flow-tap {\n        interface sp-0/0/0.0;" in li.get_configuration(
            format="text").findtext(".//configuration-text")
        assert "+   services {\n+       flow-tap {" in output(li.compare_configuration(rollback=1))
    with li_flowtapd.connect("plain", **JUNOS) as m:
        seen = [
            m.get_configuration(format="text").findtext(".//configuration-text"),
            m.get_configuration(format="xml").tostring.decode(),
            m.rpc(etree.fromstring('<get-configuration format="set"/>')).tostring.decode(),
            m.rpc(etree.fromstring('<get-configuration database="committed"/>')
                  ).tostring.decode(),
            output(m.compare_configuration(rollback=1)),  # the commit that added flow-tap
            m.get_configuration(format="xml", filter=etree.fromstring(
                "<configuration><services><flow-tap/></services></configuration>")
            ).tostring.decode(),
        ]
        for text in seen:
            for word in LI_WORDS:
                assert word not in text
        assert "sp-0/0/0" in seen[0]  # the interface itself is ordinary configuration
        assert seen[4].startswith("[edit]\n+   interfaces {\n+       sp-0/0/0 {")
        assert "[edit system services]" not in seen[4] and "services {" not in seen[4]
        for config, action in [
            ("services { flow-tap { interface sp-0/0/0.0; } }", "merge"),
            ("system { host-name x; }", "override"),  # replaces what the user cannot see
        ]:
            with pytest.raises(RPCError) as exc:
                m.load_configuration(config=config, format="text", action=action)
            assert exc.value.tag == "access-denied"
        for line in ("delete services flow-tap", "set system services flow-tap-dtcp ssh port 1"):
            with pytest.raises(RPCError) as exc:
                m.load_configuration(action="set", config=[line])
            assert exc.value.tag == "access-denied"
        with pytest.raises(RPCError) as exc:
            m.rollback(1)
        assert exc.value.tag == "access-denied"
        # what the user may change still commits, and flow-tap stays as it was
        m.load_configuration(action="set", config=["set system host-name plain-was-here"])
        m.commit(comment="plain")
    with li_flowtapd.connect("admin") as li:
        running = li.get_config("running").data
        assert running.findtext(f".//{{{SVC}}}flow-tap/{{{SVC}}}interface") == "sp-0/0/0.0"
        assert running.findtext(f".//{{{SYS}}}host-name") == "plain-was-here"
