"""A write is checked on the part of the diff that could be refused (access.check_write_between):
its refusals must be exactly check_write's on the whole diff, for every class and every pair of
configurations. Random pairs of configurations drawn from one vocabulary that reaches every
access rule, the LI bits of login classes and both ordered-by-user lists are compared on both."""

from __future__ import annotations

import random

import pytest
from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config import access
from flowtap.config.diff import Scope, changes
from flowtap.config.permissions import expand
from flowtap.config.schema import Schema
from flowtap.errors import ConfigError

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"
IFS = "urn:flowtap:yang:interfaces"
SVC = "urn:flowtap:yang:services"

PRINCIPALS = [
    Principal("u", "u", "c", expand(flags), "password")
    for flags in (
        {"all"},  # the super-user: everything but the LI bits
        {"all", "flow-tap-control"},
        {"view"},
        {"view", "configure"},
        {"view", "configure", "flow-tap-control"},
        {"configure", "admin-control"},
        {"configure", "system-control"},
        {"configure", "interface-control", "secret"},
        {"configure", "system-control", "admin-control"},
        {"flow-tap-control"},
    )
]


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def _pick(rng: random.Random, *choices: str) -> str:
    return rng.choice(choices)


def _maybe(rng: random.Random, text: str) -> str:
    return text if rng.random() < 0.6 else ""


def _login(rng: random.Random) -> str:
    classes = ""
    for name in rng.sample(["a", "b", "c"], rng.randint(0, 3)):
        flags = rng.sample(["view", "configure", "admin", "flow-tap", "flow-tap-control",
                            "flow-tap-operation"], rng.randint(0, 3))  # fmt: skip
        classes += (f"<class><name>{name}</name>"
                    + "".join(f"<permissions>{f}</permissions>" for f in flags)
                    + _maybe(rng, f"<idle-timeout>{_pick(rng, '5', '10')}</idle-timeout>")
                    + "</class>")  # fmt: skip
    users = ""
    for name in rng.sample(["bob", "eve"], rng.randint(0, 2)):
        password = _maybe(rng, "<authentication><encrypted-password>"
                          f"{_pick(rng, '$6$x', '$6$y')}</encrypted-password></authentication>")
        users += f"<user><name>{name}</name><class>{_pick(rng, 'a', 'b')}</class>{password}</user>"
    return _maybe(rng, f"<login>{classes}{users}</login>")


def _system(rng: random.Random) -> str:
    order = "".join(f"<authentication-order>{m}</authentication-order>"
                    for m in rng.sample(["password", "radius"], rng.randint(0, 2)))  # fmt: skip
    radius = "".join(f"<radius-server><name>{a}</name><secret>{_pick(rng, 's1', 's2')}</secret>"
                     "</radius-server>"
                     for a in rng.sample(["192.0.2.1", "192.0.2.2"], rng.randint(0, 2)))
    dtcp = _maybe(rng, "<flow-tap-dtcp><ssh>"
                  + _maybe(rng, f"<connection-limit>{_pick(rng, '7', '8')}</connection-limit>")
                  + "</ssh></flow-tap-dtcp>")  # fmt: skip
    services = _maybe(rng, "<services>" + _maybe(rng, "<netconf><ssh/></netconf>") + dtcp
                      + "</services>")  # fmt: skip
    inner = (_maybe(rng, f"<host-name>{_pick(rng, 'r1', 'r2')}</host-name>") + order
             + _login(rng) + radius + services)  # fmt: skip
    return _maybe(rng, f'<system xmlns="{SYS}">{inner}</system>')


