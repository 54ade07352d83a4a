"""Issue 3 acceptance 1: ncclient against a real flowtapd on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lxml import etree
from ncclient.operations import RPCError

from tests.flowtapd import NC, SVC, SYS, Flowtapd

CAPS = [
    "urn:ietf:params:netconf:base:1.0",
    "urn:ietf:params:netconf:base:1.1",
    "urn:ietf:params:netconf:capability:candidate:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.0",
    "urn:ietf:params:netconf:capability:confirmed-commit:1.1",
    "urn:ietf:params:netconf:capability:rollback-on-error:1.0",
    "urn:ietf:params:netconf:capability:validate:1.0",
    "urn:ietf:params:netconf:capability:validate:1.1",
    "urn:ietf:params:netconf:capability:startup:1.0",
    "urn:ietf:params:netconf:capability:xpath:1.0",
    "urn:ietf:params:netconf:capability:notification:1.0",
    "urn:ietf:params:netconf:capability:interleave:1.0",
]


def cfg(inner: str) -> str:
    return f'<config xmlns="{NC}">{inner}</config>'


def dtcp(inner: str, op: str = "") -> str:
    attr = f' xmlns:nc="{NC}" nc:operation="{op}"' if op else ""
    return cfg(
        f'<system xmlns="{SYS}"><services><flow-tap-dtcp><ssh{attr}>{inner}</ssh>'
        "</flow-tap-dtcp></services></system>"
    )


def hostname(name: str) -> str:
    return cfg(f'<system xmlns="{SYS}"><host-name>{name}</host-name></system>')


def running_hostname(m) -> str:  # type: ignore[no-untyped-def]
    reply = m.get_config("running", filter=("subtree", f'<system xmlns="{SYS}"><host-name/></system>'))
    return reply.data.findtext(f".//{{{SYS}}}host-name")


def test_capabilities(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect() as m:
        caps = list(m.server_capabilities)
        for cap in CAPS:
            assert cap in caps
        assert any(c.startswith("urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit")
                   and "report-all-tagged" in c and "trim" in c for c in caps)
        assert any("module=ietf-netconf&" in c and "features=" in c and "confirmed-commit" in c
                   for c in caps)
        for module in ("flowtap-system", "flowtap-interfaces", "flowtap-services"):
            assert any(f"module={module}&revision=" in c for c in caps)
        assert any(c.startswith("urn:ietf:params:netconf:capability:yang-library:1.1") for c in caps)


def test_edit_commit_get_config(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as m:
        m.edit_config(target="candidate", config=hostname("edge-1"))
        assert running_hostname(m) == "test"
        m.commit()
        assert running_hostname(m) == "edge-1"


def test_create_existing_and_delete_missing(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect() as m:
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate", config=cfg(
                f'<system xmlns="{SYS}" xmlns:nc="{NC}"><host-name nc:operation="create">x</host-name></system>'))
        assert exc.value.tag == "data-exists"
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate", config=dtcp("", op="delete"))
        assert exc.value.tag == "data-missing"
        assert exc.value.path and "flow-tap-dtcp" in exc.value.path


def test_out_of_range_has_error_path(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect() as m:
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate",
                          config=dtcp("<connection-limit>300</connection-limit>"))
        err = exc.value
        assert err.tag == "invalid-value"
        assert err.severity == "error"
        assert err.path.endswith("fts:connection-limit")
        assert "300" in err.message


def test_rollback_on_error_and_test_only_leave_candidate(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect() as m:
        before = m.get_config("candidate").data_xml
        bad = cfg(
            f'<system xmlns="{SYS}" xmlns:nc="{NC}"><host-name>changed</host-name>'
            f'<radius-server nc:operation="delete"><name>192.0.2.1</name></radius-server></system>'
        )
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate", config=bad, error_option="rollback-on-error")
        assert exc.value.tag == "data-missing"
        assert m.get_config("candidate").data_xml == before
        m.edit_config(target="candidate", config=hostname("only-a-test"), test_option="test-only")
        assert m.get_config("candidate").data_xml == before


def test_lock_denied_names_holder(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as one, flowtapd.connect() as two:
        one.lock("candidate")
        with pytest.raises(RPCError) as exc:
            two.edit_config(target="candidate", config=hostname("intruder"))
        assert exc.value.tag == "lock-denied"
        assert exc.value.info and f"<session-id>{one.session_id}</session-id>" in exc.value.info.replace(
            f' xmlns="{NC}"', "")
        with pytest.raises(RPCError) as exc:
            two.lock("candidate")
        assert exc.value.tag == "lock-denied"
        one.unlock("candidate")
        two.edit_config(target="candidate", config=hostname("now-allowed"))


def test_lock_refused_while_candidate_dirty(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as one, flowtapd.connect() as two:
        one.edit_config(target="candidate", config=hostname("dirty"))
        with pytest.raises(RPCError):
            two.lock("candidate")


def test_lock_dies_with_session(shared_flowtapd: Flowtapd) -> None:
    one = shared_flowtapd.connect()
    one.lock("running")
    one.close_session()
    with shared_flowtapd.connect() as two:
        two.lock("running")


def test_confirmed_commit_reverts_on_timeout(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as m:
        m.edit_config(target="candidate", config=hostname("temporary"))
        m.commit(confirmed=True, timeout="2")
        assert running_hostname(m) == "temporary"
        deadline = time.monotonic() + 10
        while running_hostname(m) != "test" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running_hostname(m) == "test"


def test_confirmed_commit_confirmed_stays(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as m:
        m.edit_config(target="candidate", config=hostname("kept"))
        m.commit(confirmed=True, timeout="2")
        m.commit()
        time.sleep(2.5)
        assert running_hostname(m) == "kept"


def test_confirmed_commit_reverts_when_session_closes(flowtapd: Flowtapd) -> None:
    one = flowtapd.connect()
    one.edit_config(target="candidate", config=hostname("until-close"))
    one.commit(confirmed=True, timeout="120")
    with flowtapd.connect() as two:
        assert running_hostname(two) == "until-close"
        one.close_session()
        deadline = time.monotonic() + 10
        while running_hostname(two) != "test" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert running_hostname(two) == "test"


def test_persist_and_cancel_commit_from_another_session(flowtapd: Flowtapd) -> None:
    one = flowtapd.connect()
    one.edit_config(target="candidate", config=hostname("persisted"))
    one.commit(confirmed=True, timeout="120", persist="token-1")
    one.close_session()
    with flowtapd.connect() as two:
        assert running_hostname(two) == "persisted"  # persist: survives the session
        with pytest.raises(RPCError) as exc:
            two.cancel_commit(persist_id="wrong")
        assert exc.value.tag == "invalid-value"
        assert running_hostname(two) == "persisted"
        two.cancel_commit(persist_id="token-1")
        assert running_hostname(two) == "test"


def test_kill_session(shared_flowtapd: Flowtapd) -> None:
    one = shared_flowtapd.connect()
    one.lock("candidate")
    with shared_flowtapd.connect() as two:
        with pytest.raises(RPCError) as exc:
            two.kill_session(two.session_id)
        assert exc.value.tag == "invalid-value"
        two.kill_session(one.session_id)
        two.lock("candidate")  # the victim's lock died with it


def test_get_schema_every_module(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect() as m:
        reply = m.get(filter=("subtree",
            '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><schemas/></netconf-state>'))
        ids = [e.text for e in reply.data.iter("{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}identifier")]
        assert {"flowtap-system", "flowtap-interfaces", "flowtap-services", "ietf-inet-types"} <= set(ids)
        for identifier in ids:
            text = m.get_schema(identifier).data
            assert f"module {identifier}" in text


def test_a_client_builds_its_context_from_what_the_server_serves(
    shared_flowtapd: Flowtapd, tmp_path: Path
) -> None:
    """Issue 17 item 2: what a libnetconf2 client (netopeer2-cli) does on connect, with libyang:
    fetch every module the server lists, plus the RFC 5277 notification modules and what a
    yang-library 1.1 client asks for (ietf-netconf-nmda and its imports), and load them all."""
    import libyang

    wanted = {"notifications", "nc-notifications", "ietf-netconf-nmda", "ietf-yang-metadata",
              "ietf-origin"}  # fmt: skip
    with shared_flowtapd.connect() as m:
        reply = m.get(filter=("subtree",
            '<netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><schemas/>'
            '</netconf-state>'))  # fmt: skip
        listed = {e.text for e in reply.data.iter(
            "{urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring}identifier")}
        assert {"notifications", "nc-notifications"} <= listed
        for identifier in listed | wanted:
            (tmp_path / f"{identifier}.yang").write_text(m.get_schema(identifier).data)
        streams = m.get(filter=("subtree",
            '<netconf xmlns="urn:ietf:params:xml:ns:netmod:notification"/>')).data_xml
        assert "<name>NETCONF</name>" in streams and "<replaySupport>false" in streams
    ctx = libyang.Context(str(tmp_path))
    for identifier in sorted(listed | wanted):
        assert ctx.load_module(identifier).name() == identifier
    rpcs = [n.name() for n in ctx.get_module("notifications").children(types=(libyang.SNode.RPC,))]
    assert rpcs == ["create-subscription"]
    ctx.destroy()


def test_with_defaults_report_all(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as m:
        m.edit_config(target="candidate", config=dtcp("<rate-limit>10</rate-limit>"))
        m.commit()
        flt = ("subtree", f'<system xmlns="{SYS}"><services><flow-tap-dtcp/></services></system>')
        explicit = m.get_config("running", filter=flt).data
        assert explicit.find(f".//{{{SYS}}}connection-limit") is None
        rpc = etree.fromstring(
            f'<get-config xmlns="{NC}"><source><running/></source>'
            f'<filter type="subtree"><system xmlns="{SYS}"><services><flow-tap-dtcp/></services></system></filter>'
            '<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">report-all</with-defaults>'
            "</get-config>")
        reply = m.dispatch(rpc)
        data = etree.fromstring(reply.xml.encode())
        assert data.findtext(f".//{{{SYS}}}connection-limit") == "75"
        assert data.findtext(f".//{{{SYS}}}rate-limit") == "10"


def test_services_validation_refused_at_commit(flowtapd: Flowtapd) -> None:
    """Issue 3 acceptance 2."""
    with flowtapd.connect() as m:
        running = m.get_config("running").data_xml
        cases = [
            f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap>'
            "<dynamic-flow-capture/></services>",
            f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap></services>',
            '<interfaces xmlns="urn:flowtap:yang:interfaces"><interface><name>ge-0/0/0</name><unit><name>0</name>'
            f'<family><inet/></family></unit></interface></interfaces><services xmlns="{SVC}"><flow-tap>'
            "<interface>ge-0/0/0.0</interface></flow-tap></services>",
            '<interfaces xmlns="urn:flowtap:yang:interfaces"><interface><name>sp-0/0/0</name><unit><name>0</name>'
            f'<family><inet6/></family></unit></interface></interfaces><services xmlns="{SVC}"><flow-tap>'
            "<interface>sp-0/0/0.0</interface></flow-tap></services>",
        ]
        messages = []
        for inner in cases:
            m.discard_changes()
            m.edit_config(target="candidate", config=cfg(inner))
            with pytest.raises(RPCError) as exc:
                m.commit()
            assert exc.value.path and "flow-tap" in exc.value.path
            messages.append(exc.value.message)
            assert m.get_config("running").data_xml == running
        assert "dynamic-flow-capture" in messages[0]
        assert "not configured" in messages[1]
        assert "services PIC" in messages[2]
        assert "family inet" in messages[3]


def test_rollback_history_compare_and_return(flowtapd: Flowtapd) -> None:
    ns = "urn:flowtap:yang:system"
    with flowtapd.connect() as m:
        for name in ("first", "second"):
            m.edit_config(target="candidate", config=hostname(name))
            m.commit()
        reply = m.dispatch(etree.fromstring(f'<get-rollback-information xmlns="{ns}"/>'))
        history = etree.fromstring(reply.xml.encode())
        assert "ns0:" not in reply.xml and "<fts:commit" in reply.xml  # the module's prefix
        assert [e.text for e in history.iter(f"{{{ns}}}rollback")] == ["0", "1", "2"]
        assert [e.text for e in history.iter(f"{{{ns}}}user")] == ["admin", "admin", "system"]
        reply = m.dispatch(etree.fromstring(
            f'<get-rollback-information xmlns="{ns}"><rollback>0</rollback>'
            "<compare>2</compare></get-rollback-information>"))
        diff = etree.fromstring(reply.xml.encode()).findtext(f".//{{{ns}}}configuration-output")
        assert "-  <host-name>test</host-name>" in diff and "+  <host-name>second</host-name>" in diff
        m.dispatch(etree.fromstring(f'<rollback xmlns="{ns}"><rollback>2</rollback></rollback>'))
        assert running_hostname(m) == "second"  # loaded into the candidate only
        m.commit()
        assert running_hostname(m) == "test"


@pytest.mark.parametrize("example", sorted(
    (Path(__file__).resolve().parents[2] / "netconf" / "examples").glob("edit-config-*.xml")),
    ids=lambda p: p.name)
def test_examples_commit(flowtapd: Flowtapd, example: Path) -> None:
    """The README's example payloads are valid and commit as documented."""
    with flowtapd.connect() as m:
        m.edit_config(target="candidate", config=example.read_text())
        m.commit()


