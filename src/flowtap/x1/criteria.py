"""An X1 task as intercept criteria: its targets as matches, its destinations as X3 TLS peers,
its XID and correlation ID as the X3 delivery of each criterion (LI-HANDOVER.md §4).

How targets combine (issue 18 item 6): addresses OR, ports OR, addresses AND ports.
- An address (``ipv4Address``, ``ipv4Cidr``, ...) taps both directions. A criterion matches one
  way only, so each IP version of the task's addresses gives two matches: *from the target*
  (source address in the task's addresses, X3 direction 3) and *to the target* (destination
  address in them, direction 2). Several addresses of one version are one filter of several
  spans; IPv4 and IPv6 addresses are separate criteria (a filter has one family).
- A port target (``tcpPort N``, ``udpPortRange A-B``) is its protocol (6 or 17) with the port
  as source *or* destination port: again two matches, one per side. Several ports of a
  protocol are one filter of several spans; TCP and UDP are separate criteria.
- Addresses and ports: every address match is combined with every port match.
- Ports alone: nothing says which side of a packet is the target, so their PDUs carry
  direction 1, "unknown".

One packet, one PDU. The criteria of a task are made disjoint: the *to the target* match
excludes packets whose source is also a target address (a packet from one target address to
another is sent once, as *from the target*), and the destination-port match excludes packets
whose source port is also a listed port. So a packet matching the task matches exactly one of
its criteria and is sent once, with one direction; without the exclusions a packet from A to
A, or from port 80 to port 80, would match two criteria and be delivered twice, which the
mediation function would count as two packets of the target. (Two *tasks* matching one packet
still give one PDU each: each carries its own XID.)

A task is at most 2 families x 2 directions x 2 protocols x 2 port sides = 16 criteria, owned by
``owner(admf)``: an X1 owner is "x1 " and the ADMF's name, which no DTCP control source can
equal (a Csource-ID has no whitespace, :func:`flowtap.dtcp.filters.parse_identifier`), so DTCP
LIST and DELETE of the same user never see a task's criteria, and X1 criteria count against
``services flow-tap limits`` per ADMF like a DTCP source's.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from flowtap.intercept.criteria import (
    X3,
    X3_FROM_TARGET,
    X3_TO_TARGET,
    X3_UNKNOWN,
    AddressFilter,
    ContentDestination,
    Criterion,
    Match,
    Span,
    ValueFilter,
)
from flowtap.x1.codes import X1Error
from flowtap.x1.model import DestinationDetails, TaskDetails
from flowtap.x1.targets import AddressTarget, CidrTarget, PortTarget, Target

OWNER_PREFIX: Final = "x1 "
PROTOCOLS: Final = {"tcp": 6, "udp": 17}
MAX_CORRELATION_ID: Final = 2**64 - 1  # 8 bytes in every PDU


def owner(admf: str) -> str:
    """The registry's control source for the criteria of ``admf``'s tasks."""
    return OWNER_PREFIX + admf


@dataclass(frozen=True, slots=True)
class Tap:
    """One criterion of a task, before it has an ID: what it matches and the X3 direction of
    the packets it matches."""

    match: Match
    direction: int


def correlation_id(task: TaskDetails, failure: int) -> int:
    """The task's ``correlationID`` when given (it must fit the PDU's 8 bytes, else
    ``failure``: 3000 or 3001), else one derived from the XID: stable across ModifyTask and
    restarts, and never 0, which one X2/X3 implementation refuses."""
    if task.correlation_id is not None:
        if task.correlation_id > MAX_CORRELATION_ID:
            raise X1Error(failure, "correlationID does not fit the 8 bytes of an X3 PDU")
        return task.correlation_id
    return derived_correlation_id(task.xid)


def derived_correlation_id(xid: uuid.UUID) -> int:
    digest = int.from_bytes(hashlib.sha256(xid.bytes).digest()[:8], "big")
    return digest or 1


def taps(targets: Sequence[Target]) -> list[Tap]:
    """The disjoint matches of a task's targets (see the module's docstring)."""
    addresses: dict[int, list[Span]] = {}
    ports: dict[int, list[Span]] = {}
    for target in targets:
        if isinstance(target, AddressTarget):
            host = int(target.address)
            addresses.setdefault(target.address.version, []).append(Span(host, host))
        elif isinstance(target, CidrTarget):
            net = target.network
            addresses.setdefault(net.version, []).append(
                Span(int(net.network_address), int(net.broadcast_address)))
        elif isinstance(target, PortTarget):
            ports.setdefault(PROTOCOLS[target.transport], []).append(
                Span(target.port, target.port))
        else:
            ports.setdefault(PROTOCOLS[target.transport], []).append(
                Span(target.start, target.end))
    address_sides: list[tuple[dict[str, object], int]] = []
    for version, spans in sorted(addresses.items()):
        listed = AddressFilter(version, tuple(spans))
        others = AddressFilter(version, _negated(spans))
        address_sides.append(({"source_address": listed}, X3_FROM_TARGET))
        address_sides.append(({"dest_address": listed, "source_address": others}, X3_TO_TARGET))
    if not address_sides:
        address_sides.append(({}, X3_UNKNOWN))
    port_sides: list[dict[str, object]] = []
    for protocol, spans in sorted(ports.items()):
        number = ValueFilter((Span(protocol, protocol),))
        listed_ports = ValueFilter(tuple(spans))
        port_sides.append({"protocol": number, "source_port": listed_ports})
        port_sides.append({"protocol": number, "dest_port": listed_ports,
                           "source_port": ValueFilter(_negated(spans))})  # fmt: skip
    if not port_sides:
        port_sides.append({})
    return [Tap(Match(**address, **port), direction)  # type: ignore[arg-type]
            for address, direction in address_sides for port in port_sides]  # fmt: skip


def _negated(spans: Sequence[Span]) -> tuple[Span, ...]:
    return tuple(Span(s.lo, s.hi, negated=True) for s in spans)


def content_destinations(destinations: Sequence[DestinationDetails],
                         ) -> tuple[ContentDestination, ...]:  # fmt: skip
    """The X3 TLS peers of a task's destinations (``intercept.criteria.X3``: the DID as the
    destination's ID, the source fields unused)."""
    return tuple(ContentDestination(str(d.did), str(d.address.address), d.address.port, "", 0)
                 for d in destinations)  # fmt: skip


def criterion(tap: Tap, criteria_id: int, admf: str, task: TaskDetails, correlation: int,
              destinations: tuple[ContentDestination, ...]) -> Criterion:  # fmt: skip
    """The criterion of one of ``task``'s taps, numbered ``criteria_id`` (the registry's next
    ID of ``owner(admf)``)."""
    return Criterion(criteria_id, owner(admf), tap.match, destinations,
                     delivery=X3(task.xid.bytes, correlation, tap.direction))  # fmt: skip


def render_targets(targets: Sequence[Target]) -> str:
    """The targets for the LI audit log (the only place they may be written)."""
    parts = []
    for target in targets:
        if isinstance(target, AddressTarget):
            parts.append(f"{target.kind} {target.address}")
        elif isinstance(target, CidrTarget):
            parts.append(f"{target.kind} {target.network}")
        elif isinstance(target, PortTarget):
            parts.append(f"{target.kind} {target.port}")
        else:
            parts.append(f"{target.kind} {target.start}-{target.end}")
    return "; ".join(parts)
