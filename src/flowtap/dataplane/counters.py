"""Per-criterion counters (written by the capture thread only, read by anyone)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CriterionCounters:
    """A snapshot for DTCP LIST statistics and the registry's timeouts.

    ``packets``/``bytes`` count matched packets (before the copy limit, whole original packet
    length); ``sent`` counts copies handed to the kernel (one per destination), ``dropped``
    copies that could not be (or could not be built: oversize, truncated in the ring).
    ``last_packet`` is the ``time.monotonic()`` of the last matched packet (idle timeout),
    None before the first. ``limit_reached`` turns True when a packet or byte limit stopped
    the copies.
    """

    packets: int = 0
    bytes: int = 0
    sent: int = 0
    dropped: int = 0
    last_packet: float | None = None
    limit_reached: bool = False


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
