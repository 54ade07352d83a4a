"""The Junos text codecs (config/junos_text.py, junos_set.py, junos_xml.py) against the real
schema: rendering then parsing gives the same tree, set lines, show | compare, Junos XML."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from flowtap.config import junos_set, junos_text, junos_xml
from flowtap.config.edit import OPERATION, apply_edit
from flowtap.config.junos_text import JunosSyntaxError
from flowtap.config.schema import Schema
from flowtap.config.xmlutil import new_root, parse_top, serialize

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"
IFS = "urn:flowtap:yang:interfaces"
SVC = "urn:flowtap:yang:services"

DATA = (
    f'<system xmlns="{SYS}"><host-name>edge-1</host-name>'
    "<authentication-order>radius</authentication-order>"
    "<authentication-order>password</authentication-order>"
    "<login><class><name>ops</name><permissions>view</permissions>"
    "<permissions>configure</permissions><idle-timeout>10</idle-timeout></class>"
    "<user><name>bob</name><full-name>Bob the \"Builder\"</full-name><class>ops</class>"
    "<authentication><encrypted-password>$6$salt$hash</encrypted-password>"
    "<ssh-ed25519><name>ssh-ed25519 AAAAC3Nz bob@host</name></ssh-ed25519>"
    "</authentication></user></login>"
    "<radius-server><name>192.0.2.1</name><secret>s3cr3t;{}</secret></radius-server>"
    "<services><netconf><ssh><port>830</port><listen-address>127.0.0.1</listen-address>"
    "<listen-address>::1</listen-address></ssh></netconf>"
    "<flow-tap-dtcp><ssh/></flow-tap-dtcp></services></system>"
    f'<interfaces xmlns="{IFS}"><interface><name>ge-0/0/0</name>'
    "<description>uplink # not a comment</description><host-device>eth0</host-device>"
    "<disable/><unit><name>0</name><family><inet><address><name>10.0.0.1/24</name></address>"
    "</inet><inet6/></family></unit></interface>"
    "<interface><name>sp-0/0/0</name><unit><name>0</name></unit></interface></interfaces>"
    f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface>'
    "<limits><criteria>100000</criteria></limits></flow-tap></services>"
)


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def canonical(schema: Schema, tree: etree._Element) -> bytes:
    return schema.canonical(serialize(tree), validate=False)


def test_render_is_junos_text(schema: Schema) -> None:
    text = junos_text.render(parse_top(DATA.encode()), schema)
    assert text.startswith("system {\n    host-name edge-1;\n")
    assert "    authentication-order [ radius password ];\n" in text
    assert '            full-name "Bob the \\"Builder\\"";\n' in text
    assert '                encrypted-password "$6$salt$hash"; ## SECRET-DATA\n' in text
    assert '        secret "s3cr3t;{}"; ## SECRET-DATA\n' in text
    assert "        flow-tap-dtcp {\n            ssh;\n        }\n" in text
    # interfaces interface NAME is written without "interface", as Junos does; deeper lists
    # (family inet address) keep their name
    assert "interfaces {\n    ge-0/0/0 {\n" in text
    assert "                    address 10.0.0.1/24;\n" in text
    assert "                inet6;\n" in text
    assert "    sp-0/0/0 {\n        unit 0;\n    }\n" in text
    assert text.endswith("services {\n    flow-tap {\n        interface sp-0/0/0.0;\n"
                         "        limits {\n            criteria 100000;\n        }\n    }\n}\n")


def test_render_then_parse_gives_the_same_tree(schema: Schema) -> None:
    tree = parse_top(DATA.encode())
    text = junos_text.render(tree, schema)
    assert canonical(schema, junos_text.parse(text, schema)) == canonical(schema, tree)
    # and the same again from the set lines
    edits = junos_set.parse_set(junos_set.render_set(tree, schema), schema)
    assert [op for _, op in edits] == ["merge"]
    assert canonical(schema, edits[0][0]) == canonical(schema, tree)


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30))
def test_any_value_survives_quoting(schema: Schema, value: str) -> None:
    tree = parse_top(
        f'<interfaces xmlns="{IFS}"><interface><name>ge-0/0/1</name><description/>'
        "</interface></interfaces>".encode()
    )
    description = tree.find(f".//{{{IFS}}}description")
    assert description is not None
    description.text = value.strip() or "x"
    text = junos_text.render(tree, schema)
    parsed = junos_text.parse(text, schema)
    assert parsed.findtext(f".//{{{IFS}}}description") == description.text


def test_parse_accepts_junos_extras(schema: Schema) -> None:
    text = """## Last commit: 2026-12-07 10:00:00 UTC by admin
