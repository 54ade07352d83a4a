"""Junos XML configuration (``<configuration>`` without namespaces) <-> datastore trees. Pure.

Junos writes configuration without XML namespaces; the datastore holds each YANG module's
elements in its namespace. Element names are resolved through the schema, level by level, so
``<configuration><system><host-name>`` becomes ``{urn:flowtap:yang:system}system/host-name``.
Namespaced elements (what get-config returns) are accepted too: only local names count.

Junos's own edit attributes become the edit engine's ``operation``: ``delete="delete"`` is
``remove`` (deleting what is not there is no error in Junos), ``replace="replace"`` is
``replace`` under ``action="replace"`` only (Junos ignores it otherwise), and a NETCONF
``operation`` attribute is kept as given.
"""

from __future__ import annotations

import copy

from lxml import etree

from flowtap.config.edit import OPERATION
from flowtap.config.junos_text import JunosSyntaxError, child_named, sub_element
from flowtap.config.schema import Schema, SchemaNode
from flowtap.config.xmlutil import NC_NS, new_root

# Junos attributes of statements that flowtap has no equivalent for: refused, never ignored
# (an ignored ``inactive`` would load as active configuration).
UNSUPPORTED = frozenset({"active", "inactive", "insert", "rename", "protect", "unprotect",
                         "name", "key", "unordered"})  # fmt: skip


def from_junos(configuration: etree._Element, schema: Schema, *, replace: bool = False
               ) -> etree._Element:  # fmt: skip
    """The children of a Junos ``<configuration>`` as a datastore tree for an edit."""
    root = new_root()
    _convert(configuration, None, root, schema, replace)
    return root


def _convert(src: etree._Element, parent: SchemaNode | None, dst: etree._Element,
             schema: Schema, replace: bool) -> None:  # fmt: skip
    for child in src:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child).localname
        node = child_named(schema, parent, name)
        if node is None:
            raise JunosSyntaxError(f"syntax error: {name}", name)
        el = sub_element(dst, node)
        for attribute, value in child.attrib.items():
            _attribute(el, etree.QName(attribute), str(value), replace)
        if node.kind in ("leaf", "leaf-list"):
            text = (child.text or "").strip()
            el.text = text or None
        else:
            _convert(child, node, el, schema, replace)


def _attribute(el: etree._Element, name: etree.QName, value: str, replace: bool) -> None:
    namespace = name.namespace
    if namespace == NC_NS and name.localname == "operation":
        el.set(OPERATION, value)
    elif namespace is not None:
        return  # junos:* annotations of a configuration read back, other namespaces' notes
    elif name.localname == "delete" and value == "delete":
        el.set(OPERATION, "remove")
    elif name.localname == "replace" and value == "replace":
        if replace:
            el.set(OPERATION, "replace")
    elif name.localname in UNSUPPORTED:
        raise JunosSyntaxError(f"syntax error: the {name.localname} attribute is not supported",
                               name.localname)  # fmt: skip
    else:
        raise JunosSyntaxError(f"syntax error: attribute {name.localname}", name.localname)


def to_junos(tree: etree._Element) -> list[etree._Element]:
    """A datastore tree's top-level elements as Junos writes them: copies without namespaces."""
    out = []
    for top in tree:
        if not isinstance(top.tag, str):
            continue
        plain = copy.deepcopy(top)
        for el in plain.iter():
            if isinstance(el.tag, str):
                el.tag = etree.QName(el).localname
        etree.cleanup_namespaces(plain)
        out.append(plain)
    return out
