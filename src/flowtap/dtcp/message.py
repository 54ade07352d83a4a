"""Sans-I/O framing of DTCP requests over SSH (draft-cavuto-dtcp-03 §5, §8; fact sheet §1.3-1.4).

``MessageDecoder.feed(bytes)`` returns, in arrival order, one ``Request`` or one ``DecodeError``
per message; a message ends with an empty line and several messages may share a channel.

Decisions (the fact sheet leaves these open):
- Lines end with CRLF only. A bare LF or a bare CR anywhere in a message makes it a 400: accepting
  LF would let a lone LF inside a value split it into a second, injected header (SECURITY D3).
  Framing still resynchronises on LF LF, so the session stays usable after such a message.
- Empty lines before a request line are skipped (keep-alive CRLFs between messages are harmless).
- ``Name *WSP ":" *WSP value``: header names are case-insensitive and limited to
  ``[A-Za-z0-9][A-Za-z0-9_.-]*``; a line that starts with whitespace (folding), has no colon, or
  carries a C0 control character (TAB excepted), DEL or invalid UTF-8 is a 400. Trailing whitespace
  is dropped. Lines after ``Authentication-Info`` are not interpreted at all.
- A repeated header is a 400 (SECURITY D3, which overrides the fact sheet's "first value wins",
  §1.3): two ``Csource-ID`` lines must not let one identity be checked and another logged.
  Only ``X-`` extensions outside the catalogue may repeat (``headers.single_valued``); they are
  ignored anyway. The reply echoes no Seq when ``Seq`` itself is the duplicate.
- ``\\ddd`` escapes name one byte (000-255) of the value's UTF-8 encoding; any other backslash is
  a 400. Values are stored still escaped: ``fields`` splits lists on the literal commas first and
  unescapes each item, so an escape never acts as a separator.
- Request line: ``METHOD 1*WSP "DTCP/" major "." minor``. ``DTCP`` and methods are case-sensitive
  (``dtcp/0.7`` is a 400, ``add`` an unknown method); major has 1-3 digits, minor exactly one
  ("compared numerically, with a single digit after the decimal point", draft §6.7).
- Versions 0.5-0.8 are served and the reply echoes the client's string. A newer version gets 505
  written in 0.8 (our highest), an older one 505 written in 0.5 (our lowest) (draft §6.7).
- Methods other than ADD, DELETE, REFRESH, LIST, NOOP get 501, including the radius-flow-tap-only
  ENABLE/DISABLE (this appliance has no drop policies). The version (505) and the method (501)
  are judged before any header, since a newer version may have a grammar we cannot know.
- Caps: 8 KiB per line (CRLF excluded), 64 header lines (Authentication-Info and any line after
  it included), 64 KiB per message. Breaking the line or header cap is a 400 and the rest of that
  message is skipped up to its empty line. Breaking the message cap, even while skipping, is
  fatal (reply, then close the channel: SECURITY D12); the decoder then ignores all input.
- Framing hygiene (CRLF endings, no control characters) covers every line of a message, also
  those after Authentication-Info; only their meaning is ignored.
- A ``DecodeError`` carries the Seq when one can be read from the message, so its reply can
  echo it, and never carries header values (criteria are confidential).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flowtap.dtcp.headers import Headers, escape, single_valued, unescape

MAX_LINE_BYTES = 8192
MAX_HEADERS = 64
MAX_MESSAGE_BYTES = 65536

LOWEST_VERSION = "0.5"
HIGHEST_VERSION = "0.8"
DEFAULT_VERSION = "0.7"
"""Version for replies when the request's own version could not be read (Junos' default)."""
SUPPORTED_VERSIONS = ((0, 5), (0, 8))
SUPPORTED_METHODS = frozenset({"ADD", "DELETE", "REFRESH", "LIST", "NOOP"})
AUTHENTICATION_INFO = "authentication-info"

_U64_MAX = 2**64 - 1

_VERSION = re.compile(r"DTCP/([0-9]{1,3})\.([0-9])")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_WELL_FORMED_ESCAPES = re.compile(r"(?:[^\\]|\\(?:[01][0-9]{2}|2[0-4][0-9]|25[0-5]))*", re.DOTALL)

__all__ = [
    "DEFAULT_VERSION",
    "HIGHEST_VERSION",
    "LOWEST_VERSION",
    "MAX_HEADERS",
    "MAX_LINE_BYTES",
    "MAX_MESSAGE_BYTES",
    "DecodeError",
    "Headers",
    "MessageDecoder",
    "Request",
    "escape",
    "unescape",
    "version_tuple",
]
_SALVAGE_SEQ = re.compile(rb"^[Ss][Ee][Qq][ \t]*:[ \t]*([0-9]{1,20})[ \t]*\r?$", re.MULTILINE)
# A header line as _parse_header accepts it (name, blanks, the first colon, the value without
# its surrounding blanks), over lines joined by LF: what _fast_request reads in one C call.
_HEADER_LINE = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.-]*)[ \t]*:[ \t]*((?:[^\n]*[^ \t\n])?)[ \t]*$", re.MULTILINE
)


@dataclass(frozen=True, slots=True, repr=False)
class Request:
    """One framed request. ``signed_bytes`` is exactly what ``Authentication-Info`` covers."""

    method: str
    version: str
    headers: Headers
    signed_bytes: bytes
    authentication_info: str | None

    @property
    def version_tuple(self) -> tuple[int, int]:
        return version_tuple(self.version)

    def __repr__(self) -> str:
        return f"Request({self.method} DTCP/{self.version}, {self.headers!r})"


@dataclass(frozen=True, slots=True)
class DecodeError:
    """A message that must be answered with ``status`` instead of being processed.

    ``version`` is the version to write the reply in (None: the session's default); ``fatal``
    means reply, then close the channel.
    """

    status: int
    detail: str
    version: str | None = None
    seq: int | None = None
    method: str | None = None
    fatal: bool = False
    parameters: tuple[tuple[str, str], ...] = ()  # (header, raw value) to echo: what is wrong
    signed_bytes: bytes | None = field(default=None, repr=False)
    authentication_info: str | None = field(default=None, repr=False)


class _Reject(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class MessageDecoder:
    """Incremental decoder for one channel; feed it bytes as they arrive."""

    def __init__(
        self,
        *,
        max_line: int = MAX_LINE_BYTES,
        max_headers: int = MAX_HEADERS,
        max_message: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self._max_line = max_line
        self._max_lines = max_headers + 1
        self._max_message = max_message
        self._buf = bytearray()
        self._msg_start = 0
        self._line_start = 0
        self._pos = 0
        self._lines = 0
        self._skipping = False
        self._skip_line = b""  # first bytes of the skipped message's current line
        self._skipped = 0
        self._failed = False

    @property
    def failed(self) -> bool:
        """True after a fatal error: the channel must be closed and input is ignored."""
        return self._failed

    @property
    def pending(self) -> int:
        """Bytes of a message received but not complete yet (for partial-message timeouts)."""
        return len(self._buf) - self._msg_start

    def feed(self, data: bytes) -> list[Request | DecodeError]:
        if self._failed:
            return []
        out: list[Request | DecodeError] = []
        self._buf += data
        while not self._failed:
            if self._skipping and not self._skip_to_message_end(out):
                break
            if not self._scan(out):
                break
        self._compact()
        return out

    def _scan(self, out: list[Request | DecodeError]) -> bool:
        """True when a message ended (or a rejected one started being skipped) and scanning
        should go on; False when more input is needed."""
        buf = self._buf
        if self._lines == 0:
            self._skip_blank_lines()
        # Fast path in C: find the empty line. The bare-LF search stops where the CRLF one
        # matched, so a pipelined buffer is never rescanned past the current message.
        start = max(self._msg_start, self._pos - 2)
        crlf = buf.find(b"\n\r\n", start)
        bare = buf.find(b"\n\n", start, crlf + 2 if crlf >= 0 else len(buf))
        end = bare + 2 if bare >= 0 else crlf + 3 if crlf >= 0 else -1
        if end >= 0:
            if end - self._msg_start > self._max_message:
                self._pos = end
                self._fail(out)
                return False
            message = bytes(buf[self._msg_start : end])
            self._msg_start = self._line_start = self._pos = end
            self._lines = 0
            out.append(_decode_message(message, self._max_line, self._max_lines))
            return True
        return self._check_incomplete(out)

    def _skip_blank_lines(self) -> None:
        buf, start = self._buf, self._msg_start
        while True:
            if buf.startswith(b"\r\n", start):
                start += 2
            elif buf.startswith(b"\n", start):
                start += 1
            else:
                break
        if start != self._msg_start:
            self._msg_start = self._line_start = start
            self._pos = max(self._pos, start)

    def _check_incomplete(self, out: list[Request | DecodeError]) -> bool:
        """Enforce the caps on a message whose end has not arrived, looking at new bytes only."""
        buf = self._buf
        while (lf := buf.find(b"\n", self._pos)) >= 0:
            self._lines += 1
            self._pos = lf
            if lf - self._line_start > self._max_line + 1:
                self._reject_rest(out, "line too long")
                return True
            if self._lines > self._max_lines:
                self._reject_rest(out, "too many header lines")
                return True
            self._line_start = self._pos = lf + 1
        self._pos = len(buf)
        if len(buf) - self._line_start > self._max_line + 1:
            self._reject_rest(out, "line too long")
            return True
        if len(buf) - self._msg_start > self._max_message:
            self._fail(out)
        return False

    def _reject_rest(self, out: list[Request | DecodeError], detail: str) -> None:
        # Only what precedes the offending line's end belongs to this message for certain.
        message = bytes(self._buf[self._msg_start : self._pos])
        out.append(DecodeError(400, detail, _salvage_version(message), _salvage_seq(message)))
        self._skipped = self._pos - self._msg_start
        del self._buf[: self._pos]
        self._msg_start = self._line_start = self._pos = self._lines = 0
        self._skipping = True
        self._skip_line = b"x"  # mid-line: the bytes before _pos were not an empty line

    def _skip_to_message_end(self, out: list[Request | DecodeError]) -> bool:
        """Drop the rest of a rejected message; True once its empty line has been consumed.

        Only the first two bytes of the current line are kept: enough to tell an empty line
        ("" or "\\r") from any other, so a 10 MB line costs no memory.
        """
        buf = self._buf
        start = 0
        while True:
            lf = buf.find(b"\n", start)
            end = lf if lf >= 0 else len(buf)
            line = (self._skip_line + bytes(buf[start : min(end, start + 2)]))[:2]
            if lf < 0:
                self._skip_line = line
                self._skipped += len(buf)
                buf.clear()
                if self._skipped > self._max_message:
                    self._fail(out)
                return False
            if line in (b"", b"\r"):
                self._skipped += lf + 1
                del buf[: lf + 1]
                self._skipping = False
                self._skip_line = b""
                return True
            self._skip_line = b""
            start = lf + 1

    def _fail(self, out: list[Request | DecodeError]) -> None:
        message = bytes(self._buf[self._msg_start : self._pos])
        version, seq = _salvage_version(message), _salvage_seq(message)
        out.append(DecodeError(400, "message too large", version, seq, fatal=True))
        self._failed = True
        self._buf.clear()
        self._msg_start = self._line_start = self._pos = self._lines = 0

    def _compact(self) -> None:
        if self._msg_start:
            del self._buf[: self._msg_start]
            self._line_start -= self._msg_start
            self._pos -= self._msg_start
            self._msg_start = 0


def _decode_message(message: bytes, max_line: int, max_lines: int) -> Request | DecodeError:
    """Parse one complete message, which ends with its empty line."""
    version: str | None = None
    method: str | None = None
    try:
        first = message[: message.find(b"\n")].removesuffix(b"\r")
        method, version, unsupported = _parse_request_line(first)
        if unsupported is not None:
            return DecodeError(505, unsupported, version, _salvage_seq(message), method)
        if method not in SUPPORTED_METHODS:
            seq = _salvage_seq(message)
            return DecodeError(501, "method not implemented", version, seq, method)
        _check_hygiene(message)
        lines = message[:-4].split(b"\r\n")
        if len(lines) > max_lines:
            raise _Reject(400, "too many header lines")
        if max(map(len, lines)) > max_line:
            raise _Reject(400, "line too long")
        fast = _fast_request(message, lines, method, version)
        if fast is not None:
            return fast
        headers = Headers()
        offset = len(lines[0]) + 2
        for raw in lines[1:]:
            name, value = _parse_header(raw)
            key = name.lower()
            if key == AUTHENTICATION_INFO:
                return Request(method, version, headers, message[:offset], value)
            if key in headers and single_valued(key):
                if key == "seq":  # neither copy is echoed: it would read as the reply's Seq
                    return DecodeError(400, f"duplicate header {name}", version, None, method)
                return DecodeError(400, f"duplicate header {name}", version,
                                   _salvage_seq(message), method, parameters=((name, value),))
            headers.add(name, value)
            offset += len(raw) + 2
        return Request(method, version, headers, message[:offset], None)
    except _Reject as reject:
        return DecodeError(reject.status, reject.detail, version, _salvage_seq(message), method)


def _fast_request(message: bytes, lines: list[bytes], method: str, version: str) -> Request | None:
    """The request the header loop of :func:`_decode_message` would build, when every header
    line is one it accepts as is (no escape, no repeated single-valued header, valid UTF-8):
    the lines are matched in one regular-expression pass instead of one by one, which was a
    third of an ADD's decoding. None whenever any line needs the loop (a refusal, an escape):
    the loop then decides, so the answer is always the loop's (tests/dtcp/test_message.py)."""
    if b"\\" in message:
        return None
    try:
        text = message[len(lines[0]) + 2 : -4].decode("utf-8")
    except UnicodeDecodeError:
        return None
    pairs: list[tuple[str, str]] = _HEADER_LINE.findall(text.replace("\r\n", "\n"))
    if len(pairs) != len(lines) - 1:
        return None
    keys = [name.lower() for name, _ in pairs]
    signed_end, authentication = len(message) - 2, None
    if AUTHENTICATION_INFO in keys:  # what follows it is not read: it is not signed
        index = keys.index(AUTHENTICATION_INFO)
        authentication = pairs[index][1]
        signed_end = sum(len(raw) + 2 for raw in lines[: index + 1])
        pairs, keys = pairs[:index], keys[:index]
    if len(set(keys)) != len(keys):  # a repeat, allowed or not: the loop decides
        return None
    return Request(method, version, Headers.lowered(pairs, keys), message[:signed_end],
                   authentication)  # fmt: skip


def _check_hygiene(message: bytes) -> None:
    """Every line, even after Authentication-Info, ends with CRLF and holds no other CR or LF
    and no control character but TAB."""
    lf = message.count(b"\n")
    if message.count(b"\r\n") != lf:
        raise _Reject(400, "line not terminated by CRLF")
    if message.count(b"\r") != lf:
        raise _Reject(400, "bare CR in line")
    if _CONTROL.search(message):
        raise _Reject(400, "control character in line")


def _parse_request_line(line: bytes) -> tuple[str, str, str | None]:
    """(method, version, why-505) for a request line; raises _Reject(400) if malformed."""
    if line[:1] in (b" ", b"\t"):
        raise _Reject(400, "whitespace before method")
    if not line.isascii() or b"\r" in line or _CONTROL.search(line):
        raise _Reject(400, "request line is not printable ASCII")
    parts = line.decode("ascii").split()
    if len(parts) != 2:
        raise _Reject(400, "request line is not 'METHOD DTCP/x.y'")
    method, protocol = parts
    matched = _VERSION.fullmatch(protocol)
    if matched is None:
        raise _Reject(400, "malformed DTCP version")
    requested = (int(matched.group(1)), int(matched.group(2)))
    if requested > SUPPORTED_VERSIONS[1]:
        return method, HIGHEST_VERSION, "client version newer than server"
    if requested < SUPPORTED_VERSIONS[0]:
        return method, LOWEST_VERSION, "client version older than server supports"
    return method, protocol[5:], None


def _parse_header(line: bytes) -> tuple[str, str]:
    if line[:1] in (b" ", b"\t"):
        raise _Reject(400, "header line starts with whitespace")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _Reject(400, "header line is not UTF-8") from None
    name, colon, value = text.partition(":")
    if not colon:
        raise _Reject(400, "header line without colon")
    name = name.rstrip(" \t")
    if _NAME.fullmatch(name) is None:
        raise _Reject(400, "malformed header name")
    value = value.strip(" \t")
    if "\\" in value and _WELL_FORMED_ESCAPES.fullmatch(value) is None:
        raise _Reject(400, f"malformed \\ddd escape in {name}")
    return name, value


def _salvage_seq(message: bytes) -> int | None:
    """The first syntactically valid Seq in a rejected message, so the error reply can echo it."""
    matched = _SALVAGE_SEQ.search(message)
    if matched is None:
        return None
    seq = int(matched.group(1))
    return seq if seq <= _U64_MAX else None


def _salvage_version(message: bytes) -> str | None:
    first = message.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        _, version, unsupported = _parse_request_line(first)
    except _Reject:
        return None
    return version if unsupported is None else None


def version_tuple(version: str) -> tuple[int, int]:
    """``"0.7"`` as ``(0, 7)``, for numeric comparison (draft §6.7)."""
    major, _, minor = version.partition(".")
    return int(major), int(minor)
