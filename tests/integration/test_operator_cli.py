"""Issue 17 item 4: ``flowtap-cli``, the operator's Junos-style command line, against a real
flowtapd on loopback. Every command goes through the server's NETCONF and Junos XML API as
the logged-in user, so what the CLI shows and refuses is what the server decides."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from ncclient.operations import RPCError

from flowtap.tools import operator_cli, operator_ops
from flowtap.tools.netconf_client import NetconfClient
from flowtap.tools.operator_configure import ConfigureMode
from tests.flowtapd import Flowtapd, TestUser, free_port
from tests.integration.conftest import USERS
from tests.integration.test_access import LI_CONFIG

# a login class without view (and without any LI bit): it may read interfaces only
BLIND_CLASS = "<class><name>blind</name><permissions>interface</permissions></class>"
CLI_USERS = {**USERS, "blind": TestUser("blind", "blind-pw-1", "blind")}
CONSOLE = "import sys; from flowtap.console import cli; sys.exit(cli())"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> object:
        return json.loads(self.out)


def cli(server: Flowtapd, *command: str, user: str = "admin", stdin: str = "",
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:  # fmt: skip
    """``flowtap-cli`` through its main function (the console entry is tried separately)."""
    monkeypatch.setenv("FLOWTAP_CLI_PASSWORD", CLI_USERS[user].password)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = operator_cli.main(["-p", str(server.port), "-u", user, "--no-host-key-check",
                              *command])  # fmt: skip
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def start(path: Path, *, li: bool = True) -> Flowtapd:
    server = Flowtapd(path, free_port(), dict(CLI_USERS), extra_classes=BLIND_CLASS)
    server.start()
    if li:
        with server.connect("admin") as m:
            m.edit_config(target="candidate", config=LI_CONFIG)
            m.commit()
    return server


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flowtapd]:
    """One daemon with flow-tap configured, for the tests that only read."""
    server = start(tmp_path_factory.mktemp("operator") / "state")
    yield server
    server.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Flowtapd]:
    """A fresh daemon with flow-tap configured, for the tests that configure."""
    daemon = start(tmp_path / "state")
    yield daemon
    daemon.stop()


class Cli(Protocol):
    def __call__(self, server: Flowtapd, *command: str, user: str = ..., stdin: str = ...
                 ) -> Run: ...  # fmt: skip


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    def runner(server: Flowtapd, *command: str, user: str = "admin", stdin: str = "") -> Run:
        return cli(server, *command, user=user, stdin=stdin, monkeypatch=monkeypatch,
                   capsys=capsys)  # fmt: skip
    return runner


def one_line_error(result: Run, text: str) -> None:
    """A refusal: exit status 1, nothing on stdout, one line on stderr naming the problem."""
    assert result.code == 1, result
    assert result.out == "" and result.err.count("\n") == 1, result
    assert result.err.startswith("flowtap-cli: ") and text in result.err, result.err


# -- show -----------------------------------------------------------------------------------------


def test_show_configuration_in_junos_text_whole_and_below_a_path(reader: Flowtapd, run: Cli) -> None:
    whole = run(reader, "show", "configuration")
    assert whole.code == 0 and whole.err == ""
    assert whole.out.startswith("## Last commit: ") and " by admin\n" in whole.out
    assert "system {\n    host-name test;\n" in whole.out
    assert "services {\n    flow-tap {\n        interface sp-0/0/0.0;\n" in whole.out
    assert run(reader, "show", "configuration", "system", "host-name").out == "host-name test;\n"
    assert run(reader, "show", "configuration", "interfaces", "sp-0/0/0", "unit", "0").out == (
        "family {\n    inet;\n}\n")
    admin = run(reader, "show", "configuration", "system", "login", "user", "admin").out
    assert admin.startswith("class li-admin;\nauthentication {\n    encrypted-password ")
    assert admin.endswith("; ## SECRET-DATA\n}\n")
    users = run(reader, "show", "configuration", "system", "login", "user").out
    assert [line for line in users.splitlines() if line.startswith("user ")] == [
        "user admin {", "user ops {", "user ftctl {", "user viewer {", "user blind {"]
    # a valid path with nothing configured there shows nothing, as on Junos
    empty = run(reader, "show", "configuration", "system", "radius-server")
    assert (empty.code, empty.out, empty.err) == (0, "", "")


def test_display_set_in_every_spelling(reader: Flowtapd, run: Cli) -> None:
    spellings = [("system", "|", "display", "set"), ("system", "display", "set"),
                 ("system", "--display", "set"), ("system | display set",)]  # fmt: skip
    outputs = {run(reader, "show", "configuration", *words).out for words in spellings}
    assert len(outputs) == 1
    (lines,) = outputs
    assert lines.startswith("set system host-name test\n")
    assert all(line.startswith("set system ") for line in lines.splitlines())
    assert "set system services flow-tap-dtcp ssh connection-limit 7\n" in lines
    whole = run(reader, "show", "configuration", "|", "display", "set").out
    assert "set services flow-tap interface sp-0/0/0.0\n" in whole


def test_show_system_commit_like_junos_and_as_json(server: Flowtapd, run: Cli) -> None:
    assert run(server, "configure", "set system host-name c1", 'commit comment "first one"').code == 0
    table = run(server, "show", "system", "commit").out.splitlines()
    assert table[0].startswith("0   ") and table[0].endswith(" UTC by admin via netconf")
    assert table[1] == "    first one"
    assert table[-2].startswith("2   ") and table[-2].endswith(" by system via other")
    rows = run(server, "--json", "show", "system", "commit").json()
    assert isinstance(rows, list) and len(rows) == 3
    assert rows[0]["number"] == 0 and rows[0]["user"] == "admin"
    assert rows[0]["comment"] == "first one" and rows[0]["client"] == "netconf"
    assert rows[0]["seconds"] >= rows[1]["seconds"] > 0


def test_show_system_users_lists_sessions_and_hides_li_users(reader: Flowtapd, run: Cli) -> None:
    with reader.connect("admin"), reader.connect("viewer"):
        table = run(reader, "show", "system", "users").out.splitlines()
        assert table[0].split() == ["SESSION", "USER", "FROM", "LOGIN", "RPCS"]
        users = sorted(line.split()[1] for line in table[1:])
        assert users == ["admin", "admin", "viewer"]
        assert sum(line.split()[0].endswith("*") for line in table[1:]) == 1  # this session
        rows = run(reader, "--json", "show", "system", "users").json()
        assert isinstance(rows, list) and {r["source"] for r in rows} == {"127.0.0.1"}
        # ops holds view but no flow-tap bit: who the LI users are is itself LI (li_policy)
        seen = run(reader, "show", "system", "users", user="ops").out
        assert "admin" not in seen and "viewer" in seen and "ops" in seen


def test_show_services_flow_tap_for_li_users_only(reader: Flowtapd, run: Cli) -> None:
    shown = run(reader, "show", "services", "flow-tap")
    assert shown.code == 0
    assert shown.out.startswith("Flow-tap status: running\nInterface: sp-0/0/0.0\n")
    assert "Criteria:        0\n" in shown.out
    state = run(reader, "--json", "show", "services", "flow-tap").json()
    assert isinstance(state, dict)
    assert state["status"] == "running" and state["criteria"] == 0 and state["dtcp-sessions"] == 0
    for user in ("ops", "viewer", "blind"):  # the server's own refusal, and nothing else
        one_line_error(run(reader, "show", "services", "flow-tap", user=user), "Access denied")


def test_a_user_without_view_reads_the_servers_refusal(reader: Flowtapd, run: Cli) -> None:
    one_line_error(run(reader, "show", "system", "commit", user="blind"), "Access denied")
    seen = run(reader, "show", "configuration", user="blind")
    assert seen.code == 0 and "interfaces {" in seen.out
    assert "system" not in seen.out and "services" not in seen.out
    plain = run(reader, "show", "configuration", user="ops").out
    assert "flow-tap" not in plain and "connection-limit" not in plain


# -- configure ------------------------------------------------------------------------------------


def test_configure_set_compare_commit(server: Flowtapd, run: Cli) -> None:
    done = run(server, "configure", "set system host-name r1",
               'set system login user carol full-name "Carol C"',
               "set system login user carol class ops",
               "show | compare", "show system host-name", "commit check",
               'commit comment "renamed"')  # fmt: skip
    assert done.code == 0 and done.err == "", done
    assert done.out == (
        "[edit system]\n-   host-name test;\n+   host-name r1;\n"
        "[edit system login]\n+   user carol {\n+       full-name \"Carol C\";\n"
        "+       class ops;\n+   }\n"
        "host-name r1;\n"
        "configuration check succeeds\ncommit complete\n")
    assert run(server, "show", "configuration", "system", "host-name").out == "host-name r1;\n"
    removed = run(server, "configure", "delete system login user carol", "show|compare", "commit")
    assert removed.out.startswith("[edit system login]\n-   user carol {\n")
    assert run(server, "show", "configuration", "system", "login", "user", "carol").out == ""


def test_one_set_line_sets_several_statements(server: Flowtapd, run: Cli) -> None:
    """Junos's ``set ... leaf value sibling ...`` (issue 17 item 4): the leaf takes one value."""
    done = run(server, "configure",
               "set system login user carol class ops authentication encrypted-password"
               ' "$6$salt$hash"',
               "set system login class ops idle-timeout 10 permissions [ view configure ]",
               "commit")  # fmt: skip
    assert done.code == 0 and done.err == "", done
    shown = run(server, "show", "configuration", "system", "login", "|", "display", "set").out
    for line in ("set system login class ops idle-timeout 10",
                 "set system login class ops permissions view",
                 "set system login class ops permissions configure",
                 "set system login user carol class ops",
                 'set system login user carol authentication encrypted-password "$6$salt$hash"'):
        assert line + "\n" in shown, shown