version 0.1R1;
/* a block
   comment */
system {
    host-name "r1"; # trailing comment
    login { user bob { class super-user; } }
}
system { authentication-order [ password ]; }
interfaces { ge-0/0/0 { unit 0 { family { inet { address 192.0.2.1/24; } } } } }
"""
    tree = junos_text.parse(text, schema)
    assert tree.findtext(f"{{{SYS}}}system/{{{SYS}}}host-name") == "r1"
    assert tree.findtext(f"{{{SYS}}}system/{{{SYS}}}authentication-order") == "password"
    assert len(tree.findall(f"{{{SYS}}}system")) == 1  # the second block adds to the first
    assert tree.findtext(f".//{{{IFS}}}address/{{{IFS}}}name") == "192.0.2.1/24"


def test_replace_and_delete_tags(schema: Schema) -> None:
    text = "system { replace: login { user bob { class ops; } } delete: host-name; }"
    tree = junos_text.parse(text, schema)
    assert tree.find(f".//{{{SYS}}}login").get(OPERATION) == "replace"
    assert tree.find(f".//{{{SYS}}}host-name").get(OPERATION) == "remove"
    merged = junos_text.parse(text, schema, replace=False)  # load merge ignores replace:
    assert merged.find(f".//{{{SYS}}}login").get(OPERATION) is None
    assert merged.find(f".//{{{SYS}}}host-name").get(OPERATION) == "remove"


@pytest.mark.parametrize(("text", "word"), [
    ("system { hostname r1; }", "hostname"),
    ("system { host-name r1 r2; }", "r2"),
    ("system { host-name r1; ", ""),
    ("system { host-name r1; } }", "}"),
    ('system { host-name "r1; }', '"'),
    ("system { login { user; } }", "user"),
    ("system { host-name { } }", "host-name"),
    ("inactive: system { host-name r1; }", "inactive:"),
])  # fmt: skip
def test_syntax_errors_name_the_word(schema: Schema, text: str, word: str) -> None:
    with pytest.raises(JunosSyntaxError) as exc:
        junos_text.parse(text, schema)
    assert exc.value.message.startswith("syntax error")
    assert exc.value.word == word


def test_set_and_delete_lines(schema: Schema) -> None:
    running = parse_top(DATA.encode())
    lines = """
# a comment
set system host-name edge-2
set system login user alice class ops
set system authentication-order [ password radius ]
set interfaces ge-0/0/1 unit 0 family inet address 198.51.100.1/24
delete system login user bob
delete interfaces ge-0/0/0 disable
delete system services netconf ssh listen-address ::1
delete system radius-server 192.0.2.9
set system host-name "edge 3"
"""
    edits = junos_set.parse_set(lines, schema)
    assert [op for _, op in edits] == ["merge", "none", "merge"]
    result = running
    for tree, op in edits:
        result = apply_edit(schema, result, tree, op)
    assert result.findtext(f"{{{SYS}}}system/{{{SYS}}}host-name") == "edge 3"
    users = [u.findtext(f"{{{SYS}}}name") for u in result.iter(f"{{{SYS}}}user")]
    assert users == ["alice"]
    assert result.find(f".//{{{IFS}}}disable") is None
    assert [e.text for e in result.iter(f"{{{SYS}}}listen-address")] == ["127.0.0.1"]
    assert result.findtext(f".//{{{IFS}}}interface[{{{IFS}}}name='ge-0/0/1']//{{{IFS}}}address/"
                           f"{{{IFS}}}name") == "198.51.100.1/24"
    # deleting inside a presence container that is not there creates nothing
    bare = apply_edit(schema, new_root(), *junos_set.parse_set(
        "delete system services netconf ssh port", schema)[0])
    assert len(bare) == 0


@pytest.mark.parametrize("line", ["show system", "set", "set system nonsense 1",
                                  "set system login user", "delete system authentication-order",
                                  "set system [ host-name ] r1", "set system host-name [ r1 ]",
                                  "set system authentication-order [ radius",
                                  "set system authentication-order ] radius",
                                  "set interfaces ge-0/0/0 disable yes"])
def test_bad_set_lines(schema: Schema, line: str) -> None:
    with pytest.raises(JunosSyntaxError):
        junos_set.parse_set(line, schema)


def applied(schema: Schema, lines: str, running: etree._Element | None = None) -> etree._Element:
    result = new_root() if running is None else running
    for tree, op in junos_set.parse_set(lines, schema):
        result = apply_edit(schema, result, tree, op)
    return result


def test_a_set_line_goes_on_after_a_leaf_at_the_leafs_level(schema: Schema) -> None:
    """Junos reads ``set ... leaf value next-statement ...``: a leaf takes one value (an empty
    leaf none, a leaf-list one or a ``[ ]`` group), the words after it are its siblings."""
    result = applied(schema, """
