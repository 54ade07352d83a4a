"""flowtap-collector on loopback: classic and jmirror copies on one port, told apart by their
first byte; the jmirror header stripped and its IDs reported per copy and in the summary."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from flowtap.dataplane import encap
from flowtap.intercept.criteria import Jmirror
from flowtap.tools import pcap

from .golden import inner_packets
from .netns_helpers import COLLECTOR


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_collector_strips_jmirror_and_reports_ids_per_copy(tmp_path: Path) -> None:
    port = free_udp_port()
    out = tmp_path / "cd.pcap"
    proc = subprocess.Popen(
        [str(COLLECTOR), "-l", "127.0.0.1", "-p", str(port), "-w", str(out), "-c", "4",
         "-t", "30", "--print-ids", "--split", "intercept"],
        stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline()) == {"listening": [port]}
    v4, v6 = inner_packets()[0], inner_packets()[3]
    a, b = Jmirror(0x01010101, 0x30010002), Jmirror(2**30 - 1, 7)
    payloads = [v4, encap.shim(a) + v4, encap.shim(b) + v6, encap.shim(a) + v6]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        sport = s.getsockname()[1]
        for p in payloads:
            s.sendto(p, ("127.0.0.1", port))
    stdout, _ = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in stdout.splitlines()]
    ids = [(x["copy"], x["dport"], x["intercept_id"], x["session_id"]) for x in lines[:4]]
    assert ids == [(1, port, None, None), (2, port, 0x01010101, 0x30010002),
                   (3, port, 2**30 - 1, 7), (4, port, 0x01010101, 0x30010002)]
    assert {x["source"] for x in lines[:4]} == {f"127.0.0.1:{sport}"}
    summary = lines[4]
    assert summary["packets"] == 4
    assert summary["jmirror"] == {"0x01010101": {"0x30010002": 2}, "0x3fffffff": {"0x00000007": 1}}
    files = {Path(f).name: pcap.read(Path(f).read_bytes())[1] for f in summary["files"]}
    assert files == {"cd.pcap": [v4], "cd-jmirror01010101.pcap": [v4, v6],
                     "cd-jmirror3fffffff.pcap": [v6]}
