"""Typed X1 messages (TS 103 221-1; LI-HANDOVER.md §2.2-§2.3): requests, the details they carry,
and responses. Values only: :mod:`flowtap.x1.decode` and :mod:`flowtap.x1.encode` turn them
into XML and back.

Each request class names its ``message_type`` (the XSD's RequestMessageType: the xsi:type
without "Request"); a response is ``<message_type>Response`` or an ``ErrorResponse`` naming it.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from flowtap.x1.names import VERSION
from flowtap.x1.targets import IPAddress, Target, Transport


class DeliveryType(enum.StrEnum):
    X2_ONLY = "X2Only"
    X3_ONLY = "X3Only"
    X2_AND_X3 = "X2andX3"


class Ok(enum.StrEnum):
    ACKNOWLEDGED_AND_COMPLETED = "AcknowledgedAndCompleted"
    ACKNOWLEDGED = "Acknowledged"


class ProvisioningStatus(enum.StrEnum):
    AWAITING_PROVISIONING = "awaitingProvisioning"
    FAILED = "failed"
    COMPLETE = "complete"


class DeliveryStatus(enum.StrEnum):
    ACTIVE_AND_WORKING = "activeAndWorking"
    DELIVERY_FAULT = "deliveryFault"


class NeStatus(enum.StrEnum):
    OK = "OK"
    FAULTS = "Faults"


@dataclass(frozen=True, slots=True)
class Header:
    """The five fields that open every message, in the XSD's order. ``transaction_id`` stays the
    text the ADMF sent (validated as a UUID), because the answer must copy it."""

    admf_identifier: str
    ne_identifier: str
    timestamp: datetime
    version: str
    transaction_id: str

    def reply(self, now: datetime, version: str = VERSION) -> Header:
        """The header of this message's answer: identifiers and transaction ID copied."""
        return Header(self.admf_identifier, self.ne_identifier, now, version,
                      self.transaction_id)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Fault:
    """ErrorInformation, as used in ``listOfFaults`` (``unresolvedFault``)."""

    code: int
    description: str


@dataclass(frozen=True, slots=True)
class TaskDetails:
    """``taskDetails``. ``destinations`` is ``listOfDIDs``; the optional parts flowtap does not
    implement (mediation details, service types, extensions, traffic policies, dSId) are refused
    by the decoder and so never appear here."""

    xid: uuid.UUID
    targets: tuple[Target, ...]
    delivery_type: DeliveryType
    destinations: tuple[uuid.UUID, ...]
    correlation_id: int | None = None
    implicit_deactivation_allowed: bool | None = None
    product_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class DeliveryAddress:
    """``ipAddressAndPort``, the only delivery address kind flowtap offers (the TLS peer of an X3
    connection); ``transport`` is which of ``TCPPort``/``UDPPort`` it was given as."""

    address: IPAddress
    port: int
    transport: Transport = "tcp"


@dataclass(frozen=True, slots=True)
class DestinationDetails:
    did: uuid.UUID
    delivery_type: DeliveryType
    address: DeliveryAddress
    friendly_name: str | None = None


# ---- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivateTask:
    message_type: ClassVar[str] = "ActivateTask"
    header: Header
    task: TaskDetails


@dataclass(frozen=True, slots=True)
class ModifyTask:
    message_type: ClassVar[str] = "ModifyTask"
    header: Header
    task: TaskDetails


@dataclass(frozen=True, slots=True)
class DeactivateTask:
    message_type: ClassVar[str] = "DeactivateTask"
    header: Header
    xid: uuid.UUID


@dataclass(frozen=True, slots=True)
class DeactivateAllTasks:
    message_type: ClassVar[str] = "DeactivateAllTasks"
    header: Header


@dataclass(frozen=True, slots=True)
class GetTaskDetails:
    message_type: ClassVar[str] = "GetTaskDetails"
    header: Header
    xid: uuid.UUID


@dataclass(frozen=True, slots=True)
class CreateDestination:
    message_type: ClassVar[str] = "CreateDestination"
    header: Header
    destination: DestinationDetails


@dataclass(frozen=True, slots=True)
class ModifyDestination:
    message_type: ClassVar[str] = "ModifyDestination"
    header: Header
    destination: DestinationDetails


@dataclass(frozen=True, slots=True)
class RemoveDestination:
    message_type: ClassVar[str] = "RemoveDestination"
    header: Header
    did: uuid.UUID


@dataclass(frozen=True, slots=True)
class RemoveAllDestinations:
    message_type: ClassVar[str] = "RemoveAllDestinations"
    header: Header


@dataclass(frozen=True, slots=True)
class GetDestinationDetails:
    message_type: ClassVar[str] = "GetDestinationDetails"
    header: Header
    did: uuid.UUID


@dataclass(frozen=True, slots=True)
class GetNEStatus:
    message_type: ClassVar[str] = "GetNEStatus"
    header: Header


