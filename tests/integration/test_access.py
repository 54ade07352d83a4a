"""Issue 3 acceptance 3: Junos login-class permissions over NETCONF."""

from __future__ import annotations

import pytest
from ncclient.operations import RPCError

from tests.flowtapd import NC, SVC, SYS, Flowtapd

LI_CONFIG = (
    f'<config xmlns="{NC}">'
    '<interfaces xmlns="urn:flowtap:yang:interfaces"><interface><name>sp-0/0/0</name>'
    "<host-device>lo</host-device><unit><name>0</name><family><inet/></family></unit>"
    "</interface></interfaces>"
    f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap></services>'
    f'<system xmlns="{SYS}"><services><flow-tap-dtcp><ssh><connection-limit>7</connection-limit>'
    "</ssh></flow-tap-dtcp></services></system></config>"
)


def _commit_li(flowtapd: Flowtapd) -> None:
    with flowtapd.connect("admin") as m:
        m.edit_config(target="candidate", config=LI_CONFIG)
        m.commit()


def test_view_configure_user_sees_no_flow_tap(flowtapd: Flowtapd) -> None:
    _commit_li(flowtapd)
    with flowtapd.connect("ops") as m:
        for reply in (m.get_config("running").data_xml, m.get().data_xml,
                      m.get_config("candidate").data_xml):
            assert "flow-tap" not in reply
            assert "sp-0/0/0.0" not in reply
            assert "connection-limit" not in reply
            assert "<interfaces" in reply or "interface" not in reply
        # a filter aimed straight at the hidden subtree returns nothing, not an error
        flt = f'<services xmlns="{SVC}"><flow-tap/></services>'
        assert "flow-tap" not in m.get_config("running", filter=("subtree", flt)).data_xml
        xp = m.get_config("running", filter=("xpath", (
            {"s": SVC}, "/s:services/s:flow-tap"))).data_xml
        assert "flow-tap" not in xp
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate", config=(
                f'<config xmlns="{NC}"><system xmlns="{SYS}"><services><flow-tap-dtcp><ssh>'
                "<rate-limit>9</rate-limit></ssh></flow-tap-dtcp></services></system></config>"))
        assert exc.value.tag == "access-denied"
        assert "9" not in exc.value.message and not exc.value.path
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate", config=(
                f'<config xmlns="{NC}" xmlns:nc="{NC}"><services xmlns="{SVC}">'
                '<flow-tap nc:operation="delete"/></services></config>'))
        assert exc.value.tag == "access-denied"


def test_flow_tap_control_user_can(flowtapd: Flowtapd) -> None:
    _commit_li(flowtapd)
    with flowtapd.connect("ftctl") as m:
        assert "sp-0/0/0.0" in m.get_config("running").data_xml
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><system xmlns="{SYS}"><services><flow-tap-dtcp><ssh>'
            "<rate-limit>9</rate-limit></ssh></flow-tap-dtcp></services></system></config>"))
        m.commit()
        assert "<rate-limit>9</rate-limit>" in m.get_config("running").data_xml
        # but not the login configuration: it needs admin
        assert "<login>" not in m.get_config("running").data_xml


def test_read_only_user_edits_nothing(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect("viewer") as m:
        data = m.get_config("running").data_xml
        assert "host-name" in data and "encrypted-password" not in data and "flow-tap" not in data
        for change in (
            f'<config xmlns="{NC}"><system xmlns="{SYS}"><host-name>x</host-name></system></config>',
            f'<config xmlns="{NC}"><interfaces xmlns="urn:flowtap:yang:interfaces"><interface>'
            "<name>ge-0/0/0</name></interface></interfaces></config>",
        ):
            with pytest.raises(RPCError) as exc:
                m.edit_config(target="candidate", config=change)
            assert exc.value.tag == "access-denied"
        for call in (lambda: m.lock("candidate"), m.commit, m.discard_changes):
            with pytest.raises(RPCError) as exc:
                call()
            assert exc.value.tag == "access-denied"


def test_secrets_need_the_secret_bit(flowtapd: Flowtapd) -> None:
    with flowtapd.connect("admin") as m:
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><system xmlns="{SYS}"><radius-server><name>127.0.0.1</name>'
            "<secret>s3cr3t-value</secret></radius-server></system></config>"))
        m.commit()
        assert "s3cr3t-value" in m.get_config("running").data_xml  # all includes secret
    with flowtapd.connect("ops") as m:
        data = m.get_config("running").data_xml
        assert "radius-server" in data and "s3cr3t-value" not in data


def test_granting_li_bits_needs_flow_tap_control(flowtapd: Flowtapd) -> None:
    """An admin without LI bits cannot make itself an LI user by editing a class."""
    with flowtapd.connect("admin") as m:
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><system xmlns="{SYS}"><login><class><name>plain-admin</name>'
            "<permissions>all</permissions></class><user><name>ops</name><class>plain-admin</class>"
            "</user></login></system></config>"))
        m.commit()
    with flowtapd.connect("ops") as m:
        assert "<login>" in m.get_config("running").data_xml  # all grants admin
        with pytest.raises(RPCError) as exc:
            m.edit_config(target="candidate", config=(
                f'<config xmlns="{NC}"><system xmlns="{SYS}"><login><class><name>plain-admin</name>'
                "<permissions>flow-tap-operation</permissions></class></login></system></config>"))
        assert exc.value.tag == "access-denied"


def test_own_authorization_visible(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect("ops") as m:
        data = m.get(filter=("subtree", f'<authorization xmlns="{SYS}"/>')).data_xml
        assert "<user>ops</user>" in data and "<login-class>ops</login-class>" in data
        assert "<permissions>configure</permissions>" in data
