"""A worker's share of the counter slab stays truthful when slots are reused: a packet limit
sums every worker's record of the slot, so a freed slot must be clean in every region, not only
in the region of the worker that first sees the next criterion taking it."""

from __future__ import annotations

import socket

from flowtap.dataplane import control
from flowtap.dataplane.slab import LIMITED, PACKETS, Slab, SlabSpec
from flowtap.dataplane.worker import Route, Worker
from flowtap.intercept.criteria import Match


def upsert(cid: int, *, fresh: bool, limit: int | None = 5) -> control.Upsert:
    return control.Upsert(cid, 0, fresh, Match(), (), limit, None)


def test_removing_a_criterion_zeroes_the_workers_record_of_its_slot() -> None:
    a, b = socket.socketpair()
    slab = Slab(SlabSpec(workers=2, capacity=4))
    try:
        peer = Worker(1, a, b)
        peer.slab = slab
        peer._upsert(upsert(1, fresh=True))
        base = slab.record(1, 0)
        slab.words[base + PACKETS], slab.words[base + LIMITED] = 5, 1  # it reached its limit
        peer._remove(1)
        assert slab.total(0, PACKETS) == 0 and slab.words[base + LIMITED] == 0
        # the next criterion in slot 0, seen by worker 0 before this peer takes it, starts at 0
        assert not Worker._over(_route(slab, upsert(2, fresh=True)), slab.words, 100, [])
    finally:
        slab.close()
        a.close()
        b.close()


def test_a_refresh_with_new_limits_lets_copies_resume() -> None:
    a, b = socket.socketpair()
    slab = Slab(SlabSpec(workers=1, capacity=4))
    try:
        w = Worker(0, a, b)
        w.slab = slab
        w._upsert(upsert(1, fresh=True, limit=2))
        base = slab.record(0, 0)
        slab.words[base + PACKETS], slab.words[base + LIMITED] = 2, 1
        w._upsert(upsert(1, fresh=False, limit=2))  # same limits: stays limited
        assert slab.words[base + LIMITED] == 1
        w._upsert(upsert(1, fresh=False, limit=10))
        assert slab.words[base + LIMITED] == 0 and slab.words[base + PACKETS] == 2
    finally:
        slab.close()
        a.close()
        b.close()


def _route(slab: Slab, up: control.Upsert) -> Route:
    r = Route(up, ())
    r.place(slab, 0)
    return r
