"""Which DTCP session goes first when several compete for the event loop (issue 15 item 6).

Every session runs on one event loop, and a request needs several turns of it (SSH, the
session, the audit log, the publisher, the capture workers, the reply). Taking turns in order
is not enough: while one agency lists 10,000 criteria or keeps 64 ADDs in flight, each turn of
another agency's single ADD waits behind a slice of that work, and ten such waits are tens of
milliseconds. So a session doing much gives way to the sessions doing little:

- A session is *light* while it has at most ``LIGHT`` requests handled and not yet answered,
  none of them a bulk request (a LIST, DELETE or REFRESH that does not name a few criteria one
  by one: its work grows with the table, ``methods.grows_with_table``).
- Before each slice of bulk work (a piece of a LIST reply, a slice of a DELETE or REFRESH) and
  before each turn's worth of a pipeline, a session that is not light waits until the batches
  that light sessions have in progress at that moment are answered; later batches do not hold
  it again for the same slice, and it never waits longer than ``MAX_WAIT`` for one slice. A
  batch still unanswered after such a wait (its client does not read its replies) holds no
  one again: a light session cannot stop a heavy one, only go before it.
- Light sessions never wait here, and heavy ones do not wait for each other (they take turns
  as before).

Nothing about a request's result depends on this: only when other sessions' turns come.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

TURN = 0.001
"""Seconds one session's work (a pipelined batch, a LIST reply) may hold the event loop before
other sessions get a turn: another agency's ADD needs several turns of the loop, each of which
may wait this long (bench/dtcp_bulk_fairness.py)."""
LIGHT = 4
"""Requests in progress up to which a session goes first: a mediation device that adds one
criterion at a time, or a few, rather than a pipeline."""
MAX_WAIT = 0.05
"""Seconds a heavy session waits for light ones before one slice of its work, at most: the
light batches normally finish in a few milliseconds; this bounds what a light session that
never reads its replies can hold a heavy one back."""


class _Work:
    """One batch of requests of a session, from handled to answered."""

    __slots__ = ("done", "requests", "session", "stale")

    def __init__(self, session: str, requests: int, done: asyncio.Future[None]) -> None:
        self.session = session
        self.requests = requests
        self.done = done
        self.stale = False  # made someone wait ``max_wait`` in vain: holds no one again


class RightOfWay:
    """The batches in progress of every session of one service, and who gives way to whom."""

    def __init__(self, *, light: int = LIGHT, max_wait: float = MAX_WAIT) -> None:
        self.light = light
        self.max_wait = max_wait
        self._works: list[_Work] = []
        self._load: dict[str, int] = {}  # session -> requests in progress (bulk: light + 1)
        self.given_way = 0  # slices that waited for a light session (tests, benchmarks)

    def started(self, session: str, requests: int, *, bulk: bool) -> Callable[[], None]:
        """A batch of ``requests`` of ``session`` is being handled; call what this returns once
        it is answered (or will never be)."""
        weight = self.light + 1 if bulk else requests
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        work = _Work(session, weight, done)
        self._works.append(work)
        self._load[session] = self._load.get(session, 0) + weight

        def finished() -> None:
            if done.done():
                return
            done.set_result(None)
            self._works.remove(work)
            left = self._load[session] - weight
            if left:
                self._load[session] = left
            else:
                del self._load[session]

        return finished

    def is_light(self, session: str) -> bool:
        return self._load.get(session, 0) <= self.light

    async def give_way(self, session: str) -> None:
        """Return once the light sessions' batches in progress now are answered (at once if
        ``session`` is light itself or none is in progress); at most ``max_wait``."""
        if self.is_light(session):
            return
        ahead = [w for w in self._works
                 if w.session != session and not w.stale and self.is_light(w.session)]
        if ahead:
            self.given_way += 1
            await asyncio.wait([w.done for w in ahead], timeout=self.max_wait)
            for work in ahead:
                work.stale = not work.done.done()
