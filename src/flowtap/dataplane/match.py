"""Exact userspace match of one criterion: its compiled field checks (:class:`Rule`), which IP
versions and capture interfaces it applies to (:func:`applies`). Pure. The index that finds the
rules a packet may match is :mod:`flowtap.dataplane.index`.

Matching rules (documented in dataplane/ENCAP.md): a non-wildcard port filter needs a packet
that has ports (TCP, UDP, SCTP); a non-wildcard ICMP type/code filter needs ICMP or ICMPv6.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from flowtap.dataplane.packet import FlowKey
from flowtap.intercept.criteria import Match, Span, ValueFilter

P = TypeVar("P")
Check = Callable[[int], bool]

EXACT_LIMIT = 256  # hosts in one filter above which the interval index is used instead
CACHE_LIMIT = 1 << 16
SRC, DST, PROTO, SPORT, DPORT, ITYPE, ICODE = range(7)


def normalize_interface(name: str) -> str:
    """Junos IFL name with its unit: ``ge-1/3/5`` means ``ge-1/3/5.0``."""
    return name if "." in name else f"{name}.0"


def _spans_check(spans: Sequence[Span], need_value: bool) -> Check | None:
    if not spans:
        return None
    pos = tuple((s.lo, s.hi) for s in spans if not s.negated)
    neg = tuple((s.lo, s.hi) for s in spans if s.negated)
    if not neg and all(lo == hi for lo, hi in pos) and len(pos) <= EXACT_LIMIT:
        return frozenset(lo for lo, _ in pos).__contains__

    def check(v: int) -> bool:
        if need_value and v < 0:
            return False
        for lo, hi in neg:
            if lo <= v <= hi:
                return False
        if not pos:
            return True
        return any(lo <= v <= hi for lo, hi in pos)

    return check


def _value_check(f: ValueFilter, need_value: bool = True) -> Check | None:
    return _spans_check(f.spans, need_value)


class Rule(Generic[P]):
    """One compiled criterion for one IP version."""

    __slots__ = ("checks", "order", "payload")

    def __init__(self, match: Match, payload: P, order: int) -> None:
        self.payload = payload
        self.order = order
        checks: list[tuple[int, Check]] = []
        for index, vf in ((PROTO, match.protocol), (SPORT, match.source_port),
                          (DPORT, match.dest_port), (ITYPE, match.icmp_type),
                          (ICODE, match.icmp_code)):
            c = _value_check(vf)
            if c is not None:
                checks.append((index, c))
        for index, af in ((SRC, match.source_address), (DST, match.dest_address)):
            c = _spans_check(af.spans, False)
            if c is not None:
                checks.append((index, c))
        self.checks = tuple(checks)

    def matches(self, key: FlowKey) -> bool:
        for index, check in self.checks:  # noqa: SIM110 - cheaper than all() on the hot path
            if not check(key[index]):
                return False
        return True


def applies(match: Match, version: int, interface: str | None) -> bool:
    """Whether a rule can select packets of ``version`` arriving on IFL ``interface``."""
    if match.ip_version is not None and match.ip_version != version:
        return False
    for af in (match.source_address, match.dest_address):
        if not af.is_wildcard and af.version != version:
            return False
    if match.input_interfaces and interface is not None:
        return normalize_interface(interface) in {
            normalize_interface(i) for i in match.input_interfaces
        }
    return True
