"""The operator log (issue 17 item 5): flowtapd's INFO lines tell an operator what the box did
(start, stop, commits, NETCONF logins and failed logins) and nothing of lawful intercept:
no LI user's login or name, no LI hierarchy. A real daemon, real SSH logins with ncclient."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ncclient.transport.errors import AuthenticationError

from tests.flowtapd import NC, SVC, SYS, Flowtapd, TestUser, free_port

from .conftest import USERS

SP = ('<interfaces xmlns="urn:flowtap:yang:interfaces"><interface><name>sp-0/0/0</name>'
      "<host-device>lo</host-device><unit><name>0</name><family><inet/></family></unit>"
      "</interface></interfaces>")  # fmt: skip
MD_CLASS = "<class><name>md</name><permissions>flow-tap-operation</permissions></class>"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flowtapd]:
    monkeypatch.setenv("FLOWTAP_TEST_LOG", "INFO")
    users = {**USERS, "md7": TestUser("md7", "md7-pw-1", "md"),
             "su": TestUser("su", "su-pw-1", "super-user")}  # every bit but the LI ones
    dtcp = free_port()
    daemon = Flowtapd(tmp_path / "state", free_port(), users, extra_classes=MD_CLASS,
                      extra_config=SP, dtcp_port=dtcp,
                      system_services=f"<flow-tap-dtcp><ssh><port>{dtcp}</port></ssh>"
                                      "</flow-tap-dtcp>")  # fmt: skip
    daemon.start()
    yield daemon
    daemon.stop()


def operator_lines(server: Flowtapd) -> list[str]:
    time.sleep(0.3)  # the daemon writes a commit's line just after its reply
    return [line.split("flowtap.operator: ", 1)[1].rstrip("\n")
            for line in server.output if "flowtap.operator: " in line]


def hostname(name: str) -> str:
    return f'<config xmlns="{NC}"><system xmlns="{SYS}"><host-name>{name}</host-name></system></config>'


def test_start_commits_logins_and_stop_are_logged_without_lawful_intercept(
    server: Flowtapd,
) -> None:
    with server.connect("su") as m:
        m.edit_config(target="candidate", config=hostname("edge-1"))
        m.commit()
    with server.connect("admin") as m:  # an LI administrator
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0'
            "</interface></flow-tap></services></config>"))  # fmt: skip
        m.commit()  # LI configuration only: no line at all
        socket.create_connection(("127.0.0.1", server.dtcp_port), timeout=5).close()  # DTCP on
        m.edit_config(target="candidate", config=hostname("edge-2"))
        m.commit()
    for user, password in (("ops", "wrong"), ("md7", "wrong"), ("nosuch", "wrong")):
        with pytest.raises(AuthenticationError):
            _login(server, user, password)
    _refused_on_dtcp(server, "ops")  # no flow-tap-operation: refused once authenticated
    server.stop()
    lines = operator_lines(server)
    text = "\n".join(lines)
    assert lines[0] == f"NETCONF listening on 127.0.0.1 port {server.port}", text
    # the first boot's commit of the initial configuration may be logged before or after the
    # start line (it is: the boot commit waits for its LI audit record)
    assert any(line.startswith("flowtapd ") and " started: pid " in line
               for line in lines[1:3]), text
    assert any(line.startswith("login: user 'su' from 127.0.0.1 (password, class super-user)")
               for line in lines), text  # fmt: skip
    assert any(line.startswith("commit ") and "by 'su' (session " in line
               and line.endswith("changed system host-name") for line in lines), text
    assert any("by a user (session " in line and line.endswith("changed system host-name")
               for line in lines), text  # the LI administrator's commit names no user
    assert any(line.startswith("login failed: user 'ops' from 127.0.0.1") for line in lines), text
    # an LI user's failed login and an unknown name's read the same: neither is named
    withheld = [line for line in lines if line.startswith("login failed: a user from 127.0.0.1")]
    assert len(withheld) == 2 and withheld[0] == withheld[1], text
    assert "nosuch" not in text
    assert lines[-2:] == ["flowtapd stopping (SIGTERM)", "flowtapd stopped"], text
    for secret in ("admin", "md7", "flow-tap", "sp-0/0/0.0", "DTCP", str(server.dtcp_port)):
        assert secret not in text, f"{secret!r} reached the operator log:\n{text}"
    # nor any other line at INFO or above: that the DTCP service is used is an LI fact
    logged = [line for line in server.output if " INFO " in line or " WARNING " in line]
    assert not [line for line in logged if "flow-tap-dtcp" in line], "\n".join(logged)


def _login(server: Flowtapd, user: str, password: str) -> None:
    from ncclient import manager

    manager.connect(host="127.0.0.1", port=server.port, username=user, password=password,
                    hostkey_verify=False, allow_agent=False, look_for_keys=False,
                    timeout=30).close_session()  # fmt: skip


def test_lawful_intercept_commits_go_to_the_li_audit_log(server: Flowtapd) -> None:
    """What the operator log leaves out is in the LI audit log: each commit that changes an LI
    hierarchy (who, session, number, comment, which hierarchies; no values), durable before
    its reply; a commit that changes none writes nothing there."""
    from tests.integration.dtcp_support import audit_records

    def config_records() -> list[dict[str, object]]:
        return [r for r in audit_records(server) if r["event"] == "config"]

    boot = config_records()  # the first boot's initial configuration (DTCP on): by the system
    assert [(r["principal"], r["session"]) for r in boot] == [("system", "system")]
    assert str(boot[0]["reason"]).endswith(": changed system services flow-tap-dtcp")
    with server.connect("su") as m:
        m.edit_config(target="candidate", config=hostname("edge-1"))
        m.commit()
    assert config_records() == boot
    with server.connect("admin") as m:
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0'
            "</interface></flow-tap></services></config>"))  # fmt: skip
        m.commit()
        records = config_records()  # no wait: the reply came after the record was durable
        assert len(records) == 2
        added = records[-1]
        assert added["principal"] == "admin" and str(added["session"]).startswith("session ")
        assert added["result"] == "committed" and added["method"] == "commit"
        assert str(added["reason"]).endswith(": changed services flow-tap")
        assert "sp-0/0/0.0" not in str(added)  # hierarchies, never their values
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}" xmlns:nc="{NC}"><services xmlns="{SVC}">'
            '<flow-tap nc:operation="delete"/></services>'
            f'<system xmlns="{SYS}"><host-name>edge-2</host-name></system></config>'))
        m.commit()
    removed = config_records()[-1]
    assert str(removed["reason"]).endswith(": changed services flow-tap")
    assert int(str(removed["reason"]).split()[1].rstrip(":")) == int(
        str(added["reason"]).split()[1].rstrip(":")) + 1


FLOW_TAP = (f'<config xmlns="{NC}"><services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0'
            "</interface></flow-tap></services></config>")  # fmt: skip
NO_FLOW_TAP = (f'<config xmlns="{NC}" xmlns:nc="{NC}"><services xmlns="{SVC}">'
               '<flow-tap nc:operation="delete"/></services></config>')  # fmt: skip


def session_commits(server: Flowtapd) -> list[str]:
    """The commit lines of sessions and of the rollbacks of confirmed commits (not the boot's)."""
    return [line for line in operator_lines(server) if line.startswith("commit ")
            and ("(session " in line or "'rollback: " in line)]  # fmt: skip


def number_in(line: str) -> int:
    return int(line.split()[1])


def test_an_empty_commit_a_confirmed_commit_and_its_confirmation_each_have_a_line(
    server: Flowtapd,
) -> None:
    with server.connect("su") as m:
        sid = m.session_id
        m.commit()  # changes nothing
        m.edit_config(target="candidate", config=hostname("edge-1"))
        m.commit(confirmed=True, timeout="120")
        m.commit(confirmed=True, timeout="60")  # changes nothing: a new deadline for both
        m.commit()  # the confirming commit: changes nothing, but the rollback is off
    lines = session_commits(server)
    assert len(lines) == 4, lines
    number = number_in(lines[1])
    assert lines == [
        f"commit by 'su' (session {sid}): no changes",
        f"commit {number} by 'su' (session {sid}): changed system host-name; rolls back in 120 s"
        " unless confirmed",
        f"commit {number + 1} by 'su' (session {sid}): no changes; rolls back in 60 s unless"
        " confirmed",
        f"commit by 'su' (session {sid}): no changes; confirms commits {number}, {number + 1}",
    ]


def test_a_rolled_back_confirmed_commit_says_why_and_who_cancelled_it(server: Flowtapd) -> None:
    with server.connect("su") as m:
        sid = m.session_id
        m.edit_config(target="candidate", config=hostname("edge-1"))
        m.commit(confirmed=True, timeout="120")
        m.cancel_commit()
        m.edit_config(target="candidate", config=hostname("edge-2"))
        m.commit(confirmed=True, timeout="1")
        deadline = time.monotonic() + 10
        while "edge-2" in str(m.get_config(source="running").data_xml):
            assert time.monotonic() < deadline, "the confirmed commit was not rolled back"
            time.sleep(0.2)
    one = server.connect("su")
    one.edit_config(target="candidate", config=hostname("edge-3"))
    one.commit(confirmed=True, timeout="120")
    closed = one.session_id
    one.close_session()
    lines = session_commits(server)
    assert len(lines) == 6, lines
    first, second, third = number_in(lines[0]), number_in(lines[2]), number_in(lines[4])
    assert lines[1] == (
        f"commit {first + 1} by system, comment 'rollback: cancel-commit': changed system"
        f" host-name; commit {first} cancelled by 'su' (session {sid}): rolled back"
    )
    assert lines[3] == (
        f"commit {second + 1} by system, comment 'rollback: confirm-timeout expired': changed"
        f" system host-name; commit {second} not confirmed in time: rolled back"
    )
    assert lines[5] == (
        f"commit {third + 1} by system, comment 'rollback: confirming session closed': changed"
        f" system host-name; commit {third} not confirmed before session {closed} closed:"
        " rolled back"
    )


def test_a_confirmed_commit_rolled_back_at_a_restart_says_so(server: Flowtapd) -> None:
    with server.connect("su") as m:
        m.edit_config(target="candidate", config=hostname("edge-1"))
        m.commit(confirmed=True, timeout="120", persist="token-1")  # survives the session
    server.kill()
    server.start(init=False)
    lines = session_commits(server)
    assert len(lines) == 2, lines
    assert lines[1] == (
        f"commit {number_in(lines[0]) + 1} by system, comment 'rollback: restart before"
        " confirm': changed system host-name; a confirmed commit not confirmed before the"
        " restart: rolled back"
    )


def test_saving_and_deleting_startup_are_logged(server: Flowtapd) -> None:
    with server.connect("su") as m:  # configure + maintenance: saves the whole of running
        sid = m.session_id
        m.copy_config(source="running", target="startup")
        m.delete_config(target="startup")
    with server.connect("admin") as m:  # an LI administrator: never named
        admin = m.session_id
        m.copy_config(source="candidate", target="startup")
    lines = operator_lines(server)
    assert [line for line in lines if line.startswith("startup ")] == [
        f"startup saved from running by 'su' (session {sid})",
        f"startup deleted by 'su' (session {sid})",
        f"startup saved from candidate by a user (session {admin})",
    ], lines
    assert "admin" not in "\n".join(lines)


def test_confirming_or_cancelling_a_lawful_intercept_only_commit_leaves_no_line(
    server: Flowtapd,
) -> None:
    """A confirmed commit of LI configuration only has no line; neither has its confirmation,
    its cancellation or its rollback: an operator must not learn that one was pending."""
    with server.connect("admin") as m:
        sid = m.session_id
        m.edit_config(target="candidate", config=FLOW_TAP)
        m.commit(confirmed=True, timeout="120")
        m.commit()  # confirms it
        m.edit_config(target="candidate", config=NO_FLOW_TAP)
        m.commit(confirmed=True, timeout="120")
        m.cancel_commit()
        assert "sp-0/0/0.0" in str(m.get_config(source="running").data_xml)  # rolled back
        m.commit()  # an ordinary empty commit by an LI user: "a user"
    lines = session_commits(server)
    assert lines == [f"commit by a user (session {sid}): no changes"], lines
    text = "\n".join(line for line in operator_lines(server)
                     if " started: pid " not in line)  # its state directory is the test's name
    for secret in ("admin", "flow-tap", "sp-0/0/0.0", "confirm", "cancel", "rolled back"):
        assert secret not in text, f"{secret!r} reached the operator log:\n{text}"


def test_confirming_or_rolling_back_an_li_commit_is_in_the_li_audit_log(server: Flowtapd) -> None:
    """The operator log stays silent about a confirmed commit of LI configuration; the LI audit
    log says who confirmed it, or why it was rolled back."""
    from tests.integration.dtcp_support import audit_records

    def reasons() -> list[str]:
        return [str(r["reason"]) for r in audit_records(server) if r["event"] == "config"]

    flow_tap = (f'<config xmlns="{NC}"><services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0'
                "</interface></flow-tap></services></config>")  # fmt: skip
    with server.connect("admin") as m:
        m.edit_config(target="candidate", config=flow_tap)
        m.commit(confirmed=True, timeout="60")
        confirmed = reasons()[-1]
        assert confirmed.endswith(": changed services flow-tap; rolls back in 60 s unless confirmed")
        number = confirmed.split()[1].rstrip(":")
        m.commit()  # the confirming commit changes nothing
        assert reasons()[-1] == f"commit: no LI changes; confirms commit {number}"
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}" xmlns:nc="{NC}"><services xmlns="{SVC}">'
            '<flow-tap nc:operation="delete"/></services></config>'))
        m.commit(confirmed=True, timeout="60")
        removed = reasons()[-1].split()[1].rstrip(":")
        m.cancel_commit()
        rollback = reasons()[-1]
        assert re.search(f": changed services flow-tap; commit {removed} cancelled by admin "
                         r"\(session \d+\): rolled back$", rollback), rollback


def _refused_on_dtcp(server: Flowtapd, user: str) -> None:
    import asyncio

    from tests.integration.dtcp_support import md

    async def attempt() -> None:
        with pytest.raises(Exception):  # noqa: B017 (the router ends the connection)
            async with md(server, user) as client:
                await client.noop()

    asyncio.run(attempt())
