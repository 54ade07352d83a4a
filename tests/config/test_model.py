"""model.from_tree: every section of the configuration snapshot, built from a datastore tree.

The trees are what a commit hands to from_tree: the payload validated and printed back by the
real schema (libyang), under a ``<data>`` root.
"""

from __future__ import annotations

import pytest
from lxml import etree

from flowtap.config import model
from flowtap.config.permissions import PREDEFINED_CLASSES, expand
from flowtap.config.schema import Schema

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = model.NS_SYSTEM
IFS = model.NS_INTERFACES
SVC = model.NS_SERVICES
HASH = "$6$rounds=1000$saltsalt$" + "a" * 86
ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x@y"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 x@y"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def build(schema: Schema, payload: str) -> model.Config:
    """The snapshot of ``payload`` (top-level elements), validated as a commit validates it."""
    canonical = schema.canonical(payload.encode(), validate=True)
    return model.from_tree(etree.fromstring(f'<data xmlns="{NC}">'.encode() + canonical
                                            + b"</data>"))  # fmt: skip


def system(inner: str) -> str:
    return f'<system xmlns="{SYS}">{inner}</system>'


LOGIN = system(
    "<login>"
    "<class><name>ops</name><permissions>view</permissions><permissions>configure</permissions>"
    "<idle-timeout>15</idle-timeout></class>"
    "<class><name>ft-ctl</name><permissions>flow-tap-control</permissions></class>"
    "<user><name>alice</name><class>ops</class><authentication>"
    f"<encrypted-password>{HASH}</encrypted-password>"
    f"<ssh-rsa><name>{RSA}</name></ssh-rsa><ssh-ed25519><name>{ED25519}</name></ssh-ed25519>"
    "</authentication></user>"
    "<user><name>bob</name><class>super-user</class></user>"
    "</login>"
)


def test_empty_tree_gives_the_defaults(schema: Schema) -> None:
    config = build(schema, "")
    assert config == model.Config()
    assert dict(config.classes) == {} and dict(config.users) == {}
    assert dict(config.idle_timeouts) == {}
    assert config.authentication_order == () and config.radius_servers == ()
    assert config.netconf is None and config.dtcp is None and config.flow_tap is None
    assert config.interfaces == {} and config.dynamic_flow_capture is False
    assert config.flow_tap_unit() is None


def test_login_classes_idle_timeouts_and_users(schema: Schema) -> None:
    config = build(schema, LOGIN)
    assert dict(config.classes) == {
        "ops": frozenset({"view", "configure"}),
        "ft-ctl": frozenset({"flow-tap-control"}),
    }
    assert dict(config.idle_timeouts) == {"ops": 15}  # ft-ctl has none
    assert dict(config.users) == {
        "alice": model.User("alice", "ops", HASH, (RSA, ED25519)),
        "bob": model.User("bob", "super-user", None, ()),
    }
    assert len(config.users) == 2 and list(config.users) == ["alice", "bob"]


def test_class_permissions_expand_configured_and_predefined_classes(schema: Schema) -> None:
    config = build(schema, LOGIN)
    assert config.class_permissions("ops") == frozenset({"view", "configure"})
    assert config.class_permissions("ft-ctl") == frozenset({"flow-tap-control", "flow-tap"})
    assert config.class_permissions("super-user") == expand(PREDEFINED_CLASSES["super-user"])
    assert "flow-tap" not in config.class_permissions("super-user")
    assert config.class_permissions("no-such-class") == frozenset()


def test_user_without_class_element_is_unauthorized() -> None:
    """The YANG makes class mandatory; a tree without it (never committed) still builds."""
    tree = etree.fromstring(f'<data xmlns="{NC}"><system xmlns="{SYS}"><login><user>'
                            "<name>carol</name></user></login></system></data>")  # fmt: skip
    assert model.from_tree(tree).users["carol"] == model.User("carol", "unauthorized")


def test_authentication_order_and_radius_servers_in_order(schema: Schema) -> None:
    config = build(schema, system(
        "<authentication-order>radius</authentication-order>"
        "<authentication-order>password</authentication-order>"
        "<radius-server><name>192.0.2.10</name><secret>s1</secret></radius-server>"
        "<radius-server><name>2001:db8::10</name><port>1645</port><secret>s2</secret>"
        "<timeout>9</timeout><retry>5</retry><source-address>192.0.2.1</source-address>"
        "</radius-server>"
    ))  # fmt: skip
    assert config.authentication_order == ("radius", "password")
    assert config.radius_servers == (
        model.RadiusServer("192.0.2.10", "s1", 1812, 3, 3, None),
        model.RadiusServer("2001:db8::10", "s2", 1645, 9, 5, "192.0.2.1"),
    )


def test_netconf_ssh_defaults(schema: Schema) -> None:
    config = build(schema, system("<services><netconf><ssh/></netconf></services>"))
    assert config.netconf == model.NetconfService(
        port=830, listen_addresses=("127.0.0.1", "::1"), connection_limit=75, rate_limit=150,
        max_pre_auth=32, max_pre_auth_per_source=10,
    )  # fmt: skip
    assert config.dtcp is None


