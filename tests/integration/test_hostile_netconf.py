"""SECURITY.md §5.1 N1-N14: hostile NETCONF input against a real flowtapd over real SSH.

Framing-level abuse goes through ``Raw``, a byte pipe over an asyncssh ``netconf`` subsystem
channel with its own small RFC 6242 decoder (the server's decoder is what is under test).
Well-formed traffic uses the project's ``NetconfClient`` or ncclient.

One flowtapd serves the whole module, started with 2 s hello and partial-message timeouts
(``FLOWTAP_NETCONF_HELLO_TIMEOUT``, ``FLOWTAP_NETCONF_PARTIAL_TIMEOUT``). Sharing it is part of
the point: after every abusive case a fresh, well-behaved session must still be served
(``assert_serves``). Tests that change configuration restore it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest
from lxml import etree
from ncclient.operations import RPCError

from flowtap.tools.netconf_client import NetconfClient
from tests.flowtapd import IFS, NC, SVC, SYS, Flowtapd, free_port
from tests.flowtapd import TestUser as User  # aliased: pytest would try to collect Test*
from tests.integration.conftest import USERS

HELLO_TIMEOUT = 2.0
PARTIAL_TIMEOUT = 2.0
READ_TIMEOUT = 15.0  # generous: only a broken server ever waits this long
CLOSE_GRACE = 8.0  # how long past a server-side timeout a close may take to arrive
MAX_MESSAGE = 4 * 1024 * 1024  # flowtapd's per-message cap (ServerContext.max_message)
RSS_LIMIT_KB = 200 * 1024

BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
EOM = b"]]>]]>"
MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
MARKER_IP = "192.0.2.77"  # a lawful-intercept "target" that must never reach a non-LI user
# Hidden LI configuration: the DTCP listener really binds it, so it must be a local address.
LI_ADDRESS = "127.0.0.77"


def hello(*caps: str, extra: str = "") -> bytes:
    items = "".join(f"<capability>{c}</capability>" for c in caps)
    return f'<hello xmlns="{NC}"><capabilities>{items}</capabilities>{extra}</hello>'.encode() + EOM


HELLO_10 = hello(BASE_10)
HELLO_11 = hello(BASE_10, BASE_11)


def rpc(body: str | bytes, attrs: str = 'message-id="1"') -> bytes:
    inner = body.encode() if isinstance(body, str) else body
    return f'<rpc xmlns="{NC}" {attrs}>'.encode() + inner + b"</rpc>"


def chunk(msg: bytes) -> bytes:
    return b"\n#%d\n" % len(msg) + msg + b"\n##\n"


def eom(msg: bytes) -> bytes:
    return msg + EOM


GET_HOSTNAME = (
    f'<get-config><source><running/></source><filter type="subtree"><system xmlns="{SYS}">'
    "<host-name/></system></filter></get-config>"
)


def error_tags(reply: etree._Element) -> list[str]:
    return [e.text or "" for e in reply.iter(f"{{{NC}}}error-tag")]


def error_info(reply: etree._Element, name: str) -> str | None:
    return reply.findtext(f".//{{{NC}}}error-info/{{{NC}}}{name}")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# --- a raw NETCONF-over-SSH byte pipe ---------------------------------------------------------

_CHUNK_HEADER = re.compile(rb"\n#([1-9][0-9]{0,9})\n|\n##\n")


class SessionClosed(Exception):
    pass


class Raw:
    """One SSH connection with the netconf subsystem, spoken to in raw bytes."""

    def __init__(self, conn: asyncssh.SSHClientConnection,
                 writer: asyncssh.SSHWriter[bytes], reader: asyncssh.SSHReader[bytes]) -> None:
        self.conn = conn
        self.writer = writer
        self.reader = reader
        self.buf = bytearray()
        self.chunked = False
        self.session_id = 0

    @classmethod
    async def open(cls, server: Flowtapd, user: str = "admin",
                   client_hello: bytes | None = HELLO_11) -> Raw:
        """Connect and read the server's hello; send ``client_hello`` unless None."""
        u = server.users[user]
        conn = await asyncssh.connect(
            "127.0.0.1", server.port, username=u.name, password=u.password, known_hosts=None,
            client_keys=None, agent_path=None,
        )  # fmt: skip
        writer, reader, _ = await conn.open_session(subsystem="netconf", encoding=None)
        raw = cls(conn, writer, reader)
        server_hello = etree.fromstring(await raw.message(framing="eom"))
        assert server_hello.tag == f"{{{NC}}}hello"
        raw.session_id = int(server_hello.findtext(f"{{{NC}}}session-id") or 0)
        if client_hello is not None:
            raw.send(client_hello)
            raw.chunked = BASE_11.encode() in client_hello
        return raw

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def frame(self, msg: bytes) -> bytes:
        return chunk(msg) if self.chunked else eom(msg)

    async def _fill(self, timeout: float) -> None:
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not data:
            raise SessionClosed
        self.buf += data

    def _take(self, framing: str) -> bytes | None:
        if framing == "eom":
            end = self.buf.find(EOM)
            if end < 0:
                return None
            msg = bytes(self.buf[:end]).strip()
            del self.buf[: end + len(EOM)]
            return msg
        parts: list[bytes] = []
        pos = 0
        while True:
            match = _CHUNK_HEADER.match(self.buf, pos)
            if match is None:
                assert len(self.buf) - pos < 14 or self.buf.startswith(b"\n#", pos), (
                    "server sent bad chunked framing")
                return None
            if match.group(1) is None:
                del self.buf[: match.end()]
                return b"".join(parts)
            size = int(match.group(1))
            if len(self.buf) < match.end() + size:
                return None
            parts.append(bytes(self.buf[match.end() : match.end() + size]))
            pos = match.end() + size

    async def message(self, framing: str | None = None, timeout: float = READ_TIMEOUT) -> bytes:
        """The next complete message from the server (raises SessionClosed at end of input)."""
        framing = framing or ("chunked" if self.chunked else "eom")
        deadline = time.monotonic() + timeout
        while (msg := self._take(framing)) is None:
            await self._fill(max(deadline - time.monotonic(), 0.01))
        return msg

    async def reply(self, timeout: float = READ_TIMEOUT) -> etree._Element:
        msg = etree.fromstring(await self.message(timeout=timeout))
        assert msg.tag == f"{{{NC}}}rpc-reply", msg.tag
        return msg

    async def rpc_bytes(self, body: str | bytes, attrs: str = 'message-id="1"') -> bytes:
        self.send(self.frame(rpc(body, attrs)))
        return await self.message()

    async def rpc(self, body: str | bytes, attrs: str = 'message-id="1"') -> etree._Element:
        self.send(self.frame(rpc(body, attrs)))
        return await self.reply()

    async def closed(self, timeout: float = READ_TIMEOUT) -> bytes:
        """Read until the server ends the session; return every byte it sent after its hello."""
        got = bytes(self.buf)
        self.buf.clear()
        try:
            async with asyncio.timeout(timeout):
                while data := await self.reader.read(65536):
                    got += data
        except TimeoutError:
            raise AssertionError(f"session still open after {timeout} s") from None
        return got

    async def aclose(self) -> None:
        self.conn.close()
        with contextlib.suppress(Exception):
            await self.conn.wait_closed()


@contextlib.asynccontextmanager
async def raw_session(server: Flowtapd, user: str = "admin",
                      client_hello: bytes | None = HELLO_11) -> AsyncIterator[Raw]:
    raw = await Raw.open(server, user, client_hello)
    try:
        yield raw
    finally:
        await raw.aclose()


async def nc_client(server: Flowtapd, user: str = "admin") -> NetconfClient:
    u = server.users[user]
    return await NetconfClient.connect("127.0.0.1", server.port, u.name, u.password)


