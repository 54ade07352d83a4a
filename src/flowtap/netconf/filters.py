"""NETCONF retrieval filters on lxml trees: subtree (RFC 6241 §6) and XPath (§8.9).

Both filters take the datastore as a wrapper element ``data`` whose children are the top-level
data nodes (the conceptual root), and return a *fresh* element with the same tag whose children
are the selected nodes, their ancestors and, for list entries that are only partly selected, the
entry's keys (``key_names(entry)`` gives the key leaves' local names; the schema lives with the
caller). The input is never modified. Fully selected subtrees are copied in C (``__copy__``);
ancestors are rebuilt as shallow elements, so unselected data is never copied. Output keeps data
order.

Subtree semantics and the choices made where RFC 6241 is silent:

- A filter node without a namespace, or in the NETCONF base namespace (filter content that
  inherited ``<rpc xmlns=...>``), matches a data node of that local name in any namespace, at
  every level, as netopeer2 and ConfD do for top-level nodes. No YANG data lives in base:1.0.
- Top-level filter nodes are independent filters (netopeer2 turns each into its own XPath); a
  top-level content-match node selects just the matching top-level leaf. Below the top,
  sibling content-match nodes are ANDed and follow §6.2.5 (only content matches: the whole
  parent is selected; otherwise the matched leaves plus the selection/containment siblings).
- Content-match values are compared after stripping XML whitespace on both sides.
- Attributes on a filter node are attribute-match expressions, compared by exact (Clark) name.
- A containment node is kept only when something below it is selected; several filter nodes
  matching one data node contribute the union of their selections (§6.4.7).
- An empty filter selects nothing (§6.4.2).

XPath: evaluated with the wrapper as context node, so relative paths start at the root; absolute
paths are rewritten to start at the wrapper, which need not be a document root. Prefixes come
from the filter element's in-scope namespaces; unprefixed names mean no namespace (XPath 1.0).
A text or attribute result selects the element that holds it. EXSLT regular expressions are off.
XPath 1.0 lets a client write quadratic expressions (``//*[count(//*)]``); bounding the CPU time
of one RPC is the session layer's job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, TypeAlias, cast

from lxml import etree

from flowtap.errors import NetconfRpcError
from flowtap.netconf.xmlparse import NC_NS

KeyNames: TypeAlias = Callable[[etree._Element], Sequence[str]]

# Selected children of a node: None means the whole subtree, a dict a partial selection.
_Tree: TypeAlias = "dict[etree._Element, _Tree | None]"

_XML_WS: Final = " \t\r\n"
_ROOT_VAR: Final = "flowtap-root"
_FEW: Final = 16  # up to this many selected siblings, order them by index() instead of a walk
_TYPE_ATTRS: Final = ("type", f"{{{NC_NS}}}type")
_SELECT_ATTRS: Final = ("select", f"{{{NC_NS}}}select")


def _split(tag: str) -> tuple[str | None, str]:
    if tag[0] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def _merge(tree: _Tree, node: etree._Element, sub: _Tree | None) -> None:
    if node not in tree:
        tree[node] = sub
        return
    current = tree[node]
    if current is None:
        return
    if sub is None:
        tree[node] = None
        return
    for child, child_sub in sub.items():
        _merge(current, child, child_sub)


# --- subtree filters ----------------------------------------------------------------------


@dataclass(slots=True)
class _FilterNode:
    # lxml tag pattern: the Clark name, or "{*}local" for any namespace (or none).
    pattern: str
    attrs: list[tuple[str, str]]
    text: str | None = None  # set for a content-match node
    children: _FilterSet | None = None  # set for a containment node

    def candidates(self, parent: etree._Element) -> Iterator[etree._Element]:
        """Children of parent that this node matches by name and attribute-match expressions."""
        children = parent.iterchildren(self.pattern)
        if not self.attrs:
            return children
        return (c for c in children if all(c.get(k) == v for k, v in self.attrs))


@dataclass(slots=True)
class _FilterSet:
    content: list[_FilterNode] = field(default_factory=list)
    others: list[_FilterNode] = field(default_factory=list)  # selection and containment


def _compile(parent: etree._Element) -> _FilterSet:
    fset = _FilterSet()
    for child in parent:
        tag = child.tag
        if type(tag) is not str:
            continue  # comment or PI in a filter built by a caller
        ns, local = _split(tag)
        pattern = tag if ns is not None and ns != NC_NS else f"{{*}}{local}"
        node = _FilterNode(pattern, cast("list[tuple[str, str]]", child.items()))
        if len(child):
            # A node whose only children are comments ends up with an empty set: a selection.
            node.children = _compile(child)
            fset.others.append(node)
            continue
        text = (child.text or "").strip(_XML_WS)
        if text:
            node.text = text
            fset.content.append(node)
        else:
            fset.others.append(node)
    return fset


def _content_hits(parent: etree._Element, fnode: _FilterNode) -> list[etree._Element]:
    value = fnode.text
    return [c for c in fnode.candidates(parent) if (c.text or "").strip(_XML_WS) == value]


def _select_below(parent: etree._Element, fset: _FilterSet) -> _Tree | None:
    """Selection under a data node matched by a containment node; {} excludes that node."""
    result: _Tree = {}
    for fnode in fset.content:
        hits = _content_hits(parent, fnode)
        if not hits:
            return {}  # content-match nodes are ANDed (RFC 6241 §6.2.5)
        for hit in hits:
            result[hit] = None
    if not fset.others:
        return None  # only content-match nodes: the whole parent
    for fnode in fset.others:
        for child in fnode.candidates(parent):
            sub = None if fnode.children is None else _select_below(child, fnode.children)
            if sub is None or sub:
                _merge(result, child, sub)
    return result


def _select_top(data: etree._Element, fset: _FilterSet) -> _Tree:
    result: _Tree = {}
    for fnode in fset.content:
        for hit in _content_hits(data, fnode):
            result[hit] = None
    for fnode in fset.others:
        for child in fnode.candidates(data):
            sub = None if fnode.children is None else _select_below(child, fnode.children)
            if sub is None or sub:
                _merge(result, child, sub)
    return result


def subtree_filter(
    data: etree._Element, filter_el: etree._Element, key_names: KeyNames | None = None
) -> etree._Element:
    """Apply the subtree filter whose top-level nodes are ``filter_el``'s children."""
    return _build(data, _select_top(data, _compile(filter_el)), key_names)


