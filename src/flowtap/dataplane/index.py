"""Incremental exact match of flow keys against criteria, for one capture interface. Pure.

:class:`MatchIndex` answers exactly what the reference model (``MatchTable`` in
tests/dataplane/reference_match.py, a table built whole) answers for the same rules ordered by
key, but takes one criterion in or out at a cost that depends on that criterion alone, never on
how many others are installed, so the capture worker can apply a change between two packets.

Each rule is filed (:func:`flowtap.dataplane.prefixes.filing`) under the prefixes of one side
of the packet (destination, else source, else destination ``/0``). Per IP version and side the
index keeps ``{prefix length: {masked address: {key: rule}}}`` and the ascending tuple of the
lengths in use. A lookup does one dict get per length in use on each side (at most 33 per side
for IPv4, 129 for IPv6), merges the buckets it hits (a rule filed under overlapping prefixes
is found once), runs each candidate's exact checks (:class:`~flowtap.dataplane.match.Rule`) and
orders the hits by key. Lookup cost grows with the number of distinct prefix lengths and with
the rules filed under the packet's prefixes, not with the number installed; criteria without a
positive address sit under ``/0`` and so are examined on every memo miss (as ``MatchTable``
examines its residual list).

Results are memoised per flow key as in ``MatchTable``. Every change moves the index to a new
generation and a cached answer is used only if it was computed in the current generation: a
change invalidates the whole memo in O(1), and stale entries are dropped when the memo reaches
:data:`~flowtap.dataplane.match.CACHE_LIMIT` (until then they may keep the payloads of removed
rules alive).

Not thread-safe, on purpose: the capture worker that looks packets up is also the thread that
applies criteria changes (between packets), so there is nothing to lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from flowtap.dataplane.match import CACHE_LIMIT, Rule, applies
from flowtap.dataplane.packet import FlowKey, is_icmp_error
from flowtap.dataplane.prefixes import BITS, DST, Prefix, filing, mask
from flowtap.intercept.criteria import Match

P = TypeVar("P")
SRC_FIELD, DST_FIELD, PROTO_FIELD, SPORT_FIELD = range(4)  # positions in a FlowKey
UDP = 17
TCP = 6

Bucket = dict[int, Rule[P]]  # criteria id -> its compiled rule


class _Side(Generic[P]):
    """The rules filed under one side's (destination or source) prefixes, for one version."""

    __slots__ = ("bits", "levels", "tables")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        # prefix length -> masked address -> bucket; a length is present only while some
        # bucket under it is non-empty, so a lookup never probes a length nobody uses
        self.tables: dict[int, dict[int, Bucket[P]]] = {}
        # (netmask, table) per length in use, ascending: what a lookup walks
        self.levels: tuple[tuple[int, dict[int, Bucket[P]]], ...] = ()

    def file(self, prefix: Prefix, key: int, rule: Rule[P]) -> None:
        table = self.tables.get(prefix.length)
        if table is None:
            table = self.tables[prefix.length] = {}
            self._relevel()
        bucket = table.get(prefix.address)
        if bucket is None:
            bucket = table[prefix.address] = {}
        bucket[key] = rule

    def unfile(self, prefix: Prefix, key: int) -> None:
        table = self.tables[prefix.length]
        bucket = table[prefix.address]
        del bucket[key]
        if not bucket:
            del table[prefix.address]
            if not table:
                del self.tables[prefix.length]
                self._relevel()

    def _relevel(self) -> None:
        # bounded by the number of possible lengths (bits + 1), not by the rules installed
        self.levels = tuple((mask(length, self.bits), self.tables[length])
                            for length in sorted(self.tables))