def test_netconf_ssh_configured(schema: Schema) -> None:
    config = build(schema, system(
        "<services><netconf><ssh><connection-limit>5</connection-limit><rate-limit>6</rate-limit>"
        "<max-pre-auth>7</max-pre-auth><max-pre-auth-per-source>2</max-pre-auth-per-source>"
        "<port>8300</port><listen-address>192.0.2.5</listen-address>"
        "<listen-address>2001:db8::5</listen-address></ssh></netconf></services>"
    ))  # fmt: skip
    assert config.netconf == model.NetconfService(8300, ("192.0.2.5", "2001:db8::5"), 5, 6, 7, 2)


def test_netconf_container_without_ssh_is_not_enabled(schema: Schema) -> None:
    assert build(schema, system("<services><netconf/></services>")).netconf is None


def test_flow_tap_dtcp_ssh_defaults(schema: Schema) -> None:
    config = build(schema, system("<services><flow-tap-dtcp><ssh/></flow-tap-dtcp></services>"))
    assert config.dtcp == model.DtcpService(
        port=32001, connection_limit=75, rate_limit=150, max_pre_auth=32,
        max_pre_auth_per_source=10, listen_addresses=(), hmac_policy="lenient",
    )  # fmt: skip
    assert config.netconf is None


def test_flow_tap_dtcp_ssh_configured(schema: Schema) -> None:
    config = build(schema, system(
        "<services><flow-tap-dtcp><ssh><connection-limit>4</connection-limit>"
        "<rate-limit>8</rate-limit><max-pre-auth>9</max-pre-auth>"
        "<max-pre-auth-per-source>3</max-pre-auth-per-source><port>32002</port>"
        "<listen-address>198.51.100.7</listen-address><hmac-policy>strict</hmac-policy>"
        "</ssh></flow-tap-dtcp></services>"
    ))  # fmt: skip
    assert config.dtcp == model.DtcpService(32002, 4, 8, 9, 3, ("198.51.100.7",), "strict")


INTERFACES = (
    f'<interfaces xmlns="{IFS}">'
    "<interface><name>sp-0/0/0</name><host-device>lo</host-device>"
    "<unit><name>0</name><family><inet/><inet6/></family></unit></interface>"
    "<interface><name>ge-0/0/1</name><host-device>eth1</host-device><disable/>"
    "<unit><name>3</name><family><inet><address><name>192.0.2.0/24</name></address>"
    "<address><name>198.51.100.0/24</name></address></inet>"
    "<inet6><address><name>2001:db8:1::/64</name></address></inet6></family></unit>"
    "<unit><name>7</name></unit></interface>"
    "<interface><name>eth0</name></interface>"
    "</interfaces>"
)


def test_interfaces_units_and_families(schema: Schema) -> None:
    config = build(schema, INTERFACES)
    assert config.interfaces == {
        "sp-0/0/0": model.Interface("sp-0/0/0", "lo", False,
                                    {0: model.Unit(0, inet=True, inet6=True)}),
        "ge-0/0/1": model.Interface("ge-0/0/1", "eth1", True, {
            3: model.Unit(3, True, True, ("192.0.2.0/24", "198.51.100.0/24"),
                          ("2001:db8:1::/64",)),
            7: model.Unit(7),
        }),
        # an interface named like its Linux device needs no host-device
        "eth0": model.Interface("eth0", "eth0", False, {}),
    }  # fmt: skip


def test_flow_tap_interface_and_its_unit(schema: Schema) -> None:
    config = build(schema, INTERFACES + f'<services xmlns="{SVC}"><flow-tap>'
                   "<interface>sp-0/0/0.0</interface></flow-tap></services>")  # fmt: skip
    assert config.flow_tap == model.FlowTapService(interface="sp-0/0/0.0", tunnel_interface=None)
    assert config.dynamic_flow_capture is False
    assert config.flow_tap_unit() == (config.interfaces["sp-0/0/0"],
                                      config.interfaces["sp-0/0/0"].units[0])  # fmt: skip


def test_flow_tap_tunnel_interface(schema: Schema) -> None:
    config = build(schema, f'<services xmlns="{SVC}"><flow-tap>'
                   "<tunnel-interface>vt-0/0/0.5</tunnel-interface></flow-tap></services>")
    assert config.flow_tap == model.FlowTapService(interface=None, tunnel_interface="vt-0/0/0.5")
    assert config.flow_tap_unit() is None


def test_flow_tap_without_processing_choice() -> None:
    """The YANG refuses it at commit; the tree (a candidate being validated) still builds."""
    tree = etree.fromstring(f'<data xmlns="{NC}"><services xmlns="{SVC}"><flow-tap/></services>'
                            "</data>")  # fmt: skip
    assert model.from_tree(tree).flow_tap == model.FlowTapService()


def test_dynamic_flow_capture(schema: Schema) -> None:
    config = build(schema, f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>')
    assert config.dynamic_flow_capture is True and config.flow_tap is None


def test_every_section_together(schema: Schema) -> None:
    """Sections do not leak into each other: the whole equals the parts."""
    everything = build(schema, LOGIN.replace("</system>", "")
                       + "<services><netconf><ssh/></netconf><flow-tap-dtcp><ssh/></flow-tap-dtcp>"
                       "</services></system>" + INTERFACES
                       + f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface>'
                       "</flow-tap></services>")  # fmt: skip
    assert dict(everything.users) == dict(build(schema, LOGIN).users)
    assert everything.netconf == model.NetconfService()
    assert everything.dtcp == model.DtcpService()
    assert everything.interfaces == build(schema, INTERFACES).interfaces
    assert everything.flow_tap == model.FlowTapService("sp-0/0/0.0")
    assert everything.radius_servers == () and everything.authentication_order == ()
