"""Statistics of criteria (DTCP LIST, draft §5.11): remaining timeouts, matching counters from
the dataplane, refreshes and the average bandwidth, as protocol-neutral figures
(:class:`CriterionStats`); each tasking protocol renders them (``flowtap.dtcp.replies``).

REMAINING-IDLE counts from the last matching packet (or the ADD/REFRESH that set the idle
timeout); REMAINING-PACKETS/-BYTES from the dataplane's counters against the absolute limits
the registry published. AVERAGE-BANDWIDTH is bits per second since the newest sample at least
10 s old, samples being taken at the ADD and at each LIST with Stats (so the first LIST shows
the average since the ADD): an approximation, which Junos tells clients to ignore for flow-tap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from flowtap.intercept.criteria import Timeouts
from flowtap.intercept.sink import CriterionCounters

if TYPE_CHECKING:
    from flowtap.intercept.table import Entry

BANDWIDTH_WINDOW = 10.0  # seconds
MAX_SAMPLES = 64


@dataclass(frozen=True, slots=True)
class CriterionStats:
    """What the registry knows about one criterion at one instant (a consistent snapshot)."""

    last_refresh: datetime
    """Time of the last REFRESH, or of the ADD if there was none (Junos LAST-REFRESH)."""
    remaining: Timeouts = field(default_factory=Timeouts)
    average_bandwidth: int = 0
    """Bits per second over the last 10 seconds."""
    matching_packets: int = 0
    matching_bytes: int = 0
    num_refresh: int = 0


def statistics(
    entries: Sequence[Entry], counters: Mapping[int, CriterionCounters], now: float
) -> list[CriterionStats]:
    """The figures of ``entries`` (in order); takes a bandwidth sample of each."""
    rows = []
    for e in entries:
        c = counters.get(e.key)
        packets, count_bytes = (c.packets, c.bytes) if c is not None else (0, 0)
        last_packet = c.last_packet if c is not None else None
        rows.append(CriterionStats(
            last_refresh=e.last_refresh,
            remaining=remaining(e, now, packets, count_bytes, last_packet),
            average_bandwidth=bandwidth(e, now, count_bytes),
            matching_packets=packets, matching_bytes=count_bytes, num_refresh=e.num_refresh,
        ))  # fmt: skip
    return rows


def remaining(e: Entry, now: float, packets: int, count_bytes: int,
              last_packet: float | None) -> Timeouts:  # fmt: skip
    t = e.timeouts
    idle = None
    if t.idle is not None:
        idle = max(0, math.ceil(max(e.idle_start, last_packet or 0.0) + t.idle - now))
    total = None if e.total_deadline is None else max(0, math.ceil(e.total_deadline - now))
    return Timeouts(
        idle=idle, total=total,
        packets=None if e.packet_limit is None else max(0, e.packet_limit - packets),
        bytes=None if e.byte_limit is None else max(0, e.byte_limit - count_bytes),
    )  # fmt: skip


def bandwidth(e: Entry, now: float, count_bytes: int) -> int:
    """Bits per second since the newest sample at least 10 s old (or since the ADD)."""
    samples = e.samples
    samples.append((now, count_bytes))
    while len(samples) > 2 and (now - samples[1][0] >= BANDWIDTH_WINDOW
                                or len(samples) > MAX_SAMPLES):  # fmt: skip
        samples.pop(0)
    then, before = samples[0]
    if now - then <= 0:
        return 0
    return int((count_bytes - before) * 8 / (now - then))