async def assert_serves(server: Flowtapd) -> None:
    """The daemon is alive and a fresh, well-behaved session gets a correct answer."""
    assert server.proc is not None and server.proc.poll() is None, "flowtapd died"
    async with await nc_client(server) as client:
        reply = await client.rpc(GET_HOSTNAME)
        assert reply.findtext(f".//{{{SYS}}}host-name")


async def assert_terminated(raw: Raw, timeout: float = READ_TIMEOUT) -> None:
    """The server closes the session without answering anything."""
    rest = await raw.closed(timeout)
    assert b"rpc-reply" not in rest, rest[:300]


async def running(server: Flowtapd) -> bytes:
    async with await nc_client(server) as client:
        return etree.tostring(await client.get_config("running"))


# --- the shared server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flowtapd]:
    # "super" has the predefined super-user class: all, which never implies the LI bits.
    users = dict(USERS) | {"super": User("super", "super-pw-1", "super-user")}
    srv = Flowtapd(tmp_path_factory.mktemp("hostile") / "state", free_port(), users)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWTAP_NETCONF_HELLO_TIMEOUT", str(HELLO_TIMEOUT))
        mp.setenv("FLOWTAP_NETCONF_PARTIAL_TIMEOUT", str(PARTIAL_TIMEOUT))
        # this module opens hundreds of connections a minute: more than rate-limit's 150
        mp.setenv("FLOWTAP_NETCONF_RATE_WINDOW", "1")
        srv.start()
    assert srv.proc is not None and srv.proc.stdout is not None
    stdout = srv.proc.stdout

    def drain() -> None:  # a full stdout pipe would block the daemon
        for line in stdout:
            srv.output.append(line)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    yield srv
    srv.stop()
    reader.join(10)
    log = "".join(srv.output)
    assert "Traceback" not in log, log[-3000:]
    assert MARKER_IP not in log  # LI-2: hostile inputs carrying a target never reach the log


# --- N1: hello discipline ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(eom(rpc("<get/>")), id="rpc-before-hello"),
        pytest.param(eom(b"<not-a-hello/>"), id="other-element"),
        pytest.param(eom(f'<hello xmlns="{NC}"><capabilities>'.encode()), id="truncated-hello"),
        pytest.param(chunk(rpc("<get/>")) + eom(rpc("<get/>")), id="chunked-before-hello"),
    ],
)
async def test_n1_no_hello_first_terminates(server: Flowtapd, first: bytes) -> None:
    async with raw_session(server, client_hello=None) as raw:
        raw.send(first)
        await assert_terminated(raw)
    await assert_serves(server)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["after-reply", "same-write"])
async def test_n1_second_hello_terminates(server: Flowtapd, version: str, pipelined: bool) -> None:
    first = HELLO_10 if version == "1.0" else HELLO_11
    async with raw_session(server, client_hello=None) as raw:
        raw.chunked = version == "1.1"
        if pipelined:
            raw.send(first + raw.frame(HELLO_10[: -len(EOM)]) + raw.frame(rpc("<get/>")))
        else:
            raw.send(first)
            reply = await raw.rpc(GET_HOSTNAME)  # the session works before the second hello
            assert reply.findtext(f".//{{{SYS}}}host-name")
            raw.send(raw.frame(HELLO_10[: -len(EOM)]) + raw.frame(rpc("<get/>")))
        await assert_terminated(raw)  # and the rpc after the second hello is never answered
    await assert_serves(server)


async def test_n1_client_hello_with_session_id_terminates(server: Flowtapd) -> None:
    async with raw_session(server, client_hello=None) as raw:
        raw.send(hello(BASE_10, BASE_11, extra="<session-id>4</session-id>") + chunk(rpc("<get/>")))
        await assert_terminated(raw)
    await assert_serves(server)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("pipelined", [False, True], ids=["own-write", "same-write"])
async def test_n1_blank_messages_before_the_hello_are_ignored(
    server: Flowtapd, version: str, pipelined: bool
) -> None:
    # Found by tests/fuzz (netconf_framing): a blank first message ended the hello phase, and
    # switching to chunked framing on the real hello raised RuntimeError out of the session.
    blanks = b"\r\n" + EOM + b" " + EOM
    first = HELLO_10 if version == "1.0" else HELLO_11
    async with raw_session(server, client_hello=None) as raw:
        raw.chunked = version == "1.1"
        if pipelined:
            raw.send(blanks + first + raw.frame(rpc(GET_HOSTNAME)))
        else:
            raw.send(blanks)
            await asyncio.sleep(0.2)  # let the server read the blanks on their own
            raw.send(first + raw.frame(rpc(GET_HOSTNAME)))
        reply = await raw.reply()
        assert reply.findtext(f".//{{{SYS}}}host-name")
    await assert_serves(server)


async def test_n1_no_hello_at_all_times_out(server: Flowtapd) -> None:
    async with raw_session(server, client_hello=None) as raw:
        start = time.monotonic()
        await assert_terminated(raw, HELLO_TIMEOUT + CLOSE_GRACE)
        assert time.monotonic() - start >= HELLO_TIMEOUT * 0.9  # closed by the hello timer
    await assert_serves(server)


# --- N2: no common base --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "client_hello",
    [
        pytest.param(hello(), id="no-capabilities"),
        pytest.param(hello("urn:ietf:params:netconf:base:1.2"), id="base-1.2"),
        pytest.param(hello("urn:ietf:params:netconf:capability:candidate:1.0"),
                     id="only-candidate"),
        pytest.param(hello(BASE_11 + "x", "x" + BASE_10), id="near-miss"),
        pytest.param(f"<hello xmlns='{NC}'><capabilities><capability xmlns='urn:x'>{BASE_11}"
                     f"</capability></capabilities></hello>".encode() + EOM, id="wrong-namespace"),
    ],
)
async def test_n2_no_common_base_terminates(server: Flowtapd, client_hello: bytes) -> None:
    async with raw_session(server, client_hello=client_hello) as raw:
        raw.send(eom(rpc("<get/>")) + chunk(rpc("<get/>")))
        await assert_terminated(raw)
    await assert_serves(server)


# --- N3: ]]>]]> inside a message under base:1.0 -------------------------------------------------


@pytest.mark.parametrize(
    "split",
    [
        pytest.param(rpc('<get-config><source><running/></source><filter type="subtree">'
                         "<!-- ]]>]]> --></filter></get-config>"), id="comment"),
        pytest.param(rpc("<?pi ]]>]]> ?>" + GET_HOSTNAME), id="processing-instruction"),
        pytest.param(rpc(GET_HOSTNAME, 'message-id="]]>]]>"'), id="attribute"),
        pytest.param(rpc('<get-config><source><running/></source><filter type="subtree">'
                         f'<system xmlns="{SYS}"><host-name><![CDATA[ ]]>]]> ]]></host-name>'
                         "</system></filter></get-config>"), id="cdata"),
    ],
)
async def test_n3_eom_inside_a_message_fails_cleanly(server: Flowtapd, split: bytes) -> None:
    async with raw_session(server, client_hello=HELLO_10) as raw:
        raw.send(eom(split) + eom(rpc(GET_HOSTNAME, 'message-id="after"')))
        terminated = False
        replies: list[etree._Element] = []
        try:
            while not replies or replies[-1].get("message-id") != "after":
                replies.append(await raw.reply())
        except SessionClosed:
            terminated = True
        if not terminated:  # clean errors for the fragments, then the session keeps working
            assert replies[:-1], "the split message produced no error"
            for fragment in replies[:-1]:
                assert error_tags(fragment) == ["malformed-message"]
                assert fragment.get("message-id") is None
            assert replies[-1].findtext(f".//{{{SYS}}}host-name")
        else:
            for fragment in replies:
                assert error_tags(fragment) == ["malformed-message"]
    await assert_serves(server)