set system login user bob class super-user authentication encrypted-password "$6$s$h"
set system login class ops idle-timeout 10 permissions [ view configure ] permissions control
set interfaces ge-0/0/1 disable description "d [ ]" unit 0 family inet6
set system login user eve class authentication
""")
    bob = result.find(f".//{{{SYS}}}user[{{{SYS}}}name='bob']")
    assert bob.findtext(f"{{{SYS}}}class") == "super-user"
    assert bob.findtext(f"{{{SYS}}}authentication/{{{SYS}}}encrypted-password") == "$6$s$h"
    ops = result.find(f".//{{{SYS}}}login/{{{SYS}}}class")
    assert ops.findtext(f"{{{SYS}}}idle-timeout") == "10"
    assert [p.text for p in ops.iter(f"{{{SYS}}}permissions")] == ["view", "configure",
                                                                   "control"]
    ge = result.find(f".//{{{IFS}}}interface")
    assert ge.find(f"{{{IFS}}}disable") is not None
    assert ge.findtext(f"{{{IFS}}}description") == "d [ ]"
    assert ge.find(f"{{{IFS}}}unit/{{{IFS}}}family/{{{IFS}}}inet6") is not None
    # the word after a leaf is its value, whatever it spells
    eve = result.find(f".//{{{SYS}}}user[{{{SYS}}}name='eve']")
    assert eve.findtext(f"{{{SYS}}}class") == "authentication"
    # a statement after a leaf is its sibling, not a child of something above
    with pytest.raises(JunosSyntaxError) as exc:
        junos_set.parse_set("set system login user bob authentication encrypted-password x "
                            "class ops", schema)
    assert exc.value.word == "class"


@pytest.mark.parametrize(("line", "leaf"), [
    ("set system host-name", "host-name"),
    ("set system login user x class", "class"),
    ("set system login user x class ops full-name", "full-name"),
    ("set system login class ops permissions [ ]", "permissions"),
])  # fmt: skip
def test_a_leaf_without_its_value_is_a_syntax_error(schema: Schema, line: str,
                                                    leaf: str) -> None:
    with pytest.raises(JunosSyntaxError) as exc:
        junos_set.parse_set("set system host-name r1\n" + line, schema)
    assert exc.value.message == f"syntax error: {leaf} needs a value"
    assert (exc.value.word, exc.value.line) == (leaf, 2)


def test_an_empty_leaf_takes_no_value(schema: Schema) -> None:
    result = applied(schema, "set interfaces ge-0/0/0 disable")
    disable = result.find(f".//{{{IFS}}}disable")
    assert disable is not None and disable.text is None
    gone = applied(schema, "delete interfaces ge-0/0/0 disable", result)
    assert gone.find(f".//{{{IFS}}}disable") is None


def test_delete_takes_one_statement_a_line(schema: Schema) -> None:
    """``delete PATH leaf [value]`` deletes the leaf whatever it holds; a second statement on a
    delete line is refused (see CONFORMANCE.md), never guessed at."""
    running = parse_top(DATA.encode())
    result = applied(schema, "delete system host-name not-its-value", running)
    assert result.find(f".//{{{SYS}}}host-name") is None
    for line, word in [("delete system login user bob class ops full-name", "full-name"),
                       ("delete system host-name r1 authentication-order",
                        "authentication-order"),
                       ("delete interfaces ge-0/0/0 disable description", "description"),
                       ("delete system authentication-order radius password", "password")]:
        with pytest.raises(JunosSyntaxError) as exc:
            junos_set.parse_set(line, schema)
        assert exc.value.word == word, line
        assert "one statement" in exc.value.message, line


def test_compare_is_junos_show_compare(schema: Schema) -> None:
    old = parse_top(DATA.encode())
    new = apply_edit(schema, old, *junos_set.parse_set(
        "set system host-name edge-2\nset system login user alice class ops", schema)[0])
    new = apply_edit(schema, new, *junos_set.parse_set(
        "delete interfaces ge-0/0/0 disable", schema)[0])
    assert junos_set.compare(old, new, schema) == (
        "[edit system]\n"
        "-   host-name edge-1;\n"
        "+   host-name edge-2;\n"
        "[edit system login]\n"
        "+   user alice {\n"
        "+       class ops;\n"
        "+   }\n"
        "[edit interfaces ge-0/0/0]\n"
        "-   disable;\n"
    )
    assert junos_set.compare(old, old, schema) == "\n"  # what PyEZ's diff() reads as None


def test_junos_xml_both_ways(schema: Schema) -> None:
    tree = parse_top(DATA.encode())
    plain = junos_xml.to_junos(tree)
    assert [el.tag for el in plain] == ["system", "interfaces", "services"]
    assert all(etree.QName(el).namespace is None for top in plain for el in top.iter())
    configuration = etree.Element("configuration")
    configuration.extend(plain)
    assert canonical(schema, junos_xml.from_junos(configuration, schema)) == canonical(schema, tree)
    edit = etree.fromstring(
        '<configuration><system><host-name delete="delete"/><login replace="replace">'
        "<user><name>x</name><class>ops</class></user></login></system></configuration>")
    converted = junos_xml.from_junos(edit, schema)
    assert converted.find(f".//{{{SYS}}}host-name").get(OPERATION) == "remove"
    assert converted.find(f".//{{{SYS}}}login").get(OPERATION) is None  # merge: ignored
    replaced = junos_xml.from_junos(edit, schema, replace=True)
    assert replaced.find(f".//{{{SYS}}}login").get(OPERATION) == "replace"
    for bad in ('<configuration><system inactive="inactive"/></configuration>',
                "<configuration><sytem/></configuration>"):
        with pytest.raises(JunosSyntaxError):
            junos_xml.from_junos(etree.fromstring(bad), schema)


def test_loads_are_bounded_before_they_are_built(schema: Schema) -> None:
    """A load stops at the statement limit (edit-config's 10,000 elements) while parsing."""
    users = "".join(f"user u{i} {{ class ops; }}\n" for i in range(600))
    text = f"system {{ login {{ {users} }} }}"
    assert len(junos_text.parse(text, schema, limit=2000).findall(f".//{{{SYS}}}user")) == 600
    with pytest.raises(junos_text.JunosTooBig):
        junos_text.parse(text, schema, limit=1000)
    with pytest.raises(junos_text.JunosTooBig):
        junos_text.parse("system { " * 5000, schema, limit=100)  # stops reading early
    lines = "".join(f"set system login user u{i} class ops\n" for i in range(600))
    assert len(junos_set.parse_set(lines, schema, limit=600)) == 1
    with pytest.raises(junos_text.JunosTooBig):
        junos_set.parse_set(lines, schema, limit=599)


def test_nesting_is_bounded(schema: Schema) -> None:
    with pytest.raises(JunosSyntaxError) as exc:
        junos_text.parse("system { " * 5000 + "}" * 5000, schema, limit=10_000)
    assert "nested deeper" in exc.value.message
