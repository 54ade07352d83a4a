"""Fuzz target: the DTCP message decoder (framing, request line, headers, caps, escapes).

The input is two bytes seeding how the stream is sliced, then the bytes a mediation device sends
on one channel. Documented outcome: a list of ``Request`` and ``DecodeError``; the decoder raises
nothing.

Invariants:
- Slicing independence: the stream fed whole and in random pieces gives the same requests and
  the same error statuses in the same order. An error's detail, Seq and version may differ: a
  message rejected while incomplete (line or header cap) is judged on the bytes seen so far.
- Every request is well-formed: a supported method, header names of the grammar, values without
  CR, LF or control characters, ``signed_bytes`` a prefix of the stream's message.
- Round trip: the request written back out (request line, headers, Authentication-Info) decodes
  to the same request.
- ``unescape(escape(value)) == value`` for every unescaped header value.
"""

from __future__ import annotations

import re

from flowtap.dtcp.headers import escape, unescape
from flowtap.dtcp.message import SUPPORTED_METHODS, DecodeError, MessageDecoder, Request
from tests.fuzz.support import ByteReader, check, split_points

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

Item = Request | DecodeError


def _key(item: Item) -> tuple[object, ...]:
    if isinstance(item, Request):
        return ("request", item.method, item.version, list(item.headers), item.signed_bytes,
                item.authentication_info)  # fmt: skip
    return ("error", item.status, item.fatal)


def decode(pieces: list[bytes]) -> list[Item]:
    decoder = MessageDecoder()
    out: list[Item] = []
    for piece in pieces:
        out += decoder.feed(piece)
    return out


def _write(request: Request) -> bytes:
    lines = [f"{request.method} DTCP/{request.version}"]
    lines += [f"{name}: {value}" for name, value in request.headers]
    if request.authentication_info is not None:
        lines.append(f"Authentication-Info: {request.authentication_info}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _check_request(request: Request, stream: bytes) -> None:
    check(request.method in SUPPORTED_METHODS, "unsupported method decoded as a request")
    check(request.signed_bytes in stream, "signed bytes are not from the stream")
    for name, value in request.headers:
        check(_NAME.fullmatch(name) is not None, "header name outside the grammar")
        check(_BAD_VALUE.search(value) is None, "control character in a header value")
        check(value == value.strip(" \t"), "header value keeps surrounding blanks")
        try:
            plain = unescape(value)
        except ValueError:
            continue  # documented: escapes that do not form UTF-8
        check(unescape(escape(plain)) == plain, "escape does not round-trip")
    again = decode([_write(request)])
    check(len(again) == 1 and isinstance(again[0], Request), "re-written request did not decode")
    twin = again[0]
    assert isinstance(twin, Request)
    check(list(twin.headers) == list(request.headers), "re-written request: headers differ")
    check((twin.method, twin.version, twin.authentication_info)
          == (request.method, request.version, request.authentication_info),
          "re-written request: request line or Authentication-Info differs")  # fmt: skip


def fuzz_one(data: bytes) -> None:
    reader = ByteReader(data)
    seed = reader.take(2)
    stream = reader.rest()
    whole = decode([stream])
    sliced = decode(split_points(stream, seed))
    check(list(map(_key, whole)) == list(map(_key, sliced)), "slicing changed the decoded items")
    for item in whole:
        if isinstance(item, Request):
            _check_request(item, stream)
        else:
            check(item.status in (400, 501, 505), f"unexpected decode status {item.status}")
