"""rpc-reply building: attributes echoed exactly, whatever they hold (RFC 6241 §4.2)."""

from __future__ import annotations

from lxml import etree

from flowtap.netconf.replies import NC_NS, data_bytes, reply


def test_attributes_round_trip_through_escaping() -> None:
    tricky = 'a&b<c>"d\'\te\nf\r g é'
    parsed = etree.fromstring(reply({"message-id": tricky, "x": "1"}))
    assert parsed.tag == f"{{{NC_NS}}}rpc-reply"
    assert parsed.get("message-id") == tricky and parsed.get("x") == "1"
    assert parsed[0].tag == f"{{{NC_NS}}}ok"


def test_namespaced_attributes_keep_their_namespace() -> None:
    parsed = etree.fromstring(reply({"message-id": "7", "{urn:example:1}user-id": "fred"}))
    assert parsed.get("{urn:example:1}user-id") == "fred" and parsed.get("message-id") == "7"


def test_oversized_attributes_are_not_echoed() -> None:
    parsed = etree.fromstring(reply({"message-id": "1", "huge": "x" * 2000}))
    assert parsed.get("huge") is None and parsed.get("message-id") == "1"


def test_body_items_may_be_elements_or_bytes() -> None:
    item = etree.Element("{urn:example:1}thing")
    out = reply({"message-id": "2"}, [item, data_bytes(b'<a xmlns="urn:example:1"/>')])
    parsed = etree.fromstring(out)
    assert [child.tag for child in parsed] == ["{urn:example:1}thing", f"{{{NC_NS}}}data"]
    assert parsed[1][0].tag == "{urn:example:1}a"
