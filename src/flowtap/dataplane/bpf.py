"""The classic BPF programs a capture socket may carry besides the eBPF pre-filter. Pure.

A ring is opened with :func:`drop_all` attached before it is bound, so there is never an
unfiltered window; the eBPF pre-filter (:mod:`flowtap.dataplane.prefilter`) then replaces it.
Where eBPF cannot be loaded (an unprivileged or restricted kernel), :func:`broad_filter` is the
fallback: every IPv4 (and IPv6) packet an exact match could want reaches the capture workers,
which then do all the selecting (forwarding pays the ring copy for every packet).

Both programs reject outgoing packets and packets for other hosts, select the family from
``skb->protocol`` (the socket is bound to ETH_P_ALL, see DATAPLANE.md §3.5), reject IPv4
non-first fragments and check the version nibble and header lengths. The instructions and their
assembler are :mod:`flowtap.dataplane.bpf_asm`.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowtap.dataplane.bpf_asm import (
    ABS,
    ALU,
    AND,
    JEQ,
    JGE,
    JGT,
    JMP,
    JSET,
    LD,
    LEN,
    MEM,
    MISC,
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
from flowtap.intercept.criteria import Match

ACCEPT = 0x40000  # snap length returned for accepted packets (whole packet)
M_TMP = 0  # scratch slot


@dataclass(frozen=True, slots=True)
class Filter:
    """A program for SO_ATTACH_FILTER and the strength that was used."""

    insns: tuple[Insn, ...]
    kind: str  # "drop" or "broad"

    def __len__(self) -> int:
        return len(self.insns)


def drop_all() -> Filter:
    return Filter(((RET | K, 0, 0, 0),), "drop")


def broad_filter(inet6: bool) -> Filter:
    """Accept every IPv4 (and IPv6) packet the exact match could want."""
    any_match = [Match()]
    return Filter(_program({4: any_match, 6: any_match if inet6 else []}), "broad")


def _program(fam: dict[int, list[Match]]) -> tuple[Insn, ...]:
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
            a.ja(f"accept{version}")
    if fam[4]:
        # the header checks of packet.parse(), so that malformed packets stay in the kernel
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
