"""The headers of an ADD into the criterion it asks for (fact sheet §2; draft §5.1, App.B).

Content destinations (Cdest-ID with X-JTap-Cdest-*), the match filters, Priority, Flags,
timeouts and X-MD-Intercept-Id. The order of the checks and the status of every fail are
listed in :mod:`flowtap.dtcp.fields`, which reads the headers every method shares.
"""

from __future__ import annotations

from collections.abc import Callable

from flowtap.dtcp.fields import (
    V07,
    cdest_ids,
    check_headers,
    fail,
    parse_flags,
    parse_timeouts,
    read,
    require,
)
from flowtap.dtcp.filters import (
    BYTE_MAX,
    format_address,
    parse_address_filter,
    parse_byte_filter,
    parse_host,
    parse_input_interfaces,
    parse_number,
    parse_port,
    parse_port_filter,
    split_list,
)
from flowtap.dtcp.headers import (
    CDEST_DEST_ADDRESS,
    CDEST_DEST_PORT,
    CDEST_SOURCE_ADDRESS,
    CDEST_SOURCE_PORT,
    CDEST_TTL,
    INPUT_INTERFACE,
    INTERCEPT_ID,
    IP_VERSION,
    OUTPUT_INTERFACE,
    REQUIRED_JTAP,
    VRF_NAME,
)
from flowtap.dtcp.intercept_id import jmirror_of
from flowtap.dtcp.message import Request
from flowtap.dtcp.status import DtcpRequestError
from flowtap.errors import FilterSyntaxError
from flowtap.intercept.criteria import (
    ANY,
    ANY_ADDRESS,
    CLASSIC,
    AddressFilter,
    ContentDestination,
    Criterion,
    Flag,
    Match,
    Timeouts,
    ValueFilter,
)

MAX_DESTINATIONS = 2
DEFAULT_TTL = 255
IP_VERSIONS = {"ipv4": 4, "ipv6": 6}
PORT_PROTOCOLS = (6, 17)
ICMP_PROTOCOLS = (1, 58)


def _destinations(request: Request, allow_ipv6: bool) -> tuple[ContentDestination, ...]:
    """Cdest-ID with X-JTap-Cdest-*: counts first (400 above two, 432 if unequal), then values."""
    names_and_lists = ("cdest-id", CDEST_DEST_ADDRESS, CDEST_DEST_PORT)
    lists = {name: request.headers.get(name) or "" for name in names_and_lists}
    if not lists["cdest-id"]:
        raise DtcpRequestError(400, "cdest-id: missing", ("cdest-id", ""))
    counts = {name: raw.count(",") + 1 for name, raw in lists.items()}
    for name, count in counts.items():
        if count > MAX_DESTINATIONS:
            raise fail(400, request, name, "more than two content destinations")
    if len(set(counts.values())) > 1:
        raise fail(432, request, "cdest-id", "Cdest-ID, Dest-Address and Dest-Port counts differ")
    names = require(request, "cdest-id", cdest_ids)
    if len(set(names)) != len(names):
        raise fail(432, request, "cdest-id", "content destination named twice")

    def host(raw: str) -> tuple[int, int]:
        return parse_host(raw, allow_ipv6=allow_ipv6)

    dests = require(request, CDEST_DEST_ADDRESS, lambda r: list(map(host, split_list(r))), 901)
    ports = require(request, CDEST_DEST_PORT, lambda r: list(map(parse_port, split_list(r))), 901)
    source_version, source = require(request, CDEST_SOURCE_ADDRESS, host, 901)
    source_port = require(request, CDEST_SOURCE_PORT, parse_port, 901)
    ttl = read(request, CDEST_TTL, lambda r: parse_number(r, 3, BYTE_MAX), 901)
    if any(version != source_version for version, _ in dests):
        raise fail(901, request, CDEST_DEST_ADDRESS, "family differs from Source-Address")
    source_text = format_address(source_version, source)
    ttl = DEFAULT_TTL if ttl is None else ttl
    return tuple(
        ContentDestination(name, format_address(v, a), port, source_text, source_port, ttl)
        for name, (v, a), port in zip(names, dests, ports, strict=True)
    )


