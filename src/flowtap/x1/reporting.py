"""What the Get* messages report: a task's status from its criteria's counters, a destination's
from the X3 sender's connection to it, and the network element's for one ADMF.

- ``amountOfX3Data`` is the bytes of the packets the task's criteria matched (whole IP packets:
  the X3 payload, without the PDU headers), the criteria it has now plus those a ModifyTask
  replaced. Criteria ended by the dataplane (flow-tap stopped) take their counters with them.
- ``timeOfLastIntercept`` is the last matched packet of those criteria: the counters keep it on
  the monotonic clock, turned into wall-clock time here. Omitted before the first packet.
- ``destinationDeliveryStatus`` is ``activeAndWorking`` only while the X3 sender holds a
  connection to the destination (:class:`X3Health`); otherwise ``deliveryFault`` with a fault
  saying why: there is no connection to a destination no task uses, so a fresh destination is
  reported as not delivering, which is the truth.
- ``neStatus`` (per ADMF: it must not learn of another's tasks) is ``Faults`` when a task of
  the ADMF has failed or a destination its tasks use is not connected, with one fault each.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from flowtap.intercept.sink import CriterionCounters
from flowtap.x1.codes import ErrorCode
from flowtap.x1.model import (
    DeliveryStatus,
    DestinationDetails,
    DestinationResponseDetails,
    DestinationStatus,
    Fault,
    NeStatus,
    NeStatusDetails,
    TaskResponseDetails,
    TaskStatus,
)
from flowtap.x1.tasks import Store, Task


class X3Health(Protocol):
    """The X3 sender as X1 reporting sees it."""

    def destination_state(self, address: str, port: int) -> tuple[bool, int, int]:
        """(connected, PDUs sent, PDUs dropped) of the X3 connection to ``address``/``port``."""
        ...

    def destination_problem(self, address: str, port: int) -> str | None:
        """Why that connection is down (refused, TLS handshake, ...), if known."""
        ...


def task_details(task: Task, counters: Mapping[int, CriterionCounters]) -> TaskResponseDetails:
    matched = task.ended_bytes
    last = task.ended_last_packet
    for entry in task.entries:
        c = counters.get(entry.key)
        if c is not None:
            matched += c.bytes
            if c.last_packet is not None:
                last = c.last_packet if last is None else max(last, c.last_packet)
    status = TaskStatus(
        provisioning=task.provisioning, faults=tuple(task.faults),
        time_of_last_intercept=None if last is None else _wall_clock(last),
        amount_of_x3_data=matched, time_of_last_modification=task.modified,
        number_of_modifications=task.modifications,
    )  # fmt: skip
    return TaskResponseDetails(task.details, status)


def _wall_clock(monotonic: float) -> datetime:
    return datetime.fromtimestamp(time.time() - (time.monotonic() - monotonic), UTC)


def destination_details(destination: DestinationDetails, health: X3Health,
                        in_use: bool) -> DestinationResponseDetails:  # fmt: skip
    fault = destination_fault(destination, health, in_use)
    if fault is None:
        return DestinationResponseDetails(destination,
                                          DestinationStatus(DeliveryStatus.ACTIVE_AND_WORKING))
    return DestinationResponseDetails(
        destination, DestinationStatus(DeliveryStatus.DELIVERY_FAULT, (fault,)))


def destination_fault(destination: DestinationDetails, health: X3Health,
                      in_use: bool) -> Fault | None:  # fmt: skip
    address, port = str(destination.address.address), destination.address.port
    connected, _sent, dropped = health.destination_state(address, port)
    if not connected:
        problem = health.destination_problem(address, port) if in_use else None
        why = "no X3 connection" + (f": {problem}" if problem else "" if in_use
                                    else ": no task uses this destination")
        if dropped:
            why += f"; {dropped} PDUs dropped"
        return Fault(ErrorCode.GENERIC_NON_TERMINATING_FAULT, why)
    if dropped:
        return Fault(ErrorCode.GENERIC_WARNING, f"connected; {dropped} PDUs dropped")
    return None


def ne_status(store: Store, admf: str, health: X3Health) -> NeStatusDetails:
    faults: list[Fault] = []
    used: dict[uuid.UUID, None] = {}
    for task in store.tasks(admf):
        if task.faults:
            faults.append(Fault(ErrorCode.TERMINATING_FAULT, f"task {task.xid} has failed"))
        used.update(dict.fromkeys(task.details.destinations))
    for destination in store.destinations(admf):
        if destination.did not in used:
            continue
        fault = destination_fault(destination, health, True)
        if fault is not None and fault.code != ErrorCode.GENERIC_WARNING:
            faults.append(Fault(fault.code, f"destination {destination.did}: "
                                f"{fault.description}"))  # fmt: skip
    return NeStatusDetails(NeStatus.FAULTS if faults else NeStatus.OK, tuple(faults))


def in_use(store: Store, admf: str) -> set[uuid.UUID]:
    return {did for task in store.tasks(admf) for did in task.details.destinations}
