"""X1 request decoder: the body of ``POST /X1/NE`` -> typed requests, in order. Pure.

:func:`decode_request` returns one entry per ``x1RequestMessage``: the typed request, or a
:class:`~flowtap.x1.model.MessageError` saying which code, which message (index, transaction
ID) and why, so that the server answers every message in order and a bad one does not stop its
neighbours. A body that cannot be read as an X1 request at all raises
:class:`~flowtap.x1.codes.X1TopLevelError` (answered with ``X1TopLevelErrorResponse``).

Limits (each a keyword with a documented default): ``max_bytes``, checked before parsing;
``max_messages``, checked before any message is decoded; the hardened parser's own bounds on
nesting, markup and attributes; per task at most 256 targets and 16 destinations; text fields
at most 256 (identifiers) or 1024 (names, descriptions) characters.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Final

from lxml import etree

from flowtap.x1 import model, values
from flowtap.x1.codes import ErrorCode, X1Error, X1TopLevelError, schema_error
from flowtap.x1.decode_parts import destination_details, task_details
from flowtap.x1.model import Header, MessageError, Request
from flowtap.x1.names import (
    EXTENDED_REQUEST_TYPE,
    REQUEST_MESSAGE,
    REQUEST_MESSAGE_TYPES,
    REQUEST_ROOT,
    SUPPORTED_MAJOR,
    VERSION_PATTERN,
    X1_NS,
    XSI_TYPE,
    x1,
)
from flowtap.x1.xmlread import Children, leaf, local_name, parse

DEFAULT_MAX_BYTES: Final = 4 * 1024 * 1024
# Each message is answered by its own response and may change the tap: a bound keeps one
# request's work (and its response) in proportion. 10,000 pings fit in max_bytes, not in this.
DEFAULT_MAX_MESSAGES: Final = 1000

Decoded = Request | MessageError


def decode_request(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES,
                   max_messages: int = DEFAULT_MAX_MESSAGES) -> list[Decoded]:  # fmt: skip
    """Every message of an ``X1Request``, decoded or refused, in document order.

    Raises:
        X1TopLevelError: not XML, XML the hardened parser refuses, a root other than
            ``X1Request`` in the X1 namespace, no message, or a limit exceeded.
    """
    root = parse(data, max_bytes)
    if root.tag != REQUEST_ROOT:
        raise X1TopLevelError("the document is not an X1Request of the X1 namespace")
    messages = list(root)
    if not messages:
        raise X1TopLevelError("X1Request holds no x1RequestMessage")
    if len(messages) > max_messages:
        raise X1TopLevelError(f"X1Request holds more than {max_messages} messages")
    if (root.text or "").strip() or any((m.tail or "").strip() for m in messages):
        raise X1TopLevelError("X1Request must hold elements, not text")
    return [_message(index, element) for index, element in enumerate(messages)]


class _Seen:
    """The header fields read so far, for the ErrorResponse of a message that fails later."""

    admf = ""
    ne = ""
    transaction = ""


def _message(index: int, element: etree._Element) -> Decoded:
    seen = _Seen()
    message_type = EXTENDED_REQUEST_TYPE
    try:
        if element.tag != REQUEST_MESSAGE:
            raise schema_error(f"unexpected element {local_name(element)} in X1Request")
        type_name = _xsi_type(element)
        if type_name in REQUEST_MESSAGE_TYPES:
            message_type = type_name
        seq = Children(element, "x1RequestMessage")
        header = _header(seq, seen)
        if element.get(XSI_TYPE) is None:
            raise schema_error("x1RequestMessage has no xsi:type")
        if type_name not in REQUEST_MESSAGE_TYPES:
            raise schema_error("xsi:type is not an X1 request message type")
        body = _BODIES.get(type_name)
        if body is None:
            raise X1Error(ErrorCode.UNSUPPORTED_REQUEST, f"{type_name}Request is not supported")
        request = body(header, seq)
        seq.end()
        return request
    except X1Error as exc:
        if element.tag == REQUEST_MESSAGE:
            _salvage(element, seen)
        return MessageError(index, message_type, exc.code, exc.description, seen.admf, seen.ne,
                            seen.transaction)  # fmt: skip


def _xsi_type(element: etree._Element) -> str:
    """The request type named by ``xsi:type`` (without "Request"), or "" when it names no X1
    request. The value is a QName resolved against the element's namespace declarations."""
    value = (element.get(XSI_TYPE) or "").strip()
    prefix, colon, name = value.rpartition(":")
    namespace = element.nsmap.get(prefix if colon else None)
    if namespace != X1_NS or not name.endswith("Request"):
        return ""
    return name[: -len("Request")]


