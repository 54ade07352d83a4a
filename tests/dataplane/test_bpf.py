import ipaddress
import random
import socket
import struct

import pytest

from flowtap.dataplane import bpf, bpf_asm, ffi
from flowtap.dataplane.match import MatchTable
from flowtap.dataplane.packet import parse
from flowtap.intercept.criteria import AddressFilter, Match, Span, ValueFilter
from flowtap.tools.traffic import ipv4_fragments, udp_packet

from .cbpf import run
from .helpers import addr, vals

V4 = [int(ipaddress.ip_address("10.0.0.0")) + i for i in range(16)]
V6 = [int(ipaddress.ip_address(p)) + i for p in ("2001:db8::", "2001:db9::") for i in range(8)]


def packet(rng: random.Random, version: int) -> bytes:
    pool = V4 if version == 4 else V6
    src, dst = rng.choice(pool), rng.choice(pool)
    proto = rng.choice([1, 6, 17, 47, 58] if version == 6 else [1, 6, 17, 47])
    if proto in (6, 17):
        l4 = struct.pack("!HH", rng.randint(1, 6), rng.randint(1, 6)) + bytes(16)
    elif proto in (1, 58):
        l4 = struct.pack("!BB", rng.randint(0, 4), rng.randint(0, 2)) + bytes(6)
    else:
        l4 = bytes(8)
    if version == 4:
        return struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0,
                           src, dst) + l4
    return struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + src.to_bytes(16, "big") \
        + dst.to_bytes(16, "big") + l4


def rand_values(rng: random.Random, top: int) -> ValueFilter:
    spans = []
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        lo = rng.randint(0, 6)
        hi = lo if rng.random() < 0.5 else rng.choice([lo + rng.randint(0, 3), top])
        spans.append(Span(lo, hi, rng.random() < 0.25))
    return ValueFilter(tuple(spans))


def rand_addr(rng: random.Random, version: int) -> AddressFilter:
    pool = V4 if version == 4 else V6
    spans = []
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        lo = rng.choice(pool)
        hi = lo if rng.random() < 0.5 else lo + rng.randint(0, 9)
        spans.append(Span(lo, hi, rng.random() < 0.2))
    return AddressFilter(version if spans else None, tuple(spans))


def rand_match(rng: random.Random, inet6: bool) -> Match:
    version = 6 if inet6 and rng.random() < 0.4 else 4
    kind = rng.random()
    return Match(
        source_address=rand_addr(rng, version),
        dest_address=rand_addr(rng, version),
        protocol=ValueFilter((Span(17, 17),)) if kind < 0.3 else ValueFilter(
            (Span(rng.choice([1, 6, 17, 58]), rng.choice([1, 6, 17, 58])),)) if kind < 0.5
        else ValueFilter(),
        source_port=rand_values(rng, 65535) if kind < 0.7 else ValueFilter(),
        dest_port=rand_values(rng, 65535) if kind < 0.7 else ValueFilter(),
        icmp_type=rand_values(rng, 255) if kind > 0.8 else ValueFilter(),
        icmp_code=rand_values(rng, 255) if kind > 0.9 else ValueFilter(),
        ip_version=rng.choice([None, None, version]),
    )


def accepts(f: bpf.Filter, pkt: bytes, pkttype: int = 0) -> bool:
    proto = 0x86DD if pkt[0] >> 4 == 6 else 0x0800
    return run(f.insns, pkt, proto, pkttype) > 0


@pytest.mark.parametrize("seed", range(40))
def test_program_never_rejects_what_userspace_matches(seed):
    rng = random.Random(seed)
    inet6 = seed % 2 == 0
    matches = [rand_match(rng, inet6) for _ in range(rng.randint(1, 6))]
    table = MatchTable([(m, i) for i, m in enumerate(matches)], inet6=inet6)
    programs = [bpf.compile_filter(matches, inet6=inet6),
                bpf.compile_filter(matches, inet6=inet6, exact_budget=0),  # coarse
                bpf.broad_filter(inet6)]
    assert programs[0].kind == "exact" and programs[1].kind == "coarse"
    for _ in range(300):
        pkt = packet(rng, 6 if rng.random() < 0.4 else 4)
        version, key = parse(pkt, 0, len(pkt))
        wanted = bool(table.lookup(version, key))
        for prog in programs:
            got = accepts(prog, pkt)
            assert got or not wanted, (prog.kind, matches, pkt.hex())
        if version == 4:  # the exact program is exact for IPv4
            assert accepts(programs[0], pkt) == wanted, (matches, pkt.hex())


def test_no_criteria_drops_everything():
    f = bpf.compile_filter([], inet6=True)
    assert f.kind == "drop" and f.insns == ((bpf_asm.RET | bpf_asm.K, 0, 0, 0),)
    assert bpf.compile_filter([Match(ip_version=6)], inet6=False).kind == "drop"


def test_outgoing_other_host_fragments_and_families_rejected():
    f = bpf.compile_filter([Match()], inet6=False)
    p = udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 60)
    assert accepts(f, p)
    assert not accepts(f, p, pkttype=ffi.PACKET_OUTGOING)
    assert not accepts(f, p, pkttype=ffi.PACKET_OTHERHOST)
    frags = ipv4_fragments(udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 1400), 512)
    assert accepts(f, frags[0]) and not any(accepts(f, x) for x in frags[1:])
    assert not accepts(f, udp_packet("2001:db8::1", "2001:db8::2", 1, 2, 80))
    assert run(f.insns, p, 0x0806) == 0  # ARP-typed frame


