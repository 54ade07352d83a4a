"""Issue 4: the mediation-device toolkit (``flowtap.tools.dtcp_client`` and the ``flowtap-dtcp`` CLI)
against flowtapd."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowtap.tools.dtcp_client import DtcpClient, ReplyDecoder, build_request, parse_message_file
from tests.flowtapd import Flowtapd, TestUser
from tests.integration.dtcp_support import USERS, add_fields, listed_ids, make_flowtapd

FLOWTAP_DTCP = Path(sys.executable).with_name("flowtap-dtcp")
MESSAGES = """\
ADD DTCP/0.8
Cdest-ID: cd9
Dest-Address: 192.0.2.9
X-JTap-Cdest-Dest-Address: 127.0.0.1
X-JTap-Cdest-Dest-Port: 47000
X-JTap-Cdest-Source-Address: 127.0.0.1
X-JTap-Cdest-Source-Port: 47100
Flags: STATIC
Authentication-Info: 0000000000000000000000000000000000000000

LIST DTCP/0.8
Flags: BOTH

DELETE DTCP/0.8
Cdest-ID: cd9
Flags: STATIC
"""


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    key = tmp_path_factory.mktemp("keys") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, keypair: tuple[Path, str]
           ) -> Iterator[Flowtapd]:  # fmt: skip
    users = {**USERS, "keymd": TestUser("keymd", "", "li-md", (keypair[1],))}
    daemon = make_flowtapd(tmp_path_factory.mktemp("toolkit"), users)
    daemon.start()
    yield daemon
    daemon.stop()


def run(args: list[str], stdin: str | None = None, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the installed ``flowtap-dtcp``; stdout keeps its CRLFs (no newline translation).
    A test's own ``env`` keeps PYTHONPATH, so a source tree under test is the one run."""
    if env is not None and "PYTHONPATH" in os.environ:
        env = {"PYTHONPATH": os.environ["PYTHONPATH"], **env}
    result = subprocess.run([str(FLOWTAP_DTCP), *args],
                            input=stdin.encode() if stdin else None, capture_output=True,
                            timeout=60, check=False, env=env)  # fmt: skip
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(),
                                       result.stderr.decode())  # fmt: skip


def cli(server: Flowtapd, *args: str, user: str = "md1", key: Path | None = None
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    auth = ["-i", str(key)] if key else []
    return run(["-H", "127.0.0.1", "-p", str(server.dtcp_port), "-u", user,
                "--no-host-key-check", *auth, *args],
               env={"FLOWTAP_DTCP_PASSWORD": server.users[user].password, "PATH": "/usr/bin"})


def test_cli_add_list_delete_from_flags(server: Flowtapd) -> None:
    add = cli(server, "add", "--cdest-id", "cd1", "--dest-address", "192.0.2.1",
              "--protocol", "17", "--cdest-address", "127.0.0.1", "--cdest-port", "47000",
              "--cdest-source-address", "127.0.0.1", "--cdest-source-port", "47100", "--static",
              "-f", "Priority: 2")  # fmt: skip
    assert add.returncode == 0 and add.stdout.startswith("DTCP/0.7 200 OK\r\nSEQ: 1\r\n"), add
    assert "does not verify" not in add.stderr
    listing = cli(server, "list", "--flags", "Both")
    assert listing.returncode == 0 and "CSOURCE-ID: md1\r\n" in listing.stdout
    assert "DEST-ADDRESS: 192.0.2.1\r\n" in listing.stdout and "MATCHING-PACKETS" in listing.stdout
    missing = cli(server, "delete", "--criteria-id", "999")
    assert missing.returncode == 1 and missing.stdout.startswith("DTCP/0.7 431 ")
    gone = cli(server, "delete", "--cdest-id", "cd1", "--static")
    assert gone.returncode == 0 and "CRITERIA-COUNT: 1\r\n" in gone.stdout


def test_cli_sends_a_file_of_messages_with_a_key(server: Flowtapd, keypair: tuple[Path, str],
                                                 tmp_path: Path) -> None:  # fmt: skip
    path = tmp_path / "requests.txt"
    path.write_text(MESSAGES.replace("\n", "\r\n"))
    result = cli(server, "--seq", "40", "send", str(path), user="keymd", key=keypair[0])
    assert result.returncode == 0, result.stderr
    replies = ReplyDecoder().feed(result.stdout.encode())
    assert [(r.status_line, r.seq) for r in replies] == [
        ("DTCP/0.8 200 OK", 40), ("DTCP/0.8 200 OK", 41), ("DTCP/0.8 200 OK", 42)]
    assert replies[1].entries()[0]["CSOURCE-ID"] == "keymd" and replies[2].criteria_count == 1
    assert all(r.verified for r in replies)


def test_cli_sign_needs_no_router() -> None:
    result = run(["-u", "md1", "sign", "-"], stdin="NOOP DTCP/0.7\n")
    assert result.returncode == 0
    assert result.stderr == ""  # third-party import-time warnings do not reach a tool's stderr
    assert result.stdout.encode() == build_request("NOOP", seq=1, csource_id="md1")


def test_message_files_keep_their_seq_and_drop_old_signatures() -> None:
    messages = parse_message_file(MESSAGES + "\nNOOP DTCP/0.7\nSeq: 77\n")
    assert [m.method for m in messages] == ["ADD", "LIST", "DELETE", "NOOP"]
    assert messages[0].version == "0.8" and messages[3].seq == 77
    assert not any(n.lower() == "authentication-info" for m in messages for n, _ in m.fields)
    with pytest.raises(ValueError, match="request line"):
        parse_message_file("HELLO\nSeq: 1\n")


def test_blocking_client(server: Flowtapd) -> None:
    with DtcpClient("127.0.0.1", server.dtcp_port, username="md2", password="md2-pw-1",
                    known_hosts=None, seq=100) as client:  # fmt: skip
        reply = client.request("ADD", add_fields())
        assert (reply.status, reply.seq, reply.verified) == (200, 100, True)
        replies = client.pipeline([client.build("LIST"), client.build("NOOP")])
        assert listed_ids(replies[0]) == [reply.criteria_id] and replies[1].status == 200
        assert client.request("DELETE", [("Cdest-ID", "cd1"), ("Flags", "STATIC")]
                              ).criteria_count == 1  # fmt: skip


# --- issue 17 item 6: flowtap-dtcp speaks plainly ---------------------------------------------


def test_cli_a_user_without_permission_reads_the_routers_refusal(server: Flowtapd) -> None:
    refused = cli(server, "noop", user="ops")  # ops: no flow-tap-operation
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "flowtap-dtcp: the router ended the connection: flow-tap-dtcp: permission denied"
    ), refused.stderr


