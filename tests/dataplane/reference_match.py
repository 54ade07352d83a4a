"""The reference model of exact matching: a table built whole from a rule list, as the
dataplane used to build it on every change. The running dataplane uses the incremental
:class:`flowtap.dataplane.index.MatchIndex`; tests check it (and the kernel pre-filter) against
this model, whose semantics are those dataplane/ENCAP.md documents.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

from flowtap.dataplane.match import CACHE_LIMIT, EXACT_LIMIT, Rule, applies
from flowtap.dataplane.packet import FlowKey, is_icmp_error
from flowtap.intercept.criteria import AddressFilter, Match

P = TypeVar("P")
SRC, DST, PROTO, SPORT, DPORT, ITYPE, ICODE = range(7)


class _Intervals(Generic[P]):
    """Maps a value to the rules whose positive spans contain it (bisect on boundaries)."""

    __slots__ = ("buckets", "starts")

    def __init__(self, items: Sequence[tuple[Rule[P], Sequence[tuple[int, int]]]]) -> None:
        points = sorted({p for _, spans in items for lo, hi in spans for p in (lo, hi + 1)})
        self.starts = points
        buckets: list[list[Rule[P]]] = [[] for _ in points]
        for rule, spans in items:
            for lo, hi in spans:
                for i in range(bisect_right(points, lo) - 1, bisect_right(points, hi)):
                    b = buckets[i]
                    if not b or b[-1] is not rule:
                        b.append(rule)
        self.buckets = tuple(tuple(b) for b in buckets)

    def get(self, value: int) -> tuple[Rule[P], ...]:
        i = bisect_right(self.starts, value) - 1
        return self.buckets[i] if i >= 0 else ()


def _positive(af: AddressFilter) -> tuple[tuple[int, int], ...]:
    return tuple((s.lo, s.hi) for s in af.spans if not s.negated)


class VersionTable(Generic[P]):
    """All rules of one IP version."""

    def __init__(self, rules: Sequence[tuple[Match, P]], version: int,
                 excluded_sources: frozenset[tuple[int, int]],
                 error_sinks: frozenset[int]) -> None:
        self.version = version
        self.excluded_sources = excluded_sources
        self.error_sinks = error_sinks
        self.dst_exact: dict[int, list[Rule[P]]] = {}
        self.src_exact: dict[int, list[Rule[P]]] = {}
        dst_ranges: list[tuple[Rule[P], Sequence[tuple[int, int]]]] = []
        src_ranges: list[tuple[Rule[P], Sequence[tuple[int, int]]]] = []
        rest: list[Rule[P]] = []
        for order, (match, payload) in enumerate(rules):
            rule = Rule(match, payload, order)
            dst_hosts = match.dest_address.exact_values()
            src_hosts = match.source_address.exact_values()
            if dst_hosts is not None and len(dst_hosts) <= EXACT_LIMIT:
                for a in set(dst_hosts):
                    self.dst_exact.setdefault(a, []).append(rule)
            elif src_hosts is not None and len(src_hosts) <= EXACT_LIMIT:
                for a in set(src_hosts):
                    self.src_exact.setdefault(a, []).append(rule)
            elif spans := _positive(match.dest_address):
                dst_ranges.append((rule, spans))
            elif spans := _positive(match.source_address):
                src_ranges.append((rule, spans))
            else:
                rest.append(rule)
        self.dst_ranges = _Intervals(dst_ranges) if dst_ranges else None
        self.src_ranges = _Intervals(src_ranges) if src_ranges else None
        self.rest = tuple(rest)
        self.size = len(rules)
        self._cache: dict[FlowKey, tuple[P, ...]] = {}

    def lookup(self, key: FlowKey) -> tuple[P, ...]:
        """Payloads of every rule matching ``key``, in installation order."""
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._lookup(key)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result

    def _lookup(self, key: FlowKey) -> tuple[P, ...]:
        if (key[SRC], key[SPORT]) in self.excluded_sources and key[PROTO] == 17:
            return ()  # one of our own copies coming back in
        if key[DST] in self.error_sinks and is_icmp_error(self.version, key):
            return ()  # an ICMP error about one of our copies
        cands: list[Rule[P]] = []
        if (x := self.dst_exact.get(key[DST])) is not None:
            cands.extend(x)
        if (x := self.src_exact.get(key[SRC])) is not None:
            cands.extend(x)
        if self.dst_ranges is not None:
            cands.extend(self.dst_ranges.get(key[DST]))
        if self.src_ranges is not None:
            cands.extend(self.src_ranges.get(key[SRC]))
        cands.extend(self.rest)
        hits = [r for r in cands if r.matches(key)]
        if len(hits) > 1:
            hits.sort(key=lambda r: r.order)
        return tuple(r.payload for r in hits)


class MatchTable(Generic[P]):
    """The rules that apply to one capture interface, per IP version (``inet6`` enables v6)."""

    def __init__(self, rules: Iterable[tuple[Match, P]], *, interface: str | None = None,
                 inet6: bool = False,
                 excluded_sources: Iterable[tuple[int, int, int]] = (),
                 error_sinks: Iterable[tuple[int, int]] = ()) -> None:
        """Args:
            rules: ``(match, payload)``; payloads come back from :meth:`lookup`.
            interface: the capture interface's IFL name; rules scoped elsewhere are left out.
            inet6: whether IPv6 packets are tapped at all.
            excluded_sources: ``(version, address, udp_port)`` of our own copies' outer source.
            error_sinks: ``(version, address)`` where ICMP errors about our copies would go.
        """
        rules = list(rules)
        excl = set(excluded_sources)
        sinks = set(error_sinks)
        self.v4: VersionTable[P] = VersionTable(
            [r for r in rules if applies(r[0], 4, interface)], 4,
            frozenset((a, p) for v, a, p in excl if v == 4),
            frozenset(a for v, a in sinks if v == 4))
        self.v6: VersionTable[P] | None = None
        if inet6:
            self.v6 = VersionTable(
                [r for r in rules if applies(r[0], 6, interface)], 6,
                frozenset((a, p) for v, a, p in excl if v == 6),
                frozenset(a for v, a in sinks if v == 6))

    def lookup(self, version: int, key: FlowKey) -> tuple[P, ...]:
        if version == 4:
            return self.v4.lookup(key)
        if self.v6 is not None:
            return self.v6.lookup(key)
        return ()

    def __len__(self) -> int:
        return self.v4.size + (self.v6.size if self.v6 is not None else 0)