def _ip_version(raw: str) -> int:
    version = IP_VERSIONS.get(raw.lower())
    if version is None:
        raise FilterSyntaxError("not ipv4 or ipv6")
    return version


def _match(request: Request, allow_ipv6: bool) -> Match:
    def values(name: str, parse: Callable[[str], ValueFilter]) -> ValueFilter:
        return read(request, name, parse) or ANY

    def address(raw: str) -> AddressFilter:
        return parse_address_filter(raw, allow_ipv6=allow_ipv6)

    source = read(request, "source-address", address) or ANY_ADDRESS
    dest = read(request, "dest-address", address) or ANY_ADDRESS
    protocol = values("protocol", parse_byte_filter)
    ports = values("source-port", parse_port_filter), values("dest-port", parse_port_filter)
    icmp = values("icmp-type", parse_byte_filter), values("icmp-code", parse_byte_filter)
    ip_version = read(request, IP_VERSION, _ip_version, 901)
    interfaces = read(request, INPUT_INTERFACE, parse_input_interfaces, 901) or ()
    if source.version and dest.version and source.version != dest.version:
        raise fail(432, request, "dest-address", "family differs from Source-Address")
    for name, found in (("source-address", source), ("dest-address", dest)):
        if ip_version and found.version and found.version != ip_version:
            raise fail(432, request, name, "family differs from X-JTap-IP-Version")
    for needs, protocols, what in (
        (ports, PORT_PROTOCOLS, "ports"),
        (icmp, ICMP_PROTOCOLS, "ICMP"),
    ):
        narrowed = not all(f.is_wildcard for f in needs)
        if narrowed and not any(protocol.matches(p) for p in protocols):
            raise fail(432, request, "protocol", f"{what} filter needs a matching protocol")
    return Match(source, dest, protocol, *ports, *icmp, interfaces, ip_version)


def parse_add(request: Request, csource_id: str, criteria_id: int) -> Criterion:
    """The criterion an ADD asks for, owned by ``csource_id`` and numbered ``criteria_id``.

    Csource-ID and Seq are ``parse_identity``'s business (call it first). Pure, so the registry
    can pass the next free ID and only consume it when this returns.
    """
    headers = request.headers
    scopes = [name for name in (VRF_NAME, INPUT_INTERFACE, OUTPUT_INTERFACE) if name in headers]
    if len(scopes) > 1:
        raise fail(432, request, scopes[1], "VRF, input and output interfaces are exclusive")
    check_headers(request)
    if VRF_NAME in headers:
        raise fail(901, request, VRF_NAME, "no such VRF")
    action = headers.get("action")
    if action is not None and action.lower() != "copy":
        raise fail(501, request, "action", "only Copy is implemented")
    for name in REQUIRED_JTAP:
        if name not in headers:
            raise DtcpRequestError(901, f"{name}: missing", (name, ""))
    allow_ipv6 = request.version_tuple >= V07
    destinations = _destinations(request, allow_ipv6)
    match = _match(request, allow_ipv6)
    priority = read(request, "priority", lambda raw: parse_number(raw, 3, BYTE_MAX))
    if priority == 0:
        raise fail(400, request, "priority", "minimum is 1")
    flags = parse_flags(request)
    timeouts = parse_timeouts(request)
    if not flags & Flag.STATIC and timeouts == Timeouts():
        raise DtcpRequestError(433, "ADD needs Flags: Static or a non-zero Timeout-*")
    jmirror = read(request, INTERCEPT_ID, lambda raw: jmirror_of(raw, criteria_id))
    return Criterion(criteria_id, csource_id, match, destinations, priority or 1, flags,
                     timeouts, CLASSIC if jmirror is None else jmirror)