def test_display_set_round_trips_through_configure(server: Flowtapd, run: Cli) -> None:
    run(server, "configure", 'set system login user carol full-name "Carol \\"C\\" #1"',
        "set system login user carol class ops", "commit")  # fmt: skip
    before = run(server, "show", "configuration", "display", "set").out
    assert 'full-name "Carol \\"C\\" #1"' in before
    # delete everything, set it all again from the lines: nothing left to commit
    script = "delete interfaces\ndelete services\ndelete system\n" + before + "show | compare\n"
    again = run(server, "configure", stdin=script)
    assert again.code == 0 and again.out == "" and again.err == "", again


def test_commands_from_a_pipe_without_arguments(server: Flowtapd, run: Cli) -> None:
    """No command given: operational commands one a line, configure mode up to its exit."""
    script = ("show configuration system host-name\nconfigure\nset system host-name piped\n"
              "commit\nexit\nshow configuration system host-name\nshow bogus\n"
              "show system commit\n")  # fmt: skip
    result = run(server, stdin=script)
    assert result.code == 1
    assert result.out == "host-name test;\ncommit complete\nhost-name piped;\n"
    assert result.err.startswith("flowtap-cli: unknown command 'show bogus'")  # and stops there


def test_configure_is_exclusive_and_discards_on_exit(server: Flowtapd, run: Cli) -> None:
    left = run(server, "configure", "set system host-name forgotten")
    assert left.code == 0
    assert left.err == "flowtap-cli: uncommitted changes discarded on leaving configuration mode\n"
    with server.connect("admin") as other:
        other.lock("candidate")  # the candidate is clean and unlocked again
        one_line_error(run(server, "configure", "show"), "locked by session")
        other.unlock("candidate")
        other.edit_config(target="candidate", config=(
            '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><system '
            'xmlns="urn:flowtap:yang:system"><host-name>theirs</host-name></system></config>'))
        one_line_error(run(server, "configure", "show"), "uncommitted changes")
        other.discard_changes()
    assert run(server, "show", "configuration", "system", "host-name").out == "host-name test;\n"


