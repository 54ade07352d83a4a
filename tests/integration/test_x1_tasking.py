"""X1 against a real flowtapd: ``services flow-tap x1`` with a throwaway CA, driven by the
``flowtap-x1`` client (X1Client) over real HTTPS with client certificates.

No X3 destination listens here, so destinations report deliveryFault and tasks are live with
their copies waiting for the connection: these tests cover the X1 side (Ping, Keepalive,
GetNEStatus, destinations, tasks, every refusal, isolation, hostile input, the audit log).
X3 delivery end to end, with traffic in network namespaces, is tests/integration/test_x1_x3.py."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flowtap.tools.x1_cli import main as x1_main
from flowtap.tools.x1_client import X1Client, X1ClientError, parse_target
from flowtap.x1.encode import encode_request
from tests.flowtapd import NC, SVC, SYS, Flowtapd, TestUser, free_port
from tests.integration.dtcp_support import FLOW_TAP, LI_CLASSES
from tests.x1.pki import Authority, Issued, x1_element

NE = "ne-test-1"
USERS = {
    "admin": TestUser("admin", "admin-pw-1", "li-admin"),
    "admf-1": TestUser("admf-1", "", "li-md"),
    "admf-2": TestUser("admf-2", "", "li-md"),
    "viewer": TestUser("viewer", "", "read-only"),
}
TARGET = "198.51.100.77"


@dataclass
class Site:
    server: Flowtapd
    ca: Authority
    port: int
    certs: dict[str, Issued]

    def client(self, who: str = "admf-1", *, admf: str | None = None,
               ne: str = NE) -> X1Client:  # fmt: skip
        cert = self.certs[who]
        return X1Client(f"https://127.0.0.1:{self.port}/X1/NE", cert=str(cert.cert),
                        key=str(cert.key), ca=str(self.ca.cert_path), admf=admf or who, ne=ne,
                        timeout=30)  # fmt: skip

    def audit(self) -> list[dict[str, Any]]:
        lines = self.server.audit_log.read_bytes().splitlines()
        return [json.loads(line) for line in lines[1:]]


def x1_config(server: Issued, ca: Authority, port: int) -> str:
    flow_tap = FLOW_TAP.replace("</flow-tap>", x1_element(server, ca, port, NE) + "</flow-tap>")
    assert SVC in flow_tap and "<x1>" in flow_tap
    return flow_tap


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    directory = tmp_path_factory.mktemp("x1")
    ca = Authority(directory, "x1-test")
    certs = {name: ca.issue(name) for name in ("admf-1", "admf-2", "viewer", "nobody")}
    port = free_port()
    server = Flowtapd(directory / "state", free_port(), dict(USERS))
    server.extra_classes = LI_CLASSES
    server.extra_config = x1_config(ca.issue(NE, server=True, client=True), ca, port)
    before = os.environ.get("FLOWTAP_TEST_LOG")
    os.environ["FLOWTAP_TEST_LOG"] = "INFO"  # what the ordinary log says at INFO is checked
    try:
        server.start()
    finally:
        if before is None:
            os.environ.pop("FLOWTAP_TEST_LOG")
        else:
            os.environ["FLOWTAP_TEST_LOG"] = before
    try:
        yield Site(server, ca, port, certs)
    finally:
        server.stop()
    ordinary = "".join(server.output)
    for secret in (TARGET, "admf-1", "admf-2"):
        assert secret not in ordinary, f"{secret} reached the ordinary log"


def test_ping_keepalive_and_ne_status(site: Site) -> None:
    with site.client() as client:
        ping, keepalive, status = client.ping(), client.keepalive(), client.ne_status()
        got = client.send(ping, keepalive, status)
    assert [a.type for a in got] == ["PingResponse", "KeepaliveResponse", "GetNEStatusResponse"]
    assert [a.get("x1TransactionId") for a in got] == [
        m.header.transaction_id for m in (ping, keepalive, status)]
    assert got[0].get("oK") == "AcknowledgedAndCompleted"
    assert got[2].get("neStatusDetails/neStatus") in ("OK", "Faults")
    assert all(a.get("neIdentifier") == NE and a.get("admfIdentifier") == "admf-1" for a in got)


def test_destinations_are_created_reported_and_removed(site: Site) -> None:
    did = uuid.uuid4()
    with site.client() as client:
        (created,) = client.send(client.create_destination(did, "192.0.2.50", 6443,
                                                           friendly_name="mdf-1"))
        assert created.ok, created.render()
        (got,) = client.send(client.get_destination(did))
        assert got.get("destinationResponseDetails/destinationDetails/dId") == str(did)
        assert got.get("destinationResponseDetails/destinationDetails/deliveryAddress/"
                       "ipAddressAndPort/address/IPv4Address") == "192.0.2.50"
        # nobody listens at 192.0.2.50: not connected, and nothing claims to be
        assert got.get("destinationResponseDetails/destinationStatus/"
                       "destinationDeliveryStatus") == "deliveryFault"
        (listed,) = client.send(client.list_all())
        assert str(did) in listed.all("ListOfDIDs/dId")
        moved, removed, again = client.send(
            client.modify_destination(did, "2001:db8::50", 7443), client.remove_destination(did),
            client.get_destination(did))
    assert moved.ok and removed.ok and again.code == 2040


def test_refusals_carry_their_codes_and_change_nothing(site: Site) -> None:
    did, xid = uuid.uuid4(), uuid.uuid4()
    target = [parse_target(f"ipv4Address={TARGET}")]
    with site.client() as client:
        got = client.send(
            client.create_destination(did, "192.0.2.51", 6443),
            client.create_destination(did, "192.0.2.51", 6443),
            client.create_destination(uuid.uuid4(), "192.0.2.52", 6443, udp=True),
            client.activate(xid, target, [uuid.uuid4()]),
            client.activate(xid, target, []),
            client.get_task(xid),
            client.deactivate(xid),
            client.remove_destination(did),
        )
        assert [a.code for a in got] == [None, 2030, 6020, 2040, 3040, 2020, 2020, None]
        (listed,) = client.send(client.list_all())
        assert str(xid) not in listed.all("ListOfXIDs/xId")
    with site.client(admf="admf-2") as impostor:  # admf-1's certificate
        assert [a.code for a in impostor.send(impostor.ping())] == [1030]
    with site.client(ne="another-ne") as lost:
        assert [a.code for a in lost.send(lost.ping())] == [1060]
    body = encode_request([client.activate(uuid.uuid4(), target, [did])]).replace(
        f"<x1:ipv4Address>{TARGET}</x1:ipv4Address>".encode(),
        b"<x1:imsi>262011234567890</x1:imsi>")
    with site.client() as client:
        assert [a.code for a in client.send_raw(body)[1]] == [3010]


def test_a_certificate_without_flow_tap_operation_is_refused(site: Site) -> None:
    for who in ("viewer", "nobody"):  # a user without the permission; no user at all
        with site.client(who) as client, pytest.raises(X1ClientError, match="HTTP 403"):
            client.send(client.ping())


def test_admfs_see_only_their_own_destinations(site: Site) -> None:
    did = uuid.uuid4()
    with site.client("admf-1") as one, site.client("admf-2") as two:
        assert one.send(one.create_destination(did, "192.0.2.60", 6443))[0].ok
        theirs = two.send(two.get_destination(did), two.remove_destination(did))
        absent = two.send(two.get_destination(uuid.uuid4()), two.remove_destination(uuid.uuid4()))
        assert [(a.code, a.description) for a in theirs] == [
            (a.code, a.description) for a in absent]
        assert str(did) not in two.send(two.list_all())[0].all("ListOfDIDs/dId")
        assert two.send(two.remove_all_destinations())[0].ok
        assert two.send(two.create_destination(did, "192.0.2.61", 6443))[0].ok  # its own, same ID
        (mine,) = one.send(one.get_destination(did))
        assert mine.get("destinationResponseDetails/destinationDetails/deliveryAddress/"
                        "ipAddressAndPort/address/IPv4Address") == "192.0.2.60"
        assert one.send(one.remove_destination(did))[0].ok
        assert two.send(two.remove_destination(did))[0].ok


HOSTILE = [
    b"<x1:X1Request xmlns:x1=",  # broken XML
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
    b'<X1Request xmlns="http://uri.etsi.org/03221/X1/2017/10">&lol2;</X1Request>',
    b'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><x>&xxe;</x>',
    b'<X1Request xmlns="urn:not-x1"><x1RequestMessage/></X1Request>',  # wrong namespace
    b"\xff\xfe<\x00X\x00",  # not UTF-8
]


def test_hostile_input_gets_errors_and_the_daemon_still_answers(site: Site) -> None:
    with site.client() as client:
        for body in HOSTILE:
            _, answers = client.send_raw(body)
            assert [a.type for a in answers] == ["X1TopLevelErrorResponse"], body
        pings = encode_request([client.ping() for _ in range(10_000)])
        _, answers = client.send_raw(pings)
        assert [a.type for a in answers] == ["X1TopLevelErrorResponse"]
        unknown = encode_request([client.ping(), client.ping()]).replace(
            b'xsi:type="x1:PingRequest"', b'xsi:type="x1:LaunchMissilesRequest"', 1)
        wrong_ns = encode_request([client.ping()]).replace(
            b"<x1:admfIdentifier>", b'<x1:admfIdentifier xmlns:x1="urn:other">', 1)
        assert [(a.type, a.code) for a in client.send_raw(unknown)[1]] == [
            ("ErrorResponse", 1010), ("PingResponse", None)]
        assert [(a.type, a.code) for a in client.send_raw(wrong_ns)[1]] == [
            ("ErrorResponse", 1010)]
        assert client.send(client.ping())[0].ok


def test_foreign_certificates_and_a_100_mb_body_are_refused_cleanly(site: Site) -> None:
    foreign = Authority(site.ca.directory / "..", "foreign-x1").issue("admf-1")
    context = ssl.create_default_context(cafile=str(site.ca.cert_path))
    context.load_cert_chain(foreign.cert, foreign.key)
    for ctx in (context, ssl.create_default_context(cafile=str(site.ca.cert_path))):
        connection = http.client.HTTPSConnection("127.0.0.1", site.port, context=ctx, timeout=30)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            connection.request("POST", "/X1/NE", body=b"<X1Request/>",
                               headers={"Content-Type": "application/xml"})  # fmt: skip
            connection.getresponse().read()
        connection.close()
    cert = site.certs["admf-1"]
    context = ssl.create_default_context(cafile=str(site.ca.cert_path))
    context.load_cert_chain(cert.cert, cert.key)
    connection = http.client.HTTPSConnection("127.0.0.1", site.port, context=context, timeout=30)
    connection.putrequest("POST", "/X1/NE")
    connection.putheader("Content-Type", "application/xml")
    connection.putheader("Content-Length", str(100 * 1024 * 1024))
    connection.endheaders()  # the head only: the body is refused before it is sent
    assert connection.getresponse().status == 413
    connection.close()
    with site.client() as client:
        assert client.send(client.ping())[0].ok


def test_a_task_is_live_reported_and_deactivated(site: Site) -> None:
    did, xid = uuid.uuid4(), uuid.uuid4()
    with site.client() as client:
        got = client.send(
            client.create_destination(did, "192.0.2.53", 6443),
            client.activate(xid, [parse_target(f"ipv4Address={TARGET}")], [did]),
            client.get_task(xid),
            client.remove_destination(did),  # in use
            client.deactivate(xid),
            client.get_task(xid),
            client.remove_destination(did),
        )
    assert [a.code for a in got] == [None, None, None, 7010, None, 2020, None]
    details = got[2]
    assert details.get("taskResponseDetails/taskDetails/xId") == str(xid)
    assert details.get("taskResponseDetails/taskStatus/provisioningStatus") == "complete"


def test_every_request_is_in_the_audit_log(site: Site) -> None:
    did, xid = uuid.uuid4(), uuid.uuid4()
    with site.client("admf-2") as client:
        got = client.send(client.create_destination(did, "192.0.2.70", 6443),
                          client.activate(xid, [parse_target(f"ipv4Address={TARGET}")], [did]),
                          client.remove_destination(did), client.deactivate(xid),
                          client.remove_destination(did))  # fmt: skip
        assert [a.code for a in got] == [None, None, 7010, None, None]
    mine = [r for r in site.audit() if r.get("event") == "x1" and r.get("principal") == "admf-2"
            and (str(did) in (r.get("cdest_id") or "") or r.get("criteria_id") == str(xid))]
    assert [(r["method"], r["result"]) for r in mine] == [
        ("CreateDestination", "OK"), ("ActivateTask", "OK"), ("RemoveDestination", "error 7010"),
        ("DeactivateTask", "OK"), ("RemoveDestination", "OK")]
    assert all(r["peer"] == "127.0.0.1" for r in mine)


def test_the_command_line_client(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    cert = site.certs["admf-1"]
    common = ["--url", f"https://127.0.0.1:{site.port}/X1/NE", "--cert", str(cert.cert),
              "--key", str(cert.key), "--ca", str(site.ca.cert_path), "--admf", "admf-1",
              "--ne", NE]  # fmt: skip
    assert x1_main([*common, "ping"]) == 0
    assert "PingResponse" in capsys.readouterr().out
    did = uuid.uuid4()
    assert x1_main([*common, "create-destination", "--did", str(did), "--address",
                    "192.0.2.80", "--port", "6443"]) == 0  # fmt: skip
    assert x1_main([*common, "get-destination", "--did", str(did)]) == 0
    assert "destinationDeliveryStatus: deliveryFault" in capsys.readouterr().out
    xid = uuid.uuid4()
    assert x1_main([*common, "activate", "--xid", str(xid), "--target", "tcpPort=443",
                    "--did", str(did)]) == 0  # fmt: skip
    assert x1_main([*common, "get-task", "--xid", str(xid)]) == 0
    assert "provisioningStatus: complete" in capsys.readouterr().out
    assert x1_main([*common, "deactivate", "--xid", str(xid)]) == 0
    request = Path(str(cert.cert)).with_name("request.xml")
    request.write_bytes(encode_request([site.client().remove_destination(did)]))
    assert x1_main([*common, "--xml", "send", str(request)]) == 0
    assert "RemoveDestinationResponse" in capsys.readouterr().out
    wrong = [*common[:-1], "not-this-ne"]
    assert x1_main([*wrong, "keepalive"]) == 1
    assert x1_main(["--url", common[1], "ping"]) == 2  # no certificate given
    closed = [common[0], f"https://127.0.0.1:{free_port()}/X1/NE", *common[2:]]
    assert x1_main([*closed, "ping"]) == 2  # nothing listens there


def test_x1_tls_files_fail_only_the_commit_that_changes_x1(tmp_path: Path) -> None:
    """An X1 certificate that cannot be used fails the commit that configures it, with the leaf
    named; files that go bad later never fail a commit of someone else's (who must not learn
    that X1 exists): they are read only when the x1 settings change."""
    from ncclient.operations import RPCError

    ca = Authority(tmp_path, "x1-files")
    users = {**USERS, "op": TestUser("op", "op-pw-1", "super-user")}  # all but LI
    server = Flowtapd(tmp_path / "state", free_port(), users)
    server.extra_classes = LI_CLASSES
    server.start()
    try:
        good = ca.issue(NE, server=True, client=True)
        x1 = x1_config(good, ca, free_port()).replace(str(good.key), str(tmp_path / "gone.key"))
        with server.connect("admin") as m:
            m.edit_config(target="candidate", config=f'<config xmlns="{NC}">{x1}</config>')
            with pytest.raises(RPCError) as refused:
                m.commit()
            assert "x1 private-key-file" in str(refused.value)
            assert "gone.key: no such file" in str(refused.value)
            m.discard_changes()
            m.edit_config(target="candidate",
                          config=f'<config xmlns="{NC}">{x1_config(good, ca, free_port())}'
                                 "</config>")  # fmt: skip
            m.commit()
        good.key.unlink()  # the running X1 listener keeps the material it read
        with server.connect("op") as m:
            m.edit_config(target="candidate", config=(
                f'<config xmlns="{NC}"><system xmlns="{SYS}"><host-name>r2</host-name>'
                "</system></config>"))
            m.commit()  # no word of x1
    finally:
        server.stop()
