"""Issue 4: DTCP over SSH end to end against flowtapd: reply layout, status lines, framing abuse
(SECURITY D1-D3, D5, D6, D8, D12), pipelining, REFRESH and LIST, the HMAC policy."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import paramiko
import pytest

from flowtap.dtcp.auth_info import SSH_SIGNER
from flowtap.tools.dtcp_client import build_request
from tests.flowtapd import Flowtapd, TestUser
from tests.integration.dtcp_support import (
    USERS,
    add_fields,
    audit_records,
    commit,
    dtcp_edit,
    listed_ids,
    make_flowtapd,
    md,
    request,
)

MD_USERS = {**USERS, **{f"p{i}": TestUser(f"p{i}", f"p{i}-pw-1", "li-md") for i in range(1, 10)}}
TIMESTAMP = re.compile(rb"TIMESTAMP: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flowtapd]:
    daemon = make_flowtapd(tmp_path_factory.mktemp("protocol"), MD_USERS)
    daemon.start()
    yield daemon
    daemon.stop()


def lines(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\r\n\r\n")
    return raw[:-4].split(b"\r\n")


async def test_add_delete_replies_have_the_junos_layout(server: Flowtapd) -> None:
    """Acceptance 1 end to end: SEQ, result, TIMESTAMP, AUTHENTICATION-INFO keyed Juniper."""
    async with md(server, "p1") as client:
        add = await client.request("ADD", add_fields(), seq=7)
        first, seq, result, stamp, auth = lines(add.raw)
        assert (first, seq) == (b"DTCP/0.7 200 OK", b"SEQ: 7")
        assert re.fullmatch(rb"CRITERIA-ID: \d+", result) and TIMESTAMP.fullmatch(stamp)
        assert auth.startswith(b"AUTHENTICATION-INFO: ") and add.verified
        assert SSH_SIGNER.verify(add.raw[: add.raw.index(b"AUTHENTICATION-INFO")],
                                 auth.split(b": ")[1].decode())
        delete = await client.request(
            "DELETE", [("CRITERIA-ID", str(add.criteria_id)), ("Flags", "STATIC")], seq=10)
        assert lines(delete.raw)[:3] == [b"DTCP/0.7 200 OK", b"SEQ: 10", b"CRITERIA-COUNT: 1"]
        assert TIMESTAMP.fullmatch(lines(delete.raw)[3]) and delete.verified


STATUS_CASES = {
    "200": ("NOOP", [], "DTCP/0.7 200 OK"),
    "400": ("LIST", [("Cdest-ID", "cd1,cd2")], "DTCP/0.7 400 Bad Request"),
    "430": ("LIST", [("Cdest-ID", "never-used")], "DTCP/0.7 430 Unknown Content Destination"),
    "431": ("DELETE", [("Criteria-ID", "4000000")], "DTCP/0.7 431 Unknown Criteria ID"),
    "432": ("ADD", add_fields(extra=[("Source-Address", "10.1.1.10-10.1.1.1")]),
            "DTCP/0.7 432 Improper Filter Specification"),
    "433": ("ADD", add_fields(static=False), "DTCP/0.7 433 Improper Timeout Specification"),
    "501": ("ADD", add_fields(extra=[("Action", "Block")]), "DTCP/0.7 501 Not Implemented"),
    "901-missing": ("ADD", [f for f in add_fields() if f[0] != "X-JTap-Cdest-Source-Port"],
                    "DTCP/0.7 901 JTap-Failure"),
    "901-ifl": ("ADD", add_fields(extra=[("X-JTap-Input-Interface", "ge-9/9/9.0")]),
                "DTCP/0.7 901 JTap-Failure"),
    "901-ttl": ("ADD", add_fields(extra=[("X-JTap-Cdest-TTL", "0")]), "DTCP/0.7 901 JTap-Failure"),
}


@pytest.mark.parametrize("case", list(STATUS_CASES))
async def test_status_line(server: Flowtapd, case: str) -> None:
    """Acceptance 7 (500, 550 and 551 are in test_dtcp_dataplane and test_dtcp_limits)."""
    method, fields, expected = STATUS_CASES[case]
    async with md(server, "p2") as client:
        reply = await client.request(method, fields)
        assert reply.status_line == expected and reply.raw.startswith(expected.encode() + b"\r\n")
        assert reply.verified and reply.seq is not None
        if method == "ADD" and reply.status != 200:
            assert listed_ids(await client.list()) == []


async def test_505_is_written_in_the_highest_version(server: Flowtapd) -> None:
    async with md(server, "p2") as client:
        raw = build_request("NOOP", seq=3, csource_id="p2", version="0.9")
        (reply,) = await client.send(raw, 1)
        assert reply.raw.startswith(b"DTCP/0.8 505 DTCP Version not supported\r\nSEQ: 3\r\n")


async def test_input_interface_of_a_configured_unit_is_accepted(server: Flowtapd) -> None:
    async with md(server, "p2") as client:
        reply = await client.add(add_fields(extra=[("X-JTap-Input-Interface", "ge-1/3/5")]))
        assert reply.status == 200
        listing = await client.list()
        assert listing.entries()[-1]["X-JTAP-INPUT-INTERFACE"] == "ge-1/3/5.0"
        await client.request("DELETE", [("Cdest-ID", "cd1"), ("Flags", "STATIC")])


async def test_d1_versions_and_methods_then_the_session_stays_usable(server: Flowtapd) -> None:
    async with md(server, "p3") as client:
        bad = [
            (b"ADD DTCP/9.9\r\nCsource-ID: p3\r\nSeq: 1\r\n\r\n", b"DTCP/0.8 505 "),
            (b"LIST DTCP/0.4\r\nCsource-ID: p3\r\nSeq: 2\r\n\r\n", b"DTCP/0.5 505 "),
            (b"add DTCP/0.7\r\nCsource-ID: p3\r\nSeq: 3\r\n\r\n", b"DTCP/0.7 501 "),
            (b"ENABLE DTCP/0.8\r\nCsource-ID: p3\r\nSeq: 4\r\n\r\n", b"DTCP/0.8 501 "),
            (b"ADD\r\nCsource-ID: p3\r\nSeq: 5\r\n\r\n", b"DTCP/0.7 400 "),
            (b"ADD dtcp/0.7\r\nCsource-ID: p3\r\nSeq: 6\r\n\r\n", b"DTCP/0.7 400 "),
        ]
        for raw, start in bad:
            (reply,) = await client.send(raw, 1)
            assert reply.raw.startswith(start), reply.raw
        old = await client.request("LIST", [("Flags", "Criteria")], version="0.5")
        assert old.status_line == "DTCP/0.5 200 OK"
        assert (await client.noop()).status == 200
        assert listed_ids(await client.list()) == []


async def test_d1_ten_protocol_errors_in_a_row_close_the_channel(server: Flowtapd) -> None:
    async with md(server, "p3") as client:
        refusals = b"".join(request("DELETE", "p3", [("Criteria-ID", "999999")], seq=i)
                            for i in range(12))  # fmt: skip
        assert [r.status for r in await client.send(refusals, 12)] == [431] * 12  # answers
        junk = b"".join(b"ADD DTCP/0.7 extra\r\nSeq: %d\r\n\r\n" % i for i in range(12))
        replies = await client.send(junk, 12, timeout=10)
        assert [r.status for r in replies] == [400] * 10
        assert await client.process.stdout.read() == b""  # closed
    async with md(server, "p3") as client:  # a new channel is fine
        assert (await client.noop()).status == 200


async def test_d2_parameter_not_in_the_version_rejects_the_whole_request(server: Flowtapd) -> None:
    async with md(server, "p4") as client:
        fields = add_fields(extra=[("X-MD-Intercept-Id", "0x01020304")])
        reply = await client.request("ADD", fields, version="0.6")
        assert reply.status_line == "DTCP/0.6 501 Not Implemented"
        assert reply.get("X-MD-INTERCEPT-ID") == "0x01020304"
        assert listed_ids(await client.list()) == []


@pytest.mark.parametrize("injected", [
    b"Csource-ID: p4\rFlags: STATIC\r\n",  # bare CR inside a value
    b"Csource-ID: p4\r\nCdest-ID: a\x00b\r\n",  # NUL
    b"Csource-ID: p4\r\n Flags: STATIC\r\n",  # folded continuation line
    b"Csource-ID: p4\r\nno colon here\r\n",
    b"Csource-ID: p4\r\nX-Pad: " + b"A" * 9000 + b"\r\n",  # above the 8 KiB line cap
    b"Csource-ID: p4\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(70)),  # > 64 headers
])
async def test_d3_header_injection_is_refused(server: Flowtapd, injected: bytes) -> None:
    async with md(server, "p4") as client:
        raw = b"ADD DTCP/0.7\r\n" + injected + b"Seq: 1\r\n\r\n"
        (reply,) = await client.send(raw, 1)
        assert reply.status == 400
        assert (await client.noop()).status == 200  # resynchronised
        assert listed_ids(await client.list()) == []


@pytest.mark.parametrize(("method", "fields"), [
    ("ADD", [("Csource-ID", "p9"), *add_fields()]),  # the same identity twice
    ("ADD", [*add_fields(), ("CSOURCE-ID", "p1")]),  # a second identity after the first
    ("ADD", [*add_fields(), ("Dest-Address", "192.0.2.99")]),
    ("ADD", [*add_fields(), ("X-JTap-Cdest-Dest-Port", "47999")]),
    ("ADD", [*add_fields(), ("Flags", "STATIC")]),  # even an identical copy
    ("LIST", [("Flags", "Criteria"), ("flags", "Stats")]),
    ("NOOP", [("Seq", "1")]),
])
async def test_d3_duplicate_headers_are_refused_and_audited(
    server: Flowtapd, method: str, fields: list[tuple[str, str]],
) -> None:
    """Row 8 of issue 13: a repeated single-valued header is a 400, nothing is applied, the
    refusal is in the LI audit log and the channel stays usable. Issue 17 item 6: the reply
    names the repeated field (Error-Parameters: the second copy, as sent), except a repeated
    Seq: either copy would read as the reply's own Seq."""
    async with md(server, "p9") as client:
        before = len(audit_records(server))
        (reply,) = await client.send(request(method, "p9", fields, seq=77), 1)
        assert reply.status_line == "DTCP/0.7 400 Bad Request" and reply.verified
        repeated = fields[-1] if method != "ADD" or fields[0][0] != "Csource-ID" else fields[0]
        echoed = [(n, v) for n, v in reply.headers
                  if n not in ("SEQ", "TIMESTAMP", "AUTHENTICATION-INFO")]  # fmt: skip
        expected = [] if method == "NOOP" else [(repeated[0].upper(), repeated[1])]
        assert echoed == expected, reply.headers
        assert (await client.noop()).status == 200  # resynchronised, not closed
        assert listed_ids(await client.list()) == []
    refusals = [r for r in audit_records(server)[before:] if r["result"] == "400 Bad Request"]
    assert [(r["principal"], r["method"]) for r in refusals] == [("p9", method)]
    assert "duplicate header" in refusals[0]["reason"]