def test_commit_confirmed_rolls_back_unless_confirmed(server: Flowtapd, run: Cli) -> None:
    kept = run(server, "configure", "set system host-name confirmed", "commit confirmed 5",
               "commit")  # fmt: skip
    assert kept.out == ("commit confirmed will be automatically rolled back in 5 minutes unless "
                        "confirmed\ncommit complete\ncommit complete\n") and kept.err == ""
    assert not (server.state_dir / "pending-confirm.json").exists()
    assert run(server, "show", "configuration", "system", "host-name").out == (
        "host-name confirmed;\n")
    unconfirmed = run(server, "configure", "set system host-name unconfirmed",
                      "commit confirmed 1", "show system host-name")  # fmt: skip
    assert unconfirmed.code == 0 and unconfirmed.out.endswith("host-name unconfirmed;\n")
    assert unconfirmed.err == ("flowtap-cli: commit confirmed was not confirmed: rolled back to "
                               "the previous configuration as configuration mode ends\n")
    assert run(server, "show", "configuration", "system", "host-name").out == (
        "host-name confirmed;\n")
    history = run(server, "--json", "show", "system", "commit").json()
    assert isinstance(history, list)
    assert [h["comment"] for h in history[:2]] == ["rollback: cancel-commit", ""]


def test_commit_confirmed_minutes_reach_the_server(server: Flowtapd) -> None:
    """commit confirmed N arms the server's rollback N minutes ahead (waiting for it would take
    minutes: the revert itself is the server's, tested with the Junos API and RFC 6241)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CONSOLE, "-p", str(server.port), "-u", "admin",
         "--no-host-key-check", "configure"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "FLOWTAP_CLI_PASSWORD": USERS["admin"].password},
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    before = time.time()
    proc.stdin.write("set system host-name waiting\ncommit confirmed 2\n")
    proc.stdin.flush()
    assert proc.stdout.readline() == ("commit confirmed will be automatically rolled back in 2 "
                                      "minutes unless confirmed\n")  # fmt: skip
    assert proc.stdout.readline() == "commit complete\n"
    after = time.time()
    pending = json.loads((server.state_dir / "pending-confirm.json").read_text())
    assert before + 120 <= pending["deadline"] <= after + 120
    out, err = proc.communicate("commit\nexit\n", timeout=60)
    assert (proc.returncode, out, err) == (0, "commit complete\n", "")
    assert not (server.state_dir / "pending-confirm.json").exists()


async def test_a_commit_after_the_confirm_timeout_says_it_confirms_nothing(
    server: Flowtapd,
) -> None:
    """The server reverts at the timeout without telling the session; the next commit warns.
    A second confirmed commit of the same session re-arms the timer (RFC 6241 8.4.5): in
    seconds, so that N minutes need not pass."""
    user = USERS["admin"]
    nc = await NetconfClient.connect("127.0.0.1", server.port, user.name, user.password)
    try:
        mode = ConfigureMode(nc, operational=lambda words: asyncio.sleep(0, result=""))
        await mode.enter()
        await mode.run("set system host-name brief")
        await mode.run("commit confirmed 1")
        await nc.rpc("<commit><confirmed/><confirm-timeout>1</confirm-timeout></commit>")
        mode.confirmed_as = (await operator_ops.commit_history(nc))[0]  # the re-armed commit
        for _ in range(300):  # until the server's revert is in the history (at most 30 s)
            if (await operator_ops.commit_history(nc))[0].user == "system":
                break
            await asyncio.sleep(0.1)
        assert await mode.run("commit") == (
            "warning: the commit confirmed was already rolled back at its timeout; this commit "
            "does not confirm it\ncommit complete\n")
        await mode.leave()
        assert mode.notes == []
    finally:
        await nc.close()


def test_rollback_loads_an_earlier_commit(server: Flowtapd, run: Cli) -> None:
    for name in ("one", "two"):
        assert run(server, "configure", f"set system host-name {name}", "commit").code == 0
    back = run(server, "configure", "rollback 2", "show | compare", "commit",
               "run show configuration system host-name")  # fmt: skip
    assert back.out == ("load complete\n[edit system]\n-   host-name two;\n+   host-name test;\n"
                        "commit complete\nhost-name test;\n"), back
    assert "rollback needs permission to read everything" in run(
        server, "configure", "rollback 1", user="ops").err


def test_configure_refusals_are_the_servers(server: Flowtapd, run: Cli) -> None:
    one_line_error(run(server, "configure", "delete services flow-tap", "commit", user="ops"),
                   "Access denied")  # fmt: skip
    one_line_error(run(server, "configure", "set system host-name x", "commit", user="viewer"),
                   "Access denied")  # fmt: skip
    with server.connect("admin") as m:  # nothing was left behind
        m.lock("candidate")
        m.unlock("candidate")


def test_configure_as_json(server: Flowtapd, run: Cli) -> None:
    result = run(server, "--json", "configure", "set system host-name j", "show | compare",
                 "set system nonsense 1")  # fmt: skip
    assert result.code == 1
    data = result.json()
    assert isinstance(data, dict)
    assert [c["command"] for c in data["commands"]] == [
        "set system host-name j", "show | compare", "set system nonsense 1"]
    assert data["commands"][1]["output"].startswith("[edit system]\n")
    assert "syntax error: nonsense" in data["commands"][2]["error"]
    assert data["exit"] == ["uncommitted changes discarded on leaving configuration mode"]


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "text"), [
    (("show", "bogus"), "unknown command 'show bogus'"),
    (("reboot",), "unknown command 'reboot'"),
    (("show", "configuration", "system", "nosuch"),
     "show configuration system nosuch: syntax error: nosuch"),
    (("configure", "show system login nosuch"), "show system login nosuch: syntax error: nosuch"),
    (("show", "configuration", "|", "count"), "unknown pipe '| count'"),
    (("configure", "set system hostname x"), "syntax error: hostname"),
    (("configure", "set system host-name"), "syntax error: host-name needs a value"),
    (("configure", "frobnicate"), "unknown command 'frobnicate' in configuration mode"),
    (("configure", 'set system host-name "open'), "unterminated quoted string"),
    (("configure", "commit sometime"), "commit: syntax error at 'sometime'"),
    (("configure", "rollback 99"), "rollback must be a number from 0 to 49"),
    (("configure", "show | compare rollback"), "show | compare [rollback N]"),
])  # fmt: skip
def test_bad_input_is_one_line(reader: Flowtapd, run: Cli, command: tuple[str, ...],
                               text: str) -> None:
    one_line_error(run(reader, *command), text)


def test_console_entry_point_login_errors(reader: Flowtapd, tmp_path: Path) -> None:
    """Through ``flowtap.console:cli`` as the installed script runs it: no third-party warning,
    no traceback; login problems are one line and exit status 2."""
    base = [sys.executable, "-c", CONSOLE, "-H", "127.0.0.1", "-p", str(reader.port), "-u",
            "admin"]  # fmt: skip
    env = {"PATH": "/usr/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}

    def console(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60,
                              check=False, env={**env, **extra}, stdin=subprocess.DEVNULL)  # fmt: skip

    no_password = console("--no-host-key-check", "show", "system", "commit")
    assert no_password.returncode == 2 and no_password.stderr == (
        "flowtap-cli: no password: set FLOWTAP_CLI_PASSWORD, give --password-file or a key "
        "with -i (standard input is not a terminal to ask on)\n")
    wrong = console("--no-host-key-check", "show", "system", "commit",
                    FLOWTAP_CLI_PASSWORD="wrong")  # fmt: skip
    assert wrong.returncode == 2 and wrong.stderr == (
        "flowtap-cli: admin: authentication failed (wrong password or key, or no such user)\n")
    password_file = tmp_path / "pw"
    password_file.write_text(USERS["admin"].password + "\n")
    known = tmp_path / "known_hosts"
    known.write_text("")
    untrusted = console("--known-hosts", str(known), "--password-file", str(password_file),
                        "show", "system", "commit")  # fmt: skip
    assert untrusted.returncode == 2
    first, line = untrusted.stderr.strip().split("\n")
    assert "is not trusted by" in first and "SHA256:" in first, untrusted.stderr
    known.write_text(line + "\n")  # the line it printed is the one that makes it trusted
    trusted = console("--known-hosts", str(known), "--password-file", str(password_file),
                      "show", "configuration", "system", "host-name")  # fmt: skip
    assert (trusted.returncode, trusted.stdout, trusted.stderr) == (0, "host-name test;\n", "")
    bad = console("--no-host-key-check", "configure", "set system hostname x",
                  FLOWTAP_CLI_PASSWORD=USERS["admin"].password)  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("flowtap-cli: syntax error: hostname")


def test_interactive_configure_prompts_on_a_terminal(reader: Flowtapd) -> None:
    """On a terminal: the user@host# prompt, Junos's entering/exiting lines, errors that do
    not end the session."""
    primary, secondary = os.openpty()
    os.write(primary, b"show system host-name\nfrobnicate\nset system host-name tty\nexit\n")
    try:
        result = subprocess.run(
            [sys.executable, "-c", CONSOLE, "-p", str(reader.port), "-u", "admin",
             "--no-host-key-check", "configure"],
            stdin=secondary, capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "FLOWTAP_CLI_PASSWORD": USERS["admin"].password},
        )  # fmt: skip
    finally:
        os.close(secondary)
        os.close(primary)
    assert result.returncode == 1, result  # one command failed
    assert result.stdout == (
        "Entering configuration mode (exclusive: the candidate is locked for this session)\n"
        "admin@test# host-name test;\nadmin@test# admin@test# admin@test# "
        "Exiting configuration mode\n")
    assert result.stderr == (
        "error: unknown command 'frobnicate' in configuration mode (help lists them)\n"
        "warning: uncommitted changes discarded on leaving configuration mode\n")


def test_configure_leaves_the_shared_reader_unchanged(reader: Flowtapd) -> None:
    with reader.connect("admin") as m:
        try:
            m.lock("candidate")
        except RPCError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"a test left the reader's candidate locked or changed: {exc}")
        m.unlock("candidate")


def test_ctrl_c_in_configure_mode_leaves_it_cleanly(server: Flowtapd) -> None:
    """Ctrl-C while the prompt waits: configure mode is left as by exit (changes discarded,
    lock released), the program ends at once with status 130."""
    primary, secondary = os.openpty()
    os.write(primary, b"set system host-name interrupted\n")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", CONSOLE, "-p", str(server.port), "-u", "admin",
             "--no-host-key-check", "configure"],
            stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "FLOWTAP_CLI_PASSWORD": USERS["admin"].password},
        )  # fmt: skip
        assert proc.stdout is not None
        seen = b""
        while seen.count(b"admin@test# ") < 2:  # the set line was applied, the next is awaited
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, seen
            seen += chunk
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 130
    assert err.decode() == ("warning: uncommitted changes discarded on leaving configuration "
                            "mode\n\nflowtap-cli: interrupted\n")
    with server.connect("admin") as m:
        m.lock("candidate")  # unlocked, and nothing left in the candidate
        m.unlock("candidate")
