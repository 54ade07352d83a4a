"""Wireshark's ``5gli`` dissector (ETSI TS 103 221-2) reads flowtap's X3 PDUs as written.

The PDUs go into a pcap as TCP segments, one PDU each (the dissector does not reassemble), to
a port decoded with ``-d tcp.port==N,5gli`` (its TLS heuristic wants version 1, fact sheet
§3.1). Fields per LI-HANDOVER.md §3.3.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from flowtap.dataplane.encap import checksum
from flowtap.dataplane.x3 import pdu
from flowtap.dataplane.x3.template import X3Template
from flowtap.tools.pcap import LINKTYPE_RAW, PcapWriter

from .test_pdu import CORRELATION, INNER4, INNER6, TS_NS, XID

PORT = 4433
FIELDS = ["li5g.ver", "li5g.type", "li5g.hl", "li5g.pl", "li5g.pf", "li5g.pd", "li5g.xid",
          "li5g.cid", "li5g.sq", "li5g.ts", "ip.src", "ipv6.src", "udp.dstport"]


def _ipv4_tcp(payload: bytes, seq: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", 40000, PORT, seq, 0, 0x50, 0x18, 65535, 0, 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))  # fmt: skip
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + tcp


def _tshark(path: Path) -> list[list[str]]:
    tshark = shutil.which("tshark")
    assert tshark, "tshark is installed by `make test` (APT_PACKAGES)"
    out = subprocess.run([tshark, "-r", str(path), "-d", f"tcp.port=={PORT},5gli", "-T", "fields",
                          "-E", "separator=|", "-E", "aggregator=~", "-o", "tcp.check_checksum:FALSE",
                          *[a for f in FIELDS for a in ("-e", f)]],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [line.split("|") for line in out.splitlines()]


def test_tshark_decodes_xcc_and_keepalive(tmp_path):
    template = X3Template(XID, CORRELATION)
    pdus = [template.pdu(INNER4, 3, 0xFFFFFFFE, TS_NS), template.pdu(INNER6, 2, 7, TS_NS),
            pdu.keepalive(9), pdu.keepalive_ack(pdu.decode(pdu.keepalive(9)))]
    path = tmp_path / "x3.pcap"
    with path.open("wb") as stream:
        writer = PcapWriter(stream, LINKTYPE_RAW)
        seq = 1
        for item in pdus:
            writer.write(_ipv4_tcp(item, seq))
            seq += len(item)
    rows = [dict(zip(FIELDS, row, strict=True)) for row in _tshark(path)]
    assert len(rows) == 4
    xcc4, xcc6, keepalive, ack = rows
    assert [xcc4[f] for f in FIELDS[:8]] == ["5", "2", "60", str(len(INNER4)), "5", "3", str(XID),
                                             CORRELATION.hex()]  # fmt: skip
    # Each attribute value appears twice in field output (fact sheet §3.3).
    assert xcc4["li5g.sq"].split("~")[0] == str(0xFFFFFFFE)
    assert xcc4["li5g.ts"].split("~")[0] == "Nov 30, 2024 20:53:20.123456789 UTC"
    assert xcc4["ip.src"] == "10.0.0.1~192.0.2.10" and xcc4["udp.dstport"] == "53"
    assert [xcc6[f] for f in ("li5g.pf", "li5g.pd", "ipv6.src")] == ["6", "2", "2001:db8::1"]
    assert xcc6["li5g.sq"].split("~")[0] == "7"
    assert [keepalive[f] for f in FIELDS[:6]] == ["5", "3", "48", "0", "0", "0"]
    assert keepalive["li5g.xid"] == "00000000-0000-0000-0000-000000000000"
    assert [ack[f] for f in ("li5g.type", "li5g.hl")] == ["4", "48"]
    assert ack["li5g.sq"].split("~")[0] == "9"
