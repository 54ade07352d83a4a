"""Differences between two datastore trees (config/diff.py), against the real schema."""

from __future__ import annotations

import pytest
from lxml import etree

from flowtap.config.diff import Change, changes
from flowtap.config.schema import Schema

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"
IFS = "urn:flowtap:yang:interfaces"
SVC = "urn:flowtap:yang:services"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def tree(inner: str) -> etree._Element:
    return etree.fromstring(f'<data xmlns="{NC}">{inner}</data>')


def system(inner: str) -> str:
    return f'<system xmlns="{SYS}">{inner}</system>'


def summary(found: list[Change]) -> list[tuple[str, str]]:
    return [(c.kind, c.path) for c in found]


LOGIN = (
    "<login><class><name>ops</name><permissions>view</permissions>"
    "<idle-timeout>10</idle-timeout></class>"
    "<user><name>bob</name><class>ops</class></user></login>"
)
BASE = system("<host-name>r1</host-name>" + LOGIN)


def test_identical_trees_have_no_changes(schema: Schema) -> None:
    assert changes(schema, tree(BASE), tree(BASE)) == []
    assert changes(schema, tree(""), tree("")) == []
    assert changes(schema, None, None) == []


def test_blanks_around_a_leaf_value_are_no_change(schema: Schema) -> None:
    assert changes(schema, tree(BASE), tree(BASE.replace(">r1<", ">  r1 <"))) == []


def test_added_leaf(schema: Schema) -> None:
    found = changes(schema, tree(system(LOGIN)), tree(BASE))
    assert summary(found) == [("create", "/fts:system/fts:host-name")]
    assert found[0].old is None and found[0].new is not None and found[0].new.text == "r1"
    assert found[0].node.kind == "leaf" and found[0].node.name == "host-name"


def test_removed_leaf(schema: Schema) -> None:
    found = changes(schema, tree(BASE), tree(system(LOGIN)))
    assert summary(found) == [("delete", "/fts:system/fts:host-name")]
    assert found[0].new is None and found[0].old is not None and found[0].old.text == "r1"


def test_changed_leaf(schema: Schema) -> None:
    found = changes(schema, tree(BASE), tree(BASE.replace(">r1<", ">r2<")))
    assert summary(found) == [("replace", "/fts:system/fts:host-name")]
    assert found[0].old is not None and found[0].old.text == "r1"
    assert found[0].new is not None and found[0].new.text == "r2"


def test_a_created_or_deleted_subtree_is_one_change(schema: Schema) -> None:
    assert summary(changes(schema, tree(""), tree(BASE))) == [("create", "/fts:system")]
    assert summary(changes(schema, tree(BASE), tree(""))) == [("delete", "/fts:system")]
    found = changes(schema, tree(system("<host-name>r1</host-name>")), tree(BASE))
    assert summary(found) == [("create", "/fts:system/fts:login")]


def test_list_entries_added_removed_and_changed(schema: Schema) -> None:
    new = BASE.replace("<user><name>bob</name><class>ops</class></user>",
                       "<user><name>bob</name><class>super-user</class></user>"
                       "<user><name>eve</name><class>ops</class></user>")  # fmt: skip
    found = changes(schema, tree(BASE), tree(new))
    assert summary(found) == [
        ("replace", "/fts:system/fts:login/fts:user[fts:name='bob']/fts:class"),
        ("create", "/fts:system/fts:login/fts:user[fts:name='eve']"),
    ]
    assert found[1].node.kind == "list" and found[1].node.keys == ("name",)
    assert summary(changes(schema, tree(new), tree(BASE))) == [
        ("replace", "/fts:system/fts:login/fts:user[fts:name='bob']/fts:class"),
        ("delete", "/fts:system/fts:login/fts:user[fts:name='eve']"),
    ]


def test_leaf_list_values(schema: Schema) -> None:
    new = BASE.replace("<permissions>view</permissions>",
                       "<permissions>view</permissions><permissions>configure</permissions>")
    found = changes(schema, tree(BASE), tree(new))
    assert summary(found) == [
        ("create", "/fts:system/fts:login/fts:class[fts:name='ops']/fts:permissions[.='configure']")
    ]
    assert found[0].node.kind == "leaf-list"


def test_nested_containers_and_several_modules(schema: Schema) -> None:
    old = tree(system("<services><netconf><ssh><port>830</port></ssh></netconf></services>")
               + f'<interfaces xmlns="{IFS}"><interface><name>ge-0/0/0</name>'
               "<unit><name>0</name><family><inet/></family></unit></interface></interfaces>")
    new = tree(system("<services><netconf><ssh><port>8300</port></ssh></netconf></services>")
               + f'<interfaces xmlns="{IFS}"><interface><name>ge-0/0/0</name>'
               "<unit><name>0</name><family><inet6/></family></unit></interface></interfaces>"
               + f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>')  # fmt: skip
    assert summary(changes(schema, old, new)) == [
        ("replace", "/fts:system/fts:services/fts:netconf/fts:ssh/fts:port"),
        ("delete", "/fti:interfaces/fti:interface[fti:name='ge-0/0/0']/fti:unit[fti:name='0']"
                   "/fti:family/fti:inet"),
        ("create", "/fti:interfaces/fti:interface[fti:name='ge-0/0/0']/fti:unit[fti:name='0']"
                   "/fti:family/fti:inet6"),
        ("create", "/ftsvc:services"),
    ]  # fmt: skip


def radius(*names: str) -> str:
    return system("".join(f"<radius-server><name>{n}</name><secret>s</secret></radius-server>"
                          for n in names))  # fmt: skip


def test_reordering_an_ordered_by_user_list_is_a_change_of_the_list(schema: Schema) -> None:
    found = changes(schema, tree(radius("192.0.2.1", "192.0.2.2")),
                    tree(radius("192.0.2.2", "192.0.2.1")))  # fmt: skip
    assert summary(found) == [("replace", "/fts:system/fts:radius-server")]
    assert found[0].old is None and found[0].new is None
    assert changes(schema, tree(radius("192.0.2.1", "192.0.2.2")),
                   tree(radius("192.0.2.1", "192.0.2.2"))) == []  # fmt: skip
    # an entry added at the end keeps the others' order: only the addition
    assert summary(changes(schema, tree(radius("192.0.2.1")),
                           tree(radius("192.0.2.1", "192.0.2.2")))) == [
        ("create", "/fts:system/fts:radius-server[fts:name='192.0.2.2']")]  # fmt: skip


def test_reordering_an_ordered_by_user_leaf_list(schema: Schema) -> None:
    order = "<authentication-order>{}</authentication-order><authentication-order>{}" \
            "</authentication-order>"  # fmt: skip
    found = changes(schema, tree(system(order.format("radius", "password"))),
                    tree(system(order.format("password", "radius"))))  # fmt: skip
    assert summary(found) == [("replace", "/fts:system/fts:authentication-order")]


def test_reordering_a_system_ordered_list_is_no_change(schema: Schema) -> None:
    two = "<login><user><name>a</name><class>ops</class></user>" \
          "<user><name>b</name><class>ops</class></user></login>"  # fmt: skip
    swapped = "<login><user><name>b</name><class>ops</class></user>" \
              "<user><name>a</name><class>ops</class></user></login>"  # fmt: skip
    assert changes(schema, tree(system(two)), tree(system(swapped))) == []
