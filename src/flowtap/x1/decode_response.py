"""X1 response decoder: the body an NE answers with -> typed responses. Pure.

What an ADMF (the ``flowtap-x1`` client) reads, and what the tests read flowtap's answers back
with. Strict like the request decoder: any departure from the XSD sequence, an unknown
``xsi:type`` or a value out of its type raises :class:`~flowtap.x1.codes.X1Error` (1010);
there is no per-message recovery, since an ADMF cannot answer an answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from lxml import etree

from flowtap.x1 import model, values
from flowtap.x1.codes import ErrorCode, schema_error
from flowtap.x1.decode import DEFAULT_MAX_BYTES
from flowtap.x1.decode_parts import destination_details, enumerated, task_details
from flowtap.x1.model import Header
from flowtap.x1.names import (
    REQUEST_MESSAGE_TYPES,
    RESPONSE_MESSAGE,
    RESPONSE_ROOT,
    TOP_LEVEL_ERROR_ROOT,
    X1_NS,
    XSI_TYPE,
    x1,
)
from flowtap.x1.xmlread import Children, leaf, parse

# Request types whose answer is a bare oK.
_OK_TYPES: Final = frozenset({
    "ActivateTask", "ModifyTask", "DeactivateTask", "DeactivateAllTasks", "CreateDestination",
    "ModifyDestination", "RemoveDestination", "RemoveAllDestinations", "Keepalive", "Ping",
    "ReportTaskIssue", "ReportDestinationIssue", "ReportNEIssue",
})


def decode_response(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
                    ) -> model.ResponseContainer | model.TopLevelErrorResponse:  # fmt: skip
    """An ``X1Response`` or an ``X1TopLevelErrorResponse``.

    Raises:
        X1Error: anything else (X1TopLevelError when the body is no XML at all).
    """
    root = parse(data, max_bytes)
    if root.tag == TOP_LEVEL_ERROR_ROOT:
        seq = Children(root, "X1TopLevelErrorResponse")
        admf = values.text(leaf(seq.required(x1("admfIdentifier"))), "admfIdentifier")
        ne = values.text(leaf(seq.required(x1("neIdentifier"))), "neIdentifier")
        stamp = values.parse_datetime(leaf(seq.required(x1("messageTimestamp"))),
                                      "messageTimestamp")  # fmt: skip
        version = values.token(leaf(seq.required(x1("version"))), "version")
        seq.end()
        return model.TopLevelErrorResponse(admf, ne, stamp, version)
    if root.tag != RESPONSE_ROOT:
        raise schema_error("the document is not an X1Response of the X1 namespace")
    messages = Children(root, "X1Response").repeated(RESPONSE_MESSAGE, 1)
    if len(messages) != len(root):
        raise schema_error("X1Response holds an element other than x1ResponseMessage")
    return model.ResponseContainer(tuple(_message(m) for m in messages))


def _message(element: etree._Element) -> model.Response:
    value = (element.get(XSI_TYPE) or "").strip()
    prefix, colon, type_name = value.rpartition(":")
    if element.nsmap.get(prefix if colon else None) != X1_NS or not type_name.endswith(
            "Response"):  # fmt: skip
        raise schema_error("xsi:type is not an X1 response message type")
    base = type_name[: -len("Response")]
    seq = Children(element, "x1ResponseMessage")
    header = _header(seq)
    response: model.Response
    if type_name == "ErrorResponse":
        request_type = values.token(leaf(seq.required(x1("requestMessageType"))),
                                    "requestMessageType")  # fmt: skip
        fault = _fault(seq.required(x1("errorInformation")))
        seq.optional(x1("extensionInformation"))
        response = model.ErrorResponse(header, request_type, fault.code, fault.description)
    elif base in _OK_TYPES:
        response = model.OkResponse(header, base, enumerated(seq.required(x1("oK")), model.Ok))
    elif base == "GetTaskDetails":
        response = model.GetTaskDetailsResponse(header,
                                                _task_response(seq.required(x1(
                                                    "taskResponseDetails"))))  # fmt: skip
    elif base == "GetDestinationDetails":
        response = model.GetDestinationDetailsResponse(
            header, _destination_response(seq.required(x1("destinationResponseDetails"))))
    elif base == "GetNEStatus":
        response = model.GetNEStatusResponse(header, _ne_status(seq.required(
            x1("neStatusDetails"))))  # fmt: skip
    elif base == "GetAllDetails":
        status = _ne_status(seq.required(x1("neStatusDetails")))
        tasks = Children(seq.required(x1("listOfTaskResponseDetails")))
        destinations = Children(seq.required(x1("listOfDestinationResponseDetails")))
        response = model.GetAllDetailsResponse(
            header, status,
            tuple(_task_response(t) for t in tasks.repeated(x1("taskResponseDetails"))),
            tuple(_destination_response(d) for d in
                  destinations.repeated(x1("destinationResponseDetails"))))  # fmt: skip
        tasks.end()
        destinations.end()
        seq.optional(x1("listOfGenericObjectResponseDetails"))
    elif base == "ListAllDetails":
        xids = Children(seq.required(x1("ListOfXIDs")))
        dids = Children(seq.required(x1("ListOfDIDs")))
        response = model.ListAllDetailsResponse(
            header, tuple(values.parse_uuid(leaf(e), "xId") for e in xids.repeated(x1("xId"))),
            tuple(values.parse_uuid(leaf(e), "dId") for e in dids.repeated(x1("dId"))))
        xids.end()
        dids.repeated(x1("dSId"))
        dids.end()
        seq.optional(x1("ListOfGenericObjectIDs"))
    elif base in REQUEST_MESSAGE_TYPES:
        raise schema_error(f"{type_name} is not supported by this reader")
    else:
        raise schema_error("xsi:type is not an X1 response message type")
    seq.end()
    return response


def _header(seq: Children) -> Header:
    admf = values.text(leaf(seq.required(x1("admfIdentifier"))), "admfIdentifier")
    ne = values.text(leaf(seq.required(x1("neIdentifier"))), "neIdentifier")
    stamp = values.parse_datetime(leaf(seq.required(x1("messageTimestamp"))), "messageTimestamp")
    version = values.token(leaf(seq.required(x1("version"))), "version")
    # An NE copies the transaction ID; a message it could not read may carry it empty.
    transaction = values.text(leaf(seq.required(x1("x1TransactionId"))), "x1TransactionId")
    return Header(admf, ne, stamp, version, transaction)


def _fault(element: etree._Element) -> model.Fault:
    seq = Children(element)
    code = values.integer(leaf(seq.required(x1("errorCode"))), "errorCode")
    description = values.text(leaf(seq.required(x1("errorDescription"))), "errorDescription")
    seq.end()
    return model.Fault(code, description)


def _faults(element: etree._Element) -> tuple[model.Fault, ...]:
    seq = Children(element, "listOfFaults")
    faults = tuple(_fault(f) for f in seq.repeated(x1("unresolvedFault")))
    seq.end()
    return faults


def _optional_time(seq: Children, local: str) -> datetime | None:
    found = seq.optional(x1(local))
    return None if found is None else values.parse_datetime(leaf(found), local)


def _optional_integer(seq: Children, local: str) -> int | None:
    found = seq.optional(x1(local))
    return None if found is None else values.integer(leaf(found), local)


def _task_response(element: etree._Element) -> model.TaskResponseDetails:
    seq = Children(element, "taskResponseDetails")
    task = task_details(seq.required(x1("taskDetails")), ErrorCode.SYNTAX_SCHEMA_ERROR)
    status_seq = Children(seq.required(x1("taskStatus")), "taskStatus")
    seq.end()
    provisioning = enumerated(status_seq.required(x1("provisioningStatus")),
                              model.ProvisioningStatus)  # fmt: skip
    status = model.TaskStatus(
        provisioning,
        _faults(status_seq.required(x1("listOfFaults"))),
        _optional_time(status_seq, "timeOfLastIntercept"),
        _optional_integer(status_seq, "amountOfX2Data"),
        _optional_integer(status_seq, "amountOfX3Data"),
        _optional_time(status_seq, "timeOfLastModification"),
        _optional_integer(status_seq, "numberOfModifications"),
    )
    status_seq.repeated(x1("taskStatusExtensions"))
    status_seq.end()
    return model.TaskResponseDetails(task, status)


def _destination_response(element: etree._Element) -> model.DestinationResponseDetails:
    seq = Children(element, "destinationResponseDetails")
    destination = destination_details(seq.required(x1("destinationDetails")),
                                      ErrorCode.SYNTAX_SCHEMA_ERROR)  # fmt: skip
    status_seq = Children(seq.required(x1("destinationStatus")), "destinationStatus")
    seq.end()
    delivery = enumerated(status_seq.required(x1("destinationDeliveryStatus")),
                          model.DeliveryStatus)  # fmt: skip
    faults = _faults(status_seq.required(x1("listOfFaults")))
    status_seq.end()
    return model.DestinationResponseDetails(destination, model.DestinationStatus(delivery, faults))


def _ne_status(element: etree._Element) -> model.NeStatusDetails:
    seq = Children(element, "neStatusDetails")
    status = enumerated(seq.required(x1("neStatus")), model.NeStatus)
    faults = _faults(seq.required(x1("listOfFaults")))
    seq.end()
    return model.NeStatusDetails(status, faults)
