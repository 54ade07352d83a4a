"""What each DTCP method does to the registry, and its reply: the dispatch table of a session.

Every handler returns an :class:`Outcome`: the signed reply, the LI audit record, and how to
``confirm`` (after the record is durable) or ``undo`` (when it cannot be written) its change.
The session awaits each handler in turn, so a pipelined batch is applied in arrival order and
its records share one fsync. ``DtcpError`` (raised by the codec and the registry) becomes an
error reply echoing the offending header.

No request may hold the event loop for a time that grows with the table (issue 13): DELETE and
REFRESH apply their change ``SLICE`` criteria at a time and yield between slices, and a LIST
reply is a lazy sequence of pieces the session renders and writes slice by slice. Between two
slices the other sessions' short requests go first (:mod:`flowtap.dtcp.right_of_way`). What others
see meanwhile is what they would see had the request arrived a moment later: a criterion
deleted, expired or cleared between two slices is skipped (``Registry.holds``) and not counted;
a LIST shows the criteria selected when it arrived, with their counters read at that moment.

Checks left to this layer (the codec only reads the request):
- 901 JTap-Failure: an ``X-JTap-Input-Interface`` that names no configured interface unit;
- 430 Unknown Content Destination: a LIST whose Cdest-ID names none of the source's
  destinations (see :mod:`flowtap.intercept.registry` for the DELETE/REFRESH counterpart).

The registry refuses with intercept errors, which :func:`request_error` turns into DTCP ones:
550 (criteria limit), 551 (content destination limit), 431 (an unknown listed Criteria-ID,
echoing the header), 901 (a content destination the dataplane cannot serve: TTL 0, ...).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from flowtap.audit import AuditRecord
from flowtap.auth.principal import Principal
from flowtap.config.model import Config
from flowtap.dtcp.add_fields import parse_add
from flowtap.dtcp.auditing import render_criterion, render_request
from flowtap.dtcp.fields import RequestIdentity, parse_delete, parse_list, parse_noop, parse_refresh
from flowtap.dtcp.filters import CriteriaSelector, parse_criteria_selector
from flowtap.dtcp.headers import INPUT_INTERFACE
from flowtap.dtcp.message import Request
from flowtap.dtcp.replies import (
    ListEntry,
    add_reply,
    count_reply,
    dtcp_error_reply,
    list_reply_parts,
    noop_reply,
)
from flowtap.dtcp.status import DtcpRequestError, reason_phrase
from flowtap.errors import (
    DestinationLimitError,
    DtcpError,
    FlowtapError,
    InterceptError,
    InterceptLimitError,
    UnknownInterceptError,
    UnservableInterceptError,
)
from flowtap.intercept.criteria import Criterion, Flag
from flowtap.intercept.registry import Entry, Registry

BULK_METHODS = frozenset({"LIST", "DELETE", "REFRESH"})
"""Methods whose work grows with the criteria they select."""
FEW = 4
"""Criteria named one by one up to which a LIST, DELETE or REFRESH is a short request."""
SLICE = 32
"""Criteria per slice of a DELETE or REFRESH: about a millisecond of work between two turns of
the event loop. A request of another session needs several turns (SSH, channel, audit, reply),
each of which may wait for one slice: with 256 a NOOP took 0.2-0.5 s during big LISTs on a loaded
2-core machine, with 64 still tens of milliseconds (bench/dtcp_bulk_fairness.py)."""
LIST_SLICE = 16
"""LIST rows rendered per piece; the session writes as many pieces at once as it renders in a
turn (``right_of_way.TURN``), so the turn, not the piece, bounds what others wait for."""


@dataclass(slots=True)
class Outcome:
    """The result of one message; ``reply`` None means it is not answered (dropped)."""

    status: int
    reply: bytes | Iterator[bytes] | None  # pieces: written one by one, the loop runs between
    record: AuditRecord
    version: str = "0.7"
    seq: int | None = None
    confirm: Callable[[], None] | None = None
    undo: Callable[[], None] | None = None
    close: bool = False
    changed: str | None = None  # the control source whose criteria this changed: its 200 OK
    # waits until the change is live in the dataplane


@dataclass(slots=True)
class RequestContext:
    """What a handler may use besides the request: one per session."""

    registry: Registry
    principal: Principal
    peer: str
    session: str
    config: Callable[[], Config]
    give_way: Callable[[], Awaitable[None]]  # before each slice of an O(N) request

    def record(
        self, method: str | None, result: str, *, reason: str | None = None,
        criteria_id: int | str | None = None, cdest_id: str | None = None,
        target: str | None = None,
    ) -> AuditRecord:  # fmt: skip
        return AuditRecord(
            event="dtcp", result=result, principal=self.principal.user,
            template=self.principal.template_user, peer=self.peer, session=self.session,
            method=method, criteria_id=criteria_id, cdest_id=cdest_id, target=target,
            reason=reason,
        )  # fmt: skip


Handler = Callable[[RequestContext, Request, RequestIdentity, str], Awaitable[Outcome]]


def status_line(status: int) -> str:
    return f"{status} {reason_phrase(status)}"


def request_error(error: InterceptError, criteria_id: str | None = None) -> DtcpRequestError:
    """The DTCP refusal for an intercept error; ``criteria_id`` is the request's Criteria-ID
    header, echoed when a listed ID is unknown."""
    if isinstance(error, UnknownInterceptError):
        parameter = None if criteria_id is None else ("criteria-id", criteria_id)
        return DtcpRequestError(431, "criteria-id: unknown", parameter)
    if isinstance(error, DestinationLimitError):
        return DtcpRequestError(551, str(error))
    if isinstance(error, UnservableInterceptError):
        return DtcpRequestError(901, str(error))
    if isinstance(error, InterceptLimitError):
        return DtcpRequestError(550, str(error))
    raise TypeError(f"no DTCP status for {type(error).__name__}")


def refused(
    ctx: RequestContext, request: Request, ident: RequestIdentity | None, note: str,
    error: DtcpError, target: str | None = None,
) -> Outcome:  # fmt: skip
    """The error reply (and record) for ``error``; ``ident`` None when it could not be read."""
    seq = ident.seq if ident is not None else None
    reply = dtcp_error_reply(error, request.version, seq, datetime.now())
    record = ctx.record(
        request.method, status_line(error.status), reason=f"{note}; {error.detail or ''}",
        criteria_id=request.headers.get("criteria-id"), cdest_id=request.headers.get("cdest-id"),
        target=target,
    )  # fmt: skip
    return Outcome(error.status, reply, record, request.version, seq)


async def add(ctx: RequestContext, request: Request, ident: RequestIdentity, note: str) -> Outcome:
    registry = ctx.registry
    try:
        criterion = parse_add(request, ident.csource_id, registry.next_id(ident.csource_id))
        _check_interfaces(criterion, ctx.config(), request)
        entry = registry.add(criterion, ctx.peer)
    except InterceptError as error:
        return refused(ctx, request, ident, note, request_error(error), render_request(request))
    except DtcpError as error:
        return refused(ctx, request, ident, note, error, render_request(request))
    reply = add_reply(request.version, ident.seq, entry.criteria_id, datetime.now())
    record = ctx.record(
        "ADD", "200 OK", reason=note, criteria_id=entry.criteria_id,
        cdest_id=",".join(entry.cdest_ids), target=render_criterion(criterion),
    )  # fmt: skip
    return Outcome(200, reply, record, request.version, ident.seq,
                   confirm=functools.partial(registry.confirm, entry),
                   undo=functools.partial(registry.discard, entry),
                   changed=ident.csource_id)  # fmt: skip


async def delete(
    ctx: RequestContext, request: Request, ident: RequestIdentity, note: str
) -> Outcome:
    registry = ctx.registry
    try:
        params = parse_delete(request)
        found = _select(registry, ident, params.criteria, params.cdest_id, request)
    except DtcpError as error:
        return refused(ctx, request, ident, note, error)
    targets: list[Entry] = []
    epoch = None
    kept = [e for e in found if params.static or not e.criterion.static]
    async for part in _slices(kept, ctx.give_way):
        held = [e for e in part if registry.holds(e)]
        targets += held
        changed = registry.delete(held)
        epoch = changed if epoch is None else epoch  # a clear() in between: nothing to restore
    reply = count_reply(request.version, ident.seq, len(targets), datetime.now())
    record = ctx.record(
        "DELETE", "200 OK", reason=f"{note}; deleted {len(targets)}",
        criteria_id=",".join(str(e.criteria_id) for e in targets) or None,
        cdest_id=params.cdest_id,
    )  # fmt: skip
    undo = None if epoch is None else functools.partial(registry.restore, targets, epoch)
    return Outcome(200, reply, record, request.version, ident.seq, undo=undo,
                   changed=ident.csource_id if targets else None)


async def refresh(
    ctx: RequestContext, request: Request, ident: RequestIdentity, note: str
) -> Outcome:
    registry = ctx.registry
    try:
        params = parse_refresh(request)
        found = _select(registry, ident, params.criteria, params.cdest_id, request)
    except DtcpError as error:
        return refused(ctx, request, ident, note, error)
    saved = []
    async for part in _slices(found, ctx.give_way):
        saved += registry.refresh(part, params.timeouts)
    reply = count_reply(request.version, ident.seq, len(saved), datetime.now())
    record = ctx.record(
        "REFRESH", "200 OK", reason=f"{note}; refreshed {len(saved)}",
        criteria_id=",".join(str(s.entry.criteria_id) for s in saved) or None,
        cdest_id=params.cdest_id, target=render_request(request),
    )  # fmt: skip
    return Outcome(200, reply, record, request.version, ident.seq,
                   undo=functools.partial(registry.unrefresh, saved),
                   changed=ident.csource_id if saved else None)  # fmt: skip


async def list_(
    ctx: RequestContext, request: Request, ident: RequestIdentity, note: str
) -> Outcome:
    registry = ctx.registry
    try:
        params = parse_list(request)
        if params.cdest_id is not None and not registry.knows_cdest(
            ident.csource_id, params.cdest_id
        ):
            raise DtcpRequestError(430, "cdest-id: unknown",
                                   ("cdest-id", request.headers.get("cdest-id") or ""))  # fmt: skip
        found = _select(registry, ident, params.criteria, params.cdest_id, request)
    except DtcpError as error:
        return refused(ctx, request, ident, note, error)
    rows = ([ListEntry(e.criterion, e.peer, stats) for e, stats in part]
            for part in registry.stats_slices(found, bool(params.flags & Flag.STATS), LIST_SLICE))
    reply = list_reply_parts(request.version, ident.seq, rows, len(found), params.flags,
                             datetime.now())  # fmt: skip
    record = ctx.record(
        "LIST", "200 OK", reason=f"{note}; listed {len(found)}",
        criteria_id=request.headers.get("criteria-id"), cdest_id=params.cdest_id,
    )  # fmt: skip
    return Outcome(200, reply, record, request.version, ident.seq)


async def noop(
    ctx: RequestContext, request: Request, ident: RequestIdentity, note: str
) -> Outcome:
    """NOOP. ``Flags: SendAsync`` asks for a NoOp notification, which only exists over UDP
    (no notification target is configurable here): it is accepted and has no effect."""
    try:
        parse_noop(request)
    except DtcpError as error:
        return refused(ctx, request, ident, note, error)
    reply = noop_reply(request.version, ident.seq, datetime.now())
    return Outcome(200, reply, ctx.record("NOOP", "200 OK", reason=note), request.version,
                   ident.seq)  # fmt: skip


HANDLERS: dict[str, Handler] = {
    "ADD": add,
    "DELETE": delete,
    "REFRESH": refresh,
    "LIST": list_,
    "NOOP": noop,
}


def grows_with_table(request: Request) -> bool:
    """Whether ``request``'s work may grow with the criteria table: a LIST, DELETE or REFRESH,
    unless it names at most ``FEW`` criteria one by one (a mediation device deleting the
    criterion it added is not bulk work)."""
    if request.method not in BULK_METHODS:
        return False
    raw = request.headers.get("criteria-id")
    if raw is None:
        return True
    try:
        selector = parse_criteria_selector(raw)
    except (ValueError, FlowtapError):
        return False  # refused at once
    return not (selector.only_listed and len(selector.listed_ids) <= FEW)


async def _slices(entries: Sequence[Entry], give_way: Callable[[], Awaitable[None]]
                  ) -> AsyncIterator[Sequence[Entry]]:  # fmt: skip
    """``entries`` ``SLICE`` at a time; between two slices, other sessions' short requests go
    first (``give_way``) and the event loop turns."""
    for start in range(0, len(entries), SLICE):
        if start:
            await give_way()
            await asyncio.sleep(0)
        yield entries[start : start + SLICE]


def _check_interfaces(criterion: Criterion, config: Config, request: Request) -> None:
    for name in criterion.match.input_interfaces:
        device, _, unit = name.partition(".")
        iface = config.interfaces.get(device)
        if iface is None or not unit.isdigit() or int(unit) not in iface.units:
            raise DtcpRequestError(901, f"{INPUT_INTERFACE}: unknown interface",
                                   (INPUT_INTERFACE, request.headers.get(INPUT_INTERFACE) or ""))


def _select(registry: Registry, ident: RequestIdentity, criteria: CriteriaSelector | None,
            cdest_id: str | None, request: Request) -> list[Entry]:  # fmt: skip
    try:
        return registry.select(ident.csource_id, criteria, cdest_id)
    except InterceptError as error:
        raise request_error(error, request.headers.get("criteria-id")) from None
