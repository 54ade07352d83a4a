"""A worker's share of the counter slab stays truthful when slots are reused: a packet limit
sums every worker's record of the slot, so a freed slot must be clean in every region, not only
in the region of the worker that first sees the next criterion taking it."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from flowtap.dataplane import control
from flowtap.dataplane.route import Route, over
from flowtap.dataplane.slab import LIMITED, PACKETS, Slab, SlabSpec
from flowtap.dataplane.worker import Worker
from flowtap.intercept.criteria import Match

MakeWorker = Callable[[int, int], tuple[Worker, Slab]]


def upsert(cid: int, *, fresh: bool, limit: int | None = 5) -> control.Upsert:
    return control.Upsert(cid, 0, fresh, Match(), (), limit, None)


@pytest.fixture
def worker() -> Iterator[MakeWorker]:
    """Worker ``me`` of ``workers`` on a fresh slab (no rings, no process)."""
    made: list[Slab] = []
    a, b = socket.socketpair()

    def make(me: int, workers: int) -> tuple[Worker, Slab]:
        slab = Slab(SlabSpec(workers=workers, capacity=4))
        made.append(slab)
        w = Worker(me, a, b)
        w.slab = slab
        return w, slab

    yield make
    for slab in made:
        slab.close()
    a.close()
    b.close()


def test_removing_a_criterion_zeroes_the_workers_record_of_its_slot(worker: MakeWorker) -> None:
    peer, slab = worker(1, 2)
    peer._upsert(upsert(1, fresh=True))
    base = slab.record(1, 0)
    slab.words[base + PACKETS], slab.words[base + LIMITED] = 5, 1  # it reached its limit
    peer._remove(1)
    assert slab.total(0, PACKETS) == 0 and slab.words[base + LIMITED] == 0
    # the next criterion in slot 0, seen by worker 0 before this peer takes it, starts at 0
    assert not over(_route(slab, upsert(2, fresh=True)), slab.words, 100, [])


def test_a_refresh_with_new_limits_lets_copies_resume(worker: MakeWorker) -> None:
    w, slab = worker(0, 1)
    w._upsert(upsert(1, fresh=True, limit=2))
    base = slab.record(0, 0)
    slab.words[base + PACKETS], slab.words[base + LIMITED] = 2, 1
    w._upsert(upsert(1, fresh=False, limit=2))  # same limits: stays limited
    assert slab.words[base + LIMITED] == 1
    w._upsert(upsert(1, fresh=False, limit=10))
    assert slab.words[base + LIMITED] == 0 and slab.words[base + PACKETS] == 2


def _route(slab: Slab, up: control.Upsert) -> Route:
    r = Route(up, ())
    r.place(slab, 0)
    return r
