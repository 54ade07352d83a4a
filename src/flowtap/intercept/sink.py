"""The one interface between the intercept owner and the dataplane.

The registry (:mod:`flowtap.intercept.registry`) is the only caller: it asks whether a criterion
can be served before accepting it, its publisher installs the table of confirmed criteria, and
LIST statistics and the idle timeout read the counters. ``flowtap.dataplane.Dataplane``
implements it; no tasking protocol (DTCP, ETSI X1) reaches the dataplane but through here.

The table is installed whole (``set_criteria``), not by additions and removals: the publisher's
failure isolation (bisecting a refused table, :mod:`flowtap.intercept.publisher`) relies on an
install being atomic, all or nothing. An incremental dataplane can keep this contract by
diffing the table it is given against the one it holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

    def set_criteria(self, criteria: Sequence[Criterion]) -> None:
        """Install exactly ``criteria`` (atomic; may block; called from a worker thread).
        Raises when the table cannot be installed, leaving the previous one in place."""
        ...

    def counters(self) -> Mapping[int, CriterionCounters]:
        """Counters of the installed criteria, by ``criteria_id``."""
        ...
