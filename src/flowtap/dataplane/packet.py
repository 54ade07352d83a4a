"""Parse an IP packet (from its IP header) into the fields criteria match on. Pure.

A flow key is the plain tuple ``(src, dst, proto, sport, dport, icmp_type, icmp_code)``:
addresses are integers of the packet's family; absent fields are -1 (ports exist only for TCP,
UDP and SCTP, ICMP type/code only for ICMP and ICMPv6). Tuples keep the hot path cheap and
hashable (the match table memoises on them).

Packets that must never be copied return None: non-first fragments (only the first fragment of
a fragmented packet is tapped), truncated or malformed headers, versions other than 4 and 6.
"""

from __future__ import annotations

import mmap
import struct
from typing import TypeAlias

FlowKey: TypeAlias = tuple[int, int, int, int, int, int, int]
Buf: TypeAlias = bytes | bytearray | memoryview | mmap.mmap

PORT_PROTOCOLS = frozenset({6, 17, 132})
ICMP_PROTOCOLS = frozenset({1, 58})
IPV6_EXTENSIONS = frozenset({0, 43, 44, 51, 60, 135, 139, 140, 253, 254})

_V4 = struct.Struct("!BxH2xHxBxxII")  # ver/ihl, total length, frag field, proto, src, dst
_V6 = struct.Struct("!4xHBxQQQQ")  # payload length, next header, src hi/lo, dst hi/lo
_PORTS = struct.Struct("!HH")
_ICMP = struct.Struct("!BB")
_EXT = struct.Struct("!BB")
_FRAG = struct.Struct("!BxH")


def parse(buf: Buf, off: int, length: int) -> tuple[int, FlowKey] | None:
    """Parse the packet at ``buf[off:off+length]``; returns ``(ip_version, key)`` or None."""
    if length < 20:
        return None
    version = buf[off] >> 4
    if version == 4:
        vihl, total, frag, proto, src, dst = _V4.unpack_from(buf, off)
        ihl = (vihl & 0x0F) * 4
        if frag & 0x1FFF or ihl < 20 or total < ihl or length < ihl:
            return None
        return 4, _l4(buf, off + ihl, length - ihl, proto, src, dst)
    if version == 6:
        if length < 40:
            return None
        _plen, nh, shi, slo, dhi, dlo = _V6.unpack_from(buf, off)
        pos, end = off + 40, off + length
        while nh in IPV6_EXTENSIONS:
            if pos + 8 > end:
                return None
            if nh == 44:
                nxt, frag = _FRAG.unpack_from(buf, pos)
                if frag & 0xFFF8:
                    return None  # not the first fragment
                nh, pos = nxt, pos + 8
            else:
                nxt, hlen = _EXT.unpack_from(buf, pos)
                nh, pos = nxt, pos + ((hlen + 2) * 4 if nh == 51 else (hlen + 1) * 8)
        return 6, _l4(buf, pos, end - pos, nh, (shi << 64) | slo, (dhi << 64) | dlo)
    return None


def _l4(buf: Buf, pos: int, avail: int, proto: int, src: int,
        dst: int) -> FlowKey:
    if proto in PORT_PROTOCOLS and avail >= 4:
        sport, dport = _PORTS.unpack_from(buf, pos)
        return (src, dst, proto, sport, dport, -1, -1)
    if proto in ICMP_PROTOCOLS and avail >= 2:
        itype, icode = _ICMP.unpack_from(buf, pos)
        return (src, dst, proto, -1, -1, itype, icode)
    return (src, dst, proto, -1, -1, -1, -1)


def is_icmp_error(version: int, key: FlowKey) -> bool:
    """ICMP/ICMPv6 error messages (they quote another packet)."""
    if version == 4:
        return key[2] == 1 and key[5] in (3, 4, 5, 11, 12)
    return key[2] == 58 and 0 <= key[5] < 128
