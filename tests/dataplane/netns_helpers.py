"""Helpers for the netns integration tests: collector process, receivers, packet taps."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from flowtap.dataplane import ffi
from flowtap.tools import pcap
from flowtap.tools.netns import Topology
from flowtap.tools.traffic import Sender

COLLECTOR = Path(sys.executable).with_name("flowtap-collector")


class Collector:
    """``flowtap-collector`` running in the content-destination namespace."""

    def __init__(self, topo: Topology, out: Path, ports: list[int], *extra: str,
                 listen: str = "0.0.0.0") -> None:
        args = ["ip", "netns", "exec", topo.ns("med"), str(COLLECTOR), "-l", listen,
                "-w", str(out), "-t", "60", *extra]
        for p in ports:
            args += ["-p", str(p)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline())
        assert ready["listening"] == ports
        self.out = out

    def finish(self, timeout: float = 30.0) -> dict[str, object]:
        """Wait for the collector to stop (count reached) or SIGTERM it; its summary."""
        try:
            stdout, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return dict(json.loads(stdout.splitlines()[-1]))

    def stop(self) -> dict[str, object]:
        self.proc.terminate()
        return self.finish()

    def packets(self, path: Path | None = None) -> list[bytes]:
        linktype, pkts = pcap.read((path or self.out).read_bytes())
        assert linktype == pcap.LINKTYPE_RAW
        return pkts


def udp_receiver(topo: Topology, role: str, port: int, family: int = socket.AF_INET
                 ) -> socket.socket:
    with ffi.netns(topo.ns(role)):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, ffi.SO_RCVBUFFORCE, 64 << 20)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    s.settimeout(0.5)
    return s


def drain(sock: socket.socket, quiet: float = 0.5) -> list[bytes]:
    """Everything that arrives until nothing came for ``quiet`` seconds."""
    out = []
    sock.settimeout(quiet)
    while True:
        try:
            out.append(sock.recv(65536))
        except TimeoutError:
            return out


def link_tap(topo: Topology, role: str, dev: str) -> socket.socket:
    """An AF_PACKET socket seeing every frame received on ``dev`` (to check outer headers)."""
    with ffi.netns(topo.ns(role)):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ffi.ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, ffi.SO_RCVBUFFORCE, 64 << 20)
        s.bind((dev, ffi.ETH_P_ALL))
    return s


def send(topo: Topology, packets: list[bytes], count: int | None = None,
         rate: float = 100_000) -> int:
    with ffi.netns(topo.ns("snd")):
        s = Sender("snd0", topo.mac(1, 1), packets)
    try:
        return s.send(count or len(packets), rate)
    finally:
        s.close()


def settle(dp_counters, expected_packets: int, timeout: float = 10.0) -> None:
    """Wait until the dataplane has processed ``expected_packets`` matches (ring blocks retire
    every 10 ms); returns early, never asserts on time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(c.packets for c in dp_counters().values()) >= expected_packets:
            break
        time.sleep(0.02)
    time.sleep(0.1)
