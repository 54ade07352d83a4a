"""X1 round trips and exact encodings (LI-HANDOVER.md §2.2-§2.3)."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime

import pytest
from lxml import etree

from flowtap.x1 import encode, model
from flowtap.x1.decode import decode_request
from flowtap.x1.decode_response import decode_response
from flowtap.x1.model import Fault, Header, Ok
from flowtap.x1.names import COMMON_NS, X1_NS
from flowtap.x1.targets import AddressTarget

from .samples import (
    DESTINATION,
    DID,
    STAMP,
    TASK,
    TRANSACTION,
    XID,
    every_request,
    header,
    message,
    request,
    target,
    task_body,
)

NOW = datetime(2026, 12, 7, 17, 0, 0, 5, tzinfo=UTC)


def test_every_request_type_round_trips_in_order():
    requests = every_request()
    assert {type(r) for r in requests} == set(model.REQUEST_CLASSES)
    assert decode_request(encode.encode_request(requests)) == requests


def test_etsi_style_request_decodes():
    # Written as ETSI's examples are: prefix ns1, xsi:type prefixed, common types in their own
    # namespace; IPv6 in the full form TS 103 280 asks for.
    body = task_body(target("<ns1:ipv4Address>192.0.2.10</ns1:ipv4Address>")
                     + target("<ns1:ipv6Address>2001:0db8:0000:0000:0000:0000:0000:0001"
                              "</ns1:ipv6Address>")
                     + target("<ns1:udpPortRange><c:start>5060</c:start><c:end>5061</c:end>"
                              "</ns1:udpPortRange>"))  # fmt: skip
    (decoded,) = decode_request(request(message("ActivateTaskRequest", body)))
    assert isinstance(decoded, model.ActivateTask)
    assert decoded.header == Header("admfID", "neID", STAMP, "v1.6.1", TRANSACTION)
    assert decoded.task.xid == XID and decoded.task.destinations == (DID,)
    assert decoded.task.delivery_type is model.DeliveryType.X3_ONLY
    assert [t.kind for t in decoded.task.targets] == ["ipv4Address", "ipv6Address",
                                                      "udpPortRange"]  # fmt: skip
    assert decoded.task.targets[1] == AddressTarget(ipaddress.ip_address("2001:db8::1"))


def test_default_namespace_and_unprefixed_xsi_type():
    data = request(message("PingRequest", prefix=""), prefix="")
    assert decode_request(data) == [model.Ping(Header("admfID", "neID", STAMP, "v1.6.1",
                                                      TRANSACTION))]  # fmt: skip


def test_transaction_id_is_copied_exactly():
    upper = TRANSACTION.upper()
    (decoded,) = decode_request(request(message("PingRequest", transaction=upper)))
    assert isinstance(decoded, model.Ping)
    reply = decoded.header.reply(NOW)
    assert reply.transaction_id == upper and reply.admf_identifier == "admfID"
    assert reply.ne_identifier == "neID" and reply.timestamp == NOW


def _responses() -> list[model.Response]:
    h = header(1).reply(NOW)
    task_status = model.TaskStatus(model.ProvisioningStatus.COMPLETE, (),
                                   time_of_last_intercept=STAMP, amount_of_x3_data=123456,
                                   number_of_modifications=2)  # fmt: skip
    task = model.TaskResponseDetails(TASK, task_status)
    fault = Fault(9030, "destination unreachable")
    destination = model.DestinationResponseDetails(
        DESTINATION, model.DestinationStatus(model.DeliveryStatus.DELIVERY_FAULT, (fault,)))
    ne_status = model.NeStatusDetails(model.NeStatus.OK)
    return [
        model.OkResponse(h, "ActivateTask"),
        model.OkResponse(h, "Keepalive", Ok.ACKNOWLEDGED),
        model.ErrorResponse(h, "GetTaskDetails", 2020, "xId does not exist"),
        model.GetTaskDetailsResponse(h, task),
        model.GetDestinationDetailsResponse(h, destination),
        model.GetNEStatusResponse(h, model.NeStatusDetails(model.NeStatus.FAULTS, (fault,))),
        model.GetAllDetailsResponse(h, ne_status, (task, task), (destination,)),
        model.GetAllDetailsResponse(h, ne_status),
        model.ListAllDetailsResponse(h, (XID, uuid.UUID(int=1)), (DID,)),
        model.ListAllDetailsResponse(h),
    ]


def test_every_response_round_trips():
    responses = _responses()
    assert decode_response(encode.encode_response(responses)) == model.ResponseContainer(
        tuple(responses))


OK_AND_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<x1:X1Response xmlns:x1="http://uri.etsi.org/03221/X1/2017/10" '
    'xmlns:common="http://uri.etsi.org/03280/common/2017/07" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    '<x1:x1ResponseMessage xsi:type="x1:ActivateTaskResponse">'
    "<x1:admfIdentifier>admfID</x1:admfIdentifier><x1:neIdentifier>neID</x1:neIdentifier>"
    "<x1:messageTimestamp>2026-12-07T17:00:00.000005Z</x1:messageTimestamp>"
    "<x1:version>v1.15.1</x1:version>"
    "<x1:x1TransactionId>3741800e-971b-4aa9-85f4-466d2b1adc7f</x1:x1TransactionId>"
    "<x1:oK>AcknowledgedAndCompleted</x1:oK></x1:x1ResponseMessage>"
    '<x1:x1ResponseMessage xsi:type="x1:ErrorResponse">'
    "<x1:admfIdentifier>admfID</x1:admfIdentifier><x1:neIdentifier>neID</x1:neIdentifier>"
    "<x1:messageTimestamp>2026-12-07T17:00:00.000005Z</x1:messageTimestamp>"
    "<x1:version>v1.15.1</x1:version>"
    "<x1:x1TransactionId>3741800e-971b-4aa9-85f4-466d2b1adc7f</x1:x1TransactionId>"
    "<x1:requestMessageType>Ping</x1:requestMessageType>"
    "<x1:errorInformation><x1:errorCode>1000</x1:errorCode>"
    "<x1:errorDescription>generic error</x1:errorDescription></x1:errorInformation>"
    "</x1:x1ResponseMessage></x1:X1Response>"
)


def test_ok_and_error_responses_byte_for_byte():
    h = Header("admfID", "neID", STAMP, "v1.6.1", TRANSACTION).reply(NOW)
    data = encode.encode_response([model.OkResponse(h, "ActivateTask"),
                                   model.ErrorResponse(h, "Ping", 1000, "generic error")])
    assert data.decode() == OK_AND_ERROR


def test_top_level_error_byte_for_byte():
    data = encode.encode_top_level_error(model.TopLevelErrorResponse("admfID", "neID", NOW))
    assert data.decode() == (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<x1:X1TopLevelErrorResponse xmlns:x1="http://uri.etsi.org/03221/X1/2017/10" '
        'xmlns:common="http://uri.etsi.org/03280/common/2017/07" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<x1:admfIdentifier>admfID</x1:admfIdentifier><x1:neIdentifier>neID</x1:neIdentifier>"
        "<x1:messageTimestamp>2026-12-07T17:00:00.000005Z</x1:messageTimestamp>"
        "<x1:version>v1.15.1</x1:version></x1:X1TopLevelErrorResponse>")
    assert decode_response(data) == model.TopLevelErrorResponse("admfID", "neID", NOW)


def _children(element: etree._Element) -> list[str]:
    return [etree.QName(c).localname for c in element]


def test_task_and_status_follow_the_xsd_sequence_and_namespaces():
    status = model.TaskStatus(model.ProvisioningStatus.COMPLETE, (Fault(9010, "w"),), STAMP, 1,
                              2, STAMP, 3)  # fmt: skip
    data = encode.encode_response([model.GetTaskDetailsResponse(
        header().reply(NOW), model.TaskResponseDetails(TASK, status))])
    root = etree.fromstring(data)
    ns = {"x1": X1_NS, "c": COMMON_NS}
    (details,) = root.findall(".//x1:taskResponseDetails", ns)
    assert _children(details) == ["taskDetails", "taskStatus"]
    assert _children(details[0]) == ["xId", "targetIdentifiers", "deliveryType", "listOfDIDs",
                                     "correlationID", "implicitDeactivationAllowed",
                                     "productID"]  # fmt: skip
    assert _children(details[1]) == ["provisioningStatus", "listOfFaults", "timeOfLastIntercept",
                                     "amountOfX2Data", "amountOfX3Data",
                                     "timeOfLastModification", "numberOfModifications"]  # fmt: skip
    assert root.findtext(".//x1:amountOfX3Data", namespaces=ns) == "2"
    assert root.findtext(".//x1:ipv4Cidr/c:IPv4CIDR", namespaces=ns) == "198.51.100.0/24"
    assert root.findtext(".//x1:ipv6Cidr", namespaces=ns) == "2001:0db8:0001:0000:0000:0000:0000:0000/48"
    assert root.findtext(".//x1:ipv6Address", namespaces=ns) == "2001:0db8:0000:0000:0000:0000:0000:0001"
    assert root.findtext(".//x1:tcpPortRange/c:start", namespaces=ns) == "8000"


def test_destination_follows_the_xsd_sequence_and_namespaces():
    data = encode.encode_request([model.CreateDestination(header(), DESTINATION)])
    root = etree.fromstring(data)
    ns = {"x1": X1_NS, "c": COMMON_NS}
    (details,) = root.findall(".//x1:destinationDetails", ns)
    assert _children(details) == ["dId", "friendlyName", "deliveryType", "deliveryAddress"]
    where = details.find("x1:deliveryAddress/x1:ipAddressAndPort", ns)
    assert where is not None
    assert where.findtext("c:address/c:IPv4Address", namespaces=ns) == "203.0.113.5"
    assert where.findtext("c:port/c:TCPPort", namespaces=ns) == "6443"


@pytest.mark.parametrize("request_type", sorted(c.message_type for c in model.REQUEST_CLASSES))
def test_xsi_type_names(request_type):
    (cls,) = [c for c in model.REQUEST_CLASSES if c.message_type == request_type]
    sample = next(r for r in every_request() if type(r) is cls)
    root = etree.fromstring(encode.encode_request([sample]))
    assert root[0].get("{http://www.w3.org/2001/XMLSchema-instance}type") == f"x1:{request_type}Request"
