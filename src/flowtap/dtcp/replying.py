"""The reply stage of a DTCP channel: durable audit record -> confirm -> live in the dataplane
-> reply, batch after batch in arrival order, while the channel goes on handling the next
batch.

A pipelined mediation device keeps requests in flight; if the channel handled a batch only
after the previous one was answered, each batch would wait out an audit fsync and a dataplane
publication before the next one is even parsed, and the batches would stay small. Here the
channel hands each handled batch over (:meth:`ReplyStage.submit`) and reads on; this stage
settles the batches strictly in order, so the next batch's records join the next fsync and its
changes the next publication; batches that one fsync made durable are settled together, with
one publication and one write.

Order and failure: replies leave in request order, each after its record is durable and its
change live. Should the audit log fail (it then refuses every later record, fail closed),
every batch handed over and not yet answered is settled at once: the changes whose records
are not durable are undone newest first (so an ADD handled in one batch and DELETEd in the
next comes back out in the right order), the durable ones confirmed, and the requests without
a record are answered ``500``. A batch with a reply written piece by piece (LIST) or after which
the channel closes is settled before the channel handles anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from flowtap.dtcp.methods import Outcome
from flowtap.dtcp.replies import error_reply
from flowtap.intercept.publisher import Publisher

LOG = logging.getLogger(__name__)
MAX_IN_FLIGHT = 8  # handled batches awaiting their replies before the channel stops reading


@dataclass(slots=True)
class _Batch:
    outcomes: list[Outcome]
    records: list[asyncio.Future[None]]  # the audit log's answer for each outcome
    answered: Callable[[], None]  # told once the batch's replies are written (or never will be)


def _durable(batch: _Batch) -> bool:
    """Whether every record of ``batch`` is written (and none failed) already."""
    return all(r.done() and not r.cancelled() and r.exception() is None for r in batch.records)


class ReplyStage:
    """The ordered queue of handled batches of one channel and the task settling them."""

    def __init__(self, session_id: str, publisher: Publisher,
                 send: Callable[[list[bytes]], Awaitable[None]],
                 send_in_pieces: Callable[[Iterator[bytes]], Awaitable[bool]]) -> None:
        self._session_id = session_id
        self._publisher = publisher
        self._send = send
        self._send_in_pieces = send_in_pieces
        self._queue: deque[_Batch] = deque()
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._settled.set()
        self._room = asyncio.Event()
        self._room.set()
        self._dead = False  # the channel cannot be written: changes are still settled

    async def submit(self, outcomes: Sequence[Outcome], records: Sequence[asyncio.Future[None]],
                     answered: Callable[[], None], *, settle: bool = False) -> None:
        """Queue a handled batch; ``answered`` is called once its replies are written (or the
        batch is settled without them). Returns when the channel may handle the next one (at
        once, unless ``settle`` asks for this batch to be answered first, or too many wait)."""
        self._queue.append(_Batch(list(outcomes), list(records), answered))
        self._settled.clear()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        if settle:
            await self.drain()
        elif len(self._queue) >= MAX_IN_FLIGHT:
            self._room.clear()
            await self._room.wait()

    async def drain(self) -> None:
        """Wait until every batch handed over is settled."""
        await self._settled.wait()

    async def _run(self) -> None:
        try:
            while self._queue:
                head = self._queue[0]
                results = await asyncio.gather(*head.records, return_exceptions=True)
                if any(r is not None for r in results):
                    await self._settle_after_failure()
                    continue
                ready = [self._queue.popleft()]
                while self._queue and _durable(self._queue[0]):
                    ready.append(self._queue.popleft())  # the same fsync made it durable
                try:
                    await self._settle([o for b in ready for o in b.outcomes])
                finally:
                    for batch in ready:
                        batch.answered()
                if len(self._queue) < MAX_IN_FLIGHT:
                    self._room.set()
        finally:
            for batch in self._queue:  # only after a bug: nothing is answered any more
                batch.answered()
            self._task = None
            self._room.set()
            self._settled.set()

    async def _settle(self, outcomes: list[Outcome]) -> None:
        """Every record is durable: confirm, wait until live (one publication for all the
        batches settled together), answer."""
        for outcome in outcomes:
            if outcome.confirm is not None:
                outcome.confirm()
        # "200 OK means live": every change answered here is in the dataplane first
        for lane in {o.changed for o in outcomes if o.changed is not None}:
            await self._publisher.flush(lane)
        await self._answer(outcomes, [None] * len(outcomes))

    async def _settle_after_failure(self) -> None:
        """The audit log failed: settle every queued batch together (module docstring)."""
        batches = list(self._queue)
        self._queue.clear()
        try:
            await self._settle_failed(batches)
        finally:
            for batch in batches:
                batch.answered()

    async def _settle_failed(self, batches: list[_Batch]) -> None:
        outcomes = [o for b in batches for o in b.outcomes]
        results = await asyncio.gather(*(r for b in batches for r in b.records),
                                       return_exceptions=True)
        for outcome, result in reversed(list(zip(outcomes, results, strict=True))):
            if result is not None and outcome.undo is not None:
                outcome.undo()
        for outcome, result in zip(outcomes, results, strict=True):
            if result is None and outcome.confirm is not None:
                outcome.confirm()
        for lane in {o.changed for o, r in zip(outcomes, results, strict=True)
                     if r is None and o.changed is not None}:
            await self._publisher.flush(lane)
        LOG.error("%s: LI audit log refused a record; requests refused with 500",
                  self._session_id)  # fmt: skip
        await self._answer(outcomes, list(results))

    async def _answer(self, outcomes: Sequence[Outcome], results: Sequence[object]) -> None:
        replies: list[bytes] = []
        for outcome, result in zip(outcomes, results, strict=True):
            if result is None:
                if isinstance(outcome.reply, bytes):
                    replies.append(outcome.reply)
                elif outcome.reply is not None:
                    await self._write(replies)
                    replies = []
                    if not self._dead and not await self._pieces(outcome.reply):
                        return  # cut short by a bug: the channel is closing
            elif outcome.reply is not None:
                replies.append(error_reply(outcome.version, 500, outcome.seq, datetime.now()))
        await self._write(replies)

    async def _write(self, replies: list[bytes]) -> None:
        if self._dead or not replies:
            return
        try:
            await self._send(replies)
        except (ConnectionError, OSError):
            self._dead = True  # the peer is gone; later batches are still settled

    async def _pieces(self, pieces: Iterator[bytes]) -> bool:
        try:
            return await self._send_in_pieces(pieces)
        except (ConnectionError, OSError):
            self._dead = True  # the peer is gone; later batches are still settled
            return True
