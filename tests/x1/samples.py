"""Typed X1 messages and hand-written request texts shared by the X1 tests."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime

from flowtap.x1 import model
from flowtap.x1.model import DeliveryAddress, DeliveryType, DestinationDetails, Header, TaskDetails
from flowtap.x1.targets import AddressTarget, CidrTarget, PortRangeTarget, PortTarget

STAMP = datetime(2017, 10, 6, 18, 46, 21, 247432, tzinfo=UTC)
XID = uuid.UUID("29f28e1c-f230-486a-a860-f5a784ab9172")
DID = uuid.UUID("19867c20-8c94-473e-b9cd-8b72b7b05fd4")
TRANSACTION = "3741800e-971b-4aa9-85f4-466d2b1adc7f"


def header(n: int = 0) -> Header:
    return Header("admf-1", "ne-1", STAMP, "v1.6.1", f"3741800e-971b-4aa9-85f4-466d2b1a{n:04x}")


TASK = TaskDetails(
    XID,
    (AddressTarget(ipaddress.ip_address("192.0.2.10")),
     AddressTarget(ipaddress.ip_address("2001:db8::1")),
     CidrTarget(ipaddress.ip_network("198.51.100.0/24")),
     CidrTarget(ipaddress.ip_network("2001:db8:1::/48")),
     PortTarget("tcp", 443), PortTarget("udp", 0),
     PortRangeTarget("tcp", 8000, 8080), PortRangeTarget("udp", 65535, 65535)),
    DeliveryType.X3_ONLY,
    (DID,),
    correlation_id=7,
    implicit_deactivation_allowed=False,
    product_id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
)
DESTINATION = DestinationDetails(DID, DeliveryType.X3_ONLY,
                                 DeliveryAddress(ipaddress.ip_address("203.0.113.5"), 6443),
                                 "mediation 1")  # fmt: skip
DESTINATION6 = DestinationDetails(DID, DeliveryType.X2_AND_X3,
                                  DeliveryAddress(ipaddress.ip_address("2001:db8::5"), 1, "udp"))


def every_request() -> list[model.Request]:
    return [
        model.ActivateTask(header(0), TASK),
        model.ModifyTask(header(1), TaskDetails(XID, TASK.targets[:1], DeliveryType.X3_ONLY, ())),
        model.DeactivateTask(header(2), XID),
        model.DeactivateAllTasks(header(3)),
        model.GetTaskDetails(header(4), XID),
        model.CreateDestination(header(5), DESTINATION),
        model.ModifyDestination(header(6), DESTINATION6),
        model.RemoveDestination(header(7), DID),
        model.RemoveAllDestinations(header(8)),
        model.GetDestinationDetails(header(9), DID),
        model.GetNEStatus(header(10)),
        model.GetAllDetails(header(11)),
        model.ListAllDetails(header(12)),
        model.Keepalive(header(13)),
        model.Ping(header(14)),
    ]


def message(type_name: str, body: str = "", *, version: str = "v1.6.1",
            transaction: str = TRANSACTION, prefix: str = "ns1") -> str:  # fmt: skip
    """One x1RequestMessage as ETSI's examples write it (prefix ns1)."""
    p = f"{prefix}:" if prefix else ""
    return (f'<{p}x1RequestMessage xsi:type="{p}{type_name}">'
            f"<{p}admfIdentifier>admfID</{p}admfIdentifier>"
            f"<{p}neIdentifier>neID</{p}neIdentifier>"
            f"<{p}messageTimestamp>2017-10-06T18:46:21.247432Z</{p}messageTimestamp>"
            f"<{p}version>{version}</{p}version>"
            f"<{p}x1TransactionId>{transaction}</{p}x1TransactionId>"
            f"{body}</{p}x1RequestMessage>")  # fmt: skip


def request(*messages: str, prefix: str = "ns1") -> bytes:
    p = f"{prefix}:" if prefix else ""
    declaration = f"xmlns:{prefix}" if prefix else "xmlns"
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<{p}X1Request {declaration}="http://uri.etsi.org/03221/X1/2017/10" '
            'xmlns:c="http://uri.etsi.org/03280/common/2017/07" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            + "".join(messages) + f"</{p}X1Request>").encode()  # fmt: skip


def task_body(targets: str, delivery: str = "X3Only", extra: str = "",
              dids: str = f"<ns1:dId>{DID}</ns1:dId>") -> str:  # fmt: skip
    return (f"<ns1:taskDetails><ns1:xId>{XID}</ns1:xId>"
            f"<ns1:targetIdentifiers>{targets}</ns1:targetIdentifiers>"
            f"<ns1:deliveryType>{delivery}</ns1:deliveryType>"
            f"<ns1:listOfDIDs>{dids}</ns1:listOfDIDs>{extra}</ns1:taskDetails>")  # fmt: skip


def target(inner: str) -> str:
    return f"<ns1:targetIdentifier>{inner}</ns1:targetIdentifier>"


def destination_body(address: str, extra: str = "") -> str:
    return (f"<ns1:destinationDetails><ns1:dId>{DID}</ns1:dId>"
            "<ns1:deliveryType>X3Only</ns1:deliveryType>"
            f"<ns1:deliveryAddress>{address}</ns1:deliveryAddress>{extra}"
            "</ns1:destinationDetails>")  # fmt: skip


def ip_and_port(address: str = "<c:IPv4Address>203.0.113.5</c:IPv4Address>",
                port: str = "<c:TCPPort>6443</c:TCPPort>") -> str:  # fmt: skip
    return (f"<ns1:ipAddressAndPort><c:address>{address}</c:address>"
            f"<c:port>{port}</c:port></ns1:ipAddressAndPort>")  # fmt: skip
