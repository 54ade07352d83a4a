"""What ``flowtap-cli`` asks flowtapd, as Junos XML API and NETCONF requests, and the answers as
plain data.

Each command is one request that the server answers for this user, with the same checks as
for every other client (its login class, LI confidentiality). Nothing is computed here that the
server could refuse: the configuration text, the ``show | compare`` diff, the ``set`` lines and
the commit history all come rendered or listed by flowtapd. An ``<rpc-error>`` becomes
:class:`CommandFailed` carrying the server's own error-message.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from flowtap.errors import RpcFailed
from flowtap.tools.netconf_client import NC_NS, NetconfClient

MONITORING_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
SERVICES_NS = "urn:flowtap:yang:services"
JUNOS_SECONDS = "seconds"  # local name of the junos:seconds attribute


class CommandFailed(Exception):
    """The server refused a request; the message is its error-message (or error-tag)."""


class UsageError(Exception):
    """Not a command of flowtap-cli, or a malformed one (found before asking the server)."""


def failure_text(exc: RpcFailed) -> str:
    errors = exc.reply.findall(f"{{{NC_NS}}}rpc-error")
    texts = []
    for error in errors:
        message = (error.findtext(f"{{{NC_NS}}}error-message") or "").strip()
        texts.append(message or (error.findtext(f"{{{NC_NS}}}error-tag") or "error").strip())
    return "; ".join(texts) or str(exc)


async def call(nc: NetconfClient, body: str) -> etree._Element:
    try:
        return await nc.rpc(body)
    except RpcFailed as exc:
        raise CommandFailed(failure_text(exc)) from None


def _local(element: etree._Element, name: str) -> etree._Element | None:
    """The first descendant called ``name`` in whatever namespace (Junos replies have none of
    their own: they inherit the reply's)."""
    for found in element.iter():
        if isinstance(found.tag, str) and etree.QName(found).localname == name:
            return found
    return None


def _local_text(element: etree._Element, name: str) -> str:
    found = _local(element, name)
    return (found.text or "") if found is not None else ""


# -- configuration --------------------------------------------------------------------------------


async def configuration(nc: NetconfClient, database: str, form: str) -> str:
    """``database`` committed or candidate, ``form`` text (curly braces) or set (lines)."""
    reply = await call(nc, f'<get-configuration database="{database}" format="{form}"/>')
    return _local_text(reply, "configuration-text" if form == "text" else "configuration-set")


async def compare(nc: NetconfClient, rollback: int = 0) -> str:
    """The candidate against commit ``rollback`` (``show | compare``); "" when equal."""
    reply = await call(nc, f'<get-configuration compare="rollback" rollback="{rollback}"/>')
    text = _local_text(reply, "configuration-output")
    return "" if not text.strip() else text


async def load_set(nc: NetconfClient, line: str) -> None:
    """One ``set``/``delete`` line into the candidate (the server parses it). The server numbers
    the lines of what it loads; this load is one line, so its "(line 1)" would point at the
    wrong line of a file of commands, and is left out."""
    try:
        await call(nc, '<load-configuration action="set" format="text"><configuration-set>'
                       f"{escape(line)}</configuration-set></load-configuration>")  # fmt: skip
    except CommandFailed as exc:
        raise CommandFailed(str(exc).removesuffix(" (line 1)")) from None


async def load_rollback(nc: NetconfClient, number: int) -> None:
    await call(nc, f'<load-configuration rollback="{number}"/>')


async def commit(nc: NetconfClient, *, check: bool = False, confirm_minutes: int | None = None,
                 comment: str | None = None) -> None:  # fmt: skip
    parts = ["<check/>"] if check else []
    if confirm_minutes is not None:
        parts += ["<confirmed/>", f"<confirm-timeout>{confirm_minutes}</confirm-timeout>"]
    if comment is not None:
        parts.append(f"<log>{escape(comment)}</log>")
    await call(nc, f"<commit-configuration>{''.join(parts)}</commit-configuration>")


async def lock(nc: NetconfClient) -> None:
    await call(nc, "<lock-configuration/>")


async def unlock(nc: NetconfClient) -> None:
    await call(nc, "<unlock-configuration/>")


async def discard(nc: NetconfClient) -> None:
    await call(nc, "<discard-changes/>")


async def cancel_commit(nc: NetconfClient) -> None:
    await call(nc, "<cancel-commit/>")


async def host_name(nc: NetconfClient) -> str:
    """For the prompt; empty when the user may not read it."""
    return _local_text(await call(nc, "<get-software-information/>"), "host-name")


# -- operational state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Commit:
    number: int
    time: str
    seconds: int
    user: str
    client: str
    comment: str


async def commit_history(nc: NetconfClient) -> list[Commit]:
    reply = await call(nc, "<get-commit-information/>")
    commits = []
    for entry in reply.iter():
        if not isinstance(entry.tag, str) or etree.QName(entry).localname != "commit-history":
            continue
        when = _local(entry, "date-time")
        seconds = next((v for k, v in (when.attrib.items() if when is not None else ())
                        if etree.QName(k).localname == JUNOS_SECONDS), "0")  # fmt: skip
        commits.append(Commit(
            number=int(_local_text(entry, "sequence-number") or 0),
            time=(when.text or "") if when is not None else "", seconds=int(seconds),
            user=_local_text(entry, "user"), client=_local_text(entry, "client"),
            comment=_local_text(entry, "log"),
        ))  # fmt: skip
    return commits


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: int
    user: str
    source: str
    login_time: str
    rpcs: int
    current: bool  # the session this command runs in


async def sessions(nc: NetconfClient) -> list[SessionInfo]:
    """The NETCONF sessions this user may see (ietf-netconf-monitoring)."""
    reply = await call(nc, f'<get><filter type="subtree"><netconf-state xmlns="{MONITORING_NS}">'
                           "<sessions/></netconf-state></filter></get>")  # fmt: skip
    m = f"{{{MONITORING_NS}}}"
    out = []
    for s in reply.iter(f"{m}session"):
        session_id = int(s.findtext(f"{m}session-id") or 0)
        out.append(SessionInfo(
            session_id, s.findtext(f"{m}username") or "", s.findtext(f"{m}source-host") or "",
            s.findtext(f"{m}login-time") or "", int(s.findtext(f"{m}in-rpcs") or 0),
            session_id == nc.session_id,
        ))  # fmt: skip
    return out


# the leaves of flow-tap-state in the order of yang/flowtap-services.yang
FLOW_TAP_COUNTERS = ("dtcp-sessions", "criteria", "matched-packets", "matched-bytes",
                     "sent-copies", "dropped-copies", "kernel-packets", "kernel-drops")  # fmt: skip


async def flow_tap_state(nc: NetconfClient) -> dict[str, Any]:
    """``show services flow-tap``: refused by the server (access-denied) without ``flow-tap``."""
    reply = await call(nc, "<get-flow-tap-information/>")
    s = f"{{{SERVICES_NS}}}"
    state = reply.find(f"{s}flow-tap-state")
    if state is None:
        raise CommandFailed("the server sent no flow-tap-state")
    return {
        "status": state.findtext(f"{s}status") or "",
        "degraded-reason": [r.text or "" for r in state.findall(f"{s}degraded-reason")],
        "interface": state.findtext(f"{s}interface") or "",
        "capture-device": [d.text or "" for d in state.findall(f"{s}capture-device")],
        **{name: int(state.findtext(f"{s}{name}") or 0) for name in FLOW_TAP_COUNTERS},
    }


def as_json(rows: list[Commit] | list[SessionInfo]) -> list[dict[str, Any]]:
    return [asdict(row) for row in rows]
