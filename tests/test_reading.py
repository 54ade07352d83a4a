"""The framed-read loop both protocol sessions use (flowtap.sshd.reading), with a line decoder."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from flowtap.sshd.reading import Backpressure, End, read_messages


class Lines:
    """Messages end with a newline; a "!" breaks the decoder after the messages before it."""

    def __init__(self) -> None:
        self.buf = b""
        self.broken = False

    @property
    def in_message(self) -> bool:
        return bool(self.buf)

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        *done, self.buf = self.buf.split(b"\n")
        out: list[bytes] = []
        for line in done:
            if line == b"!":
                self.broken, self.buf = True, b""
                break
            out.append(line)
        return out


def reader_of(*chunks: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    if eof:
        reader.feed_eof()
    return reader


class Handled:
    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []

    async def __call__(self, messages: Sequence[bytes]) -> None:
        self.calls.append(list(messages))


async def test_messages_of_one_read_are_handed_over_together_until_the_end_of_input() -> None:
    handled = Handled()
    end = await read_messages(reader_of(b"a\nb\nc"), Lines(), handled, stopped=lambda: False,
                              idle_timeout=5, message_timeout=5)  # fmt: skip
    assert end is End.END_OF_INPUT
    assert handled.calls == [[b"a", b"b"]]


async def test_one_at_a_time_asks_stopped_after_each_message() -> None:
    handled = Handled()
    end = await read_messages(reader_of(b"a\nb\n"), Lines(), handled,
                              stopped=lambda: len(handled.calls) == 1, idle_timeout=5,
                              message_timeout=5, one_at_a_time=True)  # fmt: skip
    assert end is End.STOPPED
    assert handled.calls == [[b"a"]]


async def test_an_idle_peer_times_out() -> None:
    handled = Handled()
    end = await read_messages(reader_of(b"a\n", eof=False), Lines(), handled,
                              stopped=lambda: False, idle_timeout=0.05, message_timeout=5)  # fmt: skip
    assert end is End.READ_TIMEOUT
    assert handled.calls == [[b"a"]]


async def test_a_message_trickling_in_times_out_from_its_first_byte() -> None:
    reader = reader_of(b"partial", eof=False)

    async def trickle() -> None:
        for _ in range(10):
            await asyncio.sleep(0.03)
            reader.feed_data(b"x")

    feeder = asyncio.create_task(trickle())
    start = asyncio.get_running_loop().time()
    end = await read_messages(reader, Lines(), Handled(), stopped=lambda: False,
                              idle_timeout=5, message_timeout=0.1)  # fmt: skip
    feeder.cancel()
    assert end is End.READ_TIMEOUT
    assert asyncio.get_running_loop().time() - start < 0.25


async def test_the_first_message_must_arrive_in_time() -> None:
    end = await read_messages(reader_of(b"", eof=False), Lines(), Handled(), stopped=lambda: False,
                              idle_timeout=5, message_timeout=5, first_message_timeout=0.05)  # fmt: skip
    assert end is End.READ_TIMEOUT


async def test_the_first_message_bound_ends_with_the_first_message() -> None:
    reader = reader_of(b"a\n", eof=False)
    handled = Handled()

    async def later() -> None:
        await asyncio.sleep(0.15)
        reader.feed_data(b"b\n")
        reader.feed_eof()

    feeder = asyncio.create_task(later())
    end = await read_messages(reader, Lines(), handled, stopped=lambda: False, idle_timeout=5,
                              message_timeout=5, first_message_timeout=0.05)  # fmt: skip
    await feeder
    assert end is End.END_OF_INPUT
    assert handled.calls == [[b"a"], [b"b"]]


async def test_a_broken_decoder_ends_after_the_messages_completed_before_it() -> None:
    handled = Handled()
    end = await read_messages(reader_of(b"a\n!\nb\n", eof=False), Lines(), handled,
                              stopped=lambda: False, idle_timeout=5, message_timeout=5)  # fmt: skip
    assert end is End.BROKEN
    assert handled.calls == [[b"a"]]


@pytest.mark.parametrize("reads", [True, False])
async def test_backpressure_waits_for_the_peer_to_read(reads: bool) -> None:
    unsent = [10]

    async def drain() -> None:
        if not reads:
            await asyncio.sleep(5)
        unsent[0] = 0

    handled = Handled()
    pressure = Backpressure(lambda: unsent[0], drain, high_water=5, timeout=0.05)
    end = await read_messages(reader_of(b"a\nb\n"), Lines(), handled, stopped=lambda: False,
                              idle_timeout=5, message_timeout=5, one_at_a_time=True,
                              backpressure=pressure)  # fmt: skip
    if reads:
        assert end is End.END_OF_INPUT
        assert handled.calls == [[b"a"], [b"b"]]
    else:
        assert end is End.PEER_NOT_READING
        assert handled.calls == [[b"a"]]