def test_cli_without_password_or_terminal_says_so_in_one_line(server: Flowtapd) -> None:
    result = run(["-H", "127.0.0.1", "-p", str(server.dtcp_port), "-u", "md1",
                  "--no-host-key-check", "noop"], env={"PATH": "/usr/bin"})  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == ("flowtap-dtcp: no password: set FLOWTAP_DTCP_PASSWORD, give "
                             "--password-file or a key with -i (standard input is not a "
                             "terminal to ask on)\n")


def test_cli_an_unknown_host_key_shows_its_fingerprint_and_known_hosts_line(
    server: Flowtapd, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    result = run(["-H", "127.0.0.1", "-p", str(server.dtcp_port), "-u", "md1",
                  "--known-hosts", str(known), "noop"],
                 env={"FLOWTAP_DTCP_PASSWORD": "md1-pw-1", "PATH": "/usr/bin"})  # fmt: skip
    assert result.returncode == 2
    first, line = result.stderr.strip().split("\n")
    assert "is not trusted by" in first and "SHA256:" in first, result.stderr
    known.write_text(line + "\n")  # the line it printed is the one that makes it trusted
    trusted = run(["-H", "127.0.0.1", "-p", str(server.dtcp_port), "-u", "md1",
                   "--known-hosts", str(known), "noop"],
                  env={"FLOWTAP_DTCP_PASSWORD": "md1-pw-1", "PATH": "/usr/bin"})  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr


def test_cli_a_refusal_names_the_missing_field(server: Flowtapd) -> None:
    result = cli(server, "add", "--cdest-id", "cd1", "--dest-address", "192.0.2.1",
                 "--cdest-address", "127.0.0.1", "--cdest-port", "47000",
                 "--cdest-source-address", "127.0.0.1")  # no Cdest source port
    assert result.returncode == 1 and result.stdout.startswith("DTCP/0.7 901 JTap-Failure\r\n")
    assert "X-JTAP-CDEST-SOURCE-PORT: \r\n" in result.stdout  # echoed (Error-Parameters)
    assert result.stderr == ("flowtap-dtcp: reply SEQ 1: 901 JTap-Failure: "
                             "X-JTAP-CDEST-SOURCE-PORT missing\n")


def test_cli_explains_a_csource_id_that_is_not_the_user(server: Flowtapd) -> None:
    result = cli(server, "--csource-id", "md2", "noop")
    assert result.returncode == 2 and result.stdout == ""
    assert "Csource-ID 'md2' is not the SSH user 'md1'" in result.stderr
    assert "unanswered" in result.stderr


def test_cli_a_wrong_password_is_an_authentication_failure(server: Flowtapd) -> None:
    result = run(["-H", "127.0.0.1", "-p", str(server.dtcp_port), "-u", "md1",
                  "--no-host-key-check", "noop"],
                 env={"FLOWTAP_DTCP_PASSWORD": "wrong", "PATH": "/usr/bin"})  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == ("flowtap-dtcp: md1: authentication failed (wrong password or key, "
                             "or no such user)\n")
