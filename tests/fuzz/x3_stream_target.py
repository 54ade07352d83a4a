"""Fuzz target: the X3 stream decoder (PDU framing, lengths, attributes).

The input is two bytes seeding how the stream is sliced, then the bytes a network element
sends on one X2/X3 connection. Documented outcome: PDUs, or ``X3Error`` after which the
decoder stays failed.

Invariants:
- Slicing independence: the stream fed whole and in random pieces gives the same PDUs, and an
  error in one way of feeding it is an error in the other (after the same PDUs).
- Round trip: every PDU encodes back to the bytes it was decoded from.
"""

from __future__ import annotations

from flowtap.dataplane.x3 import pdu
from flowtap.dataplane.x3.stream import X3StreamDecoder
from flowtap.errors import X3Error
from tests.fuzz.support import ByteReader, check, split_points


def _decode(pieces: list[bytes]) -> tuple[list[pdu.Pdu], bool]:
    decoder = X3StreamDecoder(max_header_length=4096, max_payload_length=65536)
    out: list[pdu.Pdu] = []
    try:
        for piece in pieces:
            out += decoder.feed(piece)
    except X3Error:
        return out, True
    return out, decoder.error is not None


def fuzz_one(data: bytes) -> None:
    reader = ByteReader(data)
    seed = reader.take(2)
    stream = reader.rest()
    whole, whole_failed = _decode([stream])
    sliced, sliced_failed = _decode(split_points(stream, seed))
    check(whole == sliced and whole_failed == sliced_failed, "slicing changed the outcome")
    pos = 0
    for item in whole:
        encoded = pdu.encode(item)
        check(stream[pos : pos + len(encoded)] == encoded, "PDU does not encode to its bytes")
        pos += len(encoded)
