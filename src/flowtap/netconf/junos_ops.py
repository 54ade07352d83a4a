"""A subset of the Junos XML API on the NETCONF session, in Junos's own XML, so that ncclient's
Junos device handler and PyEZ (junos-eznc) work unmodified (netconf/CONFORMANCE.md, *Junos XML
API*).

Clients send these operations in the NETCONF base namespace (ncclient's ``new_ele``) or in
none (PyEZ, ``commit-configuration`` of ncclient); both reach the same handler. Replies are
Junos's elements without a namespace of their own, as Junos writes them (they inherit the
reply's default namespace, as on a Junos without ``rfc-compliant``).

Nothing here reaches the datastores except through the calls the RFC 6241 operations use, with
the session's principal: reads are the pruned views (``Datastores.visible``, the read filter),
edits go through ``Datastores.edit_all``, commits through ``Datastores.commit``, so access
control and lawful-intercept confidentiality hold as they do for get-config and edit-config.
"""

from __future__ import annotations

import datetime
import importlib.metadata
from typing import TYPE_CHECKING

from lxml import etree

from flowtap.config import access, junos_set, junos_text, junos_xml
from flowtap.config.junos_text import JunosSyntaxError, JunosTooBig
from flowtap.config.persist import HistoryEntry
from flowtap.config.xmlutil import parse_top
from flowtap.errors import NetconfRpcError
from flowtap.netconf import filters, junos_show, ops, rollback_ops

if TYPE_CHECKING:
    from flowtap.netconf.session import Session

Result = list[etree._Element | bytes] | None


def junos_version(package: str) -> str:
    """Junos's notation for a release, which PyEZ parses (a plain ``0.1.0`` makes its version
    facts fail): MAJOR.MINOR, ``R``, and the maintenance release counted from 1."""
    parts = [*package.split("."), "0", "0"]
    patch = int(parts[2]) if parts[2].isdigit() else 0
    return f"{parts[0]}.{parts[1]}R{patch + 1}"


try:
    PACKAGE_VERSION = importlib.metadata.version("flowtap")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    PACKAGE_VERSION = "0.1.0"
VERSION = junos_version(PACKAGE_VERSION)
JUNOS_NS = f"http://xml.juniper.net/junos/{VERSION}/junos"
PRODUCT = "flowtap"
_HOST_NAME = "/fts:system/fts:host-name"
_SYSTEM_NS = "urn:flowtap:yang:system"
DATABASES = {"candidate": "candidate", "committed": "running"}


def _junos(tag: str) -> etree._Element:
    return etree.Element(tag, nsmap={"junos": JUNOS_NS})


def _child(op: etree._Element, name: str) -> etree._Element | None:
    """A parameter by its local name: clients send them with the operation's namespace or none."""
    for child in op:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return child
    return None


def _parameters(op: etree._Element, attributes: frozenset[str], children: frozenset[str]
                ) -> dict[str, str]:  # fmt: skip
    """The operation's attributes; anything it does not take is refused, not ignored (N10)."""
    name = etree.QName(op).localname
    found = {}
    for attribute, value in op.attrib.items():
        local = etree.QName(attribute).localname
        if local not in attributes:
            raise NetconfRpcError(
                tag="bad-attribute", type="protocol",
                message=f"Unsupported attribute {local!r} of <{name}>",
                info={"bad-attribute": local, "bad-element": name},
            )  # fmt: skip
        found[local] = str(value)
    for child in op:
        if isinstance(child.tag, str) and etree.QName(child).localname not in children:
            local = etree.QName(child).localname
            raise NetconfRpcError(
                tag="unknown-element", type="protocol",
                message=f"Unsupported element {local!r} in <{name}>",
                info={"bad-element": local},
            )  # fmt: skip
    return found


