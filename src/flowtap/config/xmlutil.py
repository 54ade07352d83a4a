"""Small lxml helpers shared by the NETCONF code."""

from __future__ import annotations

from lxml import etree


def element(qname: str, namespace: str, **prefixes: str) -> etree._Element:
    """A new element whose namespace is the default one (plus optional prefixed ones)."""
    nsmap: dict[str | None, str] = {None: namespace}
    nsmap.update(prefixes)
    return etree.Element(qname, nsmap=nsmap)  # type: ignore[arg-type]  # lxml-stubs: None key


def discard(parent: etree._Element, child: etree._Element) -> None:
    """Remove ``child`` from ``parent`` for good (its content is dropped too).

    lxml's ``remove`` moves the subtree to a document of its own, walking it with a namespace
    reconciliation that grows faster than its size (15,000 list entries: 1.7 s on the event
    loop); emptying it first makes that walk trivial, and nobody reads the removed content."""
    child.clear()
    parent.remove(child)
