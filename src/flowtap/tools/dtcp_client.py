"""Mediation-device toolkit: DTCP requests and replies over the SSH subsystem ``flow-tap-dtcp``.

Speaks plain Junos DTCP, nothing flowtap-specific: requests are ``METHOD DTCP/x.y``, CRLF lines,
``Csource-ID`` (the SSH user unless told otherwise), the caller's fields, ``Seq`` and an
``Authentication-Info`` HMAC-SHA1 keyed ``Juniper``, then an empty line, exactly as Juniper's
own test clients write them; several requests share one channel. Replies are parsed and their
``AUTHENTICATION-INFO`` verified with the same key.

- :func:`build_request`, :class:`ReplyDecoder` and :func:`parse_message_file` are sans-I/O.
- :class:`AsyncDtcpClient` (asyncio, asyncssh) and :class:`DtcpClient` (blocking, runs the
  asyncio client on a private event loop thread) connect with a password or keys.

Example::

    async with await AsyncDtcpClient.connect("router", username="md1", password=pw) as md:
        reply = await md.request("ADD", [("Cdest-ID", "cd1"), ...,
                                         ("Flags", "STATIC")])
        print(reply.status, reply.criteria_id)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import asyncssh

from flowtap.dtcp.auth_info import SSH_KEY, Signer
from flowtap.errors import DtcpClientError

DEFAULT_PORT = 32001
SUBSYSTEM = "flow-tap-dtcp"
DEFAULT_VERSION = "0.7"
MAX_REPLY = 64 * 1024 * 1024
Fields = Sequence[tuple[str, str]]
_STATUS = re.compile(r"DTCP/([0-9]+\.[0-9]+) ([0-9]{3}) ?(.*)")
_REQUEST_LINE = re.compile(r"[A-Za-z]+ DTCP/[0-9]+\.[0-9]+")
_T = TypeVar("_T")


def build_request(
    method: str,
    fields: Fields = (),
    *,
    seq: int,
    csource_id: str | None = None,
    version: str = DEFAULT_VERSION,
    key: bytes = SSH_KEY,
) -> bytes:
    """One signed request: request line, ``Csource-ID`` (when given), ``fields``, ``Seq``."""
    lines = [f"{method} DTCP/{version}"]
    if csource_id is not None:
        lines.append(f"Csource-ID: {csource_id}")
    lines += [f"{name}: {value}" for name, value in fields]
    lines.append(f"Seq: {seq}")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError("a DTCP field cannot contain a line break (use \\ddd escapes)")
    head = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    return Signer(key).sign(head, "Authentication-Info")


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply as received; ``verified`` tells whether its HMAC matched the key."""

    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    raw: bytes
    verified: bool

    @property
    def status_line(self) -> str:
        return f"DTCP/{self.version} {self.status} {self.reason}"

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        key = name.lower()
        return next((v for n, v in self.headers if n.lower() == key), None)

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self.headers if n.lower() == key]

    def _int(self, name: str) -> int | None:
        value = self.get(name)
        return int(value) if value is not None and value.isdigit() else None

    @property
    def seq(self) -> int | None:
        return self._int("seq")

    @property
    def criteria_id(self) -> int | None:
        return self._int("criteria-id")

    @property
    def criteria_count(self) -> int | None:
        return self._int("criteria-count")

    def entries(self) -> list[dict[str, str]]:
        """LIST entries: each starts at a CRITERIA-ID header; names upper-cased."""
        rows: list[dict[str, str]] = []
        for name, value in self.headers:
            upper = name.upper()
            if upper == "CRITERIA-ID":
                rows.append({})
            if rows and upper not in rows[-1]:
                rows[-1][upper] = value
        return rows


def parse_reply(message: bytes, signer: Signer | None = None) -> Reply:
    """Parse one reply (ending with its empty line).

    Raises:
        DtcpClientError: not a DTCP status line.
    """
    signer = signer or Signer(SSH_KEY)
    text = message.decode("utf-8", errors="replace")
    lines = text.split("\r\n")
    matched = _STATUS.fullmatch(lines[0])
    if matched is None:
        raise DtcpClientError("reply does not start with a DTCP status line")
    headers: list[tuple[str, str]] = []
    offset = len(lines[0].encode("utf-8")) + 2
    verified = False
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        headers.append((name, value))
        if name.lower() == "authentication-info":
            verified = signer.verify(message[:offset], value)
            break
        offset += len(line.encode("utf-8")) + 2
    return Reply(matched.group(1), int(matched.group(2)), matched.group(3), tuple(headers),
                 message, verified)  # fmt: skip


