"""The dataplane between real namespaces: sender -> router (tap) -> receiver, copies -> CD."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from flowtap.dataplane import CaptureInterface, Dataplane, encap, ffi
from flowtap.dataplane.encap import Outer
from flowtap.errors import CaptureError
from flowtap.intercept.criteria import ContentDestination, Jmirror, Match, Timeouts
from flowtap.tools import pcap
from flowtap.tools.netns import Topology, unique_prefix
from flowtap.tools.traffic import ipv4_fragments, udp_packet

from .helpers import addr, crit, vals
from .netns_helpers import Collector, drain, link_tap, send, settle, udp_receiver

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]

SND, RCV = "198.18.1.2", "198.18.2.2"
SND6, RCV6 = "2001:db8:1::2", "2001:db8:2::2"
IFACES = [CaptureInterface("ge-0/0/0", "rin"), CaptureInterface("ge-0/0/1", "rout"),
          CaptureInterface("ge-0/0/2", "rmed")]


def cd(port: int = 47000, sport: int = 5555, *, v6: bool = False) -> ContentDestination:
    if v6:
        return ContentDestination(f"cd{port}", "2001:db8:3::2", port, "2001:db8:99::1", sport,
                                  64)
    return ContentDestination(f"cd{port}", "198.18.3.2", port, "198.18.99.1", sport, 64)


FLOW_A = Match(dest_address=addr(RCV), protocol=vals("17"), dest_port=vals("20000"))


@pytest.fixture(scope="module")
def topo():
    t = Topology(unique_prefix("ftdp")).up()
    try:
        yield t
    finally:
        t.down()


@pytest.fixture
def dp(topo):
    plane = Dataplane()
    try:
        yield plane
    finally:
        plane.stop()


def start(topo: Topology, plane: Dataplane, criteria, *, inet6: bool = False,
          ifaces=IFACES) -> None:
    with ffi.netns(topo.ns("rtr")):
        plane.start(ifaces, inet6)
        plane.set_criteria(criteria)


def test_udp_flow_copied_exactly_and_forwarded_unchanged(topo, dp, tmp_path):
    start(topo, dp, [crit(1, FLOW_A, cd())])
    col = Collector(topo, tmp_path / "a.pcap", [47000], "-c", "10000")
    rx_a, rx_b = udp_receiver(topo, "rcv", 20000), udp_receiver(topo, "rcv", 20001)
    wire = link_tap(topo, "med", "med0")
    flow_a = [udp_packet(SND, RCV, 10000, 20000, 64 + i % 900, ident=i) for i in range(10_000)]
    flow_b = [udp_packet(SND, RCV, 10000, 20001, 64, ident=i) for i in range(10_000)]
    mixed = [p for pair in zip(flow_a, flow_b, strict=True) for p in pair]
    assert send(topo, mixed) == 20_000
    summary = col.finish()
    got_a, got_b = drain(rx_a), drain(rx_b)
    # the receiver gets every packet of both flows, payload unchanged
    assert sorted(got_a) == sorted(p[28:] for p in flow_a)
    assert len(got_b) == 10_000
    # the collector's pcap holds exactly the 10,000 inner packets, byte for byte
    assert summary["packets"] == 10_000
    assert summary["per_source"] == {"198.18.99.1:5555": 10_000}
    assert sorted(col.packets()) == sorted(flow_a)
    settle(dp.counters, 10_000)
    c = dp.counters()[1]
    assert (c.packets, c.sent, c.dropped) == (10_000, 10_000, 0)
    assert c.bytes == sum(len(p) for p in flow_a)
    assert dp.kernel_stats().drops == 0
    # the outer headers on the wire follow ENCAP.md (the kernel picks the IP ID)
    wire.setblocking(False)
    outer_frames = []
    while True:
        try:
            f = wire.recv(65536)
        except BlockingIOError:
            break
        if f[0] >> 4 == 4 and f[9] == 17 and f[20:22] == (5555).to_bytes(2, "big"):
            outer_frames.append(f)
    wire.close()
    assert len(outer_frames) == 10_000
    expected = Outer(4, "198.18.99.1", 5555, "198.18.3.2", 47000, 64)
    for f in outer_frames[:500]:
        d = encap.decode(f)
        assert f == encap.build(d.inner, expected, ident=d.ident)  # byte for byte otherwise
    # tshark decodes the outer UDP and the inner IP
    outer_pcap = tmp_path / "outer.pcap"
    with outer_pcap.open("wb") as fh:
        w = pcap.PcapWriter(fh)
        for f in outer_frames[:50]:
            w.write(f)
    lines = subprocess.run(
        ["tshark", "-r", str(outer_pcap), "-d", "udp.port==47000,ip", "-T", "fields",
         "-e", "ip.src", "-e", "udp.dstport"], capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    assert len(lines) == 50
    assert all(ln.split("\t") == ["198.18.99.1,198.18.1.2", "47000,20000"] for ln in lines)


def test_match_everything_does_not_loop(topo, dp):
    """Copies leave through a tapped interface and the CD answers with ICMP errors that come
    back in through it: still exactly one copy per ingress packet."""
    start(topo, dp, [crit(1, Match(), cd())])
    rx = udp_receiver(topo, "rcv", 20000)
    wire = link_tap(topo, "med", "med0")
    n = 3000
    assert send(topo, [udp_packet(SND, RCV, 10000, 20000, 80, ident=i) for i in range(n)],
                rate=50_000) == n
    assert len(drain(rx)) == n
    settle(dp.counters, n)
    time.sleep(0.5)  # time for a loop to show if there were one
    c = dp.counters()[1]
    assert (c.packets, c.sent) == (n, n)
    wire.setblocking(False)
    copies = 0
    while True:
        try:
            f = wire.recv(65536)
        except BlockingIOError:
            break
        copies += f[0] >> 4 == 4 and f[9] == 17 and f[22:24] == (47000).to_bytes(2, "big")
    assert copies == n


def test_two_destinations_and_two_agencies(topo, dp, tmp_path):
    agency1 = crit(1, FLOW_A, cd(47000), cd(47001))
    agency2 = crit(2, FLOW_A, cd(47002, sport=6666))
    start(topo, dp, [agency1, agency2])
    col = Collector(topo, tmp_path / "x.pcap", [47000, 47001, 47002], "-c", "3000",
                    "--split", "dport")
    pkts = [udp_packet(SND, RCV, 10000, 20000, 100, ident=i) for i in range(1000)]
    send(topo, pkts)
    summary = col.finish()
    assert summary["per_source"] == {"198.18.99.1:5555": 2000, "198.18.99.1:6666": 1000}
    for port in (47000, 47001, 47002):
        assert sorted(col.packets(tmp_path / f"x-{port}.pcap")) == sorted(pkts)
    settle(dp.counters, 2000)
    counters = dp.counters()
    assert (counters[1].packets, counters[1].sent) == (1000, 2000)
    assert (counters[2].packets, counters[2].sent) == (1000, 1000)


def test_jmirror_and_classic_copies_of_one_flow_to_one_destination(topo, dp, tmp_path):
    """Criteria with and without a jmirror header share one content destination socket; each
    copy carries its own criterion's header, made once at install."""
    agency_a = Jmirror(0x01010101, 0x30010002, session_given=True)
    agency_b = Jmirror(2**30 - 1, 3)
    start(topo, dp, [crit(1, FLOW_A, cd(47000)), crit(2, FLOW_A, cd(47000), delivery=agency_a),
                     crit(3, FLOW_A, cd(47001), delivery=agency_b)])
    col = Collector(topo, tmp_path / "j.pcap", [47000, 47001], "-c", "3000",
                    "--split", "intercept")
    wire = link_tap(topo, "med", "med0")
    pkts = [udp_packet(SND, RCV, 10000, 20000, 100 + i % 500, ident=i) for i in range(1000)]
    send(topo, pkts)
    summary = col.finish()
    assert summary["per_source"] == {"198.18.99.1:5555": 3000}
    assert summary["jmirror"] == {"0x01010101": {"0x30010002": 1000},
                                  "0x3fffffff": {"0x00000003": 1000}}
    # the collector strips the header: every file holds the packets as they were sent
    for name in ("j.pcap", "j-jmirror01010101.pcap", "j-jmirror3fffffff.pcap"):
        assert sorted(col.packets(tmp_path / name)) == sorted(pkts)
    settle(dp.counters, 3000)
    counters = dp.counters()
    assert [(counters[i].packets, counters[i].sent) for i in (1, 2, 3)] == [(1000, 1000)] * 3
    wire.setblocking(False)
    frames: dict[int, list[bytes]] = {47000: [], 47001: []}
    while True:
        try:
            f = wire.recv(65536)
        except BlockingIOError:
            break
        if f[0] == 0x45 and f[9] == 17 and f[20:22] == (5555).to_bytes(2, "big"):
            frames[int.from_bytes(f[22:24], "big")].append(f)
    wire.close()
    assert (len(frames[47000]), len(frames[47001])) == (2000, 1000)
    outer = Outer(4, "198.18.99.1", 5555, "198.18.3.2", 47000, 64)
    classic = [f for f in frames[47000] if not encap.is_jmirror(encap.decode(f).inner)]
    assert len(classic) == 1000
    for f in frames[47000][:300]:
        d = encap.decode(f)
        header = encap.shim(agency_a) if encap.is_jmirror(d.inner) else b""
        inner = d.inner[len(header):]
        assert f == encap.build(inner, outer, ident=d.ident, header=header)  # UDP checksum 0
    outer_b = Outer(4, "198.18.99.1", 5555, "198.18.3.2", 47001, 64)
    for f in frames[47001][:300]:
        d = encap.decode(f)
        assert f == encap.build(d.inner[8:], outer_b, ident=d.ident, header=encap.shim(agency_b))


