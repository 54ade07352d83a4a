"""What each X1 request does: checked against the ADMF's tasks and destinations, its answer, its
LI audit record, and the change to make once the record is durable.

A handler raises :class:`~flowtap.x1.codes.X1Error` for a refusal (nothing is changed then:
every check comes before the first change, and the registry's own refusals discard what was
added). Otherwise it returns a :class:`Step`; :mod:`flowtap.x1.tasking` writes the record,
applies the change, waits until it is live and answers.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from flowtap.audit import AuditRecord
from flowtap.intercept.sink import CriterionCounters
from flowtap.intercept.table import Entry
from flowtap.x1 import criteria, model, reporting
from flowtap.x1.codes import ErrorCode
from flowtap.x1.model import Header, Request, Response
from flowtap.x1.provisioning import Provisioner, not_live
from flowtap.x1.reporting import X3Health
from flowtap.x1.tasks import Store, Task

EVENT = "x1"
OK = "OK"


@dataclass(slots=True)
class Step:
    """One message's outcome. ``apply`` changes the tap (after ``record`` is durable);
    ``discard`` undoes what the handler prepared when the record cannot be written; ``verify``
    runs once the change is live and returns an error to answer instead of ``response``."""

    response: Response
    record: AuditRecord
    apply: Callable[[], None] | None = None
    discard: Callable[[], None] | None = None
    verify: Callable[[], Response | None] | None = None


@dataclass(slots=True)
class Context:
    """What a handler may use: who asks, and the state it acts on."""

    admf: str
    peer: str
    session: str
    store: Store
    provisioner: Provisioner
    health: X3Health
    now: datetime

    def record(self, request: Request, result: str = OK, *, xid: uuid.UUID | None = None,
               dids: tuple[uuid.UUID, ...] = (), target: str | None = None,
               reason: str | None = None) -> AuditRecord:  # fmt: skip
        return AuditRecord(
            event=EVENT, result=result, principal=self.admf, peer=self.peer,
            session=self.session, method=request.message_type,
            criteria_id=None if xid is None else str(xid),
            cdest_id=",".join(map(str, dids)) or None, target=target, reason=reason,
        )  # fmt: skip

    def ok(self, request: Request) -> model.OkResponse:
        return model.OkResponse(self.reply(request.header), request.message_type)

    def reply(self, header: Header) -> Header:
        return header.reply(self.now)

    def counters(self) -> Mapping[int, CriterionCounters]:
        return self.provisioner.registry.sink.counters()


def _task_reason(entries: list[Entry], correlation: int) -> str:
    return f"criteria {','.join(str(e.criteria_id) for e in entries)}; correlation {correlation}"


def activate(ctx: Context, request: model.ActivateTask) -> Step:
    details = request.task
    destinations = ctx.store.check_new_task(ctx.admf, details)
    failure = ErrorCode.GENERIC_ACTIVATE_TASK_FAILURE
    correlation = criteria.correlation_id(details, failure)
    entries = ctx.provisioner.prepare(ctx.admf, details, destinations, correlation, ctx.peer,
                                      failure)  # fmt: skip
    made: list[Task] = []

    def apply() -> None:
        made.append(ctx.provisioner.activate(ctx.admf, details, correlation, entries))

    def verify() -> Response | None:
        if ctx.provisioner.is_live(made[0]):
            return None
        ctx.provisioner.give_up(made[0])
        return error(ctx, request.header, request.message_type, not_live(failure).code,
                     not_live(failure).description)

    record = ctx.record(request, xid=details.xid, dids=details.destinations,
                        target=criteria.render_targets(details.targets),
                        reason=_task_reason(entries, correlation))  # fmt: skip
    return Step(ctx.ok(request), record, apply,
                functools.partial(ctx.provisioner.discard, entries), verify)


def modify(ctx: Context, request: model.ModifyTask) -> Step:
    details = request.task
    task = ctx.store.task(ctx.admf, details.xid)
    destinations = ctx.store.check_task(ctx.admf, details)
    failure = ErrorCode.GENERIC_MODIFY_TASK_FAILURE
    correlation = criteria.correlation_id(details, failure)
    entries = ctx.provisioner.prepare(ctx.admf, details, destinations, correlation, ctx.peer,
                                      failure)  # fmt: skip

    def apply() -> None:
        ctx.provisioner.replace(task, details, correlation, entries)
        task.modified = ctx.now
        task.modifications += 1

    record = ctx.record(request, xid=details.xid, dids=details.destinations,
                        target=criteria.render_targets(details.targets),
                        reason=_task_reason(entries, correlation))  # fmt: skip
    return Step(ctx.ok(request), record, apply,
                functools.partial(ctx.provisioner.discard, entries),
                _verify_live(ctx, request, [task], failure))


def _verify_live(ctx: Context, request: Request, tasks: list[Task],
                 failure: int) -> Callable[[], Response | None]:  # fmt: skip
    def verify() -> Response | None:
        if all(ctx.provisioner.is_live(t) for t in tasks):
            return None
        return error(ctx, request.header, request.message_type, failure,
                     not_live(failure).description)

    return verify


def deactivate(ctx: Context, request: model.DeactivateTask) -> Step:
    task = ctx.store.task(ctx.admf, request.xid)
    record = ctx.record(request, xid=request.xid, dids=task.details.destinations,
                        reason=_task_reason(task.entries, task.correlation))  # fmt: skip
    return Step(ctx.ok(request), record, functools.partial(ctx.provisioner.withdraw, task))


def deactivate_all(ctx: Context, request: model.DeactivateAllTasks) -> Step:
    tasks = ctx.store.tasks(ctx.admf)

    def apply() -> None:
        for task in tasks:
            ctx.provisioner.withdraw(task)

    xids = ",".join(str(t.xid) for t in tasks) or None
    record = dataclasses.replace(ctx.record(request, reason=f"deactivated {len(tasks)} tasks"),
                                 criteria_id=xids)  # fmt: skip
    return Step(ctx.ok(request), record, apply)


def get_task(ctx: Context, request: model.GetTaskDetails) -> Step:
    task = ctx.store.task(ctx.admf, request.xid)
    details = reporting.task_details(task, ctx.counters())
    return Step(model.GetTaskDetailsResponse(ctx.reply(request.header), details),
                ctx.record(request, xid=request.xid))


def create_destination(ctx: Context, request: model.CreateDestination) -> Step:
    details = request.destination
    ctx.store.check_new_destination(ctx.admf, details)
    record = ctx.record(request, dids=(details.did,), target=_render_destination(details))
    return Step(ctx.ok(request), record,
                functools.partial(ctx.store.put_destination, ctx.admf, details))


def modify_destination(ctx: Context, request: model.ModifyDestination) -> Step:
    details = request.destination
    # a failed task stays failed (only a ModifyTask provisions it again): it follows the new
    # destination when it is provisioned
    users = [t for t in ctx.store.check_modified_destination(ctx.admf, details) if not t.faults]
    failure = ErrorCode.GENERIC_MODIFY_DESTINATION_FAILURE
    prepared: list[tuple[Task, list[Entry]]] = []
    try:
        for task in users:
            destinations = [details if d == details.did else ctx.store.destination(ctx.admf, d)
                            for d in dict.fromkeys(task.details.destinations)]  # fmt: skip
            prepared.append((task, ctx.provisioner.prepare(
                ctx.admf, task.details, destinations, task.correlation, ctx.peer, failure)))
    except Exception:
        for _, entries in prepared:
            ctx.provisioner.discard(entries)
        raise

    def apply() -> None:
        ctx.store.put_destination(ctx.admf, details)
        for task, entries in prepared:
            ctx.provisioner.replace(task, task.details, task.correlation, entries)

    def discard() -> None:
        for _, entries in prepared:
            ctx.provisioner.discard(entries)

    record = ctx.record(request, dids=(details.did,), target=_render_destination(details),
                        reason=f"tasks following it: {len(users)}")  # fmt: skip
    return Step(ctx.ok(request), record, apply, discard, _verify_live(ctx, request, users,
                                                                     failure))  # fmt: skip


def remove_destination(ctx: Context, request: model.RemoveDestination) -> Step:
    ctx.store.check_removable(ctx.admf, request.did)
    return Step(ctx.ok(request), ctx.record(request, dids=(request.did,)),
                functools.partial(ctx.store.remove_destination, ctx.admf, request.did))


def remove_all_destinations(ctx: Context, request: model.RemoveAllDestinations) -> Step:
    ctx.store.check_all_removable(ctx.admf)
    dids = tuple(d.did for d in ctx.store.destinations(ctx.admf))
    return Step(ctx.ok(request), ctx.record(request, dids=dids),
                functools.partial(ctx.store.remove_all_destinations, ctx.admf))


def get_destination(ctx: Context, request: model.GetDestinationDetails) -> Step:
    destination = ctx.store.destination(ctx.admf, request.did)
    details = reporting.destination_details(destination, ctx.health,
                                            request.did in reporting.in_use(ctx.store, ctx.admf))
    return Step(model.GetDestinationDetailsResponse(ctx.reply(request.header), details),
                ctx.record(request, dids=(request.did,)))


def ne_status(ctx: Context, request: model.GetNEStatus) -> Step:
    status = reporting.ne_status(ctx.store, ctx.admf, ctx.health)
    return Step(model.GetNEStatusResponse(ctx.reply(request.header), status),
                ctx.record(request, reason=status.status.value))


def get_all(ctx: Context, request: model.GetAllDetails) -> Step:
    counters = ctx.counters()
    used = reporting.in_use(ctx.store, ctx.admf)
    response = model.GetAllDetailsResponse(
        ctx.reply(request.header), reporting.ne_status(ctx.store, ctx.admf, ctx.health),
        tuple(reporting.task_details(t, counters) for t in ctx.store.tasks(ctx.admf)),
        tuple(reporting.destination_details(d, ctx.health, d.did in used)
              for d in ctx.store.destinations(ctx.admf)),
    )  # fmt: skip
    return Step(response, ctx.record(request, reason=f"{len(response.tasks)} tasks, "
                                     f"{len(response.destinations)} destinations"))


def list_all(ctx: Context, request: model.ListAllDetails) -> Step:
    response = model.ListAllDetailsResponse(
        ctx.reply(request.header), tuple(t.xid for t in ctx.store.tasks(ctx.admf)),
        tuple(d.did for d in ctx.store.destinations(ctx.admf)))  # fmt: skip
    return Step(response, ctx.record(request, reason=f"{len(response.xids)} tasks, "
                                     f"{len(response.dids)} destinations"))


def answer_ok(ctx: Context, request: model.Keepalive | model.Ping) -> Step:
    return Step(ctx.ok(request), ctx.record(request))


def error(ctx: Context, header: Header, message_type: str, code: int,
          description: str) -> model.ErrorResponse:  # fmt: skip
    return model.ErrorResponse(ctx.reply(header), message_type, code, description)


def _render_destination(details: model.DestinationDetails) -> str:
    address = details.address
    return (f"{details.delivery_type.value} {address.address} {address.transport} "
            f"port {address.port}")


def dispatch(ctx: Context, request: Request) -> Step:
    """Run ``request``'s handler."""
    match request:
        case model.ActivateTask():
            return activate(ctx, request)
        case model.ModifyTask():
            return modify(ctx, request)
        case model.DeactivateTask():
            return deactivate(ctx, request)
        case model.DeactivateAllTasks():
            return deactivate_all(ctx, request)
        case model.GetTaskDetails():
            return get_task(ctx, request)
        case model.CreateDestination():
            return create_destination(ctx, request)
        case model.ModifyDestination():
            return modify_destination(ctx, request)
        case model.RemoveDestination():
            return remove_destination(ctx, request)
        case model.RemoveAllDestinations():
            return remove_all_destinations(ctx, request)
        case model.GetDestinationDetails():
            return get_destination(ctx, request)
        case model.GetNEStatus():
            return ne_status(ctx, request)
        case model.GetAllDetails():
            return get_all(ctx, request)
        case model.ListAllDetails():
            return list_all(ctx, request)
        case model.Keepalive() | model.Ping():
            return answer_ok(ctx, request)
