import shutil
import subprocess

import pytest

from flowtap.dataplane import encap
from flowtap.dataplane.encap import Outer
from flowtap.intercept.criteria import CLASSIC, ContentDestination, Jmirror
from flowtap.tools import pcap

from .golden import JMIRROR, JMIRROR_MAX, OUTER4, OUTER6, PCAPS, files, inner_packets


@pytest.mark.parametrize("name", sorted(files()))
def test_golden_pcaps_are_what_the_code_builds(name):
    linktype, golden = pcap.read((PCAPS / name).read_bytes())
    assert linktype == pcap.LINKTYPE_RAW
    assert golden == files()[name]


def test_ipv4_outer_header_contract():
    inner = inner_packets()[0]
    d = encap.build(inner, OUTER4, ident=0x1234)
    assert d[0] == 0x45 and d[1] == 0  # IPv4, IHL 5, TOS 0
    assert int.from_bytes(d[2:4], "big") == len(inner) + 28
    assert int.from_bytes(d[6:8], "big") == 0  # DF clear, offset 0
    assert d[8] == 255 and d[9] == 17
    assert encap.checksum(d[:20]) == 0
    assert d[28:] == inner
    dec = encap.decode(d)
    assert dec.outer == OUTER4 and dec.inner == inner and dec.udp_checksum == 0
    assert not dec.dont_fragment and dec.tos == 0 and dec.ident == 0x1234


def test_ipv6_outer_header_contract():
    inner = inner_packets()[3]
    d = encap.build(inner, OUTER6)
    assert d[0] >> 4 == 6 and int.from_bytes(d[0:4], "big") & 0x0FFFFFFF == 0
    assert d[6] == 17 and d[7] == 64
    dec = encap.decode(d)
    assert dec.outer == OUTER6 and dec.inner == inner
    pseudo = d[8:40] + (len(d) - 40).to_bytes(4, "big") + b"\0\0\0\x11"
    assert dec.udp_checksum != 0 and encap.checksum(pseudo + d[40:]) == 0


def test_outer_from_content_destination_defaults_ttl_255():
    cd = ContentDestination("c", "192.0.2.1", 1, "192.0.2.2", 2)
    assert Outer.of(cd) == Outer(4, "192.0.2.2", 2, "192.0.2.1", 1, 255)


def test_too_large_is_refused():
    with pytest.raises(ValueError, match="too large"):
        encap.build(b"\x45" + bytes(65535 - 28), OUTER4)


def test_jmirror_header_contract():
    inner = inner_packets()[1]
    d = encap.build(inner, OUTER4, header=encap.shim(JMIRROR))
    assert int.from_bytes(d[2:4], "big") == 28 + 8 + len(inner)
    assert d[8] == 255 and int.from_bytes(d[26:28], "big") == 0  # TTL 255, UDP checksum 0
    assert d[28:36] == bytes.fromhex("01010101" "30010002") and d[36:] == inner
    dec = encap.decode(d)
    assert encap.is_jmirror(dec.inner)
    assert encap.split_jmirror(dec.inner) == (0x01010101, 0x30010002, inner)


@pytest.mark.parametrize(("delivery", "header"), [
    (CLASSIC, b""),
    (Jmirror(0, 0), bytes(8)),
    (Jmirror(2**30 - 1, 2**32 - 1), bytes.fromhex("3fffffff" "ffffffff")),  # V stays 0
    (JMIRROR_MAX, bytes.fromhex("3fffffff" "00000007")),
])
def test_shim_per_delivery(delivery, header):
    assert encap.shim(delivery) == header


@pytest.mark.parametrize(("intercept", "session"), [(2**30, 0), (-1, 0), (0, 2**32), (0, -1)])
def test_jmirror_ids_that_do_not_fit_cannot_exist(intercept, session):
    with pytest.raises(ValueError, match="bits"):
        Jmirror(intercept, session)


def test_classic_copies_are_never_taken_for_jmirror():
    for inner in inner_packets():
        assert not encap.is_jmirror(inner)  # IP version 4 or 6 in the top nibble
    with pytest.raises(ValueError, match="not a jmirror header"):
        encap.split_jmirror(inner_packets()[0])
    with pytest.raises(ValueError, match="not a jmirror header"):
        encap.split_jmirror(bytes(7))


def test_too_large_with_header_is_refused():
    with pytest.raises(ValueError, match="too large"):
        encap.build(b"\x45" + bytes(65535 - 28 - 8), OUTER4, header=encap.shim(JMIRROR))


@pytest.mark.parametrize(("name", "mid", "sid"), [
    ("jmirror-ipv4.pcap", 0x01010101, 0x30010002),
    ("jmirror-ipv6.pcap", 2**30 - 1, 7),
])
def test_tshark_decodes_jmirror_ids_and_inner_packet(name, mid, sid):
    out = _tshark(name, "jmirror", "jmirror.mid", "jmirror.sid", "ip.src", "ipv6.src",
                  "ip.proto", "ipv6.nxt", "tcp.dstport")
    assert len(out) == len(inner_packets())
    for line in out:
        got_mid, got_sid, *_rest = line.split("|")
        assert (int(got_mid, 16), int(got_sid, 16)) == (mid, sid)
    inner_src = ["198.18.1.2", "10.1.1.1", "10.1.1.1", "2001:db8:1::2", "198.18.1.2",
                 "198.18.1.2"]
    inner_proto = ["17", "6", "1", "17", "17", "17"]
    for line, src, proto in zip(out, inner_src, inner_proto, strict=True):
        _mid, _sid, v4, v6, ip_proto, v6_next, _port = line.split("|")
        sources, protos = (v6, v6_next) if ":" in src else (v4, ip_proto)
        # the inner IP header is the last one of its family tshark shows
        assert sources.split(",")[-1] == src and protos.split(",")[-1] == proto
    assert out[1].split("|")[-1] == "80"  # the inner TCP SYN's destination port


def _tshark(name: str, dissector: str, *fields: str) -> list[str]:
    tshark = shutil.which("tshark")
    assert tshark, "tshark is installed by `make test` (APT_PACKAGES)"
    args = [a for f in fields for a in ("-e", f)]
    return subprocess.run(
        [tshark, "-r", str(PCAPS / name), "-d", f"udp.port==47000,{dissector}", "-T", "fields",
         *args, "-E", "separator=|"],
        capture_output=True, text=True, check=True).stdout.splitlines()


@pytest.mark.parametrize("name", ["encap-ipv4.pcap", "encap-ipv6.pcap"])
def test_tshark_decodes_outer_udp_and_inner_ip(name):
    tshark = shutil.which("tshark")
    assert tshark, "tshark is installed by `make test` (APT_PACKAGES)"
    out = subprocess.run(
        [tshark, "-r", str(PCAPS / name), "-d", "udp.port==47000,ip", "-T", "fields",
         "-e", "udp.srcport", "-e", "ip.src", "-e", "ipv6.src", "-E", "separator=|"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(inner_packets())
    outer_src = "198.18.99.1" if "ipv4" in name else "2001:db8:99::1"
    for line in out:
        sport, v4, v6 = line.split("|")
        assert sport.split(",")[0] == "5555"
        assert outer_src in (v4 + "," + v6).split(",")
    assert "10.1.1.1" in out[1]  # the inner TCP packet's source
