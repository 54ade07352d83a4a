"""Helpers for the end-to-end test of the seed's story (test_e2e_seed.py): mediation devices in
their agencies' namespaces, the receiver's wire, pcaps, the flow-tap-state and the audit log."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
from lxml import etree

from flowtap.dataplane import ffi
from flowtap.tools import pcap
from flowtap.tools.demo.lab import Agency, Lab
from flowtap.tools.demo.traffic import Flow
from flowtap.tools.dtcp_client import DEFAULT_PORT, AsyncDtcpClient
from tests.flowtapd import SVC, Flowtapd


def host_key(server: Flowtapd) -> asyncssh.SSHKey:
    """The appliance's public host key: mediation devices pin it."""
    key = asyncssh.read_private_key(str(server.state_dir / "ssh_host_ed25519_key"))
    return key.convert_to_public()


async def connect_md(lab: Lab, server: Flowtapd, agency: Agency, password: str
                     ) -> AsyncDtcpClient:  # fmt: skip
    """Agency ``agency``'s mediation device, from its own network, to the router's address on
    that network (the socket is made in the agency's namespace)."""
    with ffi.netns(lab.ns(agency.role)):
        return await AsyncDtcpClient.connect(
            agency.router_address, DEFAULT_PORT, username=agency.user, password=password,
            known_hosts=([host_key(server)], [], []), connect_timeout=10,
        )  # fmt: skip


@contextlib.contextmanager
def wire(lab: Lab, role: str, dev: str) -> Iterator[socket.socket]:
    """Every IP packet on ``dev`` (AF_PACKET, cooked: the IP packet as it is on the wire)."""
    with ffi.netns(lab.ns(role)):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ffi.ETH_P_ALL))
    try:
        sock.setsockopt(socket.SOL_SOCKET, ffi.SO_RCVBUFFORCE, 16 << 20)
        sock.bind((dev, ffi.ETH_P_ALL))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


def read_wire(sock: socket.socket) -> list[bytes]:
    """The packets received so far (the host's own replies, such as ICMP port unreachable,
    are outgoing and left out)."""
    out = []
    with contextlib.suppress(BlockingIOError):
        while True:
            data, address = sock.recvfrom(65536)
            if address[2] != socket.PACKET_OUTGOING:
                out.append(data)
    return out


def pcap_packets(path: Path) -> list[bytes]:
    linktype, packets = pcap.read(path.read_bytes())
    assert linktype == pcap.LINKTYPE_RAW
    return packets


async def until(probe: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``probe`` (in a thread) until it is true or ``timeout`` passed; returns its last
    value. Waiting never asserts a speed: the caller asserts on what arrived."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(probe):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def multiset(packets: list[bytes]) -> collections.Counter[bytes]:
    return collections.Counter(packets)


def of(batch: list[tuple[Flow, bytes]], dst: str) -> list[bytes]:
    return [p for f, p in batch if f.dst == dst]


def flow_tap_state(xml: str) -> dict[str, list[str]]:
    """Leaves of ``flow-tap-state`` in a ``<get>`` reply (empty when there is none)."""
    root = etree.fromstring(xml.encode())
    state = root.find(f".//{{{SVC}}}flow-tap-state")
    out: dict[str, list[str]] = {}
    if state is not None:
        for leaf in state:
            out.setdefault(etree.QName(leaf).localname, []).append(leaf.text or "")
    return out


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()[1:]]


def audit_kinds(records: list[dict[str, Any]]) -> collections.Counter[tuple[str, ...]]:
    """Records by (event, method) for DTCP requests, (event, session, principal, result) for
    authentications, (event,) otherwise."""
    kinds: collections.Counter[tuple[str, ...]] = collections.Counter()
    for r in records:
        if r["event"] == "dtcp":
            kinds[("dtcp", r["method"], r["principal"], r["result"])] += 1
        elif r["event"] == "auth":
            kinds[("auth", r["session"], r["principal"], r["result"])] += 1
        else:
            kinds[(r["event"],)] += 1
    return kinds