async def test_d3_megabyte_header_line_is_refused_and_closes(server: Flowtapd) -> None:
    """Past the 64 KiB message cap there is no resynchronising: 400, then the channel closes."""
    async with md(server, "p4") as client:
        raw = b"ADD DTCP/0.7\r\nCsource-ID: p4\r\nX-Pad: " + b"A" * 1_048_576 + b"\r\n\r\n"
        replies = await client.send(raw, 3)
        assert replies and all(r.status == 400 for r in replies)
        assert await client.process.stdout.read() == b""
    async with md(server, "p4") as client:
        assert listed_ids(await client.list()) == []


async def test_d5_bad_adds_create_no_criterion(server: Flowtapd) -> None:
    async with md(server, "p5") as client:
        bad = [
            [f for f in add_fields() if f[0] != "X-JTap-Cdest-Dest-Address"],
            add_fields(extra=[("Source-Address", "10.0.0.1"),
                              ("Dest-Address", "2001:db8::1")]),  # family mismatch
            add_fields(extra=[("X-JTap-Cdest-Dest-Port", "65536")]),
            add_fields(extra=[("Source-Address", "10.0.0.1/33")]),
            add_fields(extra=[("X-JTap-IP-Version", "ipv6")]),
            add_fields(extra=[("X-MD-Intercept-Id", "0x" + "1" * 17)]),  # more than 8 bytes
        ]
        statuses = [(await client.add(fields)).status for fields in bad]
        assert all(400 <= s < 1000 and s != 200 for s in statuses), statuses
        assert listed_ids(await client.list()) == []


