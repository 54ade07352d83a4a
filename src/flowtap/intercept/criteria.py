"""Intercept criteria: the typed contract between DTCP (which parses them) and the dataplane
(which matches packets against them).

A criterion is runtime state installed by a mediation device. It never enters a datastore or an
ordinary log line; only the LI audit log may hold it.

Filter semantics (DTCP ``IPFilter``/``PortFilter``/``ProtFilter``/``ICMPFilter`` lists): a value
matches a filter when it falls in at least one positive span (or the filter has no positive span)
and in no negated (``!``) span. An empty filter is the wildcard ``*``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """An inclusive integer range; ``negated`` marks a ``!`` entry."""

    lo: int
    hi: int
    negated: bool = False

    def __reduce__(self) -> tuple[type[Span], tuple[int, int, bool]]:
        # Pickled as constructor arguments: a slotted dataclass's default pickling calls
        # dataclasses.fields() per object, which was most of a capture worker's cost per ADD
        # (criteria travel to the workers pickled). The same for the classes below.
        return Span, (self.lo, self.hi, self.negated)

    def __contains__(self, value: int) -> bool:
        return self.lo <= value <= self.hi


def _spans_match(spans: tuple[Span, ...], value: int) -> bool:
    positive = False
    hit = False
    for span in spans:
        if span.negated:
            if value in span:
                return False
        else:
            positive = True
            hit = hit or value in span
    return hit or not positive


@dataclass(frozen=True, slots=True)
class ValueFilter:
    """Ports, protocol numbers, ICMP type or code. No spans means any value."""

    spans: tuple[Span, ...] = ()

    def __reduce__(self) -> tuple[type[ValueFilter], tuple[tuple[Span, ...]]]:
        return ValueFilter, (self.spans,)

    @property
    def is_wildcard(self) -> bool:
        return not self.spans

    def matches(self, value: int) -> bool:
        return _spans_match(self.spans, value)

    def exact_values(self) -> tuple[int, ...] | None:
        """The finite set of values this filter accepts, when it is only positive single values."""
        if not self.spans or any(s.negated or s.lo != s.hi for s in self.spans):
            return None
        return tuple(s.lo for s in self.spans)


ANY = ValueFilter()


@dataclass(frozen=True, slots=True)
class AddressFilter:
    """An IPv4 or IPv6 address filter; addresses are integers of that family.

    ``version`` is None only for the wildcard, which matches either family.
    """

    version: int | None = None
    spans: tuple[Span, ...] = ()

    def __reduce__(self) -> tuple[type[AddressFilter], tuple[int | None, tuple[Span, ...]]]:
        return AddressFilter, (self.version, self.spans)

    @property
    def is_wildcard(self) -> bool:
        return not self.spans

    def matches(self, version: int, address: int) -> bool:
        if not self.spans:
            return True
        return version == self.version and _spans_match(self.spans, address)

    def exact_values(self) -> tuple[int, ...] | None:
        """Host addresses this filter accepts, when it lists only positive single hosts."""
        if not self.spans or any(s.negated or s.lo != s.hi for s in self.spans):
            return None
        return tuple(s.lo for s in self.spans)


ANY_ADDRESS = AddressFilter()


@dataclass(frozen=True, slots=True)
class ContentDestination:
    """Where copies go: the outer IP/UDP header of every copy (X-JTap-Cdest-*)."""

    cdest_id: str
    dest_address: str
    dest_port: int
    source_address: str
    source_port: int
    ttl: int = 255

    @property
    def version(self) -> int:
        return 6 if ":" in self.dest_address else 4


@dataclass(frozen=True, slots=True)
class Classic:
    """flow-tap copies: the outer IP/UDP header, then the packet (dataplane/ENCAP.md §1)."""

    def __reduce__(self) -> tuple[type[Classic], tuple[()]]:
        return Classic, ()


@dataclass(frozen=True, slots=True)
class Jmirror:
    """Juniper jmirror copies: the outer IP/UDP header, 4 bytes ``V = 0 | intercept ID``
    (30 bits), 4 bytes session ID, then the packet (dataplane/ENCAP.md §1.1, DTCP
    ``X-MD-Intercept-Id``)."""

    intercept_id: int  # 0 .. 2**30 - 1
    session_id: int  # 0 .. 2**32 - 1
    session_given: bool = False  # the request named the session ID (else it is the criterion's)

    def __post_init__(self) -> None:
        if not 0 <= self.intercept_id <= JMIRROR_MAX_INTERCEPT_ID:
            raise ValueError("a jmirror intercept ID has 30 bits")
        if not 0 <= self.session_id <= JMIRROR_MAX_SESSION_ID:
            raise ValueError("a jmirror session ID has 32 bits")

    def __reduce__(self) -> tuple[type[Jmirror], tuple[int, int, bool]]:
        return Jmirror, (self.intercept_id, self.session_id, self.session_given)


@dataclass(frozen=True, slots=True)
class X3:
    """ETSI TS 103 221-2 xCC PDUs (LI-HANDOVER.md §3) over TLS: the criterion's destinations are
    the TLS peers (``ContentDestination.dest_address``/``dest_port``; the source fields and the
    TTL are unused), each PDU carries ``xid``, ``correlation_id`` and ``direction`` and the
    packet from its IP header. An X1 task is one criterion per direction it matches."""

    xid: bytes  # the task's XID, 16 bytes
    correlation_id: int  # 0 .. 2**64 - 1
    direction: int  # X3_TO_TARGET, X3_FROM_TARGET, or X3_UNKNOWN (a task without an address)

    def __post_init__(self) -> None:
        if len(self.xid) != 16:
            raise ValueError("an XID has 16 bytes")
        if not 0 <= self.correlation_id < 2**64:
            raise ValueError("a correlation ID has 64 bits")
        if self.direction not in (X3_UNKNOWN, X3_TO_TARGET, X3_FROM_TARGET):
            raise ValueError("an X3 direction is 1 (unknown), 2 (to the target) or 3 (from it)")

    def __reduce__(self) -> tuple[type[X3], tuple[bytes, int, int]]:
        return X3, (self.xid, self.correlation_id, self.direction)


Delivery = Classic | Jmirror | X3
"""The form a criterion's copies take on the wire: each form is one class, so that new ones
join as classes the dataplane dispatches on, not as flags."""

X3_UNKNOWN = 1  # TS 103 221-2 payload direction: unknown (the task names no address, only ports)
X3_TO_TARGET = 2  # sent to (received by) the target
X3_FROM_TARGET = 3  # sent from the target

CLASSIC = Classic()
JMIRROR_MAX_INTERCEPT_ID = 2**30 - 1
JMIRROR_MAX_SESSION_ID = 2**32 - 1


class Flag(enum.Flag):
    """ADD/DELETE/LIST flags (case-insensitive on the wire)."""

    NONE = 0
    STATIC = enum.auto()
    SEND_ASYNC = enum.auto()
    STATS = enum.auto()
    CRITERIA = enum.auto()
    BOTH = STATS | CRITERIA


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Remaining-lifetime limits; None means not set. STATIC criteria ignore them."""

    idle: int | None = None
    total: int | None = None
    packets: int | None = None
    bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Match:
    """The packet-matching part of a criterion (the dataplane's view)."""

    source_address: AddressFilter = ANY_ADDRESS
    dest_address: AddressFilter = ANY_ADDRESS
    protocol: ValueFilter = ANY
    source_port: ValueFilter = ANY
    dest_port: ValueFilter = ANY
    icmp_type: ValueFilter = ANY
    icmp_code: ValueFilter = ANY
    input_interfaces: tuple[str, ...] = ()
    ip_version: int | None = None

    def __reduce__(self) -> tuple[type[Match], tuple[object, ...]]:
        return Match, (self.source_address, self.dest_address, self.protocol, self.source_port,
                       self.dest_port, self.icmp_type, self.icmp_code, self.input_interfaces,
                       self.ip_version)  # fmt: skip

    @property
    def versions(self) -> frozenset[int]:
        """IP versions this match can select."""
        if self.ip_version is not None:
            return frozenset({self.ip_version})
        fixed = {f.version for f in (self.source_address, self.dest_address) if f.version}
        return frozenset(fixed) if fixed else frozenset({4, 6})


@dataclass(frozen=True, slots=True)
class Criterion:
    """One installed intercept: what to match and where to send copies."""

    criteria_id: int
    csource_id: str
    match: Match
    destinations: tuple[ContentDestination, ...]
    priority: int = 1
    flags: Flag = Flag.NONE
    timeouts: Timeouts = field(default_factory=Timeouts)
    delivery: Delivery = CLASSIC

    @property
    def static(self) -> bool:
        return bool(self.flags & Flag.STATIC)
