"""Differences between two datastore trees, node by node, keyed by schema identity.

Used for permission checks on the diff (not on the request), for the netconf-config-change
notification, and for comparing against rollback history. A permission check needs only the
changes inside the hierarchies its principal may not write: a :class:`Scope` restricts the diff
to those, so the check costs what those hierarchies hold, not what the configuration holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from flowtap.config.schema import Schema, SchemaNode


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # "create", "delete" or "replace"
    node: SchemaNode
    path: str  # instance path, e.g. /fts:system/fts:login/fts:user[fts:name='bob']
    old: etree._Element | None
    new: etree._Element | None


_ABOVE, _INSIDE = 1, 2


class Scope:
    """Schema paths a diff is restricted to: only changes at or under one of them are found."""

    __slots__ = ("_below", "paths")

    def __init__(self, paths: frozenset[str]) -> None:
        self.paths = paths
        self._below: dict[str, list[tuple[SchemaNode, int]]] = {}

    def below(self, schema: Schema, parent: SchemaNode | None) -> list[tuple[SchemaNode, int]]:
        """The schema children of ``parent`` (the top-level nodes for None) that are inside the
        scope or above some of it, each with which of the two: the only ones a diff looks at."""
        key = "" if parent is None else parent.path
        found = self._below.get(key)
        if found is None:
            children = schema.roots.values() if parent is None else parent.children.values()
            found = []
            for node in children:
                path = node.path
                if any(path == p or path.startswith(p + "/") for p in self.paths):
                    found.append((node, _INSIDE))
                elif any(p.startswith(path + "/") for p in self.paths):
                    found.append((node, _ABOVE))
            self._below[key] = found
        return found


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


Index = dict[tuple[str, tuple[str, ...]], tuple[etree._Element, SchemaNode]]


def _index(
    schema: Schema,
    children: list[etree._Element],
    parent_node: SchemaNode | None,
) -> Index:
    out: Index = {}
    for el in children:
        q = etree.QName(el)
        ns = q.namespace or ""
        node = (
            schema.root(ns, q.localname) if parent_node is None
            else parent_node.child(ns, q.localname)
        )  # fmt: skip
        if node is not None:
            out[(el.tag, _identity(el, node))] = (el, node)
    return out


def _differing(
    old: etree._Element | None, new: etree._Element | None, ordered: bool
) -> tuple[list[etree._Element], list[etree._Element]]:
    """The children of each side that do not appear identically on the other side.

    Serializing is done in C by libxml2, so comparing bytes first and walking only what differs
    keeps a commit's diff proportional to the change, not to the size of the configuration.
    Ordered-by-user siblings are all kept, so that a reordering is seen.
    """
    left = [c for c in old if isinstance(c.tag, str)] if old is not None else []
    right = [c for c in new if isinstance(c.tag, str)] if new is not None else []
    return _differing_lists(left, right, ordered)


def _differing_lists(
    left: list[etree._Element], right: list[etree._Element], ordered: bool
) -> tuple[list[etree._Element], list[etree._Element]]:
    if not left or not right or ordered:
        return left, right
    left_bytes = [etree.tostring(c) for c in left]
    right_bytes = [etree.tostring(c) for c in right]
    same = set(left_bytes) & set(right_bytes)
    if not same:
        return left, right
    return (
        [c for c, b in zip(left, left_bytes, strict=True) if b not in same],
        [c for c, b in zip(right, right_bytes, strict=True) if b not in same],
    )


def changes(
    schema: Schema,
    old: etree._Element | None,
    new: etree._Element | None,
    parent_node: SchemaNode | None = None,
    prefix: str = "",
    scope: Scope | None = None,
) -> list[Change]:
    """Every created, deleted and changed node; a created or deleted subtree is one change.

    With ``scope``, only the changes at or under the scope's paths: a subtree created or
    deleted above them is reported as the creations or deletions of what it holds inside them.
    """
    if scope is not None:
        return _scoped(schema, old, new, parent_node, prefix, scope)
    ordered = _ordered(parent_node)
    left, right = _differing(old, new, ordered)
    before = _index(schema, left, parent_node)
    after = _index(schema, right, parent_node)
    return _compare(schema, before, after, prefix)


def _ordered(parent_node: SchemaNode | None) -> bool:
    return parent_node is not None and any(
        c.ordered_by_user for c in parent_node.children.values()
    )


def _compare(schema: Schema, before: Index, after: Index, prefix: str) -> list[Change]:
    result: list[Change] = []
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


def _scoped(
    schema: Schema,
    old: etree._Element | None,
    new: etree._Element | None,
    parent_node: SchemaNode | None,
    prefix: str,
    scope: Scope,
) -> list[Change]:
    """changes() below a node that is above the scope: children inside it are compared as
    changes() compares them, children above it are walked down (without serializing them),
    and no other child is even looked up."""
    inside: tuple[list[etree._Element], list[etree._Element]] = ([], [])
    result: list[Change] = []
    for node, where in scope.below(schema, parent_node):
        left = list(old.iterchildren(node.qname)) if old is not None else []
        right = list(new.iterchildren(node.qname)) if new is not None else []
        if where == _INSIDE:
            inside[0].extend(left)
            inside[1].extend(right)
            continue
        if not left and not right:
            continue
        if node.kind == "container":  # one instance at most: no identity to index by
            result.extend(_scoped(schema, left[-1] if left else None,
                                  right[-1] if right else None, node,
                                  f"{prefix}/{node.prefix}:{node.name}", scope))  # fmt: skip
            continue
        before = _index(schema, left, parent_node)
        after = _index(schema, right, parent_node)
        for key in before.keys() | after.keys():
            was, now = before.get(key), after.get(key)
            result.extend(_scoped(schema, was[0] if was else None, now[0] if now else None,
                                  node, prefix + _step(node, key[1]), scope))  # fmt: skip
    if inside[0] or inside[1]:
        left, right = _differing_lists(inside[0], inside[1], _ordered(parent_node))
        result.extend(_compare(schema, _index(schema, left, parent_node),
                               _index(schema, right, parent_node), prefix))  # fmt: skip
    return result


def _order_changes(
    prefix: str,
    before: Index,
    after: Index,
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
