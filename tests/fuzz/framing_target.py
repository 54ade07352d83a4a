"""Fuzz target: the RFC 6242 frame decoder (EOM and chunked framing, size cap).

The input is one control byte (framing after the hello, size cap), two bytes seeding how the
stream is sliced, then the byte stream a client sends (hello first). The decoder is driven the way
``Session`` drives it: feed, and right after the message that completes the hello, switch to
chunked framing or stay on EOM. Documented outcomes: messages, ``FramingError`` (carrying the
messages completed before it) and ``SessionTerminated`` once broken.

Invariants:
- Slicing independence: the stream fed whole and fed in random pieces yields the same messages
  and the same verdict. Exception: the size cap. Bytes held after the hello are capped as a whole
  (framing.py), so a size refusal may come earlier in one slicing than in another; then the
  messages of one run are a prefix of the other's.
- The hello comes alone; EOM messages are non-empty and never contain the delimiter.
- Round trip: re-encoding the decoded messages (chunked: with a fuzzed chunk size) and decoding
  them again yields the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowtap.errors import SessionTerminated
from flowtap.netconf.framing import (
    DEFAULT_MAX_MESSAGE,
    EOM,
    FrameDecoder,
    FramingError,
    encode_chunked,
    encode_eom,
)
from tests.fuzz.support import ByteReader, check, split_points

CAPS = (16, 64, 1024, 4096, DEFAULT_MAX_MESSAGE)
SIZE_LIMIT = "NETCONF message exceeds the size limit"


@dataclass
class Outcome:
    messages: list[bytes] = field(default_factory=list)
    error: str | None = None

    @property
    def size_refused(self) -> bool:
        return self.error == SIZE_LIMIT


def _switch(decoder: FrameDecoder, chunked: bool) -> list[bytes]:
    return decoder.start_chunked() if chunked else decoder.feed(b"")


def decode(pieces: list[bytes], chunked: bool, max_message: int) -> Outcome:
    """Feed the pieces the way Session does; stop at the first framing error."""
    decoder = FrameDecoder(max_message)
    outcome = Outcome()
    hello_seen = False
    try:
        for piece in pieces:
            try:
                got = decoder.feed(piece)
            except FramingError as exc:
                outcome.messages += exc.completed
                outcome.error = str(exc)
                if hello_seen or not exc.completed:
                    return outcome
                # The session answers the hello before the next read notices the error, and
                # decides the framing first.
                outcome.messages += _switch(decoder, chunked)
                return outcome
            if got and not hello_seen:
                check(len(got) == 1, "the hello must be returned alone")
                hello_seen = True
                outcome.messages += got
                outcome.messages += _switch(decoder, chunked)
                continue
            outcome.messages += got
    except FramingError as exc:
        outcome.messages += exc.completed
        outcome.error = outcome.error or str(exc)
    except SessionTerminated as exc:
        outcome.error = outcome.error or str(exc)
    return outcome


def _same_verdict(whole: Outcome, sliced: Outcome) -> None:
    if whole.size_refused or sliced.size_refused:
        shorter, longer = sorted((whole.messages, sliced.messages), key=len)
        check(longer[: len(shorter)] == shorter, "size refusal: messages differ beyond a prefix")
        return
    check(whole.messages == sliced.messages, "slicing changed the messages")
    check(whole.error == sliced.error, "slicing changed the framing verdict")


def _round_trip(messages: list[bytes], chunked: bool, max_chunk: int) -> None:
    if len(messages) < 2:
        return
    hello, rest = messages[0], messages[1:]
    encode = (lambda m: encode_chunked(m, max_chunk)) if chunked else encode_eom
    stream = encode_eom(hello) + b"".join(map(encode, rest))
    again = decode([stream], chunked, DEFAULT_MAX_MESSAGE)
    check(again.error is None, "re-encoded messages did not decode")
    check(again.messages == messages, "re-encoded messages decoded differently")


def fuzz_one(data: bytes) -> None:
    reader = ByteReader(data)
    control = reader.byte()
    chunked = bool(control & 1)
    max_message = CAPS[(control >> 1) % len(CAPS)]
    max_chunk = 1 + (control >> 4)
    seed = reader.take(2)
    stream = reader.rest()
    whole = decode([stream], chunked, max_message)
    sliced = decode(split_points(stream, seed), chunked, max_message)
    _same_verdict(whole, sliced)
    for index, message in enumerate(whole.messages):
        check(bool(message), "empty message")
        if index == 0 or not chunked:
            check(EOM not in message, "EOM message contains the delimiter")
    _round_trip(whole.messages, chunked, max_chunk)
