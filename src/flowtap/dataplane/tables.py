"""What an installed criteria set compiles to: a route per criterion, and per capture interface
an exact match table and the BPF program that pre-filters its ring.

Pure: :class:`~flowtap.dataplane.engine.Dataplane` builds these under its lock and publishes
them (tables before programs, see its module docstring); nothing here touches a socket.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping

from flowtap.dataplane import bpf
from flowtap.dataplane.counters import Counter
from flowtap.dataplane.encap import Outer
from flowtap.dataplane.match import MatchTable, applies
from flowtap.dataplane.ring import Ring
from flowtap.dataplane.sender import Sink
from flowtap.intercept.criteria import Criterion


class Route:
    """What a match table hit means: one criterion's counter, sinks and limits."""

    __slots__ = ("byte_limit", "counter", "criteria_id", "limited", "packet_limit", "sinks")

    def __init__(self, criterion: Criterion, counter: Counter, sinks: tuple[Sink, ...]) -> None:
        self.criteria_id = criterion.criteria_id
        self.counter = counter
        self.sinks = sinks
        t = criterion.timeouts
        self.packet_limit = None if criterion.static or not t.packets else t.packets
        self.byte_limit = None if criterion.static or not t.bytes else t.bytes
        self.limited = self.packet_limit is not None or self.byte_limit is not None


def build_routes(criteria: Mapping[int, Criterion], sinks: Mapping[Outer, Sink],
                 old: Mapping[int, Route]) -> dict[int, Route]:
    """A route per criterion; a criterion installed before keeps its counter."""
    routes: dict[int, Route] = {}
    for cid, c in criteria.items():
        previous = old.get(cid)
        counter = previous.counter if previous is not None else Counter(cid)
        routes[cid] = Route(c, counter, tuple(sinks[Outer.of(cd)] for cd in c.destinations))
    return routes


def build_tables(
    criteria: Mapping[int, Criterion], routes: Mapping[int, Route], outers: Collection[Outer],
    rings: Iterable[Ring], *, inet6: bool, exact_budget: int,
) -> tuple[dict[str, MatchTable[Route]], dict[str, bpf.Filter]]:
    """The match table and BPF program of each ring's interface (by IFL name). Copies the
    dataplane sends itself (``outers``) are excluded, so a tap never captures its own output."""
    excluded = {(o.version, _addr(o.source), o.source_port) for o in outers}
    error_sinks = {(o.version, _addr(o.source)) for o in outers}
    tables: dict[str, MatchTable[Route]] = {}
    programs: dict[str, bpf.Filter] = {}
    for ring in rings:
        name = ring.iface.name
        rules = [(c.match, routes[cid]) for cid, c in criteria.items()
                 if any(applies(c.match, v, name) for v in (4, 6))]
        tables[name] = MatchTable(rules, interface=name, inet6=inet6,
                                  excluded_sources=excluded, error_sinks=error_sinks)
        programs[name] = bpf.compile_filter((m for m, _ in rules), inet6=inet6,
                                            exact_budget=exact_budget)
    return tables, programs


def _addr(text: str) -> int:
    return int(ipaddress.ip_address(text))
