"""edit-config on datastore trees (config/edit.py) against the real schema: the operations,
default-operation, list keys, ordered-by-user insert and the errors, without a session."""

from __future__ import annotations

import pytest
from lxml import etree

from flowtap.config.edit import apply_edit, content_to_check, new_root, strip_edit_attributes
from flowtap.config.schema import Schema
from flowtap.errors import ConfigError, ConfigErrors

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
YANG = "urn:ietf:params:xml:ns:yang:1"
SYS = "urn:flowtap:yang:system"
SVC = "urn:flowtap:yang:services"
S = f"{{{SYS}}}"


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def config(inner: str) -> etree._Element:
    """An edit-config ``<config>`` whose children are ``inner`` (nc: and yang: prefixes bound)."""
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}" xmlns:yang="{YANG}">'
                            f"{inner}</config>")  # fmt: skip


def system(inner: str, attrs: str = "") -> str:
    return f'<system xmlns="{SYS}"{attrs}>{inner}</system>'


def edit(schema: Schema, target: etree._Element, inner: str, **kw: str) -> etree._Element:
    return apply_edit(schema, target, config(inner), **kw)


def error(schema: Schema, target: etree._Element, inner: str, **kw: str) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        edit(schema, target, inner, **kw)
    return exc.value


def texts(tree: etree._Element, path: str) -> list[str]:
    return [e.text or "" for e in tree.iterfind(path.replace("s:", S))]


BASE = system(
    "<host-name>r1</host-name>"
    "<login><class><name>ops</name><permissions>view</permissions></class>"
    "<user><name>bob</name><class>ops</class></user></login>"
)


@pytest.fixture
def base(schema: Schema) -> etree._Element:
    return edit(schema, new_root(), BASE)


def test_merge_creates_into_an_empty_datastore_and_leaves_the_target_alone(
    schema: Schema,
) -> None:
    empty = new_root()
    tree = edit(schema, empty, system("<host-name>r1</host-name>"))
    assert texts(tree, "s:system/s:host-name") == ["r1"]
    assert len(empty) == 0  # the edit worked on a copy
    assert etree.QName(tree).localname == "data"


def test_merge_changes_a_leaf_and_keeps_its_siblings(schema: Schema,
                                                     base: etree._Element) -> None:  # fmt: skip
    tree = edit(schema, base, system("<host-name>r2</host-name>"))
    assert texts(tree, "s:system/s:host-name") == ["r2"]
    assert texts(tree, "s:system/s:login/s:user/s:name") == ["bob"]
    assert texts(base, "s:system/s:host-name") == ["r1"]


def test_merge_finds_list_entries_by_key(schema: Schema, base: etree._Element) -> None:
    tree = edit(schema, base, system(
        "<login><class><name>ops</name><permissions>configure</permissions></class>"
        "<class><name>noc</name><permissions>view</permissions></class></login>"))  # fmt: skip
    assert texts(tree, "s:system/s:login/s:class/s:name") == ["ops", "noc"]
    assert texts(tree, "s:system/s:login/s:class[s:name='ops']/s:permissions") == [
        "view", "configure"]  # fmt: skip
    # a leaf-list value already there is found, not added twice
    again = edit(schema, tree, system(
        "<login><class><name>ops</name><permissions>view</permissions></class></login>"))
    assert texts(again, "s:system/s:login/s:class[s:name='ops']/s:permissions") == [
        "view", "configure"]  # fmt: skip


def test_list_keys_are_compared_with_blanks_normalized(schema: Schema,
                                                       base: etree._Element) -> None:  # fmt: skip
    tree = edit(schema, base, system(
        "<login><user><name>  bob </name><class>super-user</class></user></login>"))
    assert texts(tree, "s:system/s:login/s:user/s:name") == ["bob"]
    assert texts(tree, "s:system/s:login/s:user/s:class") == ["super-user"]