async def test_d6_selectors_refused_with_400(server: Flowtapd) -> None:
    async with md(server, "p5") as client:
        for method, fields in [
            ("DELETE", [("Criteria-ID", "1"), ("Cdest-ID", "cd1")]),
            ("DELETE", [("Cdest-ID", "cd1,cd2")]),
            ("LIST", [("Cdest-ID", "cd1, cd2"), ("Flags", "Both")]),
        ]:
            assert (await client.request(method, fields)).status_line == "DTCP/0.7 400 Bad Request"


async def test_d8_seq_is_echoed_never_enforced(server: Flowtapd) -> None:
    """Decision (Junos over SSH): repeated, decreasing and restarting Seq are all served."""
    async with md(server, "p6") as client:
        for seq in (5, 5, 3, 0, 18446744073709551615, 1):
            reply = await client.request("NOOP", seq=seq)
            assert (reply.status, reply.get("SEQ")) == (200, str(seq))


async def test_d12_oversize_message_is_answered_then_closed(server: Flowtapd) -> None:
    async with md(server, "p6") as client:
        head = b"ADD DTCP/0.7\r\nCsource-ID: p6\r\nSeq: 9\r\n"
        body = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"B" * 4000) for i in range(20))
        replies = await client.send(head + body + b"\r\n", 1)
        assert [r.status for r in replies] == [400]
        assert await client.process.stdout.read() == b""
    async with md(server, "p6") as client:
        junk = bytes(range(256)) * 64 + b"\r\n\r\n" + b"\xff\xfe\x00garbage\n\n"
        client.process.stdin.write(junk)
        await client.read(1, timeout=2)  # whatever it answers, it must not crash
    async with md(server, "p6") as client:
        assert (await client.noop()).status == 200


