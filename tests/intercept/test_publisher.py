"""The publisher's deltas: coalescing per key, one ``apply`` per run, failure isolation. The sink
is a fake that keeps its installed table as the dataplane does and records every call."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator, Collection, Iterable, Sequence

import pytest

from flowtap.intercept.criteria import ContentDestination, Criterion, Match, Timeouts
from flowtap.intercept.publisher import Publisher
from flowtap.intercept.sink import CriterionCounters

Call = tuple[list[int], list[int]]  # upserted ids, removed ids


class TableSink:
    """Installs deltas atomically; refuses any delta that upserts an id in ``refuse``; can hold
    a call in flight until ``release`` is set."""

    def __init__(self, refuse: Iterable[int] = ()) -> None:
        self.table: dict[int, Criterion] = {}
        self.calls: list[Call] = []
        self.refuse = set(refuse)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def check(self, criterion: Criterion) -> None:
        pass

    def apply(self, upserts: Sequence[Criterion], removals: Collection[int]) -> None:
        self.calls.append((sorted(c.criteria_id for c in upserts), sorted(removals)))
        self.entered.set()
        assert self.release.wait(5)
        if any(c.criteria_id in self.refuse for c in upserts):
            raise ValueError("refused")
        for key in removals:
            self.table.pop(key, None)
        self.table.update((c.criteria_id, c) for c in upserts)

    def counters(self) -> dict[int, CriterionCounters]:
        return {}


def crit(key: int, packets: int | None = None, source: str = "a") -> Criterion:
    dest = ContentDestination("cd1", "127.0.0.1", 47000, "127.0.0.1", 47100)
    return Criterion(key, source, Match(), (dest,), timeouts=Timeouts(packets=packets))


@dataclasses.dataclass
class Rig:
    sink: TableSink
    publisher: Publisher
    rejected: list[list[int]]

    async def published(self) -> list[int]:
        await self.publisher.flush()
        return sorted(self.sink.table)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sink, rejected = TableSink(), list[list[int]]()
    publisher = Publisher(sink, rejected.append)
    yield Rig(sink, publisher, rejected)
    await publisher.close()


async def test_an_upsert_then_a_removal_of_a_key_never_installed_cancels_out(rig: Rig) -> None:
    rig.publisher.upsert(crit(1))
    rig.publisher.remove(1, "a")
    assert await rig.published() == [] and rig.sink.calls == []  # nothing reached the sink
    rig.publisher.upsert(crit(2))
    assert await rig.published() == [2]
    rig.publisher.upsert(crit(2, packets=5))  # a refresh of an installed key, then its removal
    rig.publisher.remove(2, "a")
    assert await rig.published() == [] and rig.sink.calls == [([2], []), ([], [2])]


async def test_two_upserts_of_one_key_install_the_latest_once(rig: Rig) -> None:
    rig.publisher.upsert(crit(1, packets=5))
    rig.publisher.upsert(crit(2))
    rig.publisher.upsert(crit(1, packets=9))
    assert await rig.published() == [1, 2]
    assert rig.sink.calls == [([1, 2], [])] and rig.sink.table[1].timeouts.packets == 9


async def test_the_removal_of_an_installed_key_is_applied_alone(rig: Rig) -> None:
    for key in (1, 2, 3):
        rig.publisher.upsert(crit(key))
    assert await rig.published() == [1, 2, 3]
    rig.publisher.remove(1, "a")
    rig.publisher.remove(3, "a")
    assert await rig.published() == [2]
    assert rig.sink.calls == [([1, 2, 3], []), ([], [1, 3])]
    assert rig.publisher.stats.runs == 2


async def test_changes_during_a_run_go_together_in_the_next_one(rig: Rig) -> None:
    rig.sink.release.clear()
    rig.publisher.upsert(crit(1))
    assert await asyncio.to_thread(rig.sink.entered.wait, 5)  # the install of 1 is in flight
    rig.publisher.remove(1, "a")  # may be installed by then: its removal must reach the sink
    rig.publisher.upsert(crit(2))
    rig.publisher.upsert(crit(3))
    rig.publisher.remove(3, "a")  # never installed: cancels out
    rig.sink.release.set()
    assert await rig.published() == [2]
    assert rig.sink.calls == [([1], []), ([2], [1])]


async def test_a_refused_criterion_is_isolated_and_reported_once(rig: Rig) -> None:
    rig.publisher.upsert(crit(1))
    assert await rig.published() == [1]
    rig.sink.refuse = {4}
    for key in (2, 3, 4, 5, 6):
        rig.publisher.upsert(crit(key))
    rig.publisher.remove(1, "a")
    assert await rig.published() == [2, 3, 5, 6]  # the others are installed, 1 is removed
    assert rig.rejected == [[4]] and rig.publisher.stats.failures == 1
    assert rig.sink.calls[1:3] == [([2, 3, 4, 5, 6], [1]), ([], [1])]  # removals go alone first
    rig.publisher.remove(4, "a")  # what the registry does with a rejected key: nothing to remove
    rig.publisher.upsert(crit(7))
    assert await rig.published() == [2, 3, 5, 6, 7]
    assert rig.sink.calls[-1] == ([7], []) and rig.rejected == [[4]]


async def test_a_refused_replacement_leaves_the_installed_one_until_removed(rig: Rig) -> None:
    rig.publisher.upsert(crit(1, packets=5))
    assert await rig.published() == [1]
    rig.sink.refuse = {1}
    rig.publisher.upsert(crit(1, packets=9))
    assert await rig.published() == [1] and rig.sink.table[1].timeouts.packets == 5
    assert rig.rejected == [[1]]
    rig.publisher.remove(1, "a")  # the registry removes what was rejected: it is still installed
    assert await rig.published() == [] and rig.sink.calls[-1] == ([], [1])


async def test_a_flood_in_one_lane_delays_another_lane_by_one_bounded_run() -> None:
    """Issue 15 (no head-of-line blocking): agency b's 1,000 pending ADDs do not stand in front
    of agency c's one; c's change goes in the very next run, and flush("c") returns while b's
    flood is still being installed."""
    sink = TableSink()
    publisher = Publisher(sink, batch=50)
    try:
        sink.release.clear()
        publisher.upsert(crit(1))
        assert await asyncio.to_thread(sink.entered.wait, 5)  # a run is in flight
        for key in range(1000, 2000):
            publisher.upsert(crit(key, source="b"))
        publisher.upsert(crit(7, source="c"))
        sink.release.set()
        await publisher.flush("c")
        assert 7 in sink.table
        assert 7 in sink.calls[1][0]  # the run after the one in flight includes c
        assert len(sink.calls[1][0]) <= 50
        assert publisher.pending() > 0  # b's flood is not done: c did not wait for it
        await publisher.flush()
        assert len(sink.table) == 1002
    finally:
        await publisher.close()


async def test_a_lane_with_one_change_shares_its_run_with_one_change_of_a_flood() -> None:
    """Issue 15 item 6: the run that carries agency c's one change carries one of agency b's
    thousand, not a full batch of them (a run's cost grows with its size); with both lanes
    busy, they share runs equally."""
    sink = TableSink()
    publisher = Publisher(sink, batch=50)
    try:
        sink.release.clear()
        publisher.upsert(crit(1))
        assert await asyncio.to_thread(sink.entered.wait, 5)  # a run is in flight
        for key in range(1000, 2000):
            publisher.upsert(crit(key, source="b"))
        publisher.upsert(crit(7, source="c"))
        for key in range(3000, 3100):
            publisher.upsert(crit(key, source="d"))
        sink.release.set()
        await publisher.flush("c")
        assert sink.calls[1] == ([7, 1000, 3000], [])
        await publisher.flush()
        assert sink.calls[2] == ([*range(1001, 1026), *range(3001, 3026)], [])
        assert len(sink.table) == 1102
    finally:
        await publisher.close()


async def test_flush_of_a_lane_with_nothing_pending_returns_at_once(rig: Rig) -> None:
    rig.sink.release.clear()
    rig.publisher.upsert(crit(1))
    assert await asyncio.to_thread(rig.sink.entered.wait, 5)
    await asyncio.wait_for(rig.publisher.flush("other"), 1)  # a's run in flight is not b's
    rig.sink.release.set()
    assert await rig.published() == [1]
