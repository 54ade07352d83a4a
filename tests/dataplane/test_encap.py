import shutil
import subprocess

import pytest

from flowtap.dataplane import encap
from flowtap.dataplane.encap import Outer
from flowtap.intercept.criteria import ContentDestination
from flowtap.tools import pcap

from .golden import OUTER4, OUTER6, PCAPS, files, inner_packets


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
