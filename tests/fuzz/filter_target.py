"""Fuzz target: NETCONF subtree and XPath filters on a fixed datastore tree.

The tree is the in-process server's running configuration (factory default plus the examples).
The first input byte picks the mode:
- 0: the rest is a ``<filter>`` document (parsed by the hardened parser) for ``apply_filter``;
- 1: the rest is an XPath expression (UTF-8, at most MAX_SELECT characters, characters XML
  cannot carry removed) for ``xpath_filter``;
- 2: the rest picks XPath tokens one byte each (names of the tree, axes, functions, operators),
  which reaches the evaluator far more often than raw bytes do.

Documented outcome: a fresh ``<data>`` tree or ``NetconfRpcError``. Invariants: the output is
within the input (every output element matches an input element at the same place, with the same
attributes, and the same text when it has any), and the input tree is never modified.

XPath 1.0 lets a client write expressions whose cost is a power of the tree size; bounding that is
the session layer's job (issue 13), not a crash. Expressions with more than MAX_EXPENSIVE
descendant-like steps are skipped so that one input cannot stall the run.
"""

from __future__ import annotations

import re

from lxml import etree

from flowtap.errors import NetconfRpcError
from flowtap.netconf.filters import apply_filter, xpath_filter
from flowtap.netconf.xmlparse import parse_message
from tests.fuzz.netconf_server import fixed_server
from tests.fuzz.support import ByteReader, check

MAX_SELECT = 160
MAX_EXPENSIVE = 2
# What an XML attribute value (the select of a <filter>) can hold: control characters never reach
# xpath_filter from the wire, and lxml refuses them with a ValueError.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_EXPENSIVE = re.compile(r"//|\.\.|descendant|ancestor|following|preceding|\bid\s*\(")

_STATIC_TOKENS = (
    "/", "//", "*", ".", "..", "@", "[", "]", "(", ")", ",", "|", "=", "!=", "<", ">", "+", "-",
    " and ", " or ", " div ", " mod ", "1", "2", "0", "-1", "1.5", "'0'", "'lo'", "\"x\"",
    "child::", "self::", "parent::", "attribute::", "descendant::", "ancestor::",
    "following-sibling::", "preceding-sibling::", "namespace::", "text()", "node()",
    "count(", "last()", "position()", "name(", "local-name(", "namespace-uri(", "string(",
    "concat(", "contains(", "starts-with(", "substring(", "string-length(", "normalize-space(",
    "translate(", "not(", "true()", "false()", "number(", "sum(", "boolean(", "lang(", "id(",
    "$flowtap-root", "$x", "sys:", "if:", "svc:", "nc:", "ns0:",
)  # fmt: skip


def _names(tree: etree._Element) -> tuple[str, ...]:
    names = {etree.QName(el).localname for el in tree.iter(etree.Element)}
    return tuple(sorted(names))


_tokens: tuple[str, ...] | None = None


def _token_expression(reader: ByteReader, tree: etree._Element) -> str:
    global _tokens
    if _tokens is None:
        _tokens = _STATIC_TOKENS + _names(tree)
    parts: list[str] = []
    while not reader.exhausted and len(parts) < 40:
        parts.append(reader.pick(_tokens))
    return "".join(parts)


def _within(out: etree._Element, src: etree._Element) -> bool:
    if out.tag != src.tag or dict(out.attrib) != dict(src.attrib):
        return False
    if out.text is not None and out.text != src.text:
        return False
    return all(any(_within(o, s) for s in src) for o in out)


def _run(data: bytes) -> etree._Element | None:
    server = fixed_server()
    tree = server.data_tree()
    reader = ByteReader(data)
    mode = reader.byte() % 3
    if mode == 0:
        try:
            filter_el = parse_message(reader.rest())
        except NetconfRpcError:
            return None
        return apply_filter(tree, filter_el, server.ctx.key_names)
    if mode == 1:
        text = reader.rest().decode("utf-8", "replace")[:MAX_SELECT]
        select = _NOT_XML_CHAR.sub("", text)
    else:
        select = _token_expression(reader, tree)
    if len(_EXPENSIVE.findall(select)) > MAX_EXPENSIVE:
        return None
    return xpath_filter(tree, select, server.ctx.default_namespaces, server.ctx.key_names)


def fuzz_one(data: bytes) -> None:
    tree = fixed_server().data_tree()
    before = etree.tostring(tree)
    try:
        out = _run(data)
    except NetconfRpcError:
        return
    check(etree.tostring(tree) == before, "the filter modified the datastore")
    if out is None:
        return
    check(out is not tree, "the filter returned the datastore itself")
    check(_within(out, tree), "filter output is not within the datastore")