# --- XPath filters ------------------------------------------------------------------------

_NAME: Final = r"[^\W\d][\w.\-\u00B7]*"
_TOKENS: Final = re.compile(
    rf"""
    (?P<ws>\s+)
  | (?P<literal>"[^"]*"|'[^']*')
  | (?P<number>\d+(?:\.\d*)?|\.\d+)
  | (?P<slash>//?)
  | (?P<open>::|[(\[,@])
  | (?P<dot>\.\.?)
  | (?P<close>[)\]])
  | (?P<var>\${_NAME}(?::{_NAME})?)
  | (?P<name>{_NAME}(?::(?:\*|{_NAME}))?)
  | (?P<operator>!=|<=|>=|[=<>+|-])
  | (?P<star>\*)
  | (?P<other>.)
    """,
    re.VERBOSE,
)


def _anchor_absolute_paths(expr: str) -> str:
    """Make absolute location paths start at ``$flowtap-root`` instead of the document root.

    Applies the XPath 1.0 lexical rule (§3.7) that tells a path's leading ``/`` from a step
    separator, and ``*``/``and``/``or``/``div``/``mod`` operators from name tests.
    """
    tokens = [(m.lastgroup or "other", m.group()) for m in _TOKENS.finditer(expr)]
    out: list[str] = []
    prev = "open"  # at the start, as after '(': a '/' begins an absolute path
    for i, (kind, text) in enumerate(tokens):
        if kind == "ws":
            out.append(text)
            continue
        if kind == "slash" and prev != "operand":
            nxt_kind, nxt_text = next(((k, t) for k, t in tokens[i + 1 :] if k != "ws"), ("", ""))
            step = text == "//" or nxt_kind in ("name", "star", "dot") or nxt_text == "@"
            # The leading blank keeps e.g. "or/b" from fusing into one name.
            out.append(f" ${_ROOT_VAR}{text}" if step else f" ${_ROOT_VAR}")
            prev = "operator" if step else "operand"
            continue
        name_test = kind == "name" and prev != "operand" and ":" not in text
        out.append(_any_namespace(tokens, i, text) if name_test else text)
        if kind in ("name", "star"):
            prev = "operator" if prev == "operand" else "operand"
        elif kind in ("open", "operator", "slash"):
            prev = "open" if kind == "open" else "operator"
        else:
            prev = "operand"
    return "".join(out)


