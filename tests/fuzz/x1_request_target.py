"""Fuzz target: the X1 request decoder (hardened parse, XSD sequences, values, targets).

The input is the body of a ``POST /X1/NE``. Documented outcome: a list with one entry per
message, each a typed request or a ``MessageError``, or ``X1TopLevelError``; nothing else.

Invariants:
- A ``MessageError`` carries a code of the standard's range and a short description.
- Round trip: the decoded requests, encoded again, decode to the same requests.
"""

from __future__ import annotations

from flowtap.x1.codes import X1TopLevelError
from flowtap.x1.decode import decode_request
from flowtap.x1.encode import encode_request
from flowtap.x1.model import MessageError
from tests.fuzz.support import check


def fuzz_one(data: bytes) -> None:
    try:
        decoded = decode_request(data, max_bytes=1 << 20)
    except X1TopLevelError:
        return
    requests = []
    for item in decoded:
        if isinstance(item, MessageError):
            check(1000 <= item.code <= 10000, "error code outside the standard's table")
            check(len(item.description) < 200, "error description unbounded")
        else:
            requests.append(item)
    if requests:
        check(decode_request(encode_request(requests)) == requests, "requests do not round-trip")