def test_d12_exec_and_shell_get_no_dtcp(server: Flowtapd) -> None:
    """A request sent before (or instead of) the subsystem is never interpreted."""
    ssh = paramiko.SSHClient()
    ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    ssh.connect("127.0.0.1", server.dtcp_port, "p6", "p6-pw-1",
                allow_agent=False, look_for_keys=False)
    try:
        raw = request("NOOP", "p6", []).decode()
        _, out, _ = ssh.exec_command(raw)
        assert b"DTCP" not in out.read() and out.channel.recv_exit_status() == 1
        channel = ssh.get_transport().open_session()  # type: ignore[union-attr]
        try:
            channel.invoke_subsystem("sftp")
        except paramiko.SSHException:
            return  # refused outright
        channel.sendall(raw.encode())
        assert b"DTCP" not in channel.recv(1024) and channel.recv_exit_status() == 1
    finally:
        ssh.close()


async def test_pipelined_requests_are_answered_in_order(server: Flowtapd) -> None:
    async with md(server, "p7") as client:
        adds = [client.build("ADD", add_fields(cdest=f"cd{i % 2}")) for i in range(100)]
        tail = [client.build("LIST", [("Flags", "Criteria")]),
                client.build("DELETE", [("Cdest-ID", "cd0"), ("Flags", "STATIC")]),
                client.build("LIST", [("Flags", "Criteria")])]
        replies = await client.pipeline(adds + tail)
        seqs = [r.seq for r in replies]
        assert seqs == sorted(seqs) and len(replies) == 103
        ids = [r.criteria_id for r in replies[:100]]
        assert ids == sorted(set(ids)) and all(r.status == 200 for r in replies)
        assert listed_ids(replies[100]) == ids
        assert replies[101].criteria_count == 50
        assert listed_ids(replies[102]) == ids[1::2]
        await client.request("DELETE", [("Criteria-ID", "*"), ("Flags", "STATIC")])


