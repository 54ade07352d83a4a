"""DTCP status codes, their reason phrases (draft-cavuto-dtcp-03 §8, App.B; fact sheet §3.2) and
the error a request refused with one of them raises.

Reason phrases are free text in the draft; clients in the wild match the code only
(``DTCP/\\d.\\d\\s(\\d+)``), but we emit the draft's phrases verbatim so replies read like Junos.

497, 498 and 499 exist so that code can name them, but they are never sent: authentication,
sequence and unknown-control-source failures are dropped silently (draft §4.4, §6.2).
"""

from __future__ import annotations

import enum

from flowtap.errors import DtcpError


class Status(enum.IntEnum):
    SEQUENCE_ROLLOVER = 130
    NOOP_NOTIFICATION = 131
    OK = 200
    CRITERION_TIMEOUT_DELETE = 390
    BAD_REQUEST = 400
    UNKNOWN_CONTENT_DESTINATION = 430
    UNKNOWN_CRITERIA_ID = 431
    IMPROPER_FILTER = 432
    IMPROPER_TIMEOUT = 433
    INVALID_AUTHENTICATION = 497
    INVALID_SEQUENCE_NUMBER = 498
    UNKNOWN_CONTROL_SOURCE = 499
    SERVER_INTERNAL_ERROR = 500
    NOT_IMPLEMENTED = 501
    VERSION_NOT_SUPPORTED = 505
    MAX_CRITERIA_EXCEEDED = 550
    MAX_CONTENT_DESTINATION_EXCEEDED = 551
    CONGESTION = 580
    DUPLICATE_PACKETS_DROPPED = 598
    SERVER_RESTART = 599
    CRITERION_CONGESTION_DELETE = 680
    JTAP_FAILURE = 901

    @property
    def reason(self) -> str:
        return REASON_PHRASES[self]


REASON_PHRASES: dict[int, str] = {
    130: "Sequence Number Rollover",
    131: "NoOp Notification",
    200: "OK",
    390: "Criterion Timeout Delete",
    400: "Bad Request",
    430: "Unknown Content Destination",
    431: "Unknown Criteria ID",
    432: "Improper Filter Specification",
    433: "Improper Timeout Specification",
    497: "Invalid Authentication",
    498: "Invalid Sequence Number",
    499: "Unknown Control Source Identifier",
    500: "Server Internal Error",
    501: "Not Implemented",
    505: "DTCP Version not supported",
    550: "Max Criteria Limit Exceeded",
    551: "Max Content Destination Exceeded",
    580: "Congestion",
    598: "Duplicate Packets Dropped",
    599: "Server Restart",
    680: "Criterion Congestion Delete",
    901: "JTap-Failure",
}

NEVER_SENT = frozenset({497, 498, 499})
"""Failures that are logged only; a reply would tell an attacker which check failed."""


def reason_phrase(status: int) -> str:
    """The reason phrase for ``status``; unknown 3-digit extension codes get a generic one."""
    if not 100 <= status <= 999:
        raise ValueError("DTCP status codes have exactly three digits")
    return REASON_PHRASES.get(status, "Unknown Status")


class DtcpRequestError(DtcpError):
    """A request refused while reading it; ``parameter`` is (header name, raw value) to echo,
    ``also`` more such pairs (a missing field is echoed with an empty value)."""

    def __init__(self, status: int, detail: str, parameter: tuple[str, str] | None = None,
                 also: tuple[tuple[str, str], ...] = ()):  # fmt: skip
        super().__init__(status, reason_phrase(status), detail)
        self.parameter = parameter
        self.parameters = ((parameter,) if parameter else ()) + also