def test_ipv6_tapped_only_with_inet6(topo, dp, tmp_path):
    m6 = Match(dest_address=addr(RCV6), dest_port=vals("20000"))
    start(topo, dp, [crit(1, m6, cd(47000, v6=True)), crit(2, FLOW_A, cd(47001))], inet6=True)
    col = Collector(topo, tmp_path / "v6.pcap", [47000, 47001], "--split", "dport",
                    listen="::")
    v6 = [udp_packet(SND6, RCV6, 10000, 20000, 120, ident=i) for i in range(300)]
    v4 = [udp_packet(SND, RCV, 10000, 20000, 120, ident=i) for i in range(300)]
    send(topo, v6 + v4)
    settle(dp.counters, 600)
    with ffi.netns(topo.ns("rtr")):
        dp.rebind(IFACES, inet6=False)  # criteria survive; IPv6 is no longer tapped
    send(topo, v6 + v4)
    settle(dp.counters, 900)
    summary = col.stop()
    assert summary["per_source"] == {"2001:db8:99::1:5555": 300, "198.18.99.1:5555": 600}
    assert sorted(col.packets(tmp_path / "v6-47000.pcap")) == sorted(v6)
    counters = dp.counters()
    assert (counters[1].packets, counters[2].packets) == (300, 600)


