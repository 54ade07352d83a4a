"""DTCP replies in the Junos layout, signed (fact sheet §3.1, §3.3; draft §5, §6.1).

Every reply is ``DTCP/<version> <code> <reason>``, upper-case headers as Junos writes them, then
``AUTHENTICATION-INFO`` (HMAC-SHA1 over everything before it) and an empty line. The version is
the request's own string (draft §6.7.2). Junos order is SEQ, the method's result, TIMESTAMP:

    DTCP/0.7 200 OK                      DTCP/0.7 200 OK
    SEQ: 7                               SEQ: 10
    CRITERIA-ID: 2                       CRITERIA-COUNT: 1
    TIMESTAMP: 2011-02-13 15:56:49.609   TIMESTAMP: 2011-02-13 16:00:02.802
    AUTHENTICATION-INFO: 4880de4b...     AUTHENTICATION-INFO: 2834ff32...

Decisions:
- Error replies carry SEQ (omitted when the request had no readable Seq: nothing to echo), then
  the offending header as Error-Parameters (draft §6.2), upper-cased and as sent, then TIMESTAMP.
- LIST follows the Junos sample: SEQ, TIMESTAMP, then per entry CRITERIA-ID, CSOURCE-ID, CDEST-ID,
  CSOURCE-ADDRESS, FLAGS (when any), the Criteria block (non-wildcard filters, the timeouts given,
  X-JTAP-CDEST-*, X-JTAP-INPUT-INTERFACE, X-JTAP-IP-VERSION, X-MD-INTERCEPT-ID) if Criteria was
  asked, the Stats block (REMAINING-* for the timeouts of a non-static criterion,
  AVERAGE-BANDWIDTH, MATCHING-PACKETS, MATCHING-BYTES, NUM-REFRESH, LAST-REFRESH) if Stats was
  asked, and CRITERIA-NUM / CRITERIA-COUNT closing the entry. There is no per-entry TIMESTAMP: a
  second TIMESTAMP would confuse clients that grep for one; the add time is LAST-REFRESH until
  the first REFRESH, as on Junos. All entries go in one reply (one SSH channel, no datagrams).
- DTCP/0.5 LISTs have no CRITERIA-NUM/CRITERIA-COUNT; one NUM-CRITERIA follows the last entry
  (draft App.A.2).
- Filters are rendered canonically from the parsed spans (``a``, ``a/len`` when the span is a
  prefix, ``a-b``, ``*`` for a full range), not as the client spelled them.
- Identifiers are ``\\ddd``-escaped, so a client-chosen name can never add a line to a reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from flowtap.dtcp.auth_info import SSH_SIGNER, Signer
from flowtap.dtcp.filters import ADDRESS_MAX, BYTE_MAX, PORT_MAX, format_address
from flowtap.dtcp.intercept_id import render_intercept_id
from flowtap.dtcp.message import DEFAULT_VERSION, DecodeError, escape, version_tuple
from flowtap.dtcp.status import DtcpRequestError, reason_phrase
from flowtap.errors import DtcpError
from flowtap.intercept.criteria import AddressFilter, Criterion, Flag, Jmirror, Span, ValueFilter
from flowtap.intercept.stats import CriterionStats

_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f]")
_FLAG_TEXT = ((Flag.STATIC, "Static"), (Flag.SEND_ASYNC, "SendAsync"))
_TIMEOUT_NAMES = (("idle", "IDLE"), ("total", "TOTAL"), ("packets", "PACKETS"), ("bytes", "BYTES"))

Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One LIST row: the criterion, where its control source connects from, its figures."""

    criterion: Criterion
    csource_address: str
    """The control source's peer address (Junos: the mediation device's SSH peer)."""
    stats: CriterionStats