class ReplyDecoder:
    """Splits a reply stream at its empty lines."""

    def __init__(self, key: bytes = SSH_KEY, max_reply: int = MAX_REPLY) -> None:
        self._signer = Signer(key)
        self._max = max_reply
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Reply]:
        self._buf += data
        replies = []
        while (end := self._buf.find(b"\r\n\r\n")) >= 0:
            message = bytes(self._buf[: end + 4])
            del self._buf[: end + 4]
            replies.append(parse_reply(message, self._signer))
        if len(self._buf) > self._max:
            raise DtcpClientError("reply too large")
        return replies


@dataclass(frozen=True, slots=True)
class Message:
    """A request read from a file: its method, version and fields (Seq kept when given)."""

    method: str
    version: str
    fields: tuple[tuple[str, str], ...]
    seq: int | None


def parse_message_file(text: str) -> list[Message]:
    """Requests separated by empty lines (LF or CRLF), like flowtap-client.pl's input files.
    ``Authentication-Info`` lines are dropped (the client signs); ``Csource-ID`` is a field.

    Raises:
        ValueError: a message does not start with ``METHOD DTCP/x.y`` or has a line without
            a colon.
    """
    messages = []
    for block in re.split(r"\r?\n[ \t]*\r?\n", text.strip()):
        lines = [line.rstrip("\r") for line in block.splitlines() if line.strip()]
        if not lines:
            continue
        if _REQUEST_LINE.fullmatch(lines[0].strip()) is None:
            raise ValueError(f"not a DTCP request line: {lines[0][:40]!r}")
        method, _, protocol = lines[0].strip().partition(" ")
        fields: list[tuple[str, str]] = []
        seq = None
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"{method}: line without a colon")
            name, value = name.strip(), value.strip()
            if name.lower() == "authentication-info":
                break
            if name.lower() == "seq" and value.isdigit():
                seq = int(value)
                continue
            fields.append((name, value))
        messages.append(Message(method, protocol[5:], tuple(fields), seq))
    return messages


class _Watcher(asyncssh.SSHClient):
    """Keeps the reason the server gave for ending the connection."""

    def __init__(self) -> None:
        self.lost: Exception | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc


