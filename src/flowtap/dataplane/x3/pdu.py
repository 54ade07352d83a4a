"""The TS 103 221-2 X2/X3 PDU (LI-HANDOVER.md §3), whole PDUs in and out. Pure.

Layout, big-endian, no padding: version ``00 05``, PDU type (2), header length (4, 40 + the
conditional attributes), payload length (4), payload format (2), payload direction (2), XID (16,
the task's UUID), correlation ID (8), conditional attributes as type (2) / length (2) / value,
then the payload. The per-packet hot path is :mod:`flowtap.dataplane.x3.template`; this module
is the general form, used for keepalives, by receivers and by tests.

Decoding is strict where a receiver must be to stay in step with the stream (version, lengths,
attribute framing, the sizes of the numeric attributes) and generic elsewhere: attribute types
it has no meaning for, 23 and up included, are kept as opaque values rather than refused, since
later editions add types.
"""

from __future__ import annotations

import enum
import struct
import uuid
from dataclasses import dataclass
from typing import Final

from flowtap.errors import X3Error

VERSION: Final = 0x0005  # major 0, minor 5: bytes 00 05 (fact sheet §3.1)
FIXED_HEADER_LENGTH: Final = 40
PREFIX: Final = struct.Struct("!HHII")  # version, PDU type, header length, payload length
FIXED: Final = struct.Struct("!HHIIHH16s8s")
ATTRIBUTE_HEADER: Final = struct.Struct("!HH")
MAX_ATTRIBUTE_VALUE: Final = 0xFFFF


class PduType(enum.IntEnum):
    X2 = 1  # xIRI
    X3 = 2  # xCC
    KEEPALIVE = 3
    KEEPALIVE_ACK = 4


class PayloadFormat(enum.IntEnum):
    RESERVED = 0  # keepalives
    ETSI_102_232_1 = 1
    TS_33_128 = 2
    TS_33_108 = 3
    PROPRIETARY = 4
    IPV4_PACKET = 5
    IPV6_PACKET = 6
    ETHERNET_FRAME = 7
    RTP_PACKET = 8
    SIP_MESSAGE = 9
    DHCP_MESSAGE = 10
    RADIUS_PACKET = 11
    GTP_U_MESSAGE = 12
    MSRP_MESSAGE = 13
    EPS_IRI_CONTENT = 14
    MIME_ENTITY = 15
    UNSTRUCTURED_3GPP = 16


class Direction(enum.IntEnum):
    RESERVED = 0  # keepalives
    UNKNOWN = 1
    TO_TARGET = 2  # sent to (received by) the target
    FROM_TARGET = 3  # sent from the target
    MULTIPLE = 4
    NOT_APPLICABLE = 5


class AttributeType(enum.IntEnum):
    ETSI_102_232_1 = 1
    TS_33_128 = 2
    TS_33_108 = 3
    PROPRIETARY = 4
    DOMAIN_ID = 5
    NETWORK_FUNCTION_ID = 6
    INTERCEPTION_POINT_ID = 7
    SEQUENCE_NUMBER = 8
    TIMESTAMP = 9
    SOURCE_IPV4_ADDRESS = 10
    DESTINATION_IPV4_ADDRESS = 11
    SOURCE_IPV6_ADDRESS = 12
    DESTINATION_IPV6_ADDRESS = 13
    SOURCE_PORT = 14
    DESTINATION_PORT = 15
    IP_PROTOCOL = 16
    MATCHED_TARGET_IDENTIFIER = 17
    OTHER_TARGET_IDENTIFIER = 18
    MIME_CONTENT_TYPE = 19
    MIME_CONTENT_ENCODING = 20
    ADDITIONAL_XID_RELATED = 21
    SDP_SESSION_DESCRIPTION = 22


