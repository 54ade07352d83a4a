"""X1 error codes (TS 103 221-1 table "Error codes", LI-HANDOVER.md §2.5) and the errors the
codec raises with one of them.

The codec reports only what it can see in the bytes: syntax and schema (1010), the version
(1020), request types it does not serve (1080), target kinds (3010), delivery address kinds
(6020), service types (3050) and optional task or destination parts this NE does not implement
(3000/3001, 6000/6001). Everything that needs state (XID or DID known, ADMF allowed, destination
in use) is the X1 server's to decide; the codes are all here so that it names them from one
table.

Descriptions name the element and the problem, never a value from the request: identifiers and
targets are lawful-intercept data, and a description is returned only to the ADMF that sent the
request (SECURITY.md LI-2).
"""

from __future__ import annotations

import enum

from flowtap.errors import FlowtapError


class ErrorCode(enum.IntEnum):
    GENERIC_ERROR = 1000
    SYNTAX_SCHEMA_ERROR = 1010
    UNSUPPORTED_VERSION = 1020
    ADMF_IDENTIFIER_DOES_NOT_MATCH_CERTIFICATE = 1030
    UNEXPECTED_ADMF_IDENTIFIER = 1040
    NE_IDENTIFIER_DOES_NOT_MATCH_CERTIFICATE = 1050
    UNEXPECTED_NE_IDENTIFIER = 1060
    KEEPALIVE_NOT_SUPPORTED = 1070
    UNSUPPORTED_REQUEST = 1080
    XID_ALREADY_EXISTS = 2010
    XID_DOES_NOT_EXIST = 2020
    DID_ALREADY_EXISTS = 2030
    DID_DOES_NOT_EXIST = 2040
    GENERIC_OBJECT_ID_ALREADY_EXISTS = 2050
    GENERIC_OBJECT_ID_DOES_NOT_EXIST = 2060
    GENERIC_ACTIVATE_TASK_FAILURE = 3000
    GENERIC_MODIFY_TASK_FAILURE = 3001
    UNSUPPORTED_TARGET_IDENTIFIER_TYPE = 3010
    UNSUPPORTED_TARGET_IDENTIFIER_COMBINATION = 3020
    MULTIPLE_DESTINATIONS_NOT_SUPPORTED = 3030
    INVALID_DELIVERY_TYPE_AND_DESTINATIONS = 3040
    UNSUPPORTED_SERVICE_TYPE = 3050
    GENERIC_DEACTIVATE_TASK_FAILURE = 4000
    GENERIC_DEACTIVATE_ALL_TASKS_FAILURE = 5000
    DEACTIVATE_ALL_TASKS_NOT_ENABLED = 5010
    GENERIC_CREATE_DESTINATION_FAILURE = 6000
    GENERIC_MODIFY_DESTINATION_FAILURE = 6001
    UNSUPPORTED_DELIVERY_ADDRESS_TYPE = 6020
    GENERIC_REMOVE_DESTINATION_FAILURE = 7000
    DESTINATION_IN_USE = 7010
    GENERIC_REMOVE_ALL_DESTINATIONS_FAILURE = 8000
    DESTINATIONS_IN_USE = 8010
    REMOVE_ALL_DESTINATIONS_NOT_ENABLED = 8020
    GENERIC_CREATE_OBJECT_FAILURE = 8500
    GENERIC_MODIFY_OBJECT_FAILURE = 8510
    GENERIC_DELETE_OBJECT_FAILURE = 8530
    GENERIC_DELETE_ALL_OBJECTS_FAILURE = 8540
    DELETE_ALL_OBJECTS_NOT_ENABLED = 8550
    ERROR_CLEARED = 9000
    GENERIC_WARNING = 9010
    GENERIC_NON_TERMINATING_FAULT = 9020
    TERMINATING_FAULT = 9030
    REQUEST_ACTIONED = 9040
    KEEPALIVES_NOT_RECEIVED = 9050
    DATABASE_CLEARED = 10000


class X1Error(FlowtapError):
    """One X1 message refused with ``code``; ``description`` is for the requesting ADMF only."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


class X1TopLevelError(X1Error):
    """The request as a whole cannot be read (not XML, refused XML, not an X1Request, over a
    limit): it is answered with one ``X1TopLevelErrorResponse`` and no message is acted on.
    The code is always 1010; the top-level response has no field to carry it, so it is for the
    audit log."""

    def __init__(self, description: str) -> None:
        super().__init__(ErrorCode.SYNTAX_SCHEMA_ERROR, description)


def schema_error(description: str) -> X1Error:
    """The most common refusal: the message does not follow the XSD (code 1010)."""
    return X1Error(ErrorCode.SYNTAX_SCHEMA_ERROR, description)