def test_replace_on_a_node_replaces_its_whole_content(schema: Schema,
                                                      base: etree._Element) -> None:  # fmt: skip
    tree = edit(schema, base, system(
        '<login nc:operation="replace"><class><name>noc</name></class></login>'))
    assert texts(tree, "s:system/s:login/s:class/s:name") == ["noc"]
    assert texts(tree, "s:system/s:login/s:user") == []  # bob went with the old login
    assert texts(tree, "s:system/s:host-name") == ["r1"]  # outside the replaced node: kept


def test_default_operation_replace_replaces_the_whole_datastore(
    schema: Schema, base: etree._Element
) -> None:
    tree = edit(schema, base, f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>',
                default_operation="replace")  # fmt: skip
    assert [etree.QName(c).localname for c in tree] == ["services"]


def test_create(schema: Schema, base: etree._Element) -> None:
    tree = edit(schema, base, system(
        '<login><class nc:operation="create"><name>noc</name><permissions>view</permissions>'
        "</class></login>"))  # fmt: skip
    assert texts(tree, "s:system/s:login/s:class[s:name='noc']/s:permissions") == ["view"]


def test_create_of_existing_data_is_data_exists(schema: Schema, base: etree._Element) -> None:
    err = error(schema, base, system(
        '<login><class nc:operation="create"><name>ops</name></class></login>'))
    assert err.tag == "data-exists" and err.type == "application"
    assert err.path == "/fts:system/fts:login/fts:class[fts:name='ops']"
    assert err.info == {"bad-element": "class"}
    err = error(schema, base, system('<host-name nc:operation="create">x</host-name>'))
    assert err.tag == "data-exists" and err.path == "/fts:system/fts:host-name"


def test_delete(schema: Schema, base: etree._Element) -> None:
    tree = edit(schema, base, system(
        '<login><user nc:operation="delete"><name>bob</name></user></login>'))
    assert texts(tree, "s:system/s:login/s:user") == []
    assert texts(tree, "s:system/s:login/s:class/s:name") == ["ops"]
    tree = edit(schema, tree, system('<host-name nc:operation="delete"/>'))
    assert texts(tree, "s:system/s:host-name") == []


def test_delete_of_missing_data_is_data_missing(schema: Schema, base: etree._Element) -> None:
    err = error(schema, base, system(
        '<login><user nc:operation="delete"><name>eve</name></user></login>'))
    assert err.tag == "data-missing"
    assert err.path == "/fts:system/fts:login/fts:user[fts:name='eve']"
    assert err.info == {"bad-element": "user"}


def test_remove_of_missing_data_is_silent(schema: Schema, base: etree._Element) -> None:
    tree = edit(schema, base, system(
        '<login><user nc:operation="remove"><name>eve</name></user></login>'
        '<host-name nc:operation="remove"/>'))  # fmt: skip
    assert texts(tree, "s:system/s:host-name") == []
    assert texts(tree, "s:system/s:login/s:user/s:name") == ["bob"]


def test_a_list_key_cannot_be_deleted_on_its_own(schema: Schema, base: etree._Element) -> None:
    err = error(schema, base, system(
        '<login><user><name nc:operation="delete">bob</name></user></login>'))
    assert err.tag == "operation-failed"
    assert err.message == "A list key cannot be deleted on its own"


def test_default_operation_none_creates_only_what_descendants_need(
    schema: Schema, base: etree._Element
) -> None:
    # none on its own: a new leaf is not created, an existing one is not changed
    tree = edit(schema, base, system("<host-name>r9</host-name>"),
                default_operation="none")  # fmt: skip
    assert texts(tree, "s:system/s:host-name") == ["r1"]
    assert etree.tostring(tree) == etree.tostring(base)
    # an operation deeper down creates the containers it needs
    tree = edit(schema, new_root(), system(
        '<services><netconf><ssh nc:operation="merge"><port>8300</port></ssh></netconf>'
        "</services>"), default_operation="none")  # fmt: skip
    assert texts(tree, "s:system/s:services/s:netconf/s:ssh/s:port") == ["8300"]
    # under none a delete still applies, and nothing else is touched
    tree = edit(schema, base, system('<host-name nc:operation="delete"/>'),
                default_operation="none")  # fmt: skip
    assert texts(tree, "s:system/s:host-name") == [] and len(tree[0]) == 1


