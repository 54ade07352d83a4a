"""yang:insert for ordered-by user lists and leaf-lists (RFC 7950 §7.8.6, §7.7.9): where an
edited entry goes among its siblings. Used by the edit engine (:mod:`flowtap.config.edit`)."""

from __future__ import annotations

import re

from lxml import etree

from flowtap.config.schema import SchemaNode
from flowtap.errors import ConfigError

YANG_NS = "urn:ietf:params:xml:ns:yang:1"
INSERT, VALUE, KEY = (f"{{{YANG_NS}}}{a}" for a in ("insert", "value", "key"))
_KEY_PREDICATE = re.compile(r"\[(?:[\w.-]+:)?([\w.-]+)\s*=\s*(['\"])(.*?)\2\]")


def place(
    target: etree._Element, item: etree._Element, el: etree._Element, node: SchemaNode
) -> None:
    """Move ``item`` (in ``target``, edited by ``el``) where ``el``'s yang:insert says."""
    where = el.get(INSERT)
    if where is None or not node.ordered_by_user:
        return
    siblings = [s for s in target.iterfind(node.qname) if s is not item]
    target.remove(item)
    if where == "first":
        anchor_index = target.index(siblings[0]) if siblings else len(target)
        target.insert(anchor_index, item)
        return
    if where == "last" or not siblings:
        if where in ("before", "after") and not siblings:
            raise ConfigError(
                tag="bad-attribute", message="insert anchor does not exist",
                path=node.path, app_tag="missing-instance",
                info={"bad-attribute": "value" if node.kind == "leaf-list" else "key"},
            )  # fmt: skip
        anchor = siblings[-1] if siblings else None
        target.insert(target.index(anchor) + 1 if anchor is not None else len(target), item)
        return
    if where not in ("before", "after"):
        raise ConfigError(
            tag="bad-attribute", message=f"Invalid insert {where!r}", path=node.path,
            info={"bad-attribute": "insert", "bad-element": node.name},
        )  # fmt: skip
    anchor = _anchor(siblings, el, node)
    index = target.index(anchor)
    target.insert(index if where == "before" else index + 1, item)


def _anchor(siblings: list[etree._Element], el: etree._Element, node: SchemaNode) -> etree._Element:
    if node.kind == "leaf-list":
        value = el.get(VALUE)
        for sibling in siblings:
            if (sibling.text or "").strip() == value:
                return sibling
    else:
        wanted = {k: v for k, _, v in _KEY_PREDICATE.findall(el.get(KEY) or "")}
        for sibling in siblings:
            if wanted and all(
                (sibling.findtext(f"{{{node.namespace}}}{k}") or "") == v
                for k, v in wanted.items()
            ):
                return sibling
    raise ConfigError(
        tag="bad-attribute",
        message="insert anchor does not exist",
        path=node.path,
        app_tag="missing-instance",
        info={"bad-attribute": "value" if node.kind == "leaf-list" else "key"},
    )
