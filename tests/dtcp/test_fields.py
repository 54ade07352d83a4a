"""Header values into criteria types, and the status of every refusal (SECURITY D2, D3, D5, D6)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from ipaddress import ip_address

import pytest

from flowtap.dtcp.add_fields import parse_add
from flowtap.dtcp.auth_info import SSH_SIGNER
from flowtap.dtcp.fields import (
    DeleteParams,
    ListParams,
    NoopParams,
    RefreshParams,
    RequestIdentity,
    parse_delete,
    parse_identity,
    parse_list,
    parse_noop,
    parse_refresh,
    seq_of,
)
from flowtap.dtcp.filters import (
    parse_address_filter,
    parse_byte_filter,
    parse_criteria_selector,
    parse_input_interfaces,
    parse_port_filter,
)
from flowtap.dtcp.intercept_id import parse_intercept_id, render_intercept_id
from flowtap.dtcp.message import DecodeError, MessageDecoder, Request
from flowtap.dtcp.status import DtcpRequestError
from flowtap.errors import (
    DtcpError,
    FilterSyntaxError,
    ImproperFilterError,
    UnknownCriteriaIdError,
    UnsupportedValueError,
)
from flowtap.intercept.criteria import (
    ANY,
    ANY_ADDRESS,
    CLASSIC,
    AddressFilter,
    ContentDestination,
    Criterion,
    Flag,
    Jmirror,
    Match,
    Span,
    Timeouts,
    ValueFilter,
)

V4_MAX = 2**32 - 1
U64_MAX = 2**64 - 1


def ip(text: str) -> int:
    return int(ip_address(text))


def request(first_line: str, *headers: str) -> Request:
    head = "".join(f"{line}\r\n" for line in (first_line, *headers)).encode()
    [decoded] = MessageDecoder().feed(SSH_SIGNER.sign(head, "Authentication-Info"))
    assert isinstance(decoded, Request), decoded
    return decoded


# The flow-tap ADD of the fact sheet §9.1 (Toby's dtcp_add_filter field set).
BASE_ADD = {
    "Csource-ID": "ftuser",
    "Cdest-ID": "cd1",
    "Source-Address": "20.20.20.1",
    "Dest-Address": "30.30.30.0/24",
    "Source-Port": "*",
    "Dest-Port": "2000",
    "Protocol": "17",
    "Priority": "2",
    "X-JTap-Cdest-Dest-Address": "212.25.99.81",
    "X-JTap-Cdest-Dest-Port": "8001",
    "X-JTap-Cdest-Source-Address": "208.223.208.9",
    "X-JTap-Cdest-Source-Port": "49153",
    "X-JTap-Input-Interface": "ge-1/3/5.0",
    "X-JTap-Cdest-TTL": "255",
    "Flags": "STATIC",
    "Seq": "1",
}


def add_request(changes: Mapping[str, str | None] | None = None, version: str = "0.8") -> Request:
    """BASE_ADD with ``changes`` applied (None removes a header)."""
    headers = {**BASE_ADD, **(changes or {})}
    return request(
        f"ADD DTCP/{version}", *(f"{k}: {v}" for k, v in headers.items() if v is not None)
    )


def add(changes: Mapping[str, str | None] | None = None, version: str = "0.8") -> Criterion:
    return parse_add(add_request(changes, version), "ftuser", 5)


def add_error(changes: Mapping[str, str | None], version: str = "0.8") -> DtcpRequestError:
    with pytest.raises(DtcpRequestError) as caught:
        add(changes, version)
    return caught.value


# --- ADD: accepted ---------------------------------------------------------------------------


def test_add_fact_sheet_example() -> None:
    assert add() == Criterion(
        criteria_id=5,
        csource_id="ftuser",
        match=Match(
            source_address=AddressFilter(4, (Span(ip("20.20.20.1"), ip("20.20.20.1")),)),
            dest_address=AddressFilter(4, (Span(ip("30.30.30.0"), ip("30.30.30.255")),)),
            protocol=ValueFilter((Span(17, 17),)),
            dest_port=ValueFilter((Span(2000, 2000),)),
            input_interfaces=("ge-1/3/5.0",),
        ),
        destinations=(
            ContentDestination("cd1", "212.25.99.81", 8001, "208.223.208.9", 49153, 255),
        ),
        priority=2,
        flags=Flag.STATIC,
    )


def test_add_minimal_static_without_timeouts_is_accepted() -> None:
    # Every Juniper sample and Toby's flow-tap ADD use Flags: STATIC and no Timeout-* (§2.4).
    drop: dict[str, str | None] = dict.fromkeys(
        (
            "Source-Address",
            "Dest-Address",
            "Source-Port",
            "Dest-Port",
            "Protocol",
            "Priority",
            "X-JTap-Input-Interface",
            "X-JTap-Cdest-TTL",
        )
    )
    criterion = add(drop)
    assert criterion.match == Match()
    assert criterion.priority == 1
    assert criterion.destinations[0].ttl == 255
    assert criterion.static


def test_add_two_destinations() -> None:
    criterion = add(
        {
            "Cdest-ID": "cd1, cd2",
            "X-JTap-Cdest-Dest-Address": "192.0.2.1,192.0.2.2",
            "X-JTap-Cdest-Dest-Port": "8001, 8002",
            "X-JTap-Cdest-TTL": "64",
        }
    )
    assert criterion.destinations == (
        ContentDestination("cd1", "192.0.2.1", 8001, "208.223.208.9", 49153, 64),
        ContentDestination("cd2", "192.0.2.2", 8002, "208.223.208.9", 49153, 64),
    )


def test_add_ipv6_everywhere() -> None:
    criterion = add(
        {
            "Source-Address": "2001:db8::1",
            "Dest-Address": "2001:db8:1::/48",
            "X-JTap-IP-Version": "IPv6",
            "X-JTap-Cdest-Dest-Address": "2001:DB8::99",
            "X-JTap-Cdest-Source-Address": "2001:db8::98",
        },
        version="0.7",
    )
    assert criterion.match.ip_version == 6
    assert criterion.match.versions == frozenset({6})
    assert criterion.destinations[0].dest_address == "2001:db8::99"
    assert criterion.destinations[0].version == 6


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("STATIC", Flag.STATIC),
        ("static", Flag.STATIC),
        ("Static", Flag.STATIC),
        ("SendAsync,static", Flag.STATIC | Flag.SEND_ASYNC),
        ("sendasync, STATIC", Flag.STATIC | Flag.SEND_ASYNC),
        ("Static,STATIC", Flag.STATIC),
    ],
)
def test_add_flags_are_case_insensitive(flags: str, expected: Flag) -> None:
    assert add({"Flags": flags}).flags == expected


def test_add_timeouts_zero_means_unset_and_static_keeps_them() -> None:
    criterion = add({"Flags": "SendAsync", "Timeout-Idle": "600", "Timeout-Bytes": "0"})
    assert criterion.timeouts == Timeouts(idle=600)
    assert not criterion.static
    criterion = add({"Timeout-Total": "86400", "Timeout-Packets": str(U64_MAX)})
    assert criterion.timeouts == Timeouts(total=86400, packets=U64_MAX)
    assert criterion.static


@pytest.mark.parametrize(
    ("raw", "intercept", "session", "echo"),
    [
        # 8 bytes: intercept ID + session ID (the Junos LIST sample)
        ("0x0101010130010002", 0x01010101, 0x30010002, "0x0101010130010002"),
        ("0X0101010130010002", 0x01010101, 0x30010002, "0x0101010130010002"),
        ("0x3FFFFFFFffffffff", 2**30 - 1, 2**32 - 1, "0x3fffffffffffffff"),
        ("0x100000002", 1, 2, "0x0000000100000002"),  # 9 digits: 8 bytes, left-padded
        ("0x0000000000000000", 0, 0, "0x0000000000000000"),
        # 4 bytes: the intercept ID; the session ID is the criterion's (5 here)
        ("0X0A0B0C0D", 0x0A0B0C0D, None, "0x0a0b0c0d"),
        ("0x1", 1, None, "0x00000001"),
        ("0x3fffffff", 2**30 - 1, None, "0x3fffffff"),
        ("00000001", 1, None, "0x00000001"),  # digits are decimal, even with leading zeros
        ("42", 42, None, "0x0000002a"),
        (str(2**30 - 1), 2**30 - 1, None, "0x3fffffff"),
        # decimal above 32 bits: 8 bytes (Toby's value)
        ("001122334455667788", 0x0003FCC1, 0xDA8C9C4C, "0x0003fcc1da8c9c4c"),
        (str(2**32), 1, 0, "0x0000000100000000"),
    ],
)
def test_add_intercept_id_4_or_8_bytes(raw: str, intercept: int, session: int | None,
                                       echo: str) -> None:
    assert parse_intercept_id(raw) == (intercept, session)
    delivery = add({"X-MD-Intercept-Id": raw}).delivery
    assert delivery == Jmirror(intercept, 5 if session is None else session,
                               session_given=session is not None)
    assert render_intercept_id(delivery) == echo  # what LIST echoes


def test_add_without_intercept_id_is_classic() -> None:
    assert add().delivery == CLASSIC


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("0x40000000", "30 bits"),  # 2^30: V would be 1
        ("0xffffffff", "30 bits"),
        ("0x4000000000000001", "30 bits"),
        (str(2**30), "30 bits"),
        (str(2**62), "30 bits"),  # 8 bytes whose intercept half is 2^30
        ("0x" + "1" * 17, "1 to 16 hex digits"),
        ("0x", "1 to 16 hex digits"),
        ("0xZZ", "not hex"),
        ("0x-1", "not hex"),
        ("0x 12", "not hex"),
        ("0x\uff11\uff12", "not hex"),  # fullwidth digits: int() would take them
        ("deadbeef", "decimal digits"),
        ("-1", "decimal digits"),
        ("+1", "decimal digits"),
        ("1" * 21, "decimal digits"),
        (str(2**64), "longer than 8 bytes"),
        ("٣", "decimal digits"),  # a non-ASCII digit
    ],
)
def test_add_intercept_id_that_does_not_fit_is_400(raw: str, why: str) -> None:
    with pytest.raises(FilterSyntaxError, match=why):
        parse_intercept_id(raw)
    error = add_error({"X-MD-Intercept-Id": raw})
    assert error.status == 400  # the reply's Error-Parameters names the field as sent
    assert error.parameter == ("x-md-intercept-id", raw)
    assert error.detail is not None and why in error.detail  # for the LI audit log


@pytest.mark.parametrize("action", ["Copy", "copy", "COPY"])
def test_add_action_copy_is_the_default_behaviour(action: str) -> None:
    assert add({"Action": action}) == add()


def test_add_unknown_x_headers_are_ignored_even_repeated() -> None:
    assert add({"X-Vendor-Thing": "1", "X-Md-Comment": "hello world"}) == add()
    repeated = request("ADD DTCP/0.8", *(f"{k}: {v}" for k, v in BASE_ADD.items()),
                       "X-Vendor-Thing: 1", "X-Vendor-Thing: 2")  # fmt: skip
    assert parse_add(repeated, "ftuser", 5) == add()


@pytest.mark.parametrize("name", ["Dest-Port", "X-JTap-Cdest-Dest-Port"])
def test_add_repeating_a_parameter_never_reaches_the_parser(name: str) -> None:
    # SECURITY D3: the decoder refuses it (400) instead of letting the first copy win
    head = "".join(f"{line}\r\n" for line in ("ADD DTCP/0.8", *(
        f"{k}: {v}" for k, v in BASE_ADD.items()), f"{name}: 9999")).encode()
    [decoded] = MessageDecoder().feed(SSH_SIGNER.sign(head, "Authentication-Info"))
    assert isinstance(decoded, DecodeError) and decoded.status == 400


def test_add_wildcard_next_to_negation_matches_everything_else() -> None:
    match = add({"Dest-Address": "!30.30.30.1, *"}).match
    assert match.dest_address.matches(4, ip("30.30.30.2"))
    assert not match.dest_address.matches(4, ip("30.30.30.1"))


# --- ADD: refused, with the fact sheet's status ----------------------------------------------

ADD_REFUSALS = [
    # 901 JTap-Failure: a required X-JTap-Cdest-* missing, or any X-JTap value bad (§2.4).
    ("missing-cdest-dest-address", {"X-JTap-Cdest-Dest-Address": None}, 901),
    ("missing-cdest-dest-port", {"X-JTap-Cdest-Dest-Port": None}, 901),
    ("missing-cdest-source-address", {"X-JTap-Cdest-Source-Address": None}, 901),
    ("missing-cdest-source-port", {"X-JTap-Cdest-Source-Port": None}, 901),
    ("cdest-dest-port-0", {"X-JTap-Cdest-Dest-Port": "0"}, 901),
    ("cdest-dest-port-65536", {"X-JTap-Cdest-Dest-Port": "65536"}, 901),
    ("cdest-dest-port-text", {"X-JTap-Cdest-Dest-Port": "http"}, 901),
    ("cdest-dest-address-bad", {"X-JTap-Cdest-Dest-Address": "212.25.99.256"}, 901),
    ("cdest-dest-address-unspecified", {"X-JTap-Cdest-Dest-Address": "0.0.0.0"}, 901),
    ("cdest-dest-address-prefix", {"X-JTap-Cdest-Dest-Address": "10.0.0.0/8"}, 901),
    ("cdest-source-address-bad", {"X-JTap-Cdest-Source-Address": "router"}, 901),
    ("cdest-source-address-list", {"X-JTap-Cdest-Source-Address": "1.1.1.1,2.2.2.2"}, 901),
    ("cdest-source-port-0", {"X-JTap-Cdest-Source-Port": "0"}, 901),
    ("cdest-source-port-70000", {"X-JTap-Cdest-Source-Port": "70000"}, 901),
    ("cdest-ttl-256", {"X-JTap-Cdest-TTL": "256"}, 901),
    ("cdest-ttl-negative", {"X-JTap-Cdest-TTL": "-1"}, 901),
    ("cdest-family-differs", {"X-JTap-Cdest-Dest-Address": "2001:db8::1"}, 901),
    ("ip-version-bad", {"X-JTap-IP-Version": "ipv5"}, 901),
    (
        "input-interface-nine",
        {"X-JTap-Input-Interface": ",".join(f"ge-0/0/{i}" for i in range(9))},
        901,
    ),
    ("input-interface-name", {"X-JTap-Input-Interface": "1ge-0/0/0"}, 901),
    ("input-interface-unit", {"X-JTap-Input-Interface": "ge-0/0/0.16385"}, 901),
    ("input-interface-empty-entry", {"X-JTap-Input-Interface": "ge-0/0/0,"}, 901),
    ("vrf-unknown", {"X-JTap-VRF-Name": "red", "X-JTap-Input-Interface": None}, 901),
    # 432 Improper Filter Specification.
    ("vrf-with-input-interface", {"X-JTap-VRF-Name": "red"}, 432),
    ("input-with-output-interface", {"X-JTap-Output-Interface": "ge-0/0/1"}, 432),
    ("cdest-count-mismatch", {"Cdest-ID": "cd1,cd2"}, 432),
    ("dest-address-count-mismatch", {"X-JTap-Cdest-Dest-Address": "192.0.2.1,192.0.2.2"}, 432),
    ("dest-port-count-mismatch", {"X-JTap-Cdest-Dest-Port": "1,2"}, 432),
    (
        "cdest-named-twice",
        {
            "Cdest-ID": "cd1,cd1",
            "X-JTap-Cdest-Dest-Address": "1.1.1.1,1.1.1.2",
            "X-JTap-Cdest-Dest-Port": "1,2",
        },
        432,
    ),
    ("reversed-range", {"Dest-Address": "10.0.0.9-10.0.0.1"}, 432),
    ("prefix-host-bits", {"Dest-Address": "30.30.30.1/24"}, 432),
    ("mixed-family-filter", {"Dest-Address": "10.0.0.1,2001:db8::1"}, 432),
    ("never-matches", {"Dest-Address": "!*"}, 432),
    ("reversed-port-range", {"Dest-Port": "2000-1000"}, 432),
    ("ports-without-tcp-udp", {"Protocol": "1"}, 432),
    ("icmp-without-icmp", {"Protocol": "6", "Dest-Port": None, "ICMP-Type": "8"}, 432),
    # 400 Bad Request.
    ("missing-cdest-id", {"Cdest-ID": None}, 400),
    (
        "three-destinations",
        {
            "Cdest-ID": "a,b,c",
            "X-JTap-Cdest-Dest-Address": "1.1.1.1,1.1.1.2,1.1.1.3",
            "X-JTap-Cdest-Dest-Port": "1,2,3",
        },
        400,
    ),
    ("three-dest-addresses-only", {"X-JTap-Cdest-Dest-Address": "1.1.1.1,1.1.1.2,1.1.1.3"}, 400),
    ("cdest-id-whitespace", {"Cdest-ID": "cd 1"}, 400),
    ("cdest-id-escaped-newline", {"Cdest-ID": "cd\\0101"}, 400),
    ("filter-port-65536", {"Dest-Port": "65536"}, 400),
    ("filter-prefix-33", {"Dest-Address": "30.30.30.0/33"}, 400),
    ("filter-short-address", {"Source-Address": "10.0.0"}, 400),
    ("filter-space-in-range", {"Source-Address": "10.0.0.1 - 10.0.0.2"}, 400),
    ("filter-empty-entry", {"Dest-Port": "1,,2"}, 400),
    ("protocol-name", {"Protocol": "udp"}, 400),
    ("protocol-256", {"Protocol": "256"}, 400),
    ("priority-0", {"Priority": "0"}, 400),
    ("priority-256", {"Priority": "256"}, 400),
    ("priority-text", {"Priority": "high"}, 400),
    ("flag-unknown", {"Flags": "STATIC,FOREVER"}, 400),
    ("flag-not-for-add", {"Flags": "BOTH"}, 400),
    ("intercept-id-9-bytes", {"X-MD-Intercept-Id": "0x" + "1" * 17}, 400),
    ("intercept-id-not-hex", {"X-MD-Intercept-Id": "0xZZ"}, 400),
    ("intercept-id-above-64-bits", {"X-MD-Intercept-Id": str(2**64)}, 400),
    ("intercept-id-negative", {"X-MD-Intercept-Id": "-1"}, 400),
    ("intercept-id-31-bits", {"X-MD-Intercept-Id": "0x40000000"}, 400),
    ("criteria-id-in-add", {"Criteria-ID": "3"}, 400),
    # 433 Improper Timeout Specification.
    ("no-static-no-timeout", {"Flags": None}, 433),
    ("only-zero-timeouts", {"Flags": "SendAsync", "Timeout-Idle": "0", "Timeout-Bytes": "0"}, 433),
    ("idle-above-a-day", {"Timeout-Idle": "86401"}, 433),
    ("total-text", {"Timeout-Total": "soon"}, 433),
    ("idle-negative", {"Timeout-Idle": "-5"}, 433),
    ("packets-above-64-bits", {"Timeout-Packets": str(2**64)}, 433),
    # 501 Not Implemented: would widen the tap if ignored, or not defined at all.
    ("action-redirect", {"Action": "Redirect"}, 501),
    ("action-block", {"Action": "Block"}, 501),
    ("action-extension", {"Action": "Mirror"}, 501),
    (
        "output-interface",
        {"X-JTap-Input-Interface": None, "X-JTap-Output-Interface": "ge-0/0/1"},
        501,
    ),
    ("filter-family-ccc", {"X-JTap-Filter-Family": "ccc"}, 501),
    ("subscriber-trigger", {"X-UserName": "bob"}, 501),
    ("drop-policy", {"X-Drop-Policy": "pol"}, 501),
    ("unknown-x-jtap", {"X-JTap-Future-Thing": "1"}, 501),
    ("unknown-draft-style-header", {"Foo": "bar"}, 501),
]


@pytest.mark.parametrize(
    ("changes", "status"), [pytest.param(c, s, id=i) for i, c, s in ADD_REFUSALS]
)
def test_add_refusal_status(changes: dict[str, str | None], status: int) -> None:
    error = add_error(changes)
    assert error.status == status
    assert isinstance(error, DtcpError)


@pytest.mark.parametrize(
    ("changes", "version"),
    [
        ({"X-JTap-IP-Version": "ipv4"}, "0.6"),
        ({"X-MD-Intercept-Id": "0x01020304"}, "0.6"),
        ({"Source-Address": "2001:db8::1", "Dest-Address": None}, "0.6"),
        (
            {
                "X-JTap-Cdest-Dest-Address": "2001:db8::1",
                "X-JTap-Cdest-Source-Address": "2001:db8::2",
            },
            "0.5",
        ),
    ],
)
def test_d2_parameter_not_in_version_rejects_whole_request(
    changes: dict[str, str | None], version: str
) -> None:
    assert add_error(changes, version).status == 501
    add(changes, "0.7")  # the same request is fine in DTCP/0.7


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"X-JTap-Cdest-Dest-Address": None}, 901),
        ({"X-JTap-Cdest-Dest-Port": None}, 901),
        ({"Source-Address": "10.0.0.1", "Dest-Address": "2001:db8::1"}, 432),
        ({"X-JTap-IP-Version": "ipv6"}, 432),
        ({"X-JTap-IP-Version": "ipv4", "Source-Address": "2001:db8::1", "Dest-Address": None}, 432),
        ({"X-JTap-Cdest-Dest-Port": "0"}, 901),
        ({"Source-Port": "65536"}, 400),
        ({"Dest-Address": "30.30.30.0/33"}, 400),
        ({"Dest-Address": "30.30.30.0/"}, 400),
        ({"X-MD-Intercept-Id": "0x010203040506070809"}, 400),
    ],
)
def test_d5_bad_add_creates_no_criterion(changes: dict[str, str | None], status: int) -> None:
    assert add_error(changes).status == status


def test_errors_never_carry_header_values() -> None:
    # SECURITY LI-2: exceptions get logged; the marker target must never appear in them.
    for changes in (
        {"Dest-Address": "192.0.2.77-192.0.2.70"},
        {"Dest-Address": "192.0.2.77/33"},
        {"X-JTap-Cdest-Dest-Address": "192.0.2.77.1"},
        {"X-JTap-Cdest-Source-Address": "192.0.2.777"},
    ):
        error = add_error(changes)
        for text in (str(error), repr(error), error.detail or "", error.reason or ""):
            assert "192.0.2.77" not in text
        assert error.parameter is not None
        assert "192.0.2.77" in error.parameter[1]  # only the reply echo to the same MD has it


def test_error_parameter_names_the_offending_header_as_sent() -> None:
    error = add_error({"Dest-Port": "99999"})
    assert error.parameter == ("dest-port", "99999")
    assert (error.status, error.reason) == (400, "Bad Request")


# --- value grammar ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10.0.0.1", AddressFilter(4, (Span(ip("10.0.0.1"), ip("10.0.0.1")),))),
        ("10.1.1.1-10.1.1.10", AddressFilter(4, (Span(ip("10.1.1.1"), ip("10.1.1.10")),))),
        ("10.0.0.0/8", AddressFilter(4, (Span(ip("10.0.0.0"), ip("10.255.255.255")),))),
        ("0.0.0.0/0", AddressFilter(4, (Span(0, V4_MAX),))),
        ("10.0.0.5-*", AddressFilter(4, (Span(ip("10.0.0.5"), V4_MAX),))),
        ("*-10.0.0.5", AddressFilter(4, (Span(0, ip("10.0.0.5")),))),
        ("*", ANY_ADDRESS),
        ("*, *", ANY_ADDRESS),
        ("!10.0.0.1", AddressFilter(4, (Span(ip("10.0.0.1"), ip("10.0.0.1"), True),))),
        (
            "!10.0.0.1, *",
            AddressFilter(4, (Span(0, V4_MAX), Span(ip("10.0.0.1"), ip("10.0.0.1"), True))),
        ),
        (
            "10.0.0.1,\t10.0.0.2",
            AddressFilter(
                4, (Span(ip("10.0.0.1"), ip("10.0.0.1")), Span(ip("10.0.0.2"), ip("10.0.0.2")))
            ),
        ),
        ("010.001.000.001", AddressFilter(4, (Span(ip("10.1.0.1"), ip("10.1.0.1")),))),
        (
            "2001:db8::/32",
            AddressFilter(
                6, (Span(ip("2001:db8::"), ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")),)
            ),
        ),
        ("::ffff:1.2.3.4", AddressFilter(6, (Span(ip("::ffff:1.2.3.4"), ip("::ffff:1.2.3.4")),))),
        ("::1-*", AddressFilter(6, (Span(1, 2**128 - 1),))),
    ],
)
def test_ip_filter(raw: str, expected: AddressFilter) -> None:
    assert parse_address_filter(raw) == expected


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("10.0.0.256", FilterSyntaxError),
        ("10.0.0", FilterSyntaxError),
        ("10.0.0.1.5", FilterSyntaxError),
        ("a.b.c.d", FilterSyntaxError),
        ("\uff11.2.3.4", FilterSyntaxError),
        ("10.0.0.1/33", FilterSyntaxError),
        ("10.0.0.1/", FilterSyntaxError),
        ("10.0.0.0/x", FilterSyntaxError),
        ("::/129", FilterSyntaxError),
        ("fe80::1%eth0", FilterSyntaxError),
        ("2001:db8::g", FilterSyntaxError),
        ("10.0.0.1 ,10.0.0.2", FilterSyntaxError),
        ("10.0.0.1 10.0.0.2", FilterSyntaxError),
        ("", FilterSyntaxError),
        (",", FilterSyntaxError),
        ("10.0.0.1,", FilterSyntaxError),
        ("*-*", FilterSyntaxError),
        ("10.0.0.1-", FilterSyntaxError),
        ("-10.0.0.1", FilterSyntaxError),
        ("!!10.0.0.1", FilterSyntaxError),
        ("10.0.0.2-10.0.0.1", ImproperFilterError),
        ("1.2.3.4-::1", ImproperFilterError),
        ("10.0.0.1,::1", ImproperFilterError),
        ("10.0.0.1/8", ImproperFilterError),
        ("!*", ImproperFilterError),
    ],
)
def test_ip_filter_errors(raw: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_address_filter(raw)


def test_ipv6_filter_unsupported_before_0_7() -> None:
    with pytest.raises(UnsupportedValueError):
        parse_address_filter("2001:db8::1", allow_ipv6=False)
    assert parse_address_filter("10.0.0.1", allow_ipv6=False).version == 4


@pytest.mark.parametrize(
    ("raw", "spans"),
    [
        ("80", (Span(80, 80),)),
        ("0", (Span(0, 0),)),
        ("1-1023", (Span(1, 1023),)),
        ("1024-*", (Span(1024, 65535),)),
        ("*-1023", (Span(0, 1023),)),
        ("!22", (Span(22, 22, True),)),
        ("!22,*", (Span(0, 65535), Span(22, 22, True))),
        ("80, 443", (Span(80, 80), Span(443, 443))),
        ("65535", (Span(65535, 65535),)),
    ],
)
def test_port_filter(raw: str, spans: tuple[Span, ...]) -> None:
    assert parse_port_filter(raw) == ValueFilter(spans)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("65536", FilterSyntaxError),
        ("123456", FilterSyntaxError),
        ("-1", FilterSyntaxError),
        ("1-", FilterSyntaxError),
        ("http", FilterSyntaxError),
        (" 80", FilterSyntaxError),
        ("80-22", ImproperFilterError),
        ("!*", ImproperFilterError),
    ],
)
def test_port_filter_errors(raw: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_port_filter(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("*", ANY),
        ("6,17", ValueFilter((Span(6, 6), Span(17, 17)))),
        ("0-255", ValueFilter((Span(0, 255),))),
        ("250-*", ValueFilter((Span(250, 255),))),
    ],
)
def test_protocol_and_icmp_filters(raw: str, expected: ValueFilter) -> None:
    assert parse_byte_filter(raw) == expected


@pytest.mark.parametrize("raw", ["256", "1000", "tcp", "6;17"])
def test_protocol_filter_errors(raw: str) -> None:
    with pytest.raises(FilterSyntaxError):
        parse_byte_filter(raw)


@pytest.mark.parametrize(
    ("raw", "listed", "inside", "outside"),
    [
        ("2", (2,), [2], [1, 3]),
        ("3-7,12", (12,), [3, 5, 7, 12], [2, 8, 11, 13]),
        ("*", (), [0, 1, U64_MAX], []),
        ("!5", (), [4, 6], [5]),
        ("!*", (), [], [0, 1, U64_MAX]),
        ("*,!3", (), [2, 4], [3]),
        ("100-*", (), [100, U64_MAX], [99]),
        (str(U64_MAX), (U64_MAX,), [U64_MAX], [0]),
    ],
)
def test_criteria_id_filter(
    raw: str, listed: tuple[int, ...], inside: list[int], outside: list[int]
) -> None:
    selector = parse_criteria_selector(raw)
    assert selector.listed_ids == listed
    assert all(selector.matches(i) for i in inside)
    assert not any(selector.matches(i) for i in outside)
    assert selector.is_wildcard == (raw == "*")


@pytest.mark.parametrize("raw", [str(2**64), "9" * 25, "-1", "3,-7"])
def test_criteria_id_that_cannot_exist_is_unknown(raw: str) -> None:
    with pytest.raises(UnknownCriteriaIdError):
        parse_criteria_selector(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ge-1/3/5.0", ("ge-1/3/5.0",)),
        ("ge-1/3/5", ("ge-1/3/5.0",)),
        ("ge-1/3/5.7, xe-0/0/0", ("ge-1/3/5.7", "xe-0/0/0.0")),
        ("eth0", ("eth0.0",)),
        ("eth0.0,eth0", ("eth0.0",)),
        (",".join(f"ge-0/0/{i}" for i in range(8)), tuple(f"ge-0/0/{i}.0" for i in range(8))),
    ],
)
def test_input_interfaces_default_unit_zero(raw: str, expected: tuple[str, ...]) -> None:
    assert parse_input_interfaces(raw) == expected


# --- common headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["Csource-ID: md1", "Seq: 0"], RequestIdentity("md1", 0)),
        (["csource-id: md1", "SEQ: 18446744073709551615"], RequestIdentity("md1", U64_MAX)),
        (["Csource-ID: caf\\195\\169", "Seq: 7"], RequestIdentity("caf\u00e9", 7)),
    ],
)
def test_identity(headers: list[str], expected: RequestIdentity) -> None:
    assert parse_identity(request("NOOP DTCP/0.7", *headers)) == expected


@pytest.mark.parametrize(
    "headers",
    [
        ["Seq: 1"],
        ["Csource-ID: md1"],
        ["Csource-ID: md1", "Seq: one"],
        ["Csource-ID: md1", "Seq: -1"],
        ["Csource-ID: md1", f"Seq: {2**64}"],
        ["Csource-ID: md 1", "Seq: 1"],
        ["Csource-ID:", "Seq: 1"],
        ["Csource-ID: \\255", "Seq: 1"],
    ],
)
def test_identity_refusals_are_400(headers: list[str]) -> None:
    with pytest.raises(DtcpRequestError) as caught:
        parse_identity(request("NOOP DTCP/0.7", *headers))
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("headers", "seq"),
    [(["Seq: 12"], 12), (["Seq: x"], None), ([], None), (["Csource-ID: a b", "Seq: 3"], 3)],
)
def test_seq_of_for_error_replies(headers: list[str], seq: int | None) -> None:
    assert seq_of(request("NOOP DTCP/0.7", *headers)) == seq


def test_d3_escaped_crlf_in_csource_id_rejected() -> None:
    with pytest.raises(DtcpRequestError) as caught:
        parse_identity(request("NOOP DTCP/0.7", "Csource-ID: mallory\\013\\010Flags:\\032STATIC"))
    assert caught.value.status == 400


# --- DELETE, REFRESH, LIST, NOOP -------------------------------------------------------------


def delete(*headers: str) -> DeleteParams:
    return parse_delete(request("DELETE DTCP/0.7", "Csource-ID: md1", *headers, "Seq: 1"))


def test_delete_by_criteria_id_junos_example() -> None:
    params = delete("CRITERIA-ID: 2", "Flags: STATIC")
    assert (params.cdest_id, params.static) == (None, True)
    assert params.criteria is not None
    assert params.criteria.listed_ids == (2,)


def test_delete_by_cdest_id_toby_cleanup() -> None:
    assert delete("Cdest-ID: md1", "Flags: STATIC") == DeleteParams(None, "md1", True)


def test_delete_range_without_static() -> None:
    params = delete("Criteria-ID: 3-7,12")
    assert not params.static
    assert params.criteria is not None
    assert params.criteria.matches(5)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param(["Criteria-ID: 2", "Cdest-ID: md1"], 400, id="d6-both"),
        pytest.param([], 400, id="neither"),
        pytest.param(["Cdest-ID: md1,md2"], 400, id="d6-two-cdest-ids"),
        pytest.param(["Cdest-ID: md1, md2"], 400, id="d6-two-cdest-ids-spaced"),
        pytest.param(["Criteria-ID: 2", "Flags: SendAsync"], 400, id="flag-not-for-delete"),
        pytest.param(["Criteria-ID: 2", "Timeout-Idle: 5"], 400, id="add-header-in-delete"),
        pytest.param(["Criteria-ID: 7-3"], 400, id="reversed-range"),
        pytest.param(["Criteria-ID: two"], 400, id="not-a-number"),
        pytest.param(["Criteria-ID: 2", "Foo: bar"], 501, id="unknown-header"),
        pytest.param([f"Criteria-ID: {2**64}"], 431, id="beyond-64-bits"),
        pytest.param(["Criteria-ID: -4"], 431, id="negative"),
    ],
)
def test_delete_refusals(headers: list[str], status: int) -> None:
    with pytest.raises(DtcpRequestError) as caught:
        delete(*headers)
    assert caught.value.status == status


def test_d6_delete_with_criteria_and_cdest_is_400() -> None:
    with pytest.raises(DtcpRequestError) as caught:
        delete("CRITERIA-ID: 2", "Cdest-ID: md1", "Flags: STATIC")
    assert caught.value.status == 400
    # issue 17 item 6: the reply names both fields, as sent
    assert caught.value.parameters == (("criteria-id", "2"), ("cdest-id", "md1"))


def test_delete_with_neither_id_names_both_as_missing() -> None:
    with pytest.raises(DtcpRequestError) as caught:
        delete("Flags: STATIC")
    assert caught.value.status == 400
    assert caught.value.parameters == (("criteria-id", ""), ("cdest-id", ""))


def test_d6_delete_with_two_cdest_ids_is_400() -> None:
    with pytest.raises(DtcpRequestError) as caught:
        delete("Cdest-ID: md1,md2", "Flags: STATIC")
    assert caught.value.status == 400
    assert caught.value.parameter == ("cdest-id", "md1,md2")


def test_impossible_criteria_id_echoes_like_unknown() -> None:
    with pytest.raises(DtcpRequestError) as caught:
        delete("Criteria-ID: 5, 99999999999999999999999")
    assert (caught.value.status, caught.value.parameter) == (
        431,
        ("criteria-id", "99999999999999999999999"),
    )


def test_delete_ignores_x_headers() -> None:
    assert delete("Cdest-ID: md1", "X-JTap-Cdest-TTL: 9", "X-Note: x") == DeleteParams(
        None, "md1", False
    )


def refresh(*headers: str) -> RefreshParams:
    return parse_refresh(request("REFRESH DTCP/0.7", "Csource-ID: md1", *headers, "Seq: 1"))


def test_refresh_replaces_timeouts() -> None:
    params = refresh("Cdest-ID: md1", "Timeout-Idle: 60", "Timeout-Bytes: 1000")
    assert params == RefreshParams(None, "md1", Timeouts(idle=60, bytes=1000))


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (["Criteria-ID: 5"], 433),
        (["Criteria-ID: 5", "Timeout-Idle: 0"], 433),
        (["Criteria-ID: 5", "Timeout-Total: 90000"], 433),
        (["Criteria-ID: 5", "Cdest-ID: md1", "Timeout-Idle: 5"], 400),
        (["Timeout-Idle: 5"], 400),
        (["Cdest-ID: a,b", "Timeout-Idle: 5"], 400),
        (["Criteria-ID: 5", "Timeout-Idle: 5", "Flags: STATIC"], 400),
    ],
)
def test_refresh_refusals(headers: list[str], status: int) -> None:
    with pytest.raises(DtcpRequestError) as caught:
        refresh(*headers)
    assert caught.value.status == status


def list_params(*headers: str) -> ListParams:
    return parse_list(request("LIST DTCP/0.7", "Csource-ID: md1", *headers, "Seq: 1"))


@pytest.mark.parametrize(
    ("headers", "flags"),
    [
        ([], Flag.CRITERIA),
        (["Flags: BOTH"], Flag.BOTH),
        (["Flags: Stats,Criteria"], Flag.BOTH),
        (["Flags: stats"], Flag.STATS),
        (["Flags: Criteria"], Flag.CRITERIA),
    ],
)
def test_list_flags_default_to_criteria(headers: list[str], flags: Flag) -> None:
    assert list_params(*headers) == ListParams(None, None, flags)


def test_list_takes_both_selectors() -> None:
    params = list_params("Criteria-ID: 1-9", "Cdest-ID: md1")
    assert params.cdest_id == "md1"
    assert params.criteria is not None
    assert params.criteria.matches(4)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(["Cdest-ID: md1,md2"], id="d6-two-cdest-ids"),
        pytest.param(["Flags: STATIC"], id="flag-not-for-list"),
        pytest.param(["Flags: Everything"], id="unknown-flag"),
        pytest.param(["Timeout-Idle: 4"], id="add-header-in-list"),
    ],
)
def test_d6_list_refusals_are_400(headers: list[str]) -> None:
    with pytest.raises(DtcpRequestError) as caught:
        list_params(*headers)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("headers", "expected"),
    [([], NoopParams(False)), (["Flags: SendAsync"], NoopParams(True))],
)
def test_noop(headers: list[str], expected: NoopParams) -> None:
    assert parse_noop(request("NOOP DTCP/0.7", "Csource-ID: md1", *headers, "Seq: 1")) == expected


@pytest.mark.parametrize("header", ["Flags: STATIC", "Cdest-ID: md1", "Criteria-ID: 4"])
def test_noop_refusals_are_400(header: str) -> None:
    with pytest.raises(DtcpRequestError) as caught:
        parse_noop(request("NOOP DTCP/0.7", "Csource-ID: md1", header, "Seq: 1"))
    assert caught.value.status == 400


def test_dotted_quads_parse_as_octet_by_octet() -> None:
    """parse_address's one-step IPv4 reading answers as the octet-by-octet rule does: 1-3 ASCII
    digits per octet (leading zeros allowed), each at most 255, four of them."""
    from flowtap.dtcp.filters import FilterSyntaxError, parse_address, parse_number

    def octet_by_octet(text: str) -> tuple[int, int] | None:
        octets = text.split(".")
        if len(octets) != 4:
            return None
        value = 0
        for octet in octets:
            try:
                value = value << 8 | parse_number(octet, 3, 255)
            except FilterSyntaxError:
                return None
        return 4, value

    rng = random.Random(4)
    texts = ["0.0.0.0", "255.255.255.255", "256.1.1.1", "010.001.0.9", "1.2.3", "1.2.3.4.5",
             "1..2.3", "+1.2.3.4", "1.2.3.4 ", "\u0661.2.3.4", "0001.2.3.4", "1.2.3.-4"]  # fmt: skip
    for _ in range(5000):  # four "octets" of 1-4 digits, now and then one too many or few
        octets = ["".join(rng.choice("0123456789") for _ in range(rng.choice((1, 2, 3, 3, 4))))
                  for _ in range(rng.choice((3, 4, 4, 4, 4, 5)))]  # fmt: skip
        texts.append(".".join(octets))
    accepted = 0
    for text in texts:
        expected = octet_by_octet(text)
        try:
            got: tuple[int, int] | None = parse_address(text)
        except FilterSyntaxError:
            got = None
        assert got == expected, text
        accepted += got is not None
    assert accepted > 100
