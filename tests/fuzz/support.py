"""What every fuzz target shares: the crash type for broken invariants and a byte consumer.

A target is a plain function ``fuzz_one(data: bytes) -> None``: it returns for every input the
code under test handles as documented (a result, or one of the error types it documents for bad
input) and raises for anything else. ``InvariantViolation`` marks a property the target checks
itself (slicing independence, round trips, filter output within its input); any other exception
escaping a target is a crash of the code under test.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

_T = TypeVar("_T")


class InvariantViolation(AssertionError):
    """A property the fuzz target asserts does not hold for this input."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)


class ByteReader:
    """Turns fuzz bytes into decisions; reads zeros once the bytes run out, so every input is
    valid and a shorter input is a simpler one (what libFuzzer's minimiser expects)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def exhausted(self) -> bool:
        return self.pos >= len(self.data)

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def below(self, n: int) -> int:
        """An integer in range(n), from one byte (two when n > 256)."""
        value = self.byte() if n <= 256 else self.byte() << 8 | self.byte()
        return value % n

    def pick(self, options: Sequence[_T]) -> _T:
        return options[self.below(len(options))]

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data))


def split_points(data: bytes, seed: bytes) -> list[bytes]:
    """``data`` cut at pseudo-random points chosen by ``seed`` (pieces may be empty)."""
    rng = random.Random(seed)
    pieces: list[bytes] = []
    pos = 0
    while pos < len(data):
        step = rng.choice((0, 1, 1, 2, 3, 5, 8, 13, 64, 4096))
        pieces.append(data[pos : pos + step])
        pos += step
    return pieces
