"""DTCP request headers into typed parameters (fact sheet §2; draft §5, §8, App.B).

Every failure raises ``DtcpRequestError`` (a ``DtcpError``) with the status the fact sheet assigns;
its ``parameter`` is the offending header (name, raw value) for the reply's Error-Parameters
(draft §6.2). Messages and ``detail`` name headers but never carry their values.

ADD checks run in this order and the first failure wins: VRF/interface combination, header
catalogue (method, version, unimplemented), VRF, Action, presence of the required X-JTap-Cdest-*,
destination counts then values, match filters, Priority, Flags, timeouts, X-MD-Intercept-Id.

Statuses:
- 400: a draft header that does not belong to the method; Csource-ID, Seq, Cdest-ID missing or
  malformed; a filter that is not the grammar; more than one Cdest-ID in DELETE, LIST or REFRESH,
  or both/neither of Criteria-ID and Cdest-ID in DELETE and REFRESH (SECURITY D6); more than two
  content destinations; a flag that is unknown or not meaningful for the method; bad Priority or
  X-MD-Intercept-Id.
- 501: a non-``X-`` header nobody defined; a parameter the request's version lacks (SECURITY D2:
  IPv6, X-JTap-IP-Version and X-MD-Intercept-Id need 0.7); a parameter this appliance does not
  implement and must not ignore because ignoring it would widen the tap: X-JTap-Output-Interface,
  X-JTap-Filter-Family (CCC), X-Drop-Policy, the radius-flow-tap subscriber triggers, any other
  ``X-JTap-*`` in ADD, and ``Action`` other than Copy. Other unknown ``X-`` headers are ignored.
- 432: X-JTap-VRF-Name combined with an interface list (draft App.A.3); Cdest-ID, Dest-Address and
  Dest-Port counts differ (App.B.1.1 §6) or Cdest-ID repeats a name; improper filters (see
  ``filters``); source and destination of different IP families, or not the family of
  X-JTap-IP-Version; ports with a protocol list that excludes TCP and UDP, ICMP type/code with one
  that excludes ICMP and ICMPv6.
- 901: a required X-JTap-Cdest-* missing or any X-JTap-* value bad; X-JTap-VRF-Name on its own
  (no VRF is configurable on this appliance, and Junos answers 901 for an unknown VRF).
- 433: a Timeout-* that is not a number, above one day (idle/total) or above 64 bits; an ADD that
  is neither STATIC nor has a non-zero timeout; a REFRESH without a non-zero timeout. A zero
  timeout counts as not given.

- 431: a Criteria-ID that cannot exist (negative, beyond 64 bits), echoed like an unknown one.

Other decisions: a content destination port or address of 0 is a bad X-JTap value (901);
X-JTap-Cdest-TTL defaults to 255; input interfaces become ``name.unit`` (unit 0 when missing);
X-MD-Intercept-Id becomes ``0x`` + 8 or 16 lowercase hex digits; Priority is 1-255, default 1;
STATIC criteria keep (validated) timeouts for LIST, the registry ignores them; LIST without
Flags means Criteria (Junos 14.1R5+); LIST may combine Criteria-ID and Cdest-ID.

The session resolves names against configuration (unknown input interface = 901, unknown Cdest =
430) and ownership; these functions only read the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flowtap.dtcp.filters import (
    BYTE_MAX,
    U64_MAX,
    CriteriaSelector,
    FilterSyntaxError,
    ImproperFilterError,
    UnknownCriteriaIdError,
    UnsupportedValueError,
    format_address,
    parse_address_filter,
    parse_byte_filter,
    parse_criteria_selector,
    parse_host,
    parse_identifier,
    parse_input_interfaces,
    parse_intercept_id,
    parse_number,
    parse_port,
    parse_port_filter,
    split_list,
)
from flowtap.dtcp.headers import (
    ALLOWED,
    CDEST_DEST_ADDRESS,
    CDEST_DEST_PORT,
    CDEST_SOURCE_ADDRESS,
    CDEST_SOURCE_PORT,
    CDEST_TTL,
    DRAFT_HEADERS,
    INPUT_INTERFACE,
    INTERCEPT_ID,
    IP_VERSION,
    OUTPUT_INTERFACE,
    REQUIRED_JTAP,
    TIMEOUTS,
    UNIMPLEMENTED_IN_ADD,
    VRF_NAME,
)
from flowtap.dtcp.message import Request
from flowtap.dtcp.status import reason_phrase
from flowtap.errors import DtcpError
from flowtap.intercept.criteria import (
    ANY,
    ANY_ADDRESS,
    AddressFilter,
    ContentDestination,
    Criterion,
    Flag,
    Match,
    Timeouts,
    ValueFilter,
)

MAX_DESTINATIONS = 2
DAYSEC_MAX = 86400
DEFAULT_TTL = 255
V07 = (0, 7)

SINCE_VERSION = {IP_VERSION: V07, INTERCEPT_ID: V07}
FLAG_NAMES = {"static": Flag.STATIC, "sendasync": Flag.SEND_ASYNC, "stats": Flag.STATS,
              "criteria": Flag.CRITERIA, "both": Flag.BOTH}  # fmt: skip
METHOD_FLAGS = {"ADD": Flag.STATIC | Flag.SEND_ASYNC, "DELETE": Flag.STATIC, "REFRESH": Flag.NONE,
                "LIST": Flag.BOTH, "NOOP": Flag.SEND_ASYNC}  # fmt: skip
IP_VERSIONS = {"ipv4": 4, "ipv6": 6}
PORT_PROTOCOLS = (6, 17)
ICMP_PROTOCOLS = (1, 58)

_T = TypeVar("_T")


class DtcpRequestError(DtcpError):
    """A request refused while reading it; ``parameter`` is (header name, raw value) to echo."""

    def __init__(self, status: int, detail: str, parameter: tuple[str, str] | None = None):
        super().__init__(status, reason_phrase(status), detail)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class RequestIdentity:
    """What every request carries: the control source it claims and its sequence number."""

    csource_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class DeleteParams:
    """Exactly one of ``criteria`` and ``cdest_id`` is set."""

    criteria: CriteriaSelector | None
    cdest_id: str | None
    static: bool


@dataclass(frozen=True, slots=True)
class RefreshParams:
    """Exactly one of ``criteria`` and ``cdest_id`` is set; ``timeouts`` replace the remaining."""

    criteria: CriteriaSelector | None
    cdest_id: str | None
    timeouts: Timeouts


@dataclass(frozen=True, slots=True)
class ListParams:
    """Both selectors are optional (None = any); ``flags`` is STATS, CRITERIA or BOTH."""

    criteria: CriteriaSelector | None
    cdest_id: str | None
    flags: Flag


@dataclass(frozen=True, slots=True)
class NoopParams:
    send_async: bool


def _fail(status: int, request: Request, name: str, detail: str) -> DtcpRequestError:
    value = request.headers.get(name)
    return DtcpRequestError(status, f"{name}: {detail}", None if value is None else (name, value))


def _read(request: Request, name: str, parse: Callable[[str], _T], status: int = 400) -> _T | None:
    """Parse one header, None when absent. Syntax errors get ``status``; improper filters get
    432 where ``status`` is 400 (X-JTap fields keep 901); version gaps get 501."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except FilterSyntaxError as error:
        raise _fail(status, request, name, str(error)) from None
    except ImproperFilterError as error:
        raise _fail(432 if status == 400 else status, request, name, str(error)) from None
    except UnsupportedValueError as error:
        raise _fail(501, request, name, str(error)) from None


