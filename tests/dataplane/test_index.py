"""MatchIndex answers what a freshly built MatchTable of the same rules (ordered by key) answers,
after every add, replace, remove and exclusion change."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from flowtap.dataplane import match as match_mod
from flowtap.dataplane.index import MatchIndex
from flowtap.dataplane.packet import PORT_PROTOCOLS, FlowKey, parse
from flowtap.intercept.criteria import AddressFilter, Match, Span, ValueFilter
from flowtap.tools.traffic import udp_packet
from tests.dataplane.reference_match import MatchTable

from .golden import icmp_echo, tcp_syn
from .helpers import addr, ip, vals

Flow = tuple[int, FlowKey]


def flow(pkt: bytes) -> Flow:
    parsed = parse(pkt, 0, len(pkt))
    assert parsed is not None
    return parsed


def index_of(rules: Sequence[tuple[Match, str]], *, iface: str | None = None,
             inet6: bool = True) -> MatchIndex[str]:
    index: MatchIndex[str] = MatchIndex(iface, inet6=inet6)
    for key, (m, payload) in enumerate(rules):
        index.add(key, m, payload)
    return index


def hits(m: Match, pkt: bytes, *, iface: str | None = None, inet6: bool = True) -> bool:
    """Whether ``m`` selects ``pkt``, asserting that MatchTable says the same."""
    found = index_of([(m, "x")], iface=iface, inet6=inet6).lookup(*flow(pkt))
    table = MatchTable([(m, "x")], interface=iface, inet6=inet6)
    assert found == table.lookup(*flow(pkt))
    return found == ("x",)


U = udp_packet("10.1.2.3", "10.9.9.9", 1000, 2000, 60)
U6 = udp_packet("2001:db8::5", "2001:db8:1::9", 1000, 2000, 100)


@pytest.mark.parametrize(("m", "expected"), [
    (Match(), True),
    (Match(dest_address=addr("10.9.9.9")), True),
    (Match(dest_address=addr("10.9.9.8")), False),
    (Match(dest_address=addr("10.9.0.0/16")), True),
    (Match(dest_address=addr("10.8.0.0/16")), False),
    (Match(dest_address=addr("0.0.0.0/0")), True),
    (Match(dest_address=addr("10.9.9.1-10.9.9.9")), True),
    (Match(dest_address=addr("10.9.9.10-10.9.9.20")), False),
    (Match(dest_address=addr("10.9.9.9-*")), True),
    (Match(dest_address=addr("*-10.9.9.8")), False),
    (Match(dest_address=addr("10.0.0.1", "10.9.9.9")), True),
    (Match(dest_address=addr("!10.9.9.9")), False),
    (Match(dest_address=addr("!10.9.9.8")), True),
    (Match(dest_address=addr("10.0.0.0/8", "!10.9.9.0/24")), False),
    (Match(dest_address=addr("!10.9.9.0/24"), source_address=addr("10.1.2.3")), False),
    (Match(dest_address=addr("!10.9.8.0/24"), source_address=addr("10.1.2.0/30")), True),
    (Match(source_address=addr("10.1.2.3"), dest_address=addr("10.9.9.9")), True),
    (Match(source_address=addr("10.1.2.4"), dest_address=addr("10.9.9.9")), False),
    (Match(source_address=addr("10.1.0.0/16")), True),
    (Match(source_address=addr("10.1.2.4-*")), False),
    (Match(protocol=vals("17")), True),
    (Match(protocol=vals("6")), False),
    (Match(protocol=vals("!17")), False),
    (Match(source_port=vals("1000")), True),
    (Match(dest_port=vals("1999-2001")), True),
    (Match(dest_port=vals("2001-*")), False),
    (Match(dest_port=vals("!2000")), False),
    (Match(dest_port=vals("!80")), True),
    (Match(icmp_type=vals("8")), False),  # not ICMP
    (Match(ip_version=4), True),
    (Match(ip_version=6), False),
    (Match(dest_address=addr("2001:db8:1::9")), False),  # other family
])
def test_ipv4_forms(m: Match, expected: bool) -> None:
    assert hits(m, U) is expected


@pytest.mark.parametrize(("m", "expected"), [
    (Match(), True),
    (Match(dest_address=addr("2001:db8:1::9")), True),
    (Match(dest_address=addr("2001:db8:1::/48")), True),
    (Match(dest_address=addr("2001:db8:2::/48")), False),
    (Match(dest_address=addr("2001:db8:1::1-2001:db8:1::ff")), True),
    (Match(dest_address=addr("2001:db8:1::a-*")), False),
    (Match(source_address=addr("!2001:db8::5")), False),
    (Match(source_address=addr("2001:db8::/32"), dest_address=addr("!2001:db8:1::9")), False),
    (Match(ip_version=6, dest_port=vals("2000")), True),
    (Match(dest_address=addr("10.9.9.9")), False),
])
def test_ipv6_forms(m: Match, expected: bool) -> None:
    assert hits(m, U6) is expected


def test_ipv6_needs_inet6() -> None:
    assert not hits(Match(), U6, inet6=False)
    assert not hits(Match(dest_address=addr("2001:db8:1::9")), U6, inet6=False)
    assert hits(Match(), U, inet6=False)


def test_icmp_type_and_code_and_ports_need_their_protocol() -> None:
    i = icmp_echo()
    assert hits(Match(icmp_type=vals("8"), icmp_code=vals("0")), i)
    assert not hits(Match(icmp_type=vals("0")), i)
    assert not hits(Match(icmp_code=vals("1-*")), i)
    assert not hits(Match(dest_port=vals("!80")), i)  # no ports at all
    t = tcp_syn()
    assert hits(Match(protocol=vals("6"), dest_port=vals("80")), t)
    assert not hits(Match(icmp_type=vals("!3")), t)


@pytest.mark.parametrize(("scope", "iface", "expected"), [
    ("ge-1/0/0", "ge-1/0/0.0", True),
    ("ge-1/0/0.0", "ge-1/0/0", True),
    ("ge-1/0/0", "ge-1/0/0", True),
    ("ge-1/0/0", "ge-1/0/1.0", False),
    ("ge-1/0/0.5", "ge-1/0/0", False),
    ("ge-1/0/0.5", "ge-1/0/0.5", True),
    ("ge-1/0/0", None, True),  # no capture interface named: every rule applies
])
def test_input_interface_scope(scope: str, iface: str | None, expected: bool) -> None:
    assert hits(Match(input_interfaces=("ge-2/0/0", scope)), U, iface=iface) is expected


def test_every_matching_rule_ordered_by_key_not_by_arrival() -> None:
    index: MatchIndex[str] = MatchIndex(None, inet6=True)
    index.add(40, Match(), "e")
    index.add(30, Match(protocol=vals("6")), "d")
    index.add(20, Match(source_address=addr("10.1.0.0/16")), "c")
    index.add(10, Match(dest_address=addr("10.9.9.9")), "b")
    index.add(5, Match(dest_port=vals("2000")), "a")
    assert index.lookup(*flow(U)) == ("a", "b", "c", "e")


def test_a_rule_under_overlapping_prefixes_is_reported_once() -> None:
    m = Match(dest_address=addr("10.0.0.0/8", "10.9.0.0/16", "10.9.9.0-10.9.9.9"))
    assert index_of([(m, "x")]).lookup(*flow(U)) == ("x",)


def test_add_replaces_the_key() -> None:
    index = index_of([(Match(dest_address=addr("10.9.9.9")), "old")])
    assert index.lookup(*flow(U)) == ("old",)
    index.add(0, Match(dest_address=addr("2001:db8:1::9")), "new")
    assert index.lookup(*flow(U)) == ()
    assert index.lookup(*flow(U6)) == ("new",)
    assert len(index) == 1
    index.add(0, Match(dest_address=addr("10.9.0.0/16")), "newer")
    assert index.lookup(*flow(U)) == ("newer",)
    assert index.lookup(*flow(U6)) == ()


def test_remove_and_unknown_keys() -> None:
    index = index_of([(Match(dest_address=addr("10.9.9.9")), "a"), (Match(), "b")])
    index.remove(99)
    assert index.lookup(*flow(U)) == ("a", "b")
    index.remove(0)
    index.remove(0)
    assert index.lookup(*flow(U)) == ("b",)
    assert len(index) == 2  # the wildcard counts once per version, as in MatchTable


def test_a_change_is_seen_by_the_next_lookup_of_a_memoised_flow() -> None:
    index: MatchIndex[str] = MatchIndex(None, inet6=False)
    assert index.lookup(*flow(U)) == ()  # a miss is memoised too
    index.add(1, Match(dest_address=addr("10.9.9.9")), "a")
    assert index.lookup(*flow(U)) == ("a",)
    index.add(1, Match(dest_address=addr("10.9.9.8")), "a")
    assert index.lookup(*flow(U)) == ()
    index.add(2, Match(), "b")
    assert index.lookup(*flow(U)) == ("b",)
    index.set_exclusions([(4, ip("10.1.2.3"), 1000)], [])
    assert index.lookup(*flow(U)) == ()
    index.set_exclusions([], [])
    assert index.lookup(*flow(U)) == ("b",)
    index.remove(2)
    assert index.lookup(*flow(U)) == ()


def test_own_copies_and_icmp_errors_about_them_are_excluded() -> None:
    src = ip("198.18.99.1")
    index = index_of([(Match(), "all")])
    index.set_exclusions([(4, src, 5555)], [(4, src)])
    assert index.lookup(*flow(udp_packet("198.18.99.1", "198.18.3.2", 5555, 47000, 100))) == ()
    other = udp_packet("198.18.99.1", "198.18.3.2", 5556, 47000, 100)
    assert index.lookup(*flow(other)) == ("all",)
    tcp = (src, ip("198.18.3.2"), 6, 5555, 47000, -1, -1)  # our copies are UDP: not one
    assert index.lookup(4, tcp) == ("all",)
    k = (ip("198.18.3.2"), src, 1, -1, -1, 3, 3)  # port unreachable to our source
    assert index.lookup(4, k) == ()
    assert index.lookup(4, (*k[:5], 8, 0)) == ("all",)  # an echo request is not an error
    v6 = ip("2001:db8:99::1")
    index.set_exclusions([(6, v6, 5555)], [(6, v6)])
    assert index.lookup(4, k) == ("all",)
    assert index.lookup(6, (ip("2001:db8:3::2"), v6, 58, -1, -1, 1, 4)) == ()
    assert index.lookup(6, (ip("2001:db8:3::2"), v6, 58, -1, -1, 128, 0)) == ("all",)


def test_lookup_examines_only_the_rules_filed_under_the_packets_prefixes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    index: MatchIndex[int] = MatchIndex(None, inet6=False)
    for i in range(5000):
        index.add(i, Match(dest_address=addr(f"10.{i >> 8}.{i & 255}.1"),
                           dest_port=vals("2000")), i)
    for i in range(4096):
        index.add(5000 + i, Match(source_address=addr(f"172.{16 + (i >> 8)}.{i & 255}.0/24")),
                  5000 + i)
    calls = 0
    real = match_mod.Rule.matches

    def counting(self: match_mod.Rule[int], k: FlowKey) -> bool:
        nonlocal calls
        calls += 1
        return real(self, k)

    monkeypatch.setattr(match_mod.Rule, "matches", counting)
    p = flow(udp_packet("172.19.7.9", "10.4.2.1", 1, 2000, 60))
    assert index.lookup(*p) == (4 * 256 + 2, 5000 + 3 * 256 + 7)
    assert calls == 2
    assert index.lookup(*flow(udp_packet("192.0.2.1", "192.0.2.2", 1, 2000, 60))) == ()
    assert calls == 2
    index.lookup(*p)  # memoised
    assert calls == 2


def test_an_emptied_index_keeps_no_bucket_and_probes_no_length() -> None:
    """Empty buckets and unused prefix lengths go with their last rule, so a long run of adds
    and removes neither leaks memory nor slows lookups down."""
    index: MatchIndex[str] = MatchIndex(None, inet6=True)
    rules = [Match(dest_address=addr("10.0.0.0/8", "10.9.9.1-10.9.9.200")),
             Match(source_address=addr("2001:db8::/48", "!2001:db8::1")),
             Match(dest_address=addr("!10.9.9.9")), Match()]
    for key, m in enumerate(rules):
        index.add(key, m, "x")
    for key in range(len(rules)):
        index.remove(key)
    for version in index._versions.values():  # internal: what lookups probe
        for side in (version.dst, version.src):
            assert side.tables == {}
            assert side.levels == ()
        assert version.filed == {}


# --- randomized equivalence with MatchTable -------------------------------------------------

BASE = {4: ip("10.0.0.0"), 6: ip("2001:db8::")}
TOP = {4: (1 << 32) - 1, 6: (1 << 128) - 1}
SCOPES = ("ge-0/0/1", "ge-0/0/1.0", "ge-0/0/2", "ge-0/0/1.5")


def _address(rng: random.Random, version: int) -> int:
    """Mostly a small neighbourhood (so criteria overlap and share prefixes), sometimes any."""
    if rng.random() < 0.9:
        return BASE[version] + rng.randrange(1024)
    return rng.randrange(TOP[version] + 1)


def _address_filter(rng: random.Random, version: int) -> AddressFilter:
    if rng.random() < 0.35:
        return AddressFilter()
    spans = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        a = _address(rng, version)
        kind = rng.random()
        if kind < 0.4:
            lo = hi = a
        elif kind < 0.7:
            host_bits = rng.choice((1, 2, 4, 8, 10, 12, 24, 32 if version == 4 else 100))
            lo = a >> host_bits << host_bits
            hi = lo | ((1 << host_bits) - 1)
        elif kind < 0.9:
            lo, hi = sorted((a, _address(rng, version)))
        else:
            lo, hi = (a, TOP[version]) if rng.random() < 0.5 else (0, a)
        spans.append(Span(lo, hi, rng.random() < 0.2))
    return AddressFilter(version, tuple(spans))


def _value_filter(rng: random.Random, values: Sequence[int], top: int) -> ValueFilter:
    if rng.random() < 0.6:
        return ValueFilter()
    spans = []
    for _ in range(rng.choice((1, 1, 2))):
        lo = rng.choice(values)
        hi = lo if rng.random() < 0.6 else rng.choice((lo + rng.randrange(4), top))
        spans.append(Span(lo, min(hi, top), rng.random() < 0.2))
    return ValueFilter(tuple(spans))


def random_match(rng: random.Random) -> Match:
    version = rng.choice((4, 4, 6))
    other = version if rng.random() < 0.95 else 10 - version  # rarely mixed: applies nowhere
    return Match(
        source_address=_address_filter(rng, version),
        dest_address=_address_filter(rng, other),
        protocol=_value_filter(rng, (1, 6, 17, 58, 132), 255),
        source_port=_value_filter(rng, range(16), 65535),
        dest_port=_value_filter(rng, range(16), 65535),
        icmp_type=_value_filter(rng, (0, 3, 8, 11, 128, 129), 255),
        icmp_code=_value_filter(rng, range(4), 255),
        input_interfaces=tuple(rng.sample(SCOPES, rng.choice((1, 2))))
        if rng.random() < 0.2 else (),
        ip_version=rng.choice((None, None, None, None, 4, 6)),
    )


def _near(rng: random.Random, version: int, rules: dict[int, Match],
          exclusions: Sequence[int]) -> int:
    """An address at or next to an edge of an installed span, an excluded one, or any."""
    spans = [s for m in rules.values() for af in (m.source_address, m.dest_address)
             if af.version == version for s in af.spans]
    r = rng.random()
    if spans and r < 0.7:
        s = rng.choice(spans)
        edge = rng.choice((s.lo, s.hi, s.lo - 1, s.hi + 1, (s.lo + s.hi) // 2))
        return min(max(edge, 0), TOP[version])
    if exclusions and r < 0.8:
        return rng.choice(exclusions)
    return _address(rng, version)


def random_flow(rng: random.Random, rules: dict[int, Match],
                exclusions: Sequence[tuple[int, int, int]]) -> Flow:
    version = rng.choice((4, 4, 6))
    mine = [a for v, a, _ in exclusions if v == version]
    src, dst = (_near(rng, version, rules, mine) for _ in range(2))
    proto = rng.choice((1, 6, 17, 17, 58, 132, 47))
    sport = dport = itype = icode = -1
    if proto in PORT_PROTOCOLS:
        sport, dport = (rng.choice((*range(17), 5555, 65535)) for _ in range(2))
    elif proto in (1, 58):
        itype = rng.choice((0, 3, 4, 5, 8, 11, 12, 1, 128, 129, 200))
        icode = rng.randrange(5)
    return version, (src, dst, proto, sport, dport, itype, icode)


@pytest.mark.parametrize(("iface", "inet6", "seed"), [
    (None, True, 1), ("ge-0/0/1", True, 2), ("ge-0/0/1.0", False, 3), ("ge-0/0/2.0", True, 4),
])
def test_random_changes_match_a_fresh_table(iface: str | None, inet6: bool, seed: int) -> None:
    rng = random.Random(seed)
    index: MatchIndex[str] = MatchIndex(iface, inet6=inet6)
    rules: dict[int, Match] = {}
    payloads: dict[int, str] = {}
    exclusions: list[tuple[int, int, int]] = []
    sinks: list[tuple[int, int]] = []
    recent: list[Flow] = []  # looked up again after later changes: a stale memo would show
    for step in range(1000):
        op = rng.random()
        key = rng.randrange(48)
        if op < 0.6:
            rules[key], payloads[key] = random_match(rng), f"{key}@{step}"
            index.add(key, rules[key], payloads[key])
        elif op < 0.95:
            rules.pop(key, None)
            index.remove(key)
        else:
            exclusions = [(v, _address(rng, v), rng.choice((5555, 7))) for v in (4, 6, 4)
                          if rng.random() < 0.7]
            sinks = [(v, a) for v, a, _ in exclusions if rng.random() < 0.7]
            index.set_exclusions(exclusions, sinks)
        table = MatchTable([(rules[k], payloads[k]) for k in sorted(rules)], interface=iface,
                           inet6=inet6, excluded_sources=exclusions, error_sinks=sinks)
        assert len(index) == len(table)
        fresh = [random_flow(rng, rules, exclusions) for _ in range(8)]
        for version, k in fresh + rng.sample(recent, min(len(recent), 8)):
            assert index.lookup(version, k) == table.lookup(version, k), (step, version, k)
        recent = (recent + fresh)[-64:]
