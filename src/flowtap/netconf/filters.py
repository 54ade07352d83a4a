"""NETCONF retrieval filters of get/get-config: none, subtree (RFC 6241 §6, in
:mod:`flowtap.netconf.subtree`) or XPath (§8.9, in :mod:`flowtap.netconf.xpath`).

Both take the datastore as a wrapper element ``data`` whose children are the top-level data
nodes (the conceptual root) and return a fresh element with the same tag holding the selection
(:mod:`flowtap.netconf.selection`). The data is the requester's already access-pruned view, so
no filter can select what the requester may not read.

Every filter is bounded: a subtree filter by a budget of scanned children (``too-big``), an
XPath expression either by its shape (linear ones run in-process) or by a worker process killed
at a deadline (``operation-failed``), so one request never holds the event loop for long.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from lxml import etree

from flowtap.errors import NetconfRpcError
from flowtap.netconf.selection import KeyNames, build, tree_of
from flowtap.netconf.subtree import subtree_filter
from flowtap.netconf.xmlparse import NC_NS
from flowtap.netconf.xpath import at_positions, evaluate, prepare
from flowtap.netconf.xpath_pool import XPathPool

__all__ = ["apply_filter", "subtree_filter", "xpath_filter", "xpath_filter_bounded"]

_TYPE_ATTRS: Final = ("type", f"{{{NC_NS}}}type")
_SELECT_ATTRS: Final = ("select", f"{{{NC_NS}}}select")


def xpath_filter(
    data: etree._Element,
    select: str,
    namespaces: Mapping[str, str] | Mapping[str | None, str],
    key_names: KeyNames | None = None,
) -> etree._Element:
    """Apply an XPath filter in this process, whatever its cost (tests and trusted callers)."""
    return build(data, tree_of(data, evaluate(data, prepare(select, namespaces))), key_names)


async def xpath_filter_bounded(
    pool: XPathPool,
    data: etree._Element,
    select: str,
    namespaces: Mapping[str, str] | Mapping[str | None, str],
    key_names: KeyNames | None = None,
) -> etree._Element:
    """Apply an XPath filter: in-process when it is linear, else in one of ``pool``'s workers."""
    query = prepare(select, namespaces)
    if query.linear:
        nodes = evaluate(data, query)
    else:
        document = etree.tostring(data, with_tail=False)
        nodes = at_positions(data, await pool.select(document, query))
    return build(data, tree_of(data, nodes), key_names)


def _filter_type(filter_el: etree._Element) -> str:
    return next((v for v in map(filter_el.get, _TYPE_ATTRS) if v is not None), "subtree")


def _select_of(filter_el: etree._Element) -> str:
    select = next((v for v in map(filter_el.get, _SELECT_ATTRS) if v is not None), None)
    if not select:
        raise NetconfRpcError(
            tag="missing-attribute",
            type="protocol",
            message="xpath filter has no select attribute",
            info={"bad-attribute": "select", "bad-element": "filter"},
        )
    return select


def _bad_type() -> NetconfRpcError:
    return NetconfRpcError(
        tag="bad-attribute",
        type="protocol",
        message="filter type must be subtree or xpath",
        info={"bad-attribute": "type", "bad-element": "filter"},
    )


def apply_filter(
    data: etree._Element, filter_el: etree._Element | None, key_names: KeyNames | None = None
) -> etree._Element:
    """Apply an optional ``<filter>`` element of get/get-config in this process."""
    if filter_el is None:
        return build(data, None, key_names)
    ftype = _filter_type(filter_el)
    if ftype == "subtree":
        return subtree_filter(data, filter_el, key_names)
    if ftype == "xpath":
        return xpath_filter(data, _select_of(filter_el), filter_el.nsmap, key_names)
    raise _bad_type()

