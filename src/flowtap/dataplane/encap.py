"""The intercepted-packet encapsulation (dataplane/ENCAP.md), byte for byte. Pure.

The running dataplane lets the kernel write the outer headers (a UDP socket per content
destination, see :mod:`flowtap.dataplane.sender`) and writes only a criterion's :func:`shim`
(the jmirror header, made once per criterion) in front of the packet; this module is the
executable form of the contract: golden pcaps, the tests that compare what the kernel put on the
wire, and the collector all use it.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from flowtap.intercept.criteria import ContentDestination, Delivery, Jmirror

IPV4_OVERHEAD = 28  # outer IPv4 (20) + UDP (8)
IPV6_OVERHEAD = 48  # outer IPv6 (40) + UDP (8)
MAX_INNER = {4: 65535 - IPV4_OVERHEAD, 6: 65535 - 8}  # IPv4 total length / UDP length limits
DEFAULT_TTL = 255

_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_JMIRROR = struct.Struct("!II")  # V (2 bits) = 0 | intercept ID (30 bits); session ID
JMIRROR_SIZE = _JMIRROR.size


@dataclass(frozen=True, slots=True)
class Outer:
    """The outer header fields of one copy."""

    version: int
    source: str
    source_port: int
    dest: str
    dest_port: int
    ttl: int = DEFAULT_TTL

    def __reduce__(self) -> tuple[type[Outer], tuple[int, str, int, str, int, int]]:
        # cheap pickling to the capture workers (see flowtap.dataplane.control.Upsert)
        return Outer, (self.version, self.source, self.source_port, self.dest, self.dest_port,
                       self.ttl)  # fmt: skip

    @classmethod
    def of(cls, cd: ContentDestination) -> Outer:
        return cls(cd.version, cd.source_address, cd.source_port, cd.dest_address, cd.dest_port,
                   cd.ttl)


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def shim(delivery: Delivery) -> bytes:
    """What goes between the UDP header and the packet for ``delivery``: nothing for classic
    copies, the 8-byte jmirror header (intercept ID under V = 0, session ID) for jmirror."""
    if isinstance(delivery, Jmirror):
        return _JMIRROR.pack(delivery.intercept_id, delivery.session_id)
    return b""


def split_jmirror(payload: bytes) -> tuple[int, int, bytes]:
    """(intercept ID, session ID, inner packet) of a jmirror copy's UDP payload.

    Raises:
        ValueError: shorter than the header, or V (the top two bits) is not 0.
    """
    if len(payload) < JMIRROR_SIZE or payload[0] >> 6:
        raise ValueError("not a jmirror header")
    word, session = _JMIRROR.unpack_from(payload)
    return word, session, payload[JMIRROR_SIZE:]


def is_jmirror(payload: bytes) -> bool:
    """Whether a copy's UDP payload starts with a jmirror header rather than the packet: the
    header's first byte has V = 0 in its top two bits (below 0x40), an IP packet's first byte
    has version 4 or 6 in its top four (0x40-0x6f). Unambiguous for every copy flowtap sends."""
    return len(payload) >= JMIRROR_SIZE and payload[0] >> 6 == 0


def build(inner: bytes, outer: Outer, ident: int = 0, header: bytes = b"") -> bytes:
    """The whole outer datagram carrying ``header`` (a :func:`shim`) and ``inner`` (the
    original packet from its IP header).

    IPv4: TOS 0, DF clear, ``ident`` as IP ID (the kernel picks its own), UDP checksum 0.
    IPv6: traffic class 0, flow label 0, UDP checksum computed (mandatory in IPv6).
    """
    if len(header) + len(inner) > MAX_INNER[outer.version]:
        raise ValueError("packet too large to encapsulate")
    inner = header + inner
    ulen = 8 + len(inner)
    if outer.version == 4:
        src = ipaddress.IPv4Address(outer.source).packed
        dst = ipaddress.IPv4Address(outer.dest).packed
        hdr = _IP4.pack(0x45, 0, 20 + ulen, ident, 0, outer.ttl, 17, 0, src, dst)
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        return hdr + _UDP.pack(outer.source_port, outer.dest_port, ulen, 0) + inner
    src = ipaddress.IPv6Address(outer.source).packed
    dst = ipaddress.IPv6Address(outer.dest).packed
    pseudo = src + dst + struct.pack("!I3xB", ulen, 17)
    udp = _UDP.pack(outer.source_port, outer.dest_port, ulen, 0)
    csum = checksum(pseudo + udp + inner) or 0xFFFF
    udp = _UDP.pack(outer.source_port, outer.dest_port, ulen, csum)
    return _IP6.pack(6 << 28, ulen, 17, outer.ttl, src, dst) + udp + inner


@dataclass(frozen=True, slots=True)
class Decoded:
    """An outer datagram taken apart (see :func:`decode`)."""

    outer: Outer
    ident: int
    tos: int
    dont_fragment: bool
    udp_checksum: int
    inner: bytes


def decode(datagram: bytes) -> Decoded:
    """Split an (unfragmented) outer datagram into its header fields and the inner packet.

    Raises:
        ValueError: not IPv4/IPv6 + UDP, or inconsistent lengths.
    """
    version = datagram[0] >> 4
    if version == 4:
        vihl, tos, total, ident, frag, ttl, proto, _c, src, dst = _IP4.unpack_from(datagram)
        ihl = (vihl & 15) * 4
        if proto != 17 or total > len(datagram) or frag & 0x3FFF:
            raise ValueError("not a whole IPv4/UDP datagram")
        sport, dport, ulen, csum = _UDP.unpack_from(datagram, ihl)
        outer = Outer(4, str(ipaddress.IPv4Address(src)), sport, str(ipaddress.IPv4Address(dst)),
                      dport, ttl)
        return Decoded(outer, ident, tos, bool(frag & 0x4000), csum,
                       datagram[ihl + 8:ihl + ulen])
    if version == 6:
        vtf, plen, nh, hop, src, dst = _IP6.unpack_from(datagram)
        if nh != 17 or 40 + plen > len(datagram):
            raise ValueError("not a whole IPv6/UDP datagram")
        sport, dport, ulen, csum = _UDP.unpack_from(datagram, 40)
        outer = Outer(6, str(ipaddress.IPv6Address(src)), sport, str(ipaddress.IPv6Address(dst)),
                      dport, hop)
        return Decoded(outer, 0, (vtf >> 20) & 0xFF, False, csum, datagram[48:40 + ulen])
    raise ValueError("not IP")
