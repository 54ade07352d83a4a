"""X1 encoder: typed messages -> the bytes of an ``X1Request``, ``X1Response`` or
``X1TopLevelErrorResponse``. Pure.

Elements are written in the XSD's sequence order, in the namespace of the schema that declares
them (see :mod:`flowtap.x1.names`), with the prefixes ``x1``, ``common`` and ``xsi`` declared
once on the root. Times are UTC with six fraction digits, IPv6 addresses in TS 103 280's full
lower-case form.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from lxml import etree

from flowtap.x1 import model, values
from flowtap.x1.model import Header, Request, Response
from flowtap.x1.names import (
    NSMAP,
    REQUEST_MESSAGE,
    REQUEST_ROOT,
    RESPONSE_MESSAGE,
    RESPONSE_ROOT,
    TOP_LEVEL_ERROR_ROOT,
    XSI_TYPE,
    common,
    x1,
)
from flowtap.x1.targets import AddressTarget, CidrTarget, PortTarget, Target


def encode_request(messages: Sequence[Request]) -> bytes:
    """An ``X1Request`` holding ``messages`` in order (what an ADMF sends)."""
    root = etree.Element(REQUEST_ROOT, nsmap=NSMAP)
    for request in messages:
        element = _message(root, REQUEST_MESSAGE, f"{request.message_type}Request",
                           request.header)  # fmt: skip
        _request_body(element, request)
    return _serialize(root)


def encode_response(messages: Sequence[Response]) -> bytes:
    """An ``X1Response`` holding one answer per request message, in the requests' order."""
    root = etree.Element(RESPONSE_ROOT, nsmap=NSMAP)
    for response in messages:
        type_name = ("ErrorResponse" if isinstance(response, model.ErrorResponse)
                     else f"{response.message_type}Response")  # fmt: skip
        element = _message(root, RESPONSE_MESSAGE, type_name, response.header)
        _response_body(element, response)
    return _serialize(root)


def encode_top_level_error(response: model.TopLevelErrorResponse) -> bytes:
    root = etree.Element(TOP_LEVEL_ERROR_ROOT, nsmap=NSMAP)
    _leaf(root, "admfIdentifier", response.admf_identifier)
    _leaf(root, "neIdentifier", response.ne_identifier)
    _leaf(root, "messageTimestamp", values.format_datetime(response.timestamp))
    _leaf(root, "version", response.version)
    return _serialize(root)


_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _serialize(root: etree._Element) -> bytes:
    # lxml's own declaration uses single quotes; this one reads as the standard's examples do.
    return _DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def _leaf(parent: etree._Element, local: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, x1(local))
    element.text = text
    return element


def _node(parent: etree._Element, local: str) -> etree._Element:
    """An element of complex type (children only)."""
    return etree.SubElement(parent, x1(local))


def _common_leaf(parent: etree._Element, local: str, text: str) -> None:
    etree.SubElement(parent, common(local)).text = text


def _time(parent: etree._Element, local: str, value: datetime | None) -> None:
    if value is not None:
        _leaf(parent, local, values.format_datetime(value))


def _number(parent: etree._Element, local: str, value: int | None) -> None:
    if value is not None:
        _leaf(parent, local, str(value))


def _message(root: etree._Element, tag: str, type_name: str, header: Header) -> etree._Element:
    element = etree.SubElement(root, tag)
    element.set(XSI_TYPE, f"x1:{type_name}")
    _leaf(element, "admfIdentifier", header.admf_identifier)
    _leaf(element, "neIdentifier", header.ne_identifier)
    _leaf(element, "messageTimestamp", values.format_datetime(header.timestamp))
    _leaf(element, "version", header.version)
    _leaf(element, "x1TransactionId", header.transaction_id)
    return element


def _request_body(element: etree._Element, request: Request) -> None:
    if isinstance(request, model.ActivateTask | model.ModifyTask):
        _task_details(element, request.task)
    elif isinstance(request, model.DeactivateTask | model.GetTaskDetails):
        _leaf(element, "xId", str(request.xid))
    elif isinstance(request, model.CreateDestination | model.ModifyDestination):
        _destination_details(element, request.destination)
    elif isinstance(request, model.RemoveDestination | model.GetDestinationDetails):
        _leaf(element, "dId", str(request.did))
    # the other requests have no body