class AsyncDtcpClient:
    """One SSH connection with one ``flow-tap-dtcp`` channel; requests are answered in order."""

    def __init__(
        self,
        conn: asyncssh.SSHClientConnection,
        process: asyncssh.SSHClientProcess[bytes],
        username: str,
        *,
        seq: int = 1,
        csource_id: str | None = None,
        version: str = DEFAULT_VERSION,
        key: bytes = SSH_KEY,
    ) -> None:
        self.conn = conn
        self.process = process
        self.csource_id = csource_id or username
        self.version = version
        self.key = key
        self.next_seq = seq
        self._decoder = ReplyDecoder(key)
        self._replies: list[Reply] = []
        self._watcher = _Watcher()

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        username: str,
        password: str | None = None,
        client_keys: Sequence[str] | None = None,
        known_hosts: Any = (),
        seq: int = 1,
        csource_id: str | None = None,
        version: str = DEFAULT_VERSION,
        key: bytes = SSH_KEY,
        **ssh_options: Any,
    ) -> AsyncDtcpClient:
        """Connect and open the subsystem. ``known_hosts`` follows asyncssh (``()`` = the
        user's ``~/.ssh/known_hosts``, None = no host key check)."""
        ssh_options.setdefault("agent_path", None)
        watcher = _Watcher()
        conn, _ = await asyncssh.create_connection(
            lambda: watcher, host, port, username=username, password=password,
            client_keys=client_keys, known_hosts=known_hosts, **ssh_options,
        )  # fmt: skip
        try:
            process = await conn.create_process(subsystem=SUBSYSTEM, encoding=None)
        except Exception:
            conn.close()
            with contextlib.suppress(Exception):
                # asyncssh tells the owner why the connection ended one loop turn after it
                # fails the channel open: wait for that, bounded
                await asyncio.wait_for(conn.wait_closed(), 2.0)
            if isinstance(watcher.lost, asyncssh.DisconnectError):
                raise watcher.lost from None  # the server's reason, not "connection closed"
            raise
        except BaseException:
            conn.close()
            raise
        client = cls(conn, process, username, seq=seq, csource_id=csource_id, version=version,
                     key=key)  # fmt: skip
        client._watcher = watcher
        return client

    @property
    def disconnect_reason(self) -> str | None:
        """Why the server ended the connection, when it said so (a refusal after login)."""
        lost = self._watcher.lost
        if isinstance(lost, asyncssh.DisconnectError) and lost.reason:
            return str(lost.reason)
        return None

    def build(self, method: str, fields: Fields = (), *, seq: int | None = None,
              version: str | None = None) -> bytes:  # fmt: skip
        """A signed request with this client's Csource-ID and the next Seq."""
        if seq is None:
            seq = self.next_seq
        self.next_seq = seq + 1
        return build_request(method, fields, seq=seq, csource_id=self.csource_id,
                             version=version or self.version, key=self.key)  # fmt: skip

    async def request(self, method: str, fields: Fields = (), *, seq: int | None = None,
                      version: str | None = None, timeout: float = 30.0) -> Reply:  # fmt: skip
        return (await self.send(self.build(method, fields, seq=seq, version=version), 1,
                                timeout=timeout))[0]  # fmt: skip

    async def pipeline(self, requests: Iterable[bytes], timeout: float = 60.0) -> list[Reply]:
        """Write every request at once, then read one reply per request."""
        batch = list(requests)
        return await self.send(b"".join(batch), len(batch), timeout=timeout)

    async def send(self, data: bytes, replies: int, timeout: float = 30.0) -> list[Reply]:
        """Write raw bytes and read ``replies`` replies (fewer if the channel closes)."""
        self.process.stdin.write(data)
        return await self.read(replies, timeout)

    async def read(self, count: int, timeout: float = 30.0) -> list[Reply]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._replies) < count:
            chunk = await asyncio.wait_for(self.process.stdout.read(65536),
                                           max(0.0, deadline - loop.time()))  # fmt: skip
            if not chunk:
                break
            self._replies += self._decoder.feed(chunk)
        out, self._replies = self._replies[:count], self._replies[count:]
        return out

    async def add(self, fields: Fields) -> Reply:
        return await self.request("ADD", fields)

    async def delete(self, fields: Fields) -> Reply:
        return await self.request("DELETE", fields)

    async def list(self, fields: Fields = (("Flags", "Both"),)) -> Reply:
        return await self.request("LIST", fields)

    async def refresh(self, fields: Fields) -> Reply:
        return await self.request("REFRESH", fields)

    async def noop(self) -> Reply:
        return await self.request("NOOP")

    async def close(self) -> None:
        self.process.stdin.write_eof()
        self.process.close()
        self.conn.close()
        await self.conn.wait_closed()

    async def __aenter__(self) -> AsyncDtcpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class DtcpClient:
    """Blocking client: the asyncio client on a private event loop thread."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dtcp-client",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        try:
            self._client = self._call(AsyncDtcpClient.connect(host, port, **options))
        except BaseException:
            self._stop()
            raise

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    @property
    def next_seq(self) -> int:
        return self._client.next_seq

    def build(self, method: str, fields: Fields = (), **kw: Any) -> bytes:
        return self._client.build(method, fields, **kw)

    def request(self, method: str, fields: Fields = (), **kw: Any) -> Reply:
        return self._call(self._client.request(method, fields, **kw))

    def pipeline(self, requests: Iterable[bytes], timeout: float = 60.0) -> list[Reply]:
        return self._call(self._client.pipeline(list(requests), timeout))

    def send(self, data: bytes, replies: int, timeout: float = 30.0) -> list[Reply]:
        return self._call(self._client.send(data, replies, timeout))

    def close(self) -> None:
        try:
            self._call(self._client.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> DtcpClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()
