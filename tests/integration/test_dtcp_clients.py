"""Issue 4 acceptance 2 and 3: Juniper-style clients against flowtapd.

The paramiko client below does what Juniper's Toby ``dtcp_flowtap_client`` does: port 32001,
``invoke_subsystem('flow-tap-dtcp')``, CRLF lines, ``Seq`` then an HMAC-SHA1
``Authentication-Info`` keyed ``Juniper``, several requests per channel with one read after
each, and a fresh SSH connection per batch.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.flowtapd import Flowtapd, TestUser
from tests.integration.dtcp_support import USERS, make_flowtapd

JUNOS_PORT = 32001


class TobyClient:
    def __init__(self, port: int, user: str, password: str) -> None:
        self.ssh = paramiko.SSHClient()
        self.ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        self.ssh.connect("127.0.0.1", port=port, username=user, password=password,
                         allow_agent=False, look_for_keys=False)  # fmt: skip
        self.channel = self.ssh.get_transport().open_session()  # type: ignore[union-attr]
        self.channel.invoke_subsystem("flow-tap-dtcp")

    def send(self, lines: list[str], seq: int) -> str:
        message = "\r\n".join(lines) + "\r\n" + f"Seq: {seq}\r\n"
        digest = hmac.new(b"Juniper", message.encode(), hashlib.sha1).hexdigest()
        self.channel.send((message + f"Authentication-Info: {digest}\r\n\r\n").encode())
        reply = b""
        while not reply.endswith(b"\r\n\r\n"):
            chunk = self.channel.recv(490000)
            assert chunk, "channel closed"
            reply += chunk
        return reply.decode()

    def close(self) -> None:
        self.ssh.close()


def flowtap_add(user: str, cdest: str, target: str) -> list[str]:
    """Toby's flow-tap ADD (DTCP/0.8, only Flags: STATIC, no Timeout-*)."""
    return [
        "ADD DTCP/0.8", f"Csource-ID: {user}", f"Cdest-ID: {cdest}",
        "Source-Address: 20.20.20.1", f"Dest-Address: {target}", "Source-Port: *",
        "Dest-Port: 2000", "Protocol: 17", "Priority: 2",
        "X-JTap-Cdest-Dest-Address: 127.0.0.1", "X-JTap-Cdest-Dest-Port: 8001",
        "X-JTap-Cdest-Source-Address: 127.0.0.1", "X-JTap-Cdest-Source-Port: 49153",
        "X-JTap-Input-Interface: ge-1/3/5.0", "X-JTap-Cdest-TTL: 255", "Flags: STATIC",
    ]  # fmt: skip


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    key = tmp_path_factory.mktemp("keys") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key, key.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, keypair: tuple[Path, str]) -> Iterator[Flowtapd]:
    if not port_free(JUNOS_PORT):
        pytest.skip("port 32001 is in use")
    users = {**USERS, "keymd": TestUser("keymd", "", "li-md", (keypair[1],))}
    daemon = make_flowtapd(tmp_path_factory.mktemp("clients"), users)
    daemon.system_services = daemon.system_services.replace(  # the default port: 32001
        f"<port>{daemon.dtcp_port}</port>", "")
    daemon.dtcp_port = JUNOS_PORT
    daemon.start()
    yield daemon
    daemon.stop()


def test_toby_style_client_across_reconnections(server: Flowtapd) -> None:
    seq = 1
    toby = TobyClient(JUNOS_PORT, "md1", "md1-pw-1")  # batch 1: two ADDs on one channel
    ids = []
    for cdest, target in (("md1", "30.30.30.1"), ("md1b", "30.30.30.2")):
        reply = toby.send(flowtap_add("md1", cdest, target), seq)
        assert reply.startswith("DTCP/0.8 200 OK\r\n") and f"SEQ: {seq}\r\n" in reply
        ids.append(int(re.search(r"CRITERIA-ID:\s*(\d+)", reply).group(1)))  # type: ignore[union-attr]
        seq += 1
    toby.close()

    toby = TobyClient(JUNOS_PORT, "md1", "md1-pw-1")  # batch 2: LIST Criteria, then Both
    for flags in ("Criteria", "BOTH"):
        reply = toby.send(["LIST DTCP/0.8", "Csource-ID: md1", f"Flags: {flags}"], seq)
        seq += 1
        assert reply.startswith("DTCP/0.8 200 OK") and "CRITERIA-NUM" in reply
        assert [int(i) for i in re.findall(r"CRITERIA-ID:\s*(\d+)", reply)] == ids
        assert "X-JTAP-INPUT-INTERFACE: ge-1/3/5.0" in reply
        assert ("MATCHING-PACKETS" in reply) == (flags == "BOTH")
    toby.close()

    toby = TobyClient(JUNOS_PORT, "md1", "md1-pw-1")  # batch 3: DELETE by ID, by Cdest-ID
    reply = toby.send(["DELETE DTCP/0.8", "Csource-ID: md1", f"Criteria-ID: {ids[0]}",
                       "Flags: STATIC"], seq)
    assert reply.startswith("DTCP/0.8 200 OK") and "CRITERIA-COUNT: 1\r\n" in reply
    reply = toby.send(["DELETE DTCP/0.8", "Csource-ID: md1", "Cdest-ID: md1b", "Flags: STATIC"],
                      seq + 1)
    assert "CRITERIA-COUNT: 1\r\n" in reply
    reply = toby.send(["LIST DTCP/0.8", "Csource-ID: md1", "Flags: BOTH"], seq + 2)
    assert "CRITERIA-ID" not in reply and reply.startswith("DTCP/0.8 200 OK")
    toby.close()


def test_openssh_subsystem_with_a_key(server: Flowtapd, keypair: tuple[Path, str]) -> None:
    key, _ = keypair
    lines = flowtap_add("keymd", "cd1", "30.30.30.9")
    stdin = b""
    for seq, message in enumerate((lines, ["LIST DTCP/0.8", "Csource-ID: keymd",
                                           "Flags: Criteria"]), start=1):  # fmt: skip
        body = ("\r\n".join(message) + f"\r\nSeq: {seq}\r\n").encode()
        digest = hmac.new(b"Juniper", body, hashlib.sha1).hexdigest().encode()
        stdin += body + b"Authentication-Info: " + digest + b"\r\n\r\n"
    result = subprocess.run(
        ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(key),
         "-p", str(JUNOS_PORT), "-s", "keymd@127.0.0.1", "flow-tap-dtcp"],
        input=stdin, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    add, listing = out.split("\r\n\r\n")[:2]
    assert add.startswith("DTCP/0.8 200 OK\r\nSEQ: 1\r\nCRITERIA-ID: ")
    assert listing.startswith("DTCP/0.8 200 OK\r\nSEQ: 2\r\n") and "CSOURCE-ID: keymd" in listing
