"""Selection trees and the output both retrieval filters build from them.

A selection tree maps selected data nodes below the wrapper element ``data`` to None (the whole
subtree) or to a nested selection (only part of it). ``build`` turns one into a *fresh* element
with the wrapper's tag whose children are the selected nodes, their ancestors and, for list
entries that are only partly selected, the entry's keys (``key_names(entry)`` gives the key
leaves' local names; the schema lives with the caller). The input is never modified. Fully
selected subtrees are copied in C (``__copy__``); ancestors are rebuilt as shallow elements, so
unselected data is never copied. Output keeps data order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, TypeAlias, cast

from lxml import etree

KeyNames: TypeAlias = Callable[[etree._Element], Sequence[str]]

# Selected children of a node: None means the whole subtree, a dict a partial selection.
Tree: TypeAlias = "dict[etree._Element, Tree | None]"

_FEW: Final = 16  # up to this many selected siblings, order them by index() instead of a walk


def split(tag: str) -> tuple[str | None, str]:
    if tag[0] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def merge(tree: Tree, node: etree._Element, sub: Tree | None) -> None:
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
        merge(current, child, child_sub)


def tree_of(data: etree._Element, nodes: Iterable[etree._Element]) -> Tree | None:
    """Selection tree of nodes and their ancestors below data; None when data itself is chosen."""
    tree: Tree = {}
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


# lxml's C-level deep copy of one node (absent from lxml-stubs); copy.deepcopy would add a memo
# dict and a dispatch per call.
_Copy: TypeAlias = Callable[[etree._Element], etree._Element]
_copy_node: Final[_Copy] = etree._Element.__copy__  # type: ignore[attr-defined]


def _nsmap(prefix: str | None, ns: str) -> Mapping[str, str]:
    # lxml takes None for the default namespace; lxml-stubs only allows str keys.
    return cast("Mapping[str, str]", {prefix: ns})


def build(data: etree._Element, tree: Tree | None, key_names: KeyNames | None) -> etree._Element:
    if tree is None:
        whole = _copy_node(data)
        whole.tail = None
        return whole
    ns, _ = split(data.tag)
    out = etree.Element(data.tag, nsmap=_nsmap(data.prefix, ns) if ns else None)
    for node, sub in _in_data_order(data, tree):
        _emit(node, sub, out, ns, key_names)
    return out


def _in_data_order(
    parent: etree._Element, tree: Tree
) -> Iterable[tuple[etree._Element, Tree | None]]:
    if len(tree) == 1:
        return tree.items()
    if len(tree) <= _FEW:
        # index() scans in C without creating proxies; cheaper than walking a long list in Python.
        return sorted(tree.items(), key=lambda item: parent.index(item[0]))
    return ((c, tree[c]) for c in parent.iterchildren(etree.Element) if c in tree)


def _emit(
    node: etree._Element,
    sub: Tree | None,
    out_parent: etree._Element,
    parent_ns: str | None,
    key_names: KeyNames | None,
) -> None:
    if sub is None:
        copy = _copy_node(node)
        copy.tail = None
        out_parent.append(copy)
        return
    ns, _ = split(node.tag)
    # Declare the namespace with the data's own prefix; lxml would otherwise invent ns0.
    nsmap = _nsmap(node.prefix, ns) if ns and ns != parent_ns else None
    attrib = {str(k): str(v) for k, v in node.attrib.items()} if node.attrib else None
    shell = etree.SubElement(out_parent, node.tag, attrib, nsmap=nsmap)
    if key_names is not None:
        keys = key_names(node)
        if keys:
            sub = dict(sub)
            for child in node.iterchildren(etree.Element):
                child_ns, child_local = split(child.tag)
                if child_local in keys and child_ns == ns and child not in sub:
                    sub[child] = None
    for child, child_sub in _in_data_order(node, sub):
        _emit(child, child_sub, shell, ns, key_names)
