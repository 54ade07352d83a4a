"""Commits that cost what they change: one entry of a 10,000-entry list edited and committed.

A full commit parses the whole candidate with libyang (validation) and prints it back (the
canonical bytes that are persisted and compared): ~40 ms at 10,000 list entries, every commit.
Yet an edit-config almost always changes a few entries of a list. So the transaction manager
keeps the validated libyang tree of running between commits, and a commit whose edits touched
only list entries builds the next tree from it: duplicate it, replace each touched entry (parsed
on its own), validate the whole tree (must, leafref and unique still see every node), and take
the canonical bytes from the candidate itself once each touched entry is shown to be canonical
already: libyang prints it exactly as the candidate holds it, where libyang would put it.

Whenever that cannot be shown (an edit above every list entry, a value libyang would rewrite, an
entry libyang would move, an error to report) the caller runs the full commit, which is always
right: this is a shortcut to the same bytes, and tests/config/test_incremental.py holds it to
that on random edits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libyang
from lxml import etree

from flowtap.config.edit import OPERATION, entry_finder, exact_finder, normalize_space
from flowtap.config.schema import Schema, SchemaNode
from flowtap.config.xmlutil import descend, serialize
from flowtap.errors import ConfigError

# Below this much running configuration a full parse costs no more than the shortcut (~1 ms).
WORTH_IT = 32 << 10
_HARMLESS = frozenset({None, "merge", "none"})  # operations that cannot change an ancestor


@dataclass(frozen=True, slots=True)
class Unit:
    """An outermost list entry an edit touched: its list, and its keys as the edit wrote them."""

    path: tuple[str, ...]  # Clark tags from the top-level element down to the list
    keys: tuple[tuple[str, str], ...]  # (key, value with XPath normalize-space applied)
    node: SchemaNode = field(compare=False, hash=False)


def touched_units(
    schema: Schema, config: etree._Element, default_operation: str
) -> frozenset[Unit] | None:
    """The list entries an edit-config's ``config`` can change, or None when it can change
    something outside every list entry (a leaf of a top-level container, a delete of a
    container, a replace of everything)."""
    if default_operation == "replace":
        return None
    units: set[Unit] = set()
    for el in config:
        if not isinstance(el.tag, str):
            continue
        qname = etree.QName(el)
        node = schema.root(qname.namespace or "", qname.localname)
        if node is None or node.kind == "list" or not _walk(el, node, (), units):
            return None
    return frozenset(units)


def _walk(el: etree._Element, node: SchemaNode, above: tuple[str, ...], units: set[Unit]) -> bool:
    path = (*above, node.qname)
    if node.kind == "list":
        keys = []
        for key in node.keys:
            text = el.findtext(f"{{{node.namespace}}}{key}")
            if text is None:
                return False
            keys.append((key, normalize_space(text)))
        units.add(Unit(path, tuple(keys), node))
        return True
    if node.kind != "container" or el.get(OPERATION) not in _HARMLESS:
        return False
    children = [child for child in el if isinstance(child.tag, str)]
    if not children:
        return False
    for child in children:
        qname = etree.QName(child)
        inner = node.child(qname.namespace or "", qname.localname)
        if inner is None or not _walk(child, inner, path, units):
            return False
    return True


def commit_units(
    schema: Schema,
    live: libyang.DNode,
    running: etree._Element,
    candidate: etree._Element,
    units: frozenset[Unit],
) -> tuple[bytes, libyang.DNode] | None:
    """The canonical bytes of ``candidate`` and its validated libyang tree (the caller owns it),
    built from ``live`` (running's) by replacing ``units``; None when the full commit must run.

    ``candidate`` must differ from ``running`` inside ``units`` only."""

    def replaced(work: libyang.DNode) -> libyang.DNode | None:
        for unit in units:
            if not _replace(schema, work, running, candidate, unit):
                return None
        return work

    work = schema.derive(live, replaced)
    return None if work is None else (serialize(candidate), work)


def _replace(
    schema: Schema,
    work: libyang.DNode,
    running: etree._Element,
    candidate: etree._Element,
    unit: Unit,
) -> bool:
    """Make ``work`` hold ``unit`` as ``candidate`` does; False when that is not shown safe."""
    node, values = unit.node, dict(unit.keys)
    above = unit.path[:-1]
    old_parent = descend(running, above)
    if old_parent is None:
        return False  # new containers above the entry: where libyang puts them is its call
    path = _libyang_path(schema, unit, values)
    if path is None:
        return False
    stale = work.find_path(path)
    if stale is not None:
        if stale.path() != path:
            return False  # libyang's identity is not the edit's (a value it writes otherwise)
        stale.free(with_siblings=False)
    elif _found(old_parent, node, values, exact=False):
        return False  # the edit knew this entry by other whitespace than libyang does
    parent = descend(candidate, above)
    new = _found(parent, node, values, exact=True)
    if new is None or len(new) > 1:
        return False
    if not new:
        if _found(parent, node, values, exact=False):
            return False
        # an emptied container is not printed by libyang but would stay in the candidate
        return parent is None or len(parent) > 0
    return _add(schema, work, new[0], len(above))


def _found(
    parent: etree._Element | None, node: SchemaNode, values: dict[str, str], *, exact: bool
) -> list[etree._Element] | None:
    """``parent``'s entries with these keys: compared exactly (keys the edit engine wrote, or
    libyang printed), or as the edit engine compares them (XPath normalize-space)."""
    if parent is None:
        return []
    finder = (exact_finder if exact else entry_finder)(node.namespace, node.name, node.keys)
    found = finder(parent, **values)
    if not isinstance(found, list):
        return None
    return [el for el in found if isinstance(el, etree._Element)]


def _add(schema: Schema, work: libyang.DNode, entry: etree._Element, depth: int) -> bool:
    """Merge ``entry`` (``depth`` containers below the top) into ``work`` if it is canonical."""
    before, after = entry.getprevious(), entry.getnext()
    if (before is not None and before.tag != entry.tag) or (
        after is not None and after.tag != entry.tag
    ):
        return False  # the first or last of its list among other nodes: libyang may move it
    given = etree.tostring(entry)
    try:
        fragment = schema.fragment(_wrapped(entry, given))
    except ConfigError:
        return False
    if fragment is None:
        return False
    try:
        printed = fragment
        for _ in range(depth):
            if not isinstance(printed, libyang.DContainer):
                return False
            printed = next(iter(printed.children()))
        if Schema.print_tree(printed, siblings=False) != given:
            return False
        work.merge(fragment, with_siblings=True)
    finally:
        fragment.free()
    return True


def _wrapped(entry: etree._Element, given: bytes) -> bytes:
    """``entry`` inside its ancestors (containers: no keys to carry), as parseable data."""
    data = given
    parent = entry.getparent()
    while parent is not None and parent.getparent() is not None:
        qname = etree.QName(parent)
        data = (f'<{qname.localname} xmlns="{qname.namespace}">'.encode() + data
                + f"</{qname.localname}>".encode())  # fmt: skip
        parent = parent.getparent()
    return data


def _libyang_path(schema: Schema, unit: Unit, values: dict[str, str]) -> str | None:
    """libyang's path of the entry with these key values, as ``lyd_path`` prints it."""
    module_of = {prefix: module for module, prefix in schema.prefix_of.items()}
    path, current = "", None
    for step in unit.node.path.strip("/").split("/"):
        prefix, _, name = step.rpartition(":")
        module = module_of.get(prefix)
        if module is None:
            return None
        path += f"/{module}:{name}" if module != current else f"/{name}"
        current = module
    for key in unit.node.keys:
        value = values[key]
        quote = "'" if "'" not in value else '"'
        if quote in value:
            return None
        path += f"[{key}={quote}{value}{quote}]"
    return path
