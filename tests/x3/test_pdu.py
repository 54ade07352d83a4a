"""TS 103 221-2 PDUs against the fact sheet's layout (LI-HANDOVER.md §3), byte for byte."""

from __future__ import annotations

import collections
import uuid

import pytest

from flowtap.dataplane.x3 import pdu
from flowtap.dataplane.x3.pdu import Attribute, AttributeType, Direction, Pdu, PduType
from flowtap.dataplane.x3.template import X3Template, correlation_bytes, encode_backlog
from flowtap.errors import X3Error

XID = uuid.UUID("29f28e1c-f230-486a-a860-f5a784ab9172")
CORRELATION = bytes.fromhex("0001020304050607")
# 20-byte IPv4 header (192.0.2.10 -> 198.51.100.20, UDP) + 8-byte UDP header + "abcd"
INNER4 = bytes.fromhex("450000200001000040118e7ac000020ac633641413880035000c000061626364")
INNER6 = bytes.fromhex("6000000000041140" + "20010db8" + "00" * 11 + "01" + "20010db8" + "00" * 11
                       + "02" + "13880035000c0000" + "61626364")  # fmt: skip

# The fact sheet's table written out by hand: 00 05 | 00 02 | hl 60 | pl 32 | pf 5 | pd 3 | XID |
# correlation | attr 8 len 4 seq | attr 9 len 8 seconds nanoseconds | payload.
XCC_VECTOR = bytes.fromhex(
    "0005" "0002" "0000003c" "00000020" "0005" "0003"
    "29f28e1cf230486aa860f5a784ab9172" "0001020304050607"
    "0008" "0004" "fffffffe"
    "0009" "0008" "674b7b40" "075bcd15"
) + INNER4
KEEPALIVE_VECTOR = bytes.fromhex("0005" "0003" "00000030" "00000000" "0000" "0000"
                                 + "00" * 16 + "00" * 8 + "0008" "0004" "00000009")  # fmt: skip
TS_NS = 1733000000_123456789  # 0x674b7b40 s, 0x075bcd15 ns


def test_template_writes_the_fact_sheets_layout():
    template = X3Template(XID, CORRELATION)
    assert template.pdu(INNER4, Direction.FROM_TARGET, 0xFFFFFFFE, TS_NS) == XCC_VECTOR


def test_generic_encoder_writes_the_same_bytes():
    built = Pdu(PduType.X3, 5, 3, XID, CORRELATION,
                (pdu.sequence_number(0xFFFFFFFE), pdu.timestamp(0x674B7B40, 123456789)), INNER4)
    assert built.header_length == 60
    assert pdu.encode(built) == XCC_VECTOR


def test_decode_the_vector():
    decoded = pdu.decode(XCC_VECTOR)
    assert (decoded.pdu_type, decoded.payload_format, decoded.direction) == (2, 5, 3)
    assert decoded.xid == XID and decoded.correlation_id == CORRELATION
    assert decoded.sequence_number == 0xFFFFFFFE
    assert decoded.timestamp == (0x674B7B40, 123456789)
    assert decoded.payload == INNER4
    assert pdu.encode(decoded) == XCC_VECTOR


def test_ipv6_payload_is_format_6_and_direction_to_target():
    data = X3Template(XID).pdu(INNER6, Direction.TO_TARGET, 1, TS_NS)
    decoded = pdu.decode(data)
    assert decoded.payload_format == pdu.PayloadFormat.IPV6_PACKET
    assert decoded.direction == Direction.TO_TARGET
    assert decoded.correlation_id == bytes(8) and decoded.payload == INNER6


def test_sequence_number_wraps_after_32_bits():
    data = X3Template(XID).pdu(INNER4, 2, 0x1_0000_0003, TS_NS)
    assert pdu.decode(data).sequence_number == 3


def test_template_header_is_the_pdu_without_payload():
    template = X3Template(XID, CORRELATION)
    assert template.header(len(INNER4), 5, 3, 0xFFFFFFFE, TS_NS) + INNER4 == XCC_VECTOR


def test_append_to_batches_pdus_back_to_back():
    template = X3Template(XID, CORRELATION)
    out = bytearray()
    for sequence in range(3):
        template.append_to(out, INNER4, 3, sequence, TS_NS)
    size = len(XCC_VECTOR)
    assert [pdu.decode(out[i * size:(i + 1) * size]).sequence_number for i in range(3)] == [0, 1, 2]