def _any_namespace(tokens: list[tuple[str, str]], i: int, name: str) -> str:
    """An unprefixed element name test matches that name in any namespace, as netopeer2 and
    ConfD do (netconf-console2 ``-x /system/host-name``); functions, axes and attributes are
    left alone."""
    before = next((t for k, t in reversed(tokens[:i]) if k != "ws"), "")
    after = next((t for k, t in tokens[i + 1 :] if k != "ws"), "")
    if after in ("(", "::") or before in ("@", "::"):
        return name
    return f"*[local-name()='{name}']"


# Cache keys hold only the prefixes an expression can use, and only short expressions are cached:
# keyed on every in-scope declaration of the request (up to the message cap each), 256 entries
# grew the server by ~75 MB per request (SECURITY.md N5, N8).
_PREFIX_USE: Final = re.compile(rf"({_NAME}):")
_MAX_CACHED_SELECT: Final = 1024


@lru_cache(maxsize=256)
def _compile_xpath(select: str, namespaces: tuple[tuple[str, str], ...]) -> etree.XPath:
    return etree.XPath(
        _anchor_absolute_paths(select),
        namespaces=dict(namespaces),
        regexp=False,
        smart_strings=True,
    )


def _invalid_xpath(message: str) -> NetconfRpcError:
    return NetconfRpcError(
        tag="invalid-value",
        type="protocol",
        message=message,
        info={"bad-attribute": "select", "bad-element": "filter"},
    )


MAX_XPATH_NESTING = 6


def _nesting(expr: str) -> int:
    """Deepest nesting of brackets and parentheses outside string literals."""
    depth = deepest = 0
    for match in _TOKENS.finditer(expr):
        text = match.group()
        if match.lastgroup == "literal":
            continue
        if text in ("(", "["):
            depth += 1
            deepest = max(deepest, depth)
        elif text in (")", "]"):
            depth -= 1
    return deepest


def xpath_filter(
    data: etree._Element,
    select: str,
    namespaces: Mapping[str, str] | Mapping[str | None, str],
    key_names: KeyNames | None = None,
) -> etree._Element:
    """Apply an XPath filter; ``namespaces`` maps prefixes (the None key is ignored)."""
    if _nesting(select) > MAX_XPATH_NESTING:
        # every nested predicate over // multiplies the work: bound it, the loop is shared
        raise _invalid_xpath(f"XPath filter nests deeper than {MAX_XPATH_NESTING} levels")
    used = set(_PREFIX_USE.findall(select))
    nsmap = tuple(sorted((p, u) for p, u in namespaces.items() if p and p in used))
    compile_xpath = (_compile_xpath if len(select) <= _MAX_CACHED_SELECT
                     else _compile_xpath.__wrapped__)  # fmt: skip
    root: Any = [data]  # a node-set variable; lxml-stubs type the list invariantly
    try:
        result = compile_xpath(select, nsmap)(data, **{_ROOT_VAR: root})
    except etree.XPathError as exc:
        raise _invalid_xpath(f"invalid XPath filter: {exc}") from None
    if not isinstance(result, list):
        raise _invalid_xpath("XPath filter does not select a node-set")
    nodes: list[etree._Element] = []
    for item in result:
        if isinstance(item, etree._Element):
            nodes.append(item)
        elif isinstance(item, etree._ElementUnicodeResult):
            holder = item.getparent()
            if holder is not None and not item.is_tail:
                nodes.append(holder)
    return _build(data, _tree_of(data, nodes), key_names)


