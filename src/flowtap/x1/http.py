"""The HTTP/1.1 an X1 NE needs (RFC 9112): requests read from a stream, responses made as bytes.

Strict where leniency is how requests are smuggled: one Content-Length or chunked, never both;
no obsolete line folding; bare LF accepted as line end (RFC 9112 2.2), bare CR refused. Every
size has a limit and every read a deadline (the caller's), so a slow or endless client costs one
connection and never the service. Nothing here knows X1: the service decides what a path means.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate

MAX_HEAD = 16 * 1024  # request line + header fields
MAX_HEADERS = 64
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/(\d)\.(\d)")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})(?:;[^\r\n]*)?")

REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
           413: "Content Too Large", 415: "Unsupported Media Type", 417: "Expectation Failed",
           431: "Request Header Fields Too Large", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}  # fmt: skip


class HttpError(Exception):
    """A request that gets an HTTP error status; the connection closes after the answer."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    minor: int  # HTTP/1.<minor>
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        return "keep-alive" in tokens if self.minor == 0 else "close" not in tokens

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def parse_head(head: bytes) -> Request:
    """Request line and header fields (``head`` ends before the empty line).

    Raises:
        HttpError: malformed (400), an HTTP major version other than 1 (505), too many fields (431).
    """
    if b"\r" in head.replace(b"\r\n", b"\n"):
        raise HttpError(400, "a bare CR in the request head")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise HttpError(400, "malformed request line")
    method, target, major, minor = match.groups()
    if major != b"1":
        raise HttpError(505, "only HTTP/1.x is served")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            # a field line starting with whitespace is obsolete folding (RFC 9112 5.2)
            raise HttpError(400, "malformed header field")
        key = name.decode().lower()
        text = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if int(minor) >= 1 and "host" not in headers:
        raise HttpError(400, "HTTP/1.1 request without Host")
    return Request(method.decode(), target.decode("latin-1"), int(minor), headers)


def body_length(request: Request, max_body: int) -> int | None:
    """The Content-Length to read, or None for a chunked body.

    Raises:
        HttpError: both or a malformed length (400), unknown coding (501), too large (413).
    """
    coding = request.headers.get("transfer-encoding")
    length = request.headers.get("content-length")
    if coding is not None:
        if length is not None:
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if coding.strip().lower() != "chunked":
            raise HttpError(501, "only the chunked transfer coding is accepted")
        return None
    if length is None:
        return 0
    if not length.isdigit() or len(length) > 12:
        raise HttpError(400, "malformed Content-Length")  # "5, 5" (repeated fields) included
    if int(length) > max_body:
        raise HttpError(413, f"the body exceeds {max_body} bytes")
    return int(length)


async def read_request(
    reader: asyncio.StreamReader,
    max_body: int,
    accept_head: Callable[[Request, bool], Awaitable[None]],
) -> Request | None:
    """The next request on the connection, its body included; None at a clean end of stream
    between requests. ``accept_head`` sees the head before any of the body is read: it raises
    :class:`HttpError` to refuse it (the body is then never read), or sends ``100 Continue``
    when its second argument says the client waits for that (``Expect: 100-continue``).

    Raises:
        HttpError: the request cannot be served.
        asyncio.IncompleteReadError, ConnectionError: the peer went away mid-request.
    """
    try:
        head = await _read_head(reader)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    request = parse_head(head)
    expect = request.headers.get("expect", "").lower()
    if expect and expect != "100-continue":
        raise HttpError(417, "only Expect: 100-continue is understood")
    length = body_length(request, max_body)
    await accept_head(request, bool(expect))
    if length is None:
        body = await _read_chunked(reader, max_body)
    else:
        body = await reader.readexactly(length) if length else b""
    return Request(request.method, request.target, request.minor, request.headers, body)


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    """Bytes up to the empty line that ends the head (CRLF or LF line ends), without it."""
    lines: list[bytes] = []
    size = 0
    while True:
        line = await _read_line(reader, MAX_HEAD - size)
        size += len(line)
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue  # RFC 9112 2.2: ignore empty lines before the request line
            return b"".join(lines).rstrip(b"\r\n")
        lines.append(line)


async def _read_line(reader: asyncio.StreamReader, room: int) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    if len(line) > room:
        raise HttpError(431, "request head too large")
    return line


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        line = (await _read_line(reader, 1024)).rstrip(b"\r\n")
        match = _CHUNK_SIZE.fullmatch(line)
        if match is None:
            raise HttpError(400, "malformed chunk size")
        chunk = int(match.group(1), 16)
        if chunk == 0:
            break
        size += chunk
        if size > max_body:
            raise HttpError(413, f"the body exceeds {max_body} bytes")
        parts.append(await reader.readexactly(chunk))
        if await reader.readexactly(2) != b"\r\n":
            raise HttpError(400, "a chunk without its CRLF")
    trailer = 0
    while (line := await _read_line(reader, MAX_HEAD - trailer)) not in (b"\r\n", b"\n"):
        trailer += len(line)  # trailer fields: read and dropped (RFC 9112 7.1.2)
    return b"".join(parts)


def response(
    status: int,
    body: bytes = b"",
    *,
    content_type: str | None = None,
    close: bool = False,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """A whole HTTP/1.1 response."""
    fields = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
              f"Date: {formatdate(usegmt=True)}", "Server: flowtap",
              f"Content-Length: {len(body)}"]  # fmt: skip
    if content_type is not None:
        fields.append(f"Content-Type: {content_type}")
    fields += [f"{name}: {value}" for name, value in extra]
    if close:
        fields.append("Connection: close")
    return ("\r\n".join(fields) + "\r\n\r\n").encode("latin-1") + body


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
