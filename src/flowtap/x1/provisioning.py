"""Tasks in the intercept registry: a task's criteria added, confirmed, swapped and removed
together, with the guarantees DTCP gives (issue 18 item 10).

The steps, as DTCP's ADD and DELETE (``flowtap.dtcp.methods``, ``replying``):
- ActivateTask: every criterion is added *pending* (limits counted, the dataplane's ``check``
  asked) before the audit record is written; once it is durable they are confirmed together,
  and the answer waits for ``publisher.flush`` of the ADMF's lane: every criterion of the task
  is live in every capture worker before the OK. Any refusal discards the pending ones.
- DeactivateTask: the criteria are removed after the record is durable, and the OK waits for
  the flush: no further PDU of the task is made after it.
- ModifyTask (and ModifyDestination for each task using the destination): the new criteria
  are added pending, then, once the record is durable, confirmed and the old ones removed in
  the same turn of the event loop. The publisher takes the changes of a lane in order, so the
  new criteria are installed in the same dataplane delta as the removal of the old ones, or
  (when other changes of the ADMF fill the delta) in an earlier one: never later. So there is
  no gap without a copy; at worst, between two deltas, a packet matching both the old and the
  new criteria is sent twice (once under each). For that moment the task holds both sets, so
  a ModifyTask needs room for its new criteria within the ADMF's limit (else 3001, nothing
  changed).

Criteria that end without X1 (flow-tap removed or restarted, the dataplane refused one, the
service stopped) reach :meth:`Provisioner.on_removed`: the task stays, so that its ADMF sees
what happened, with provisioningStatus ``failed`` and a terminating fault (9030) naming the
reason, and its other criteria are removed too (a task taps all of its targets or none). A
ModifyTask provisions it again; a DeactivateTask removes it. Dropping the task instead would
turn a fault into an unknown XID (2020), which an ADMF cannot tell from a wrong XID.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flowtap.errors import InterceptError, UnservableInterceptError
from flowtap.intercept.registry import Registry
from flowtap.intercept.table import Entry
from flowtap.x1 import criteria
from flowtap.x1.codes import ErrorCode, X1Error
from flowtap.x1.model import DestinationDetails, Fault, TaskDetails
from flowtap.x1.tasks import Store, Task

# (the task, the reason its criteria ended) -> record it (the LI audit log)
EndListener = Callable[[Task, str], None]


class Provisioner:
    """Puts tasks into the registry and keeps :class:`~flowtap.x1.tasks.Store` in step."""

    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store
        self.on_ended: list[EndListener] = []
        registry.on_removed.append(self.on_removed)

    def prepare(self, admf: str, details: TaskDetails, destinations: Sequence[DestinationDetails],
                correlation: int, peer: str, failure: int) -> list[Entry]:  # fmt: skip
        """The task's criteria, added pending. Raises X1Error ``failure`` (3000, 3001 or 6001)
        when the registry refuses one; nothing stays added then."""
        cdests = criteria.content_destinations(destinations)
        owner = criteria.owner(admf)
        added: list[Entry] = []
        try:
            for tap in criteria.taps(details.targets):
                made = criteria.criterion(tap, self.registry.next_id(owner), admf, details,
                                          correlation, cdests)  # fmt: skip
                added.append(self.registry.add(made, peer))
        except InterceptError as error:
            self.discard(added)
            if isinstance(error, UnservableInterceptError):
                raise X1Error(failure, "the dataplane cannot deliver X3 to these destinations "
                              "(X3 delivery unavailable or too many destinations)") from None
            raise X1Error(failure, "criteria or destination limit of this ADMF or of the "
                          "network element reached") from None  # fmt: skip
        return added

    def discard(self, entries: Sequence[Entry]) -> None:
        for entry in entries:
            self.registry.discard(entry)

    def activate(self, admf: str, details: TaskDetails, correlation: int,
                 entries: list[Entry]) -> Task:  # fmt: skip
        task = Task(admf, details, entries, correlation)
        for entry in entries:
            self.registry.confirm(entry)
        self.store.add_task(task)
        return task

    def replace(self, task: Task, details: TaskDetails, correlation: int,
                entries: list[Entry]) -> None:  # fmt: skip
        """Swap the task's criteria for ``entries`` (pending) in one turn of the event loop."""
        old = [e for e in task.entries if self.registry.holds(e)]
        if old:
            counters = self.registry.sink.counters()
            for entry in old:
                c = counters.get(entry.key)
                if c is not None:
                    task.ended_bytes += c.bytes
                    if c.last_packet is not None:
                        task.ended_last_packet = max(task.ended_last_packet or 0.0,
                                                     c.last_packet)  # fmt: skip
        for entry in entries:
            self.registry.confirm(entry)
        self.registry.delete(old)
        self.store.set_entries(task, entries)
        task.details, task.correlation, task.faults = details, correlation, []

    def withdraw(self, task: Task) -> None:
        self.registry.delete([e for e in task.entries if self.registry.holds(e)])
        self.store.remove_task(task)

    def is_live(self, task: Task) -> bool:
        return bool(task.entries) and all(self.registry.holds(e) for e in task.entries)

    def give_up(self, task: Task) -> None:
        """An ActivateTask whose criteria the dataplane refused while publishing them: the
        task is not created (its ADMF gets an error, not an OK)."""
        self.registry.delete([e for e in task.entries if self.registry.holds(e)])
        self.store.remove_task(task)

    def on_removed(self, entries: Sequence[Entry], reason: str) -> None:
        """The registry's listener: criteria ended without X1 (module docstring)."""
        hit: dict[int, Task] = {}
        for entry in entries:
            task = self.store.task_of_key(entry.key)
            if task is not None:
                hit[id(task)] = task
        for task in hit.values():
            rest = [e for e in task.entries if self.registry.holds(e)]
            self.registry.delete(rest)
            self.store.set_entries(task, [])
            task.faults = [Fault(ErrorCode.TERMINATING_FAULT,
                                 f"the task no longer taps: {reason}")]  # fmt: skip
            for listener in list(self.on_ended):
                listener(task, reason)


def not_live(failure: int) -> X1Error:
    return X1Error(failure, "the dataplane refused the task's criteria; nothing is tapped")
