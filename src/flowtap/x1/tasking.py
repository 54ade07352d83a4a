"""The X1 message layer: ``handle(principal, peer, body) -> bytes`` for every ``POST /X1/NE``
(:class:`flowtap.x1.service.X1Service` calls it once the ADMF's certificate is accepted).

A request is decoded (:mod:`flowtap.x1.decode`); one that cannot be read at all is answered with
an ``X1TopLevelErrorResponse``. Otherwise its messages run one after the other, in order, each
its own transaction, and the response holds one answer per message in the same order: an
``ErrorResponse`` for a message that fails, while the others still run.

Per message:
1. Header: ``admfIdentifier`` must be the certificate's CN (else 1030) and ``neIdentifier`` the
   configured ``ne-identifier`` (else 1060); the version's major (1020) is the codec's check.
2. The handler (:mod:`flowtap.x1.messages`) checks it against the ADMF's state and prepares the
   change (criteria added pending).
3. Every X1 request is a record of the LI audit log (ADMF, peer, message type, XID/DID, targets,
   outcome). A message that changes something has its record made durable first; then the
   change is applied and the answer waits until it is live in the dataplane
   (``publisher.flush`` of the ADMF's lane), as DTCP's ADD and DELETE do. A record that cannot
   be written (the log fails closed) undoes what was prepared and the message gets an
   ``ErrorResponse`` 1000: nothing is done without its record. The records of messages that
   change nothing are written along the way and the response waits for all of them.

The messages of one ADMF are serialised (a lock per ADMF), so two connections of one ADMF never
interleave inside a message. Nothing of a request reaches the ordinary log above DEBUG: the
ADMF, its tasks and targets are lawful-intercept data (SECURITY.md LI-2).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

from flowtap.audit import AuditRecord
from flowtap.auth.principal import Principal
from flowtap.errors import AuditError
from flowtap.intercept.registry import Registry
from flowtap.x1 import model
from flowtap.x1.codes import ErrorCode, X1Error, X1TopLevelError
from flowtap.x1.criteria import owner, render_targets
from flowtap.x1.decode import DEFAULT_MAX_MESSAGES, Decoded, decode_request
from flowtap.x1.encode import encode_response, encode_top_level_error
from flowtap.x1.messages import EVENT, Context, Step, dispatch, error
from flowtap.x1.model import ErrorResponse, Header, MessageError, Request, Response
from flowtap.x1.provisioning import Provisioner
from flowtap.x1.reporting import X3Health
from flowtap.x1.tasks import Store, Task

LOG = logging.getLogger(__name__)
Submit = Callable[[AuditRecord], Awaitable[None]]
AUDIT_FAILED: Final = "the LI audit log cannot record this request; nothing was done"


class Tasking:
    """The X1 tasks of every ADMF, served through :meth:`handle`."""

    def __init__(
        self, registry: Registry, submit: Submit, ne_identifier: Callable[[], str | None],
        health: X3Health, *, max_messages: int = DEFAULT_MAX_MESSAGES,
    ) -> None:  # fmt: skip
        self.registry = registry
        self.store = Store()
        self.provisioner = Provisioner(registry, self.store)
        self.provisioner.on_ended.append(self._record_end)
        self._submit = submit
        self._ne_identifier = ne_identifier
        self.health = health
        self.max_messages = max_messages
        self._locks: dict[str, asyncio.Lock] = {}
        self._requests = itertools.count(1)
        self._unawaited: set[asyncio.Future[None]] = set()

    async def handle(self, principal: Principal, peer: str, body: bytes) -> bytes:
        admf = principal.user
        session = f"x1-request-{next(self._requests)}"
        try:
            decoded = decode_request(body, max_messages=self.max_messages)
        except X1TopLevelError as exc:
            record = AuditRecord(event=EVENT, result=f"error {exc.code}", principal=admf,
                                 peer=peer, session=session, method="X1Request",
                                 reason=exc.description)  # fmt: skip
            try:
                await self._submit(record)
            except AuditError:
                LOG.error("LI audit log refused a record of an X1 request")
            return encode_top_level_error(model.TopLevelErrorResponse(
                admf, self._ne_identifier() or "", datetime.now(UTC)))
        responses: list[Response] = []
        written: list[asyncio.Future[None]] = []
        lock = self._locks.setdefault(admf, asyncio.Lock())
        for item in decoded:
            async with lock:
                try:
                    response, unwritten = await self._one(item, admf, peer, session)
                except Exception as exc:  # a bug: answer 1000; never log the request itself
                    LOG.error("X1 message layer: internal error in %s: %s", _type(item),
                              type(exc).__name__)  # fmt: skip
                    response, unwritten = self._internal_error(item, admf, peer, session)
            if unwritten is not None:
                written.append(asyncio.ensure_future(self._submit(unwritten)))
            else:
                written.append(_done())
            responses.append(response)
        results = await asyncio.gather(*written, return_exceptions=True)
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                responses[index] = _audit_error(responses[index])
        if any(isinstance(r, BaseException) for r in results):
            LOG.error("LI audit log refused a record of an X1 request")
        return encode_response(responses)

    async def _one(self, item: Decoded, admf: str, peer: str,
                   session: str) -> tuple[Response, AuditRecord | None]:  # fmt: skip
        """The answer of one message, and its record when it is still to be written (the
        record of a change is durable before this returns)."""
        now = datetime.now(UTC)
        ctx = Context(admf, peer, session, self.store, self.provisioner, self.health, now)
        if isinstance(item, MessageError):
            header = item.header(now)
            return (ErrorResponse(header, item.message_type, item.code, item.description),
                    _refusal(ctx, item.message_type, item.code, item.description))
        try:
            _check_header(item.header, admf, self._ne_identifier())
            step = dispatch(ctx, item)
        except X1Error as exc:
            return (error(ctx, item.header, item.message_type, exc.code, exc.description),
                    _refusal(ctx, item.message_type, exc.code, exc.description, item))
        if step.apply is None:
            return step.response, step.record
        return await self._change(step, item, owner(admf)), None

    def _internal_error(self, item: Decoded, admf: str, peer: str,
                        session: str) -> tuple[Response, AuditRecord]:  # fmt: skip
        now = datetime.now(UTC)
        ctx = Context(admf, peer, session, self.store, self.provisioner, self.health, now)
        header = item.header(now) if isinstance(item, MessageError) else item.header.reply(now)
        description = "internal error; the message may not have been carried out"
        return (ErrorResponse(header, _type(item), ErrorCode.GENERIC_ERROR, description),
                _refusal(ctx, _type(item), ErrorCode.GENERIC_ERROR, description,
                         None if isinstance(item, MessageError) else item))

    async def _change(self, step: Step, request: Request, lane: str) -> Response:
        try:
            await self._submit(step.record)
        except AuditError:
            if step.discard is not None:
                step.discard()
            LOG.error("LI audit log refused a record of an X1 request")
            return _audit_error(step.response)
        assert step.apply is not None
        step.apply()
        # "OK means live" (and, for a deactivation, "no PDU after the OK"), as for DTCP
        await self.registry.publisher.flush(lane)
        if step.verify is not None:
            refused = step.verify()
            if refused is not None:
                return refused
        return step.response

    def _record_end(self, task: Task, reason: str) -> None:
        """A task's criteria ended without X1 (:mod:`flowtap.x1.provisioning`): recorded, not
        awaited by anyone (it happens outside any request)."""
        record = AuditRecord(event="x1-task-ended", result=reason, principal=task.admf,
                             method="ActivateTask", criteria_id=str(task.xid),
                             cdest_id=",".join(map(str, task.details.destinations)) or None,
                             reason="provisioningStatus failed")  # fmt: skip
        future = asyncio.ensure_future(self._submit(record))
        self._unawaited.add(future)
        future.add_done_callback(self._ended_recorded)

    def _ended_recorded(self, future: asyncio.Future[None]) -> None:
        self._unawaited.discard(future)
        if not future.cancelled() and future.exception() is not None:
            LOG.error("LI audit log refused the record of an ended X1 task")

    async def drain(self) -> None:
        """Wait for the records of ended tasks (before the audit log closes)."""
        while self._unawaited:
            await asyncio.gather(*self._unawaited, return_exceptions=True)


def _check_header(header: Header, admf: str, ne_identifier: str | None) -> None:
    if header.admf_identifier != admf:
        raise X1Error(ErrorCode.ADMF_IDENTIFIER_DOES_NOT_MATCH_CERTIFICATE,
                      "admfIdentifier does not match the client certificate")  # fmt: skip
    if ne_identifier is None or header.ne_identifier != ne_identifier:
        raise X1Error(ErrorCode.UNEXPECTED_NE_IDENTIFIER,
                      "neIdentifier is not this network element's")  # fmt: skip


def _refusal(ctx: Context, message_type: str, code: int, description: str,
             request: Request | None = None) -> AuditRecord:  # fmt: skip
    """The record of a refused message: what it named (XID, DIDs, a task's targets) and why."""
    xid = getattr(request, "xid", None)
    dids: tuple[object, ...] = ()
    target = None
    if isinstance(request, model.ActivateTask | model.ModifyTask):
        xid, dids = request.task.xid, request.task.destinations
        target = render_targets(request.task.targets)
    elif isinstance(request, model.CreateDestination | model.ModifyDestination):
        dids = (request.destination.did,)
    elif isinstance(request, model.RemoveDestination | model.GetDestinationDetails):
        dids = (request.did,)
    claimed = ""
    if request is not None and request.header.admf_identifier != ctx.admf:
        claimed = f"; admfIdentifier {request.header.admf_identifier!r}"
    return AuditRecord(
        event=EVENT, result=f"error {code}", principal=ctx.admf, peer=ctx.peer,
        session=ctx.session, method=message_type, criteria_id=None if xid is None else str(xid),
        cdest_id=",".join(map(str, dids)) or None, target=target,
        reason=f"{description}{claimed}",
    )  # fmt: skip


def _type(item: Decoded) -> str:
    return item.message_type


def _audit_error(response: Response) -> ErrorResponse:
    return ErrorResponse(response.header, response.message_type, ErrorCode.GENERIC_ERROR,
                         AUDIT_FAILED)  # fmt: skip


def _done() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future
