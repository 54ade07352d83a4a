"""The X3 relay between capture workers: two workers' X3Links in one process, joined by the
pool's real inbox socket pairs, delivering to a real TLS receiver on one connection."""

from __future__ import annotations

import ctypes
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowtap.dataplane.control import X3Route
from flowtap.dataplane.x3 import relay
from flowtap.dataplane.x3.links import X3Links
from flowtap.dataplane.x3.pdu import AttributeType, PduType
from flowtap.dataplane.x3.relay import MAX_DATAGRAM, RelayOutbox, decode, encode, owner_of
from tests.x1.pki import Authority
from tests.x3.receiver import X3Receiver

XID = uuid.UUID("0f6c1f43-39a4-4a3e-a3a9-0c1d2e3f4a5b")
PACKET = bytes.fromhex("4500001c000100004011f7c30a0000010a00000204d2162e0008a0f2")  # IPv4/UDP


def test_a_datagram_round_trips_and_an_inconsistent_one_is_refused() -> None:
    copies = [(7, PACKET), (2**40, PACKET[:20]), (9, b"")]
    data = encode(("2001:db8::1", 4711), 123456789, copies)
    peer, when, ids, packets = decode(data)
    assert (peer, when, list(zip(ids, packets, strict=True))) == (("2001:db8::1", 4711), 123456789, copies)
    for bad in (data[:3], data[:relay.DATAGRAM.size + 5], data[:-1], data + b"x"):
        with pytest.raises(ValueError):
            decode(bad)


def test_every_worker_agrees_on_the_owner_and_owners_spread() -> None:
    peers = [("198.18.0.1", 30000 + i) for i in range(200)]
    assert all(owner_of(p, 1) == 0 for p in peers)
    owners = [owner_of(p, 4) for p in peers]
    assert owners == [owner_of(p, 4) for p in peers]  # a function of the peer alone
    assert {o: owners.count(o) for o in range(4)}.keys() == {0, 1, 2, 3}
    assert min(owners.count(o) for o in range(4)) > 25


class Ring:
    """Packets at fixed addresses, as the capture ring holds them."""

    def __init__(self, packets: list[bytes]) -> None:
        self.buffers = [ctypes.create_string_buffer(p, len(p)) for p in packets]

    def queue(self, appends: tuple[object, ...], base: int) -> None:
        for buffer in self.buffers:
            for put_address, put_length, put_owner in appends:  # type: ignore[attr-defined]
                put_address(ctypes.addressof(buffer))
                put_length(len(buffer))
                put_owner(base)


@pytest.fixture
def pki(tmp_path: Path) -> tuple[Authority, tuple[str, str, str]]:
    ca = Authority(tmp_path, "lab")
    ne = ca.issue("ne-1")
    return ca, (str(ne.cert), str(ne.key), str(ca.cert_path))


@pytest.fixture
def receiver(pki: tuple[Authority, tuple[str, str, str]]) -> Iterator[X3Receiver]:
    ca, _ = pki
    r = X3Receiver(ca, ca.issue("mdf", server=True))
    yield r
    r.close()


def workers(files: tuple[str, str, str], dropped: list[int]) -> list[X3Links]:
    pairs = relay.inboxes(2)
    links = []
    for me in range(2):
        x3 = X3Links(lambda *state: None, dropped.extend)
        x3.configure(files)
        x3.relay(me, pairs[me][0], [sending for _, sending in pairs])
        links.append(x3)
    return links


def pump_until(links: list[X3Links], done: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline
        for x3 in links:
            x3.pump()
        time.sleep(0.002)


def test_copies_of_both_workers_leave_on_the_owners_one_connection(
    pki: tuple[Authority, tuple[str, str, str]], receiver: X3Receiver
) -> None:
    peer = ("127.0.0.1", receiver.port)
    dropped: list[int] = []
    links = workers(pki[1], dropped)
    owner = links[owner_of(peer, 2)]
    other = links[1 - owner_of(peer, 2)]
    route = X3Route(XID.bytes, bytes(8), 2, (peer,))
    for x3 in links:
        x3.install(5, route)
    assert peer in owner.outboxes and peer in other.relayed and peer not in other.outboxes
    assert owner.exclusions() == other.exclusions()  # neither taps the connection's segments
    mine = Ring([PACKET] * 300)
    relayed = Ring([PACKET[:20] + bytes([i % 256]) * 8 for i in range(3000)])  # > 1 datagram
    mine.queue(owner.install(5, route), 0)
    relayed.queue(other.install(5, route), 0)
    assert other.flush() == [] and owner.flush() == []
    pump_until(links, lambda: len(receiver.pdus) >= 3300)
    assert len(receiver.connections) == 1
    xcc = [p for p in receiver.pdus if p.pdu_type == PduType.X3]
    assert len(xcc) == 3300 and all(p.xid == XID for p in xcc)
    numbers = [int.from_bytes(p.attribute(AttributeType.SEQUENCE_NUMBER) or b"", "big")
               for p in xcc]  # fmt: skip
    assert numbers == list(range(3300)) and dropped == []
    for x3 in links:
        x3.close()


def test_copies_relayed_after_the_owner_removed_the_criterion_are_dropped(
    pki: tuple[Authority, tuple[str, str, str]], receiver: X3Receiver
) -> None:
    peer = ("127.0.0.1", receiver.port)
    dropped: list[int] = []
    links = workers(pki[1], dropped)
    owner, other = links[owner_of(peer, 2)], links[1 - owner_of(peer, 2)]
    route = X3Route(XID.bytes, bytes(8), 2, (peer,))
    kept = X3Route(uuid.uuid4().bytes, bytes(8), 2, (peer,))
    for x3 in links:
        x3.install(6, kept)
    appends = other.install(5, route)
    owner.install(5, route)
    pump_until(links, lambda: len(receiver.connections) == 1)
    owner.remove(5)  # the owner applied the DELETE; the other worker has not yet
    removed, still = Ring([PACKET] * 50), Ring([PACKET] * 10)  # alive until flushed
    removed.queue(appends, 0)
    still.queue(other.install(6, kept), 0)
    assert other.flush() == []
    pump_until(links, lambda: len(receiver.pdus) >= 10)
    time.sleep(0.2)
    for x3 in links:
        x3.pump()
    assert [p.xid for p in receiver.pdus] == [uuid.UUID(bytes=kept.xid)] * 10
    assert dropped == []  # a removed criterion's copies are not counted against anything
    for x3 in links:
        x3.close()


def test_a_full_inbox_drops_and_counts_instead_of_waiting() -> None:
    receiving, sending = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    sending.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
    outbox = RelayOutbox(("192.0.2.9", 4000), sending)
    appends = outbox.appends((3, None, 2))  # type: ignore[arg-type]
    big = Ring([bytes(1400)] * (4 * MAX_DATAGRAM // 1400))
    big.queue((appends,), 77)
    started = time.monotonic()
    failed = outbox.flush(1)
    assert time.monotonic() - started < 1.0
    assert failed and set(failed) == {77} and len(failed) < len(big.buffers)
    while True:  # what went through is whole datagrams of whole copies
        try:
            data = receiving.recv(MAX_DATAGRAM + 4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        assert len(data) <= MAX_DATAGRAM
        _, _, ids, packets = decode(data)
        assert set(ids) == {3} and {len(p) for p in packets} == {1400}
    receiving.close()
    sending.close()
