"""Address intervals for the BPF pre-filter: the ``coarse`` strength of
:mod:`flowtap.dataplane.bpf` and the IPv6 ranges of its ``exact`` strength. Pure.

Addresses are compared 32 bits at a time (IPv6 on their top 32 bits), so a filter's positive
spans become 32-bit intervals; merged and, if there are too many, coarsened (the program then
accepts a few more addresses: userspace re-checks every packet), they are searched by a balanced
binary tree of forward jumps.
"""

from __future__ import annotations

from flowtap.dataplane.bpf_asm import JGE, Asm
from flowtap.intercept.criteria import AddressFilter


def address_intervals(af: AddressFilter, version: int) -> list[tuple[int, int]]:
    """Positive spans of an address filter as 32-bit intervals (IPv6: top 32 bits)."""
    shift = 96 if version == 6 else 0
    return [(s.lo >> shift, s.hi >> shift) for s in af.spans if not s.negated]


def merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def coarsen(intervals: list[tuple[int, int]],
             limit: int | None) -> list[tuple[int, int]]:
    """At most ``limit`` intervals covering ``intervals``: the smallest gaps are filled (the
    program then accepts a few more addresses; userspace re-checks every packet)."""
    if limit is None or len(intervals) <= limit:
        return intervals
    gaps = sorted(range(len(intervals) - 1),
                  key=lambda i: intervals[i + 1][0] - intervals[i][1])
    fill = set(gaps[:len(intervals) - limit])
    out: list[tuple[int, int]] = []
    for i, (lo, hi) in enumerate(intervals):
        if i - 1 in fill:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def search_tree(a: Asm, intervals: list[tuple[int, int]], hit: str, miss: str) -> None:
    """Binary search of A over disjoint sorted intervals: ``ja hit`` or ``ja miss``."""
    starts: list[int] = []
    hits: list[bool] = []
    pos = 0
    for lo, hi in intervals:
        if lo > pos:
            starts.append(pos)
            hits.append(False)
        starts.append(lo)
        hits.append(True)
        pos = hi + 1
    if pos <= 0xFFFFFFFF:
        starts.append(pos)
        hits.append(False)
    sizes: dict[tuple[int, int], int] = {}

    def size(lo: int, hi: int) -> int:
        if hi - lo == 1:
            return 1
        if (lo, hi) not in sizes:
            mid = (lo + hi) // 2
            left = size(lo, mid)
            sizes[(lo, hi)] = 1 + (left > 255) + left + size(mid, hi)
        return sizes[(lo, hi)]

    def emit(lo: int, hi: int) -> None:
        if hi - lo == 1:
            a.ja(hit if hits[lo] else miss)
            return
        mid = (lo + hi) // 2
        right = a.new("r")
        if size(lo, mid) > 255:
            a.jmp(JGE, starts[mid], 0, 1)
            a.ja(right)
        else:
            a.jmp(JGE, starts[mid], right, 0)
        emit(lo, mid)
        a.label(right)
        emit(mid, hi)

    emit(0, len(starts))
