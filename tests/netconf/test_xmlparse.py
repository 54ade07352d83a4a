"""Hardened NETCONF XML parsing: N7 (DTD, entities), N8 (size, depth), N9 (encoding), N11."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lxml import etree

from flowtap.errors import NetconfRpcError
from flowtap.netconf import xmlparse
from flowtap.netconf.xmlparse import (
    MAX_DEPTH,
    MAX_MESSAGE_ID,
    NC_NS,
    RPC,
    message_id,
    nc,
    parse_message,
    reply_attributes,
)

RPC_GET = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<rpc message-id="101" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">\n'
    b"  <get-config>\n    <source><running/></source>\n  </get-config>\n</rpc>"
)


def malformed(data: bytes, **limits: int) -> NetconfRpcError:
    with pytest.raises(NetconfRpcError) as err:
        parse_message(data, **limits)
    assert err.value.tag == "malformed-message"
    assert err.value.type == "rpc"
    return err.value


def nested(depth: int) -> bytes:
    return b"<a>" * (depth - 1) + b"<a/>" + b"</a>" * (depth - 1)


# --- well-formed input ----------------------------------------------------------------------


def test_parses_rpc_and_drops_formatting() -> None:
    root = parse_message(RPC_GET)
    assert root.tag == RPC == nc("rpc") == f"{{{NC_NS}}}rpc"
    assert root.get("message-id") == "101"
    assert root.text is None  # indentation removed
    assert [c.tag for c in root] == [xmlparse.GET_CONFIG]


def test_comments_and_pis_are_removed_whitespace_leaf_kept() -> None:
    root = parse_message(b"<a><!-- c --><?pi x?><b>  </b><c>x</c></a>")
    assert [c.tag for c in root] == ["b", "c"]
    assert root[0].text == "  "


@pytest.mark.parametrize(
    "decl",
    [
        b'<?xml version="1.0"?>',
        b'<?xml version="1.0" encoding="UTF-8"?>',
        b"<?xml version='1.0' encoding='utf-8'?>",
        b'<?xml version="1.0" encoding="utf8" standalone="yes"?>',
        b'<?xml version="1.0"  encoding = "UTF-8" ?>',
        b"",
    ],
)
def test_N9_utf8_declarations_are_accepted(decl: bytes) -> None:
    assert parse_message(decl + "<a>é</a>".encode()).text == "é"


def test_xinclude_is_not_processed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOPSECRET")
    doc = (
        f'<rpc xmlns:xi="http://www.w3.org/2001/XInclude" message-id="1">'
        f'<xi:include href="{secret.as_uri()}" parse="text"/></rpc>'
    ).encode()
    root = parse_message(doc)
    assert b"TOPSECRET" not in etree.tostring(root)


def test_prolog_comment_and_pi_before_root_are_fine() -> None:
    root = parse_message(b'<?xml version="1.0"?>\n<!-- hi --><?pi x?>\n<a/>')
    assert root.tag == "a"


def test_doctype_text_inside_cdata_is_data_not_a_dtd() -> None:
    assert parse_message(b"<a><![CDATA[<!DOCTYPE x>]]></a>").text == "<!DOCTYPE x>"


# --- N7: DTDs, entities --------------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><lolz>&lol9;</lolz>"
)


N7_CASES = [
    ("bare-doctype", b"<!DOCTYPE rpc><rpc/>"),
    ("doctype-after-decl", b'<?xml version="1.0"?>\n<!DOCTYPE rpc>\n<rpc/>'),
    ("doctype-after-comment", b"<!-- x --><!DOCTYPE rpc><rpc/>"),
    ("doctype-after-long-pi", b"<?pi " + b"x" * 8000 + b"?><!DOCTYPE rpc><rpc/>"),
    ("billion-laughs", BILLION_LAUGHS),
    (
        "quadratic-blowup",
        b'<!DOCTYPE r [<!ENTITY a "' + b"x" * 50000 + b'">]><r>' + b"&a;" * 2000 + b"</r>",
    ),
    ("xxe-file", b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'),
    ("xxe-http", b'<!DOCTYPE r [<!ENTITY x SYSTEM "http://192.0.2.1/x">]><r>&x;</r>'),
    ("parameter-entity", b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]><r/>'),
    ("external-dtd", b'<!DOCTYPE r SYSTEM "file:///etc/passwd"><r/>'),
    ("public-dtd", b'<!DOCTYPE r PUBLIC "-//X//Y" "http://192.0.2.1/x.dtd"><r/>'),
    ("doctype-after-root", b"<r/><!DOCTYPE r>"),
    ("lowercase-doctype", b"<!doctype r><r/>"),
    ("undeclared-entity", b"<r>&x;</r>"),
]


@pytest.mark.parametrize("data", [d for _, d in N7_CASES], ids=[n for n, _ in N7_CASES])
def test_N7_dtd_and_entities_are_rejected(data: bytes) -> None:
    start = time.perf_counter()
    err = malformed(data)
    assert time.perf_counter() - start < 0.5
    assert "root:" not in err.message


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE r><r/>",
        b'<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>',
        b'<!DOCTYPE r SYSTEM "x"><r/>',
    ],
)
def test_N7_post_parse_doctype_check_backs_up_the_prolog_scan(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xmlparse, "_check_prolog", lambda data: None)
    malformed(data)


# --- N8: depth, size, counts ---------------------------------------------------------------


def test_N8_depth_at_the_cap_is_accepted() -> None:
    assert parse_message(nested(MAX_DEPTH)).tag == "a"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100, 255, 300, 10_000])
def test_N8_deep_nesting_is_rejected(depth: int) -> None:
    malformed(nested(depth))


def test_N8_depth_cap_is_configurable() -> None:
    parse_message(nested(10), max_depth=10)
    malformed(nested(11), max_depth=10)


def test_N8_wide_shallow_document_is_accepted() -> None:
    doc = b"<a>" + b"<b><c/></b>" * 5000 + b"</a>"
    assert len(parse_message(doc)) == 5000


def test_N8_too_many_elements_rejected_before_parsing() -> None:
    start = time.perf_counter()
    malformed(b"<a>" + b"<b/>" * 4_000_000 + b"</a>")
    assert time.perf_counter() - start < 0.5
    malformed(b"<a>" + b"<b/>" * 100 + b"</a>", max_markup=50)


def test_N8_too_many_attributes() -> None:
    attrs = b" ".join(b'a%d="1"' % i for i in range(200_000))
    malformed(b"<a " + attrs + b"/>")
    assert parse_message(b'<a x="1" y="2"/>', max_attributes=2).get("y") == "2"
    malformed(b'<a x="1" y="2" z="3"/>', max_attributes=2)


def test_N8_many_equals_signs_in_text_are_not_attributes() -> None:
    assert parse_message(b"<a>" + b"=" * 20_000 + b"</a>").text == "=" * 20_000


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("long-name", b"<" + b"n" * 60_000 + b"/>"),
        ("11MB-text", b"<a>" + b"x" * 11_000_000 + b"</a>"),
        ("100k-xmlns", b"<a " + b" ".join(b'xmlns:p%d="u"' % i for i in range(100_000)) + b"/>"),
    ],
)
def test_N8_oversized_items_are_bounded(name: str, data: bytes) -> None:
    start = time.perf_counter()
    try:
        parse_message(data)
    except NetconfRpcError as exc:
        assert exc.tag == "malformed-message"
    assert time.perf_counter() - start < 1.0, name


# --- N9: encoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("invalid-utf8", b"<a>\xff\xfe</a>"),
        ("overlong-utf8", b"<a>\xc0\xaf</a>"),
        ("truncated-utf8", b"<a>\xe2\x82</a>"),
        ("surrogate-utf8", b"<a>\xed\xa0\x80</a>"),
        ("nul", b"<a>\x00</a>"),
        ("nul-in-name", b"<a\x00/>"),
        ("c0-control", b"<a>\x01</a>"),
        ("escape-control", b"<a>\x1b[31m</a>"),
        ("char-ref-nul", b"<a>&#0;</a>"),
        ("utf16-decl", b'<?xml version="1.0" encoding="UTF-16"?><a/>'),
        ("latin1-decl", b'<?xml version="1.0" encoding="ISO-8859-1"?><a/>'),
        ("latin1-decl-single-quotes", b"<?xml version='1.0' encoding='iso-8859-1'?><a/>"),
        ("ascii-decl", b'<?xml version="1.0" encoding="US-ASCII"?><a/>'),
        ("empty-encoding", b'<?xml version="1.0" encoding=""?><a/>'),
        ("latin1-bytes", "<a>é</a>".encode("latin-1")),
        ("utf8-bom", b"\xef\xbb\xbf<a/>"),
        ("utf16le-bom", "<a/>".encode("utf-16-le").join([b"\xff\xfe", b""])),
        ("utf16be-bom", b"\xfe\xff" + "<a/>".encode("utf-16-be")),
        ("utf16-no-bom", "<a/>".encode("utf-16-le")),
    ],
)
def test_N9_non_utf8_input_is_malformed(name: str, data: bytes) -> None:
    malformed(data)


# --- general malformed input and safe messages ---------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"<rpc",
        b"<rpc></rpcx>",
        b"<a/><b/>",
        b"text",
        b'<a x="1" x="2"/>',
        b"<p:a/>",
        b"\n<?xml version='1.0'?><a/>",
    ],
    ids=[
        "empty",
        "blank",
        "truncated",
        "mismatch",
        "two-roots",
        "text",
        "dup-attr",
        "unbound-prefix",
        "blank-before-decl",
    ],
)
def test_malformed_documents(data: bytes) -> None:
    malformed(data)


def test_error_message_never_quotes_the_input() -> None:
    secret = b"target-192-0-2-77"
    err = malformed(b"<rpc><" + secret + b"></rpc>")
    assert "192" not in err.message and "target" not in err.message
    assert "line 1" in err.message
    assert err.info == {}


# --- N11: message-id and echoed attributes --------------------------------------------------


def rpc_with(attrs: str) -> etree._Element:
    return parse_message(f'<rpc xmlns="{NC_NS}" {attrs}><get/></rpc>'.encode())


def test_message_id_ok() -> None:
    assert message_id(rpc_with('message-id="101"')) == "101"
    assert message_id(rpc_with('message-id=""')) == ""
    assert message_id(rpc_with(f'message-id="{"m" * MAX_MESSAGE_ID}"')) == "m" * MAX_MESSAGE_ID


def test_N11_missing_message_id() -> None:
    with pytest.raises(NetconfRpcError) as err:
        message_id(rpc_with(""))
    assert err.value.tag == "missing-attribute"
    assert err.value.type == "rpc"
    assert err.value.info == {"bad-attribute": "message-id", "bad-element": "rpc"}


def test_N11_namespaced_message_id_does_not_count() -> None:
    with pytest.raises(NetconfRpcError) as err:
        message_id(rpc_with(f'xmlns:nc="{NC_NS}" nc:message-id="1"'))
    assert err.value.tag == "missing-attribute"


@pytest.mark.parametrize("size", [MAX_MESSAGE_ID + 1, 1 << 20])
def test_N11_huge_message_id_is_bad_attribute(size: int) -> None:
    rpc = rpc_with(f'message-id="{"9" * size}"')
    with pytest.raises(NetconfRpcError) as err:
        message_id(rpc)
    assert err.value.tag == "bad-attribute"
    assert err.value.info == {"bad-attribute": "message-id", "bad-element": "rpc"}
    assert "999" not in err.value.message


def test_N11_reply_attributes_echo_all_attributes() -> None:
    rpc = rpc_with('message-id="7" xmlns:ex="urn:x" ex:user-id="fred" extra="1"')
    assert reply_attributes(rpc) == {"message-id": "7", "{urn:x}user-id": "fred", "extra": "1"}


def test_N11_reply_attributes_caps() -> None:
    with pytest.raises(NetconfRpcError) as err:
        reply_attributes(rpc_with('message-id="1" big="' + "x" * 2000 + '"'))
    assert err.value.tag == "bad-attribute"
    assert err.value.info["bad-attribute"] == "big"
    many = " ".join(f'a{i}="1"' for i in range(20))
    with pytest.raises(NetconfRpcError) as err:
        reply_attributes(rpc_with('message-id="1" ' + many))
    assert err.value.tag == "bad-attribute"
    with pytest.raises(NetconfRpcError) as err:
        reply_attributes(rpc_with('other="1"'))
    assert err.value.tag == "missing-attribute"


@pytest.mark.parametrize("found", ["regression-brace-in-namespace",
                                   "regression-undeclared-prefix"])
def test_namespace_errors_libxml2_lets_through_are_malformed(found: str) -> None:
    """Found by fuzzing: libxml2 reports a namespace name holding "}" (not a URI) and an element
    with an undeclared prefix deep in a document without failing the parse, and lxml's names
    for them ("{a}b}x", "p:x") broke later lookups ("Internal error"). The fuzzer's inputs."""
    corpus = Path(__file__).parents[1] / "fuzz" / "corpus" / "netconf_rpc"
    with pytest.raises(NetconfRpcError) as exc:
        parse_message((corpus / found).read_bytes())
    assert exc.value.tag == "malformed-message" and "XML not well-formed (" in exc.value.message
