"""Subtree (RFC 6241 §6, §6.4 examples adapted) and XPath filtering on lxml trees."""

from __future__ import annotations

from typing import Any

import pytest
from lxml import etree

from flowtap.errors import NetconfRpcError
from flowtap.netconf.filters import apply_filter, subtree_filter, xpath_filter
from flowtap.netconf.xmlparse import NC_NS, parse_message

CFG = "http://example.com/schema/1.2/config"
STATS = "http://example.com/schema/1.2/stats"
OTHER = "urn:example:other"

# RFC 6241 §6.4 data, plus a <groups> sibling, a stats tree and a same-named top in another module.
DATA = f"""
<data xmlns="{NC_NS}">
  <top xmlns="{CFG}">
    <users>
      <user>
        <name>root</name><type>superuser</type><full-name>Charlie Root</full-name>
        <company-info><dept>1</dept><id>1</id></company-info>
      </user>
      <user>
        <name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name>
        <company-info><dept>2</dept><id>2</id></company-info>
      </user>
      <user>
        <name>barney</name><type>admin</type><full-name>Barney Rubble</full-name>
        <company-info><dept>2</dept><id>3</id></company-info>
      </user>
    </users>
    <groups>
      <group><name>admin</name><tag>a</tag><tag>b</tag><tag>c</tag></group>
      <group><name>wheel</name><tag>b</tag></group>
    </groups>
  </top>
  <t:top xmlns:t="{STATS}">
    <t:interfaces>
      <t:interface t:ifName="eth0" t:ifType="ethernet">
        <t:ifInOctets>45621</t:ifInOctets><t:ifOutOctets>774344</t:ifOutOctets>
      </t:interface>
      <t:interface t:ifName="eth1" t:ifType="ethernet">
        <t:ifInOctets>1</t:ifInOctets><t:ifOutOctets>2</t:ifOutOctets>
      </t:interface>
    </t:interfaces>
  </t:top>
  <top xmlns="{OTHER}"><users><user><name>zed</name></user></users></top>
  <hostname xmlns="{OTHER}">router1</hostname>
</data>
"""

Norm = tuple[str, tuple[tuple[str, str], ...], str, tuple[Any, ...]]


def norm(el: etree._Element) -> Norm:
    """Prefix-independent shape of a tree."""
    return (
        el.tag,
        tuple(sorted((str(k), str(v)) for k, v in el.attrib.items())),
        (el.text or "").strip(),
        tuple(norm(c) for c in el),
    )


def data() -> etree._Element:
    return parse_message(DATA.encode())


def parse(xml: str) -> etree._Element:
    return parse_message(xml.encode())


def expected(body: str) -> Norm:
    return norm(parse(f'<data xmlns="{NC_NS}">{body}</data>'))


def subtree(body: str) -> etree._Element:
    return parse(f'<filter xmlns="{NC_NS}" type="subtree">{body}</filter>')


def user_keys(node: etree._Element) -> tuple[str, ...]:
    return ("name",) if etree.QName(node).localname in ("user", "group") else ()


def users(*entries: str) -> str:
    return f'<top xmlns="{CFG}"><users>{"".join(entries)}</users></top>'


FRED = (
    "<user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name>"
    "<company-info><dept>2</dept><id>2</id></company-info></user>"
)
ALL_USERS = users(
    "<user><name>root</name><type>superuser</type><full-name>Charlie Root</full-name>"
    "<company-info><dept>1</dept><id>1</id></company-info></user>",
    FRED,
    "<user><name>barney</name><type>admin</type><full-name>Barney Rubble</full-name>"
    "<company-info><dept>2</dept><id>3</id></company-info></user>",
)
ETH0 = (
    f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth0" t:ifType="ethernet">'
    "<t:ifInOctets>45621</t:ifInOctets><t:ifOutOctets>774344</t:ifOutOctets>"
    "</t:interface></t:interfaces></t:top>"
)