def test_list_entry_without_its_key_is_missing_element(schema: Schema,
                                                       base: etree._Element) -> None:  # fmt: skip
    err = error(schema, base, system("<login><user><class>ops</class></user></login>"))
    assert err.tag == "missing-element" and err.type == "protocol"
    assert err.path == "/fts:system/fts:login/fts:user"
    assert err.info == {"bad-element": "name"}


def test_unknown_element(schema: Schema, base: etree._Element) -> None:
    err = error(schema, base, system("<login><nonsense>1</nonsense></login>"))
    assert err.tag == "unknown-element"
    assert err.path == "/fts:system/fts:login"
    assert err.info == {"bad-element": "nonsense"}
    top = error(schema, base, f'<nonsense xmlns="{SYS}"/>')
    assert top.tag == "unknown-element" and top.path is None


def test_unknown_namespace(schema: Schema, base: etree._Element) -> None:
    err = error(schema, base, '<system xmlns="urn:example:nothing"/>')
    assert err.tag == "unknown-namespace" and err.type == "protocol"
    assert err.info == {"bad-element": "system", "bad-namespace": "urn:example:nothing"}


def test_state_data_cannot_be_configured(schema: Schema, base: etree._Element) -> None:
    err = error(schema, base, f'<flow-tap-state xmlns="{SVC}"><status>up</status>'
                "</flow-tap-state>")  # fmt: skip
    assert err.tag == "invalid-value" and err.info == {"bad-element": "flow-tap-state"}


def test_invalid_operation_attribute(schema: Schema, base: etree._Element) -> None:
    err = error(schema, base, system('<host-name nc:operation="upsert">x</host-name>'))
    assert err.tag == "bad-attribute"
    assert err.info == {"bad-attribute": "operation", "bad-element": "host-name"}


def test_errors_leave_the_target_untouched(schema: Schema, base: etree._Element) -> None:
    before = etree.tostring(base)
    for option in ("stop-on-error", "rollback-on-error"):
        err = error(schema, base, system(
            "<host-name>changed</host-name>"
            '<login><user nc:operation="delete"><name>eve</name></user></login>'),
            error_option=option)  # fmt: skip
        assert err.tag == "data-missing"
    assert etree.tostring(base) == before


def test_continue_on_error_reports_every_error(schema: Schema, base: etree._Element) -> None:
    with pytest.raises(ConfigErrors) as exc:
        edit(schema, base, system(
            '<host-name nc:operation="create">x</host-name>'
            '<login><user nc:operation="delete"><name>eve</name></user><bogus/></login>'),
            error_option="continue-on-error")  # fmt: skip
    assert [e.tag for e in exc.value.errors] == ["data-exists", "data-missing", "unknown-element"]
    one = error(schema, base, system('<host-name nc:operation="create">x</host-name>'),
                error_option="continue-on-error")  # fmt: skip
    assert one.tag == "data-exists"  # a single error is reported as itself


def test_comments_in_an_edit_are_ignored(schema: Schema, base: etree._Element) -> None:
    tree = edit(schema, base, system("<!-- why --><host-name>r3</host-name><?pi x?>"))
    assert texts(tree, "s:system/s:host-name") == ["r3"]


def radius(*names: str) -> str:
    return "".join(f"<radius-server><name>{n}</name><secret>s</secret></radius-server>"
                   for n in names)  # fmt: skip