class _VersionIndex(Generic[P]):
    """The rules of one IP version that apply to the interface."""

    __slots__ = ("_cache", "dst", "error_sinks", "excluded_sources", "excluded_tcp", "filed",
                 "generation", "src", "version")

    def __init__(self, version: int) -> None:
        self.version = version
        self.dst: _Side[P] = _Side(BITS[version])
        self.src: _Side[P] = _Side(BITS[version])
        # key -> where it is filed (a tuple: a third of a frozenset's size)
        self.filed: dict[int, tuple[_Side[P], tuple[Prefix, ...]]] = {}
        self.excluded_sources: frozenset[tuple[int, int]] = frozenset()
        self.error_sinks: frozenset[int] = frozenset()
        self.excluded_tcp: frozenset[tuple[int, int]] = frozenset()
        self.generation = 0
        self._cache: dict[FlowKey, tuple[int, tuple[P, ...]]] = {}

    def add(self, key: int, match: Match, payload: P) -> None:
        side_name, prefix_set = filing(match, self.version)
        side = self.dst if side_name == DST else self.src
        prefixes = tuple(prefix_set)
        rule = Rule(match, payload, key)
        for prefix in prefixes:
            side.file(prefix, key, rule)
        self.filed[key] = (side, prefixes)
        self.generation += 1

    def remove(self, key: int) -> None:
        where = self.filed.pop(key, None)
        if where is None:
            return
        side, prefixes = where
        for prefix in prefixes:
            side.unfile(prefix, key)
        self.generation += 1

    def set_exclusions(self, excluded_sources: frozenset[tuple[int, int]],
                       error_sinks: frozenset[int],
                       excluded_tcp: frozenset[tuple[int, int]] = frozenset()) -> None:
        self.excluded_sources = excluded_sources
        self.error_sinks = error_sinks
        self.excluded_tcp = excluded_tcp
        self.generation += 1

    def lookup(self, flow: FlowKey) -> tuple[P, ...]:
        """Payloads of every rule matching ``flow``, ordered by key."""
        hit = self._cache.get(flow)
        if hit is not None and hit[0] == self.generation:
            return hit[1]
        result = self._lookup(flow)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._cache[flow] = (self.generation, result)
        return result

    def _lookup(self, flow: FlowKey) -> tuple[P, ...]:
        src, dst = flow[SRC_FIELD], flow[DST_FIELD]
        protocol = flow[PROTO_FIELD]
        if protocol == UDP and (src, flow[SPORT_FIELD]) in self.excluded_sources:
            return ()  # one of our own copies coming back in
        if protocol == TCP and (src, flow[SPORT_FIELD]) in self.excluded_tcp:
            return ()  # an X3 destination's segments to us (a criterion on it would feed back)
        if dst in self.error_sinks and is_icmp_error(self.version, flow):
            return ()  # an ICMP error about one of our copies
        found: dict[int, Rule[P]] = {}
        # the two sides' walks are inlined: this is the per-packet path on a memo miss
        for netmask, table in self.dst.levels:
            bucket = table.get(dst & netmask)
            if bucket is not None:
                found.update(bucket)
        for netmask, table in self.src.levels:
            bucket = table.get(src & netmask)
            if bucket is not None:
                found.update(bucket)
        if not found:
            return ()
        if len(found) == 1:  # the usual hit: no merge, no sort
            (rule,) = found.values()
            return (rule.payload,) if rule.matches(flow) else ()
        keys = [key for key, rule in found.items() if rule.matches(flow)]
        if not keys:
            return ()
        keys.sort()
        return tuple([found[key].payload for key in keys])


class MatchIndex(Generic[P]):
    """The criteria that apply to one capture interface, per IP version (``inet6`` enables v6),
    changed one criterion at a time."""

    def __init__(self, interface: str | None, *, inet6: bool) -> None:
        """Args:
            interface: the capture interface's IFL name; rules scoped elsewhere are left out
                (``ge-1/0/0`` means ``ge-1/0/0.0``); None keeps every rule.
            inet6: whether IPv6 packets are tapped at all.
        """
        self.interface = interface
        self._versions: dict[int, _VersionIndex[P]] = {4: _VersionIndex(4)}
        if inet6:
            self._versions[6] = _VersionIndex(6)

    def add(self, key: int, match: Match, payload: P) -> None:
        """Install ``match`` under criteria id ``key``, replacing what ``key`` held before."""
        for version, index in self._versions.items():
            index.remove(key)
            if applies(match, version, self.interface):
                index.add(key, match, payload)

    def remove(self, key: int) -> None:
        """Take criteria id ``key`` out; an unknown key is left alone."""
        for index in self._versions.values():
            index.remove(key)

    def set_exclusions(self, excluded_sources: Iterable[tuple[int, int, int]],
                       error_sinks: Iterable[tuple[int, int]],
                       excluded_tcp: Iterable[tuple[int, int, int]] = ()) -> None:
        """Replace what is never matched: ``(version, address, udp_port)`` of our own copies'
        outer source, ``(version, address)`` where ICMP errors about our copies would go, and
        ``(version, address, tcp_port)`` of X3 destinations (their segments to us would feed a
        criterion matching them back)."""
        excluded = set(excluded_sources)
        sinks = set(error_sinks)
        tcp = set(excluded_tcp)
        for version, index in self._versions.items():
            index.set_exclusions(frozenset((a, p) for v, a, p in excluded if v == version),
                                 frozenset(a for v, a in sinks if v == version),
                                 frozenset((a, p) for v, a, p in tcp if v == version))

    def lookup(self, version: int, flow: FlowKey) -> tuple[P, ...]:
        """Payloads of every rule matching ``flow`` (a packet of ``version``), ordered by key."""
        index = self._versions.get(version)
        return index.lookup(flow) if index is not None else ()

    def __len__(self) -> int:
        """Rules held, counted once per IP version they can select (as ``MatchTable`` counts)."""
        return sum(len(index.filed) for index in self._versions.values())