async def test_refresh_and_list_statistics(server: Flowtapd) -> None:
    async with md(server, "p8") as client:
        timed = (await client.add(add_fields(static=False, total=300, idle=200))).criteria_id
        static = (await client.add(add_fields())).criteria_id
        reply = await client.request("REFRESH", [("Criteria-ID", f"{timed},{static}"),
                                                 ("Timeout-Total", "50")])
        assert reply.criteria_count == 1  # a STATIC criterion is never refreshed
        stats = {int(e["CRITERIA-ID"]): e for e in (await client.list([("Flags", "Stats")]))
                 .entries()}  # fmt: skip
        assert 45 <= int(stats[timed]["REMAINING-TOTAL"]) <= 50
        assert 190 <= int(stats[timed]["REMAINING-IDLE"]) <= 200
        assert stats[timed]["NUM-REFRESH"] == "1" and "REMAINING-TOTAL" not in stats[static]
        assert "DEST-ADDRESS" not in stats[timed]  # Stats only: no criteria block
        crit = (await client.list([("Flags", "Criteria")])).entries()
        assert crit[0]["TIMEOUT-TOTAL"] == "50" and "MATCHING-PACKETS" not in crit[0]
        assert crit[0]["CRITERIA-NUM"] == "1" and crit[0]["CRITERIA-COUNT"] == "2"
        by_range = await client.list([("Criteria-ID", f"{static}-*"), ("Flags", "Both")])
        assert listed_ids(by_range) == [static]
        assert (await client.request("REFRESH", [("Cdest-ID", "nothing"),
                                                 ("Timeout-Idle", "5")])).criteria_count == 0
        unknown = await client.request("REFRESH", [("Criteria-ID", "777777"),
                                                   ("Timeout-Idle", "5")])
        assert unknown.status == 431
        gone = await client.request("DELETE", [("Cdest-ID", "cd1")])  # without STATIC
        assert gone.criteria_count == 1 and listed_ids(await client.list()) == [static]
        await client.request("DELETE", [("Cdest-ID", "cd1"), ("Flags", "static")])


async def test_hmac_policy_lenient_by_default_strict_by_commit(server: Flowtapd) -> None:
    wrong = re.sub(rb"Authentication-Info: [0-9a-f]+", b"Authentication-Info: " + b"0" * 40,
                   request("NOOP", "md1", [], seq=41))
    unsigned = b"NOOP DTCP/0.7\r\nCsource-ID: md1\r\nSeq: 42\r\n\r\n"
    good = request("NOOP", "md1", [], seq=43)
    async with md(server) as client:
        replies = await client.send(wrong + unsigned, 2)
        assert [r.seq for r in replies] == [41, 42] and all(r.status == 200 for r in replies)
    await asyncio.to_thread(commit, server, dtcp_edit(hmac_policy="strict"))
    try:
        async with md(server) as client:
            replies = await client.send(wrong + unsigned + good, 1)
            assert [(r.seq, r.status) for r in replies] == [(43, 200)]
    finally:
        await asyncio.to_thread(commit, server, dtcp_edit(hmac_policy="lenient"))
    dropped = [r for r in audit_records(server) if r["result"].startswith("497")]
    assert [r["reason"].split(";")[0] for r in dropped] == ["seq=41", "seq=42"]


async def test_unknown_x_headers_are_ignored_and_names_are_case_insensitive(
    server: Flowtapd,
) -> None:
    async with md(server, "p8") as client:
        fields = [(n.upper(), v) for n, v in add_fields()] + [("X-Vendor-Thing", "1")]
        reply = await client.add(fields)
        assert reply.status == 200
        await client.request("DELETE", [("criteria-id", str(reply.criteria_id)),
                                        ("flags", "Static")])  # fmt: skip
        assert listed_ids(await client.list()) == []