def test_encode_backlog_writes_what_the_template_writes_within_its_budget():
    first, other = X3Template(XID, CORRELATION), X3Template(uuid.uuid4())
    copies = [(1, first, 3, INNER4, TS_NS), (2, other, 2, memoryview(INNER6), TS_NS + 1),
              (1, first, 2, INNER4, TS_NS + 1)] * 3
    backlog = collections.deque(copies)
    expected = [t.pdu(p, d, 0xFFFFFFFE + i, w) for i, (_, t, d, p, w) in enumerate(copies)]
    data, count, size = encode_backlog(backlog, len(expected[0]) + 1, 0xFFFFFFFE)
    assert (data, count, size) == (b"".join(expected[:2]), 2, len(data))  # budget passed at 2
    assert data.startswith(XCC_VECTOR) and len(backlog) == 7
    data, count, _ = encode_backlog(backlog, 1 << 20, 0xFFFFFFFE + 2)
    assert (data, count, len(backlog)) == (b"".join(expected[2:]), 7, 0)


@pytest.mark.parametrize("packet", [b"", b"\x00abc", b"\x55" + bytes(19)])
def test_encode_backlog_refuses_what_is_not_ip(packet):
    backlog = collections.deque([(1, X3Template(XID), 2, packet, 0)])
    with pytest.raises(X3Error, match="not an IPv4 or IPv6"):
        encode_backlog(backlog, 1 << 16, 0)


@pytest.mark.parametrize("packet", [b"", b"\x00abc", b"\x55" + bytes(19)])
def test_template_refuses_what_is_not_ip(packet):
    with pytest.raises(X3Error, match="not an IPv4 or IPv6"):
        X3Template(XID).pdu(packet, 2, 0, 0)


def test_correlation_id_is_8_bytes():
    assert correlation_bytes(1) == bytes(7) + b"\x01"
    with pytest.raises(X3Error):
        correlation_bytes(1 << 64)
    with pytest.raises(X3Error):
        X3Template(XID, b"short")
    with pytest.raises(X3Error):
        pdu.encode(Pdu(2, 5, 2, XID, b"short"))


def test_keepalive_and_its_acknowledgement():
    assert pdu.keepalive(9) == KEEPALIVE_VECTOR
    request = pdu.decode(pdu.keepalive(9))
    assert request.pdu_type == PduType.KEEPALIVE and request.xid == pdu.ZERO_XID
    assert (request.payload_format, request.direction, request.payload) == (0, 0, b"")
    ack = pdu.keepalive_ack(request)
    assert ack[:4] == b"\x00\x05\x00\x04" and int.from_bytes(ack[4:8], "big") == 48
    assert pdu.decode(ack).sequence_number == 9
    with pytest.raises(X3Error):
        pdu.keepalive_ack(pdu.decode(XCC_VECTOR))


def test_unknown_attribute_types_are_kept_generically():
    extra = (Attribute(AttributeType.NETWORK_FUNCTION_ID, b"upf-1"), Attribute(23, b"\x01\x02"),
             Attribute(AttributeType.IP_PROTOCOL, b"\x11"))
    data = pdu.encode(Pdu(2, 5, 2, XID, attributes=extra, payload=INNER4))
    decoded = pdu.decode(data)
    assert decoded.attributes == extra
    assert decoded.attribute(23) == b"\x01\x02" and decoded.sequence_number is None


def _patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


@pytest.mark.parametrize(("data", "message"), [
    (_patched(XCC_VECTOR, 0, b"\x00\x04"), "version 0.4"),
    (_patched(XCC_VECTOR, 0, b"\x01\x05"), "version 1.5"),
    (_patched(XCC_VECTOR, 2, b"\x00\x05"), "PDU type 5"),
    (_patched(XCC_VECTOR, 4, b"\x00\x00\x00\x27"), "header length 39"),
    (_patched(XCC_VECTOR, 8, b"\x00\x00\x00\x21"), "do not add up"),
    (XCC_VECTOR[:30], "shorter than"),
    (_patched(XCC_VECTOR, 40, b"\x00\x00"), "attribute type 0"),
    (_patched(XCC_VECTOR, 42, b"\x00\x20"), "attribute 8 overruns"),
    (_patched(XCC_VECTOR, 4, b"\x00\x00\x00\x2a") [:-len(INNER4) - 18]
     + XCC_VECTOR[-len(INNER4):], "attribute header overruns"),
    (_patched(_patched(XCC_VECTOR, 42, b"\x00\x03"), 4, b"\x00\x00\x00\x3b")[:-len(INNER4) - 1]
     + XCC_VECTOR[-len(INNER4):], "must be 4 bytes"),
], ids=lambda v: v if isinstance(v, str) else "")  # fmt: skip
def test_decode_refuses(data, message):
    with pytest.raises(X3Error, match=message):
        pdu.decode(data)


def test_timestamp_nanoseconds_are_checked():
    with pytest.raises(X3Error):
        pdu.timestamp(1, 1_000_000_000)
