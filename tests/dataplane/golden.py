"""The golden pcaps of dataplane/pcaps/ and how they were made.

``python tests/dataplane/golden.py`` rewrites them; test_encap checks the code against them.
"""

from __future__ import annotations

import struct
from pathlib import Path

from flowtap.dataplane.encap import Outer, build, shim
from flowtap.intercept.criteria import Jmirror
from flowtap.tools.pcap import PcapWriter
from flowtap.tools.traffic import ipv4_fragments, udp_packet

PCAPS = Path(__file__).resolve().parents[2] / "dataplane" / "pcaps"
OUTER4 = Outer(4, "198.18.99.1", 5555, "198.18.3.2", 47000, 255)
OUTER6 = Outer(6, "2001:db8:99::1", 5555, "2001:db8:3::2", 47000, 64)
# the Junos LIST sample's X-MD-Intercept-Id, 0x0101010130010002, as intercept + session ID
JMIRROR = Jmirror(0x01010101, 0x30010002, session_given=True)
# a 4-byte X-MD-Intercept-Id at its bound (2^30 - 1), session ID = the Criteria-ID (7)
JMIRROR_MAX = Jmirror(2**30 - 1, 7)


def tcp_syn() -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 0x50, 0x02, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 7, 0x4000, 63, 6, 0,
                     bytes([10, 1, 1, 1]), bytes([10, 2, 2, 2]))
    return ip + tcp


def icmp_echo() -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0xF7FE, 1, 0) + b"ping"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 9, 0, 64, 1, 0,
                     bytes([10, 1, 1, 1]), bytes([10, 2, 2, 2]))
    return ip + icmp


def inner_packets() -> list[bytes]:
    big = udp_packet("198.18.1.2", "198.19.0.1", 10000, 20000, 1400, ident=3)
    return [
        udp_packet("198.18.1.2", "198.18.2.2", 10000, 20000, 64, ident=1),
        tcp_syn(),
        icmp_echo(),
        udp_packet("2001:db8:1::2", "2001:db8:2::2", 10000, 20000, 100, ident=2),
        ipv4_fragments(big, 512)[0],  # a first fragment (MF set, offset 0)
        big,
    ]


def files() -> dict[str, list[bytes]]:
    inner = inner_packets()
    return {
        "inner.pcap": inner,
        "encap-ipv4.pcap": [build(p, OUTER4) for p in inner],
        "encap-ipv6.pcap": [build(p, OUTER6) for p in inner],
        "jmirror-ipv4.pcap": [build(p, OUTER4, header=shim(JMIRROR)) for p in inner],
        "jmirror-ipv6.pcap": [build(p, OUTER6, header=shim(JMIRROR_MAX)) for p in inner],
    }


def write() -> None:
    PCAPS.mkdir(parents=True, exist_ok=True)
    for name, pkts in files().items():
        with (PCAPS / name).open("wb") as f:
            w = PcapWriter(f)
            for i, p in enumerate(pkts):
                w.write(p, 1_700_000_000 + i)


if __name__ == "__main__":
    write()
