"""RFC 6243 with-defaults on datastore trees: explicit (our basic mode), report-all,
report-all-tagged and trim. Pure and schema-driven, so it also works on a candidate that is not
valid yet.
"""

from __future__ import annotations

from lxml import etree

from flowtap.config.schema import Schema, SchemaNode
from flowtap.errors import NetconfRpcError

WD_NS = "urn:ietf:params:xml:ns:netconf:default:1.0"
WD_DEFAULT = f"{{{WD_NS}}}default"
MODES = ("explicit", "report-all", "report-all-tagged", "trim")


def apply(schema: Schema, tree: etree._Element, mode: str | None) -> etree._Element:
    """Return ``tree`` (explicit) or a transformed copy."""
    if mode in (None, "explicit"):
        return tree
    if mode not in MODES:
        raise NetconfRpcError(
            tag="invalid-value", message=f"Unsupported with-defaults mode {mode!r}",
            info={"bad-element": "with-defaults"},
        )  # fmt: skip
    result = etree.fromstring(etree.tostring(tree))
    for child in result:
        if not isinstance(child.tag, str):
            continue
        q = etree.QName(child)
        node = schema.root(q.namespace or "", q.localname)
        if node is not None:
            _walk(child, node, mode)
    return result


def _is_default(el: etree._Element, node: SchemaNode) -> bool:
    return node.kind == "leaf" and bool(node.default) and (el.text or "").strip() == node.default[0]


def _walk(el: etree._Element, node: SchemaNode, mode: str) -> None:
    present: set[tuple[str, str]] = set()
    for child in list(el):
        if not isinstance(child.tag, str):
            continue
        q = etree.QName(child)
        sub = node.child(q.namespace or "", q.localname)
        if sub is None:
            continue
        present.add((sub.namespace, sub.name))
        if sub.kind in ("container", "list"):
            _walk(child, sub, mode)
        elif _is_default(child, sub):
            if mode == "trim":
                el.remove(child)
            elif mode == "report-all-tagged":
                child.set(WD_DEFAULT, "true")
    if mode == "trim":
        return
    for key, sub in node.children.items():
        if key in present or not sub.config:
            continue
        if sub.kind == "leaf" and sub.default:
            leaf = etree.SubElement(el, sub.qname)
            leaf.text = sub.default[0]
            if mode == "report-all-tagged":
                leaf.set(WD_DEFAULT, "true")
        elif sub.kind == "container" and not sub.presence:
            container = etree.SubElement(el, sub.qname)
            _walk(container, sub, mode)
            if len(container) == 0:
                el.remove(container)
