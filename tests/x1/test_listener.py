"""The X1 HTTPS listener (flowtap.x1.service) against real TLS clients: Python's http.client with
client certificates from a throwaway CA, and raw sockets for what a well-behaved client never
sends. The message layer is a recording stand-in here: this is the transport's contract."""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from flowtap.audit import AuditRecord
from flowtap.auth.principal import Principal
from flowtap.config import model
from flowtap.errors import CommitFailed
from flowtap.x1 import service as service_module
from flowtap.x1.service import MAX_BODY, X1Service
from tests.x1.pki import Authority, Issued

CLASSES = {"mediation": frozenset({"flow-tap-operation"}), "viewer": frozenset({"view"})}


@dataclass
class Bench:
    service: X1Service
    config: model.Config
    ca: Authority
    server: Issued
    directory: Path
    seen: list[tuple[str, str, bytes]] = field(default_factory=list)
    audit: list[AuditRecord] = field(default_factory=list)

    @property
    def port(self) -> int:
        assert self.service.port is not None
        return self.service.port

    def client(self, who: Issued | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert_path))
        if who is not None:
            context.load_cert_chain(who.cert, who.key)
        return context

    def post(self, who: Issued | None, body: bytes = b"<X1Request/>", *, path: str = "/X1/NE",
             method: str = "POST", content_type: str = "application/xml"
             ) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.client(who),
                                           timeout=10)  # fmt: skip
        try:
            conn.request(method, path, body=body, headers={"Content-Type": content_type})
            response = conn.getresponse()
            return response.status, response.read(), dict(response.getheaders())
        finally:
            conn.close()


def x1_settings(server: Issued, ca: Authority, port: int = 0) -> model.X1Service:
    return model.X1Service(address="127.0.0.1", port=port, ne_identifier="ne-1",
                           certificate_file=str(server.cert), private_key_file=str(server.key),
                           client_ca_file=str(ca.cert_path))  # fmt: skip


def with_x1(settings: model.X1Service | None) -> model.Config:
    users = {"admf-1": model.User("admf-1", "mediation"), "viewer": model.User("viewer", "viewer")}
    return model.Config(classes=CLASSES, users=users,
                        flow_tap=model.FlowTapService(interface="sp-0/0/0.0", x1=settings))  # fmt: skip


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    ca = Authority(tmp_path, "test")
    server = ca.issue("ne-1", server=True, client=True)
    config = with_x1(x1_settings(server, ca))
    holder: list[model.Config] = [config]
    seen: list[tuple[str, str, bytes]] = []
    audit: list[AuditRecord] = []

    async def handle(admf: Principal, peer: str, body: bytes) -> bytes:
        seen.append((admf.user, peer, body))
        return b"<X1Response/>"

    async def submit(record: AuditRecord) -> None:
        audit.append(record)

    service = X1Service(config=lambda: holder[0], handle=handle, audit=submit)
    await service.commit(await service.prepare(model.Config(), config))
    b = Bench(service, config, ca, server, tmp_path, seen, audit)
    yield b
    await service.stop()


async def test_an_admf_with_its_certificate_is_served(bench: Bench) -> None:
    admf = bench.ca.issue("admf-1")
    status, body, headers = await asyncio.to_thread(bench.post, admf, b"<X1Request>1</X1Request>")
    assert (status, body) == (200, b"<X1Response/>")
    assert headers["Content-Type"].startswith("application/xml")
    assert bench.seen == [("admf-1", "127.0.0.1", b"<X1Request>1</X1Request>")]


async def test_other_paths_methods_and_media_types_are_refused_before_the_body(
    bench: Bench,
) -> None:
    admf = bench.ca.issue("admf-1")
    status, _, _ = await asyncio.to_thread(bench.post, admf, path="/X1/ADMF")
    assert status == 404
    status, _, headers = await asyncio.to_thread(bench.post, admf, method="PUT")
    assert status == 405 and headers["Allow"] == "POST"
    status, _, _ = await asyncio.to_thread(bench.post, admf, content_type="application/json")
    assert status == 415
    assert bench.seen == []


