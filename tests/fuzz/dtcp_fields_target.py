"""Fuzz target: DTCP header fields into typed parameters (``fields``, ``add_fields``) and the
filter grammar (``filters``).

The input bytes choose a method, a version and header lines, from a vocabulary of real header
names and value fragments or as raw text; ``build_request`` writes them out and ``MessageDecoder``
reads them back, so the parsers see genuine ``Request`` objects. Then:

- ``parse_identity``, ``seq_of`` and the method's parser (``parse_add``, ``parse_delete``, ...):
  documented outcome a result or ``DtcpRequestError``;
- every header value through each grammar function of ``filters`` (and ``unescape``): a result or
  ``ValueError`` (``FilterSyntaxError``, ``ImproperFilterError``, ``UnsupportedValueError``,
  ``UnknownCriteriaIdError`` are all ValueErrors, as is ``unescape``'s bad UTF-8).

Invariant: a parsed address or value filter other than the wildcard, rendered the way LIST replies render it
(``replies.render_*``) parses back to a filter that matches exactly the same values (checked at
every span boundary and its neighbours).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from flowtap.dtcp import add_fields, fields
from flowtap.dtcp.filters import (
    ADDRESS_MAX,
    BYTE_MAX,
    PORT_MAX,
    U64_MAX,
    parse_address_filter,
    parse_byte_filter,
    parse_criteria_selector,
    parse_identifier,
    parse_input_interfaces,
    parse_port_filter,
)
from flowtap.dtcp.headers import unescape
from flowtap.dtcp.intercept_id import jmirror_of, parse_intercept_id, render_intercept_id
from flowtap.dtcp.message import MessageDecoder, Request
from flowtap.dtcp.replies import render_address_filter, render_value_filter
from flowtap.dtcp.status import DtcpRequestError
from flowtap.intercept.criteria import AddressFilter, Span, ValueFilter
from flowtap.tools.dtcp_client import build_request
from tests.fuzz.support import ByteReader, check

METHODS = ("ADD", "DELETE", "REFRESH", "LIST", "NOOP")
VERSIONS = ("0.5", "0.6", "0.7", "0.8")
NAMES = (
    "Csource-ID", "Seq", "Cdest-ID", "Criteria-ID", "Flags", "Source-Address", "Dest-Address",
    "Protocol", "Source-Port", "Dest-Port", "ICMP-Type", "ICMP-Code", "Timeout-Idle",
    "Timeout-Total", "Timeout-Packets", "Timeout-Bytes", "Priority", "Action",
    "X-JTap-Cdest-Dest-Address", "X-JTap-Cdest-Dest-Port", "X-JTap-Cdest-Source-Address",
    "X-JTap-Cdest-Source-Port", "X-JTap-Cdest-TTL", "X-JTap-VRF-Name", "X-JTap-Input-Interface",
    "X-JTap-Output-Interface", "X-JTap-IP-Version", "X-MD-Intercept-Id", "X-Other", "Unknown",
    "SEQ", "flags", "x-jtap-cdest-dest-address",
)  # fmt: skip
FRAGMENTS = (
    "1", "0", "7", "255", "256", "65535", "65536", "18446744073709551615", "18446744073709551616",
    "-1", "*", "!", "-", ",", ", ", "/", ".", ":", "10.0.0.1", "10.0.0.0/8", "10.1.1.1/24",
    "192.168.1.1-192.168.1.9", "0.0.0.0", "255.255.255.255", "::1", "2001:db8::/32", "fe80::1%1",
    "::", "1.2.3", "6", "17", "6,17", "1,58", "STATIC", "SendAsync", "Stats", "Criteria", "Both",
    "Copy", "Drop", "cd1", "cd2", "md1", "0x1234", "0xDEADBEEFCAFE0001", "ge-0/0/0", "ge-1/3/5.0",
    "xe-0/0/0.16384", "ipv4", "ipv6", "\\065", "\\255", "\\999", "\\", "\\000", "%", " ",
)  # fmt: skip

_MAX_HEADERS = 24


def _value(reader: ByteReader) -> str:
    if reader.byte() & 3 == 0:
        raw = reader.take(reader.below(48)).decode("utf-8", "replace")
        return raw.replace("\r", "").replace("\n", "")
    return "".join(reader.pick(FRAGMENTS) for _ in range(1 + reader.below(6)))


def _request(reader: ByteReader) -> Request | None:
    method = reader.pick(METHODS)
    version = reader.pick(VERSIONS)
    header_fields = []
    for _ in range(reader.below(_MAX_HEADERS)):
        name = reader.pick(NAMES)
        header_fields.append((name, _value(reader)))
    data = build_request(method, header_fields, seq=reader.below(1 << 16), csource_id="md1",
                         version=version)  # fmt: skip
    decoded = MessageDecoder().feed(data)
    check(len(decoded) == 1, "build_request made other than one message")
    item = decoded[0]
    return item if isinstance(item, Request) else None


_PARSERS: dict[str, Callable[[Request], object]] = {
    "ADD": lambda r: add_fields.parse_add(r, "md1", 1),
    "DELETE": fields.parse_delete,
    "REFRESH": fields.parse_refresh,
    "LIST": fields.parse_list,
    "NOOP": fields.parse_noop,
}


def _probe_points(spans: tuple[Span, ...], maximum: int) -> set[int]:
    points = {0, maximum}
    for span in spans:
        for edge in (span.lo, span.hi):
            points.update(p for p in (edge - 1, edge, edge + 1) if 0 <= p <= maximum)
    return points


def _same_values(first: ValueFilter, second: ValueFilter, maximum: int) -> bool:
    points = _probe_points(first.spans + second.spans, maximum)
    return all(first.matches(p) == second.matches(p) for p in points)


def _same_addresses(first: AddressFilter, second: AddressFilter) -> bool:
    for version in (4, 6):
        points = _probe_points(first.spans + second.spans, ADDRESS_MAX[version])
        if any(first.matches(version, p) != second.matches(version, p) for p in points):
            return False
    return True


def _grammar(value: str) -> None:
    for parse in (parse_identifier, parse_input_interfaces, unescape):
        with contextlib.suppress(ValueError):
            parse(value)
    with contextlib.suppress(ValueError):
        jmirror = jmirror_of(value, 7)
        echoed = render_intercept_id(jmirror)
        check(parse_intercept_id(echoed) == parse_intercept_id(value),
              "intercept ID changed through the LIST echo")
        check(jmirror_of(echoed, 7) == jmirror, "jmirror delivery changed through the echo")
    for allow_ipv6 in (True, False):
        try:
            address = parse_address_filter(value, allow_ipv6=allow_ipv6)
        except ValueError:
            continue
        if address.is_wildcard:
            continue  # LIST replies leave wildcards out: there is no rendering to read back
        again = parse_address_filter(render_address_filter(address))
        check(_same_addresses(address, again), "address filter changed through render")
    for parse_values, maximum in ((parse_port_filter, PORT_MAX), (parse_byte_filter, BYTE_MAX)):
        try:
            values = parse_values(value)
        except ValueError:
            continue
        if values.is_wildcard:
            continue
        again_values = parse_values(render_value_filter(values, maximum))
        check(_same_values(values, again_values, maximum), "value filter changed through render")
    try:
        selector = parse_criteria_selector(value)
    except ValueError:
        return
    if selector.is_wildcard:
        return
    rendered = render_value_filter(selector.filter, U64_MAX)
    again_selector = parse_criteria_selector(rendered)
    check(_same_values(selector.filter, again_selector.filter, U64_MAX),
          "criteria selector changed through render")  # fmt: skip


def fuzz_one(data: bytes) -> None:
    reader = ByteReader(data)
    request = _request(reader)
    if request is None:
        return
    with contextlib.suppress(DtcpRequestError):
        fields.parse_identity(request)
    fields.seq_of(request)
    with contextlib.suppress(DtcpRequestError):
        _PARSERS[request.method](request)
    for _, value in request.headers:
        _grammar(value)