def _response_body(element: etree._Element, response: Response) -> None:
    if isinstance(response, model.OkResponse):
        _leaf(element, "oK", response.ok.value)
    elif isinstance(response, model.ErrorResponse):
        _leaf(element, "requestMessageType", response.message_type)
        _fault(element, "errorInformation", model.Fault(response.code, response.description))
    elif isinstance(response, model.GetTaskDetailsResponse):
        _task_response_details(element, response.details)
    elif isinstance(response, model.GetDestinationDetailsResponse):
        _destination_response_details(element, response.details)
    elif isinstance(response, model.GetNEStatusResponse):
        _ne_status(element, response.status)
    elif isinstance(response, model.GetAllDetailsResponse):
        _ne_status(element, response.status)
        tasks = _node(element, "listOfTaskResponseDetails")
        for task in response.tasks:
            _task_response_details(tasks, task)
        destinations = _node(element, "listOfDestinationResponseDetails")
        for destination in response.destinations:
            _destination_response_details(destinations, destination)
    else:
        _ids(_node(element, "ListOfXIDs"), "xId", response.xids)
        _ids(_node(element, "ListOfDIDs"), "dId", response.dids)


def _ids(parent: etree._Element, local: str, ids: Iterable[uuid.UUID]) -> None:
    for ident in ids:
        _leaf(parent, local, str(ident))


def _fault(parent: etree._Element, local: str, fault: model.Fault) -> None:
    element = _node(parent, local)
    _leaf(element, "errorCode", str(fault.code))
    _leaf(element, "errorDescription", fault.description)


def _faults(parent: etree._Element, faults: Iterable[model.Fault]) -> None:
    element = _node(parent, "listOfFaults")
    for fault in faults:
        _fault(element, "unresolvedFault", fault)


def _task_details(parent: etree._Element, task: model.TaskDetails) -> None:
    element = _node(parent, "taskDetails")
    _leaf(element, "xId", str(task.xid))
    targets = _node(element, "targetIdentifiers")
    for target in task.targets:
        _target(_node(targets, "targetIdentifier"), target)
    _leaf(element, "deliveryType", task.delivery_type.value)
    _ids(_node(element, "listOfDIDs"), "dId", task.destinations)
    _number(element, "correlationID", task.correlation_id)
    if task.implicit_deactivation_allowed is not None:
        _leaf(element, "implicitDeactivationAllowed",
              "true" if task.implicit_deactivation_allowed else "false")
    if task.product_id is not None:
        _leaf(element, "productID", str(task.product_id))


def _target(element: etree._Element, target: Target) -> None:
    if isinstance(target, AddressTarget):
        address = target.address
        _leaf(element, target.kind,
              str(address) if address.version == 4 else address.exploded)
    elif isinstance(target, CidrTarget):
        if target.network.version == 4:
            _common_leaf(_node(element, "ipv4Cidr"), "IPv4CIDR", str(target.network))
        else:
            _leaf(element, "ipv6Cidr", values.format_network(target.network))
    elif isinstance(target, PortTarget):
        _leaf(element, target.kind, str(target.port))
    else:
        bounds = _node(element, target.kind)
        _common_leaf(bounds, "start", str(target.start))
        _common_leaf(bounds, "end", str(target.end))


def _destination_details(parent: etree._Element, destination: model.DestinationDetails) -> None:
    element = _node(parent, "destinationDetails")
    _leaf(element, "dId", str(destination.did))
    if destination.friendly_name is not None:
        _leaf(element, "friendlyName", destination.friendly_name)
    _leaf(element, "deliveryType", destination.delivery_type.value)
    where = _node(_node(element, "deliveryAddress"), "ipAddressAndPort")
    address = destination.address
    choice = etree.SubElement(where, common("address"))
    if address.address.version == 4:
        _common_leaf(choice, "IPv4Address", str(address.address))
    else:
        _common_leaf(choice, "IPv6Address", address.address.exploded)
    port = etree.SubElement(where, common("port"))
    _common_leaf(port, "TCPPort" if address.transport == "tcp" else "UDPPort", str(address.port))


def _task_response_details(parent: etree._Element, details: model.TaskResponseDetails) -> None:
    element = _node(parent, "taskResponseDetails")
    _task_details(element, details.task)
    status = _node(element, "taskStatus")
    _leaf(status, "provisioningStatus", details.status.provisioning.value)
    _faults(status, details.status.faults)
    _time(status, "timeOfLastIntercept", details.status.time_of_last_intercept)
    _number(status, "amountOfX2Data", details.status.amount_of_x2_data)
    _number(status, "amountOfX3Data", details.status.amount_of_x3_data)
    _time(status, "timeOfLastModification", details.status.time_of_last_modification)
    _number(status, "numberOfModifications", details.status.number_of_modifications)


def _destination_response_details(parent: etree._Element,
                                  details: model.DestinationResponseDetails) -> None:  # fmt: skip
    element = _node(parent, "destinationResponseDetails")
    _destination_details(element, details.destination)
    status = _node(element, "destinationStatus")
    _leaf(status, "destinationDeliveryStatus", details.status.delivery_status.value)
    _faults(status, details.status.faults)


def _ne_status(parent: etree._Element, details: model.NeStatusDetails) -> None:
    element = _node(parent, "neStatusDetails")
    _leaf(element, "neStatus", details.status.value)
    _faults(element, details.faults)