def _required(request: Request, name: str, parse: Callable[[str], _T], status: int = 400) -> _T:
    parsed = _read(request, name, parse, status)
    if parsed is None:
        raise DtcpRequestError(status, f"{name}: missing")
    return parsed


def check_headers(request: Request) -> None:
    """Refuse headers that do not belong to the method (400) or that must not be ignored (501)."""
    allowed = ALLOWED[request.method]
    version = request.version_tuple
    for name in request.headers.keys():  # noqa: SIM118 (Headers is not a dict)
        if name in allowed:
            if version < SINCE_VERSION.get(name, version):
                raise _fail(501, request, name, f"not in DTCP/{request.version}")
        elif name.startswith("x-"):
            if request.method == "ADD" and (
                name in UNIMPLEMENTED_IN_ADD or name.startswith("x-jtap-")
            ):
                raise _fail(501, request, name, "not implemented")
        elif name in DRAFT_HEADERS:
            raise _fail(400, request, name, f"not valid in {request.method}")
        else:
            raise _fail(501, request, name, "unknown parameter")


def parse_identity(request: Request) -> RequestIdentity:
    """Csource-ID and Seq (400 if missing or malformed)."""
    csource = _required(request, "csource-id", parse_identifier)
    return RequestIdentity(
        csource, _required(request, "seq", lambda r: parse_number(r, 20, U64_MAX))
    )


