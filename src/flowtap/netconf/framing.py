"""RFC 6242 message framing for NETCONF over SSH, sans I/O.

The decoder turns received bytes into complete messages and knows nothing about sockets, so the
session layer (and the fuzz harness) can drive it with any slicing of the byte stream.

Lifecycle: a session starts in end-of-message framing (``]]>]]>``, base:1.0) because the hello
is always sent that way. The decoder returns the first message (the peer's hello) on its own and
then *holds* whatever bytes followed it, since how to decode them depends on the capabilities in
that hello. The session layer then either calls :meth:`FrameDecoder.start_chunked` (both sides
listed base:1.1) or simply keeps calling :meth:`FrameDecoder.feed` (stay on base:1.0); held bytes
are decoded under whichever framing was chosen. ``start_chunked`` returns the messages it could
already complete from the held bytes; callers must process them, as no later ``feed`` repeats them.

Every framing violation and every message larger than ``max_message`` raises
:class:`~flowtap.errors.SessionTerminated`: a byte stream that lost its framing cannot be
resynchronised (RFC 6242 §4.2), and an oversized message must be refused before anyone parses it
(SECURITY.md N4, N5). Error texts never quote received bytes.
"""

from __future__ import annotations

import enum
import re
from typing import Final

from flowtap.errors import SessionTerminated

EOM: Final = b"]]>]]>"
END_OF_CHUNKS: Final = b"\n##\n"
MAX_CHUNK_SIZE: Final = 4294967295
DEFAULT_MAX_MESSAGE: Final = 4 * 1024 * 1024

_EOM_TAIL: Final = len(EOM) - 1
_MAX_SIZE_DIGITS: Final = len(str(MAX_CHUNK_SIZE))
_LF: Final = 0x0A
_HASH: Final = 0x23
_ZERO: Final = 0x30
_ONE: Final = 0x31
_NINE: Final = 0x39
_XML_SPACE: Final = b" \t\r\n"
_BLANKS: Final = re.compile(rb"[ \t\r\n]*")


def _skip_blanks(src: bytes | bytearray, pos: int) -> int:
    match = _BLANKS.match(src, pos)
    return match.end() if match else pos