async def test_n3_delimiter_in_data_never_breaks_framing(server: Flowtapd) -> None:
    """Escaped in 1.0, literal in a 1.1 chunk: the reply echoes it without emitting ]]>]]>."""
    async with raw_session(server, client_hello=HELLO_10) as raw:
        reply = await raw.rpc(GET_HOSTNAME, 'message-id="a]]&gt;]]&gt;b"')
        assert reply.get("message-id") == "a]]>]]>b"
        assert reply.findtext(f".//{{{SYS}}}host-name")
        assert (await raw.rpc(GET_HOSTNAME, 'message-id="next"')).get("message-id") == "next"
    async with raw_session(server) as raw:
        reply = await raw.rpc(GET_HOSTNAME, 'message-id="a]]>]]>b"')
        assert reply.get("message-id") == "a]]>]]>b"
    await assert_serves(server)


# --- N4: bad chunk headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\n#04\n<rpc", id="leading-zero"),
        pytest.param(b"\n#0\n", id="zero"),
        pytest.param(b"\n#x4\n<rpc", id="non-digit"),
        pytest.param(b"\n#4x\n<rpc", id="trailing-non-digit"),
        pytest.param(b"\n#-4\n<rpc", id="negative"),
        pytest.param(b"\n# 4\n<rpc", id="space"),
        pytest.param(b"\n#4294967296\n", id="above-4294967295"),
        pytest.param(b"\n#10000000000\n", id="eleven-digits"),
        pytest.param(b"\n#123456789012345678901234567890", id="endless-digits"),
        pytest.param(b"#4\n<rpc", id="missing-leading-lf"),
        pytest.param(b"\n#4<rpc", id="missing-lf-after-size"),
        pytest.param(b"\r\n#4\r\n<rpc", id="crlf"),
        pytest.param(b"\n##\n", id="end-without-chunk"),
        pytest.param(eom(rpc("<get/>")), id="eom-after-1.1"),
        pytest.param(chunk(rpc("<get/>"))[:-4] + b"\n#04\nabcd\n##\n", id="bad-second-chunk"),
        pytest.param(chunk(rpc(GET_HOSTNAME)) + b"\n#04\n", id="after-good-message"),
    ],
)
@pytest.mark.parametrize("settled", [False, True], ids=["with-hello", "settled"])
async def test_n4_bad_chunk_header_terminates(server: Flowtapd, data: bytes, settled: bool) -> None:
    async with raw_session(server) as raw:
        if settled:  # after a round trip, rather than in the bytes that follow the hello
            assert (await raw.rpc(GET_HOSTNAME)).findtext(f".//{{{SYS}}}host-name")
        raw.send(data)
        rest = await raw.closed()
        # Only the complete message before the bad header may be answered.
        assert rest.count(b"<rpc-reply") == (1 if data.startswith(chunk(rpc(GET_HOSTNAME))) else 0)
    await assert_serves(server)


# --- N5: message size cap, memory -----------------------------------------------------------------


async def test_n5_huge_chunk_announced_then_trickle(server: Flowtapd) -> None:
    async with raw_session(server) as raw:
        raw.send(b"\n#4294967295\n<rpc")
        closed = False
        for _ in range(200):  # trickle, reading with a timeout between bytes
            with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error):
                raw.send(b"x")
            try:
                data = await asyncio.wait_for(raw.reader.read(65536), 0.05)
            except TimeoutError:
                continue
            assert b"rpc-reply" not in data
            if not data:
                closed = True
                break
        if not closed:
            await assert_terminated(raw)
    await assert_serves(server)


def _padded_body(size: int) -> bytes:
    """A get-config whose filter holds a ``size``-byte comment: answered if let in."""
    head = b'<get-config><source><running/></source><filter type="subtree"><!--'
    tail = f'--><system xmlns="{SYS}"><host-name/></system></filter></get-config>'.encode()
    return head + b"p" * size + tail


async def _flood(server: Flowtapd, framing: str) -> bytes:
    """Send one complete, well-formed message just over the cap; return what came back."""
    msg = rpc(_padded_body(MAX_MESSAGE + 1024), 'message-id="big"')
    client_hello = HELLO_11 if framing == "chunked" else HELLO_10
    async with raw_session(server, client_hello=client_hello) as raw:
        if framing == "chunked":
            piece = 256 * 1024
            data = b"".join(chunk(msg[i : i + piece])[:-4] for i in range(0, len(msg), piece))
            data += b"\n##\n"
        else:
            data = eom(msg)
        with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error):
            for i in range(0, len(data), 1 << 20):
                raw.send(data[i : i + (1 << 20)])
                await raw.writer.drain()
        return await raw.closed()


async def test_n5_message_over_the_cap_terminates_memory_bounded(server: Flowtapd) -> None:
    assert server.proc is not None
    # Just under the cap is served: the cap, not the content, decides.
    async with raw_session(server) as raw:
        reply = await raw.rpc(_padded_body(MAX_MESSAGE - 4096), 'message-id="big"')
        assert reply.findtext(f".//{{{SYS}}}host-name")
    # Many small chunks (1.1) and one EOM message (1.0) summing past the cap, 8 at a time.
    results = await asyncio.gather(*(_flood(server, f) for f in ["chunked", "eom"] * 4))
    for rest in results:
        assert b"rpc-reply" not in rest  # refused before parsing: never answered
    assert rss_kb(server.proc.pid) < RSS_LIMIT_KB
    await assert_serves(server)


# --- N6: slow and partial messages -------------------------------------------------------------


async def _partial_then_silence(server: Flowtapd, client_hello: bytes | None,
                                data: bytes) -> tuple[int, float]:
    async with raw_session(server, client_hello=client_hello) as raw:
        start = time.monotonic()
        raw.send(data)
        await assert_terminated(raw, PARTIAL_TIMEOUT + CLOSE_GRACE)
        return raw.session_id, time.monotonic() - start


async def _trickle(server: Flowtapd) -> tuple[int, float]:
    """Slowloris: one byte every PARTIAL_TIMEOUT / 8 s, so no single read ever waits long."""
    async with raw_session(server) as raw:
        start = time.monotonic()
        raw.send(b"\n#1000\n<rpc")
        limit = start + PARTIAL_TIMEOUT + CLOSE_GRACE
        while time.monotonic() < limit:
            raw.send(b" ")
            try:
                data = await asyncio.wait_for(raw.reader.read(65536), PARTIAL_TIMEOUT / 8)
            except TimeoutError:
                continue
            assert not data.count(b"rpc-reply"), data
            if not data:
                return raw.session_id, time.monotonic() - start
        raise AssertionError("a trickled message was never timed out")


async def test_n6_partial_messages_time_out(server: Flowtapd) -> None:
    results = await asyncio.gather(
        _partial_then_silence(server, None, f'<hello xmlns="{NC}"><capabilities>'.encode()),
        _partial_then_silence(server, HELLO_10, rpc(GET_HOSTNAME)[:40]),
        _partial_then_silence(server, HELLO_11, b"\n#200\n" + rpc(GET_HOSTNAME)[:40]),
        _partial_then_silence(server, HELLO_11, b"\n#12"),  # inside a chunk header
        _trickle(server),
    )
    for _, elapsed in results:
        assert elapsed >= PARTIAL_TIMEOUT * 0.9  # closed by the partial-message timer
    # The slots are freed: none of those sessions is still listed.
    async with await nc_client(server) as client:
        reply = await client.rpc(f'<get><filter type="subtree"><netconf-state xmlns="{MON}">'
                                 "<sessions/></netconf-state></filter></get>")
        listed = {int(e.text or 0) for e in reply.iter(f"{{{MON}}}session-id")}
    assert client.session_id in listed
    assert not listed & {session_id for session_id, _ in results}
    await assert_serves(server)


# --- N7: DTDs, entities, XXE, XInclude -----------------------------------------------------------