def seq_of(request: Request) -> int | None:
    """The request's Seq when it is valid, for the SEQ of an error reply; otherwise None."""
    try:
        return _read(request, "seq", lambda raw: parse_number(raw, 20, U64_MAX))
    except DtcpRequestError:
        return None


def parse_flags(request: Request) -> Flag:
    """Flags (case-insensitive names), limited to those meaningful for the method."""

    def names(raw: str) -> Flag:
        flags = Flag.NONE
        for item in split_list(raw):
            if item.lower() not in FLAG_NAMES:
                raise FilterSyntaxError("unknown flag")
            flags |= FLAG_NAMES[item.lower()]
        if flags & ~METHOD_FLAGS[request.method]:
            raise FilterSyntaxError(f"flag not valid in {request.method}")
        return flags

    return _read(request, "flags", names) or Flag.NONE


def parse_timeouts(request: Request) -> Timeouts:
    """Timeout-* (433 if malformed or out of range); a zero timeout counts as not given."""

    def timeout(name: str) -> int | None:
        limit = DAYSEC_MAX if name in ("timeout-idle", "timeout-total") else U64_MAX
        return _read(request, name, lambda raw: parse_number(raw, 20, limit), 433) or None

    return Timeouts(*(timeout(name) for name in TIMEOUTS))


def _cdest_ids(raw: str) -> list[str]:
    return [parse_identifier(item) for item in split_list(raw)]


def _selectors(request: Request, exactly_one: bool) -> tuple[CriteriaSelector | None, str | None]:
    """Criteria-ID and Cdest-ID of DELETE, REFRESH (exactly one of them) and LIST (optional)."""
    headers = request.headers
    if exactly_one and ("criteria-id" in headers) == ("cdest-id" in headers):
        raise DtcpRequestError(400, "exactly one of Criteria-ID and Cdest-ID is required")
    cdest = _read(request, "cdest-id", _cdest_ids)
    if cdest is not None and len(cdest) > 1:
        raise _fail(400, request, "cdest-id", "more than one content destination")
    try:
        criteria = _read(request, "criteria-id", _criteria_selector)
    except UnknownCriteriaIdError as error:
        raise DtcpRequestError(
            431, "criteria-id: cannot exist", ("criteria-id", error.entry)
        ) from None
    return criteria, cdest[0] if cdest else None


def parse_delete(request: Request) -> DeleteParams:
    check_headers(request)
    criteria, cdest = _selectors(request, exactly_one=True)
    return DeleteParams(criteria, cdest, bool(parse_flags(request) & Flag.STATIC))


def parse_refresh(request: Request) -> RefreshParams:
    check_headers(request)
    criteria, cdest = _selectors(request, exactly_one=True)
    timeouts = parse_timeouts(request)
    if timeouts == Timeouts():
        raise DtcpRequestError(433, "REFRESH needs a non-zero Timeout-*")
    return RefreshParams(criteria, cdest, timeouts)


def parse_list(request: Request) -> ListParams:
    """A missing Flags means Criteria (Junos 14.1R5 and later)."""
    check_headers(request)
    criteria, cdest = _selectors(request, exactly_one=False)
    return ListParams(criteria, cdest, parse_flags(request) or Flag.CRITERIA)


def parse_noop(request: Request) -> NoopParams:
    check_headers(request)
    return NoopParams(bool(parse_flags(request) & Flag.SEND_ASYNC))


def _destinations(request: Request, allow_ipv6: bool) -> tuple[ContentDestination, ...]:
    """Cdest-ID with X-JTap-Cdest-*: counts first (400 above two, 432 if unequal), then values."""
    names_and_lists = ("cdest-id", CDEST_DEST_ADDRESS, CDEST_DEST_PORT)
    lists = {name: request.headers.get(name) or "" for name in names_and_lists}
    if not lists["cdest-id"]:
        raise DtcpRequestError(400, "cdest-id: missing")
    counts = {name: raw.count(",") + 1 for name, raw in lists.items()}
    for name, count in counts.items():
        if count > MAX_DESTINATIONS:
            raise _fail(400, request, name, "more than two content destinations")
    if len(set(counts.values())) > 1:
        raise _fail(432, request, "cdest-id", "Cdest-ID, Dest-Address and Dest-Port counts differ")
    names = _required(request, "cdest-id", _cdest_ids)
    if len(set(names)) != len(names):
        raise _fail(432, request, "cdest-id", "content destination named twice")

    def host(raw: str) -> tuple[int, int]:
        return parse_host(raw, allow_ipv6=allow_ipv6)

    dests = _required(request, CDEST_DEST_ADDRESS, lambda r: list(map(host, split_list(r))), 901)
    ports = _required(request, CDEST_DEST_PORT, lambda r: list(map(parse_port, split_list(r))), 901)
    source_version, source = _required(request, CDEST_SOURCE_ADDRESS, host, 901)
    source_port = _required(request, CDEST_SOURCE_PORT, parse_port, 901)
    ttl = _read(request, CDEST_TTL, lambda r: parse_number(r, 3, BYTE_MAX), 901)
    if any(version != source_version for version, _ in dests):
        raise _fail(901, request, CDEST_DEST_ADDRESS, "family differs from Source-Address")
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