# (id, filter body, expected <data> body, use key_names)
SUBTREE_CASES = [
    ("rfc-6.4.2-empty-filter", "", "", False),
    ("rfc-6.4.2-blank-filter", "  \n ", "", False),
    ("rfc-6.4.3-entire-users", f'<top xmlns="{CFG}"><users/></top>', ALL_USERS, False),
    (
        "rfc-6.4.4-all-names",
        f'<top xmlns="{CFG}"><users><user><name/></user></users></top>',
        users(*(f"<user><name>{n}</name></user>" for n in ("root", "fred", "barney"))),
        False,
    ),
    (
        "rfc-6.4.5-one-user",
        f'<top xmlns="{CFG}"><users><user><name>fred</name></user></users></top>',
        users(FRED),
        False,
    ),
    (
        "rfc-6.4.6-elements-of-one-user",
        f'<top xmlns="{CFG}"><users><user><name>fred</name><type/><full-name/>'
        "</user></users></top>",
        users(
            "<user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name></user>"
        ),
        False,
    ),
    (
        "rfc-6.4.7-multiple-subtrees",
        f'<top xmlns="{CFG}"><users>'
        "<user><name>root</name><company-info/></user>"
        "<user><name>fred</name><company-info><id/></company-info></user>"
        "<user><name>barney</name><type>superuser</type><company-info><dept/></company-info></user>"
        "</users></top>",
        users(
            "<user><name>root</name><company-info><dept>1</dept><id>1</id></company-info></user>",
            "<user><name>fred</name><company-info><id>2</id></company-info></user>",
        ),
        False,
    ),
    (
        "rfc-6.4.8-attribute-naming",
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth0"/>'
        "</t:interfaces></t:top>",
        ETH0,
        False,
    ),
    (
        "attribute-match-no-value-match",
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth9"/>'
        "</t:interfaces></t:top>",
        "",
        False,
    ),
    (
        "attribute-match-unqualified-name-differs",
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface ifName="eth0"/>'
        "</t:interfaces></t:top>",
        "",
        False,
    ),
    (
        "attribute-match-on-containment-node",
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth1">'
        "<t:ifInOctets/></t:interface></t:interfaces></t:top>",
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth1" t:ifType="ethernet">'
        "<t:ifInOctets>1</t:ifInOctets></t:interface></t:interfaces></t:top>",
        False,
    ),
    (
        "selection-without-keys",
        f'<top xmlns="{CFG}"><users><user><type/></user></users></top>',
        users(*(f"<user><type>{t}</type></user>" for t in ("superuser", "admin", "admin"))),
        False,
    ),
    (
        "selection-with-keys",
        f'<top xmlns="{CFG}"><users><user><type/></user></users></top>',
        users(
            *(
                f"<user><name>{n}</name><type>{t}</type></user>"
                for n, t in (("root", "superuser"), ("fred", "admin"), ("barney", "admin"))
            )
        ),
        True,
    ),
    (
        "content-match-non-key",
        f'<top xmlns="{CFG}"><users><user><type>admin</type><full-name/></user></users></top>',
        users(
            "<user><name>fred</name><type>admin</type>"
            "<full-name>Fred Flintstone</full-name></user>",
            "<user><name>barney</name><type>admin</type>"
            "<full-name>Barney Rubble</full-name></user>",
        ),
        True,
    ),
    (
        "content-match-siblings-anded",
        f'<top xmlns="{CFG}"><users><user><type>admin</type><name>root</name></user></users></top>',
        "",
        False,
    ),
    (
        "content-match-whitespace-trimmed",
        f'<top xmlns="{CFG}"><users><user><name>\n  fred  \n</name></user></users></top>',
        users(FRED),
        False,
    ),
    (
        "content-match-nested",
        f'<top xmlns="{CFG}"><users><user><company-info><dept>2</dept></company-info>'
        "</user></users></top>",
        users(
            "<user><name>fred</name><company-info><dept>2</dept><id>2</id></company-info></user>",
            "<user><name>barney</name><company-info><dept>2</dept><id>3</id></company-info></user>",
        ),
        True,
    ),
    (
        "leaf-list-content-match-selects-matching-instance",
        f'<top xmlns="{CFG}"><groups><group><tag>b</tag><name/></group></groups></top>',
        f'<top xmlns="{CFG}"><groups><group><name>admin</name><tag>b</tag></group>'
        "<group><name>wheel</name><tag>b</tag></group></groups></top>",
        False,
    ),
    (
        "leaf-list-selection-selects-all-instances",
        f'<top xmlns="{CFG}"><groups><group><name>admin</name><tag/></group></groups></top>',
        f'<top xmlns="{CFG}"><groups><group><name>admin</name><tag>a</tag><tag>b</tag>'
        "<tag>c</tag></group></groups></top>",
        False,
    ),
    (
        "union-of-two-filter-nodes-on-one-entry",
        f'<top xmlns="{CFG}"><users><user><name>fred</name><type/></user>'
        "<user><name>fred</name><full-name/></user></users></top>",
        users(
            "<user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name></user>"
        ),
        False,
    ),
    (
        "containment-with-nothing-below-is-dropped",
        f'<top xmlns="{CFG}"><users><user><missing/></user></users></top>',
        "",
        False,
    ),
    (
        "multiple-top-level-filter-nodes",
        f'<top xmlns="{CFG}"><groups><group><name>wheel</name></group></groups></top>'
        f'<t:top xmlns:t="{STATS}"><t:interfaces><t:interface t:ifName="eth0"/></t:interfaces>'
        "</t:top>",
        f'<top xmlns="{CFG}"><groups><group><name>wheel</name><tag>b</tag></group></groups></top>'
        + ETH0,
        False,
    ),
    (
        "top-level-content-match-leaf",
        f'<hostname xmlns="{OTHER}">router1</hostname>',
        f'<hostname xmlns="{OTHER}">router1</hostname>',
        False,
    ),
    ("top-level-content-mismatch", f'<hostname xmlns="{OTHER}">r2</hostname>', "", False),
    (
        "namespace-qualified-selects-one-module",
        f'<top xmlns="{OTHER}"/>',
        f'<top xmlns="{OTHER}"><users><user><name>zed</name></user></users></top>',
        False,
    ),
    ("namespace-wrong", '<top xmlns="urn:example:nowhere"/>', "", False),
    (
        "namespace-unqualified-matches-every-module",
        '<top xmlns=""><users><user><name/></user></users></top>',
        users(*(f"<user><name>{n}</name></user>" for n in ("root", "fred", "barney")))
        + f'<top xmlns="{OTHER}"><users><user><name>zed</name></user></users></top>',
        False,
    ),
    (
        "namespace-inherited-base-ns-matches-like-unqualified",
        "<hostname/>",
        f'<hostname xmlns="{OTHER}">router1</hostname>',
        False,
    ),
    (
        "comments-in-filter-are-ignored",
        f'<top xmlns="{CFG}"><!-- c --><users><user><name>fred</name><!-- c --></user></users>'
        "</top>",
        users(FRED),
        False,
    ),
]