def test_only_first_fragment_is_copied(topo, dp, tmp_path):
    by_addr = crit(1, Match(dest_address=addr("198.19.0.1")), cd(47000))
    by_port = crit(2, Match(dest_address=addr("198.19.0.2"), dest_port=vals("20000")),
                   cd(47001))
    start(topo, dp, [by_addr, by_port])
    col = Collector(topo, tmp_path / "f.pcap", [47000, 47001], "--split", "dport")
    firsts: dict[str, list[bytes]] = {"198.19.0.1": [], "198.19.0.2": []}
    frames = []
    for i in range(200):
        for dst, sent_firsts in firsts.items():
            fr = ipv4_fragments(udp_packet(SND, dst, 10000, 20000, 1400, ident=i), 512)
            sent_firsts.append(fr[0])
            frames += fr
    send(topo, frames)
    settle(dp.counters, 400)
    summary = col.stop()
    assert summary["packets"] == 400
    assert sorted(col.packets(tmp_path / "f-47000.pcap")) == sorted(firsts["198.19.0.1"])
    assert sorted(col.packets(tmp_path / "f-47001.pcap")) == sorted(firsts["198.19.0.2"])


def test_copies_larger_than_the_mtu_are_fragmented_and_arrive_whole(topo, dp, tmp_path):
    start(topo, dp, [crit(1, FLOW_A, cd())])
    col = Collector(topo, tmp_path / "big.pcap", [47000], "-c", "200")
    pkts = [udp_packet(SND, RCV, 10000, 20000, 1500, ident=i) for i in range(200)]
    send(topo, pkts, rate=20_000)
    assert col.finish()["packets"] == 200
    assert sorted(col.packets()) == sorted(pkts)


def test_counters_and_packet_limit(topo, dp, tmp_path):
    hits: list[int] = []
    plane = Dataplane(on_limit=hits.append)
    try:
        limited = crit(7, FLOW_A, cd(47000), timeouts=Timeouts(packets=300))
        unlimited = crit(8, FLOW_A, cd(47001))
        start(topo, plane, [limited, unlimited])
        col = Collector(topo, tmp_path / "l.pcap", [47000, 47001], "--split", "dport")
        send(topo, [udp_packet(SND, RCV, 10000, 20000, 100, ident=i) for i in range(1000)])
        settle(plane.counters, 1300)
        summary = col.stop()
        c = plane.counters()
        assert hits == [7]
        assert (c[7].packets, c[7].sent, c[7].limit_reached) == (300, 300, True)
        assert (c[8].packets, c[8].sent, c[8].limit_reached) == (1000, 1000, False)
        assert len(col.packets(tmp_path / "l-47000.pcap")) == c[7].sent
        assert len(col.packets(tmp_path / "l-47001.pcap")) == c[8].sent
        assert summary["packets"] == 1300
        assert c[8].last_packet is not None and plane.kernel_stats().packets >= 1000
        plane.remove(7)
        assert set(plane.counters()) == {8}
    finally:
        plane.stop()


