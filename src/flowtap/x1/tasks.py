"""The X1 tasks and destinations of every ADMF, and the rules a message must pass against them
(TS 103 221-1 error codes, LI-HANDOVER.md §2.5). Runtime state only: like DTCP criteria, tasks
never enter the configuration, and a new process starts with none.

Isolation (issue 18 item 7, SECURITY.md LI-3): everything is keyed by (ADMF, ID), so an ADMF
sees, changes and deletes only its own, and another ADMF's XID or DID is simply unknown to it:
the same code (2020, 2040) and the same description as an ID nobody uses. Two ADMFs may even
use the same XID or DID without meeting.

Rules (codes as the fact sheet's table):
- ActivateTask of an XID the ADMF has: 2010. Modify/Deactivate/GetTaskDetails of one it has
  not: 2020. CreateDestination of a DID it has: 2030; any other use of one it has not
  (including a task naming it): 2040.
- A task's deliveryType must be X3Only: flowtap produces no IRI, so X2Only and X2andX3 are
  refused with 3040, "invalid combination of deliveryType and destinations" (the fact sheet
  allows 3040 or 3050; 3050 is about ``listOfServiceTypes``, a field such a task need not
  have, while the deliveryType is what cannot be served). An X3Only task needs at least one
  destination, each X3Only or X2andX3: else 3040.
- A destination is an ``ipAddressAndPort`` with a TCP port (X3 runs over TLS): a UDPPort is
  6020 like the other address kinds (which the codec refuses).
- RemoveDestination of a destination some task of the ADMF uses: 7010. RemoveAllDestinations
  while any is in use: 8010, and nothing is removed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from flowtap.intercept.table import Entry
from flowtap.x1.codes import ErrorCode, X1Error
from flowtap.x1.model import (
    DeliveryType,
    DestinationDetails,
    Fault,
    ProvisioningStatus,
    TaskDetails,
)

X3_CAPABLE = (DeliveryType.X3_ONLY, DeliveryType.X2_AND_X3)


@dataclass(slots=True, eq=False)
class Task:
    """One task: its details as last activated or modified, and the criteria tapping it."""

    admf: str
    details: TaskDetails
    entries: list[Entry]
    correlation: int
    faults: list[Fault] = field(default_factory=list)
    modified: datetime | None = None  # the last successful ModifyTask
    modifications: int = 0
    ended_bytes: int = 0  # matched bytes of criteria replaced by a modification
    ended_last_packet: float | None = None  # and their last matched packet (monotonic clock)

    @property
    def xid(self) -> uuid.UUID:
        return self.details.xid

    @property
    def provisioning(self) -> ProvisioningStatus:
        """complete while every criterion is live; failed once the tap ended without a
        DeactivateTask (flow-tap stopped, the dataplane refused it)."""
        return ProvisioningStatus.FAILED if self.faults else ProvisioningStatus.COMPLETE


class Store:
    """Tasks and destinations by (ADMF, ID), and tasks by the registry key of each criterion."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, uuid.UUID], Task] = {}
        self._destinations: dict[tuple[str, uuid.UUID], DestinationDetails] = {}
        self._by_key: dict[int, Task] = {}

    # ---- reading ---------------------------------------------------------------------------

    def has_task(self, admf: str, xid: uuid.UUID) -> bool:
        return (admf, xid) in self._tasks

    def task(self, admf: str, xid: uuid.UUID) -> Task:
        found = self._tasks.get((admf, xid))
        if found is None:
            raise X1Error(ErrorCode.XID_DOES_NOT_EXIST, "no task with this xId")
        return found

    def tasks(self, admf: str) -> list[Task]:
        return [t for (owner, _), t in self._tasks.items() if owner == admf]

    def destination(self, admf: str, did: uuid.UUID) -> DestinationDetails:
        found = self._destinations.get((admf, did))
        if found is None:
            raise X1Error(ErrorCode.DID_DOES_NOT_EXIST, "no destination with this dId")
        return found

    def destinations(self, admf: str) -> list[DestinationDetails]:
        return [d for (owner, _), d in self._destinations.items() if owner == admf]

    def users_of(self, admf: str, did: uuid.UUID) -> list[Task]:
        """The ADMF's tasks naming the destination ``did``."""
        return [t for t in self.tasks(admf) if did in t.details.destinations]

    def task_of_key(self, key: int) -> Task | None:
        return self._by_key.get(key)

    # ---- rules -----------------------------------------------------------------------------

    def check_new_task(self, admf: str, details: TaskDetails) -> list[DestinationDetails]:
        if self.has_task(admf, details.xid):
            raise X1Error(ErrorCode.XID_ALREADY_EXISTS, "a task with this xId exists")
        return self.check_task(admf, details)

    def check_task(self, admf: str, details: TaskDetails) -> list[DestinationDetails]:
        """The destinations of a task that may be provisioned as ``details`` say."""
        if details.delivery_type != DeliveryType.X3_ONLY:
            raise X1Error(ErrorCode.INVALID_DELIVERY_TYPE_AND_DESTINATIONS,
                          f"deliveryType {details.delivery_type.value} needs X2 (IRI), which "
                          "this network element does not produce; use X3Only")  # fmt: skip
        if not details.destinations:
            raise X1Error(ErrorCode.INVALID_DELIVERY_TYPE_AND_DESTINATIONS,
                          "an X3Only task needs at least one destination")  # fmt: skip
        found = [self.destination(admf, did) for did in dict.fromkeys(details.destinations)]
        if any(d.delivery_type not in X3_CAPABLE for d in found):
            raise X1Error(ErrorCode.INVALID_DELIVERY_TYPE_AND_DESTINATIONS,
                          "an X3Only task needs X3Only or X2andX3 destinations")  # fmt: skip
        return found

    @staticmethod
    def check_address(details: DestinationDetails) -> None:
        if details.address.transport != "tcp":
            raise X1Error(ErrorCode.UNSUPPORTED_DELIVERY_ADDRESS_TYPE,
                          "X3 is delivered over TLS: the port must be a TCPPort")  # fmt: skip

    def check_new_destination(self, admf: str, details: DestinationDetails) -> None:
        if (admf, details.did) in self._destinations:
            raise X1Error(ErrorCode.DID_ALREADY_EXISTS, "a destination with this dId exists")
        self.check_address(details)

    def check_modified_destination(self, admf: str, details: DestinationDetails) -> list[Task]:
        """The tasks whose criteria must follow the modified destination."""
        self.destination(admf, details.did)
        self.check_address(details)
        users = self.users_of(admf, details.did)
        if users and details.delivery_type not in X3_CAPABLE:
            raise X1Error(ErrorCode.INVALID_DELIVERY_TYPE_AND_DESTINATIONS,
                          "X3Only tasks use this destination: it must stay X3Only or "
                          "X2andX3")  # fmt: skip
        return users

    def check_removable(self, admf: str, did: uuid.UUID) -> None:
        self.destination(admf, did)
        if self.users_of(admf, did):
            raise X1Error(ErrorCode.DESTINATION_IN_USE, "a task uses this destination")

    def check_all_removable(self, admf: str) -> None:
        if any(t.details.destinations for t in self.tasks(admf)):
            raise X1Error(ErrorCode.DESTINATIONS_IN_USE,
                          "tasks use destinations: none was removed")  # fmt: skip

    # ---- changing --------------------------------------------------------------------------

    def add_task(self, task: Task) -> None:
        self._tasks[(task.admf, task.xid)] = task
        self._index(task.entries, task)

    def remove_task(self, task: Task) -> None:
        if self._tasks.get((task.admf, task.xid)) is task:
            del self._tasks[(task.admf, task.xid)]
        self._unindex(task.entries)

    def set_entries(self, task: Task, entries: list[Entry]) -> None:
        self._unindex(task.entries)
        task.entries = entries
        self._index(entries, task)

    def put_destination(self, admf: str, details: DestinationDetails) -> None:
        self._destinations[(admf, details.did)] = details

    def remove_destination(self, admf: str, did: uuid.UUID) -> None:
        self._destinations.pop((admf, did), None)

    def remove_all_destinations(self, admf: str) -> None:
        for key in [key for key in self._destinations if key[0] == admf]:
            del self._destinations[key]

    def _index(self, entries: Iterable[Entry], task: Task) -> None:
        for entry in entries:
            self._by_key[entry.key] = task

    def _unindex(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self._by_key.pop(entry.key, None)
