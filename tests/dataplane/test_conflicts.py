"""The flow-tap rules that involve other hierarchies (dataplane/conflicts.py), without a daemon."""

from __future__ import annotations

from flowtap.config.model import Config, FlowTapService, Interface, Unit
from flowtap.dataplane.conflicts import SERVICE_PATH, configuration

SP = "sp-0/0/0"
LEAF = f"{SERVICE_PATH}/ftsvc:interface"
NO_UNIT = "flow-tap interface names a unit that is not configured under interfaces"
NO_INET = "flow-tap interface unit has no family inet"


def config(interface: str, *units: Unit, dfc: bool = False) -> Config:
    iface = Interface(SP, "eth9", units={u.number: u for u in units})
    return Config(interfaces={SP: iface}, flow_tap=FlowTapService(interface=interface),
                  dynamic_flow_capture=dfc)  # fmt: skip


def reasons(cfg: Config) -> list[tuple[str, str | None]]:
    return [(r.message, r.path) for r in configuration(cfg)]


def test_a_configured_inet_unit_is_fine() -> None:
    assert reasons(config(f"{SP}.0", Unit(0, inet=True))) == []
    assert reasons(config(f"{SP}.16384", Unit(16384, inet=True))) == []


def test_the_unit_is_matched_by_number_as_yang_does() -> None:
    # The unit key is a uint32, so "01" names unit 1: libyang's evaluation of the must statement
    # these rules replaced matched it, and Config.flow_tap_unit() does too.
    assert reasons(config(f"{SP}.01", Unit(1, inet=True))) == []
    assert reasons(config(f"{SP}.00", Unit(0, inet=True))) == []
    assert reasons(config(f"{SP}.01", Unit(10, inet=True))) == [(NO_UNIT, LEAF)]


def test_a_missing_unit_or_interface() -> None:
    assert reasons(config(f"{SP}.1", Unit(2, inet=True))) == [(NO_UNIT, LEAF)]
    assert reasons(config("sp-1/0/0.0", Unit(0, inet=True))) == [(NO_UNIT, LEAF)]


def test_a_unit_without_family_inet() -> None:
    assert reasons(config(f"{SP}.3", Unit(3, inet6=True))) == [(NO_INET, LEAF)]


def test_dynamic_flow_capture_comes_first() -> None:
    assert reasons(config(f"{SP}.1", Unit(2), dfc=True)) == [
        ("flow-tap and dynamic-flow-capture cannot be configured together", SERVICE_PATH),
        (NO_UNIT, LEAF),
    ]


def test_nothing_without_flow_tap_or_with_a_tunnel_interface() -> None:
    assert configuration(Config()) == []
    lite = Config(flow_tap=FlowTapService(tunnel_interface="vt-0/0/0.0"))
    assert configuration(lite) == []