async def test_a_handshake_without_or_with_a_foreign_certificate_fails(bench: Bench) -> None:
    (bench.directory / "foreign").mkdir()
    foreign = Authority(bench.directory / "foreign", "foreign").issue("admf-1")
    for who in (None, foreign):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.to_thread(bench.post, who)
    await asyncio.sleep(0.1)
    refused = [r for r in bench.audit if r.result == "refused"]
    assert len(refused) == 2 and all("TLS handshake" in (r.reason or "") for r in refused)
    assert bench.seen == []


async def test_a_certificate_of_no_user_with_flow_tap_operation_gets_403(bench: Bench) -> None:
    for name in ("viewer", "nobody"):
        status, body, _ = await asyncio.to_thread(bench.post, bench.ca.issue(name))
        assert status == 403 and b"may not task" in body
    assert bench.seen == []
    assert [r.principal for r in bench.audit if r.result == "refused"] == ["viewer", "nobody"]


async def test_keep_alive_serves_requests_in_order_on_one_connection(bench: Bench) -> None:
    admf = bench.ca.issue("admf-1")

    def two() -> list[int]:
        conn = http.client.HTTPSConnection("127.0.0.1", bench.port, context=bench.client(admf))
        statuses = []
        for i in range(2):
            conn.request("POST", "/X1/NE", body=f"<m>{i}</m>".encode(),
                         headers={"Content-Type": "application/xml"})  # fmt: skip
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    assert await asyncio.to_thread(two) == [200, 200]
    assert [body for _, _, body in bench.seen] == [b"<m>0</m>", b"<m>1</m>"]


def raw(bench: Bench, admf: Issued, payload: bytes) -> bytes:
    """Sends ``payload`` as is over TLS and returns what comes back until the server closes."""
    context = bench.client(admf)
    with socket.create_connection(("127.0.0.1", bench.port), timeout=10) as plain, \
            context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:  # fmt: skip
        tls.sendall(payload)
        out = b""
        while chunk := tls.recv(65536):
            out += chunk
        return out


async def test_chunked_bodies_are_read_and_smuggling_shapes_refused(bench: Bench) -> None:
    admf = bench.ca.issue("admf-1")
    head = b"POST /X1/NE HTTP/1.1\r\nHost: ne\r\nContent-Type: application/xml\r\n"
    chunked = head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" \
        b"4\r\n<a/>\r\n3;x=y\r\n<b>\r\n0\r\n\r\n"  # fmt: skip
    out = await asyncio.to_thread(raw, bench, admf, chunked)
    assert out.startswith(b"HTTP/1.1 200 ") and bench.seen[-1][2] == b"<a/><b>"
    both = head + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n"
    assert (await asyncio.to_thread(raw, bench, admf, both)).startswith(b"HTTP/1.1 400 ")
    twice = head + b"Content-Length: 4\r\nContent-Length: 5\r\n\r\n<a/>"
    assert (await asyncio.to_thread(raw, bench, admf, twice)).startswith(b"HTTP/1.1 400 ")
    folded = head + b"X-A: 1\r\n continued\r\nContent-Length: 0\r\n\r\n"
    assert (await asyncio.to_thread(raw, bench, admf, folded)).startswith(b"HTTP/1.1 400 ")
    assert len(bench.seen) == 1


async def test_a_body_over_the_limit_is_refused_unread(bench: Bench) -> None:
    admf = bench.ca.issue("admf-1")
    huge = (b"POST /X1/NE HTTP/1.1\r\nHost: ne\r\nContent-Type: application/xml\r\n"
            b"Content-Length: %d\r\n\r\n" % (100 * 1024 * 1024))  # fmt: skip
    out = await asyncio.to_thread(raw, bench, admf, huge + b"<x" * 1000)
    assert out.startswith(b"HTTP/1.1 413 ") and str(MAX_BODY).encode() in out
    assert bench.seen == []


