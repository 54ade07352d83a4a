"""The collector policy freezes what survives and still reclaims cyclic garbage it froze."""

from __future__ import annotations

import asyncio
import gc
import weakref

from flowtap.gc_policy import GcPolicy


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_survivors_are_frozen_and_frozen_cycles_are_reclaimed_later() -> None:
    now = [0.0]
    policy = GcPolicy(reclaim_every=600.0, clock=lambda: now[0])
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle: only the collector can free it
        gone = weakref.ref(a)
        policy.tick()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()
        assert gone() is not None  # frozen: the collector no longer scans it
        now[0] = 599.0
        policy.tick()
        assert gone() is not None
        now[0] = 601.0
        policy.tick()  # the reclaim: unfreeze, collect, freeze again
        assert gone() is None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_daemon_task_freezes_and_stops() -> None:
    async def run() -> int:
        policy = GcPolicy(freeze_every=0.01)
        policy.start()
        gc.unfreeze()
        await asyncio.sleep(0.05)
        frozen = gc.get_freeze_count()
        await policy.stop()
        return frozen

    try:
        assert asyncio.run(run()) > 0
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
