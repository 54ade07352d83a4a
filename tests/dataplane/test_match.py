import pytest

from flowtap.dataplane import match as match_mod
from flowtap.dataplane.packet import parse
from flowtap.intercept.criteria import Match
from flowtap.tools.traffic import udp_packet
from tests.dataplane.reference_match import MatchTable

from .golden import icmp_echo, tcp_syn
from .helpers import addr, ip, vals


def key(pkt: bytes):
    return parse(pkt, 0, len(pkt))


def hits(m: Match, pkt: bytes, *, iface=None, inet6=True) -> bool:
    table = MatchTable([(m, "x")], interface=iface, inet6=inet6)
    return table.lookup(*key(pkt)) == ("x",)


U = udp_packet("10.1.2.3", "10.9.9.9", 1000, 2000, 60)
U6 = udp_packet("2001:db8::5", "2001:db8:1::9", 1000, 2000, 100)


@pytest.mark.parametrize(("m", "expected"), [
    (Match(), True),
    (Match(dest_address=addr("10.9.9.9")), True),
    (Match(dest_address=addr("10.9.9.8")), False),
    (Match(dest_address=addr("10.9.0.0/16")), True),
    (Match(dest_address=addr("10.8.0.0/16")), False),
    (Match(dest_address=addr("10.9.9.1-10.9.9.9")), True),
    (Match(dest_address=addr("10.9.9.10-10.9.9.20")), False),
    (Match(dest_address=addr("10.9.9.9-*")), True),
    (Match(dest_address=addr("*-10.9.9.8")), False),
    (Match(dest_address=addr("10.0.0.1", "10.9.9.9")), True),
    (Match(dest_address=addr("!10.9.9.9")), False),
    (Match(dest_address=addr("!10.9.9.8")), True),
    (Match(dest_address=addr("10.0.0.0/8", "!10.9.9.0/24")), False),
    (Match(source_address=addr("10.1.2.3"), dest_address=addr("10.9.9.9")), True),
    (Match(source_address=addr("10.1.2.4"), dest_address=addr("10.9.9.9")), False),
    (Match(source_address=addr("10.1.0.0/16")), True),
    (Match(protocol=vals("17")), True),
    (Match(protocol=vals("6")), False),
    (Match(protocol=vals("6", "17")), True),
    (Match(protocol=vals("!17")), False),
    (Match(source_port=vals("1000")), True),
    (Match(dest_port=vals("1999-2001")), True),
    (Match(dest_port=vals("2001-*")), False),
    (Match(dest_port=vals("*-2000")), True),
    (Match(dest_port=vals("80", "443", "2000")), True),
    (Match(dest_port=vals("!2000")), False),
    (Match(dest_port=vals("!80")), True),
    (Match(icmp_type=vals("8")), False),  # not ICMP
    (Match(ip_version=4), True),
    (Match(ip_version=6), False),
    (Match(dest_address=addr("2001:db8:1::9")), False),  # other family
])
def test_ipv4_forms(m, expected):
    assert hits(m, U) is expected


@pytest.mark.parametrize(("m", "expected"), [
    (Match(), True),
    (Match(dest_address=addr("2001:db8:1::9")), True),
    (Match(dest_address=addr("2001:db8:1::/48")), True),
    (Match(dest_address=addr("2001:db8:2::/48")), False),
    (Match(dest_address=addr("2001:db8:1::1-2001:db8:1::ff")), True),
    (Match(source_address=addr("!2001:db8::5")), False),
    (Match(ip_version=6, dest_port=vals("2000")), True),
    (Match(dest_address=addr("10.9.9.9")), False),
])
def test_ipv6_forms(m, expected):
    assert hits(m, U6) is expected


def test_ipv6_needs_inet6():
    assert not hits(Match(), U6, inet6=False)
    assert hits(Match(), U, inet6=False)


def test_icmp_type_and_code_and_ports_need_their_protocol():
    i = icmp_echo()
    assert hits(Match(icmp_type=vals("8"), icmp_code=vals("0")), i)
    assert not hits(Match(icmp_type=vals("0")), i)
    assert not hits(Match(icmp_code=vals("1-*")), i)
    assert not hits(Match(dest_port=vals("!80")), i)  # no ports at all
    t = tcp_syn()
    assert hits(Match(protocol=vals("6"), dest_port=vals("80")), t)
    assert not hits(Match(icmp_type=vals("!3")), t)


def test_input_interface_scope():
    m = Match(input_interfaces=("ge-0/0/1",))
    assert hits(m, U, iface="ge-0/0/1.0")
    assert not hits(m, U, iface="ge-0/0/2.0")
    assert hits(Match(input_interfaces=("ge-0/0/1.5",)), U, iface="ge-0/0/1.5")


def test_every_matching_rule_in_install_order():
    rules = [(Match(dest_port=vals("2000")), "a"), (Match(dest_address=addr("10.9.9.9")), "b"),
             (Match(source_address=addr("10.1.0.0/16")), "c"), (Match(protocol=vals("6")), "d"),
             (Match(), "e")]
    assert MatchTable(rules).lookup(*key(U)) == ("a", "b", "c", "e")


def test_own_copies_and_icmp_errors_about_them_are_excluded():
    src = ip("198.18.99.1")
    table = MatchTable([(Match(), "all")], excluded_sources=[(4, src, 5555)],
                       error_sinks=[(4, src)])
    copy = udp_packet("198.18.99.1", "198.18.3.2", 5555, 47000, 100)
    assert table.lookup(*key(copy)) == ()
    other = udp_packet("198.18.99.1", "198.18.3.2", 5556, 47000, 100)
    assert table.lookup(*key(other)) == ("all",)
    v, k = 4, (ip("198.18.3.2"), src, 1, -1, -1, 3, 3)  # port unreachable to our source
    assert table.lookup(v, k) == ()
    assert table.lookup(v, (*k[:5], 8, 0)) == ("all",)  # an echo request is not an error


def test_lookup_does_not_scan_all_rules(monkeypatch):
    """10,000 criteria on distinct hosts and prefixes: a packet examines only its own."""
    rules = [(Match(dest_address=addr(f"10.{i >> 8}.{i & 255}.1"), dest_port=vals("2000")), i)
             for i in range(5000)]
    rules += [(Match(source_address=addr(f"172.{16 + (i >> 8)}.{i & 255}.0/24")), 5000 + i)
              for i in range(4096)]
    table = MatchTable(rules)
    calls = 0
    real = match_mod.Rule.matches

    def counting(self, k):
        nonlocal calls
        calls += 1
        return real(self, k)

    monkeypatch.setattr(match_mod.Rule, "matches", counting)
    p = udp_packet("172.19.7.9", "10.4.2.1", 1, 2000, 60)
    assert table.lookup(*key(p)) == (4 * 256 + 2, 5000 + 3 * 256 + 7)
    assert calls == 2
    q = udp_packet("192.0.2.1", "192.0.2.2", 1, 2000, 60)
    assert table.lookup(*key(q)) == ()
    assert calls == 2
    table.lookup(*key(p))  # memoised
    assert calls == 2
