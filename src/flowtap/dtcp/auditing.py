"""LI audit records for DTCP requests, criteria removals and authentication decisions.

The LI audit log (:mod:`flowtap.audit`) is the only place where targets, criteria, control
source names and peers may be written. This module turns DTCP events into its records and
offers the two ways to append them:

- :meth:`LiAudit.submit` starts an append now and returns its future, so that pipelined
  requests of one channel are chained in order and made durable by one group-commit fsync;
  the session awaits the futures before it replies.
- :meth:`LiAudit.auth_listener` is the ``on_auth`` callback of an SSH service: the decision is
  durable before the client learns it (the SSH layer awaits it), and a refused write refuses
  the login (fail closed).

A DTCP record has: ``event`` "dtcp", ``result`` the status line ("200 OK", or
"497 Invalid Authentication (not sent)" for a request dropped unanswered), ``principal`` the
SSH user, ``template`` its template user, ``peer``, ``session``, ``method``, ``criteria_id``,
``cdest_id``, ``target`` (ADD: the criterion as installed, or the request's fields when it
was refused) and ``reason`` (Seq, HMAC verdict, refusal detail).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence

from flowtap.audit import AuditLog, AuditRecord
from flowtap.auth.authenticator import AuthDecision
from flowtap.dtcp.filters import BYTE_MAX, PORT_MAX
from flowtap.dtcp.intercept_id import render_intercept_id
from flowtap.dtcp.message import Request, escape
from flowtap.dtcp.replies import render_address_filter, render_value_filter
from flowtap.errors import AuditError
from flowtap.intercept.criteria import Criterion, Flag, Jmirror
from flowtap.intercept.registry import Entry

LOG = logging.getLogger(__name__)
MAX_TARGET = 8192
SLICE = 256  # records encoded between two turns of the event loop (about 10 ms)
_FLAGS = ((Flag.STATIC, "Static"), (Flag.SEND_ASYNC, "SendAsync"))


class LiAudit:
    """Appends to the LI audit log; without a log (tests of parts) every append fails."""

    def __init__(self, log: AuditLog | None) -> None:
        self.log = log
        self._unawaited: set[asyncio.Future[None]] = set()

    def submit(self, record: AuditRecord) -> asyncio.Future[None]:
        """Chain ``record`` now (call order is file order); the future resolves when it is
        durable and raises :class:`flowtap.errors.AuditError` when it cannot be. No task per
        record: it would cost every reply a turn of the event loop."""
        try:
            if self.log is None:
                raise AuditError("no LI audit log")
            return self.log.append_nowait(record)
        except AuditError as error:
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(error)
            return failed

    async def _append(self, record: AuditRecord) -> None:
        if self.log is None:
            raise AuditError("no LI audit log")
        await self.log.append(record)

    def spawn(self, records: Iterable[AuditRecord]) -> None:
        """Append records nobody waits for (expiries, clears): failures are logged. One task
        makes and chains them in order, ``SLICE`` at a time with a turn of the event loop in
        between, so clearing thousands of criteria (flow-tap removed, shutdown) never holds
        the loop. ``records`` may be lazy; what it reads must not change meanwhile."""
        future = asyncio.ensure_future(self._append_all(iter(records)))
        self._unawaited.add(future)
        future.add_done_callback(self._unawaited.discard)
        future.add_done_callback(_log_failure)

    async def _append_all(self, records: Iterator[AuditRecord]) -> None:
        durable = []
        while part := list(itertools.islice(records, SLICE)):
            if self.log is None:
                raise AuditError("no LI audit log")
            durable += [self.log.append_nowait(record) for record in part]
            await asyncio.sleep(0)
        await asyncio.gather(*durable)

    async def drain(self) -> None:
        """Wait for the records :meth:`spawn` started (before closing the log)."""
        while self._unawaited:
            await asyncio.gather(*self._unawaited, return_exceptions=True)

    def auth_listener(self) -> Callable[[AuthDecision, str], Awaitable[None]]:
        async def on_auth(decision: AuthDecision, service: str) -> None:
            await self._append(decision.audit_record(service))

        return on_auth

    def removal_listener(self) -> Callable[[Sequence[Entry], str], None]:
        def on_removed(entries: Sequence[Entry], reason: str) -> None:
            self.spawn(removal_record(e, reason) for e in list(entries))

        return on_removed


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        LOG.error("LI audit append failed: %s", type(future.exception()).__name__)


def removal_record(entry: Entry, reason: str) -> AuditRecord:
    """A criterion left the table without a DELETE (timeout, flow-tap removed, ...)."""
    return AuditRecord(
        event="dtcp-remove", result=reason, principal=entry.source, peer=entry.peer,
        criteria_id=entry.criteria_id, cdest_id=",".join(entry.cdest_ids),
    )  # fmt: skip


def render_criterion(criterion: Criterion) -> str:
    """The criterion as installed, one ``Name: value`` per field, ``; ``-separated."""
    m = criterion.match
    parts = []
    for name, address in (("Source-Address", m.source_address),
                          ("Dest-Address", m.dest_address)):  # fmt: skip
        if not address.is_wildcard:
            parts.append(f"{name}: {render_address_filter(address)}")
    for name, values, maximum in (
        ("Protocol", m.protocol, BYTE_MAX), ("Source-Port", m.source_port, PORT_MAX),
        ("Dest-Port", m.dest_port, PORT_MAX), ("ICMP-Type", m.icmp_type, BYTE_MAX),
        ("ICMP-Code", m.icmp_code, BYTE_MAX),
    ):  # fmt: skip
        if not values.is_wildcard:
            parts.append(f"{name}: {render_value_filter(values, maximum)}")
    if m.input_interfaces:
        parts.append("X-JTap-Input-Interface: " + ",".join(map(escape, m.input_interfaces)))
    if m.ip_version is not None:
        parts.append(f"X-JTap-IP-Version: ipv{m.ip_version}")
    for d in criterion.destinations:
        parts.append(f"Cdest {escape(d.cdest_id)}: {d.dest_address} port {d.dest_port} from "
                     f"{d.source_address} port {d.source_port} ttl {d.ttl}")  # fmt: skip
    if isinstance(criterion.delivery, Jmirror):
        jm = criterion.delivery
        parts.append(f"X-MD-Intercept-Id: {render_intercept_id(jm)} (jmirror intercept ID "
                     f"{jm.intercept_id}, session ID {jm.session_id})")
    parts.append(f"Priority: {criterion.priority}")
    flags = [text for flag, text in _FLAGS if criterion.flags & flag]
    if flags:
        parts.append("Flags: " + ",".join(flags))
    t = criterion.timeouts
    for name, value in (("Timeout-Idle", t.idle), ("Timeout-Total", t.total),
                        ("Timeout-Packets", t.packets), ("Timeout-Bytes", t.bytes)):  # fmt: skip
        if value is not None:
            parts.append(f"{name}: {value}")
    return "; ".join(parts)[:MAX_TARGET]


def render_request(request: Request) -> str:
    """A request's fields as received (values still ``\\ddd``-escaped: no line breaks), for
    refused ADDs."""
    return "; ".join(f"{name}: {value}" for name, value in request.headers)[:MAX_TARGET]
