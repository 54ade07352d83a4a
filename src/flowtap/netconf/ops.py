"""One handler per configuration RPC of RFC 6241 (+ RFC 6243 with-defaults, RFC 6022
get-schema). Handlers are thin: they read parameters and call the datastores.

Signature: ``async def handler(session, op) -> list[etree._Element] | None`` where ``op`` is the
operation element inside ``<rpc>``; None means ``<ok/>``. A handler raises NetconfRpcError for
what NETCONF itself refuses (parameters); the commit engine's ConfigError passes through to the
session, which maps it (:mod:`flowtap.netconf.engine_errors`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from lxml import etree

from flowtap.config.xmlutil import element, parse_top
from flowtap.errors import NetconfRpcError
from flowtap.netconf import defaults, filters
from flowtap.netconf.library import MONITORING_NS
from flowtap.netconf.replies import NC_NS, data, data_bytes

if TYPE_CHECKING:
    from flowtap.netconf.session import Session

WD_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
Result = list[etree._Element | bytes] | None


def _q(name: str) -> str:
    return f"{{{NC_NS}}}{name}"


def _names(ns: str, *locals_: str) -> frozenset[str]:
    return frozenset(f"{{{ns}}}{name}" for name in locals_)


NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NMDA_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
_WD = _names(WD_NS, "with-defaults")
# The parameters each operation accepts (RFC 6241 §7-8, RFC 6243, RFC 6022, RFC 5277); anything
# else is refused rather than silently ignored (SECURITY.md N10).
PARAMETERS: dict[str, frozenset[str]] = {
    _q("get"): _names(NC_NS, "filter") | _WD,
    _q("get-config"): _names(NC_NS, "source", "filter") | _WD,
    _q("edit-config"): _names(NC_NS, "target", "default-operation", "test-option",
                              "error-option", "config", "url"),
    _q("copy-config"): _names(NC_NS, "target", "source") | _WD,
    _q("delete-config"): _names(NC_NS, "target"),
    _q("lock"): _names(NC_NS, "target"),
    _q("unlock"): _names(NC_NS, "target"),
    _q("discard-changes"): frozenset(),
    _q("validate"): _names(NC_NS, "source"),
    _q("commit"): _names(NC_NS, "confirmed", "confirm-timeout", "persist", "persist-id"),
    _q("cancel-commit"): _names(NC_NS, "persist-id"),
    _q("close-session"): frozenset(),
    _q("kill-session"): _names(NC_NS, "session-id"),
    f"{{{MONITORING_NS}}}get-schema": _names(MONITORING_NS, "identifier", "version", "format"),
    f"{{{NOTIF_NS}}}create-subscription": _names(NOTIF_NS, "stream", "filter", "startTime",
                                                 "stopTime"),
    f"{{{NMDA_NS}}}get-data": _names(NMDA_NS, "datastore", "subtree-filter", "xpath-filter",
                                     "config-filter", "max-depth", "with-defaults"),
    f"{{{NMDA_NS}}}edit-data": _names(NMDA_NS, "datastore", "default-operation", "config",
                                      "url"),
}  # fmt: skip
_KNOWN_NAMESPACES = frozenset({NC_NS, WD_NS, MONITORING_NS, NOTIF_NS, NMDA_NS})


def check_parameters(op: etree._Element) -> None:
    """Refuse a child element that is not a parameter of the operation."""
    allowed = PARAMETERS.get(op.tag if isinstance(op.tag, str) else "")
    if allowed is None:
        return
    for child in op:
        if not isinstance(child.tag, str) or child.tag in allowed:
            continue
        name = etree.QName(child)
        namespace = name.namespace or ""
        known = namespace in _KNOWN_NAMESPACES
        raise NetconfRpcError(
            tag="unknown-element" if known else "unknown-namespace",
            type="protocol",
            message=f"Unexpected element {name.localname!r} in <{etree.QName(op).localname}>",
            info={"bad-element": name.localname} | ({} if known else {"bad-namespace": namespace}),
        )


def child(op: etree._Element, name: str, ns: str = NC_NS) -> etree._Element | None:
    tag = f"{{{ns}}}{name}"
    for child in op:  # a handful of parameters: cheaper than find()'s path parsing
        if child.tag == tag:
            return child
    return None


def _datastore(op: etree._Element, param: str) -> str:
    """The datastore named in ``<source>``/``<target>`` (e.g. ``<source><running/></source>``)."""
    holder = child(op, param)
    if holder is None or len(holder) == 0:
        raise NetconfRpcError(
            tag="missing-element", type="protocol", message=f"<{param}> is missing",
            info={"bad-element": param},
        )  # fmt: skip
    choice = holder[0]
    name = etree.QName(choice).localname
    if name == "url":
        raise NetconfRpcError(tag="operation-not-supported", type="protocol",
                              message="The :url capability is not supported")  # fmt: skip
    if name not in ("running", "candidate", "startup", "config"):
        raise NetconfRpcError(
            tag="bad-element", type="protocol", message=f"Unknown datastore <{name}>",
            info={"bad-element": name},
        )  # fmt: skip
    return name


def _inline_config(op: etree._Element, param: str) -> etree._Element:
    holder = child(op, param)
    config = holder[0] if holder is not None and len(holder) else None
    if config is None or config.tag != _q("config"):
        raise NetconfRpcError(
            tag="missing-element", type="protocol", message=f"<{param}> has no <config>",
            info={"bad-element": "config"},
        )  # fmt: skip
    return config


def _inline_tree(op: etree._Element) -> etree._Element:
    """The inline ``<source><config>`` as a datastore tree."""
    # UTF-8: lxml's default ASCII output writes a non-ASCII element or attribute name as a
    # character reference, which is not well-formed and failed the re-parse (found by fuzzing).
    children = _inline_config(op, "source")
    check_edit_size(children)
    return parse_top(b"".join(etree.tostring(c, encoding="UTF-8") for c in children))


def _with_defaults(op: etree._Element) -> str | None:
    el = child(op, "with-defaults", WD_NS)
    return None if el is None else (el.text or "").strip()


async def _select(session: Session, tree: etree._Element, op: etree._Element) -> etree._Element:
    flt = child(op, "filter")
    if flt is None:
        return tree
    kind = flt.get("type", "subtree")
    key_names = session.ctx.key_names
    if kind == "subtree":
        return filters.subtree_filter(tree, flt, key_names)
    if kind == "xpath":
        select = flt.get("select")
        if not select:
            raise NetconfRpcError(
                tag="missing-attribute", type="protocol", message="xpath filter without select",
                info={"bad-attribute": "select", "bad-element": "filter"},
            )  # fmt: skip
        return await xpath_select(session, tree, select, flt)
    raise NetconfRpcError(
        tag="bad-attribute", type="protocol", message=f"Unknown filter type {kind!r}",
        info={"bad-attribute": "type", "bad-element": "filter"},
    )  # fmt: skip


async def xpath_select(
    session: Session, tree: etree._Element, select: str, holder: etree._Element
) -> etree._Element:
    """``tree`` filtered by XPath ``select``, with the prefixes ``holder`` (the filter element)
    declares; module names and prefixes resolve even when the client did not declare them."""
    namespaces = dict(session.ctx.default_namespaces)
    namespaces.update({p: ns for p, ns in holder.nsmap.items() if p})
    return await filters.xpath_filter_bounded(
        session.ctx.xpath_pool, tree, select, namespaces, session.ctx.key_names
    )


def _visible(session: Session, tree: etree._Element, op: etree._Element) -> etree._Element:
    ctx = session.ctx
    pruned = ctx.read_filter.prune(tree, session.principal)
    return defaults.apply(ctx.schema, pruned, _with_defaults(op))


async def get_config(session: Session, op: etree._Element) -> Result:
    source = _datastore(op, "source")
    datastores = session.ctx.datastores
    if child(op, "filter") is None and _with_defaults(op) in (None, "explicit"):
        # all this user may read, as stored: pruned once per datastore tree and hidden rules
        return [data_bytes(datastores.visible(source, session.principal))]
    tree = _visible(session, datastores.tree(source), op)
    return [data(list(await _select(session, tree, op)))]


async def get(session: Session, op: etree._Element) -> Result:
    ctx = session.ctx
    tree = _visible(session, ctx.datastores.tree("running"), op)
    combined = element(f"{{{NC_NS}}}data", NC_NS)
    combined.extend(copy.deepcopy(child) for child in tree)
    combined.extend(session.state_data())
    return [data(list(await _select(session, combined, op)))]


# Elements one edit-config (or inline copy-config/validate source) may carry. The edit engine
# costs ~80 us per element on the machine class (5,000 list entries, 10,000 elements: ~0.8 s),
# all on the event loop; without a bound a 4 MiB edit of 100,000 entries held it for minutes,
# and an inline copy-config of 20,000 entries 1.3 s.
MAX_EDIT_ELEMENTS = 10_000


def check_edit_size(config: etree._Element) -> None:
    for count, _ in enumerate(config.iter(), 1):
        if count > MAX_EDIT_ELEMENTS:
            raise NetconfRpcError(
                tag="too-big",
                message=f"A configuration in one request may carry at most {MAX_EDIT_ELEMENTS} "
                "elements; split it over several edit-config requests",
            )


def edit_content(op: etree._Element, ns: str) -> etree._Element:
    """The ``<config>`` of an edit-config (or NMDA edit-data, in its namespace ``ns``), checked
    for size; a ``<url>`` instead is refused (no :url capability)."""
    config = child(op, "config", ns)
    if config is None:
        if child(op, "url", ns) is not None:
            raise NetconfRpcError(tag="operation-not-supported", type="protocol",
                                  message="The :url capability is not supported")
        raise NetconfRpcError(tag="missing-element", type="protocol",
                              message=f"{etree.QName(op).localname} has no <config>",
                              info={"bad-element": "config"})  # fmt: skip
    check_edit_size(config)
    return config


async def edit_config(session: Session, op: etree._Element) -> Result:
    target = _datastore(op, "target")
    default_el = child(op, "default-operation")
    default_operation = (default_el.text or "").strip() if default_el is not None else "merge"
    test = child(op, "test-option")
    error = child(op, "error-option")
    if default_operation not in ("merge", "replace", "none"):
        raise NetconfRpcError(
            tag="invalid-value", type="protocol", message="Invalid default-operation",
            info={"bad-element": "default-operation"},
        )  # fmt: skip
    test_option = (test.text or "").strip() if test is not None else "test-then-set"
    error_option = (error.text or "").strip() if error is not None else "stop-on-error"
    if test_option not in ("test-then-set", "set", "test-only"):
        raise NetconfRpcError(tag="invalid-value", type="protocol",
                              message="Invalid test-option", info={"bad-element": "test-option"})
    if error_option not in ("stop-on-error", "continue-on-error", "rollback-on-error"):
        raise NetconfRpcError(tag="invalid-value", type="protocol",
                              message="Invalid error-option", info={"bad-element": "error-option"})
    config = edit_content(op, NC_NS)
    session.ctx.datastores.edit(
        target, config, session.principal, session.session_id,
        default_operation, test_option, error_option,
    )  # fmt: skip
    return None


async def copy_config(session: Session, op: etree._Element) -> Result:
    ds = session.ctx.datastores
    target = _datastore(op, "target")
    source = _datastore(op, "source")
    principal = session.principal
    if (source, target) == ("running", "startup") and principal.has("configure") and (
        principal.has("maintenance")
    ):
        # Saving startup is a maintenance action on the whole datastore, not a write of what it
        # holds: with split duties, whoever may configure and maintain saves it, reading nothing.
        ds.save_startup(principal, session.session_id)
        return None
    if source == "config":
        tree = _inline_tree(op)
    else:
        tree = ds.tree(source)
        if not session.ctx.read_filter.sees_everything(principal):
            saving = " (running to startup: configure and maintenance)" if (
                (source, target) == ("running", "startup")
            ) else ""  # fmt: skip
            raise NetconfRpcError(
                tag="access-denied",
                message=f"Access denied: copying a datastore needs full read{saving}",
            )
    if target == source:
        raise NetconfRpcError(tag="invalid-value", message="Source and target are the same")
    await ds.copy_config(tree, target, session.principal, session.session_id,
                         source_name="the configuration sent" if source == "config" else source)
    return None


async def delete_config(session: Session, op: etree._Element) -> Result:
    target = _datastore(op, "target")
    session.ctx.datastores.delete_config(target, session.principal, session.session_id)
    return None


async def lock(session: Session, op: etree._Element) -> Result:
    session.require("configure")
    session.ctx.datastores.lock(_datastore(op, "target"), session.session_id, session.principal)
    return None


async def unlock(session: Session, op: etree._Element) -> Result:
    session.ctx.datastores.unlock(_datastore(op, "target"), session.session_id,
                                  session.principal)
    return None


async def discard_changes(session: Session, op: etree._Element) -> Result:
    session.require("configure")
    session.ctx.datastores.discard(session.session_id, session.principal)
    return None


async def validate(session: Session, op: etree._Element) -> Result:
    source = _datastore(op, "source")
    datastores = session.ctx.datastores
    if source == "config":
        tree = _inline_tree(op)
    elif source == "candidate":  # as this user would commit it (LI subtrees: li_policy)
        tree = datastores.view(session.principal)
    else:
        tree = datastores.tree(source)
    session.ctx.txn.validate(tree, session.principal)
    return None


async def commit(session: Session, op: etree._Element) -> Result:
    session.require("configure")
    confirmed = child(op, "confirmed") is not None
    timeout_el = child(op, "confirm-timeout")
    timeout = 600
    if timeout_el is not None:
        text = (timeout_el.text or "").strip()
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 4294967295:
            raise NetconfRpcError(
                tag="invalid-value", message="confirm-timeout must be 1..4294967295 seconds",
                info={"bad-element": "confirm-timeout"},
            )  # fmt: skip
        timeout = int(text)
    persist = child(op, "persist")
    persist_id = child(op, "persist-id")
    if persist is not None and not (persist.text or "").strip():
        raise NetconfRpcError(  # an empty token would let anyone confirm or cancel
            tag="invalid-value", message="persist needs a non-empty token",
            info={"bad-element": "persist"},
        )  # fmt: skip
    await session.ctx.datastores.commit(
        session.principal,
        session.session_id,
        confirmed=confirmed,
        timeout=timeout,
        persist=None if persist is None else (persist.text or "").strip(),
        persist_id=None if persist_id is None else (persist_id.text or "").strip(),
    )
    return None


async def cancel_commit(session: Session, op: etree._Element) -> Result:
    session.require("configure")
    pid = child(op, "persist-id")
    await session.ctx.datastores.cancel_commit(
        session.session_id, None if pid is None else (pid.text or "").strip(), session.principal
    )
    return None


async def get_schema(session: Session, op: etree._Element) -> Result:
    identifier = op.findtext(f"{{{MONITORING_NS}}}identifier")
    if not identifier:
        raise NetconfRpcError(
            tag="missing-element", type="protocol", message="get-schema needs an identifier",
            info={"bad-element": "identifier"},
        )  # fmt: skip
    text = session.ctx.library.get_schema(
        identifier.strip(),
        (op.findtext(f"{{{MONITORING_NS}}}version") or "").strip() or None,
        (op.findtext(f"{{{MONITORING_NS}}}format") or "").strip() or None,
    )
    out = element(f"{{{MONITORING_NS}}}data", MONITORING_NS)
    out.text = text
    return [out]