def _salvage(element: etree._Element, seen: _Seen) -> None:
    """Header fields a failed message still has, wherever they are among its children, so that
    its ErrorResponse carries the transaction ID the ADMF will look for."""

    def read(local: str, check: Callable[[str | None, str], str]) -> str:
        found = element.find(x1(local))
        if found is None or len(found):
            return ""
        try:
            return check(found.text, local)
        except X1Error:
            return ""  # not readable: the answer carries it empty

    seen.admf = seen.admf or read("admfIdentifier", values.token)
    seen.ne = seen.ne or read("neIdentifier", values.token)
    seen.transaction = seen.transaction or read("x1TransactionId", values.uuid_text)


def _header(seq: Children, seen: _Seen) -> Header:
    seen.admf = values.token(leaf(seq.required(x1("admfIdentifier"))), "admfIdentifier")
    seen.ne = values.token(leaf(seq.required(x1("neIdentifier"))), "neIdentifier")
    stamp = values.parse_datetime(leaf(seq.required(x1("messageTimestamp"))),
                                  "messageTimestamp")  # fmt: skip
    version = values.token(leaf(seq.required(x1("version"))), "version")
    transaction = values.uuid_text(leaf(seq.required(x1("x1TransactionId"))),
                                   "x1TransactionId")  # fmt: skip
    seen.transaction = transaction
    match = VERSION_PATTERN.fullmatch(version)
    if not match:
        raise schema_error("version is not of the form vX.Y.Z")
    if int(match.group(1)) != SUPPORTED_MAJOR:
        raise X1Error(ErrorCode.UNSUPPORTED_VERSION,
                      f"only major version {SUPPORTED_MAJOR} is supported")
    return Header(seen.admf, seen.ne, stamp, version, transaction)


def _xid(seq: Children) -> uuid.UUID:
    return values.parse_uuid(leaf(seq.required(x1("xId"))), "xId")


def _did(seq: Children) -> uuid.UUID:
    return values.parse_uuid(leaf(seq.required(x1("dId"))), "dId")


def _task(seq: Children, failure: ErrorCode) -> model.TaskDetails:
    return task_details(seq.required(x1("taskDetails")), failure)


def _destination(seq: Children, failure: ErrorCode) -> model.DestinationDetails:
    return destination_details(seq.required(x1("destinationDetails")), failure)


# How each served request type reads its body after the header.
_BODIES: Final[dict[str, Callable[[Header, Children], Request]]] = {
    "ActivateTask": (lambda h, s: model.ActivateTask(
        h, _task(s, ErrorCode.GENERIC_ACTIVATE_TASK_FAILURE))),
    "ModifyTask": (lambda h, s: model.ModifyTask(
        h, _task(s, ErrorCode.GENERIC_MODIFY_TASK_FAILURE))),
    "DeactivateTask": (lambda h, s: model.DeactivateTask(h, _xid(s))),
    "DeactivateAllTasks": (lambda h, s: model.DeactivateAllTasks(h)),
    "GetTaskDetails": (lambda h, s: model.GetTaskDetails(h, _xid(s))),
    "CreateDestination": (lambda h, s: model.CreateDestination(
        h, _destination(s, ErrorCode.GENERIC_CREATE_DESTINATION_FAILURE))),
    "ModifyDestination": (lambda h, s: model.ModifyDestination(
        h, _destination(s, ErrorCode.GENERIC_MODIFY_DESTINATION_FAILURE))),
    "RemoveDestination": (lambda h, s: model.RemoveDestination(h, _did(s))),
    "RemoveAllDestinations": (lambda h, s: model.RemoveAllDestinations(h)),
    "GetDestinationDetails": (lambda h, s: model.GetDestinationDetails(h, _did(s))),
    "GetNEStatus": (lambda h, s: model.GetNEStatus(h)),
    "GetAllDetails": (lambda h, s: model.GetAllDetails(h)),
    "ListAllDetails": (lambda h, s: model.ListAllDetails(h)),
    "Keepalive": (lambda h, s: model.Keepalive(h)),
    "Ping": (lambda h, s: model.Ping(h)),
}