def test_ipv6_extension_headers_go_to_userspace():
    f = bpf.compile_filter([Match(dest_address=addr("2001:db8::2"), dest_port=vals("2"))],
                           inet6=True)
    p = bytearray(udp_packet("2001:db8::1", "2001:db8::2", 1, 2, 80))
    assert accepts(f, bytes(p))
    q = bytearray(udp_packet("2001:db8::1", "2001:db8::3", 1, 2, 80))
    assert not accepts(f, bytes(q))
    p[6] = q[6] = 0  # hop-by-hop first: the program cannot see the ports, accepts...
    assert accepts(f, bytes(p))
    p[42] = 7  # ... whatever the bytes where the port would be
    assert accepts(f, bytes(p))
    assert not accepts(f, bytes(q))  # but the addresses are always where they are


def test_other_hosts_are_rejected_after_one_packet_load():
    """The forwarding CPU's cost for non-matching traffic: on skbs whose headers are not
    linear each packet load is a helper call, so the address test comes first."""
    f = bpf.compile_filter([Match(dest_address=addr("198.19.0.1"), protocol=vals("17"),
                                  dest_port=vals("20000"))], inet6=False)
    assert f.kind == "exact"
    loads = []
    pkt = udp_packet("198.18.1.2", "198.19.0.2", 10000, 20000, 46)
    assert run(f.insns, pkt, 0x0800, trace=loads) == 0
    assert loads == [16]  # only the destination address was read
    loads.clear()
    assert run(f.insns, udp_packet("198.18.1.2", "198.19.0.1", 10000, 20000, 46), 0x0800,
               trace=loads) > 0
    assert len(loads) <= 6


def test_ten_thousand_hosts_fit_a_coarsened_tree():
    rng = random.Random(3)
    hosts = rng.sample(range(0x0A000000, 0x0B000000), 10_000)
    ms = [Match(dest_address=AddressFilter(4, (Span(h, h),)), dest_port=vals("80"))
          for h in hosts] + [Match(dest_address=addr("198.19.0.1"))]
    f = bpf.compile_filter(ms, inet6=False)
    assert f.kind == "coarse" and len(f) <= bpf_asm.BPF_MAXINSNS
    for h in [*hosts[::97], 0xC6130001]:  # every criterion's host still passes
        assert accepts(f, udp_packet("192.0.2.1", str(ipaddress.ip_address(h)), 9, 80, 60))
    for other in ("198.19.0.2", "192.0.2.7", "11.0.0.1", "9.255.255.255"):
        assert not accepts(f, udp_packet("192.0.2.1", other, 9, 80, 60))


def test_large_sets_degrade_to_coarse_then_broad_and_always_fit():
    rng = random.Random(1)
    hosts = rng.sample(range(1 << 32), 10_000)
    few = [Match(dest_address=AddressFilter(4, (Span(h, h),)), dest_port=vals("80"))
           for h in hosts[:900]]
    f = bpf.compile_filter(few, inet6=False)
    assert f.kind == "coarse" and len(f) <= bpf_asm.BPF_MAXINSNS
    table = MatchTable([(m, 1) for m in few])
    for h in hosts[:900:50]:
        pkt = udp_packet("192.0.2.1", str(ipaddress.ip_address(h)), 9, 80, 60)
        assert table.lookup(*parse(pkt, 0, len(pkt))) and accepts(f, pkt)
    many = [Match(dest_address=AddressFilter(4, (Span(h, h),))) for h in hosts]
    g = bpf.compile_filter(many, inet6=False)  # coarsened: the smallest gaps are filled
    assert g.kind == "coarse" and len(g) <= bpf_asm.BPF_MAXINSNS
    for h in hosts[::101]:
        assert accepts(g, udp_packet("192.0.2.1", str(ipaddress.ip_address(h)), 9, 80, 60))
    # a criterion without any positive address: the tree accepts the whole family
    assert bpf.compile_filter(many + [Match(dest_port=vals("80"))] * 60,
                              inet6=False, exact_budget=0).kind == "coarse"
    assert bpf.broad_filter(False).kind == "broad" and len(bpf.broad_filter(False)) < 40
    # consecutive hosts merge into one interval: 10,000 criteria, a tiny program
    seq = [Match(dest_address=AddressFilter(4, (Span(0x0A000000 + i, 0x0A000000 + i),)))
           for i in range(10_000)]
    assert bpf.compile_filter(seq, inet6=False).kind == "coarse"


def test_wildcard_address_criterion_makes_coarse_accept_family():
    f = bpf.compile_filter([Match(dest_port=vals("80"))] * 100, inet6=False)
    assert f.kind == "coarse"
    assert accepts(f, udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 60))


@pytest.mark.parametrize("n", [0, 1, 5, 60, 900, 10_000])
def test_kernel_accepts_generated_programs(n):
    rng = random.Random(n)
    ms = [rand_match(rng, True) for _ in range(min(n, 60))]
    ms += [Match(dest_address=AddressFilter(4, (Span(h, h),)))
           for h in rng.sample(range(1 << 32), max(0, n - 60))]
    for f in (bpf.compile_filter(ms, inet6=True), bpf.broad_filter(True)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ffi.attach_filter(s, f.insns)  # the kernel verifier raises on a bad program
