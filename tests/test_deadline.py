"""ReadDeadline: one lazily re-armed timer bounds every read of a session."""

from __future__ import annotations

import asyncio

import pytest

from flowtap.sshd.deadline import ReadDeadline


class Trickle:
    """A reader that answers each read after ``delay`` seconds, forever."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.reads = 0

    async def read(self, n: int = -1) -> bytes:
        self.reads += 1
        await asyncio.sleep(self.delay)
        return b"x"


async def test_a_read_past_its_deadline_times_out_and_the_task_survives() -> None:
    timer = ReadDeadline()
    with pytest.raises(TimeoutError):
        await timer.read(Trickle(10.0), 1, timer.time() + 0.05)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # our cancellation was taken back
    assert await timer.read(Trickle(0.0), 1, timer.time() + 1.0) == b"x"
    timer.close()


async def test_a_deadline_moved_on_by_each_read_never_fires() -> None:
    timer = ReadDeadline()
    reader = Trickle(0.01)
    started = timer.time()
    while timer.time() - started < 0.3:  # five times the per-read budget, in many reads
        assert await timer.read(reader, 1, timer.time() + 0.06) == b"x"
    assert reader.reads > 10
    timer.close()


async def test_a_fixed_deadline_bounds_a_message_however_it_trickles() -> None:
    timer = ReadDeadline()
    reader = Trickle(0.01)
    deadline = timer.time() + 0.1  # the whole message, not each read (slowloris)
    with pytest.raises(TimeoutError):
        while True:
            await timer.read(reader, 1, deadline)
    assert 5 <= reader.reads <= 12
    timer.close()


async def test_time_spent_handling_input_is_not_timed() -> None:
    timer = ReadDeadline()
    assert await timer.read(Trickle(0.0), 1, timer.time() + 0.05) == b"x"
    await asyncio.sleep(0.1)  # busy with what was read: past the deadline, nobody is waiting
    assert await timer.read(Trickle(0.0), 1, timer.time() + 0.05) == b"x"
    timer.close()


async def test_an_outside_cancellation_is_not_mistaken_for_a_timeout() -> None:
    timer = ReadDeadline()
    task = asyncio.create_task(timer.read(Trickle(10.0), 1, timer.time() + 10.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    timer.close()
