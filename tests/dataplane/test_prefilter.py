"""The eBPF pre-filter on a real socket: which crafted packets reach a capture socket.

A namespace of its own holds a veth pair: frames leave ``ebs`` through an AF_PACKET socket and
arrive on ``ebr``, where a plain AF_PACKET SOCK_DGRAM socket bound with ETH_P_ALL carries the
program. A second, unfiltered socket on ``ebr`` is the witness: each batch ends with a non-IP
sentinel frame, and once the witness has it every earlier frame has been through the filter
(the test thread is pinned to one CPU, so the receive backlog keeps the order).
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import os
import random
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterable, Iterator

import pytest

from flowtap.dataplane import bpf_syscall, ffi
from flowtap.dataplane.packet import parse
from flowtap.dataplane.prefilter import ACCEPT, Prefilter
from flowtap.dataplane.prefixes import BITS, DST, filing, mask
from flowtap.dataplane.ring import CaptureInterface, Ring
from flowtap.intercept.criteria import Match
from flowtap.tools.traffic import udp_packet
from tests.dataplane.reference_match import MatchTable

from .helpers import addr, ip, vals

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]

NS = f"ebpf{os.getpid() % 100000}"
RX_MAC = "02:eb:00:00:00:01"
SENTINEL_TYPE = 0x88B5
_ids = itertools.count(1)


class Wire:
    """Send IP packets into ``ebr`` and tell which of them the filtered socket got."""

    def __init__(self) -> None:
        with ffi.netns(NS):
            # the witness is hooked first: the kernel hands a frame to the newest socket
            # first, so the filtered sockets have judged a frame before the witness has it
            self.witness = self._rx_socket()
            self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
            self.tx_back = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
        self.rx.setsockopt(socket.SOL_SOCKET, ffi.SO_RCVBUFFORCE, 32 << 20)
        self.prefilter: Prefilter | None = None

    @staticmethod
    def _rx_socket() -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ffi.ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, ffi.SO_RCVBUFFORCE, 32 << 20)
        s.bind(("ebr", ffi.ETH_P_ALL))
        return s

    def use(self, prefilter: Prefilter) -> Prefilter:
        prefilter.attach(self.rx)
        if self.prefilter is None:
            self.rx.bind(("ebr", ffi.ETH_P_ALL))  # hooked only once filtered
        self.prefilter = prefilter
        return prefilter

    def deliver(self, packets: Iterable[bytes], *, mac: str = RX_MAC, outgoing: bool = False,
                ethertype: int | None = None) -> list[int]:
        """Indices (in ``packets``) of the packets the filtered socket received; each goes
        out as IPv4 or IPv6 after its version nibble unless ``ethertype`` says otherwise."""
        packets = list(packets)
        self._drain(self.rx)
        sent = []
        for raw in packets:
            pkt = tag(raw, next(_ids))
            sent.append(pkt)
            proto = ethertype or (ffi.ETH_P_IPV6 if pkt[0] >> 4 == 6 else ffi.ETH_P_IP)
            if outgoing:  # leaves through ebr: the sockets there see it as PACKET_OUTGOING
                self.tx_back.sendto(pkt, ("ebr", proto, 0, 0, bytes(6)))
            else:
                self.tx.sendto(pkt, ("ebs", proto, 0, 0, bytes.fromhex(mac.replace(":", ""))))
        end = next(_ids).to_bytes(4, "big")
        self.tx.sendto(b"END!" + end + bytes(40),
                       ("ebs", SENTINEL_TYPE, 0, 0, bytes.fromhex(RX_MAC.replace(":", ""))))
        self.witness.settimeout(5)
        while not self.witness.recv(2048).startswith(b"END!" + end):
            pass
        got = set(self._drain(self.rx))
        return [i for i, pkt in enumerate(sent) if pkt in got]

    @staticmethod
    def _drain(sock: socket.socket) -> list[bytes]:
        out = []
        sock.setblocking(False)
        try:
            while True:
                out.append(sock.recv(65536))
        except BlockingIOError:
            return out
        finally:
            sock.setblocking(True)

    def close(self) -> None:
        for s in (self.witness, self.rx, self.tx, self.tx_back):
            s.close()


def tag(pkt: bytes, ident: int) -> bytes:
    """Make ``pkt`` unique: ``ident`` where :func:`udp_packet` puts its sequence number
    (a packet too short for it is left as it is)."""
    at = (40 if pkt[0] >> 4 == 6 else 20) + 8
    if len(pkt) < at + 4:
        return pkt
    return pkt[:at] + struct.pack("!I", ident) + pkt[at + 4:]


def udp(src: str, dst: str, *, sport: int = 1000, dport: int = 2000, frag: int = 0) -> bytes:
    return udp_packet(src, dst, sport, dport, 64 if ":" not in dst else 80, frag=frag)


def to(*dsts: str, src: str = "192.0.2.1") -> list[bytes]:
    return [udp(src, d) for d in dsts]


@pytest.fixture(scope="module")
def wire() -> Iterator[Wire]:
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})

    def run(*args: str) -> None:
        subprocess.run(["ip", "netns", "exec", NS, *args], check=True, capture_output=True)

    subprocess.run(["ip", "netns", "add", NS], check=True, capture_output=True)
    try:
        for k in ("all", "default"):  # no router solicitations or MLD reports on the wire
            run("sysctl", "-qw", f"net.ipv6.conf.{k}.disable_ipv6=1")
        run("ip", "link", "add", "ebr", "address", RX_MAC, "type", "veth", "peer", "name", "ebs",
            "address", "02:eb:00:00:00:02")
        run("ip", "link", "set", "ebr", "up")
        run("ip", "link", "set", "ebs", "up")
        w = Wire()
        try:
            yield w
        finally:
            w.close()
    finally:
        subprocess.run(["ip", "netns", "del", NS], check=False, capture_output=True)
        os.sched_setaffinity(0, cpus)


@pytest.fixture
def pf(wire: Wire) -> Iterator[Prefilter]:
    p = wire.use(Prefilter(max_entries=4096))
    try:
        yield p
    finally:
        p.close()


V46 = {4, 6}


def test_host_prefix_and_range_edges(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(dest_address=addr("10.1.1.1")), V46)
    pf.add(2, Match(dest_address=addr("10.2.0.0/16")), V46)
    pf.add(3, Match(dest_address=addr("10.0.0.3-10.0.0.17")), V46)
    got = wire.deliver(to("10.1.1.1", "10.1.1.2", "10.2.0.0", "10.2.255.255", "10.3.0.0",
                          "10.1.255.255", "10.0.0.2", "10.0.0.3", "10.0.0.17", "10.0.0.18",
                          "10.0.0.9"))
    assert got == [0, 2, 3, 7, 8, 10]
    assert len(pf) == 3 and pf.entries() == 1 + 1 + 4


def test_wildcard_files_slash_zero_and_family_stays_apart(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(protocol=vals("17"), ip_version=4), V46)
    assert pf.entries() == 1
    got = wire.deliver([*to("10.9.9.9", "203.0.113.7"), udp("2001:db8::1", "2001:db8::2")])
    assert got == [0, 1]
    pf.add(2, Match(), V46)  # any family: /0 in both dst tries
    assert wire.deliver([udp("2001:db8::1", "2001:db8::2")]) == [0]


def test_source_only_filing_matches_on_the_source(wire: Wire, pf: Prefilter) -> None:
    pf.add(7, Match(source_address=addr("192.0.2.0/28")), V46)
    got = wire.deliver([udp("192.0.2.5", "10.0.0.1"), udp("192.0.2.16", "10.0.0.1"),
                        udp("10.0.0.1", "192.0.2.5")])
    assert got == [0]


def test_ipv6_host_and_prefix(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(dest_address=addr("2001:db8::5")), V46)
    pf.add(2, Match(dest_address=addr("2001:db8:1::/48")), V46)
    pf.add(3, Match(source_address=addr("2001:db8:9::1")), V46)
    src = "2001:db8:ffff::1"
    got = wire.deliver([udp(src, "2001:db8::5"), udp(src, "2001:db8::6"),
                        udp(src, "2001:db8:1:ffff::1"), udp(src, "2001:db8:2::"),
                        udp("2001:db8:9::1", "2001:db8:2::"), udp("2001:db8:9::2", "::1")])
    assert got == [0, 2, 4]


def test_versions_limit_what_is_filed(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(dest_address=addr("2001:db8::5")), {4})  # inet6 off: files nothing
    pf.add(2, Match(), {4})
    assert len(pf) == 1 and pf.entries() == 1
    assert wire.deliver([udp("2001:db8::1", "2001:db8::5"), udp("10.0.0.1", "10.0.0.2")]) == [1]


def test_later_fragments_rejected_first_fragment_accepted(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(dest_address=addr("10.5.5.5")), V46)
    got = wire.deliver([udp("10.0.0.1", "10.5.5.5", frag=0x2000),  # MF, offset 0
                        udp("10.0.0.1", "10.5.5.5", frag=0x2003),  # MF, offset 24
                        udp("10.0.0.1", "10.5.5.5", frag=0x0003),  # last fragment
                        udp("10.0.0.1", "10.5.5.5", frag=0x4000)])  # DF
    assert got == [0, 3]


def test_malformed_headers_other_hosts_and_outgoing_rejected(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(), V46)
    good = udp("10.0.0.1", "10.0.0.2")
    bad_ihl = bytes([0x44]) + good[1:]
    good6 = udp("2001:db8::1", "2001:db8::2")
    got = wire.deliver([good, bad_ihl, bytes([0x55]) + good[1:], good6[:39], good[:10]])
    assert got == [0]
    assert wire.deliver([bytes([0x65]) + good[1:]], ethertype=ffi.ETH_P_IP) == []
    assert wire.deliver([bytes([0x45]) + good6[1:]], ethertype=ffi.ETH_P_IPV6) == []
    assert wire.deliver([good], ethertype=0x0806) == []  # ARP
    assert wire.deliver([good], mac="02:eb:00:00:00:99") == []  # PACKET_OTHERHOST
    assert wire.deliver([good], mac="ff:ff:ff:ff:ff:ff") == [0]  # broadcast is not
    assert wire.deliver([good], outgoing=True) == []  # PACKET_OUTGOING


def test_reference_counts_keep_shared_prefixes(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(dest_address=addr("10.7.0.0/24")), V46)
    pf.add(2, Match(dest_address=addr("10.7.0.0/24"), protocol=vals("6")), V46)
    assert pf.entries() == 1
    pf.remove(1)
    assert wire.deliver(to("10.7.0.9")) == [0]
    pf.remove(2)
    assert wire.deliver(to("10.7.0.9")) == []
    assert pf.entries() == 0 and len(pf) == 0
    pf.remove(2)  # unknown key: no-op


def test_replace_swaps_the_filing(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(dest_address=addr("10.8.0.1")), V46)
    pf.add(2, Match(dest_address=addr("10.8.0.1")), V46)
    pf.add(1, Match(dest_address=addr("10.8.0.2", "10.8.0.1")), V46)
    pf.add(2, Match(source_address=addr("10.8.9.9")), V46)
    assert pf.entries() == 3
    assert wire.deliver(to("10.8.0.1", "10.8.0.2", "10.8.0.3")) == [0, 1]
    pf.add(1, Match(dest_address=addr("10.8.0.3")), V46)
    assert wire.deliver(to("10.8.0.1", "10.8.0.2", "10.8.0.3", src="10.8.9.9")) == [0, 1, 2]
    assert wire.deliver(to("10.8.0.1", "10.8.0.2", "10.8.0.3")) == [2]


def test_change_is_seen_by_the_very_next_packet(wire: Wire, pf: Prefilter) -> None:
    for _ in range(20):
        pf.add(1, Match(dest_address=addr("10.6.0.1")), V46)
        assert wire.deliver(to("10.6.0.1")) == [0]
        pf.remove(1)
        assert wire.deliver(to("10.6.0.1")) == []


def test_full_trie_rolls_the_whole_add_back(wire: Wire) -> None:
    small = wire.use(Prefilter(max_entries=4))
    try:
        small.add(1, Match(dest_address=addr("10.4.0.1")), V46)
        small.add(2, Match(dest_address=addr("10.4.0.2")), V46)
        with pytest.raises(OSError) as info:  # needs 4 more elements, 2 are free
            small.add(3, Match(dest_address=addr("10.4.1.3-10.4.1.17")), V46)
        assert info.value.errno in (errno.ENOSPC, errno.E2BIG)
        assert small.entries() == 2 and len(small) == 2
        with pytest.raises(OSError):  # a replace that does not fit keeps the old filing
            small.add(1, Match(dest_address=addr("10.4.1.3-10.4.1.17")), V46)
        got = wire.deliver(to("10.4.0.1", "10.4.0.2", "10.4.1.3", "10.4.1.4", "10.4.1.9"))
        assert got == [0, 1]
        small.add(3, Match(dest_address=addr("10.4.1.4/30")), V46)  # the room is there again
        small.add(4, Match(source_address=addr("10.4.1.4/30")), V46)  # another trie
        assert wire.deliver(to("10.4.1.5")) == [0]
    finally:
        small.close()


def test_clear_and_lookup_agree(wire: Wire, pf: Prefilter) -> None:
    pf.add(1, Match(dest_address=addr("10.3.0.0/16")), V46)
    pf.add(2, Match(source_address=addr("2001:db8::/32")), V46)
    key = struct.pack("=I", 32) + ipaddress.ip_address("10.3.2.1").packed
    assert bpf_syscall.map_lookup(pf._maps[(4, DST)], key, 1) == b"\x01"
    both = [*to("10.3.2.1"), udp("2001:db8::1", "2001:db8::2")]
    assert wire.deliver(both) == [0, 1]
    pf.clear()
    assert bpf_syscall.map_lookup(pf._maps[(4, DST)], key, 1) is None
    assert len(pf) == 0 and pf.entries() == 0
    assert wire.deliver(both) == []


POOL4 = [ip("10.0.0.0") + i for i in range(32)]
POOL6 = [ip("2001:db8::") + i for i in range(16)] + [ip("2001:db9::") + i for i in range(16)]


def _random_filter(rng: random.Random, version: int) -> object:
    pool = POOL4 if version == 4 else POOL6
    a, b = sorted(rng.sample(pool, 2))
    text = {4: lambda n: str(ipaddress.IPv4Address(n)),
            6: lambda n: str(ipaddress.IPv6Address(n))}[version]
    length = rng.choice([BITS[version] - k for k in (0, 1, 2, 3, 4)])
    prefix = f"{text(a & mask(length, BITS[version]))}/{length}"
    return rng.choice([
        addr(text(a)), addr(prefix), addr(f"{text(a)}-{text(b)}"), addr(f"!{text(a)}"),
        addr(prefix, f"!{text(a)}"), addr(text(a), text(b)), None,
    ])


def _random_match(rng: random.Random) -> Match:
    version = rng.choice([4, 6])
    fields: dict[str, object] = {}
    for side in ("dest_address", "source_address"):
        f = _random_filter(rng, version)
        if f is not None:
            fields[side] = f
    if rng.random() < 0.5:
        fields["dest_port"] = vals(rng.choice(["2000", "1-1000", "!2000"]))
    if rng.random() < 0.3:
        fields["protocol"] = vals(rng.choice(["17", "6"]))
    if not fields or rng.random() < 0.2:
        fields["ip_version"] = version
    return Match(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(6))
def test_never_rejects_what_the_exact_match_accepts(wire: Wire, pf: Prefilter,
                                                    seed: int) -> None:
    rng = random.Random(seed)
    matches = [_random_match(rng) for _ in range(rng.randint(3, 8))]
    for i, m in enumerate(matches):
        pf.add(i, m, V46)
    table = MatchTable([(m, i) for i, m in enumerate(matches)], inet6=True)
    filed = {(v, *filing(m, v)) for m in matches for v in m.versions}
    packets = []
    for _ in range(300):
        pool = rng.choice([POOL4, POOL6])
        text = str(ipaddress.ip_address(rng.choice(pool)))
        other = str(ipaddress.ip_address(rng.choice(pool)))
        packets.append(udp(text, other, dport=rng.choice([2000, 80, 3000])))
    got = set(wire.deliver(packets))
    for n, pkt in enumerate(packets):
        parsed = parse(pkt, 0, len(pkt))
        assert parsed is not None
        version, key = parsed
        if table.lookup(version, key):
            assert n in got, (matches, key)
        model = any(
            v == version and any(p.address == (key[1] if side == DST else key[0])
                                 & mask(p.length, BITS[v]) for p in prefixes)
            for v, side, prefixes in filed
        )
        assert (n in got) == model, (matches, key)


def test_test_run_gives_the_socket_verdict(pf: Prefilter) -> None:
    """bench/prefilter.py times the program with BPF_PROG_TEST_RUN: same verdicts there."""
    pf.add(1, Match(dest_address=addr("10.9.0.0/16")), V46)
    head = bytes(12) + b"\x08\x00"  # all-zero destination MAC: the loopback's, PACKET_HOST
    assert bpf_syscall.prog_test_run(pf.program_fd, head + to("10.9.1.1")[0])[0] == ACCEPT
    assert bpf_syscall.prog_test_run(pf.program_fd, head + to("10.8.1.1")[0])[0] == 0


def ring_packets(ring: Ring, settle: float = 0.2) -> list[bytes]:
    """What the ring hands over until no block retires for ``settle`` seconds (a partly
    filled block retires after ring.RETIRE_MS)."""
    out = []
    quiet_until = time.monotonic() + settle
    while time.monotonic() < quiet_until:
        if (off := ring.ready()) < 0:
            time.sleep(0.005)
            continue
        n, pos = ring.block(off)
        for _ in range(n):
            nxt, snap, net = struct.unpack_from("=I8xI8xH", ring.map, pos)
            out.append(bytes(ring.map[pos + net:pos + net + snap]))
            pos += nxt
        ring.release(off)
        quiet_until = time.monotonic() + settle
    return out


def test_filters_a_tpacket_v3_ring_socket(wire: Wire, pf: Prefilter) -> None:
    """The capture path proper: the program on a TPACKET_V3 ring socket (dataplane/ring.py)."""
    with ffi.netns(NS):
        ring = Ring(CaptureInterface("ge-0/0/9", "ebr"))
    try:
        pf.attach(ring.sock)
        ring.hook(True)
        pf.add(1, Match(dest_address=addr("10.10.0.1")), V46)
        # the plain socket agrees, and once deliver() returns all three went through the ring's
        assert wire.deliver(to("10.10.0.1", "10.10.0.2", "10.10.0.1")) == [0, 2]
        assert [p[16:20] for p in ring_packets(ring)] == [bytes([10, 10, 0, 1])] * 2
    finally:
        ring.close()
