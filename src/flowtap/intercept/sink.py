"""The one interface between the intercept owner and the dataplane.

The registry (:mod:`flowtap.intercept.registry`) is the only caller: it asks whether a criterion
can be served before accepting it, its publisher applies what changed among the confirmed
criteria, and LIST statistics and the idle timeout read the counters.
``flowtap.dataplane.Dataplane`` implements it; no tasking protocol (DTCP, ETSI X1) reaches the
dataplane but through here.

Changes travel as deltas (``apply``: criteria to install or replace, keyed by ``criteria_id``,
and ids to remove), never as the whole table: the sink keeps its installed table itself, so
nothing on the request path is proportional to the number of criteria, and a dataplane can make
each change cost O(1) or O(log N) behind this same call. A delta is atomic, all or nothing: the
publisher's failure isolation (:mod:`flowtap.intercept.publisher`) relies on a refused delta
leaving the installed table exactly as it was, so that it can retry parts of it and know which
criteria are in and which are not. A sink may also offer ``async def apply_async(upserts,
removals)``, the same contract awaited on the event loop; the publisher then uses it instead
of calling ``apply`` in a worker thread.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from flowtap.intercept.criteria import Criterion


@dataclass(frozen=True, slots=True)
class CriterionCounters:
    """A snapshot for LIST statistics and the registry's timeouts.

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


class CriteriaSink(Protocol):
    """The dataplane as the intercept owner sees it."""

    def check(self, criterion: Criterion) -> None:
        """Raise ValueError for a criterion no installed table could serve (cheap, pure)."""
        ...

    def apply(self, upserts: Sequence[Criterion], removals: Collection[int]) -> None:
        """Install or replace ``upserts`` (by ``criteria_id``; a replaced criterion keeps its
        counters) and remove the ``removals`` ids (ids not installed are ignored; no id is in
        both). Atomic; may block; called from a worker thread. Raises when the delta cannot be
        applied, leaving the installed table exactly as it was."""
        ...

    def counters(self) -> Mapping[int, CriterionCounters]:
        """Counters of the installed criteria, by ``criteria_id``."""
        ...
