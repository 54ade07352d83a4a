"""``flowtap-collector --x3`` as a mediation function would run it: a real process receiving X3
over mutual TLS from an X3Link, writing the packets and counting them per XID and direction."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from flowtap.dataplane.x3.link import UP, X3Link, client_context
from flowtap.dataplane.x3.template import X3Template, correlation_bytes
from flowtap.tools import pcap
from flowtap.tools.traffic import udp_packet
from tests.x1.pki import Authority


def test_the_collector_writes_x3_packets_and_answers_keepalives(tmp_path: Path) -> None:
    ca = Authority(tmp_path, "lab")
    mdf, ne = ca.issue("mdf", server=True), ca.issue("ne-1")
    out = tmp_path / "x3.pcap"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowtap.tools.collector", "--x3", "-l", "127.0.0.1", "-p", "0",
         "-w", str(out), "--split", "intercept", "--print-ids", "-c", "6", "-t", "30",
         "--cert", str(mdf.cert), "--key", str(mdf.key), "--ca", str(ca.cert_path)],
        stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["listening"][0]
    link = X3Link(("127.0.0.1", port),
                  client_context(str(ne.cert), str(ne.key), str(ca.cert_path)))  # fmt: skip
    xids = [uuid.uuid4(), uuid.uuid4()]
    packets = [udp_packet("192.0.2.1", "198.51.100.7", 1000 + i, 53, 80) for i in range(6)]
    for i, packet in enumerate(packets):
        template = X3Template(xids[i % 2], correlation_bytes(9))
        link.queue(i, template, 2 if i < 3 else 3, packet, 1_700_000_000_000_000_000 + i)
    deadline = time.monotonic() + 20
    while proc.poll() is None and time.monotonic() < deadline:
        link.pump()
        time.sleep(0.005)
    lines = [json.loads(line) for line in proc.stdout.read().splitlines()]
    proc.wait(10)
    assert link.state in (UP, "down")  # the collector closes once it has its six
    per_copy, summary = lines[:-1], lines[-1]
    assert [c["xid"] for c in per_copy] == [str(xids[i % 2]) for i in range(6)]
    assert [c["direction"] for c in per_copy] == ["to-target"] * 3 + ["from-target"] * 3
    assert [c["sequence"] for c in per_copy] == list(range(6))
    assert summary["packets"] == 6
    assert summary["x3"] == {str(xids[0]): {"to-target": 2, "from-target": 1},
                             str(xids[1]): {"to-target": 1, "from-target": 2}}
    for n, xid in enumerate(xids):
        written = tmp_path / f"x3-x3-{xid}.pcap"
        _linktype, got = pcap.read(written.read_bytes())
        assert got == packets[n::2]
