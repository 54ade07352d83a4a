"""X3 delivery on the real dataplane: capture workers in a router namespace send xCC PDUs over
mutual TLS to a receiver in the mediation namespace, on one connection per destination however
many workers capture; removal stops them."""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowtap.dataplane import Dataplane, ffi
from flowtap.dataplane.x3.pdu import AttributeType, Pdu, PduType
from flowtap.dataplane.x3.relay import owner_of
from flowtap.intercept.criteria import X3, X3_FROM_TARGET, X3_TO_TARGET, ContentDestination, Match
from flowtap.tools.netns import Topology, unique_prefix
from flowtap.tools.traffic import udp_packet
from tests.x1.pki import Authority
from tests.x3.receiver import X3Receiver

from .helpers import addr, crit, vals
from .netns_helpers import send, settle
from .test_netns import IFACES, RCV, SND

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]

MDF = "198.18.3.2"
XID = uuid.UUID("7c0d6c29-8f0a-4b6e-9c1e-5a2f0d3b9e11")


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    t = Topology(unique_prefix("ftx3")).up()
    try:
        yield t
    finally:
        t.down()


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Authority, tuple[str, str, str]]:
    ca = Authority(tmp_path, "lab")
    ne = ca.issue("ne-1")
    return ca, (str(ne.cert), str(ne.key), str(ca.cert_path))


def wait_until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)


def x3_criteria(port: int) -> list:  # type: ignore[type-arg]
    destination = ContentDestination("did-1", MDF, port, "", 0)
    to_target = Match(dest_address=addr(RCV), protocol=vals("17"))
    from_target = Match(source_address=addr(RCV), protocol=vals("17"))
    return [crit(1, to_target, destination, delivery=X3(XID.bytes, 7, X3_TO_TARGET)),
            crit(2, from_target, destination, delivery=X3(XID.bytes, 7, X3_FROM_TARGET))]


def sequences(pdus: list[Pdu]) -> list[int]:
    return [int.from_bytes(p.attribute(AttributeType.SEQUENCE_NUMBER) or b"", "big")
            for p in pdus]  # fmt: skip


def test_x3_pdus_over_tls_and_none_after_removal(topo: Topology, pki, tmp_path: Path) -> None:
    ca, files = pki
    with ffi.netns(topo.ns("med")):
        receiver = X3Receiver(ca, ca.issue("mdf", server=True), host=MDF, port=47300)
    plane = Dataplane(workers=2)  # a target's flows spread over both; one of them owns the link
    try:
        with ffi.netns(topo.ns("rtr")):
            plane.start(IFACES, False)
            with pytest.raises(ValueError, match="TLS files"):
                plane.check(x3_criteria(47300)[0])
            plane.set_x3_tls(files)
            plane.set_criteria(x3_criteria(47300))
        wait_until(lambda: plane.destination_state(MDF, 47300)[0])
        assert plane.destination_state(MDF, 47300)[0], "the link never came up"
        packets = [udp_packet(SND, RCV, 10000 + i % 64, 20000, 64 + i % 500, ident=i)
                   for i in range(2000)]  # fmt: skip
        assert send(topo, packets) == 2000
        settle(plane.counters, 2000)
        pdus = receiver.wait_for(2000)
        xcc = [p for p in pdus if p.pdu_type == PduType.X3]
        assert len(xcc) == 2000
        assert all(p.xid == XID and p.direction == X3_TO_TARGET and p.payload_format == 5
                   and p.correlation_id == (7).to_bytes(8, "big") for p in xcc)  # fmt: skip
        assert sorted(p.payload for p in xcc) == sorted(packets)
        assert len(receiver.connections) == 1  # the standard's one connection per destination
        assert sequences(xcc) == list(range(2000))  # numbered per connection, without a gap
        assert plane.destination_state(MDF, 47300) == (True, 2000, 0)
        with ffi.netns(topo.ns("rtr")):
            plane.set_criteria([])  # every worker acknowledged: nothing more may leave
        before = len(receiver.pdus)
        assert send(topo, packets[:500]) == 500
        time.sleep(0.5)
        assert len(receiver.pdus) == before
    finally:
        plane.stop()
        receiver.close()


def test_a_destination_that_is_down_is_reported(topo: Topology, pki) -> None:
    _ca, files = pki
    plane = Dataplane()
    try:
        with ffi.netns(topo.ns("rtr")):
            plane.start(IFACES, False)
            plane.set_x3_tls(files)
            plane.set_criteria(x3_criteria(47301))  # nobody listens there
        wait_until(lambda: plane.destination_problem(MDF, 47301) is not None)
        assert plane.destination_state(MDF, 47301) == (False, 0, 0)
        assert plane.destination_problem(MDF, 47301) == "Connection refused"
    finally:
        plane.stop()


def test_the_owner_of_the_connection_restarts_with_its_relay_inbox(
    topo: Topology, pki, tmp_path: Path
) -> None:
    ca, files = pki
    port = 47302
    with ffi.netns(topo.ns("med")):
        receiver = X3Receiver(ca, ca.issue("mdf", server=True), host=MDF, port=port)
    plane = Dataplane(workers=2)
    try:
        with ffi.netns(topo.ns("rtr")):
            plane.start(IFACES, False)
            plane.set_x3_tls(files)
            plane.set_criteria(x3_criteria(port))
        wait_until(lambda: plane.destination_state(MDF, port)[0])
        owner = plane.worker_pids()[owner_of((MDF, port), 2)]
        os.kill(owner, signal.SIGKILL)
        other = crit(3, Match(dest_address=addr("192.0.2.99"), protocol=vals("17")))
        with ffi.netns(topo.ns("rtr")):
            plane.set_criteria([*x3_criteria(port), other])  # the pool starts it again
        assert owner not in plane.worker_pids()
        wait_until(lambda: plane.destination_state(MDF, port)[0])
        packets = [udp_packet(SND, RCV, 11000 + i % 64, 20000, 100, ident=i) for i in range(1000)]
        assert send(topo, packets) == 1000
        pdus = receiver.wait_for(1000)
        xcc = [p for p in pdus if p.pdu_type == PduType.X3]
        assert sorted(p.payload for p in xcc) == sorted(packets)  # both workers' copies
        assert len(receiver.connections) == 2 and receiver.connections[0].closed
        assert sequences([p for p in receiver.connections[1].pdus
                          if p.pdu_type == PduType.X3]) == list(range(1000))
    finally:
        plane.stop()
        receiver.close()
