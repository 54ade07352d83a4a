import struct

from flowtap.dataplane.packet import parse
from flowtap.tools.traffic import ipv4_fragments, udp_packet

from .golden import icmp_echo, tcp_syn
from .helpers import ip


def test_ipv4_udp():
    p = udp_packet("10.0.0.1", "10.0.0.2", 1234, 53, 60)
    assert parse(p, 0, len(p)) == (4, (ip("10.0.0.1"), ip("10.0.0.2"), 17, 1234, 53, -1, -1))


def test_offset_into_buffer():
    p = b"\xff" * 7 + udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 60)
    assert parse(p, 7, len(p) - 7)[1][3:5] == (1, 2)


def test_tcp_and_icmp():
    t = tcp_syn()
    assert parse(t, 0, len(t))[1][2:5] == (6, 40000, 80)
    i = icmp_echo()
    assert parse(i, 0, len(i))[1][2:] == (1, -1, -1, 8, 0)


def test_ipv4_options_shift_ports():
    p = bytearray(udp_packet("10.0.0.1", "10.0.0.2", 7, 9, 60))
    opt = bytes(p[:20]) + b"\x01\x01\x01\x01" + bytes(p[20:])
    opt = bytearray(opt)
    opt[0] = 0x46
    struct.pack_into("!H", opt, 2, len(opt))
    assert parse(bytes(opt), 0, len(opt))[1][3:5] == (7, 9)


def test_only_first_fragment_parses():
    big = udp_packet("10.0.0.1", "10.0.0.2", 5, 6, 1400)
    frags = ipv4_fragments(big, 512)
    assert len(frags) == 3
    assert parse(frags[0], 0, len(frags[0]))[1][3:5] == (5, 6)
    assert all(parse(f, 0, len(f)) is None for f in frags[1:])


def test_ipv6_udp_and_extension_headers():
    p = udp_packet("2001:db8::1", "2001:db8::2", 1000, 2000, 100)
    v, key = parse(p, 0, len(p))
    assert v == 6 and key[:5] == (ip("2001:db8::1"), ip("2001:db8::2"), 17, 1000, 2000)
    # hop-by-hop (8 bytes) then a first fragment header, then UDP
    hbh = bytes([44, 0]) + b"\x01\x04\x00\x00\x00\x00"
    frag = bytes([17, 0]) + struct.pack("!HI", 0x0001, 99)  # offset 0, M=1
    ext = bytearray(p[:40]) + hbh + frag + p[40:]
    ext[6] = 0
    struct.pack_into("!H", ext, 4, len(ext) - 40)
    assert parse(bytes(ext), 0, len(ext))[1][2:5] == (17, 1000, 2000)
    later = bytearray(ext)
    struct.pack_into("!H", later, 48 + 2, 0x00B9)  # offset 23*8, M=1
    assert parse(bytes(later), 0, len(later)) is None


def test_malformed_is_never_copied():
    p = udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 60)
    assert parse(p, 0, 10) is None
    assert parse(b"\x55" + p[1:], 0, len(p)) is None  # version 5
    assert parse(b"\x44" + p[1:], 0, len(p)) is None  # IHL 16 bytes


def test_truncated_l4_has_no_ports():
    p = udp_packet("10.0.0.1", "10.0.0.2", 1, 2, 60)[:22]
    assert parse(p, 0, len(p))[1][3:] == (-1, -1, -1, -1)
