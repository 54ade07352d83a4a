"""Small lxml helpers shared by the NETCONF code."""

from __future__ import annotations

from lxml import etree


def element(qname: str, namespace: str, **prefixes: str) -> etree._Element:
    """A new element whose namespace is the default one (plus optional prefixed ones)."""
    nsmap: dict[str | None, str] = {None: namespace}
    nsmap.update(prefixes)
    return etree.Element(qname, nsmap=nsmap)  # type: ignore[arg-type]  # lxml-stubs: None key