@pytest.mark.parametrize(
    ("body", "want", "keys"),
    [c[1:] for c in SUBTREE_CASES],
    ids=[c[0] for c in SUBTREE_CASES],
)
def test_subtree_filter(body: str, want: str, keys: bool) -> None:
    src = data()
    before = etree.tostring(src)
    out = subtree_filter(src, subtree(body), user_keys if keys else None)
    assert norm(out) == expected(want)
    assert etree.tostring(src) == before  # input untouched


def test_subtree_filter_with_comment_nodes_built_by_caller() -> None:
    flt = etree.Element(f"{{{NC_NS}}}filter")
    top = etree.SubElement(flt, f"{{{CFG}}}top")
    top.append(etree.Comment("only a comment"))
    flt.append(etree.Comment("c"))
    out = subtree_filter(data(), flt)
    assert norm(out) == expected(ALL_USERS.replace("</top>", "") + _GROUPS + "</top>")


_GROUPS = (
    "<groups><group><name>admin</name><tag>a</tag><tag>b</tag><tag>c</tag></group>"
    "<group><name>wheel</name><tag>b</tag></group></groups>"
)


def test_output_is_a_fresh_tree() -> None:
    src = data()
    out = subtree_filter(src, subtree(f'<top xmlns="{CFG}"><users/></top>'))
    assert out.getroottree().getroot() is out
    out[0][0][0].find(f"{{{CFG}}}name").text = "changed"  # type: ignore[union-attr]
    assert b"changed" not in etree.tostring(src)


def test_output_keeps_the_data_prefixes() -> None:
    out = subtree_filter(data(), subtree(f'<t:top xmlns:t="{STATS}"><t:interfaces/></t:top>'))
    text = etree.tostring(out).decode()
    assert "ns0" not in text
    assert f'xmlns:t="{STATS}"' in text
    out2 = subtree_filter(
        data(), subtree(f'<top xmlns="{CFG}"><users><user><name/></user></users></top>')
    )
    assert "ns0" not in etree.tostring(out2).decode()


