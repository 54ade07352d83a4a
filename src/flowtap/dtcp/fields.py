"""DTCP request headers into typed parameters (fact sheet §2; draft §5, §8, App.B).

Every failure raises ``DtcpRequestError`` (a ``DtcpError``) with the status the fact sheet assigns;
its ``parameter`` is the offending header (name, raw value) for the reply's Error-Parameters
(draft §6.2); a required header that is missing is echoed with an empty value, so the reply names
what the request lacks. Messages and ``detail`` name headers but never carry their values.

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

This module reads what every method shares (the header catalogue, Csource-ID and Seq, Flags,
Timeout-*, the selectors of DELETE, REFRESH and LIST); :mod:`flowtap.dtcp.add_fields` reads
the criterion of an ADD with the helpers below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flowtap.dtcp.filters import (
    U64_MAX,
    CriteriaSelector,
    parse_criteria_selector,
    parse_identifier,
    parse_number,
    split_list,
)
from flowtap.dtcp.headers import (
    ALLOWED,
    DRAFT_HEADERS,
    INTERCEPT_ID,
    IP_VERSION,
    TIMEOUTS,
    UNIMPLEMENTED_IN_ADD,
)
from flowtap.dtcp.message import Request
from flowtap.dtcp.status import DtcpRequestError
from flowtap.errors import (
    FilterSyntaxError,
    ImproperFilterError,
    UnknownCriteriaIdError,
    UnsupportedValueError,
)
from flowtap.intercept.criteria import Flag, Timeouts

DAYSEC_MAX = 86400
V07 = (0, 7)

SINCE_VERSION = {IP_VERSION: V07, INTERCEPT_ID: V07}
FLAG_NAMES = {"static": Flag.STATIC, "sendasync": Flag.SEND_ASYNC, "stats": Flag.STATS,
              "criteria": Flag.CRITERIA, "both": Flag.BOTH}  # fmt: skip
METHOD_FLAGS = {"ADD": Flag.STATIC | Flag.SEND_ASYNC, "DELETE": Flag.STATIC, "REFRESH": Flag.NONE,
                "LIST": Flag.BOTH, "NOOP": Flag.SEND_ASYNC}  # fmt: skip

_T = TypeVar("_T")


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


def fail(status: int, request: Request, name: str, detail: str) -> DtcpRequestError:
    """A refusal naming header ``name``; its raw value goes to Error-Parameters, not the text."""
    value = request.headers.get(name)
    return DtcpRequestError(status, f"{name}: {detail}", None if value is None else (name, value))


def read(request: Request, name: str, parse: Callable[[str], _T], status: int = 400) -> _T | None:
    """Parse one header, None when absent. Syntax errors get ``status``; improper filters get
    432 where ``status`` is 400 (X-JTap fields keep 901); version gaps get 501."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except FilterSyntaxError as error:
        raise fail(status, request, name, str(error)) from None
    except ImproperFilterError as error:
        raise fail(432 if status == 400 else status, request, name, str(error)) from None
    except UnsupportedValueError as error:
        raise fail(501, request, name, str(error)) from None


def require(request: Request, name: str, parse: Callable[[str], _T], status: int = 400) -> _T:
    """Like :func:`read`, and a missing header is refused with ``status``."""
    parsed = read(request, name, parse, status)
    if parsed is None:  # echoed empty: the reply names the field the request lacks
        raise DtcpRequestError(status, f"{name}: missing", (name, ""))
    return parsed


def check_headers(request: Request) -> None:
    """Refuse headers that do not belong to the method (400) or that must not be ignored (501)."""
    allowed = ALLOWED[request.method]
    version = request.version_tuple
    for name in request.headers.keys():  # noqa: SIM118 (Headers is not a dict)
        if name in allowed:
            if version < SINCE_VERSION.get(name, version):
                raise fail(501, request, name, f"not in DTCP/{request.version}")
        elif name.startswith("x-"):
            if request.method == "ADD" and (
                name in UNIMPLEMENTED_IN_ADD or name.startswith("x-jtap-")
            ):
                raise fail(501, request, name, "not implemented")
        elif name in DRAFT_HEADERS:
            raise fail(400, request, name, f"not valid in {request.method}")
        else:
            raise fail(501, request, name, "unknown parameter")


def parse_identity(request: Request) -> RequestIdentity:
    """Csource-ID and Seq (400 if missing or malformed)."""
    csource = require(request, "csource-id", parse_identifier)
    return RequestIdentity(
        csource, require(request, "seq", lambda r: parse_number(r, 20, U64_MAX))
    )


def seq_of(request: Request) -> int | None:
    """The request's Seq when it is valid, for the SEQ of an error reply; otherwise None."""
    try:
        return read(request, "seq", lambda raw: parse_number(raw, 20, U64_MAX))
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

    return read(request, "flags", names) or Flag.NONE


def parse_timeouts(request: Request) -> Timeouts:
    """Timeout-* (433 if malformed or out of range); a zero timeout counts as not given."""

    def timeout(name: str) -> int | None:
        limit = DAYSEC_MAX if name in ("timeout-idle", "timeout-total") else U64_MAX
        return read(request, name, lambda raw: parse_number(raw, 20, limit), 433) or None

    return Timeouts(*(timeout(name) for name in TIMEOUTS))


def cdest_ids(raw: str) -> list[str]:
    return [parse_identifier(item) for item in split_list(raw)]


def _selectors(request: Request, exactly_one: bool) -> tuple[CriteriaSelector | None, str | None]:
    """Criteria-ID and Cdest-ID of DELETE, REFRESH (exactly one of them) and LIST (optional)."""
    headers = request.headers
    if exactly_one and ("criteria-id" in headers) == ("cdest-id" in headers):
        raise DtcpRequestError(400, "exactly one of Criteria-ID and Cdest-ID is required",
                               also=tuple((name, headers.get(name) or "")
                                          for name in ("criteria-id", "cdest-id")))  # fmt: skip
    cdest = read(request, "cdest-id", cdest_ids)
    if cdest is not None and len(cdest) > 1:
        raise fail(400, request, "cdest-id", "more than one content destination")
    try:
        criteria = read(request, "criteria-id", _criteria_selector)
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


def _criteria_selector(raw: str) -> CriteriaSelector:
    # 432 names an improper *match* filter; a malformed ID list is a plain 400 (draft §5.7).
    try:
        return parse_criteria_selector(raw)
    except ImproperFilterError as error:
        raise FilterSyntaxError(str(error)) from None
