"""The classic BPF programs of a capture socket: drop-all before binding and the broad fallback
where eBPF cannot load; run in a cBPF interpreter and checked by the kernel verifier."""

import ipaddress
import random
import socket
import struct

import pytest

from flowtap.dataplane import bpf, bpf_asm, ffi
from flowtap.dataplane.packet import parse
from flowtap.tools.traffic import ipv4_fragments, udp_packet

from .cbpf import run

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


def accepts(f: bpf.Filter, pkt: bytes, pkttype: int = 0) -> bool:
    proto = 0x86DD if pkt[0] >> 4 == 6 else 0x0800
    return run(f.insns, pkt, proto, pkttype) > 0


def test_drop_all_is_one_instruction() -> None:
    f = bpf.drop_all()
    assert f.kind == "drop" and f.insns == ((bpf_asm.RET | bpf_asm.K, 0, 0, 0),)
    assert run(f.insns, udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 60), 0x0800) == 0


def test_broad_rejects_outgoing_other_host_later_fragments_and_other_families():
    f = bpf.broad_filter(inet6=False)
    p = udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 60)
    assert accepts(f, p)
    assert not accepts(f, p, pkttype=ffi.PACKET_OUTGOING)
    assert not accepts(f, p, pkttype=ffi.PACKET_OTHERHOST)
    frags = ipv4_fragments(udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 1400), 512)
    assert accepts(f, frags[0]) and not any(accepts(f, x) for x in frags[1:])
    assert not accepts(f, udp_packet("2001:db8::1", "2001:db8::2", 1, 2, 80))
    assert run(f.insns, p, 0x0806) == 0  # ARP-typed frame


@pytest.mark.parametrize("seed", range(4))
def test_broad_never_rejects_what_userspace_matches(seed):
    rng = random.Random(seed)
    f = bpf.broad_filter(inet6=True)
    for _ in range(300):
        pkt = packet(rng, rng.choice([4, 6]))
        if parse(pkt, 0, len(pkt)) is not None:
            assert accepts(f, pkt)


def test_kernel_accepts_both_programs():
    for f in (bpf.drop_all(), bpf.broad_filter(True), bpf.broad_filter(False)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ffi.attach_filter(s, f.insns)  # the kernel verifier raises on a bad program