def test_keys_are_only_added_to_list_entries() -> None:
    calls: list[str] = []

    def keys(node: etree._Element) -> tuple[str, ...]:
        calls.append(etree.QName(node).localname)
        return user_keys(node)

    subtree_filter(
        data(), subtree(f'<top xmlns="{CFG}"><users><user><type/></user></users></top>'), keys
    )
    assert set(calls) == {"top", "users", "user"}


# --- XPath ------------------------------------------------------------------------------------

NS = {"c": CFG, "s": STATS, "o": OTHER}

# (id, select, expected <data> body, use key_names)
XPATH_CASES = [
    ("absolute-entry", "/c:top/c:users/c:user[c:name='fred']", users(FRED), False),
    ("relative-entry", "c:top/c:users/c:user[c:name = 'fred']", users(FRED), False),
    (
        "leaf-with-keys",
        "/c:top/c:users/c:user/c:type",
        users(
            *(
                f"<user><name>{n}</name><type>{t}</type></user>"
                for n, t in (("root", "superuser"), ("fred", "admin"), ("barney", "admin"))
            )
        ),
        True,
    ),
    (
        "leaf-without-keys",
        "/c:top/c:users/c:user[c:name='root']/c:type",
        users("<user><type>superuser</type></user>"),
        False,
    ),
    (
        "descendant",
        "//c:id[. > 1]",
        users(
            "<user><name>fred</name><company-info><id>2</id></company-info></user>",
            "<user><name>barney</name><company-info><id>3</id></company-info></user>",
        ),
        True,
    ),
    (
        "union-and-overlap",
        "/c:top/c:groups/c:group[c:name='wheel'] | /c:top/c:groups/c:group[c:name='wheel']/c:tag"
        " | /o:hostname",
        f'<top xmlns="{CFG}"><groups><group><name>wheel</name><tag>b</tag></group></groups></top>'
        f'<hostname xmlns="{OTHER}">router1</hostname>',
        False,
    ),
    (
        "absolute-path-inside-predicate",
        "/c:top/c:users/c:user[c:name = /o:top/o:users/o:user/c:name or c:type = 'superuser']"
        "/c:full-name",
        users("<user><name>root</name><full-name>Charlie Root</full-name></user>"),
        True,
    ),
    (
        "text-node-selects-its-leaf",
        "/o:hostname/text()",
        f'<hostname xmlns="{OTHER}">router1</hostname>',
        False,
    ),
    (
        "attribute-selects-its-element",
        "/s:top/s:interfaces/s:interface[@s:ifName='eth0']/@s:ifName",
        ETH0,
        False,
    ),
    ("nothing", "/c:top/c:nope", "", False),
    ("position", "/c:top/c:users/c:user[2]", users(FRED), False),
    (
        "operator-names-as-steps",
        "/c:top/c:users/c:user[c:name='fred' and 1 div 1 = 1]",
        users(FRED),
        False,
    ),
]


@pytest.mark.parametrize(
    ("select", "want", "keys"),
    [c[1:] for c in XPATH_CASES],
    ids=[c[0] for c in XPATH_CASES],
)
def test_xpath_filter(select: str, want: str, keys: bool) -> None:
    src = data()
    before = etree.tostring(src)
    out = xpath_filter(src, select, NS, user_keys if keys else None)
    assert norm(out) == expected(want)
    assert etree.tostring(src) == before


@pytest.mark.parametrize("select", ["/", ".", "/ | /c:top", "/*/..", "//*"])
def test_xpath_selecting_the_root_returns_everything(select: str) -> None:
    src = data()
    out = xpath_filter(src, select, NS)
    assert norm(out) == norm(src)


def test_xpath_on_a_wrapper_that_is_not_the_document_root() -> None:
    outer = parse(f'<envelope><x xmlns="{CFG}"/>{DATA}</envelope>')
    inner = outer[1]
    out = xpath_filter(inner, "/c:top/c:users/c:user[c:name='fred'] | //c:x", NS)
    assert norm(out) == expected(users(FRED))


@pytest.mark.parametrize(
    "select",
    [
        "count(//c:user)",
        "boolean(/c:top)",
        "string(/o:hostname)",
        "/c:top[",
        "/x:top",
        "$nope",
        "no-such-function()",
        "re:test(/o:hostname, 'r.*')",
        "",
        "1 +",
    ],
    ids=[
        "number",
        "boolean",
        "string",
        "syntax",
        "undefined-prefix",
        "undefined-variable",
        "unknown-function",
        "exslt-regex-disabled",
        "empty",
        "incomplete",
    ],
)
def test_xpath_errors_are_invalid_value(select: str) -> None:
    with pytest.raises(NetconfRpcError) as err:
        xpath_filter(data(), select, NS | {"re": "http://exslt.org/regular-expressions"})
    assert err.value.tag == "invalid-value"


