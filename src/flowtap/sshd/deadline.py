"""Read deadlines for long-lived protocol sessions, at the cost of a float store per read.

``asyncio.wait_for`` (Python 3.11) wraps every read in a new Task and arms and cancels a timer:
per NETCONF RPC that was a tenth of the server's dispatch overhead. A session instead keeps one
``ReadDeadline``: a read only records its deadline; the single timer, when it fires early (the
deadline moved on), re-arms itself at the recorded deadline, and when the task is still waiting
past it, cancels the task and the read raises ``TimeoutError``. While the session is busy
handling input nothing is timed: the next read re-arms.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol


class Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class ReadDeadline:
    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None
        self._expired = False

    def time(self) -> float:
        """The clock deadlines are measured on."""
        return self._loop.time()

    async def read(self, reader: Reader, size: int, deadline: float) -> bytes:
        """``reader.read(size)``, or ``TimeoutError`` once the clock passes ``deadline``."""
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(deadline, self._fire)
        task = asyncio.current_task()
        self._task = task
        try:
            return await reader.read(size)
        except asyncio.CancelledError:
            if not self._expired or task is None:
                raise
            self._expired = False
            task.uncancel()  # our cancellation, turned into the timeout it stands for
            raise TimeoutError from None
        finally:
            self._task = None

    def _fire(self) -> None:
        self._timer = None
        if self._task is None:
            return  # not waiting for input: the next read arms the timer again
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._fire)
            return
        self._expired = True
        self._task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from the environment (tests shorten timeouts this way)."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds") from None
    if not 0 < seconds < float("inf"):
        raise ValueError(f"{name} must be positive")
    return seconds