def test_insert_into_an_ordered_by_user_list(schema: Schema) -> None:
    tree = edit(schema, new_root(), system(radius("192.0.2.1", "192.0.2.2")))
    first = edit(schema, tree, system(
        '<radius-server yang:insert="first"><name>192.0.2.3</name><secret>s</secret>'
        "</radius-server>"))  # fmt: skip
    assert texts(first, "s:system/s:radius-server/s:name") == [
        "192.0.2.3", "192.0.2.1", "192.0.2.2"]  # fmt: skip
    after = edit(schema, tree, system(
        '<radius-server yang:insert="after" yang:key="[fts:name=\'192.0.2.1\']">'
        "<name>192.0.2.4</name><secret>s</secret></radius-server>"))  # fmt: skip
    assert texts(after, "s:system/s:radius-server/s:name") == [
        "192.0.2.1", "192.0.2.4", "192.0.2.2"]  # fmt: skip
    # moving an existing entry
    moved = edit(schema, tree, system(
        '<radius-server yang:insert="before" yang:key="[name=\'192.0.2.1\']">'
        "<name>192.0.2.2</name></radius-server>"))  # fmt: skip
    assert texts(moved, "s:system/s:radius-server/s:name") == ["192.0.2.2", "192.0.2.1"]
    last = edit(schema, moved, system(
        '<radius-server yang:insert="last"><name>192.0.2.2</name></radius-server>'))
    assert texts(last, "s:system/s:radius-server/s:name") == ["192.0.2.1", "192.0.2.2"]


def test_insert_into_an_ordered_by_user_leaf_list(schema: Schema) -> None:
    tree = edit(schema, new_root(), system(
        "<authentication-order>password</authentication-order>"))
    tree = edit(schema, tree, system(
        '<authentication-order yang:insert="before" yang:value="password">radius'
        "</authentication-order>"))  # fmt: skip
    assert texts(tree, "s:system/s:authentication-order") == ["radius", "password"]


def test_insert_errors(schema: Schema) -> None:
    tree = edit(schema, new_root(), system(radius("192.0.2.1")))
    err = error(schema, tree, system(
        '<radius-server yang:insert="after" yang:key="[name=\'192.0.2.9\']">'
        "<name>192.0.2.4</name><secret>s</secret></radius-server>"))  # fmt: skip
    assert err.tag == "bad-attribute" and err.app_tag == "missing-instance"
    assert err.info == {"bad-attribute": "key"}
    err = error(schema, tree, system(
        '<radius-server yang:insert="sideways"><name>192.0.2.4</name><secret>s</secret>'
        "</radius-server>"))  # fmt: skip
    assert err.tag == "bad-attribute"
    assert err.info == {"bad-attribute": "insert", "bad-element": "radius-server"}
    err = error(schema, new_root(), system(
        '<authentication-order yang:insert="before" yang:value="password">radius'
        "</authentication-order>"))  # fmt: skip
    assert err.tag == "bad-attribute" and err.info == {"bad-attribute": "value"}


def test_insert_is_ignored_where_the_system_orders(schema: Schema,
                                                   base: etree._Element) -> None:  # fmt: skip
    tree = edit(schema, base, system(
        '<login><class yang:insert="first"><name>noc</name></class></login>'))
    assert texts(tree, "s:system/s:login/s:class/s:name") == ["ops", "noc"]


def test_a_bad_value_is_found_by_the_schema_check_of_what_the_edit_writes(
    schema: Schema,
) -> None:
    bad = config(system('<host-name nc:operation="merge">-not a host-</host-name>'
                        '<radius-server nc:operation="delete"><name>x</name></radius-server>'))
    checked, plain = content_to_check(bad)
    assert b"radius-server" not in checked and b"operation" not in checked  # deletes left out
    assert not plain  # not the edit as it stands: no merge of these bytes makes its result
    with pytest.raises(ConfigError) as exc:
        schema.check(checked)
    assert exc.value.tag == "invalid-value"
    assert exc.value.path == "/fts:system/fts:host-name"
    data, plain = content_to_check(config(system("<host-name>ok</host-name>")))
    assert plain
    schema.check(data)


def test_strip_edit_attributes(schema: Schema) -> None:
    tree = config(system('<host-name nc:operation="replace">r</host-name>'
                         '<authentication-order yang:insert="first">radius'
                         "</authentication-order>"))  # fmt: skip
    strip_edit_attributes(tree)
    assert all(not el.attrib for el in tree.iter() if isinstance(el.tag, str))