def test_prepare_fails_cleanly_and_no_criteria_captures_nothing(topo, dp):
    with ffi.netns(topo.ns("rtr")):
        with pytest.raises(CaptureError, match="ge-9/9/9"):
            dp.prepare([IFACES[0], CaptureInterface("ge-9/9/9", "nosuchdev")], inet6=False)
        dp.start(IFACES, inet6=False)
    send(topo, [udp_packet(SND, RCV, 10000, 20000, 64)], count=2000)
    time.sleep(0.2)
    assert dp.kernel_stats().packets == 0  # the drop-all program: nothing reached the ring
    fds_before = len(os.listdir("/proc/self/fd"))
    with ffi.netns(topo.ns("rtr")):
        dp.set_criteria([crit(1, FLOW_A, cd(47000))])
        dp.set_criteria([])
    time.sleep(0.3)  # the capture thread closes retired sockets
    assert len(os.listdir("/proc/self/fd")) == fds_before
    with pytest.raises(ValueError, match="TTL"):
        dp.set_criteria([crit(2, FLOW_A, ContentDestination("c", RCV, 1, SND, 2, ttl=0))])


def test_rebind_keeps_criteria_and_scopes_input_interface(topo, dp, tmp_path):
    scoped = crit(1, Match(input_interfaces=("ge-0/0/1",), protocol=vals("17")), cd(47000))
    start(topo, dp, [scoped], ifaces=IFACES[:1])
    rx = udp_receiver(topo, "rcv", 20000)
    send(topo, [udp_packet(SND, RCV, 10000, 20000, 64)], count=200)
    drain(rx, 0.3)
    assert dp.counters()[1].packets == 0  # arrives on ge-0/0/0, the criterion wants ge-0/0/1
    # traffic from rcv towards snd arrives on rout = ge-0/0/1 once that is captured
    with ffi.netns(topo.ns("rtr")):
        dp.rebind(IFACES[:2], inet6=False)
    with ffi.netns(topo.ns("rcv")):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(100):
        s.sendto(i.to_bytes(4, "big"), (SND, 9))
    s.close()
    settle(dp.counters, 100)
    assert dp.counters()[1].packets == 100


def _running(topo: Topology) -> list[int]:
    """1 for each router packet socket on a device's receive path (ETH_P_ALL, running)."""
    out = subprocess.run(["ip", "netns", "exec", topo.ns("rtr"), "cat", "/proc/net/packet"],
                         capture_output=True, text=True, check=True).stdout
    rows = [r.split() for r in out.splitlines()[1:]]
    return sorted(int(r[3] == "0003" and r[4] != "0" and r[5] == "1") for r in rows)


def test_rings_stay_hooked_and_the_kernel_prefilter_rejects_what_no_criterion_wants(topo, dp):
    """Rings are never parked (re-binding one cost the first ADD ~30 ms), so the eBPF
    pre-filter is what keeps traffic out: idle, and with a criterion for other traffic, not
    one packet reaches a ring; traffic a criterion wants does, from the next packet on."""
    start(topo, dp, [])
    assert _running(topo) == [1] * (len(IFACES) * dp.workers)  # one ring per worker and device
    assert dp.prefilter_kind == "ebpf"
    other = udp_packet(SND, "198.19.7.7", 10000, 20000, 64)
    send(topo, [other], count=500)
    time.sleep(0.1)
    assert dp.kernel_stats().packets == 0
    with ffi.netns(topo.ns("rtr")):
        dp.set_criteria([crit(1, FLOW_A, cd())])
    send(topo, [other], count=500)
    time.sleep(0.1)
    assert dp.kernel_stats().packets == 0  # another destination: rejected in the kernel
    rx = udp_receiver(topo, "rcv", 20000)
    send(topo, [udp_packet(SND, RCV, 10000, 20000, 64)], count=100)
    drain(rx, 0.3)
    settle(dp.counters, 100)
    assert dp.kernel_stats().packets == 100
