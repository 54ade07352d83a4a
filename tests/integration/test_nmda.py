"""RFC 8526 get-data and edit-data (ietf-netconf-nmda) against a real flowtapd, with ncclient.

The server advertises yang-library 1.1, which makes it an NMDA server to clients: libnetconf2
(netopeer2-cli) reads the library with get-data on every connect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lxml import etree
from ncclient.manager import Manager
from ncclient.operations import RPCError

from tests.flowtapd import NC, SYS, Flowtapd

NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
YANGLIB = "urn:ietf:params:xml:ns:yang:ietf-yang-library"


def get_data(m: Manager, datastore: str, *params: str) -> etree._Element:
    rpc = (f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>{datastore}</datastore>'
           f'{"".join(params)}</get-data>')
    reply = m.dispatch(etree.fromstring(rpc))
    data = etree.fromstring(reply.xml.encode()).find(f"{{{NMDA}}}data")
    assert data is not None, reply.xml
    return data


def edit_data(m: Manager, datastore: str, config: str, *params: str) -> None:
    m.dispatch(etree.fromstring(
        f'<edit-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>{datastore}</datastore>'
        f'{"".join(params)}<config>{config}</config></edit-data>'))


def tags(data: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in data]


HOST = f'<system xmlns="{SYS}"><host-name/></system>'


@pytest.fixture
def admin(shared_flowtapd: Flowtapd) -> Iterator[Manager]:
    with shared_flowtapd.connect() as m:
        yield m


def test_operational_holds_the_yang_library_with_nmda(admin: Manager) -> None:
    data = get_data(admin, "ds:operational",
                    f'<subtree-filter><yang-library xmlns="{YANGLIB}"/></subtree-filter>')
    assert tags(data) == ["yang-library"]
    names = {e.text for e in data.iter(f"{{{YANGLIB}}}name")}
    assert {"ietf-netconf-nmda", "ietf-datastores", "ietf-origin", "flowtap-system"} <= names
    datastores = [e.findtext(f"{{{YANGLIB}}}name") for e in data.iter(f"{{{YANGLIB}}}datastore")]
    assert datastores == ["ds:running", "ds:candidate", "ds:startup", "ds:operational"]
    nmda = next(e for e in data.iter(f"{{{YANGLIB}}}module")
                if e.findtext(f"{{{YANGLIB}}}name") == "ietf-netconf-nmda")
    assert [f.text for f in nmda.iter(f"{{{YANGLIB}}}feature")] == ["with-defaults"]


def test_conventional_datastores_are_get_config(admin: Manager) -> None:
    for datastore, source in (("ds:running", "running"), ("ds:intended", "running"),
                              ("ds:candidate", "candidate"), ("ds:startup", "startup")):
        expected = admin.get_config(source).data_ele
        data = get_data(admin, datastore)
        assert [etree.tostring(c) for c in data] == [etree.tostring(c) for c in expected]


def test_config_filter_splits_operational(admin: Manager) -> None:
    config_only = tags(get_data(admin, "ds:operational", "<config-filter>true</config-filter>"))
    state_only = tags(get_data(admin, "ds:operational", "<config-filter>false</config-filter>"))
    assert "system" in config_only and "netconf-state" not in config_only
    assert "netconf-state" in state_only and "system" not in state_only
    assert tags(get_data(admin, "ds:running", "<config-filter>false</config-filter>")) == []


def test_xpath_filter_with_module_names_and_max_depth(admin: Manager) -> None:
    data = get_data(admin, "ds:running",
                    "<xpath-filter>/flowtap-system:system/host-name</xpath-filter>")
    expected = admin.get_config("running", filter=("subtree", HOST)).data_ele
    assert etree.tostring(data[0]) == etree.tostring(expected[0])
    # a state module named as libnetconf2 writes it (netopeer2-cli get-data --filter-xpath)
    library = get_data(admin, "ds:operational",
                       "<xpath-filter>/ietf-yang-library:yang-library/datastore</xpath-filter>")
    assert [e.findtext(f"{{{YANGLIB}}}name") for e in library.iter(f"{{{YANGLIB}}}datastore")
            ] == ["ds:running", "ds:candidate", "ds:startup", "ds:operational"]
    got = admin.get(filter=("xpath", "/ietf-yang-library:yang-library/datastore")).data_ele
    assert etree.tostring(got[0]) == etree.tostring(library[0])
    shallow = get_data(admin, "ds:running", "<max-depth>1</max-depth>")
    assert "system" in tags(shallow) and all(len(node) == 0 for node in shallow)
    two = get_data(admin, "ds:running", "<max-depth>2</max-depth>")
    assert any(len(node) for node in two) and all(len(c) == 0 for node in two for c in node)


def test_refusals_name_what_is_wrong(admin: Manager) -> None:
    cases = [
        (f'<get-data xmlns="{NMDA}"><datastore>running</datastore></get-data>', "invalid-value",
         "Unknown datastore"),
        (f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:nowhere</datastore></get-data>',
         "invalid-value", "Unknown datastore"),
        (f'<get-data xmlns="{NMDA}"/>', "missing-element", "<datastore> is missing"),
        (f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:running</datastore>'
         "<max-depth>0</max-depth></get-data>", "invalid-value", "max-depth"),
        (f'<get-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:running</datastore>'
         "<origin-filter>or:intended</origin-filter></get-data>", "unknown-element", "origin"),
        (f'<edit-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:running</datastore>'
         "<config/></edit-data>", "operation-not-supported", "edit candidate and commit"),
        (f'<edit-data xmlns="{NMDA}" xmlns:ds="{DS}"><datastore>ds:operational</datastore>'
         "<config/></edit-data>", "operation-not-supported", "not written directly"),
    ]
    for rpc, tag, message in cases:
        with pytest.raises(RPCError) as refused:
            admin.dispatch(etree.fromstring(rpc))
        assert refused.value.tag == tag and message in str(refused.value), rpc


def test_edit_data_edits_candidate_and_commit_publishes(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as m:
        edit_data(m, "ds:candidate",
                  f'<system xmlns="{SYS}"><host-name>from-edit-data</host-name></system>')
        assert "from-edit-data" in etree.tostring(get_data(m, "ds:candidate")).decode()
        assert "from-edit-data" not in etree.tostring(get_data(m, "ds:running")).decode()
        m.commit()
        running = get_data(m, "ds:operational", f"<subtree-filter>{HOST}</subtree-filter>")
        assert running.findtext(f".//{{{SYS}}}host-name") == "from-edit-data"
        edit_data(m, "ds:candidate",
                  f'<system xmlns="{SYS}" xmlns:nc="{NC}"><host-name nc:operation="delete"/>'
                  "</system>")
        assert get_data(m, "ds:candidate").find(f".//{{{SYS}}}host-name") is None


def test_lawful_intercept_stays_hidden_from_a_user_without_li_bits(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as admin:
        admin.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><system xmlns="{SYS}"><services><flow-tap-dtcp><ssh>'
            "<rate-limit>12</rate-limit></ssh></flow-tap-dtcp></services></system></config>"))
        admin.commit()
        admin.copy_config(source="running", target="startup")
        assert "flow-tap" in etree.tostring(get_data(admin, "ds:operational")).decode()
    with flowtapd.connect("ops") as ops:
        for datastore in ("ds:running", "ds:operational", "ds:candidate", "ds:startup"):
            assert "flow-tap" not in etree.tostring(get_data(ops, datastore)).decode()
        config = get_data(ops, "ds:operational", "<config-filter>true</config-filter>")
        expected = ops.get_config("running").data_ele
        assert [etree.tostring(c) for c in config] == [etree.tostring(c) for c in expected]
        with pytest.raises(RPCError) as refused:
            edit_data(ops, "ds:candidate",
                      f'<system xmlns="{SYS}"><services><flow-tap-dtcp><ssh>'
                      "<rate-limit>13</rate-limit></ssh></flow-tap-dtcp></services></system>")
        assert refused.value.tag == "access-denied"
