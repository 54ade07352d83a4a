"""Issue 18 A: a DTCP ADD with X-MD-Intercept-Id makes its criterion's copies jmirror, end to end.

A real flowtapd in the router namespace (:class:`~tests.integration.live_support.LiveRig`)
captures its ingress; two agencies tap the same flow towards the same content destination, md1
with an 8-byte intercept ID, md2 once with a 4-byte one and once without. flowtap-collector in
the content destination's namespace strips the jmirror headers and reports their IDs; the
outer datagrams, captured on the way, are checked byte for byte.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from flowtap.dataplane import encap
from flowtap.dataplane.encap import Outer
from flowtap.intercept.criteria import Jmirror
from flowtap.tools.dtcp_client import AsyncDtcpClient
from flowtap.tools.netns import Topology, unique_prefix
from flowtap.tools.traffic import udp_packet
from tests.dataplane.netns_helpers import Collector, link_tap, send
from tests.integration.dtcp_support import audit_records
from tests.integration.live_support import CD_ADDRESS, CD_PORT, PORT, TARGET, LiveRig, tap_fields

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")  # fmt: skip
PACKETS = 400
SOURCE = Topology.v4(1, 2)


def test_intercept_id_gives_jmirror_copies_and_no_field_gives_classic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWTAP_TEST_LOG", "INFO")  # the ordinary log must stay LI-free at INFO
    with LiveRig(tmp_path, unique_prefix("ftjm")) as rig:
        asyncio.run(_scenario(rig, tmp_path))
        log = "".join(rig.server.output)
    for secret in ("0101010130010002", "01010101", "0x0000002a", TARGET):
        assert secret not in log
    adds = [r for r in audit_records(rig.server)
            if r["event"] == "dtcp" and r.get("method") == "ADD"]
    assert [r["result"] for r in adds] == ["400 Bad Request"] + ["200 OK"] * 3, adds
    refused, eight, four, classic = (str(r.get("target")) for r in adds)
    assert "0x40000000" in refused
    assert ("X-MD-Intercept-Id: 0x0101010130010002 (jmirror intercept ID 16843009, "
            "session ID 805371906)") in eight
    four_id = adds[2]["criteria_id"]
    assert f"X-MD-Intercept-Id: 0x0000002a (jmirror intercept ID 42, session ID {four_id})" in four
    assert "Intercept-Id" not in classic


async def _scenario(rig: LiveRig, tmp_path: Path) -> None:
    md1, md2 = await rig.client("md1"), await rig.client("md2")
    async with md1, md2:
        too_wide = await md1.add([*tap_fields(), ("X-MD-Intercept-Id", "0x40000000")])
        assert too_wide.status == 400, too_wide.raw
        assert b"X-MD-INTERCEPT-ID: 0x40000000" in too_wide.raw  # Error-Parameters
        eight = await md1.add([*tap_fields(), ("X-MD-Intercept-Id", "0x0101010130010002")])
        four = await md2.add([*tap_fields(), ("X-MD-Intercept-Id", "42")])
        classic = await md2.add(tap_fields())
        assert [r.status for r in (eight, four, classic)] == [200, 200, 200]
        listing = (await md1.list([("Flags", "Criteria")])).entries()
        assert [e.get("X-MD-INTERCEPT-ID") for e in listing] == ["0x0101010130010002"]
        listing = (await md2.list([("Flags", "Criteria")])).entries()
        assert [e.get("X-MD-INTERCEPT-ID") for e in listing] == ["0x0000002a", None]
        assert four.criteria_id is not None
        await _traffic(rig, tmp_path, four.criteria_id)
        await _stats(md1, md2)


async def _traffic(rig: LiveRig, tmp_path: Path, four_id: int) -> None:
    col = Collector(rig.topo, tmp_path / "cd.pcap", [CD_PORT], "-c", str(3 * PACKETS),
                    "--split", "intercept")
    wire = link_tap(rig.topo, "med", "med0")
    pkts = [udp_packet(SOURCE, TARGET, 10000, PORT, 60 + i % 700, ident=i)
            for i in range(PACKETS)]
    assert await asyncio.to_thread(send, rig.topo, pkts, None, 20_000) == PACKETS
    summary = await asyncio.to_thread(col.finish)
    source = f"{Topology.v4(3, 1)}:{CD_PORT + 100}"
    assert summary["per_source"] == {source: 3 * PACKETS}
    assert summary["jmirror"] == {"0x01010101": {"0x30010002": PACKETS},
                                  "0x0000002a": {f"0x{four_id:08x}": PACKETS}}
    for name in ("cd.pcap", "cd-jmirror01010101.pcap", "cd-jmirror0000002a.pcap"):
        assert sorted(col.packets(tmp_path / name)) == sorted(pkts)  # header stripped
    wire.setblocking(False)
    outer = Outer(4, Topology.v4(3, 1), CD_PORT + 100, CD_ADDRESS, CD_PORT, 255)
    headers = {encap.shim(Jmirror(0x01010101, 0x30010002)): 0,
               encap.shim(Jmirror(42, four_id)): 0, b"": 0}
    while True:
        try:
            frame = wire.recv(65536)
        except BlockingIOError:
            break
        if frame[0] != 0x45 or frame[9] != 17 or frame[22:24] != CD_PORT.to_bytes(2, "big"):
            continue
        d = encap.decode(frame)
        header = d.inner[:8] if encap.is_jmirror(d.inner) else b""
        assert frame == encap.build(d.inner[len(header):], outer, d.ident, header)
        headers[header] += 1
    wire.close()
    assert list(headers.values()) == [PACKETS] * 3


async def _stats(md1: AsyncDtcpClient, md2: AsyncDtcpClient) -> None:
    for client, expected in ((md1, 1), (md2, 2)):
        entries = (await client.list([("Flags", "Stats")])).entries()
        assert [e["MATCHING-PACKETS"] for e in entries] == [str(PACKETS)] * expected