def configuration(rng: random.Random) -> etree._Element:
    interfaces = _maybe(rng, f'<interfaces xmlns="{IFS}"><interface><name>sp-0/0/0</name>'
                        + _maybe(rng, f"<host-device>{_pick(rng, 'lo', 'eth0')}</host-device>")
                        + "</interface></interfaces>")  # fmt: skip
    flow_tap = _maybe(rng, "<flow-tap>" + _maybe(rng, "<interface>"
                      f"{_pick(rng, 'sp-0/0/0.0', 'sp-0/0/0.1')}</interface>") + "</flow-tap>")
    services = _maybe(rng, f'<services xmlns="{SVC}">{flow_tap}'
                      + _maybe(rng, "<dynamic-flow-capture/>") + "</services>")  # fmt: skip
    parts = [_system(rng), interfaces, services]
    rng.shuffle(parts)  # a candidate is not always in schema order
    return etree.fromstring(f'<data xmlns="{NC}">{"".join(parts)}</data>')


def refused(check: object) -> bool:
    try:
        check()  # type: ignore[operator]
    except ConfigError as err:
        assert err.tag == "access-denied" and err.path is None and err.info == {}
        return True
    return False


def mutated(rng: random.Random, tree: etree._Element) -> etree._Element:
    """``tree`` with one element removed or one leaf changed: the small edits of daily use."""
    out = etree.fromstring(etree.tostring(tree))
    elements = [el for el in out.iter() if el is not out]
    if not elements:
        return configuration(rng)
    el = rng.choice(elements)
    parent = el.getparent()
    if len(el) == 0 and el.text and rng.random() < 0.5:
        el.text = el.text + "x" if rng.random() < 0.5 else "flow-tap"
    elif parent is not None:
        parent.remove(el)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_the_scoped_check_refuses_exactly_what_the_whole_diff_refuses(
    schema: Schema, seed: int
) -> None:
    rng = random.Random(seed)
    outcomes: set[bool] = set()
    for _ in range(150):
        old = configuration(rng)
        new = mutated(rng, old) if rng.random() < 0.5 else configuration(rng)
        whole = changes(schema, old, new)
        for who in PRINCIPALS:
            expected = refused(lambda: access.check_write(who, whole))  # noqa: B023
            got = refused(lambda: access.check_write_between(who, schema, old, new))  # noqa: B023
            assert got == expected, (who.permissions, etree.tostring(old), etree.tostring(new))
            outcomes.add(expected)
    assert outcomes == {True, False}  # both answers were exercised


def test_a_scoped_diff_finds_what_is_inside_a_created_ancestor(schema: Schema) -> None:
    """Creating <services> with a flow-tap inside is one change in the whole diff; restricted to
    flow-tap it is the creation of flow-tap itself, so the same rule refuses it."""
    old = etree.fromstring(f'<data xmlns="{NC}"/>')
    new = etree.fromstring(f'<data xmlns="{NC}"><services xmlns="{SVC}"><flow-tap>'
                           "<interface>sp-0/0/0.0</interface></flow-tap></services></data>")
    found = changes(schema, old, new, scope=Scope(frozenset({"/ftsvc:services/ftsvc:flow-tap"})))
    assert [(c.kind, c.path) for c in found] == [("create", "/ftsvc:services/ftsvc:flow-tap")]
    assert changes(schema, new, new, scope=Scope(frozenset({"/ftsvc:services"}))) == []


def test_a_scoped_diff_ignores_changes_outside_its_scope(schema: Schema) -> None:
    def tree(host: str, limit: str) -> etree._Element:
        return etree.fromstring(
            f'<data xmlns="{NC}"><system xmlns="{SYS}"><host-name>{host}</host-name><services>'
            f"<flow-tap-dtcp><ssh><connection-limit>{limit}</connection-limit></ssh>"
            "</flow-tap-dtcp></services></system></data>")  # fmt: skip

    scope = Scope(frozenset({"/fts:system/fts:services/fts:flow-tap-dtcp"}))
    assert changes(schema, tree("r1", "7"), tree("r2", "7"), scope=scope) == []
    found = changes(schema, tree("r1", "7"), tree("r2", "8"), scope=scope)
    assert [c.path for c in found] == [
        "/fts:system/fts:services/fts:flow-tap-dtcp/fts:ssh/fts:connection-limit"]
