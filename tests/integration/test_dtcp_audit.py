"""Issue 4 acceptance 10 and LI-2, LI-5: every DTCP request and every authentication decision is
one record of the hash-chained LI audit log, the only place where targets appear."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from flowtap.tools.dtcp_client import AsyncDtcpClient
from tests.flowtapd import TestUser
from tests.integration.dtcp_support import (
    USERS,
    add_fields,
    audit_records,
    make_flowtapd,
    md,
    running,
)


def verify(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowtap.tools.audit_cli", "verify", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip


async def test_every_request_and_decision_is_recorded_and_the_chain_verifies(
    tmp_path: Path,
) -> None:
    server = make_flowtapd(tmp_path)
    with running(server):
        await asyncio.to_thread(lambda: server.connect("admin").close_session())  # NETCONF
        with pytest.raises(asyncssh.PermissionDenied):
            await AsyncDtcpClient.connect("127.0.0.1", server.dtcp_port, username="md1",
                                          password="wrong", known_hosts=None)  # fmt: skip
        async with md(server) as client:
            sent = [
                await client.add(add_fields(dest="192.0.2.77")),
                await client.list(),
                await client.request("DELETE", [("Criteria-ID", "5")]),
                await client.request("REFRESH", [("Cdest-ID", "cd1"), ("Timeout-Idle", "9")]),
                await client.noop(),
                await client.request("DELETE", [("Cdest-ID", "cd1"), ("Flags", "STATIC")]),
            ]
            (junk,) = await client.send(b"FROB DTCP/0.7\r\nSeq: 99\r\n\r\n", 1)
    log = server.audit_log
    assert log.stat().st_mode & 0o777 == 0o600 and log.parent.stat().st_mode & 0o777 == 0o700
    records = audit_records(server)
    dtcp = [r for r in records if r["event"] == "dtcp"]
    assert [r["result"] for r in dtcp] == [
        *(f"{r.status} {r.reason}" for r in sent), "501 Not Implemented"]
    assert junk.status == 501
    assert [r["method"] for r in dtcp] == ["ADD", "LIST", "DELETE", "REFRESH", "NOOP", "DELETE",
                                           "FROB"]  # fmt: skip
    add = dtcp[0]
    assert (add["principal"], add["peer"], add["criteria_id"], add["cdest_id"]) == (
        "md1", "127.0.0.1", sent[0].criteria_id, "cd1")
    assert "Dest-Address: 192.0.2.77" in add["target"] and add["time"].endswith("Z")
    auth = [(r["session"], r["principal"], r["result"]) for r in records if r["event"] == "auth"]
    assert auth == [("netconf", "admin", "accept"), ("flow-tap-dtcp", "md1", "reject"),
                    ("flow-tap-dtcp", "md1", "accept")]  # fmt: skip
    result = verify(log)
    assert result.returncode == 0 and result.stdout.startswith(f"OK {log}:"), result.stdout
    raw = bytearray(log.read_bytes())
    at = raw.index(b"192.0.2.77")
    raw[at + 9] = ord("8")  # one byte: 192.0.2.77 -> 192.0.2.78
    edited = tmp_path / "edited.log"
    edited.write_bytes(bytes(raw))
    result = verify(edited)
    assert result.returncode == 1 and result.stdout.startswith("FAILED"), result.stdout


MARKERS = ("192.0.2.77", "198.51.100.77", "0x0badcafe", "agency-x", "secret-agency")


async def test_li2_targets_and_agencies_never_reach_ordinary_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLOWTAP_TEST_LOG", "DEBUG")
    users = {**USERS, "secret-agency": TestUser("secret-agency", "sa-pw-1", "li-md")}
    server = make_flowtapd(tmp_path, users)
    fields = add_fields(dest="192.0.2.77", cdest="agency-x", extra=[
        ("Source-Address", "198.51.100.77"), ("X-MD-Intercept-Id", "0x0badcafe")])
    with running(server):
        async with md(server, "secret-agency") as client:
            assert (await client.add(fields)).status == 200
            assert (await client.list()).status == 200
            bad = [*fields, ("Dest-Port", "99999")]
            assert (await client.add([f for f in bad if f[0] != "Dest-Port"] + bad[-1:])
                    ).status == 400  # fmt: skip
            await client.send(b"ADD DTCP/0.7\r\nX-Target: 192.0.2.77\x00\r\n\r\n", 1)
            assert (await client.request("DELETE", [("Cdest-ID", "agency-x"),
                                                    ("Flags", "STATIC")])).status == 200
    output = "".join(server.output)
    assert "DEBUG" in output  # the daemon really logged at DEBUG
    for marker in MARKERS:
        assert marker not in output, marker
    for path in server.state_dir.rglob("*"):  # criteria are never configuration
        if path.is_file() and path.parent.name != "audit":
            data = path.read_bytes()  # (the user name is: it is a configured login)
            assert not any(m.encode() in data for m in MARKERS[:4]), path
    audit = server.audit_log.read_text()
    assert all(marker in audit for marker in MARKERS[:4])  # the one place they are kept
    assert json.loads(audit.splitlines()[-1])["event"] == "close"
    assert os.stat(server.audit_log).st_size > 0


async def test_sigkill_records_the_end_of_every_live_criterion_at_restart(tmp_path: Path) -> None:
    """Issue 13 row 9 (LI-10): after a SIGKILL the restarted daemon records, per criterion that
    was live, that it ended by the unclean stop; a clean SIGTERM records each as stopped."""
    server = make_flowtapd(tmp_path)
    server.start()
    try:
        async with md(server) as one, md(server, "md2") as two:
            ids = [(await one.add(add_fields(dest=f"192.0.2.{i}"))).criteria_id for i in (1, 2, 3)]
            other = (await two.add(add_fields())).criteria_id
            deleted = await one.delete([("Criteria-ID", str(ids[1])), ("Flags", "STATIC")])
            assert deleted.criteria_count == 1
        last = audit_records(server)[-1]
        server.kill()
        server.start(init=False)
        ended = [r for r in audit_records(server) if r["result"] == "unclean stop"]
        assert [(r["principal"], r["criteria_id"]) for r in ended] == [
            ("md1", ids[0]), ("md1", ids[2]), ("md2", other)]  # in the order they were added
        assert all(r["event"] == "dtcp-remove" and r["cdest_id"] == "cd1" and r["peer"]
                   and f"last known live {last['time']}" in r["reason"] for r in ended)
        assert all(r["target"] is None and "192.0.2." not in r["reason"] for r in ended)
        async with md(server) as one:
            kept = (await one.add(add_fields())).criteria_id
    finally:
        server.stop()  # SIGTERM
    records = audit_records(server)
    stopped = [r for r in records if r["result"] == "service stopped"]
    assert [(r["principal"], r["criteria_id"]) for r in stopped] == [("md1", kept)]
    assert records[-1]["event"] == "close"
    checked = verify(server.audit_log)
    assert checked.returncode == 0 and "closed" in checked.stdout, checked.stdout + checked.stderr
    server.start(init=False)  # after a clean stop nothing more is recorded as ended
    server.stop()
    assert len([r for r in audit_records(server) if r["result"] == "unclean stop"]) == 3
