"""Where a capture worker's copies go: content destination sockets, and X3 links.

A content destination is one UDP socket (the appliance's, received over the control channel)
with a *plain* sink for classic copies and, per header size, a *framed* sink for copies with a
header in front (jmirror) sharing that socket; X3 destinations are TLS links
(:mod:`flowtap.dataplane.x3.links`). The packet walk queues copies into them through each
route's appends; :meth:`Outputs.flush` sends what a ring block queued before the block goes
back to the kernel (the copies point into it).
"""

from __future__ import annotations

import ipaddress
import socket

from flowtap.dataplane import control
from flowtap.dataplane.encap import Outer
from flowtap.dataplane.route import Route
from flowtap.dataplane.sender import Sink
from flowtap.dataplane.x3.links import DropEvent, StateEvent, X3Links

# (version, address, port) of excluded sources; (version, address) of ICMP error sinks
Exclusions = tuple[list[tuple[int, int, int]], list[tuple[int, int]], list[tuple[int, int, int]]]


class Outputs:
    def __init__(self, on_x3_state: StateEvent, on_x3_dropped: DropEvent) -> None:
        self.sinks: dict[Outer, Sink] = {}
        # the same sockets' framed sinks, for criteria whose copies carry a header (jmirror)
        self.framed: dict[tuple[Outer, int], Sink] = {}
        self.x3 = X3Links(on_x3_state, on_x3_dropped)  # X3 outboxes, TLS links, relays

    def add_sink(self, outer: Outer, fd: int) -> None:
        family = socket.AF_INET6 if outer.version == 6 else socket.AF_INET
        self.sinks[outer] = Sink(outer, socket.socket(family, socket.SOCK_DGRAM, fileno=fd))

    def remove_sink(self, outer: Outer) -> None:
        gone = self.sinks.pop(outer, None)
        if gone is not None:
            gone.close()
        for key in [k for k in self.framed if k[0] == outer]:
            del self.framed[key]  # its socket was the plain sink's, just closed

    def route(self, up: control.Upsert) -> tuple[Route, bool]:
        """The route of ``up`` with its copies' way out, and whether a new X3 destination
        came with it (the exclusions then change)."""
        if up.x3 is not None:
            links = len(self.x3.outboxes)
            route = Route(up, (), self.x3.install(up.criteria_id, up.x3))
            return route, len(self.x3.outboxes) != links
        if up.shim:
            return Route(up, tuple(self._framed(o, len(up.shim)) for o in up.outers)), False
        return Route(up, tuple(self.sinks[o] for o in up.outers)), False

    def _framed(self, outer: Outer, header_size: int) -> Sink:
        """The framed sink of ``outer``'s socket for headers of ``header_size`` bytes."""
        sink = self.framed.get((outer, header_size))
        if sink is None:
            sink = Sink(outer, self.sinks[outer].sock, header_size=header_size)
            self.framed[outer, header_size] = sink
        return sink

    def flush(self) -> list[object]:
        """Send every queued copy; the owners of those that could not be sent."""
        failed: list[object] = []
        for s in self.sinks.values():
            if s.addresses:
                failed += s.flush()
        if self.framed:
            for s in self.framed.values():
                if s.addresses:
                    failed += s.flush()
        if self.x3.active:
            failed += self.x3.flush()
        return failed

    def exclusions(self) -> Exclusions:
        """What the match indexes never match: our own copies (and ICMP errors about them), and
        X3 destinations' segments to us."""
        excluded = [(o.version, _address(o.source), o.source_port) for o in self.sinks]
        error_sinks = [(o.version, _address(o.source)) for o in self.sinks]
        return excluded, error_sinks, self.x3.exclusions()


def _address(text: str) -> int:
    return int(ipaddress.ip_address(text))
