"""Session-level RPCs: close-session, kill-session, create-subscription (RFC 5277), and the
netconf-config-change notification (RFC 6470) sent to subscribers after every commit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config import access
from flowtap.config.diff import Change
from flowtap.config.txn import Diff
from flowtap.config.xmlutil import element
from flowtap.errors import NetconfRpcError
from flowtap.netconf.context import ServerContext
from flowtap.netconf.replies import PREFIXES

if TYPE_CHECKING:
    from flowtap.netconf.session import Session

NOTIF_NS = "urn:ietf:params:xml:ns:netconf:notification:1.0"
NCN_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
Result = list[etree._Element | bytes] | None


async def close_session(session: Session, op: etree._Element) -> Result:
    session.closing = True
    return None


async def kill_session(session: Session, op: etree._Element) -> Result:
    session.require("maintenance")
    text = (op.findtext("{urn:ietf:params:xml:ns:netconf:base:1.0}session-id") or "").strip()
    if not (text.isascii() and text.isdigit()):  # "²".isdigit() is true; int("²") raises
        raise NetconfRpcError(
            tag="missing-element" if not text else "invalid-value", type="protocol",
            message="kill-session needs a numeric session-id", info={"bad-element": "session-id"},
        )  # fmt: skip
    target = int(text)
    if target == session.session_id:
        raise NetconfRpcError(
            tag="invalid-value", message="A session cannot kill itself (use close-session)",
            info={"bad-element": "session-id"},
        )  # fmt: skip
    victim = session.ctx.sessions.get(target)
    if victim is None:
        raise NetconfRpcError(
            tag="invalid-value", message=f"No session {target}", info={"bad-element": "session-id"}
        )
    await victim.end()  # its locks are released and its unconfirmed commit reverted
    return None


async def create_subscription(session: Session, op: etree._Element) -> Result:
    stream = (op.findtext(f"{{{NOTIF_NS}}}stream") or "NETCONF").strip()
    if stream != "NETCONF":
        raise NetconfRpcError(tag="invalid-value", message=f"Unknown stream {stream!r}",
                              info={"bad-element": "stream"})  # fmt: skip
    if op.find(f"{{{NOTIF_NS}}}startTime") is not None:
        raise NetconfRpcError(
            tag="operation-failed", message="Replay is not supported (no replay log)",
            info={"bad-element": "startTime"},
        )  # fmt: skip
    if session.subscribed:
        raise NetconfRpcError(
            tag="in-use", type="protocol", message="This session already has a subscription"
        )
    session.subscribed = True
    return None


def config_change_event(
    changes: list[Change], by: Principal | None, source: Session | None, reader: Principal
) -> etree._Element | None:
    """The event for one subscriber, holding only the edits that subscriber may read. A commit
    that touched nothing the subscriber may read sends nothing at all (LI confidentiality)."""
    visible = [c for c in changes if access.may_read(reader, c.node.path)]
    if not visible:
        return None
    event = element(f"{{{NCN_NS}}}netconf-config-change", NCN_NS)
    changed_by = etree.SubElement(event, f"{{{NCN_NS}}}changed-by")
    if by is None or source is None:
        etree.SubElement(changed_by, f"{{{NCN_NS}}}server")
    else:
        etree.SubElement(changed_by, f"{{{NCN_NS}}}username").text = by.user
        etree.SubElement(changed_by, f"{{{NCN_NS}}}session-id").text = str(source.session_id)
        etree.SubElement(changed_by, f"{{{NCN_NS}}}source-host").text = source.peer
    etree.SubElement(event, f"{{{NCN_NS}}}datastore").text = "running"
    for change in visible:
        edit = etree.SubElement(event, f"{{{NCN_NS}}}edit")
        target = etree.SubElement(edit, f"{{{NCN_NS}}}target", nsmap=_prefixes(change.path))
        target.text = change.path
        etree.SubElement(edit, f"{{{NCN_NS}}}operation").text = change.kind
    return event


def _prefixes(path: str) -> dict[str, str]:
    return {p: ns for p, ns in PREFIXES.items() if f"{p}:" in path}


def install_notifier(ctx: ServerContext) -> None:
    """Send netconf-config-change to every subscribed session after each commit."""

    def on_commit(diff: Diff, principal: Principal | None) -> None:
        subscribers = [s for s in ctx.sessions.values() if s.subscribed]
        if not subscribers:
            return
        source = next((s for s in ctx.sessions.values() if s.principal is principal), None)
        for session in subscribers:
            event = config_change_event(diff.changes, principal, source, session.principal)
            if event is not None:
                session.notify(event)

    ctx.txn.listeners.append(on_commit)
