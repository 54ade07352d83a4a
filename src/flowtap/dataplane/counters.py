"""Counter snapshots: per criterion (:class:`~flowtap.intercept.sink.CriterionCounters`, which
belongs to the intercept interface; the live counters are :mod:`flowtap.dataplane.slab`) and per
capture ring (:class:`KernelStats`)."""

from __future__ import annotations

from dataclasses import dataclass

from flowtap.intercept.sink import CriterionCounters

__all__ = ["CriterionCounters", "KernelStats"]


@dataclass(frozen=True, slots=True)
class KernelStats:
    """PACKET_STATISTICS summed over the capture rings since the dataplane started."""

    packets: int = 0
    drops: int = 0
