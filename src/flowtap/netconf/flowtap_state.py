"""``/ftsvc:flow-tap-state`` for ``<get>``: the flow-tap service status (Junos ``show services
flow-tap``), totals only, for holders of ``flow-tap`` (``flow-tap-control`` implies it); nothing
at all for anyone else (LI-1: not even the number of intercepts may leak). A mediation device
(``flow-tap-operation`` alone) gets nothing either: these are all agencies' totals, and its own
criteria are what its DTCP ``LIST`` shows.

The figures come from a :class:`FlowTapStatus` (the flow-tap hook is one), read at request time;
this module knows nothing of the dataplane behind it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config import access
from flowtap.config.xmlutil import element

SERVICES_NS = "urn:flowtap:yang:services"
STATE_PATH = "/ftsvc:flow-tap-state"


class CaptureStatus(Protocol):
    @property
    def service(self) -> str: ...  # the service unit, sp-F/P/N.U or vt-F/P/N.U
    @property
    def devices(self) -> tuple[str, ...]: ...  # the Linux devices captured


class CopyCounts(Protocol):
    @property
    def packets(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    @property
    def sent(self) -> int: ...
    @property
    def dropped(self) -> int: ...


class KernelCounts(Protocol):
    @property
    def packets(self) -> int: ...
    @property
    def drops(self) -> int: ...


class Counting(Protocol):
    def counters(self) -> Mapping[int, CopyCounts]: ...


class FlowTapStatus(Protocol):
    """What flow-tap-state reports, as the flow-tap service hook exposes it."""

    @property
    def plan(self) -> CaptureStatus | None: ...  # None: flow-tap is not running
    @property
    def dataplane(self) -> Counting | None: ...  # None: flow-tap is not running
    @property
    def degraded(self) -> tuple[str, ...]: ...
    def kernel_stats(self) -> KernelCounts: ...


def provider(
    flow_tap: FlowTapStatus, criteria: Callable[[], int], sessions: Callable[[], int]
) -> Callable[[Principal], list[etree._Element]]:
    """A NETCONF state provider reading the live components at request time."""

    def state(principal: Principal) -> list[etree._Element]:
        if not access.may_read(principal, STATE_PATH):
            return []
        n = f"{{{SERVICES_NS}}}"
        root = element(f"{n}flow-tap-state", SERVICES_NS)
        plan = flow_tap.plan
        dataplane = flow_tap.dataplane
        degraded = flow_tap.degraded
        status = "stopped" if plan is None else "degraded" if degraded else "running"
        etree.SubElement(root, f"{n}status").text = status
        for reason in degraded:
            etree.SubElement(root, f"{n}degraded-reason").text = reason
        if plan is not None:
            etree.SubElement(root, f"{n}interface").text = plan.service
            for device in plan.devices:
                etree.SubElement(root, f"{n}capture-device").text = device
        totals = [0, 0, 0, 0]
        if dataplane is not None:
            for c in dataplane.counters().values():
                totals[0] += c.packets
                totals[1] += c.bytes
                totals[2] += c.sent
                totals[3] += c.dropped
        kernel = flow_tap.kernel_stats() if dataplane is not None else None
        values = (
            ("dtcp-sessions", sessions()),
            ("criteria", criteria()),
            ("matched-packets", totals[0]),
            ("matched-bytes", totals[1]),
            ("sent-copies", totals[2]),
            ("dropped-copies", totals[3]),
            ("kernel-packets", kernel.packets if kernel else 0),
            ("kernel-drops", kernel.drops if kernel else 0),
        )
        for name, value in values:
            etree.SubElement(root, f"{n}{name}").text = str(value)
        return [root]

    return state
