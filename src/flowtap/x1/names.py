"""X1 namespaces, element names and version (LI-HANDOVER.md §2.2).

Both schemas are ``elementFormDefault="qualified"``: an element is in the namespace of the schema
that declares it. So the children of X1 types (``taskDetails``, ``targetIdentifier``,
``ipAddressAndPort``) are in the X1 namespace, and the children of TS 103 280 common types
(``IPv4CIDR`` inside ``ipv4Cidr``, ``start``/``end`` of a port range, ``address``/``port`` and
their choices inside ``ipAddressAndPort``) are in the common namespace.
"""

from __future__ import annotations

import re
from typing import Final

X1_NS: Final = "http://uri.etsi.org/03221/X1/2017/10"
COMMON_NS: Final = "http://uri.etsi.org/03280/common/2017/07"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
XSI_TYPE: Final = f"{{{XSI_NS}}}type"

# Prefixes written by the encoder; a reader resolves whatever prefixes the sender chose.
NSMAP: Final = {"x1": X1_NS, "common": COMMON_NS, "xsi": XSI_NS}

# What flowtap writes in its own messages: the edition sipgate's NE speaks (fact sheet §2.2).
# Only the major version matters for compatibility (clause 4.5), so any v1.x.y is accepted.
VERSION: Final = "v1.15.1"
SUPPORTED_MAJOR: Final = 1
VERSION_PATTERN: Final = re.compile(r"v(\d{1,4})\.(\d{1,4})\.(\d{1,4})")


def x1(local: str) -> str:
    """Clark name of an element of the X1 namespace."""
    return f"{{{X1_NS}}}{local}"


def common(local: str) -> str:
    """Clark name of an element of the TS 103 280 common namespace."""
    return f"{{{COMMON_NS}}}{local}"


REQUEST_ROOT: Final = x1("X1Request")
RESPONSE_ROOT: Final = x1("X1Response")
TOP_LEVEL_ERROR_ROOT: Final = x1("X1TopLevelErrorResponse")
REQUEST_MESSAGE: Final = x1("x1RequestMessage")
RESPONSE_MESSAGE: Final = x1("x1ResponseMessage")

HEADER_FIELDS: Final = ("admfIdentifier", "neIdentifier", "messageTimestamp", "version",
                        "x1TransactionId")  # fmt: skip

# RequestMessageType (the request's xsi:type without "Request"): every value of the XSD's
# enumeration, whether flowtap serves it or not, so that an unserved one is told apart (1080)
# from a type the schema does not have (1010).
REQUEST_MESSAGE_TYPES: Final = frozenset({
    "ActivateTask", "ModifyTask", "DeactivateTask", "DeactivateAllTasks", "GetTaskDetails",
    "CreateDestination", "ModifyDestination", "RemoveDestination", "RemoveAllDestinations",
    "GetDestinationDetails", "GetNEStatus", "GetAllDetails", "GetAllTaskDetails",
    "GetAllDestinationDetails", "GetAllGenericObjectDetails", "ListAllDetails", "ReportTaskIssue",
    "ReportDestinationIssue", "ReportNEIssue", "Ping", "Keepalive", "CreateObject", "ModifyObject",
    "GetObject", "DeleteObject", "ListObjectsOfType", "DeleteAllObjects",
})
# The RequestMessageType value for a message whose type is not one of the above.
EXTENDED_REQUEST_TYPE: Final = "ExtendedRequestMessageType"