def _criteria_selector(raw: str) -> CriteriaSelector:
    # 432 names an improper *match* filter; a malformed ID list is a plain 400 (draft §5.7).
    try:
        return parse_criteria_selector(raw)
    except ImproperFilterError as error:
        raise FilterSyntaxError(str(error)) from None


def _match(request: Request, allow_ipv6: bool) -> Match:
    def values(name: str, parse: Callable[[str], ValueFilter]) -> ValueFilter:
        return _read(request, name, parse) or ANY

    def address(raw: str) -> AddressFilter:
        return parse_address_filter(raw, allow_ipv6=allow_ipv6)

    source = _read(request, "source-address", address) or ANY_ADDRESS
    dest = _read(request, "dest-address", address) or ANY_ADDRESS
    protocol = values("protocol", parse_byte_filter)
    ports = values("source-port", parse_port_filter), values("dest-port", parse_port_filter)
    icmp = values("icmp-type", parse_byte_filter), values("icmp-code", parse_byte_filter)
    ip_version = _read(request, IP_VERSION, _ip_version, 901)
    interfaces = _read(request, INPUT_INTERFACE, parse_input_interfaces, 901) or ()
    if source.version and dest.version and source.version != dest.version:
        raise _fail(432, request, "dest-address", "family differs from Source-Address")
    for name, found in (("source-address", source), ("dest-address", dest)):
        if ip_version and found.version and found.version != ip_version:
            raise _fail(432, request, name, "family differs from X-JTap-IP-Version")
    for needs, protocols, what in (
        (ports, PORT_PROTOCOLS, "ports"),
        (icmp, ICMP_PROTOCOLS, "ICMP"),
    ):
        narrowed = not all(f.is_wildcard for f in needs)
        if narrowed and not any(protocol.matches(p) for p in protocols):
            raise _fail(432, request, "protocol", f"{what} filter needs a matching protocol")
    return Match(source, dest, protocol, *ports, *icmp, interfaces, ip_version)


def parse_add(request: Request, csource_id: str, criteria_id: int) -> Criterion:
    """The criterion an ADD asks for, owned by ``csource_id`` and numbered ``criteria_id``.

    Csource-ID and Seq are ``parse_identity``'s business (call it first). Pure, so the registry
    can pass the next free ID and only consume it when this returns.
    """
    headers = request.headers
    scopes = [name for name in (VRF_NAME, INPUT_INTERFACE, OUTPUT_INTERFACE) if name in headers]
    if len(scopes) > 1:
        raise _fail(432, request, scopes[1], "VRF, input and output interfaces are exclusive")
    check_headers(request)
    if VRF_NAME in headers:
        raise _fail(901, request, VRF_NAME, "no such VRF")
    action = headers.get("action")
    if action is not None and action.lower() != "copy":
        raise _fail(501, request, "action", "only Copy is implemented")
    for name in REQUIRED_JTAP:
        if name not in headers:
            raise DtcpRequestError(901, f"{name}: missing")
    allow_ipv6 = request.version_tuple >= V07
    destinations = _destinations(request, allow_ipv6)
    match = _match(request, allow_ipv6)
    priority = _read(request, "priority", lambda raw: parse_number(raw, 3, BYTE_MAX))
    if priority == 0:
        raise _fail(400, request, "priority", "minimum is 1")
    flags = parse_flags(request)
    timeouts = parse_timeouts(request)
    if not flags & Flag.STATIC and timeouts == Timeouts():
        raise DtcpRequestError(433, "ADD needs Flags: Static or a non-zero Timeout-*")
    intercept_id = _read(request, INTERCEPT_ID, parse_intercept_id)
    return Criterion(
        criteria_id, csource_id, match, destinations, priority or 1, flags, timeouts, intercept_id
    )
