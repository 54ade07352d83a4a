"""Operational state for ``<get>``: RFC 6022 netconf-state, RFC 8525/7895 yang-library, the
session's own authorization (Junos ``show cli authorization``) and registered providers."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from lxml import etree

from flowtap.config.xmlutil import element
from flowtap.netconf.library import MONITORING_NS

if TYPE_CHECKING:
    from flowtap.netconf.session import Session

SYSTEM_NS = "urn:flowtap:yang:system"


def _time(value: float | datetime.datetime) -> str:
    if isinstance(value, float):
        value = datetime.datetime.fromtimestamp(value, datetime.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def netconf_state(session: Session) -> etree._Element:
    ctx = session.ctx
    m = MONITORING_NS
    # transport is an identityref: its value needs a prefix bound to the module namespace
    state = element(f"{{{m}}}netconf-state", m, ncm=m)
    caps = etree.SubElement(state, f"{{{m}}}capabilities")
    for uri in ctx.library.capabilities:
        etree.SubElement(caps, f"{{{m}}}capability").text = uri
    stores = etree.SubElement(state, f"{{{m}}}datastores")
    for name in ("running", "candidate", "startup"):
        store = etree.SubElement(stores, f"{{{m}}}datastore")
        etree.SubElement(store, f"{{{m}}}name").text = name
        holder = ctx.datastores.locks.get(name)
        if holder is not None:
            locks = etree.SubElement(store, f"{{{m}}}locks")
            glob = etree.SubElement(locks, f"{{{m}}}global-lock")
            etree.SubElement(glob, f"{{{m}}}locked-by-session").text = str(holder)
            etree.SubElement(glob, f"{{{m}}}locked-time").text = _time(session.login_time)
    state.append(ctx.library.schemas_element())
    sessions = etree.SubElement(state, f"{{{m}}}sessions")
    viewer = session.principal
    for other in ctx.sessions.values():
        if other.principal.user != viewer.user and not viewer.has("view"):
            continue
        if other.principal.user != viewer.user and other.principal.is_li and not viewer.has(
            "flow-tap"
        ):
            continue  # who the LI users are is itself LI (li_policy); a mediation device too
        el = etree.SubElement(sessions, f"{{{m}}}session")
        for name, value in (
            ("session-id", str(other.session_id)),
            ("transport", "ncm:netconf-ssh"),
            ("username", other.principal.user),
            ("source-host", other.peer),
            ("login-time", _time(other.login_time)),
            ("in-rpcs", str(other.in_rpcs)),
            ("in-bad-rpcs", str(other.in_bad_rpcs)),
            ("out-rpc-errors", str(other.out_rpc_errors)),
            ("out-notifications", str(other.out_notifications)),
        ):
            etree.SubElement(el, f"{{{m}}}{name}").text = value
    stats = etree.SubElement(state, f"{{{m}}}statistics")
    s = ctx.stats
    counters: tuple[tuple[str, object], ...] = (
        ("netconf-start-time", _time(s.start_time)),
        ("in-bad-hellos", s.in_bad_hellos),
        ("in-sessions", s.in_sessions),
        ("dropped-sessions", s.dropped_sessions),
        ("in-rpcs", s.in_rpcs),
        ("in-bad-rpcs", s.in_bad_rpcs),
        ("out-rpc-errors", s.out_rpc_errors),
        ("out-notifications", s.out_notifications),
    )
    for counter, count in counters:
        etree.SubElement(stats, f"{{{m}}}{counter}").text = str(count)
    return state


def authorization(session: Session) -> etree._Element:
    p = session.principal
    auth = element(f"{{{SYSTEM_NS}}}authorization", SYSTEM_NS)
    etree.SubElement(auth, f"{{{SYSTEM_NS}}}user").text = p.user
    etree.SubElement(auth, f"{{{SYSTEM_NS}}}template-user").text = p.template_user
    etree.SubElement(auth, f"{{{SYSTEM_NS}}}login-class").text = p.login_class
    etree.SubElement(auth, f"{{{SYSTEM_NS}}}authentication-method").text = p.method
    for flag in sorted(p.permissions):
        etree.SubElement(auth, f"{{{SYSTEM_NS}}}permissions").text = flag
    return auth


def state_elements(session: Session) -> list[etree._Element]:
    ctx = session.ctx
    elements = [netconf_state(session), ctx.library.yang_library(), ctx.library.modules_state(),
                ctx.library.streams(), authorization(session)]  # fmt: skip
    for provider in ctx.state_providers:
        elements.extend(provider(session.principal))
    return elements