@pytest.fixture
def bait(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A secret file, a FIFO (opening it for reading would hang the daemon) and a TCP listener
    that must never see a connection."""
    secret = tmp_path / "secret.txt"
    secret.write_text("XXE-SECRET-9f3a")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    yield {"secret": secret, "fifo": fifo, "port": listener.getsockname()[1],
           "listener": listener}  # fmt: skip
    listener.close()


def _n7_cases(secret: Path, fifo: Path, port: int) -> dict[str, bytes]:
    filt = (f'<get-config><source><running/></source><filter type="subtree"><system xmlns="{SYS}">'
            "<host-name>{}</host-name></system></filter></get-config>")
    lol = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    return {
        "bare-doctype": b"<!DOCTYPE rpc>" + rpc(GET_HOSTNAME),
        "billion-laughs": f"<!DOCTYPE rpc [{lol}]>".encode() + rpc(filt.format("&l9;")),
        "quadratic": f'<!DOCTYPE rpc [<!ENTITY a "{"a" * 50_000}">]>'.encode()
        + rpc(filt.format("&a;" * 2_000)),
        "xxe-file": f'<!DOCTYPE rpc [<!ENTITY x SYSTEM "file://{secret}">]>'.encode()
        + rpc(filt.format("&x;")),
        "xxe-fifo": f'<!DOCTYPE rpc [<!ENTITY x SYSTEM "file://{fifo}">]>'.encode()
        + rpc(filt.format("&x;")),
        "xxe-http": f'<!DOCTYPE rpc [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>'.encode()
        + rpc(filt.format("&x;")),
        "parameter-entity": (f'<!DOCTYPE rpc [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd">'
                             "%p;]>").encode() + rpc(GET_HOSTNAME),
        "external-dtd": f'<!DOCTYPE rpc SYSTEM "file://{fifo}">'.encode() + rpc(GET_HOSTNAME),
        "doctype-after-prolog": (f'<?xml version="1.0"?>\n<!-- c --><?pi x?>'
                                 f'<!DOCTYPE rpc [<!ENTITY x SYSTEM "file://{secret}">]>').encode()
        + rpc(filt.format("&x;")),
    }


def _fifo_has_reader(fifo: Path) -> bool:
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: nobody has it open for reading
        return False
    os.close(fd)
    return True


def _assert_untouched(bait: dict[str, object]) -> None:
    fifo = bait["fifo"]
    listener = bait["listener"]
    assert isinstance(fifo, Path) and isinstance(listener, socket.socket)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and not _fifo_has_reader(fifo)
    with pytest.raises(BlockingIOError):  # no connection was ever made
        listener.accept()


async def test_n7_doctype_and_entities_are_malformed(server: Flowtapd,
                                                     bait: dict[str, object]) -> None:
    secret, fifo, port = bait["secret"], bait["fifo"], bait["port"]
    assert isinstance(secret, Path) and isinstance(fifo, Path) and isinstance(port, int)
    async with raw_session(server) as raw:
        for name, msg in _n7_cases(secret, fifo, port).items():
            raw.send(chunk(msg))
            answer = await raw.message()
            reply = etree.fromstring(answer)
            assert error_tags(reply) == ["malformed-message"], name
            assert b"XXE-SECRET" not in answer and b"lol" not in answer, name
            # the session is still usable
            assert (await raw.rpc(GET_HOSTNAME)).findtext(f".//{{{SYS}}}host-name"), name
    _assert_untouched(bait)
    # A DOCTYPE in the hello ends the session before it starts.
    async with raw_session(server, client_hello=None) as raw:
        raw.send(f'<!DOCTYPE hello [<!ENTITY x SYSTEM "file://{secret}">]>'.encode()
                 + HELLO_11.replace(b"<capabilities>", b"<capabilities>&x;"))
        await assert_terminated(raw)
    _assert_untouched(bait)
    await assert_serves(server)


async def test_n7_xinclude_is_never_processed(server: Flowtapd, bait: dict[str, object]) -> None:
    secret, fifo, port = bait["secret"], bait["fifo"], bait["port"]
    xi = 'xmlns:xi="http://www.w3.org/2001/XInclude"'
    includes = (f'<xi:include {xi} href="file://{secret}" parse="text"/>'
                f'<xi:include {xi} href="file://{fifo}" parse="text"/>'
                f'<xi:include {xi} href="http://127.0.0.1:{port}/x" parse="xml"/>')
    async with raw_session(server) as raw:
        for body in (
            f'<get-config><source><running/></source><filter type="subtree">{includes}'
            "</filter></get-config>",
            f'<edit-config><target><candidate/></target><config>{includes}</config></edit-config>',
            f'<get-config><source><running/></source><filter type="subtree">'
            f'<system xmlns="{SYS}"><host-name>{includes}</host-name></system></filter>'
            "</get-config>",
        ):
            answer = await raw.rpc_bytes(body)
            assert b"XXE-SECRET" not in answer
            assert b"<data" in answer or b"rpc-error" in answer
    _assert_untouched(bait)
    await assert_serves(server)


# --- N8: nesting, element and attribute floods -------------------------------------------------


def _nested(depth: int) -> bytes:
    return rpc(f'<get><filter type="subtree">{"<a>" * depth}{"</a>" * depth}</filter></get>')


def _siblings(count: int) -> bytes:
    return rpc(f'<get><filter type="subtree">{"<a/>" * count}</filter></get>')


N8_UNDER_CAP = {
    "depth-100": _nested(100),
    "depth-300": _nested(300),
    "depth-10000": _nested(10_000),
    "250k-siblings": _siblings(250_000),
    "200k-attributes": rpc('<get><filter type="subtree"><a '
                           + " ".join(f'a{i}=""' for i in range(200_000)) + "/></filter></get>"),
    "100k-xmlns": rpc('<get><filter type="subtree"><a '
                      + " ".join(f'xmlns:p{i}="urn:u{i}"' for i in range(100_000))
                      + "/></filter></get>"),
    "60k-name": rpc(f'<get><filter type="subtree"><{"n" * 60_000}/></filter></get>'),
}


async def test_n8_floods_under_the_cap_are_malformed(server: Flowtapd) -> None:
    assert server.proc is not None
    async with raw_session(server) as raw:
        for name, msg in N8_UNDER_CAP.items():
            assert len(msg) < MAX_MESSAGE, name
            raw.send(chunk(msg))
            reply = await raw.reply()
            assert error_tags(reply) == ["malformed-message"], name
            assert (await raw.rpc(GET_HOSTNAME)).findtext(f".//{{{SYS}}}host-name"), name
    assert rss_kb(server.proc.pid) < RSS_LIMIT_KB
    await assert_serves(server)


async def test_n8_namespace_declarations_do_not_accumulate(server: Flowtapd) -> None:
    """Allowed-size declaration floods on XPath filters, each request different: memory flat."""
    assert server.proc is not None
    declarations = " ".join(f'xmlns:p{i}="urn:flood:{i}"' for i in range(9_000))
    async with raw_session(server, "viewer") as raw:
        await raw.rpc(GET_HOSTNAME)
        before = rss_kb(server.proc.pid)
        for n in range(60):
            reply = await raw.rpc(f'<get-config><source><running/></source><filter type="xpath" '
                                  f'{declarations} select="/p{n}:x"/></get-config>')
            assert not error_tags(reply)
        growth = rss_kb(server.proc.pid) - before
    assert growth < 64 * 1024, f"RSS grew by {growth} kB"
    assert rss_kb(server.proc.pid) < RSS_LIMIT_KB
    await assert_serves(server)


@pytest.mark.parametrize(
    "msg",
    [
        pytest.param(_siblings(4_000_000), id="4M-siblings"),
        pytest.param(rpc(GET_HOSTNAME, f'message-id="1" big="{"x" * 20_000_000}"'), id="20MB-attr"),
        pytest.param(rpc(f'<get><filter type="subtree"><a>{"x" * 11_000_000}</a></filter></get>'),
                     id="11MB-text"),
    ],
)
async def test_n8_floods_over_the_cap_terminate(server: Flowtapd, msg: bytes) -> None:
    assert server.proc is not None
    async with raw_session(server) as raw:
        with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error):
            raw.send(chunk(msg))
        await assert_terminated(raw)
    assert rss_kb(server.proc.pid) < RSS_LIMIT_KB
    await assert_serves(server)


# --- N9: encodings -------------------------------------------------------------------------------


def _with_id(raw_id: bytes) -> bytes:
    return rpc(GET_HOSTNAME, 'message-id="ID"').replace(b'"ID"', b'"' + raw_id + b'"')


N9_CASES = {
    "invalid-utf8": rpc(GET_HOSTNAME.replace("<host-name/>", "<host-name>X</host-name>")).replace(
        b">X<", b">" + MARKER_IP.encode() + b"\xff\xfe<"),
    "overlong-utf8": _with_id(b"\xc0\xaf"),
    "surrogate-utf8": _with_id(b"\xed\xa0\x80"),
    "truncated-utf8": _with_id(b"\xe2\x82"),
    "nul": _with_id(b"a\x00b"),
    "c0-control": _with_id(b"a\x01b"),
    "nul-in-text": rpc(f'<get><filter type="subtree"><a>{MARKER_IP}\x00</a></filter></get>'),
    "utf16-declaration": b'<?xml version="1.0" encoding="UTF-16"?>' + rpc(GET_HOSTNAME),
    "latin1-declaration": b"<?xml version='1.0' encoding='ISO-8859-1'?>" + rpc(GET_HOSTNAME),
    "utf8-bom": b"\xef\xbb\xbf" + rpc(GET_HOSTNAME),
    "utf16-with-bom": ("\ufeff" + rpc(GET_HOSTNAME).decode()).encode("utf-16-le"),
    "utf16-without-bom": rpc(GET_HOSTNAME).decode().encode("utf-16-le"),
}


async def test_n9_bad_encodings_are_malformed(server: Flowtapd) -> None:
    async with raw_session(server) as raw:
        for name, msg in N9_CASES.items():
            raw.send(chunk(msg))
            answer = await raw.message()
            assert error_tags(etree.fromstring(answer)) == ["malformed-message"], name
            assert MARKER_IP.encode() not in answer, name  # errors never quote the input
            assert (await raw.rpc(GET_HOSTNAME)).findtext(f".//{{{SYS}}}host-name"), name
    await assert_serves(server)


# --- N10: namespaces, operations, elements --------------------------------------------------------


N10_CASES = [
    pytest.param(b'<rpc xmlns="urn:bogus" message-id="1"><get/></rpc>', "unknown-namespace",
                 id="rpc-in-unknown-namespace"),
    pytest.param(b'<rpc message-id="1"><get/></rpc>', "unknown-namespace",
                 id="rpc-without-namespace"),
    pytest.param(f'<rpc-reply xmlns="{NC}" message-id="1"><ok/></rpc-reply>'.encode(),
                 "unknown-element", id="rpc-reply-from-client"),
    pytest.param(rpc("<frobnicate/>"), "operation-not-supported", id="unknown-operation"),
    # get-configuration is served since the Junos XML API subset (issue 17); outside it, refused
    pytest.param(rpc("<open-configuration/>"), "operation-not-supported",
                 id="junos-rpc-outside-the-subset"),
    pytest.param(rpc('<frob xmlns="urn:bogus"/>'), "unknown-namespace",
                 id="operation-in-unknown-ns"),
    pytest.param(rpc(f'<edit-config><target><candidate/></target><config><system xmlns="{SYS}">'
                     "<bogus>1</bogus></system></config></edit-config>"), "unknown-element",
                 id="unknown-element-in-config"),
    pytest.param(rpc(f'<edit-config><target><candidate/></target><config><system xmlns="{SYS}">'
                     f'<services><flow-tap-dtcp><ssh><port>1</port><bogus/></ssh></flow-tap-dtcp>'
                     "</services></system></config></edit-config>"), "unknown-element",
                 id="unknown-element-deep-in-config"),
    pytest.param(rpc('<edit-config><target><candidate/></target><config><system xmlns="urn:bogus">'
                     "<host-name>x</host-name></system></config></edit-config>"),
                 "unknown-namespace", id="unknown-namespace-in-config"),
    pytest.param(rpc("<edit-config><target><candidate/></target><bogus/><config/></edit-config>"),
                 "unknown-element", id="unknown-edit-config-parameter"),
    pytest.param(rpc("<get-config><source><running/></source><bogus/></get-config>"),
                 "unknown-element", id="unknown-get-config-parameter"),
    pytest.param(rpc('<get><filter type="subtree"/><x:y xmlns:x="urn:bogus"/></get>'),
                 "unknown-namespace", id="foreign-parameter"),
    pytest.param(rpc("<lock><target><candidate/></target><force/></lock>"), "unknown-element",
                 id="unknown-lock-parameter"),
]


@pytest.mark.parametrize(("msg", "tag"), N10_CASES)
async def test_n10_unknown_names_are_refused_session_usable(server: Flowtapd, msg: bytes,
                                                            tag: str) -> None:
    async with raw_session(server) as raw:
        raw.send(chunk(msg))
        reply = await raw.reply()
        assert error_tags(reply) == [tag]
        candidate = await raw.rpc("<get-config><source><candidate/></source></get-config>")
        assert candidate.findtext(f".//{{{SYS}}}host-name") == "test"  # nothing was applied
        assert not error_tags(await raw.rpc(GET_HOSTNAME, 'message-id="2"'))
    await assert_serves(server)


@pytest.mark.parametrize(("operation", "says"), [
    ('<commit xmlns=""/>', "'commit' has no namespace: NETCONF operations are in " + NC),
    ('<commit xmlns="urn:bogus"/>', "No operation 'commit' in namespace 'urn:bogus'"),
    ("<nc:frobnicate/>", "Operation 'frobnicate' is not supported"),
], ids=["no-namespace", "foreign-namespace", "unknown-in-base"])
async def test_n10_an_unknown_operation_says_what_is_wrong(
    server: Flowtapd, operation: str, says: str
) -> None:
    """Issue 17 item 7: an operation without a namespace is not "not supported"."""
    async with raw_session(server) as raw:
        raw.send(chunk(f'<nc:rpc xmlns:nc="{NC}" message-id="1">{operation}</nc:rpc>'.encode()))
        reply = await raw.reply()
        assert says in (reply.findtext(f".//{{{NC}}}error-message") or "")


# --- N11: message-id and rpc attributes ----------------------------------------------------------


async def test_n11_missing_and_bad_message_id(server: Flowtapd) -> None:
    async with raw_session(server) as raw:
        reply = await raw.rpc(GET_HOSTNAME, "")
        assert error_tags(reply) == ["missing-attribute"]
        assert error_info(reply, "bad-attribute") == "message-id"
        assert error_info(reply, "bad-element") == "rpc"

        reply = await raw.rpc(GET_HOSTNAME, f'xmlns:nc="{NC}" nc:message-id="1"')  # wrong ns
        assert error_tags(reply) == ["missing-attribute"]

        for size in (1024 * 1024, MAX_MESSAGE - 4096):
            big = "7" * size
            answer = await raw.rpc_bytes(GET_HOSTNAME, f'message-id="{big}"')
            reply = etree.fromstring(answer)
            assert error_tags(reply) == ["bad-attribute"]
            assert error_info(reply, "bad-attribute") == "message-id"
            assert len(answer) < 2048  # the huge id is not echoed back

        answer = await raw.rpc_bytes(GET_HOSTNAME, 'message-id="1" message-id="2"')
        assert error_tags(etree.fromstring(answer)) == ["malformed-message"]

        # Other attributes are echoed unmodified (RFC 6241 §4.2), within a size cap.
        reply = await raw.rpc(GET_HOSTNAME, f'message-id="7" foo="bar" xmlns:x="urn:x" x:y="z" '
                                            f'long="{"L" * 5000}"')
        assert reply.get("message-id") == "7" and reply.get("foo") == "bar"
        assert reply.get("{urn:x}y") == "z" and reply.get("long") is None
        assert reply.findtext(f".//{{{SYS}}}host-name")
    # A message-id past the message cap ends the session.
    async with raw_session(server) as raw:
        with contextlib.suppress(BrokenPipeError, ConnectionError, asyncssh.Error):
            raw.send(chunk(rpc(GET_HOSTNAME, f'message-id="{"9" * (MAX_MESSAGE + 1)}"')))
        await assert_terminated(raw)
    await assert_serves(server)


@pytest.mark.parametrize(
    ("attrs", "body", "answered"),
    [
        pytest.param('message-id="3" \u03d6="1"', "<frobnicate/>", "error", id="error-reply"),
        pytest.param('message-id="3" xmlns:x="urn:x" x:\u03d6="1"', GET_HOSTNAME, "data",
                     id="namespaced-echo"),
        pytest.param('message-id="3"', f'<validate><source><config><system xmlns="{SYS}" '
                     '\u03d6="1"/></config></source></validate>', "error", id="inline-config"),
    ],
)
async def test_n11_non_ascii_names_keep_replies_well_formed(
    server: Flowtapd, attrs: str, body: str, answered: str
) -> None:
    # Found by tests/fuzz (netconf_rpc): lxml's default ASCII output wrote a non-ASCII attribute
    # name as a character reference, so the reply was not well-formed XML (or, for an inline
    # <config>, re-parsing it failed into "Internal error").
    async with raw_session(server) as raw:
        reply = await raw.rpc(body.encode(), attrs)
        assert reply.get("message-id") == "3"
        if answered == "data":
            assert reply.findtext(f".//{{{SYS}}}host-name")
        else:
            assert error_tags(reply) and "operation-failed" not in error_tags(reply)
    await assert_serves(server)


async def test_inline_config_of_only_empty_containers_validates(server: Flowtapd) -> None:
    # Found by tests/fuzz (netconf_rpc): libyang prints nothing for such a tree, and the None it
    # returned failed the canonical form with TypeError ("Internal error").
    async with raw_session(server) as raw:
        reply = await raw.rpc(f'<validate><source><config><system xmlns="{SYS}"><services/>'
                              "</system></config></source></validate>")
        assert reply.find(f"{{{NC}}}ok") is not None, etree.tostring(reply)
    await assert_serves(server)


# --- N12: semantic errors, no partial change ------------------------------------------------------


def _cfg(inner: str) -> str:
    return f'<config xmlns="{NC}" xmlns:nc="{NC}">{inner}</config>'


def _sys(inner: str) -> str:
    return f'<system xmlns="{SYS}"><host-name>partial-change</host-name>{inner}</system>'


def _dtcp(inner: str) -> str:
    return _sys(f"<services><flow-tap-dtcp><ssh>{inner}</ssh></flow-tap-dtcp></services>")


N12_CASES = [
    pytest.param(_cfg(_sys('<services><netconf nc:operation="create"/></services>')),
                 {"data-exists"}, id="create-existing"),
    pytest.param(_cfg(_sys('<radius-server nc:operation="delete"><name>192.0.2.1</name>'
                           "</radius-server>")), {"data-missing"}, id="delete-missing"),
    pytest.param(_cfg(_sys('<radius-server nc:operation="frobnicate"><name>192.0.2.1</name>'
                           "</radius-server>")), {"bad-attribute"}, id="bad-operation-value"),
    pytest.param(_cfg(_sys('<radius-server nc:operation=""><name>192.0.2.1</name>'
                           "</radius-server>")), {"bad-attribute"}, id="empty-operation-value"),
    pytest.param(_cfg(_dtcp("<connection-limit>300</connection-limit>")),
                 {"invalid-value", "bad-element"}, id="uint8-out-of-range"),
    pytest.param(_cfg(_dtcp("<connection-limit>-1</connection-limit>")),
                 {"invalid-value", "bad-element"}, id="uint8-negative"),
    pytest.param(_cfg(_dtcp("<port>70000</port>")), {"invalid-value", "bad-element"},
                 id="port-above-65535"),
    pytest.param(_cfg(_dtcp("<port>0</port>")), {"invalid-value", "bad-element"}, id="port-zero"),
    pytest.param(_cfg(_dtcp("<port>ssh</port>")), {"invalid-value", "bad-element"},
                 id="port-not-a-number"),
    pytest.param(_cfg(_dtcp("<listen-address>999.0.2.1</listen-address>")),
                 {"invalid-value", "bad-element"}, id="bad-ipv4"),
    pytest.param(_cfg(_dtcp("<listen-address>2001:db8::g</listen-address>")),
                 {"invalid-value", "bad-element"}, id="bad-ipv6"),
    pytest.param(_cfg(_sys("<radius-server><name>not-an-ip</name></radius-server>")),
                 {"invalid-value", "bad-element"}, id="bad-radius-address"),
    pytest.param(_cfg(f'<system xmlns="{SYS}"><host-name>bad host!</host-name></system>'),
                 {"invalid-value", "bad-element"}, id="bad-host-name"),
    pytest.param(_cfg(f'{_sys("")}<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0'
                      "</interface></flow-tap></services>"), {"invalid-value", "bad-element"},
                 id="flow-tap-interface-without-unit"),
    pytest.param(_cfg(_sys("<login><class><name>super-user</name></class></login>")),
                 {"invalid-value"}, id="predefined-class-name"),
]


@pytest.mark.parametrize("error_option", ["stop-on-error", "rollback-on-error"])
def test_n12_semantic_errors_change_nothing(server: Flowtapd, error_option: str) -> None:
    with server.connect("admin") as m:
        before = m.get_config("candidate").data_xml
        for case in N12_CASES:
            config, tags = case.values
            assert isinstance(config, str) and isinstance(tags, set)
            with pytest.raises(RPCError) as exc:
                m.edit_config(target="candidate", config=config, error_option=error_option)
            assert exc.value.tag in tags, (case.id, exc.value.tag)
            assert m.get_config("candidate").data_xml == before, case.id  # no partial change
        # A candidate that only fails at commit leaves running untouched too.
        run_before = m.get_config("running").data_xml
        m.edit_config(target="candidate", config=_cfg(
            f'<services xmlns="{SVC}"><flow-tap><interface>sp-7/7/7.7</interface></flow-tap>'
            "</services>"))
        with pytest.raises(RPCError):
            m.commit()
        assert m.get_config("running").data_xml == run_before
        m.discard_changes()
        assert m.get_config("candidate").data_xml == before


def test_predefined_class_names_are_refused_at_edit_time(server: Flowtapd) -> None:
    with server.connect("admin") as m:
        for name in ("super-user", "operator", "read-only", "unauthorized"):
            with pytest.raises(RPCError) as exc:
                m.edit_config(target="candidate", config=_cfg(
                    f"<system xmlns=\"{SYS}\"><login><class><name>{name}</name></class></login>"
                    "</system>"))
            assert exc.value.tag == "invalid-value"
            assert "predefined" in exc.value.message
        # a name that merely contains one is fine
        m.edit_config(target="candidate", config=_cfg(
            f'<system xmlns="{SYS}"><login><class><name>super-user-2</name>'
            "<permissions>view</permissions></class></login></system>"))
        m.discard_changes()


async def test_n12_server_still_serves(server: Flowtapd) -> None:
    await assert_serves(server)


# --- N13: authorization abuse ---------------------------------------------------------------------

def _li_config(dtcp_port: int) -> str:
    return (
        f'<interfaces xmlns="{IFS}"><interface><name>sp-0/0/0</name><host-device>lo</host-device>'
        "<unit><name>0</name><family><inet/></family></unit></interface></interfaces>"
        f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap>'
        f'</services><system xmlns="{SYS}"><services><flow-tap-dtcp><ssh><port>{dtcp_port}</port>'
        f"<connection-limit>7</connection-limit><listen-address>{LI_ADDRESS}</listen-address>"
        "</ssh></flow-tap-dtcp></services></system>"
    )


LI_REMOVE = (
    f'<services xmlns="{SVC}" xmlns:nc="{NC}" nc:operation="remove"/>'
    f'<interfaces xmlns="{IFS}" xmlns:nc="{NC}"><interface nc:operation="remove">'
    "<name>sp-0/0/0</name></interface></interfaces>"
    f'<system xmlns="{SYS}" xmlns:nc="{NC}"><services><flow-tap-dtcp nc:operation="remove"/>'
    "</services></system>"
)


def _get_config(filt: str, source: str = "running") -> str:
    return f"<get-config><source><{source}/></source>{filt}</get-config>"


def _subtree(inner: str) -> str:
    return f'<filter type="subtree">{inner}</filter>'


def _xpath(select: str) -> str:
    return f'<filter type="xpath" xmlns:s="{SVC}" xmlns:t="{SYS}" select="{select}"/>'


def _guess(ip: str, interface: str, limit: int) -> list[str]:
    """Viewer reads aimed at flow-tap, with guessed keys and values."""
    dtcp = (f'<system xmlns="{SYS}"><services><flow-tap-dtcp><ssh>{{}}</ssh></flow-tap-dtcp>'
            "</services></system>")
    return [
        _get_config(_subtree(f'<services xmlns="{SVC}"><flow-tap><interface>{interface}'
                             "</interface></flow-tap></services>")),
        _get_config(_subtree(dtcp.format(f"<listen-address>{ip}</listen-address>"))),
        _get_config(_subtree(dtcp.format(f"<connection-limit>{limit}</connection-limit>"))),
        _get_config(_xpath(f"/s:services/s:flow-tap[s:interface='{interface}']"), "candidate"),
        _get_config(_xpath(f"/t:system/t:services/t:flow-tap-dtcp/t:ssh[t:listen-address='{ip}']")),
        _get_config(_xpath(f"//*[.='{ip}']")),
        _get_config(_xpath(f"count(//t:ssh[t:connection-limit={limit}])")),
        f'<get>{_xpath(f"/t:system/t:services/t:flow-tap-dtcp/t:ssh[t:connection-limit={limit}]")}'
        "</get>",
    ]


VIEWER_PROBES = [
    _get_config(_subtree(f'<services xmlns="{SVC}"/>')),
    _get_config(_subtree(f'<services xmlns="{SVC}"><flow-tap/></services>')),
    _get_config(_subtree(f'<system xmlns="{SYS}"><services><flow-tap-dtcp/></services></system>'),
                "candidate"),
    _get_config(_subtree("<flow-tap/>")),
    _get_config(_subtree("<interface>sp-0/0/0.0</interface>")),
    _get_config(_xpath("/s:services")),
    _get_config(_xpath("/s:services/s:flow-tap")),
    _get_config(_xpath("//*[local-name()='flow-tap' or local-name()='flow-tap-dtcp']")),
    _get_config(_xpath("//s:interface | //t:listen-address")),
    "<get>" + _subtree(f'<services xmlns="{SVC}"/>') + "</get>",
    f'<get>{_xpath("/s:services/s:flow-tap")}</get>',
    *_guess(LI_ADDRESS, "sp-0/0/0.0", 7),
]


async def _viewer_replies(server: Flowtapd, probes: list[str]) -> list[bytes]:
    async with raw_session(server, "viewer") as raw:
        return [await raw.rpc_bytes(p, 'message-id="probe"') for p in probes]


def _ops_write_probes(ip: str) -> list[str]:
    dtcp = (f'<system xmlns="{SYS}"><services><flow-tap-dtcp><ssh>{{}}</ssh></flow-tap-dtcp>'
            "</services></system>")
    edits = [
        dtcp.format(f'<listen-address nc:operation="delete">{ip}</listen-address>'),
        dtcp.format(f'<listen-address nc:operation="create">{ip}</listen-address>'),
        dtcp.format(f"<listen-address>{ip}</listen-address>"),  # merge of a guessed value
        dtcp.format(f'<listen-address nc:operation="none">{ip}</listen-address>'),
    ]
    return [
        f'<edit-config><target><candidate/></target><config xmlns:nc="{NC}">{e}</config>'
        f"<test-option>{t}</test-option></edit-config>"
        for e in edits for t in ("test-then-set", "test-only")
    ]


OPS_SHAPE_PROBES = [  # edits whose success would depend on whether hidden data exists
    f'<edit-config><target><candidate/></target><config xmlns:nc="{NC}">{e}</config></edit-config>'
    for e in (
        f'<services xmlns="{SVC}" nc:operation="delete"/>',
        f'<services xmlns="{SVC}" nc:operation="replace"/>',
        f'<services xmlns="{SVC}" nc:operation="remove"/>',
        f'<system xmlns="{SYS}"><services nc:operation="replace"><netconf><ssh><port>830</port>'
        "</ssh></netconf></services></system>",
    )
] + [
    "<edit-config><target><candidate/></target><default-operation>replace</default-operation>"
    f'<config><system xmlns="{SYS}"><host-name>test</host-name></system></config></edit-config>',
    "<copy-config><target><candidate/></target><source><config>"
    f'<system xmlns="{SYS}"><host-name>test</host-name></system></config></source></copy-config>',
]


async def _write_replies(server: Flowtapd, user: str, probes: list[str]) -> list[bytes]:
    async with raw_session(server, user) as raw:
        out = []
        for probe in probes:
            out.append(await raw.rpc_bytes(probe, 'message-id="probe"'))
            await raw.rpc("<discard-changes/>")
        # Write back exactly what this user sees: a no-op unless something is hidden from it.
        view = (await raw.rpc(_get_config(""))).find(f"{{{NC}}}data")
        assert view is not None
        mine = "".join(etree.tostring(child).decode() for child in view)
        for probe in (
            f"<copy-config><target><candidate/></target><source><config>{mine}</config></source>"
            "</copy-config>",
            "<edit-config><target><candidate/></target><default-operation>replace"
            f"</default-operation><config>{mine}</config></edit-config>",
        ):
            out.append(await raw.rpc_bytes(probe, 'message-id="probe"'))
            await raw.rpc("<discard-changes/>")
        return out


async def _admin(server: Flowtapd, config: str) -> None:
    async with await nc_client(server) as admin:
        await admin.edit_candidate(config)
        await admin.commit()


async def test_n13_hidden_subtree_looks_exactly_like_no_subtree(server: Flowtapd) -> None:
    absent_view = await _viewer_replies(server, VIEWER_PROBES)
    writers = ("ops", "super")  # configure without LI bits; all without LI bits
    writes = _ops_write_probes(LI_ADDRESS) + OPS_SHAPE_PROBES
    absent_writes = [await _write_replies(server, user, writes) for user in writers]
    await _admin(server, _li_config(free_port()))
    try:
        present_view = await _viewer_replies(server, VIEWER_PROBES)
        for probe, absent, present in zip(VIEWER_PROBES, absent_view, present_view, strict=True):
            assert present == absent, probe  # byte-identical, configured or not
            assert LI_ADDRESS.encode() not in present and b"flow-tap" not in present
        # Right and wrong guesses of keys and values read the same.
        wrong = await _viewer_replies(server, _guess("127.0.0.78", "sp-9/9/9.9", 8))
        assert wrong == present_view[-len(wrong):]
        async with raw_session(server, "viewer") as raw:
            whole = await raw.rpc_bytes("<get/>") + await raw.rpc_bytes(_get_config(""))
            assert LI_ADDRESS.encode() not in whole and b"flow-tap" not in whole

        # Writers without flow-tap bits: writes aimed at or around the hidden subtree answer
        # the same whether it exists, and for right and wrong guesses.
        for user, absent in zip(writers, absent_writes, strict=True):
            present = await _write_replies(server, user, writes)
            wrong = await _write_replies(server, user, _ops_write_probes("127.0.0.78"))
            for probe, before, now in zip([*writes, "copy-back", "replace-back"], absent, present,
                                          strict=True):
                assert now == before, (user, probe)
            assert wrong[: -2] == present[: len(wrong) - 2], user
            for answer in present:
                assert error_tags(etree.fromstring(answer)) == ["access-denied"], user
                assert LI_ADDRESS.encode() not in answer and b"error-path" not in answer
        async with await nc_client(server, "ftctl") as li:  # nothing was changed
            li_view = etree.tostring(await li.get_config("candidate"))
            assert LI_ADDRESS.encode() in li_view and b"sp-0/0/0.0" in li_view
    finally:
        await _admin(server, LI_REMOVE)
    await assert_serves(server)


async def test_n13_lock_kill_and_close_abuse(server: Flowtapd) -> None:
    async with raw_session(server, "admin") as admin, raw_session(server, "viewer") as viewer, \
            raw_session(server, "ops") as ops:  # fmt: skip
        assert not error_tags(await admin.rpc("<lock><target><candidate/></target></lock>"))
        for body in ("<lock><target><candidate/></target></lock>",
                     "<lock><target><running/></target></lock>",
                     f"<kill-session><session-id>{admin.session_id}</session-id></kill-session>",
                     "<commit/>", "<discard-changes/>", "<cancel-commit/>"):
            assert error_tags(await viewer.rpc(body)) == ["access-denied"], body
        # Unlocking someone else's lock fails and the lock holds.
        for who in (viewer, ops):
            reply = await who.rpc("<unlock><target><candidate/></target></unlock>")
            assert error_tags(reply) == ["lock-denied"]
            assert error_info(reply, "session-id") == str(admin.session_id)
        reply = await ops.rpc(f"<kill-session><session-id>{admin.session_id}</session-id>"
                              "</kill-session>")
        assert error_tags(reply) == ["access-denied"]  # configure is not maintenance
        reply = await ops.rpc("<edit-config><target><candidate/></target><config>"
                              f'<system xmlns="{SYS}"><host-name>x</host-name></system>'
                              "</config></edit-config>")
        assert error_tags(reply) == ["lock-denied"]

        # kill-session argument abuse: all refused, and the admin session survives each.
        for value, tag in [
            (str(admin.session_id), "invalid-value"),  # own session (RFC 6241 §7.9: MUST fail)
            ("0", "invalid-value"),
            ("4294967296", "invalid-value"),
            ("9" * 200, "invalid-value"),
            ("-1", "invalid-value"),
            ("abc", "invalid-value"),
            ("\u00b2", "invalid-value"),  # "²".isdigit() is True, int("²") raises
            ("\u0663", "invalid-value"),  # ARABIC-INDIC DIGIT THREE
            ("", "missing-element"),
        ]:
            reply = await admin.rpc(f"<kill-session><session-id>{value}</session-id>"
                                    "</kill-session>")
            assert error_tags(reply) == [tag], value
        assert error_tags(await admin.rpc("<kill-session/>")) == ["missing-element"]
        reply = await admin.rpc("<commit><confirmed/><confirm-timeout>\u00b2</confirm-timeout>"
                                "</commit>")
        assert error_tags(reply) == ["invalid-value"]
        for target, tag in (("<bogus/>", "bad-element"), ("<url>file:///etc/passwd</url>",
                                                          "operation-not-supported")):
            reply = await admin.rpc(f"<lock><target>{target}</target></lock>")
            assert error_tags(reply) == [tag]
        assert error_tags(await admin.rpc("<lock><target><candidate/></target></lock>")) == [
            "lock-denied"]  # locking twice

        # close-session ends the session: a pipelined rpc after it is never answered.
        viewer.send(chunk(rpc("<close-session/>", 'message-id="c"')) + chunk(rpc(GET_HOSTNAME)))
        assert (await viewer.reply()).find(f"{{{NC}}}ok") is not None
        assert b"rpc-reply" not in await viewer.closed()

        # kill-session by the admin ends the victim, whose lock dies with it.
        assert not error_tags(await ops.rpc("<lock><target><running/></target></lock>"))
        reply = await admin.rpc(f"<kill-session><session-id>{ops.session_id}</session-id>"
                                "</kill-session>")
        assert reply.find(f"{{{NC}}}ok") is not None
        await ops.closed()
        assert not error_tags(await admin.rpc("<lock><target><running/></target></lock>"))
        assert not error_tags(await admin.rpc(GET_HOSTNAME))
    await assert_serves(server)


# --- N14: confirmed-commit abuse ------------------------------------------------------------------


def _hostname_edit(name: str) -> str:
    return ("<edit-config><target><candidate/></target><config>"
            f'<system xmlns="{SYS}"><host-name>{name}</host-name></system></config></edit-config>')


async def test_n14_cancel_commit_from_another_session(server: Flowtapd) -> None:
    original = await running(server)
    async with raw_session(server) as one, raw_session(server) as two, \
            raw_session(server, "viewer") as viewer:  # fmt: skip
        assert not error_tags(await one.rpc(_hostname_edit("n14-confirmed")))
        assert not error_tags(await one.rpc(
            "<commit><confirmed/><confirm-timeout>120</confirm-timeout></commit>"))
        pending = await running(server)
        assert b"n14-confirmed" in pending
        for body, tags in [
            ("<cancel-commit/>", {"operation-failed", "invalid-value", "in-use"}),
            ("<cancel-commit><persist-id>1</persist-id></cancel-commit>", {"invalid-value"}),
            ("<cancel-commit><persist-id/></cancel-commit>", {"invalid-value"}),
            ("<commit/>", {"in-use", "invalid-value", "operation-failed"}),
            ("<commit><persist-id>1</persist-id></commit>", {"in-use", "invalid-value"}),
            ("<commit><confirmed/><persist>mine</persist></commit>", {"in-use", "invalid-value"}),
        ]:
            reply = await two.rpc(body)
            assert set(error_tags(reply)) <= tags and error_tags(reply), body
            assert await running(server) == pending, body  # neither confirmed nor cancelled
        assert error_tags(await viewer.rpc("<cancel-commit/>")) == ["access-denied"]
        assert await running(server) == pending
        # The issuing session can cancel; running is back where it was.
        assert not error_tags(await one.rpc("<cancel-commit/>"))
        assert await running(server) == original
    await assert_serves(server)


async def test_n14_persist_id_guessing(server: Flowtapd) -> None:
    original = await running(server)
    token = "n14-" + secrets.token_hex(16)
    async with raw_session(server) as one:
        assert not error_tags(await one.rpc(_hostname_edit("n14-persisted")))
        assert not error_tags(await one.rpc(
            f"<commit><confirmed/><confirm-timeout>120</confirm-timeout><persist>{token}"
            "</persist></commit>"))
    # The issuing session is gone; the persisted commit survives it.
    pending = await running(server)
    assert b"n14-persisted" in pending
    guesses = ["", "0", "1", "n14", token[:-1], token + "0", token.upper(), f" {token}x",
               token[:8], "x" * 100_000]
    try:
        for user in ("admin", "ops"):
            async with raw_session(server, user) as two:
                for guess in guesses:
                    for body in (
                        f"<cancel-commit><persist-id>{guess}</persist-id></cancel-commit>",
                        f"<commit><persist-id>{guess}</persist-id></commit>",
                    ):
                        reply = await two.rpc(body)
                        assert error_tags(reply) == ["invalid-value"], (user, body[:80])
                        assert token.encode() not in etree.tostring(reply)
                for body in ("<cancel-commit/>", "<commit/>",
                             "<commit><confirmed/><confirm-timeout>1</confirm-timeout></commit>"):
                    assert error_tags(await two.rpc(body)), (user, body)
                assert await running(server) == pending
    finally:
        async with raw_session(server) as two:
            reply = await two.rpc(f"<cancel-commit><persist-id>{token}</persist-id>"
                                  "</cancel-commit>")
        assert not error_tags(reply)
    assert await running(server) == original
    await assert_serves(server)
