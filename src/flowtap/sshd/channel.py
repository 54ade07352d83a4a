"""What a protocol session sees of its SSH channel: input, output, and a way to end it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncssh

from flowtap.sshd.deadline import Reader


@dataclass(frozen=True, slots=True)
class Channel:
    peer: str  # the client's address ("" when unknown)
    input: Reader
    write: Callable[[bytes], None]
    drain: Callable[[], Awaitable[None]]  # waits until the peer has taken most of the output
    unsent: Callable[[], int]  # bytes written that the peer has not taken yet
    close: Callable[[], None]  # ends the channel; the session's read then sees the end of input

    @classmethod
    def of(cls, proc: asyncssh.SSHServerProcess[bytes]) -> Channel:
        peer = proc.get_extra_info("peername")
        channel = proc.channel

        def close() -> None:
            proc.exit(0)
            if proc.get_extra_info("connection") is not None:
                asyncio.get_running_loop().call_soon(channel.close)

        return cls(str(peer[0]) if peer else "", proc.stdin, proc.stdout.write,
                   proc.stdout.drain, channel.get_write_buffer_size, close)  # fmt: skip
