"""The intercept owner's refusals become the DTCP statuses, reasons and echoed headers the
registry raised itself before it was protocol-neutral."""

from __future__ import annotations

from datetime import datetime

import pytest

from flowtap.dtcp.methods import request_error
from flowtap.dtcp.replies import dtcp_error_reply
from flowtap.errors import (
    DestinationLimitError,
    InterceptError,
    InterceptLimitError,
    UnknownInterceptError,
    UnservableInterceptError,
)

WHEN = datetime(2011, 2, 13, 15, 56, 49, 609000)


@pytest.mark.parametrize(("error", "status", "detail"), [
    (InterceptLimitError("criteria limit reached"), 550, "criteria limit reached"),
    (InterceptLimitError("criteria IDs of this source exhausted"), 550,
     "criteria IDs of this source exhausted"),
    (DestinationLimitError("content destination limit reached"), 551,
     "content destination limit reached"),
    (UnservableInterceptError("content destination cannot be served"), 901,
     "content destination cannot be served"),
])  # fmt: skip
def test_limits_and_unservable_criteria_keep_their_status_and_reason(
    error: InterceptError, status: int, detail: str
) -> None:
    mapped = request_error(error, "7")
    assert (mapped.status, mapped.detail, mapped.parameter) == (status, detail, None)


def test_unknown_id_echoes_the_criteria_id_header() -> None:
    mapped = request_error(UnknownInterceptError(3), "1,3")
    assert (mapped.status, mapped.detail) == (431, "criteria-id: unknown")
    assert mapped.parameter == ("criteria-id", "1,3")
    reply = dtcp_error_reply(mapped, "0.7", 9, WHEN)
    assert reply.startswith(b"DTCP/0.7 431 ") and b"\r\nCRITERIA-ID: 1,3\r\n" in reply
    assert request_error(UnknownInterceptError(3)).parameter is None


def test_an_error_without_a_dtcp_status_is_a_bug() -> None:
    with pytest.raises(TypeError):
        request_error(InterceptError("new kind"))