@dataclass(frozen=True, slots=True)
class GetAllDetails:
    message_type: ClassVar[str] = "GetAllDetails"
    header: Header


@dataclass(frozen=True, slots=True)
class ListAllDetails:
    message_type: ClassVar[str] = "ListAllDetails"
    header: Header


@dataclass(frozen=True, slots=True)
class Keepalive:
    message_type: ClassVar[str] = "Keepalive"
    header: Header


@dataclass(frozen=True, slots=True)
class Ping:
    message_type: ClassVar[str] = "Ping"
    header: Header


Request = (ActivateTask | ModifyTask | DeactivateTask | DeactivateAllTasks | GetTaskDetails
           | CreateDestination | ModifyDestination | RemoveDestination | RemoveAllDestinations
           | GetDestinationDetails | GetNEStatus | GetAllDetails | ListAllDetails | Keepalive
           | Ping)  # fmt: skip
REQUEST_CLASSES: tuple[type[Request], ...] = (
    ActivateTask, ModifyTask, DeactivateTask, DeactivateAllTasks, GetTaskDetails,
    CreateDestination, ModifyDestination, RemoveDestination, RemoveAllDestinations,
    GetDestinationDetails, GetNEStatus, GetAllDetails, ListAllDetails, Keepalive, Ping,
)


@dataclass(frozen=True, slots=True)
class MessageError:
    """A message of a request that could not be decoded, to be answered with an ErrorResponse
    in its place. The header fields the answer copies are those that could be read; one that
    could not is "" (the answer then carries it empty)."""

    index: int
    message_type: str
    code: int
    description: str
    admf_identifier: str = ""
    ne_identifier: str = ""
    transaction_id: str = ""

    def header(self, now: datetime, version: str = VERSION) -> Header:
        return Header(self.admf_identifier, self.ne_identifier, now, version,
                      self.transaction_id)  # fmt: skip


# ---- responses ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskStatus:
    provisioning: ProvisioningStatus
    faults: tuple[Fault, ...] = ()
    time_of_last_intercept: datetime | None = None
    amount_of_x2_data: int | None = None
    amount_of_x3_data: int | None = None
    time_of_last_modification: datetime | None = None
    number_of_modifications: int | None = None


@dataclass(frozen=True, slots=True)
class TaskResponseDetails:
    task: TaskDetails
    status: TaskStatus


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    delivery_status: DeliveryStatus
    faults: tuple[Fault, ...] = ()


@dataclass(frozen=True, slots=True)
class DestinationResponseDetails:
    destination: DestinationDetails
    status: DestinationStatus


@dataclass(frozen=True, slots=True)
class NeStatusDetails:
    status: NeStatus
    faults: tuple[Fault, ...] = ()


@dataclass(frozen=True, slots=True)
class OkResponse:
    """``<message_type>Response`` carrying ``oK``: every request without details to return."""

    header: Header
    message_type: str
    ok: Ok = Ok.ACKNOWLEDGED_AND_COMPLETED


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    header: Header
    message_type: str
    code: int
    description: str


@dataclass(frozen=True, slots=True)
class GetTaskDetailsResponse:
    message_type: ClassVar[str] = "GetTaskDetails"
    header: Header
    details: TaskResponseDetails


@dataclass(frozen=True, slots=True)
class GetDestinationDetailsResponse:
    message_type: ClassVar[str] = "GetDestinationDetails"
    header: Header
    details: DestinationResponseDetails


@dataclass(frozen=True, slots=True)
class GetNEStatusResponse:
    message_type: ClassVar[str] = "GetNEStatus"
    header: Header
    status: NeStatusDetails


@dataclass(frozen=True, slots=True)
class GetAllDetailsResponse:
    message_type: ClassVar[str] = "GetAllDetails"
    header: Header
    status: NeStatusDetails
    tasks: tuple[TaskResponseDetails, ...] = ()
    destinations: tuple[DestinationResponseDetails, ...] = ()


@dataclass(frozen=True, slots=True)
class ListAllDetailsResponse:
    message_type: ClassVar[str] = "ListAllDetails"
    header: Header
    xids: tuple[uuid.UUID, ...] = ()
    dids: tuple[uuid.UUID, ...] = ()


Response = (OkResponse | ErrorResponse | GetTaskDetailsResponse | GetDestinationDetailsResponse
            | GetNEStatusResponse | GetAllDetailsResponse | ListAllDetailsResponse)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TopLevelErrorResponse:
    """``X1TopLevelErrorResponse``: the answer to a request that cannot be read at all. It has
    no transaction ID and no error code (the schema gives it neither)."""

    admf_identifier: str
    ne_identifier: str
    timestamp: datetime
    version: str = VERSION


@dataclass(frozen=True, slots=True)
class ResponseContainer:
    messages: tuple[Response, ...] = field(default_factory=tuple)
