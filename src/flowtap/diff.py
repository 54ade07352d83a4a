"""Differences between two datastore trees, node by node, keyed by schema identity.

Used for permission checks on the diff (not on the request), for the netconf-config-change
notification, and for comparing against rollback history.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from flowtap.schema import Schema, SchemaNode


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "create", "delete" or "replace"
    node: SchemaNode
    path: str  # instance path, e.g. /fts:system/fts:login/fts:user[fts:name='bob']
    old: etree._Element | None
    new: etree._Element | None


def _identity(el: etree._Element, node: SchemaNode) -> tuple[str, ...]:
    if node.kind == "list":
        return tuple((el.findtext(f"{{{node.namespace}}}{k}") or "").strip() for k in node.keys)
    if node.kind == "leaf-list":
        return ((el.text or "").strip(),)
    return ()


def _step(node: SchemaNode, ident: tuple[str, ...]) -> str:
    if node.kind == "list":
        preds = "".join(f"[{node.prefix}:{k}='{v}']" for k, v in zip(node.keys, ident, strict=True))
        return f"/{node.prefix}:{node.name}{preds}"
    if node.kind == "leaf-list":
        return f"/{node.prefix}:{node.name}[.='{ident[0]}']"
    return f"/{node.prefix}:{node.name}"


def _index(
    schema: Schema, parent: etree._Element | None, parent_node: SchemaNode | None
) -> dict[tuple[str, tuple[str, ...]], tuple[etree._Element, SchemaNode]]:
    out: dict[tuple[str, tuple[str, ...]], tuple[etree._Element, SchemaNode]] = {}
    if parent is None:
        return out
    for el in parent:
        if not isinstance(el.tag, str):
            continue
        q = etree.QName(el)
        ns = q.namespace or ""
        node = (
            schema.root(ns, q.localname) if parent_node is None
            else parent_node.child(ns, q.localname)
        )  # fmt: skip
        if node is not None:
            out[(el.tag, _identity(el, node))] = (el, node)
    return out


def changes(
    schema: Schema,
    old: etree._Element | None,
    new: etree._Element | None,
    parent_node: SchemaNode | None = None,
    prefix: str = "",
) -> list[Change]:
    """Every created, deleted and changed node; a created or deleted subtree is one change."""
    result: list[Change] = []
    before = _index(schema, old, parent_node)
    after = _index(schema, new, parent_node)
    for key, (el, node) in before.items():
        path = prefix + _step(node, key[1])
        if key not in after:
            result.append(Change("delete", node, path, el, None))
            continue
        other = after[key][0]
        if node.kind == "leaf":
            if (el.text or "").strip() != (other.text or "").strip():
                result.append(Change("replace", node, path, el, other))
        elif node.kind in ("container", "list"):
            result.extend(changes(schema, el, other, node, path))
    for key, (el, node) in after.items():
        if key not in before:
            result.append(Change("create", node, prefix + _step(node, key[1]), None, el))
    _order_changes(prefix, before, after, result)
    return result


def _order_changes(
    prefix: str,
    before: dict[tuple[str, tuple[str, ...]], tuple[etree._Element, SchemaNode]],
    after: dict[tuple[str, tuple[str, ...]], tuple[etree._Element, SchemaNode]],
    result: list[Change],
) -> None:
    """A reordering of an ordered-by-user list or leaf-list is a change of that list."""
    seen: set[str] = set()
    for key, (_el, node) in after.items():
        if not node.ordered_by_user or key[0] in seen:
            continue
        seen.add(key[0])
        order_before = [k for k in before if k[0] == key[0] and k in after]
        order_after = [k for k in after if k[0] == key[0] and k in before]
        if order_before != order_after:
            result.append(
                Change("replace", node, f"{prefix}/{node.prefix}:{node.name}", None, None)
            )