def format_timestamp(when: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS.mmm`` (server local time is the caller's choice of ``when``)."""
    # isoformat truncates to milliseconds as the strftime spelling did, at a quarter of its
    # cost (every reply has a TIMESTAMP); it appends an offset to an aware time, so drop it
    return when.replace(tzinfo=None).isoformat(" ", "milliseconds")


def encode_reply(
    version: str, status: int, headers: Headers, *, signer: Signer = SSH_SIGNER
) -> bytes:
    """Status line, ``headers`` in order, then the signature; values must already be wire-safe."""
    return signer.sign(_encode_lines([f"DTCP/{version} {status} {reason_phrase(status)}"], headers))


def _encode_lines(lines: list[str], headers: Headers) -> bytes:
    """``lines`` then ``headers`` as ``Name: value``, each ending with CRLF."""
    fields = [f"{name}: {value}" for name, value in headers]
    # one search over all names and values at once (per header, it was a LIST's main cost)
    if _UNSAFE_VALUE.search("".join(fields)):
        raise ValueError("control character in a reply header")
    return "".join(f"{line}\r\n" for line in lines + fields).encode("utf-8")


def add_reply(
    version: str, seq: int, criteria_id: int, when: datetime, *, signer: Signer = SSH_SIGNER
) -> bytes:
    result = [("CRITERIA-ID", str(criteria_id))]
    return encode_reply(version, 200, _around(seq, result, when), signer=signer)


def count_reply(
    version: str, seq: int, count: int, when: datetime, *, signer: Signer = SSH_SIGNER
) -> bytes:
    """The reply to DELETE and REFRESH: how many criteria were deleted or refreshed."""
    result = [("CRITERIA-COUNT", str(count))]
    return encode_reply(version, 200, _around(seq, result, when), signer=signer)


def noop_reply(version: str, seq: int, when: datetime, *, signer: Signer = SSH_SIGNER) -> bytes:
    return encode_reply(version, 200, _around(seq, [], when), signer=signer)


def error_reply(
    version: str,
    status: int,
    seq: int | None,
    when: datetime,
    *,
    parameters: Headers = (),
    signer: Signer = SSH_SIGNER,
) -> bytes:
    """A non-200 reply; ``parameters`` (name, wire value) are the Error-Parameters to echo."""
    echoed = [(name.upper(), value) for name, value in parameters]
    return encode_reply(version, status, _around(seq, echoed, when), signer=signer)


def dtcp_error_reply(
    error: DtcpError,
    version: str,
    seq: int | None,
    when: datetime,
    *,
    signer: Signer = SSH_SIGNER,
) -> bytes:
    """The reply for a refused request; a ``DtcpRequestError`` echoes its offending header."""
    echoed = error.parameters if isinstance(error, DtcpRequestError) else ()
    return error_reply(version, error.status, seq, when, parameters=echoed, signer=signer)


def decode_error_reply(
    error: DecodeError,
    when: datetime,
    *,
    default_version: str = DEFAULT_VERSION,
    signer: Signer = SSH_SIGNER,
) -> bytes:
    """The reply for a message the decoder refused, in its version or ``default_version``."""
    version = error.version or default_version
    return error_reply(version, error.status, error.seq, when, parameters=error.parameters,
                       signer=signer)  # fmt: skip


def list_reply(
    version: str,
    seq: int,
    entries: Sequence[ListEntry],
    flags: Flag,
    when: datetime,
    *,
    signer: Signer = SSH_SIGNER,
) -> bytes:
    """The reply to LIST; ``flags`` (CRITERIA, STATS or BOTH) selects the blocks per entry."""
    return b"".join(list_reply_parts(version, seq, [entries], len(entries), flags, when,
                                     signer=signer))  # fmt: skip


def list_reply_parts(
    version: str,
    seq: int,
    slices: Iterable[Sequence[ListEntry]],
    total: int,
    flags: Flag,
    when: datetime,
    *,
    signer: Signer = SSH_SIGNER,
) -> Iterator[bytes]:
    """The reply to LIST in pieces: the head, one piece per slice of ``total`` entries (pulled
    from ``slices`` only when that piece is asked for), then the signature. Joined, they are
    the bytes of one reply, signed as a whole, so a session can write a long LIST slice by
    slice and let other sessions run in between."""
    mac = signer.start()
    head = _encode_lines([f"DTCP/{version} 200 {reason_phrase(200)}"], [
        ("SEQ", str(seq)), ("TIMESTAMP", format_timestamp(when))])  # fmt: skip
    mac.update(head)
    yield head
    legacy = version_tuple(version) < (0, 6)
    count = str(total)
    number = 0
    for part in slices:
        headers: list[tuple[str, str]] = []
        for entry in part:
            number += 1
            headers.extend(_entry(entry, flags))
            if not legacy:
                headers.extend((("CRITERIA-NUM", str(number)), ("CRITERIA-COUNT", count)))
        piece = _encode_lines([], headers)
        mac.update(piece)
        yield piece
    if number != total:
        raise ValueError("LIST slices do not hold the announced number of entries")
    tail = _encode_lines([], [("NUM-CRITERIA", count)]) if legacy else b""
    mac.update(tail)
    yield tail + signer.trailer(mac)


def _around(seq: int | None, result: list[tuple[str, str]], when: datetime) -> Headers:
    head = [] if seq is None else [("SEQ", str(seq))]
    return [*head, *result, ("TIMESTAMP", format_timestamp(when))]


def _entry(entry: ListEntry, flags: Flag) -> list[tuple[str, str]]:
    criterion = entry.criterion
    headers = [
        ("CRITERIA-ID", str(criterion.criteria_id)),
        ("CSOURCE-ID", escape(criterion.csource_id)),
        ("CDEST-ID", ",".join(escape(d.cdest_id) for d in criterion.destinations)),
        ("CSOURCE-ADDRESS", entry.csource_address),
    ]
    flag_text = [text for flag, text in _FLAG_TEXT if criterion.flags & flag]
    if flag_text:
        headers.append(("FLAGS", ",".join(flag_text)))
    if flags & Flag.CRITERIA:
        headers.extend(_criteria_block(criterion))
    if flags & Flag.STATS:
        headers.extend(_stats_block(criterion, entry.stats))
    return headers


def _criteria_block(criterion: Criterion) -> list[tuple[str, str]]:
    match = criterion.match
    headers: list[tuple[str, str]] = []
    for name, address in (("SOURCE-ADDRESS", match.source_address),
                          ("DEST-ADDRESS", match.dest_address)):  # fmt: skip
        if not address.is_wildcard:
            headers.append((name, render_address_filter(address)))
    for name, values, maximum in (
        ("PROTOCOL", match.protocol, BYTE_MAX),
        ("SOURCE-PORT", match.source_port, PORT_MAX),
        ("DEST-PORT", match.dest_port, PORT_MAX),
        ("ICMP-TYPE", match.icmp_type, BYTE_MAX),
        ("ICMP-CODE", match.icmp_code, BYTE_MAX),
    ):
        if not values.is_wildcard:
            headers.append((name, render_value_filter(values, maximum)))
    for attribute, suffix in _TIMEOUT_NAMES:
        given = getattr(criterion.timeouts, attribute)
        if given is not None:
            headers.append((f"TIMEOUT-{suffix}", str(given)))
    destinations = criterion.destinations
    if destinations:
        first = destinations[0]
        headers += [
            ("X-JTAP-CDEST-DEST-ADDRESS", ",".join(d.dest_address for d in destinations)),
            ("X-JTAP-CDEST-DEST-PORT", ",".join(str(d.dest_port) for d in destinations)),
            ("X-JTAP-CDEST-SOURCE-ADDRESS", first.source_address),
            ("X-JTAP-CDEST-SOURCE-PORT", str(first.source_port)),
            ("X-JTAP-CDEST-TTL", str(first.ttl)),
        ]
    if match.input_interfaces:
        interfaces = ",".join(escape(name) for name in match.input_interfaces)
        headers.append(("X-JTAP-INPUT-INTERFACE", interfaces))
    if match.ip_version is not None:
        headers.append(("X-JTAP-IP-VERSION", f"ipv{match.ip_version}"))
    if isinstance(criterion.delivery, Jmirror):
        headers.append(("X-MD-INTERCEPT-ID", render_intercept_id(criterion.delivery)))
    return headers


def _stats_block(criterion: Criterion, stats: CriterionStats) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if not criterion.static:
        for attribute, suffix in _TIMEOUT_NAMES:
            remaining = getattr(stats.remaining, attribute)
            if getattr(criterion.timeouts, attribute) is not None and remaining is not None:
                headers.append((f"REMAINING-{suffix}", str(remaining)))
    headers += [
        ("AVERAGE-BANDWIDTH", str(stats.average_bandwidth)),
        ("MATCHING-PACKETS", str(stats.matching_packets)),
        ("MATCHING-BYTES", str(stats.matching_bytes)),
        ("NUM-REFRESH", str(stats.num_refresh)),
        ("LAST-REFRESH", format_timestamp(stats.last_refresh)),
    ]
    return headers


def render_address_filter(address: AddressFilter) -> str:
    version = address.version or 4
    return ",".join(_negation(s) + _address_span(version, s) for s in address.spans)


def render_value_filter(values: ValueFilter, maximum: int) -> str:
    return ",".join(_negation(s) + _value_span(s, maximum) for s in values.spans)


def _negation(span: Span) -> str:
    return "!" if span.negated else ""


def _address_span(version: int, span: Span) -> str:
    if span.lo == span.hi:
        return format_address(version, span.lo)
    if span.lo == 0 and span.hi == ADDRESS_MAX[version]:
        return "*"
    size = span.hi - span.lo + 1
    if size & (size - 1) == 0 and span.lo % size == 0:
        bits = ADDRESS_MAX[version].bit_length()
        return f"{format_address(version, span.lo)}/{bits - size.bit_length() + 1}"
    return f"{format_address(version, span.lo)}-{format_address(version, span.hi)}"


def _value_span(span: Span, maximum: int) -> str:
    if span.lo == span.hi:
        return str(span.lo)
    if span.lo == 0 and span.hi == maximum:
        return "*"
    return f"{span.lo}-{span.hi}"