def test_startup_copy_and_delete(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as m:
        m.edit_config(target="candidate", config=hostname("saved"))
        m.commit()
        assert "<host-name>test</host-name>" in m.get_config("startup").data_xml
        m.copy_config(source="running", target="startup")
        assert "<host-name>saved</host-name>" in m.get_config("startup").data_xml
        m.delete_config(target="startup")
        with pytest.raises(RPCError):
            m.get_config("startup")
        with pytest.raises(RPCError) as exc:
            m.delete_config(target="running")
        assert exc.value.tag == "operation-failed"


def test_config_change_notification(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as listener, flowtapd.connect() as editor:
        listener.create_subscription()
        editor.edit_config(target="candidate", config=hostname("notified"))
        editor.commit()
        notification = listener.take_notification(timeout=10)
        assert notification is not None
        xml = notification.notification_xml
        assert "netconf-config-change" in xml and "<username>admin</username>" in xml
        assert "fts:host-name" in xml and "<operation>replace</operation>" in xml


def test_li_changes_not_announced_to_others(flowtapd: Flowtapd) -> None:
    with flowtapd.connect("ops") as listener, flowtapd.connect() as editor:
        listener.create_subscription()
        editor.edit_config(target="candidate", config=dtcp("<rate-limit>12</rate-limit>"))
        editor.commit()
        editor.edit_config(target="candidate", config=hostname("after-li"))
        editor.commit()
        notification = listener.take_notification(timeout=10)
        assert notification is not None
        xml = notification.notification_xml
        assert "host-name" in xml and "flow-tap" not in xml  # the LI-only commit was not announced