def _choice(params: dict[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = params.get(name, default)
    if value not in allowed:
        raise NetconfRpcError(
            tag="operation-not-supported" if name in ("format", "action") else "invalid-value",
            message=f"{name}={value!r} is not supported (only {', '.join(allowed)})",
            info={"bad-attribute": name},
        )  # fmt: skip
    return value


def _rollback(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 49:
        raise NetconfRpcError(tag="invalid-value", message="rollback must be 0..49",
                              info={"bad-attribute": "rollback"})  # fmt: skip
    return int(text)


def _syntax(exc: JunosSyntaxError) -> NetconfRpcError:
    """A Junos load error: ``syntax error`` naming the word, as Junos reports it."""
    where = f" (line {exc.line})" if exc.line else ""
    return NetconfRpcError(tag="operation-failed", type="protocol", message=exc.message + where,
                           info={"bad-element": exc.word} if exc.word else {})  # fmt: skip


# -- get-configuration ----------------------------------------------------------------------------

_GET_ATTRIBUTES = frozenset({"database", "format", "compare", "rollback", "inherit", "groups",
                             "changed", "interface-ranges"})  # fmt: skip


async def get_configuration(session: Session, op: etree._Element) -> Result:
    params = _parameters(op, _GET_ATTRIBUTES, frozenset({"configuration"}))
    form = _choice(params, "format", "xml", ("xml", "text", "set"))
    datastores = session.ctx.datastores
    if "compare" in params:
        _choice(params, "compare", "rollback", ("rollback",))
        session.require("view", "view-configuration")
        old = rollback_ops.history_entry(session, _rollback(params.get("rollback", "0")))
        new = parse_top(datastores.visible("candidate", session.principal))
        output = etree.Element("configuration-output")
        output.text = junos_set.compare(old, new, datastores.schema)
        information = etree.Element("configuration-information")
        information.append(output)
        return [information]
    if "rollback" in params:
        tree = rollback_ops.history_entry(session, _rollback(params["rollback"]))
    else:
        database = DATABASES[_choice(params, "database", "candidate", tuple(DATABASES))]
        tree = parse_top(datastores.visible(database, session.principal))
    selection = _child(op, "configuration")
    if selection is not None and len(selection):
        tree = _select(session, tree, selection)
    if form == "text":
        text = etree.Element("configuration-text")
        text.text = _last_commit(session) + junos_text.render(tree, datastores.schema)
        return [text]
    if form == "set":
        lines = etree.Element("configuration-set")
        lines.text = junos_set.render_set(tree, datastores.schema)
        return [lines]
    configuration = _junos("configuration")
    last = _last(session)
    if last is not None:
        configuration.set(f"{{{JUNOS_NS}}}commit-seconds", str(int(last.time)))
        configuration.set(f"{{{JUNOS_NS}}}commit-localtime", _when(last.time))
        configuration.set(f"{{{JUNOS_NS}}}commit-user", last.user)
    configuration.extend(junos_xml.to_junos(tree))
    return [configuration]


def _select(session: Session, tree: etree._Element, selection: etree._Element) -> etree._Element:
    """Junos's child-element filter (``<configuration><system/></configuration>``), run as the
    NETCONF subtree filter it is, on the caller's already pruned tree."""
    try:
        wanted = junos_xml.from_junos(selection, session.ctx.schema)
    except JunosSyntaxError as exc:
        raise _syntax(exc) from None
    return filters.subtree_filter(tree, wanted, session.ctx.key_names)


def _last(session: Session) -> HistoryEntry | None:
    history = session.ctx.datastores.state.history()
    return history[0] if history else None


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _last_commit(session: Session) -> str:
    last = _last(session)
    return "" if last is None else f"## Last commit: {_when(last.time)} by {last.user}\n"


# -- load-configuration ---------------------------------------------------------------------------

_LOAD_ATTRIBUTES = frozenset({"action", "format", "rollback", "compare", "url", "rescue"})
_LOAD_CHILDREN = frozenset({"configuration", "configuration-text", "configuration-set",
                            "configuration-json"})  # fmt: skip


async def load_configuration(session: Session, op: etree._Element) -> Result:
    params = _parameters(op, _LOAD_ATTRIBUTES, _LOAD_CHILDREN)
    if "url" in params or "rescue" in params:
        raise NetconfRpcError(tag="operation-not-supported",
                              message="Loading from a URL or the rescue configuration is not "
                              "supported")  # fmt: skip
    if "rollback" in params:  # PyEZ adds compare="rollback": the same request
        await rollback_ops.load_number(session, _rollback(params["rollback"]))
        return [_load_results()]
    action = _choice(params, "action", "merge", ("merge", "replace", "override", "set"))
    form = _choice(params, "format", "xml", ("xml", "text"))
    schema = session.ctx.schema
    default = "replace" if action == "override" else "merge"
    limit = ops.MAX_EDIT_ELEMENTS  # parsing stops there: text is bounded as edit-config is
    try:
        if action == "set":
            edits = junos_set.parse_set(_text(op, "configuration-set", "configuration-text"),
                                        schema, limit)  # fmt: skip
        elif form == "text":
            text = _text(op, "configuration-text")
            tree = junos_text.parse(text, schema, replace=action == "replace", limit=limit)
            edits = [(tree, default)]
        else:
            configuration = _configuration(op)
            ops.check_edit_size(configuration)
            edits = [(junos_xml.from_junos(configuration, schema,
                                           replace=action == "replace"), default)]  # fmt: skip
    except JunosSyntaxError as exc:
        raise _syntax(exc) from None
    except JunosTooBig:
        raise NetconfRpcError(
            tag="too-big", message=f"A configuration in one request may carry at most {limit} "
            "statements; split it over several load-configuration requests",
        ) from None
    for tree, _ in edits:
        ops.check_edit_size(tree)
    session.ctx.datastores.edit_all("candidate", edits, session.principal, session.session_id)
    return [_load_results()]


def _text(op: etree._Element, *names: str) -> str:
    for name in names:
        holder = _child(op, name)
        if holder is not None:
            return holder.text or ""
    raise NetconfRpcError(tag="missing-element", type="protocol",
                          message=f"load-configuration needs <{names[0]}>",
                          info={"bad-element": names[0]})  # fmt: skip


def _configuration(op: etree._Element) -> etree._Element:
    configuration = _child(op, "configuration")
    if configuration is None:
        raise NetconfRpcError(tag="missing-element", type="protocol",
                              message="load-configuration needs <configuration>",
                              info={"bad-element": "configuration"})  # fmt: skip
    inner = _child(configuration, "configuration")  # a client that wrapped it twice
    return configuration if inner is None or len(configuration) != 1 else inner


def _load_results() -> etree._Element:
    # over NETCONF Junos answers <ok/> inside (JUNOScript's <load-success/> is not used here)
    results = etree.Element("load-configuration-results")
    etree.SubElement(results, "ok")
    return results


# -- commit-configuration -------------------------------------------------------------------------

_COMMIT_CHILDREN = frozenset({"check", "confirmed", "confirm-timeout", "log", "synchronize",
                              "force-synchronize", "full", "at-time"})  # fmt: skip
DEFAULT_CONFIRM_MINUTES = 10  # Junos's


async def commit_configuration(session: Session, op: etree._Element) -> Result:
    _parameters(op, frozenset({"detail"}), _COMMIT_CHILDREN)
    session.require("configure")
    datastores = session.ctx.datastores
    if _child(op, "at-time") is not None:
        raise NetconfRpcError(tag="operation-not-supported",
                              message="commit at a later time is not supported",
                              info={"bad-element": "at-time"})  # fmt: skip
    if _child(op, "check") is not None:  # commit check: validate as a commit would, change nothing
        session.ctx.txn.validate(datastores.view(session.principal), session.principal)
        return [_commit_results("commit-check-success")]
    confirmed = _child(op, "confirmed") is not None
    minutes = DEFAULT_CONFIRM_MINUTES
    timeout = _child(op, "confirm-timeout")
    if timeout is not None:
        text = (timeout.text or "").strip()
        if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
            raise NetconfRpcError(tag="invalid-value",
                                  message="confirm-timeout must be 1..65535 minutes",
                                  info={"bad-element": "confirm-timeout"})  # fmt: skip
        minutes = int(text)
    log = _child(op, "log")
    await datastores.commit(
        session.principal, session.session_id, confirmed=confirmed, timeout=minutes * 60,
        comment=(log.text or "").strip() if log is not None else "",
    )  # fmt: skip
    return [_commit_results("commit-success")]


def _commit_results(outcome: str) -> etree._Element:
    results = _junos("commit-results")
    engine = etree.SubElement(results, "routing-engine")
    engine.set(f"{{{JUNOS_NS}}}style", "normal")
    etree.SubElement(engine, "name").text = "re0"
    etree.SubElement(engine, outcome)
    return results


# -- information ----------------------------------------------------------------------------------


async def get_commit_information(session: Session, op: etree._Element) -> Result:
    """``show system commit``: the history, newest first, numbered as ``rollback N``."""
    _parameters(op, frozenset(), frozenset())
    session.require("view", "view-configuration")
    information = _junos("commit-information")
    for index, entry in enumerate(session.ctx.datastores.state.history()):
        commit = etree.SubElement(information, "commit-history")
        etree.SubElement(commit, "sequence-number").text = str(index)
        etree.SubElement(commit, "user").text = entry.user
        etree.SubElement(commit, "client").text = "other" if entry.user == "system" else "netconf"
        when = etree.SubElement(commit, "date-time")
        when.set(f"{{{JUNOS_NS}}}seconds", str(int(entry.time)))
        when.text = _when(entry.time)
        if entry.comment:
            etree.SubElement(commit, "log").text = entry.comment
    return [information]


_SOFTWARE_CHILDREN = frozenset({"brief", "detail", "extensive", "local", "all-servers", "node",
                                "all-members", "invoke-on"})  # fmt: skip


async def get_software_information(session: Session, op: etree._Element) -> Result:
    """``show version``: what PyEZ's facts read (host-name, product-model, junos-version).
    The host name is shown to those who may read it, like any configuration."""
    _parameters(op, frozenset({"format"}), _SOFTWARE_CHILDREN)
    information = _junos("software-information")
    host = session.ctx.txn.running.findtext(f"{{{_SYSTEM_NS}}}system/{{{_SYSTEM_NS}}}host-name")
    if host and access.may_read(session.principal, _HOST_NAME):
        etree.SubElement(information, "host-name").text = host
    etree.SubElement(information, "product-model").text = PRODUCT
    etree.SubElement(information, "product-name").text = PRODUCT
    etree.SubElement(information, "junos-version").text = VERSION
    package = etree.SubElement(information, "package-information")
    etree.SubElement(package, "name").text = "junos"
    etree.SubElement(package, "comment").text = f"{PRODUCT} {PACKAGE_VERSION} [{VERSION}]"
    return [information]


# -- exclusive configuration --------------------------------------------------------------------


async def lock_configuration(session: Session, op: etree._Element) -> Result:
    """``configure exclusive``: the candidate's NETCONF lock."""
    _parameters(op, frozenset(), frozenset())
    session.require("configure")
    session.ctx.datastores.lock("candidate", session.session_id, session.principal)
    return None


async def unlock_configuration(session: Session, op: etree._Element) -> Result:
    _parameters(op, frozenset(), frozenset())
    session.ctx.datastores.unlock("candidate", session.session_id, session.principal)
    return None


HANDLERS = {
    "get-configuration": get_configuration,
    "load-configuration": load_configuration,
    "commit-configuration": commit_configuration,
    "get-commit-information": get_commit_information,
    "get-software-information": get_software_information,
    "lock-configuration": lock_configuration,
    "unlock-configuration": unlock_configuration,
    **junos_show.HANDLERS,  # show services flow-tap
}
