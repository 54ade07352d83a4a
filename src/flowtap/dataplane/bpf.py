"""Generate the classic BPF pre-filter attached to each capture socket. Pure.

The program runs in the kernel on every packet of a capture interface, on the forwarding CPU,
before anything is cloned into the ring; it must be short and must never reject a packet that
the exact userspace match (:mod:`flowtap.dataplane.match`) would accept. It may accept more
(userspace re-checks everything). Three strengths, tried in order:

``exact``   one block per criterion checking protocol, addresses, ports and ICMP type/code
            (IPv6 addresses on their top 32 bits unless a single host). Used while the whole
            program stays within :data:`EXACT_BUDGET` instructions: its cost grows with N.
``coarse``  per family, a balanced binary search (forward jumps only) over the merged address
            intervals: destination intervals first, then source intervals, for criteria with no
            positive destination. Cost ~log2(intervals); must fit in 4096 instructions.
``broad``   per family, accept every IPv4 (IPv6) packet that is not a later fragment.

Every program first rejects outgoing packets and packets for other hosts, selects the family
from ``skb->protocol`` (the socket is bound to ETH_P_ALL, see DATAPLANE.md §3.5), rejects IPv4
non-first fragments and checks the version nibble. With no criteria the program is
``ret #0`` (:func:`drop_all`). IPv6 packets with extension headers are accepted whenever any
IPv6 criterion exists (userspace walks the header chain).

The instructions and their assembler are :mod:`flowtap.dataplane.bpf_asm`; the address
intervals of ``coarse`` (and of IPv6 ranges in ``exact``) are
:mod:`flowtap.dataplane.bpf_intervals`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flowtap.dataplane.bpf_asm import (
    ABS,
    ALU,
    AND,
    BPF_MAXINSNS,
    IND,
    JEQ,
    JGE,
    JGT,
    JMP,
    JSET,
    LD,
    LDX,
    LEN,
    MEM,
    MISC,
    MSH,
    RET,
    RSH,
    SKF_AD_OFF,
    SKF_AD_PKTTYPE,
    SKF_AD_PROTOCOL,
    ST,
    TAX,
    TXA,
    Asm,
    B,
    H,
    Insn,
    K,
    W,
    X,
)
from flowtap.dataplane.bpf_intervals import address_intervals, coarsen, merge, search_tree
from flowtap.dataplane.match import applies
from flowtap.dataplane.packet import ICMP_PROTOCOLS, IPV6_EXTENSIONS, PORT_PROTOCOLS
from flowtap.errors import JumpTooFar
from flowtap.intercept.criteria import Match, ValueFilter

EXACT_BUDGET = 320  # instructions; beyond that the linear program costs the forwarding CPU
COARSE_LIMITS = (None, 1600, 1000, 700, 450, 250, 100)  # intervals per tree, tried in order
ACCEPT = 0x40000  # snap length returned for accepted packets (whole packet)
M_TMP, M_DST, M_SRC = 0, 1, 2  # scratch slots


@dataclass(frozen=True, slots=True)
class Filter:
    """A program for SO_ATTACH_FILTER and the strength that was used."""

    insns: tuple[Insn, ...]
    kind: str  # "drop", "exact", "coarse" or "broad"

    def __len__(self) -> int:
        return len(self.insns)


def drop_all() -> Filter:
    return Filter(((RET | K, 0, 0, 0),), "drop")


def broad_filter(inet6: bool) -> Filter:
    """Accept every IPv4 (and IPv6) packet the exact match could want."""
    any_match = [Match()]
    return Filter(_program("broad", {4: any_match, 6: any_match if inet6 else []}), "broad")


def compile_filter(matches: Iterable[Match], *, inet6: bool,
                   exact_budget: int = EXACT_BUDGET) -> Filter:
    """The strongest program that fits for the criteria of one capture interface."""
    matches = list(matches)
    fam = {4: [m for m in matches if applies(m, 4, None)],
           6: [m for m in matches if applies(m, 6, None)] if inet6 else []}
    if not fam[4] and not fam[6]:
        return drop_all()
    if len(matches) * 6 <= exact_budget:  # cheap early out: cannot fit
        try:
            insns = _program("exact", fam)
        except JumpTooFar:
            pass
        else:
            if len(insns) <= exact_budget:
                return Filter(insns, "exact")
    for limit in COARSE_LIMITS:
        try:
            insns = _program("coarse", fam, limit)
        except JumpTooFar:
            continue
        if len(insns) <= BPF_MAXINSNS:
            return Filter(insns, "coarse")
    return broad_filter(inet6)


def _program(kind: str, fam: dict[int, list[Match]],
             limit: int | None = None) -> tuple[Insn, ...]:
    a = Asm()
    a.op(LD | W | ABS, SKF_AD_OFF + SKF_AD_PKTTYPE)
    a.when(JEQ, 4, 0)  # PACKET_OUTGOING (belt and braces: the socket ignores them)
    a.when(JEQ, 3, 0)  # PACKET_OTHERHOST: not for this router, never forwarded
    a.op(LD | W | ABS, SKF_AD_OFF + SKF_AD_PROTOCOL)
    if fam[4]:
        a.jmp(JEQ, 0x0800, 0, 1)
        a.ja("v4")
    if fam[6]:
        a.jmp(JEQ, 0x86DD, 0, 1)
        a.ja("v6")
    a.ret(0)
    for version in (4, 6):
        if fam[version]:
            a.label(f"v{version}")
            _family_body(a, kind, fam[version], version, limit)
    if fam[4]:
        # Reached only by packets whose addresses, protocol and ports matched: the header
        # checks of packet.parse() cost two more loads here instead of on every packet.
        a.label("accept4")
        a.op(LD | W | ABS, 0)  # version/IHL, TOS, total length
        a.jmp(JGE, 0x40000000, 0, "reject")
        a.jmp(JGT, 0x4FFFFFFF, "reject", 0)
        a.op(ST, M_TMP)
        a.op(ALU | RSH | K, 22)
        a.op(ALU | AND | K, 0x3C)
        a.op(MISC | TAX)  # X = IHL * 4
        a.op(MISC | TXA)
        a.jmp(JGE, 20, 0, "reject")
        a.op(LD | MEM, M_TMP)
        a.op(ALU | AND | K, 0xFFFF)
        a.code.append((JMP | JGE | X, 0, "reject", 0))  # total length >= IHL
        a.op(LD | W | LEN)
        a.code.append((JMP | JGE | X, 0, "reject", 0))  # captured length >= IHL
        a.op(LD | H | ABS, 6)
        a.jmp(JSET, 0x1FFF, "reject", 0)  # later fragments are never copied
        a.ret(ACCEPT)
    if fam[6]:
        a.label("accept6")
        a.op(LD | B | ABS, 0)
        a.op(ALU | AND | K, 0xF0)
        a.jmp(JEQ, 0x60, 0, "reject")
        a.op(LD | W | LEN)
        a.jmp(JGE, 40, 0, "reject")
        a.ret(ACCEPT)
    a.label("reject")
    a.ret(0)
    return a.assemble()


def _family_body(a: Asm, kind: str, rules: list[Match], version: int,
                 limit: int | None) -> None:
    """Address tests first: a packet of another host costs one packet load (with skbs whose
    headers are not linear, as an AF_PACKET TX ring makes them, each load is a helper call)."""
    accept = f"accept{version}"
    dst_off, src_off = (24, 8) if version == 6 else (16, 12)
    if kind == "broad":
        a.ja(accept)
        return
    if kind == "exact":
        if any(not m.dest_address.is_wildcard for m in rules):
            a.op(LD | W | ABS, dst_off)
            a.op(ST, M_DST)
        cache_src = sum(not m.source_address.is_wildcard for m in rules) > 1
        if cache_src:
            a.op(LD | W | ABS, src_off)
            a.op(ST, M_SRC)
        for m in rules:
            fail = a.new("next")
            _rule_block(a, m, version, fail, cache_src)
            a.label(fail)
        a.ja("reject")
        return
    dst: list[tuple[int, int]] = []
    src: list[tuple[int, int]] = []
    for m in rules:
        if spans := address_intervals(m.dest_address, version):
            dst.extend(spans)
        elif spans := address_intervals(m.source_address, version):
            src.extend(spans)
        else:
            a.ja(accept)  # a criterion with no positive address: the whole family
            return
    src_label = a.new("src")
    if dst:
        a.op(LD | W | ABS, dst_off)
        search_tree(a, coarsen(merge(dst), limit), accept, src_label if src else "reject")
    a.label(src_label)
    if src:
        a.op(LD | W | ABS, src_off)
        search_tree(a, coarsen(merge(src), limit), accept, "reject")
    else:
        a.ja("reject")


def _spans(a: Asm, spans: Sequence[tuple[int, int, bool]], fail: str) -> None:
    """A holds the value: reject into ``fail`` unless it is in a positive span (if any) and in
    no negated span."""
    for lo, hi, neg in spans:
        if not neg:
            continue
        ok = a.new("ok")
        if lo == hi:
            a.jmp(JEQ, lo, fail, 0)
        else:
            a.jmp(JGE, lo, 0, ok)
            a.jmp(JGT, hi, ok, fail)
        a.label(ok)
    positive = [(lo, hi) for lo, hi, neg in spans if not neg]
    if not positive:
        return
    hit = a.new("hit")
    for lo, hi in positive:
        if lo == hi:
            a.jmp(JEQ, lo, hit, 0)
        else:
            nxt = a.new("n")
            a.jmp(JGE, lo, 0, nxt)
            a.jmp(JGT, hi, nxt, hit)
            a.label(nxt)
    a.ja(fail)
    a.label(hit)


def _vals(vf: ValueFilter) -> list[tuple[int, int, bool]]:
    return [(s.lo, s.hi, s.negated) for s in vf.spans]


def _protocols_within(vf: ValueFilter, allowed: frozenset[int]) -> bool:
    exact = vf.exact_values()
    return exact is not None and set(exact) <= allowed


def _rule_block(a: Asm, m: Match, version: int, fail: str, cache_src: bool) -> None:
    """One criterion: addresses (destination cached in M_DST), protocol, then ports or ICMP
    type/code. An L4 load past the end of the packet makes the kernel return 0, exactly as
    packet.parse() then has no ports (ICMP fields) and the filter cannot match."""
    v6 = version == 6
    accept = f"accept{version}"
    for af, slot, off in ((m.dest_address, M_DST, 24 if v6 else 16),
                          (m.source_address, M_SRC, 8 if v6 else 12)):
        if af.is_wildcard:
            continue
        cached = slot == M_DST or cache_src
        if not v6:
            a.op(LD | MEM, slot) if cached else a.op(LD | W | ABS, off)
            _spans(a, [(s.lo, s.hi, s.negated) for s in af.spans], fail)
            continue
        host = af.exact_values()
        if host is not None and len(host) == 1:
            for word in range(4):
                if word == 0 and cached:
                    a.op(LD | MEM, slot)
                else:
                    a.op(LD | W | ABS, off + 4 * word)
                a.jmp(JEQ, (host[0] >> (96 - 32 * word)) & 0xFFFFFFFF, 0, fail)
        elif approx := address_intervals(af, 6):
            a.op(LD | MEM, slot) if cached else a.op(LD | W | ABS, off)
            _spans(a, [(lo, hi, False) for lo, hi in approx], fail)
    needs_ports = not (m.source_port.is_wildcard and m.dest_port.is_wildcard)
    needs_icmp = not (m.icmp_type.is_wildcard and m.icmp_code.is_wildcard)
    if m.protocol.is_wildcard and not needs_ports and not needs_icmp:
        a.ja(accept)
        return
    a.op(LD | B | ABS, 6 if v6 else 9)
    if v6:  # an extension header hides the protocol and ports: userspace walks the chain
        ext, plain = a.new("ext"), a.new("plain")
        for nh in sorted(IPV6_EXTENSIONS):
            a.jmp(JEQ, nh, ext, 0)
        a.ja(plain)
        a.label(ext)
        a.ja(accept)
        a.label(plain)
    if not m.protocol.is_wildcard:
        _spans(a, _vals(m.protocol), fail)
    for needed, allowed in ((needs_ports, PORT_PROTOCOLS), (needs_icmp, ICMP_PROTOCOLS)):
        if needed and not _protocols_within(m.protocol, allowed):
            ok = a.new("p")
            for p in sorted(allowed):
                a.jmp(JEQ, p, ok)
            a.ja(fail)
            a.label(ok)
    l4 = ((needs_ports, W, 16, 0xFFFF, m.source_port, m.dest_port),
          (needs_icmp, H, 8, 0xFF, m.icmp_type, m.icmp_code))
    for needed, size, shift, mask, high, low in l4:
        if not needed:
            continue
        if v6:
            a.op(LD | size | ABS, 40)
        else:
            a.op(LDX | B | MSH, 0)
            a.op(LD | size | IND, 0)
        if not high.is_wildcard and not low.is_wildcard:
            a.op(ST, M_TMP)
        if not high.is_wildcard:
            a.op(ALU | RSH | K, shift)
            _spans(a, _vals(high), fail)
            if not low.is_wildcard:
                a.op(LD | MEM, M_TMP)
        if not low.is_wildcard:
            a.op(ALU | AND | K, mask)
            _spans(a, _vals(low), fail)
    a.ja(accept)
