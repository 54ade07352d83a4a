"""Junos ``rollback N`` over NETCONF: the commit history, comparison of two entries, and loading
an entry into the candidate. Everything shown is pruned to what the caller may read."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from lxml import etree

from flowtap.config.xmlutil import parse_top
from flowtap.errors import NetconfRpcError

if TYPE_CHECKING:
    from flowtap.netconf.session import Session

SYSTEM_NS = "urn:flowtap:yang:system"
Result = list[etree._Element | bytes] | None
_NSMAP = {"fts": SYSTEM_NS}  # the module's own prefix (flowtap-system.yang), not lxml's ns0


def _number(op: etree._Element, name: str) -> int | None:
    text = op.findtext(f"{{{SYSTEM_NS}}}{name}")
    if text is None:
        return None
    if not text.strip().isdigit() or int(text) > 49:
        raise NetconfRpcError(tag="invalid-value", message=f"{name} must be 0..49",
                              info={"bad-element": name})  # fmt: skip
    return int(text)


def history_entry(session: Session, number: int) -> etree._Element:
    """Rollback ``number`` as the caller may read it (``rollback`` is needed past 0)."""
    if number > 0:
        session.require("rollback")
    data = session.ctx.datastores.state.load_history(number)
    if data is None:
        raise NetconfRpcError(tag="invalid-value", message=f"There is no rollback {number}",
                              info={"bad-element": "rollback"})  # fmt: skip
    return session.ctx.read_filter.prune(parse_top(data), session.principal)


def _text(tree: etree._Element) -> list[str]:
    return [
        line
        for child in tree
        for line in etree.tostring(child, pretty_print=True).decode().splitlines()
    ]


async def get_rollback_information(session: Session, op: etree._Element) -> Result:
    session.require("view", "view-configuration")
    rollback = _number(op, "rollback")
    compare = _number(op, "compare")
    s = SYSTEM_NS
    out: list[etree._Element | bytes] = []
    if rollback is None:
        for index, entry in enumerate(session.ctx.datastores.state.history()):
            commit = etree.Element(f"{{{s}}}commit", nsmap=_NSMAP)
            etree.SubElement(commit, f"{{{s}}}rollback").text = str(index)
            etree.SubElement(commit, f"{{{s}}}sequence").text = str(entry.number)
            when = datetime.datetime.fromtimestamp(entry.time, datetime.UTC)
            etree.SubElement(commit, f"{{{s}}}date-time").text = when.strftime("%Y-%m-%dT%H:%M:%SZ")
            etree.SubElement(commit, f"{{{s}}}user").text = entry.user
            etree.SubElement(commit, f"{{{s}}}comment").text = entry.comment
            out.append(commit)
        return out
    new = _text(history_entry(session, rollback))
    if compare is None:
        text = "\n".join(new) + "\n"
    else:
        old = _text(history_entry(session, compare))
        # difflib is quadratic in the worst case: compared in a worker, killed at a deadline
        text = await session.ctx.xpath_pool.diff(old, new, f"rollback {compare}",
                                                 f"rollback {rollback}")  # fmt: skip
    output = etree.Element(f"{{{s}}}configuration-output", nsmap=_NSMAP)
    output.text = text
    return [output]


async def load_rollback(session: Session, op: etree._Element) -> Result:
    session.require("configure")
    number = _number(op, "rollback")
    if number is None:
        raise NetconfRpcError(tag="missing-element", type="protocol",
                              message="rollback needs a number", info={"bad-element": "rollback"})
    await load_number(session, number)
    return None


async def load_number(session: Session, number: int) -> None:
    """Junos ``rollback N``: history entry ``number`` becomes the candidate. Only for a caller
    who reads everything: the entry replaces what others cannot see."""
    session.require("configure")
    if not session.ctx.read_filter.sees_everything(session.principal):
        raise NetconfRpcError(tag="access-denied",
                              message="Access denied: rollback needs permission to read everything")
    ds = session.ctx.datastores
    ds.check_writable("candidate", session.session_id)
    tree = history_entry(session, number)
    await ds.copy_config(tree, "candidate", session.principal, session.session_id)
