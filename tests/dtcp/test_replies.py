"""Replies in the Junos documentation layout, signed with key Juniper; status codes."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

import pytest

from flowtap.dtcp.auth_info import SSH_SIGNER, Signer
from flowtap.dtcp.filters import parse_address_filter, parse_port_filter
from flowtap.dtcp.message import DecodeError
from flowtap.dtcp.replies import (
    ListEntry,
    add_reply,
    count_reply,
    decode_error_reply,
    dtcp_error_reply,
    encode_reply,
    error_reply,
    format_timestamp,
    list_reply,
    noop_reply,
    render_address_filter,
    render_value_filter,
)
from flowtap.dtcp.status import NEVER_SENT, REASON_PHRASES, DtcpRequestError, Status, reason_phrase
from flowtap.errors import DtcpError
from flowtap.intercept.criteria import (
    ContentDestination,
    Criterion,
    Flag,
    Jmirror,
    Match,
    Timeouts,
)
from flowtap.intercept.stats import CriterionStats

WHEN = datetime(2011, 2, 13, 15, 57, 47, 667000)


def crlf(*lines: str) -> bytes:
    return "".join(f"{line}\r\n" for line in lines).encode()


def split_reply(reply: bytes) -> tuple[list[str], str]:
    """(lines before AUTHENTICATION-INFO, its value), checking the framing on the way."""
    assert reply.endswith(b"\r\n\r\n")
    lines = reply[:-4].decode().split("\r\n")
    name, _, digest = lines[-1].partition(": ")
    assert name == "AUTHENTICATION-INFO"
    assert SSH_SIGNER.verify(crlf(*lines[:-1]), digest)
    return lines[:-1], digest


# --- the Junos documentation examples (fact sheet §3.1, HMAC vectors 2 and 3) ----------------


def test_add_reply_reproduces_junos_documentation() -> None:
    reply = add_reply("0.7", 7, 2, datetime(2011, 2, 13, 15, 56, 49, 609000))
    assert reply == crlf(
        "DTCP/0.7 200 OK",
        "SEQ: 7",
        "CRITERIA-ID: 2",
        "TIMESTAMP: 2011-02-13 15:56:49.609",
        "AUTHENTICATION-INFO: 4880de4b8cead98c95813fd9b95e240b107d4693",
        "",
    )


def test_delete_reply_reproduces_junos_documentation() -> None:
    reply = count_reply("0.7", 10, 1, datetime(2011, 2, 13, 16, 0, 2, 802000))
    assert reply == crlf(
        "DTCP/0.7 200 OK",
        "SEQ: 10",
        "CRITERIA-COUNT: 1",
        "TIMESTAMP: 2011-02-13 16:00:02.802",
        "AUTHENTICATION-INFO: 2834ff32ec07d84753a046cfb552e072cc27d50b",
        "",
    )


def test_reply_echoes_request_version_and_clients_can_parse_it() -> None:
    reply = add_reply("0.8", 1, 5, WHEN).decode()
    assert reply.startswith("DTCP/0.8 200 OK\r\n")
    # The regular expressions Juniper's Toby uses on replies (fact sheet §3.1).
    status = re.search(r"DTCP/\d.\d\s(\d+)\s(.*)", reply)
    criteria_id = re.search(r"CRITERIA-ID:\s*(\d+)", reply)
    assert status is not None
    assert criteria_id is not None
    assert (status.group(1), status.group(2).strip(), criteria_id.group(1)) == ("200", "OK", "5")


def test_noop_reply() -> None:
    lines, _ = split_reply(noop_reply("0.7", 3, WHEN))
    assert lines == ["DTCP/0.7 200 OK", "SEQ: 3", "TIMESTAMP: 2011-02-13 15:57:47.667"]


def test_other_key_signs_udp_style_replies() -> None:
    reply = add_reply(
        "0.6", 3827443, 38224, datetime(2005, 1, 1, 12, 1, 1, 111000), signer=Signer(b"secret")
    )
    lines = reply[:-4].decode().split("\r\n")
    assert Signer(b"secret").verify(crlf(*lines[:-1]), lines[-1].split(": ")[1])
    assert not SSH_SIGNER.verify(crlf(*lines[:-1]), lines[-1].split(": ")[1])


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (datetime(2011, 2, 13, 15, 56, 49, 609000), "2011-02-13 15:56:49.609"),
        (datetime(2024, 5, 1, 10, 0, 0, 123999), "2024-05-01 10:00:00.123"),
        (datetime(2005, 1, 1, 1, 2, 3), "2005-01-01 01:02:03.000"),
        (datetime(2030, 12, 31, 23, 59, 59, 999999), "2030-12-31 23:59:59.999"),
    ],
)
def test_timestamp_format(when: datetime, text: str) -> None:
    assert format_timestamp(when) == text


# --- errors -----------------------------------------------------------------------------------


def test_error_reply_echoes_parameter_between_seq_and_timestamp() -> None:
    # draft-cavuto-dtcp-03 §7.2, in the Junos header style.
    reply = error_reply("0.6", 431, 2655371, WHEN, parameters=[("Criteria-ID", "55331")])
    lines, _ = split_reply(reply)
    assert lines == [
        "DTCP/0.6 431 Unknown Criteria ID",
        "SEQ: 2655371",
        "CRITERIA-ID: 55331",
        "TIMESTAMP: 2011-02-13 15:57:47.667",
    ]


def test_error_reply_without_seq_omits_it() -> None:
    lines, _ = split_reply(error_reply("0.7", 400, None, WHEN))
    assert lines == ["DTCP/0.7 400 Bad Request", "TIMESTAMP: 2011-02-13 15:57:47.667"]


def test_dtcp_error_reply_uses_the_request_error_parameter() -> None:
    error = DtcpRequestError(432, "dest-address: range is reversed", ("dest-address", "2-1"))
    lines, _ = split_reply(dtcp_error_reply(error, "0.7", 9, WHEN))
    assert lines[:3] == [
        "DTCP/0.7 432 Improper Filter Specification",
        "SEQ: 9",
        "DEST-ADDRESS: 2-1",
    ]
    lines, _ = split_reply(dtcp_error_reply(DtcpError(550), "0.7", 9, WHEN))
    assert lines[0] == "DTCP/0.7 550 Max Criteria Limit Exceeded"
    assert len(lines) == 3


@pytest.mark.parametrize(
    ("error", "status_line", "seq_line"),
    [
        (DecodeError(505, "newer", "0.8", 4), "DTCP/0.8 505 DTCP Version not supported", "SEQ: 4"),
        (DecodeError(505, "older", "0.5", None), "DTCP/0.5 505 DTCP Version not supported", None),
        (DecodeError(501, "method", "0.7", 2, "FOO"), "DTCP/0.7 501 Not Implemented", "SEQ: 2"),
        (DecodeError(400, "bad", None, 1), "DTCP/0.7 400 Bad Request", "SEQ: 1"),
    ],
)
def test_d1_decode_error_replies(
    error: DecodeError, status_line: str, seq_line: str | None
) -> None:
    lines, _ = split_reply(decode_error_reply(error, WHEN))
    assert lines[0] == status_line
    assert (lines[1] if seq_line else None) == seq_line
    assert lines[-1].startswith("TIMESTAMP: ")


def test_decode_error_reply_default_version() -> None:
    reply = decode_error_reply(DecodeError(400, "bad"), WHEN, default_version="0.8")
    assert reply.startswith(b"DTCP/0.8 400 Bad Request\r\n")


@pytest.mark.parametrize(
    ("name", "value"),
    [("CDEST-ID", "a\r\nFLAGS: STATIC"), ("CDEST-ID", "a\nb"), ("X\r\nY", "1"), ("A", "\x00")],
)
def test_d3_reply_encoder_refuses_line_breaks(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="control character"):
        encode_reply("0.7", 200, [(name, value)])


# --- LIST ---------------------------------------------------------------------------------------

STATIC_RFT = Criterion(
    criteria_id=2,
    csource_id="dtcp1",
    match=Match(),
    destinations=(ContentDestination("cd1", "192.0.40.168", 65535, "198.15.0.10", 50000, 64),),
    flags=Flag.STATIC,
    delivery=Jmirror(0x01010101, 0x30010002, session_given=True),
)
TIMED = Criterion(
    criteria_id=3,
    csource_id="dtcp1",
    match=Match(
        source_address=parse_address_filter("10.0.0.0/8"),
        dest_address=parse_address_filter("!10.1.1.1, 10.1.1.0-10.1.1.10"),
        dest_port=parse_port_filter("53,1024-*"),
        input_interfaces=("ge-1/3/5.0",),
        ip_version=4,
    ),
    destinations=(
        ContentDestination("cd1", "192.0.2.1", 8001, "192.0.2.9", 49153, 255),
        ContentDestination("cd 2", "192.0.2.2", 8002, "192.0.2.9", 49153, 255),
    ),
    flags=Flag.SEND_ASYNC,
    timeouts=Timeouts(idle=600, bytes=10**6),
)
STATS = CriterionStats(
    last_refresh=datetime(2011, 2, 13, 15, 56, 49, 609000),
    remaining=Timeouts(idle=540, total=99, bytes=999_000),
    average_bandwidth=1200,
    matching_packets=10,
    matching_bytes=1000,
    num_refresh=1,
)
STATIC_ENTRY = [
    "CRITERIA-ID: 2",
    "CSOURCE-ID: dtcp1",
    "CDEST-ID: cd1",
    "CSOURCE-ADDRESS: 10.10.4.224",
    "FLAGS: Static",
]
STATIC_CRITERIA = [
    "X-JTAP-CDEST-DEST-ADDRESS: 192.0.40.168",
    "X-JTAP-CDEST-DEST-PORT: 65535",
    "X-JTAP-CDEST-SOURCE-ADDRESS: 198.15.0.10",
    "X-JTAP-CDEST-SOURCE-PORT: 50000",
    "X-JTAP-CDEST-TTL: 64",
    "X-MD-INTERCEPT-ID: 0x0101010130010002",
]
STATIC_STATS = [
    "AVERAGE-BANDWIDTH: 1200",
    "MATCHING-PACKETS: 10",
    "MATCHING-BYTES: 1000",
    "NUM-REFRESH: 1",
    "LAST-REFRESH: 2011-02-13 15:56:49.609",
]
HEAD = ["DTCP/0.7 200 OK", "SEQ: 9", "TIMESTAMP: 2011-02-13 15:57:47.667"]


def entries(*criteria: Criterion) -> list[ListEntry]:
    return [ListEntry(c, "10.10.4.224", STATS) for c in criteria]


def test_list_reply_follows_the_junos_sample() -> None:
    lines, _ = split_reply(list_reply("0.7", 9, entries(STATIC_RFT), Flag.BOTH, WHEN))
    assert lines == [
        *HEAD,
        *STATIC_ENTRY,
        *STATIC_CRITERIA,
        *STATIC_STATS,  # a static criterion has no REMAINING-*
        "CRITERIA-NUM: 1",
        "CRITERIA-COUNT: 1",
    ]


def test_list_echoes_a_4_byte_intercept_id_as_given_and_none_for_classic_copies() -> None:
    four = dataclasses.replace(STATIC_RFT, delivery=Jmirror(0x3FFFFFFF, 2))
    lines, _ = split_reply(list_reply("0.7", 9, entries(four), Flag.CRITERIA, WHEN))
    assert lines[-3] == "X-MD-INTERCEPT-ID: 0x3fffffff"  # the session ID is the Criteria-ID
    lines, _ = split_reply(list_reply("0.7", 9, entries(TIMED), Flag.CRITERIA, WHEN))
    assert not any(line.startswith("X-MD-INTERCEPT-ID") for line in lines)


@pytest.mark.parametrize(
    ("flags", "blocks"),
    [
        (Flag.CRITERIA, STATIC_CRITERIA),
        (Flag.STATS, STATIC_STATS),
        (Flag.BOTH, STATIC_CRITERIA + STATIC_STATS),
    ],
)
def test_list_flags_select_blocks(flags: Flag, blocks: list[str]) -> None:
    lines, _ = split_reply(list_reply("0.7", 9, entries(STATIC_RFT), flags, WHEN))
    assert lines == [*HEAD, *STATIC_ENTRY, *blocks, "CRITERIA-NUM: 1", "CRITERIA-COUNT: 1"]


def test_list_reply_timed_criterion_with_filters() -> None:
    lines, _ = split_reply(list_reply("0.8", 9, entries(STATIC_RFT, TIMED), Flag.BOTH, WHEN))
    second = lines[lines.index("CRITERIA-COUNT: 2") + 1 :]
    assert second == [
        "CRITERIA-ID: 3",
        "CSOURCE-ID: dtcp1",
        "CDEST-ID: cd1,cd\\0322",
        "CSOURCE-ADDRESS: 10.10.4.224",
        "FLAGS: SendAsync",
        "SOURCE-ADDRESS: 10.0.0.0/8",
        "DEST-ADDRESS: !10.1.1.1,10.1.1.0-10.1.1.10",
        "DEST-PORT: 53,1024-65535",
        "TIMEOUT-IDLE: 600",
        "TIMEOUT-BYTES: 1000000",
        "X-JTAP-CDEST-DEST-ADDRESS: 192.0.2.1,192.0.2.2",
        "X-JTAP-CDEST-DEST-PORT: 8001,8002",
        "X-JTAP-CDEST-SOURCE-ADDRESS: 192.0.2.9",
        "X-JTAP-CDEST-SOURCE-PORT: 49153",
        "X-JTAP-CDEST-TTL: 255",
        "X-JTAP-INPUT-INTERFACE: ge-1/3/5.0",
        "X-JTAP-IP-VERSION: ipv4",
        "REMAINING-IDLE: 540",
        "REMAINING-BYTES: 999000",
        *STATIC_STATS,
        "CRITERIA-NUM: 2",
        "CRITERIA-COUNT: 2",
    ]
    assert [line for line in lines if line.startswith("CRITERIA-NUM")] == [
        "CRITERIA-NUM: 1",
        "CRITERIA-NUM: 2",
    ]


def test_list_reply_empty() -> None:
    lines, _ = split_reply(list_reply("0.7", 9, [], Flag.CRITERIA, WHEN))
    assert lines == HEAD


def test_list_reply_dtcp_0_5_uses_num_criteria_once() -> None:
    lines, _ = split_reply(list_reply("0.5", 9, entries(STATIC_RFT, TIMED), Flag.CRITERIA, WHEN))
    assert lines[-1] == "NUM-CRITERIA: 2"
    assert not any(line.startswith(("CRITERIA-NUM", "CRITERIA-COUNT")) for line in lines)
    lines, _ = split_reply(list_reply("0.5", 9, [], Flag.CRITERIA, WHEN))
    assert lines == ["DTCP/0.5 200 OK", "SEQ: 9", HEAD[2], "NUM-CRITERIA: 0"]


def test_d3_list_reply_escapes_client_chosen_names() -> None:
    sneaky = Criterion(
        criteria_id=4,
        csource_id="md\r\nSEQ: 1",
        match=Match(),
        destinations=(ContentDestination("c\\d", "192.0.2.1", 1, "192.0.2.2", 2),),
        flags=Flag.STATIC,
    )
    lines, _ = split_reply(list_reply("0.7", 9, entries(sneaky), Flag.CRITERIA, WHEN))
    assert "CSOURCE-ID: md\\013\\010SEQ:\\0321" in lines
    assert "CDEST-ID: c\\092d" in lines
    assert [line for line in lines if line.startswith("SEQ")] == ["SEQ: 9"]


@pytest.mark.parametrize(
    "raw",
    [
        "10.0.0.1",
        "10.0.0.0/8",
        "10.0.0.1-10.0.0.3",
        "!10.0.0.1,*",
        "2001:db8::/32",
        "::1-::5",
        "0.0.0.0/1",
        "10.0.0.0-10.0.1.0",
    ],
)
def test_rendered_address_filters_parse_back(raw: str) -> None:
    parsed = parse_address_filter(raw)
    assert parse_address_filter(render_address_filter(parsed)) == parsed


@pytest.mark.parametrize(
    ("raw", "rendered"),
    [("80", "80"), ("1-1023", "1-1023"), ("!22,*", "*,!22"), ("*-10", "0-10")],
)
def test_rendered_port_filters(raw: str, rendered: str) -> None:
    assert render_value_filter(parse_port_filter(raw), 65535) == rendered
    assert parse_port_filter(rendered).matches(22) == parse_port_filter(raw).matches(22)


# --- status codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        (200, "OK"),
        (400, "Bad Request"),
        (430, "Unknown Content Destination"),
        (431, "Unknown Criteria ID"),
        (432, "Improper Filter Specification"),
        (433, "Improper Timeout Specification"),
        (500, "Server Internal Error"),
        (501, "Not Implemented"),
        (505, "DTCP Version not supported"),
        (550, "Max Criteria Limit Exceeded"),
        (551, "Max Content Destination Exceeded"),
        (901, "JTap-Failure"),
        (130, "Sequence Number Rollover"),
        (131, "NoOp Notification"),
        (390, "Criterion Timeout Delete"),
        (580, "Congestion"),
        (598, "Duplicate Packets Dropped"),
        (599, "Server Restart"),
        (680, "Criterion Congestion Delete"),
    ],
)
def test_reason_phrases(code: int, phrase: str) -> None:
    assert reason_phrase(code) == phrase
    assert Status(code).reason == phrase
    lines, _ = split_reply(error_reply("0.7", code, 1, WHEN))
    assert lines[0] == f"DTCP/0.7 {code} {phrase}"


def test_status_table_is_complete_and_never_sent_codes_exist() -> None:
    assert set(REASON_PHRASES) == {int(s) for s in Status}
    assert frozenset({497, 498, 499}) == NEVER_SENT
    assert reason_phrase(777) == "Unknown Status"
    with pytest.raises(ValueError, match="three digits"):
        reason_phrase(42)