# Numeric attributes have one size; a receiver that trusted another would misread the value.
FIXED_SIZES: Final = {8: 4, 9: 8, 10: 4, 11: 4, 12: 16, 13: 16, 14: 2, 15: 2, 16: 1}
_U32: Final = struct.Struct("!I")
_TIMESTAMP: Final = struct.Struct("!II")
ZERO_XID: Final = uuid.UUID(int=0)
ZERO_CORRELATION: Final = bytes(8)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One conditional attribute; ``type`` is an :class:`AttributeType` value or any other."""

    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class Pdu:
    pdu_type: int
    payload_format: int
    direction: int
    xid: uuid.UUID
    correlation_id: bytes = ZERO_CORRELATION
    attributes: tuple[Attribute, ...] = ()
    payload: bytes = b""

    @property
    def header_length(self) -> int:
        return FIXED_HEADER_LENGTH + sum(4 + len(a.value) for a in self.attributes)

    def attribute(self, kind: int) -> bytes | None:
        """The value of the first attribute of type ``kind``, if any."""
        for attribute in self.attributes:
            if attribute.type == kind:
                return attribute.value
        return None

    @property
    def sequence_number(self) -> int | None:
        value = self.attribute(AttributeType.SEQUENCE_NUMBER)
        return None if value is None else int(_U32.unpack(value)[0])

    @property
    def timestamp(self) -> tuple[int, int] | None:
        """``(seconds since 1970, nanoseconds)`` of the timestamp attribute, if any."""
        value = self.attribute(AttributeType.TIMESTAMP)
        if value is None:
            return None
        seconds, nanoseconds = _TIMESTAMP.unpack(value)
        return int(seconds), int(nanoseconds)


def sequence_number(number: int) -> Attribute:
    """Attribute 8; the counter wraps after 0xffffffff."""
    return Attribute(AttributeType.SEQUENCE_NUMBER, _U32.pack(number & 0xFFFFFFFF))


def timestamp(seconds: int, nanoseconds: int) -> Attribute:
    """Attribute 9: 32-bit seconds since 1970, then 32-bit nanoseconds."""
    if not 0 <= nanoseconds < 1_000_000_000:
        raise X3Error("timestamp nanoseconds out of range")
    return Attribute(AttributeType.TIMESTAMP, _TIMESTAMP.pack(seconds & 0xFFFFFFFF, nanoseconds))


def encode(pdu: Pdu) -> bytes:
    """The PDU's bytes.

    Raises:
        X3Error: a correlation ID other than 8 bytes, an attribute type outside 1..65535, a
            value longer than 65535 bytes or a numeric attribute of the wrong size.
    """
    if len(pdu.correlation_id) != 8:
        raise X3Error("correlation ID must be 8 bytes")
    parts = [FIXED.pack(VERSION, pdu.pdu_type, pdu.header_length, len(pdu.payload),
                        pdu.payload_format, pdu.direction, pdu.xid.bytes,
                        pdu.correlation_id)]  # fmt: skip
    for attribute in pdu.attributes:
        _check_attribute(attribute.type, len(attribute.value))
        parts += (ATTRIBUTE_HEADER.pack(attribute.type, len(attribute.value)), attribute.value)
    parts.append(pdu.payload)
    return b"".join(parts)


def keepalive(number: int) -> bytes:
    """A keepalive: type 3, format and direction 0, zero XID and correlation, no payload, with
    its sequence number (OpenLI ignores a keepalive without one)."""
    return encode(Pdu(PduType.KEEPALIVE, 0, 0, ZERO_XID, attributes=(sequence_number(number),)))


def keepalive_ack(request: Pdu) -> bytes:
    """The acknowledgement of a keepalive: type 4, echoing its sequence number (header 48)."""
    value = request.attribute(AttributeType.SEQUENCE_NUMBER)
    if request.pdu_type != PduType.KEEPALIVE or value is None:
        raise X3Error("only a keepalive with a sequence number is acknowledged")
    return encode(Pdu(PduType.KEEPALIVE_ACK, 0, 0, ZERO_XID,
                      attributes=(Attribute(AttributeType.SEQUENCE_NUMBER, value),)))  # fmt: skip


def check_prefix(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
    """``(header length, payload length)`` from the 12 bytes at ``offset``, after checking the
    version, the PDU type and that the header is at least 40 bytes."""
    version, pdu_type, header_length, payload_length = PREFIX.unpack_from(data, offset)
    if version != VERSION:
        raise X3Error(f"version {version >> 8}.{version & 0xFF} is not 0.5")
    if not PduType.X2 <= pdu_type <= PduType.KEEPALIVE_ACK:
        raise X3Error(f"PDU type {pdu_type} is unknown")
    if header_length < FIXED_HEADER_LENGTH:
        raise X3Error(f"header length {header_length} is below {FIXED_HEADER_LENGTH}")
    return int(header_length), int(payload_length)


def decode(data: bytes | bytearray | memoryview) -> Pdu:
    """Exactly one whole PDU.

    Raises:
        X3Error: a bad version or PDU type, lengths that do not add up to ``len(data)``, an
            attribute of type 0, one that overruns the header, or a numeric one of the wrong
            size.
    """
    if len(data) < FIXED_HEADER_LENGTH:
        raise X3Error("shorter than the 40-byte fixed header")
    header_length, payload_length = check_prefix(data)
    if header_length + payload_length != len(data):
        raise X3Error("header and payload lengths do not add up to the PDU")
    (_v, pdu_type, _h, _p, payload_format, direction, xid,
     correlation) = FIXED.unpack_from(data)  # fmt: skip
    attributes = []
    pos = FIXED_HEADER_LENGTH
    while pos < header_length:
        if pos + 4 > header_length:
            raise X3Error("attribute header overruns the PDU header")
        kind, length = ATTRIBUTE_HEADER.unpack_from(data, pos)
        if pos + 4 + length > header_length:
            raise X3Error(f"attribute {kind} overruns the PDU header")
        _check_attribute(kind, length)
        attributes.append(Attribute(kind, bytes(data[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    return Pdu(pdu_type, payload_format, direction, uuid.UUID(bytes=bytes(xid)),
               bytes(correlation), tuple(attributes), bytes(data[header_length:]))  # fmt: skip


def _check_attribute(kind: int, length: int) -> None:
    if not 1 <= kind <= 0xFFFF:
        raise X3Error(f"attribute type {kind} is not allowed")
    if length > MAX_ATTRIBUTE_VALUE:
        raise X3Error("attribute value longer than 65535 bytes")
    size = FIXED_SIZES.get(kind)
    if size is not None and size != length:
        raise X3Error(f"attribute {kind} must be {size} bytes, not {length}")
