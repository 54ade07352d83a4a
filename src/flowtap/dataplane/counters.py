"""Per-criterion counters (written by the capture thread only, read by anyone); their snapshot
type, :class:`~flowtap.intercept.sink.CriterionCounters`, belongs to the intercept interface."""

from __future__ import annotations

from dataclasses import dataclass

from flowtap.intercept.sink import CriterionCounters

__all__ = ["Counter", "CriterionCounters", "KernelStats"]


class Counter:
    """The live, mutable counters of one criterion."""

    __slots__ = ("bytes", "criteria_id", "dropped", "last_packet", "limit_reached", "packets",
                 "sent")

    def __init__(self, criteria_id: int) -> None:
        self.criteria_id = criteria_id
        self.packets = 0
        self.bytes = 0
        self.sent = 0
        self.dropped = 0
        self.last_packet: float | None = None
        self.limit_reached = False

    def snapshot(self) -> CriterionCounters:
        return CriterionCounters(self.packets, self.bytes, self.sent, self.dropped,
                                 self.last_packet, self.limit_reached)


@dataclass(frozen=True, slots=True)
class KernelStats:
    """PACKET_STATISTICS summed over the capture rings since the dataplane started."""

    packets: int = 0
    drops: int = 0