async def test_expect_100_continue_is_answered_after_the_head_is_accepted(bench: Bench) -> None:
    admf = bench.ca.issue("admf-1")
    context = bench.client(admf)

    def exchange() -> tuple[bytes, bytes]:
        with socket.create_connection(("127.0.0.1", bench.port), timeout=10) as plain, \
                context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:  # fmt: skip
            tls.sendall(b"POST /X1/NE HTTP/1.1\r\nHost: ne\r\nContent-Type: application/xml\r\n"
                        b"Expect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\n")
            interim = tls.recv(65536)
            tls.sendall(b"<a/>")
            out = b""
            while chunk := tls.recv(65536):
                out += chunk
            return interim, out

    interim, final = await asyncio.to_thread(exchange)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n" and final.startswith(b"HTTP/1.1 200 ")


async def test_unusable_tls_files_fail_the_commit_and_keep_the_listener(bench: Bench) -> None:
    old = bench.config
    settings = old.flow_tap.x1 if old.flow_tap else None
    assert settings is not None
    missing = replace(settings, private_key_file=str(bench.directory / "absent.key"))
    relative = replace(settings, client_ca_file="ca.pem")
    other_key = bench.ca.issue("other")
    mismatched = replace(settings, private_key_file=str(other_key.key))
    server_only = bench.ca.issue("server-only", server=True)  # no clientAuth: X3 would fail
    no_client_use = replace(settings, certificate_file=str(server_only.cert),
                            private_key_file=str(server_only.key))
    for bad, leaf in ((missing, "private-key-file"), (relative, "client-ca-file"),
                      (mismatched, "certificate-file"), (no_client_use, "certificate-file")):
        with pytest.raises(CommitFailed) as caught:
            await bench.service.prepare(old, with_x1(replace(bad, port=bench.port + 1)))
        assert f"x1 {leaf}" in caught.value.message
    status, _, _ = await asyncio.to_thread(bench.post, bench.ca.issue("admf-1"))
    assert status == 200


async def test_commits_move_and_remove_the_listener(bench: Bench) -> None:
    old_port = bench.port
    settings = bench.config.flow_tap.x1 if bench.config.flow_tap else None
    assert settings is not None
    moved = with_x1(replace(settings, port=0, address="127.0.0.1"))
    # port 0 binds a fresh port: a move to another endpoint, bound before the old one closes
    await bench.service.commit(await bench.service.prepare(bench.config, moved))
    assert bench.service.port is not None
    await bench.service.commit(await bench.service.prepare(moved, with_x1(None)))
    assert bench.service.port is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", old_port), timeout=2).close()


async def test_slow_clients_are_cut_off(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that never finishes its handshake, or its request, is closed at the deadline
    (the defaults are 10 s and 90 s; shortened here)."""
    monkeypatch.setattr(service_module, "HANDSHAKE_TIMEOUT", 0.3)
    monkeypatch.setattr(service_module, "REQUEST_TIMEOUT", 0.3)
    admf = bench.ca.issue("admf-1")

    def silent_tcp() -> bytes:
        with socket.create_connection(("127.0.0.1", bench.port), timeout=10) as plain:
            return plain.recv(100)  # b"": closed without a word

    def half_a_head() -> bytes:
        context = bench.client(admf)
        with socket.create_connection(("127.0.0.1", bench.port), timeout=10) as plain, \
                context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:  # fmt: skip
            tls.sendall(b"POST /X1/NE HTTP/1.1\r\nHost: ne\r\n")
            return tls.recv(100)

    started = time.monotonic()
    assert await asyncio.to_thread(silent_tcp) == b""
    assert await asyncio.to_thread(half_a_head) == b""
    assert time.monotonic() - started < 9  # neither waited for the socket's own timeout
    assert [r.reason for r in bench.audit if r.result == "refused"] == [
        "TLS handshake: no handshake within 0.3 s"]
