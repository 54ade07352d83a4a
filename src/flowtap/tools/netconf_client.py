"""A small asyncio NETCONF-over-SSH client (RFC 6242 framing, one RPC in flight).

For benchmarks, tests and scripts that need raw speed: ncclient polls its send queue every
100 ms, so it cannot measure a server. Replies come back as lxml elements.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import asyncssh
from lxml import etree

from flowtap.errors import RpcFailed
from flowtap.netconf.framing import FrameDecoder, encode_chunked, encode_eom

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
_HELLO = (
    f'<hello xmlns="{NC_NS}"><capabilities>'
    "<capability>urn:ietf:params:netconf:base:1.0</capability>"
    "<capability>urn:ietf:params:netconf:base:1.1</capability>"
    "</capabilities></hello>"
).encode()


def _failed(reply: etree._Element) -> RpcFailed:
    return RpcFailed(reply, [e.text or "" for e in reply.iter(f"{{{NC_NS}}}error-tag")])


class NetconfClient:
    def __init__(self) -> None:
        self.conn: asyncssh.SSHClientConnection | None = None
        self.writer: asyncssh.SSHWriter[bytes] | None = None
        self.reader: asyncssh.SSHReader[bytes] | None = None
        self.decoder = FrameDecoder(64 * 1024 * 1024)
        self.chunked = False
        self.session_id = 0
        self.capabilities: list[str] = []
        self._ids = itertools.count(1)
        self._pending: list[bytes] = []

    @classmethod
    async def connect(
        cls, host: str, port: int, username: str, password: str | None = None, *,
        client_keys: Sequence[str] | None = None, known_hosts: Any = None,
    ) -> NetconfClient:  # fmt: skip
        """Log in and exchange hellos. ``known_hosts`` follows asyncssh (None: no host key
        check, as benchmarks and tests on loopback want; ``()``: the user's known_hosts)."""
        client = cls()
        client.conn = await asyncssh.connect(
            host, port, username=username, password=password, known_hosts=known_hosts,
            client_keys=client_keys, agent_path=None,
        )  # fmt: skip
        client.writer, client.reader, _ = await client.conn.open_session(
            subsystem="netconf", encoding=None
        )
        client.writer.write(encode_eom(_HELLO))
        hello = etree.fromstring(await client._receive())
        client.capabilities = [c.text or "" for c in hello.iter(f"{{{NC_NS}}}capability")]
        client.session_id = int(hello.findtext(f"{{{NC_NS}}}session-id") or 0)
        if "urn:ietf:params:netconf:base:1.1" in client.capabilities:
            client.chunked = True
            client._pending += client.decoder.start_chunked()
        else:
            client._pending += client.decoder.feed(b"")
        return client

    async def _receive(self) -> bytes:
        assert self.reader is not None
        while not self._pending:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("session closed")
            self._pending += self.decoder.feed(data)
        return self._pending.pop(0)

    def _send_rpc(self, body: str | bytes) -> None:
        assert self.writer is not None
        payload = body.encode() if isinstance(body, str) else body
        head = f'<rpc xmlns="{NC_NS}" message-id="{next(self._ids)}">'.encode()
        msg = head + payload + b"</rpc>"
        self.writer.write(encode_chunked(msg) if self.chunked else encode_eom(msg))

    async def rpc(self, body: str | bytes, *, check: bool = True) -> etree._Element:
        self._send_rpc(body)
        while True:
            reply = etree.fromstring(await self._receive())
            if reply.tag == f"{{{NC_NS}}}rpc-reply":
                break
        if check and reply.find(f"{{{NC_NS}}}rpc-error") is not None:
            raise _failed(reply)
        return reply

    async def raw_rpc(self, body: str | bytes) -> bytes:
        """The reply's bytes, unparsed (benchmarks: the client must cost as little as possible).
        Raises ``RpcFailed`` when it holds an rpc-error; assumes no notifications are coming."""
        self._send_rpc(body)
        reply = await self._receive()
        if b"rpc-error" in reply:
            parsed = etree.fromstring(reply)
            if parsed.find(f"{{{NC_NS}}}rpc-error") is not None:
                raise _failed(parsed)
        return reply

    async def edit_candidate(self, config: str) -> etree._Element:
        return await self.rpc(
            f"<edit-config><target><candidate/></target><config>{config}</config></edit-config>"
        )

    async def commit(self) -> etree._Element:
        return await self.rpc("<commit/>")

    async def get_config(
        self, source: str = "running", subtree: str | None = None
    ) -> etree._Element:
        flt = f'<filter type="subtree">{subtree}</filter>' if subtree else ""
        return await self.rpc(f"<get-config><source><{source}/></source>{flt}</get-config>")

    async def close(self) -> None:
        if self.conn is None:
            return
        with contextlib.suppress(ConnectionError, asyncssh.Error, OSError):
            await self.rpc("<close-session/>", check=False)
        self.conn.close()
        await self.conn.wait_closed()
        self.conn = None

    async def __aenter__(self) -> NetconfClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