class FramingError(SessionTerminated):
    """A framing violation. ``completed`` holds the messages that the same ``feed`` (or
    ``start_chunked``) completed before the violation: they were validly framed, and whether they
    are processed must not depend on how the byte stream happened to be sliced."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.completed: list[bytes] = []


class _Mode(enum.Enum):
    HELLO = "hello"  # EOM framing, stop after the first message
    HELD = "held"  # hello returned; the bytes after it wait for the framing decision
    EOM = "eom"
    CHUNKED = "chunked"
    BROKEN = "broken"  # a framing error was raised; the session must be closed


class FrameDecoder:
    """Incremental RFC 6242 decoder for one NETCONF session.

    Runs in linear time in the number of bytes fed: the EOM search resumes where the previous one
    stopped (keeping only a 5-byte overlap), and chunk data is sliced straight from the fed bytes
    without passing through an intermediate buffer.
    """

    __slots__ = ("_buf", "_mode", "_msg_len", "_parts", "_remaining", "_scan", "max_message")

    def __init__(self, max_message: int = DEFAULT_MAX_MESSAGE) -> None:
        if max_message < 1:
            raise ValueError("max_message must be positive")
        self.max_message = max_message
        self._mode = _Mode.HELLO
        # EOM: the unterminated message; chunked: only a partial chunk header (<= 13 bytes).
        self._buf = bytearray()
        self._scan = 0
        self._parts: list[bytes] = []
        self._msg_len = 0
        self._remaining = 0

    @property
    def chunked(self) -> bool:
        """True once chunked framing (base:1.1) is in effect."""
        return self._mode is _Mode.CHUNKED

    @property
    def in_message(self) -> bool:
        """True while part of a message has arrived but not its end (for a slowloris timer)."""
        if self._mode is _Mode.CHUNKED:
            return bool(self._buf or self._parts or self._remaining)
        return bool(self._buf) and self._mode is not _Mode.HELD

    @property
    def broken(self) -> bool:
        """True once a framing error was raised: every later feed raises too."""
        return self._mode is _Mode.BROKEN

    def feed(self, data: bytes) -> list[bytes]:
        """Consume received bytes and return the messages they complete, in order.

        ``feed(b"")`` decodes bytes held after the hello under EOM framing. Raises
        :class:`FramingError` (carrying the messages completed before the error).
        """
        mode = self._mode
        if mode is _Mode.BROKEN:
            raise SessionTerminated("NETCONF framing already failed")
        if mode is _Mode.HELD:
            self._mode = mode = _Mode.EOM
        out: list[bytes] = []
        try:
            if mode is _Mode.CHUNKED:
                self._decode_chunked(data, out)
            else:
                self._decode_eom(data, out)
        except FramingError as exc:
            exc.completed = out
            raise
        return out

    def start_chunked(self) -> list[bytes]:
        """Switch to chunked framing; return messages completed by bytes held since the hello."""
        if self._mode is _Mode.CHUNKED:
            return []
        if self._mode is _Mode.BROKEN:
            # The feed that completed the hello also broke the framing (held bytes over the cap).
            raise SessionTerminated("NETCONF framing already failed")
        if self._mode is _Mode.HELLO and self._buf:
            raise RuntimeError("start_chunked() called in the middle of the hello")
        if self._mode not in (_Mode.HELLO, _Mode.HELD):
            raise RuntimeError("start_chunked() is only valid right after the hello")
        self._mode = _Mode.CHUNKED
        held = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        out: list[bytes] = []
        if held:
            try:
                self._decode_chunked(held, out)
            except FramingError as exc:
                exc.completed = out
                raise
        return out

    def encode(self, msg: bytes) -> bytes:
        """Frame an outgoing message for the framing currently in effect."""
        return encode_chunked(msg) if self._mode is _Mode.CHUNKED else encode_eom(msg)

    def _fail(self, reason: str) -> FramingError:
        self._mode = _Mode.BROKEN
        # Rebind rather than clear: a memoryview of the old buffer may still be open.
        self._buf = bytearray()
        self._parts = []
        return FramingError(reason)

    def _decode_eom(self, data: bytes, out: list[bytes]) -> None:
        buf = self._buf
        if buf:
            buf += data
            src: bytes | bytearray = buf
            scan = self._scan
            start = 0
        else:
            # Nothing pending: search the caller's bytes directly and copy only the leftover.
            src = data
            scan = start = _skip_blanks(src, 0) if self._mode is _Mode.EOM else 0
        end = len(src)
        limit = self.max_message
        with memoryview(src) as view:
            while self._mode is not _Mode.HELD:
                idx = src.find(EOM, scan)
                if idx < 0:
                    break
                if idx - start > limit:
                    raise self._fail("NETCONF message exceeds the size limit")
                msg = bytes(view[start:idx])
                if msg[:1].isspace():
                    msg = msg.lstrip(_XML_SPACE)  # only after the hello, see below
                if msg:
                    out.append(msg)
                start = idx + len(EOM)
                if self._mode is _Mode.HELLO:
                    # Not skipping blanks here: under chunked framing they are the header's LF.
                    # A blank "message" is no hello: it is dropped, as after the hello, and the
                    # hello is still awaited (the session switches framing on the real one).
                    if msg:
                        self._mode = _Mode.HELD
                else:
                    # Peers often send a newline after ]]>]]>; XML forbids blanks before <?xml,
                    # and dropping them keeps in_message false between messages.
                    start = _skip_blanks(src, start)
                scan = start
            pending = end - start
            if self._mode is _Mode.HELD:
                # Held bytes may hold several messages; bound them like one message.
                if pending > limit:
                    raise self._fail("NETCONF message exceeds the size limit")
                self._scan = 0
            else:
                # The last 5 pending bytes may be the start of a delimiter.
                if pending - _EOM_TAIL > limit:
                    raise self._fail("NETCONF message exceeds the size limit")
                self._scan = max(scan, end - _EOM_TAIL) - start
            if src is not buf and pending:
                buf += view[start:]
        if src is buf and start:
            del buf[:start]  # O(1) in CPython: bytearray moves its start pointer

    def _decode_chunked(self, data: bytes, out: list[bytes]) -> None:
        if self._buf:
            src: bytes = bytes(self._buf) + data
            self._buf.clear()
        else:
            src = data
        pos = 0
        end = len(src)
        whole = type(src) is bytes  # immutable, so a chunk spanning all of it needs no copy
        with memoryview(src) as view:
            while pos < end:
                if self._remaining:
                    take = min(self._remaining, end - pos)
                    if whole and take == end:
                        self._parts.append(src)
                    else:
                        self._parts.append(bytes(view[pos : pos + take]))
                    pos += take
                    self._remaining -= take
                    continue
                header = self._parse_header(src, pos, end)
                if header is None:
                    self._buf += view[pos:]
                    break
                size, pos = header
                if size:
                    if self._msg_len + size > self.max_message:
                        # Refused on the announcement, before any of the chunk is buffered.
                        raise self._fail("NETCONF message exceeds the size limit")
                    self._msg_len += size
                    self._remaining = size
                    continue
                if not self._parts:
                    raise self._fail("end-of-chunks marker without a preceding chunk")
                parts = self._parts
                out.append(parts[0] if len(parts) == 1 else b"".join(parts))
                self._parts = []
                self._msg_len = 0

    def _parse_header(self, src: bytes, pos: int, end: int) -> tuple[int, int] | None:
        """Parse a chunk header or end-of-chunks at pos: (size or 0, next pos), None if incomplete.

        Validates every byte as soon as it is available, so garbage fails without waiting.
        """
        avail = end - pos
        if src[pos] != _LF:
            raise self._fail("invalid chunk header: expected LF")
        if avail < 2:
            return None
        if src[pos + 1] != _HASH:
            raise self._fail("invalid chunk header: expected '#'")
        if avail < 3:
            return None
        first = src[pos + 2]
        if first == _HASH:
            if avail < 4:
                return None
            if src[pos + 3] != _LF:
                raise self._fail("invalid end-of-chunks marker")
            return 0, pos + 4
        if not _ONE <= first <= _NINE:
            raise self._fail("invalid chunk size: must start with a digit 1-9")
        digits = pos + 2
        i = digits + 1
        while i < end and _ZERO <= src[i] <= _NINE:
            i += 1
            if i - digits > _MAX_SIZE_DIGITS:
                raise self._fail("invalid chunk size: too many digits")
        if i == end:
            return None
        if src[i] != _LF:
            raise self._fail("invalid chunk header: expected LF after the size")
        size = int(src[digits:i])
        if size > MAX_CHUNK_SIZE:
            raise self._fail("invalid chunk size: above 4294967295")
        return size, i + 1


def encode_eom(msg: bytes) -> bytes:
    """Frame a message for base:1.0. Refuses a message that contains the delimiter."""
    if EOM in msg:
        # The peer would split it; 1.0 framing has no escape mechanism.
        raise ValueError("message contains the end-of-message delimiter")
    return msg + EOM


def encode_chunked(msg: bytes, max_chunk: int = MAX_CHUNK_SIZE) -> bytes:
    """Frame a message for base:1.1 as one chunk (or several if longer than max_chunk)."""
    if not msg:
        raise ValueError("chunked framing cannot carry an empty message")
    if not 1 <= max_chunk <= MAX_CHUNK_SIZE:
        raise ValueError("max_chunk out of range")
    n = len(msg)
    if n <= max_chunk:
        return b"".join((b"\n#%d\n" % n, msg, END_OF_CHUNKS))
    pieces: list[bytes | memoryview] = []
    with memoryview(msg) as view:
        for off in range(0, n, max_chunk):
            piece = view[off : off + max_chunk]
            pieces.append(b"\n#%d\n" % len(piece))
            pieces.append(piece)
        pieces.append(END_OF_CHUNKS)
        return b"".join(pieces)