# --- apply_filter dispatch ------------------------------------------------------------------


def test_apply_filter_without_filter_copies_everything() -> None:
    src = data()
    out = apply_filter(src, None)
    assert out is not src
    assert norm(out) == norm(src)


def test_apply_filter_xpath_uses_the_filter_namespaces() -> None:
    flt = parse(
        f'<filter xmlns="{NC_NS}" xmlns:u="{CFG}" type="xpath" '
        "select=\"/u:top/u:users/u:user[u:name='fred']\"/>"
    )
    assert norm(apply_filter(data(), flt)) == expected(users(FRED))
    flt_nc = parse(
        f'<nc:filter xmlns:nc="{NC_NS}" xmlns:u="{CFG}" nc:type="xpath" '
        "nc:select=\"/u:top/u:users/u:user[u:name='fred']\"/>"
    )
    assert norm(apply_filter(data(), flt_nc)) == expected(users(FRED))


def test_apply_filter_subtree_is_the_default_type() -> None:
    flt = parse(f'<filter xmlns="{NC_NS}"><top xmlns="{CFG}"><users/></top></filter>')
    assert norm(apply_filter(data(), flt)) == expected(ALL_USERS)


def test_apply_filter_xpath_without_select() -> None:
    with pytest.raises(NetconfRpcError) as err:
        apply_filter(data(), parse(f'<filter xmlns="{NC_NS}" type="xpath"/>'))
    assert err.value.tag == "missing-attribute"
    assert err.value.info == {"bad-attribute": "select", "bad-element": "filter"}


def test_apply_filter_unknown_type() -> None:
    with pytest.raises(NetconfRpcError) as err:
        apply_filter(data(), parse(f'<filter xmlns="{NC_NS}" type="regex"/>'))
    assert err.value.tag == "bad-attribute"
    assert err.value.info == {"bad-attribute": "type", "bad-element": "filter"}


def test_output_follows_data_order_not_filter_order() -> None:
    entries = "".join(f"<user><name>u{i}</name><type>t</type></user>" for i in range(40))
    src = parse(f'<data xmlns="{NC_NS}"><top xmlns="{CFG}"><users>{entries}</users></top></data>')
    for picks in ([30, 3, 17], list(range(39, -1, -2))):
        body = "".join(f"<user><name>u{i}</name></user>" for i in picks)
        out = subtree_filter(src, subtree(f'<top xmlns="{CFG}"><users>{body}</users></top>'))
        names = [u.findtext(f"{{{CFG}}}name") for u in out[0][0]]
        assert names == [f"u{i}" for i in sorted(picks)]


def test_large_list_filtering_is_linear() -> None:
    entries = "".join(f"<user><name>u{i}</name><type>t</type></user>" for i in range(20_000))
    src = parse(f'<data xmlns="{NC_NS}"><top xmlns="{CFG}"><users>{entries}</users></top></data>')
    out = subtree_filter(
        src, subtree(f'<top xmlns="{CFG}"><users><user><name>u19999</name></user></users></top>')
    )
    assert len(out[0][0]) == 1


def test_deeply_nested_xpath_is_refused() -> None:
    src = data()
    expr = "//*" + "[count(//*" * 4 + ")>0]" * 4
    with pytest.raises(NetconfRpcError) as err:
        xpath_filter(src, expr, NS)
    assert err.value.tag == "invalid-value"
    xpath_filter(src, "//*[count(//*[count(//*)>0])>0]", NS)  # depth 4 is still served


@pytest.mark.parametrize("select", ["/c:top\x00", "//*[c:name='\x01']", "/c:top/c:users\x1f"])
def test_xpath_with_a_control_character_is_invalid_value(select: str) -> None:
    """Found by fuzzing: lxml raised ValueError (no XML attribute can carry one, but the
    function must still answer with an rpc-error)."""
    with pytest.raises(NetconfRpcError) as exc:
        xpath_filter(data(), select, NS)
    assert exc.value.tag == "invalid-value"
