"""Classic libpcap files (microsecond, little-endian). Pure apart from the file object."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # packet starts at its IPv4 or IPv6 header
SNAPLEN = 262144
_GLOBAL = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
MAGIC = 0xA1B2C3D4


class PcapWriter:
    """Append records to a pcap stream (header written on creation)."""

    def __init__(self, stream: BinaryIO, linktype: int = LINKTYPE_RAW) -> None:
        self.stream = stream
        stream.write(_GLOBAL.pack(MAGIC, 2, 4, 0, 0, SNAPLEN, linktype))

    def write(self, packet: bytes, ts: float = 0.0) -> None:
        sec = int(ts)
        usec = round((ts - sec) * 1e6)
        self.stream.write(_RECORD.pack(sec, usec, len(packet), len(packet)))
        self.stream.write(packet)

    def flush(self) -> None:
        self.stream.flush()


def read(data: bytes) -> tuple[int, list[bytes]]:
    """``(linktype, packets)`` of a whole little- or big-endian microsecond pcap file."""
    if not data:
        return LINKTYPE_RAW, []
    magic = struct.unpack_from("<I", data)[0]
    endian = "<" if magic == MAGIC else ">"
    if struct.unpack_from(f"{endian}I", data)[0] != MAGIC:
        raise ValueError("not a microsecond pcap file")
    linktype = struct.unpack_from(f"{endian}I", data, 20)[0]
    return linktype, list(_records(data, endian))


def _records(data: bytes, endian: str) -> Iterator[bytes]:
    rec = struct.Struct(f"{endian}IIII")
    pos = _GLOBAL.size
    while pos + rec.size <= len(data):
        _s, _u, incl, _orig = rec.unpack_from(data, pos)
        pos += rec.size
        yield data[pos:pos + incl]
        pos += incl