def _tree_of(data: etree._Element, nodes: Iterable[etree._Element]) -> _Tree | None:
    """Selection tree of nodes and their ancestors below data; None when data itself is chosen."""
    tree: _Tree = {}
    for node in nodes:
        if node is data:
            return None
        path = [node]
        parent = node.getparent()
        while parent is not None and parent is not data:
            path.append(parent)
            parent = parent.getparent()
        if parent is None:
            continue  # outside the datastore
        level = tree
        for ancestor in reversed(path[1:]):
            sub = level.setdefault(ancestor, {})
            if sub is None:
                break  # an ancestor is already selected whole
            level = sub
        else:
            level[node] = None
    return tree


# --- dispatch and output ------------------------------------------------------------------


def apply_filter(
    data: etree._Element, filter_el: etree._Element | None, key_names: KeyNames | None = None
) -> etree._Element:
    """Apply an optional ``<filter>`` element of get/get-config: none, subtree or xpath."""
    if filter_el is None:
        return _build(data, None, key_names)
    ftype = next((v for v in map(filter_el.get, _TYPE_ATTRS) if v is not None), "subtree")
    if ftype == "subtree":
        return subtree_filter(data, filter_el, key_names)
    if ftype == "xpath":
        select = next((v for v in map(filter_el.get, _SELECT_ATTRS) if v is not None), None)
        if select is None:
            raise NetconfRpcError(
                tag="missing-attribute",
                type="protocol",
                message="xpath filter has no select attribute",
                info={"bad-attribute": "select", "bad-element": "filter"},
            )
        return xpath_filter(data, select, filter_el.nsmap, key_names)
    raise NetconfRpcError(
        tag="bad-attribute",
        type="protocol",
        message="filter type must be subtree or xpath",
        info={"bad-attribute": "type", "bad-element": "filter"},
    )


# lxml's C-level deep copy of one node (absent from lxml-stubs); copy.deepcopy would add a memo
# dict and a dispatch per call.
_Copy: TypeAlias = Callable[[etree._Element], etree._Element]
_copy_node: Final[_Copy] = etree._Element.__copy__  # type: ignore[attr-defined]


def _nsmap(prefix: str | None, ns: str) -> Mapping[str, str]:
    # lxml takes None for the default namespace; lxml-stubs only allows str keys.
    return cast("Mapping[str, str]", {prefix: ns})


def _build(data: etree._Element, tree: _Tree | None, key_names: KeyNames | None) -> etree._Element:
    if tree is None:
        whole = _copy_node(data)
        whole.tail = None
        return whole
    ns, _ = _split(data.tag)
    out = etree.Element(data.tag, nsmap=_nsmap(data.prefix, ns) if ns else None)
    for node, sub in _in_data_order(data, tree):
        _emit(node, sub, out, ns, key_names)
    return out


def _in_data_order(
    parent: etree._Element, tree: _Tree
) -> Iterable[tuple[etree._Element, _Tree | None]]:
    if len(tree) == 1:
        return tree.items()
    if len(tree) <= _FEW:
        # index() scans in C without creating proxies; cheaper than walking a long list in Python.
        return sorted(tree.items(), key=lambda item: parent.index(item[0]))
    return ((c, tree[c]) for c in parent.iterchildren(etree.Element) if c in tree)


def _emit(
    node: etree._Element,
    sub: _Tree | None,
    out_parent: etree._Element,
    parent_ns: str | None,
    key_names: KeyNames | None,
) -> None:
    if sub is None:
        copy = _copy_node(node)
        copy.tail = None
        out_parent.append(copy)
        return
    ns, _ = _split(node.tag)
    # Declare the namespace with the data's own prefix; lxml would otherwise invent ns0.
    nsmap = _nsmap(node.prefix, ns) if ns and ns != parent_ns else None
    attrib = {str(k): str(v) for k, v in node.attrib.items()} if node.attrib else None
    shell = etree.SubElement(out_parent, node.tag, attrib, nsmap=nsmap)
    if key_names is not None:
        keys = key_names(node)
        if keys:
            sub = dict(sub)
            for child in node.iterchildren(etree.Element):
                child_ns, child_local = _split(child.tag)
                if child_local in keys and child_ns == ns and child not in sub:
                    sub[child] = None
    for child, child_sub in _in_data_order(node, sub):
        _emit(child, child_sub, shell, ns, key_names)
