"""RFC 8526 NMDA operations: ``get-data`` and ``edit-data`` of ietf-netconf-nmda.

A server that advertises the yang-library 1.1 capability is an NMDA server (RFC 8526 §2), and
NMDA clients act on it: libnetconf2 (netopeer2-cli) reads the yang-library with get-data when it
connects. flowtap has no configuration templates or system-supplied configuration, so
``intended`` is ``running`` (RFC 8342 §5.1.4) and ``operational`` is running's configuration
plus the state data ``<get>`` returns. The datastores are the ones get-config and edit-config
serve, through the same access control and lawful-intercept pruning.

Not implemented (the module's features stay off, the library says so): ``origin`` metadata and
origin filters. ``max-depth`` counts levels from the top-level data nodes, as netopeer2 does.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from lxml import etree

from flowtap.config.xmlutil import element
from flowtap.errors import NetconfRpcError
from flowtap.netconf import defaults, filters, ops
from flowtap.netconf.ops import NMDA_NS

if TYPE_CHECKING:
    from flowtap.netconf.session import Session

DATASTORES_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
# identity of ietf-datastores -> the datastore that holds it here (intended is running: no
# templates, no inactive configuration)
_CONVENTIONAL = {"running": "running", "candidate": "candidate", "startup": "startup",
                 "intended": "running"}  # fmt: skip
_WRITABLE = ("candidate",)  # as edit-config: no :writable-running


def _child(op: etree._Element, name: str) -> etree._Element | None:
    return ops.child(op, name, NMDA_NS)


def _text(op: etree._Element, name: str) -> str | None:
    el = _child(op, name)
    return None if el is None else (el.text or "").strip()


def datastore_of(op: etree._Element) -> str:
    """The ietf-datastores identity named by ``<datastore>`` (e.g. ``ds:operational``)."""
    el = _child(op, "datastore")
    value = (el.text or "").strip() if el is not None else ""
    if not value:
        raise NetconfRpcError(tag="missing-element", type="protocol",
                              message="<datastore> is missing", info={"bad-element": "datastore"})
    prefix, _, name = value.rpartition(":")
    namespace = el.nsmap.get(prefix or None) if el is not None else None
    if namespace != DATASTORES_NS or name not in (*_CONVENTIONAL, "operational"):
        raise NetconfRpcError(
            tag="invalid-value",
            message=f"Unknown datastore {value!r}: use an identity of ietf-datastores "
            f"(running, candidate, startup, intended, operational) with a prefix bound to "
            f"{DATASTORES_NS}",
            info={"bad-element": "datastore"},
        )
    return name


def _config_filter(op: etree._Element) -> bool | None:
    value = _text(op, "config-filter")
    if value is None:
        return None
    if value not in ("true", "false"):
        raise NetconfRpcError(tag="invalid-value", message="config-filter is true or false",
                              info={"bad-element": "config-filter"})
    return value == "true"


def _max_depth(op: etree._Element) -> int | None:
    value = _text(op, "max-depth")
    if value is None or value == "unbounded":
        return None
    if value.isdigit() and 1 <= int(value) <= 65535:
        return int(value)
    raise NetconfRpcError(tag="invalid-value", message="max-depth is 1..65535 or unbounded",
                          info={"bad-element": "max-depth"})


def _with_defaults(op: etree._Element) -> str | None:
    mode = _text(op, "with-defaults")
    if mode not in (None, "report-all", "report-all-tagged", "trim", "explicit"):
        raise NetconfRpcError(tag="invalid-value", message=f"Unknown with-defaults mode {mode!r}",
                              info={"bad-element": "with-defaults"})
    return mode


async def _select(session: Session, tree: etree._Element, op: etree._Element) -> etree._Element:
    subtree = _child(op, "subtree-filter")
    xpath = _child(op, "xpath-filter")
    if subtree is not None and xpath is not None:
        raise NetconfRpcError(tag="bad-element", message="subtree-filter and xpath-filter are "
                              "alternatives: send one", info={"bad-element": "xpath-filter"})
    if subtree is not None:
        return filters.subtree_filter(tree, subtree, session.ctx.key_names)
    if xpath is not None:
        select = (xpath.text or "").strip()
        if not select:
            raise NetconfRpcError(tag="invalid-value", message="xpath-filter is empty",
                                  info={"bad-element": "xpath-filter"})
        return await ops.xpath_select(session, tree, select, xpath)
    return tree


def _trim_depth(nodes: list[etree._Element], depth: int) -> None:
    level = nodes
    for _ in range(depth - 1):
        level = [child for node in level for child in node]
    for node in level:
        for child in list(node):
            node.remove(child)
        if len(node) == 0 and node.text is not None and not node.text.strip():
            node.text = None


async def get_data(session: Session, op: etree._Element) -> ops.Result:
    ctx = session.ctx
    datastore = datastore_of(op)
    config_filter = _config_filter(op)
    depth = _max_depth(op)
    mode = _with_defaults(op)
    tree = element(f"{{{NMDA_NS}}}data", NMDA_NS)
    if config_filter is not False:
        source = _CONVENTIONAL.get(datastore, "running")
        pruned = ctx.read_filter.prune(ctx.datastores.tree(source), session.principal)
        tree.extend(copy.deepcopy(child) for child in defaults.apply(ctx.schema, pruned, mode))
    if datastore == "operational" and config_filter is not True:
        tree.extend(session.state_data())
    selected = await _select(session, tree, op)
    nodes = list(selected)
    if depth is not None:
        _trim_depth(nodes, depth)
    out = element(f"{{{NMDA_NS}}}data", NMDA_NS)
    out.extend(nodes)
    return [out]


async def edit_data(session: Session, op: etree._Element) -> ops.Result:
    datastore = datastore_of(op)
    if datastore not in _WRITABLE:
        raise NetconfRpcError(
            tag="operation-not-supported", type="protocol",
            message=f"The {datastore} datastore is not written directly: edit candidate and "
            "commit", info={"bad-element": "datastore"},
        )  # fmt: skip
    default_operation = _text(op, "default-operation") or "merge"
    if default_operation not in ("merge", "replace", "none"):
        raise NetconfRpcError(tag="invalid-value", message="Invalid default-operation",
                              info={"bad-element": "default-operation"})
    config = ops.edit_content(op, NMDA_NS)
    session.ctx.datastores.edit(datastore, config, session.principal, session.session_id,
                                default_operation)  # fmt: skip
    return None
