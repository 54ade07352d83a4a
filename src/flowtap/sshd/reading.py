"""The framed-read loop of a protocol session (NETCONF, DTCP): read, decode, hand over, repeat.

One loop for both protocols, so that they time out, stop and push back alike:
- While no message is under way, a read waits at most ``idle_timeout``. From the first byte of a
  message to its end, however slowly the bytes trickle in (slowloris), at most
  ``message_timeout``; the clock starts again after each batch of messages has been handled.
  ``first_message_timeout`` also bounds the wait for the first message (NETCONF's hello).
- Messages completed by one read are handed over together (DTCP makes their audit records
  durable as one batch) or, with ``one_at_a_time``, each alone: then ``stopped`` is asked after
  each one, and ``backpressure`` stops reading while the peer leaves too many replies unread.
- The loop ends, and says why (:class:`End`), when the session stops, at the end of the input, on
  a timeout, after the decoder failed (once the messages completed before the failure have been
  handed over), or when the peer does not read its replies. Errors of the transport and of the
  handler propagate.

The session is never timed while it handles input (:class:`~flowtap.sshd.deadline.ReadDeadline`).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from flowtap.sshd.deadline import ReadDeadline, Reader

READ_SIZE = 65536
Message = TypeVar("Message")
Message_co = TypeVar("Message_co", covariant=True)


class Decoder(Protocol[Message_co]):
    """A session's incremental decoder, as the loop sees it."""

    def feed(self, data: bytes) -> Sequence[Message_co]:
        """The messages ``data`` completes, in order."""
        ...

    @property
    def in_message(self) -> bool:
        """Part of a message has arrived, not its end."""
        ...

    @property
    def broken(self) -> bool:
        """A fatal error: nothing more will be decoded, the session must end."""
        ...


class End(enum.Enum):
    """Why the loop returned."""

    STOPPED = "stopped"  # the session stopped reading (closing)
    END_OF_INPUT = "end of input"
    READ_TIMEOUT = "read timeout"
    BROKEN = "framing error"
    PEER_NOT_READING = "the peer does not read its replies"


@dataclass(frozen=True, slots=True)
class Backpressure:
    """Above ``high_water`` bytes unread by the peer, the session reads no more requests until
    the peer has taken them (``drain``), waiting at most ``timeout``: a client that pipelines
    requests and never reads cannot make the server buffer replies without bound."""

    unsent: Callable[[], int]
    drain: Callable[[], Awaitable[None]]
    high_water: int
    timeout: float

    async def relieved(self) -> bool:
        """False when the peer did not take its replies in time."""
        if self.unsent() <= self.high_water:
            return True
        try:
            await asyncio.wait_for(self.drain(), self.timeout)
        except TimeoutError:
            return False
        return True


async def read_messages(
    reader: Reader,
    decoder: Decoder[Message],
    handle: Callable[[Sequence[Message]], Awaitable[None]],
    *,
    stopped: Callable[[], bool],
    idle_timeout: float,
    message_timeout: float,
    first_message_timeout: float | None = None,
    one_at_a_time: bool = False,
    backpressure: Backpressure | None = None,
) -> End:
    """Read ``reader`` into ``decoder`` and hand the messages to ``handle`` until the loop ends
    (see the module docstring); ``backpressure`` applies with ``one_at_a_time`` only."""
    timer = ReadDeadline()
    first_by = None if first_message_timeout is None else timer.time() + first_message_timeout
    message_deadline: float | None = None  # end of the message under way
    try:
        while not stopped():
            if decoder.broken:  # the messages completed before the failure were just handled
                return End.BROKEN
            if decoder.in_message:
                if message_deadline is None:
                    message_deadline = timer.time() + message_timeout
                deadline = message_deadline
            else:
                message_deadline = None
                deadline = timer.time() + idle_timeout
            if first_by is not None:
                deadline = min(deadline, first_by)
            try:
                chunk = await timer.read(reader, READ_SIZE, deadline)
            except TimeoutError:
                return End.READ_TIMEOUT
            if not chunk:
                return End.END_OF_INPUT
            messages = decoder.feed(chunk)
            if not messages:
                continue
            first_by = message_deadline = None
            if not one_at_a_time:
                await handle(messages)
                continue
            for message in messages:
                await handle((message,))
                if stopped():
                    return End.STOPPED
                if backpressure is not None and not await backpressure.relieved():
                    return End.PEER_NOT_READING
        return End.STOPPED
    finally:
        timer.close()
