"""Where a criterion is filed for lookup: the address prefixes that can select its packets. Pure.

Both the kernel pre-filter (:mod:`flowtap.dataplane.prefilter`, LPM tries) and the userspace
match index (:mod:`flowtap.dataplane.index`, a dict per prefix length) file a criterion under
the same keys, so that adding or removing one criterion touches a number of entries that depends
on that criterion alone, never on how many others are installed:

- under its destination address's positive spans, when it has any;
- else under its source address's positive spans;
- else under ``/0`` on the destination side (it may select any packet of the family).

A span is cut into the fewest prefixes that cover it exactly (at most ``2 * bits - 2``).
Negated spans are not filed: filing over-approximates and the exact check of the rule, which
both consult after a hit, rejects what a ``!`` excludes.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowtap.intercept.criteria import AddressFilter, Match

BITS = {4: 32, 6: 128}
DST, SRC = "dst", "src"


@dataclass(frozen=True, slots=True, order=True)
class Prefix:
    """``length`` leading bits of ``address`` (the rest are zero)."""

    address: int
    length: int


def span_prefixes(lo: int, hi: int, bits: int) -> list[Prefix]:
    """The fewest prefixes whose union is exactly ``lo..hi`` (inclusive)."""
    if not 0 <= lo <= hi < 1 << bits:
        raise ValueError("span outside the address family")
    out: list[Prefix] = []
    while lo <= hi:
        # the largest aligned block starting at lo that does not pass hi
        size = lo & -lo if lo else 1 << bits
        while size > hi - lo + 1:
            size >>= 1
        out.append(Prefix(lo, bits - size.bit_length() + 1))
        lo += size
    return out


def _positive(af: AddressFilter, version: int) -> list[tuple[int, int]]:
    if af.is_wildcard or af.version != version:
        return []
    return [(s.lo, s.hi) for s in af.spans if not s.negated]


def filing(match: Match, version: int) -> tuple[str, frozenset[Prefix]]:
    """``(side, prefixes)``: the side (:data:`DST` or :data:`SRC`) and prefixes ``match`` is
    filed under for packets of ``version``. The caller checks that the match applies to that
    version at all (:func:`flowtap.dataplane.match.applies`)."""
    bits = BITS[version]
    for side, af in ((DST, match.dest_address), (SRC, match.source_address)):
        spans = _positive(af, version)
        if spans:
            return side, frozenset(p for lo, hi in spans for p in span_prefixes(lo, hi, bits))
    return DST, frozenset({Prefix(0, 0)})


def mask(length: int, bits: int) -> int:
    """The netmask of a prefix length as an integer of ``bits`` bits."""
    return ((1 << length) - 1) << (bits - length)
