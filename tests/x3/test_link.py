"""X3Link (a capture worker's TLS connection to an X3 destination) against a real TLS receiver."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowtap.dataplane.x3 import link as link_module
from flowtap.dataplane.x3.link import DOWN, UP, X3Link, client_context
from flowtap.dataplane.x3.pdu import AttributeType, PduType
from flowtap.dataplane.x3.template import X3Template, correlation_bytes
from tests.x1.pki import Authority
from tests.x3.receiver import X3Receiver

XID = uuid.UUID("2b36a78b-b628-416d-bd22-65e63ac3ab43")
TEMPLATE = X3Template(XID, correlation_bytes(7))
PACKET = bytes.fromhex("4500001c000100004011f7c30a0000010a00000204d2162e0008a0f2")  # IPv4/UDP


class Bench:
    def __init__(self, directory: Path) -> None:
        self.ca = Authority(directory, "lab")
        self.server = self.ca.issue("mdf", server=True)
        self.ne = self.ca.issue("ne-1")
        self.context = client_context(str(self.ne.cert), str(self.ne.key), str(self.ca.cert_path))
        self.states: list[bool] = []

    def link(self, port: int) -> X3Link:
        return X3Link(("127.0.0.1", port), self.context, lambda up, why: self.states.append(up))


@pytest.fixture
def bench(tmp_path: Path) -> Bench:
    return Bench(tmp_path)


@pytest.fixture
def receiver(bench: Bench) -> Iterator[X3Receiver]:
    r = X3Receiver(bench.ca, bench.server)
    yield r
    r.close()


def drive(link: X3Link, done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"link {link.state}, backlog {len(link.backlog)}"
        link.pump()
        time.sleep(0.002)


def test_copies_arrive_as_xcc_pdus_with_gap_free_sequence_numbers(
    bench: Bench, receiver: X3Receiver
) -> None:
    link = bench.link(receiver.port)
    for i in range(100):
        assert link.queue("c1", TEMPLATE, 2 if i % 2 else 3, PACKET, 1_700_000_000_123_456_789)
    drive(link, lambda: len(receiver.pdus) == 100)
    pdus = receiver.pdus
    assert {p.pdu_type for p in pdus} == {PduType.X3}
    assert all(p.xid == XID and p.payload == PACKET and p.payload_format == 5 for p in pdus)
    assert [p.direction for p in pdus] == [2 if i % 2 else 3 for i in range(100)]
    sequence = [int.from_bytes(p.attribute(AttributeType.SEQUENCE_NUMBER) or b"", "big")
                for p in pdus]  # fmt: skip
    assert sequence == list(range(100))
    stamp = pdus[0].attribute(AttributeType.TIMESTAMP) or b""
    assert (int.from_bytes(stamp[:4], "big"), int.from_bytes(stamp[4:], "big")) == (
        1_700_000_000, 123_456_789)
    assert link.state == UP and bench.states == [True] and link.sent == 100


def test_the_destinations_keepalives_are_answered(bench: Bench, receiver: X3Receiver) -> None:
    link = bench.link(receiver.port)
    drive(link, lambda: link.state == UP)
    drive(link, lambda: len(receiver.connections) == 1)
    receiver.send_keepalive(41)
    # the answer is read by the receiver thread into its PDU list like any other PDU
    drive(link, lambda: any(p.pdu_type == PduType.KEEPALIVE_ACK for p in receiver.pdus))
    ack = next(p for p in receiver.pdus if p.pdu_type == PduType.KEEPALIVE_ACK)
    assert ack.attribute(AttributeType.SEQUENCE_NUMBER) == (41).to_bytes(4, "big")


def test_a_destination_that_is_down_gets_the_copies_once_it_is_up(bench: Bench) -> None:
    with socket.socket() as probe:  # a port nobody listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = bench.link(port)
    link.queue("c1", TEMPLATE, 2, PACKET, 1)
    drive(link, lambda: bench.states == [False])
    assert link.state == DOWN and len(link.backlog) == 1
    receiver = X3Receiver(bench.ca, bench.server, port=port)
    try:
        link.queue("c1", TEMPLATE, 3, PACKET, 2)
        drive(link, lambda: len(receiver.pdus) == 2)
        assert [p.direction for p in receiver.pdus] == [2, 3]
        assert bench.states == [False, True]
    finally:
        receiver.close()


def test_the_backlog_is_bounded_and_a_removed_criterions_copies_are_taken_out(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(link_module, "MAX_BACKLOG", 10 * (len(PACKET) + 60))
    link = bench.link(1)  # never pumped: nothing leaves
    accepted = [link.queue("a" if i % 2 else "b", TEMPLATE, 2, PACKET, i) for i in range(12)]
    assert accepted == [True] * 10 + [False] * 2
    assert link.purge("a") == 5 and {c[0] for c in link.backlog} == {"b"}
    assert link.backlog_bytes == 5 * (len(PACKET) + 60)


def test_settle_resets_a_connection_whose_destination_does_not_read(
    bench: Bench, receiver: X3Receiver
) -> None:
    link = bench.link(receiver.port)
    drive(link, lambda: link.state == UP)
    receiver.reading.clear()
    big = PACKET + bytes(1400)
    for _ in range(40):  # until the kernel's buffers on both sides are full
        for _ in range(500):
            link.queue("c1", TEMPLATE, 2, big, 0)
        link.pump()
        if link.backlog:
            break
    assert link.backlog, "the destination's window never filled"
    assert link.purge("c1")
    link.settle()
    assert link.state == DOWN  # reset: what the kernel held never leaves
    receiver.reading.set()


def test_settle_returns_at_once_when_everything_left(bench: Bench, receiver: X3Receiver) -> None:
    link = bench.link(receiver.port)
    link.queue("c1", TEMPLATE, 2, PACKET, 0)
    drive(link, lambda: len(receiver.pdus) == 1)
    started = time.monotonic()
    link.settle()
    assert link.state == UP and time.monotonic() - started < link_module.SETTLE


def test_a_destination_with_a_certificate_of_another_ca_is_never_sent_to(
    bench: Bench, tmp_path: Path
) -> None:
    other = Authority(tmp_path, "other")
    receiver = X3Receiver(other, other.issue("mdf", server=True))
    try:
        link = bench.link(receiver.port)
        link.queue("c1", TEMPLATE, 2, PACKET, 0)
        drive(link, lambda: bench.states == [False])
        assert receiver.pdus == [] and len(link.backlog) == 1
    finally:
        receiver.close()
