"""The X1 HTTPS listener as a commit hook: ``services flow-tap x1`` reconciled live.

- A listener exists while ``services flow-tap x1`` is configured; it moves without a gap like
  the SSH services' (:mod:`flowtap.sshd.listeners`, shared so that no two services of this
  process take one port). The TLS files are read when the ``x1`` settings change (only a user
  who may change them can then fail a commit because of them): a file that cannot be used fails
  the commit and the listener keeps its old material. New material applies to new connections;
  open ones carry on.
- A connection is plain TCP until its TLS handshake (bounded by ``HANDSHAKE_TIMEOUT``) with the
  context of that moment. The ADMF is its certificate's CN, and must be a configured login user
  whose class holds ``flow-tap-operation``, or every request gets 403 (before the message layer,
  as sipgate's and other NEs do) and the refusal is audit-logged. The message layer (``handle``)
  checks ``admfIdentifier`` and ``neIdentifier``.
- HTTP: ``POST /X1/NE`` with an XML body; other paths 404, other methods 405 (both before the
  body is read), other media types 415. The next request must have arrived whole within
  ``REQUEST_TIMEOUT`` of the previous answer (or of the handshake), or the connection closes:
  ADMFs send a Keepalive every 30 s or so (LI-HANDOVER.md 2.5). At most ``MAX_CONNECTIONS``
  connections, of which ``MAX_HANDSHAKING_PER_SOURCE`` in their handshake from one address, so
  that nobody without a certificate can hold the ADMF's slots.
- Removing ``x1`` closes the listener and every X1 connection; tasks stay (they belong to
  flow-tap, as DTCP criteria stay when the DTCP service goes). Nothing here is logged above DEBUG:
  who tasks the NE is LI data.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flowtap.audit import AuditRecord
from flowtap.auth.principal import Principal
from flowtap.config import model
from flowtap.errors import AuditError
from flowtap.sshd.listeners import Endpoint, Listener, ListenerSet, Move, endpoints
from flowtap.x1 import http
from flowtap.x1.tls import PATH, peer_common_name, server_context

LOG = logging.getLogger(__name__)
PERMISSION = "flow-tap-operation"
NE_PATH = "/X1/NE"
MEDIA_TYPES = ("application/xml", "text/xml")
MAX_BODY = 8 * 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 90.0
MAX_CONNECTIONS = 64
MAX_HANDSHAKING_PER_SOURCE = 8

# (the ADMF, its peer address, the request body) -> the response body (an X1 response document)
Handle = Callable[[Principal, str, bytes], Awaitable[bytes]]
Submit = Callable[[AuditRecord], Awaitable[None]]
# the TLS files X3 delivery uses (certificate, key, CAs), or None when X1 is removed
TlsFiles = Callable[[tuple[str, str, str] | None], None]


@dataclass(frozen=True, slots=True)
class Prepared:
    new: model.X1Service | None
    move: Move
    context: ssl.SSLContext | None


def settings_of(config: model.Config) -> model.X1Service | None:
    return config.flow_tap.x1 if config.flow_tap is not None else None


def wanted_endpoints(settings: model.X1Service | None) -> frozenset[Endpoint]:
    if settings is None:
        return frozenset()
    return endpoints((settings.address,) if settings.address else (), settings.port)


class X1Service:
    """Owns the X1 listeners, the TLS context and the open X1 connections."""

    name = "x1"

    def __init__(
        self,
        *,
        config: Callable[[], model.Config],
        handle: Handle,
        audit: Submit,
        on_tls: TlsFiles = lambda files: None,
    ) -> None:
        self._config = config
        self._handle = handle
        self._audit = audit
        self._on_tls = on_tls
        self.listeners = ListenerSet(self._bind, "X1", PATH, confidential=True)
        self.settings: model.X1Service | None = None
        self._context: ssl.SSLContext | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._handshaking: collections.Counter[str] = collections.Counter()
        self._ids = itertools.count(1)

    @property
    def port(self) -> int | None:
        return self.listeners.port

    # ---- commit hook -----------------------------------------------------------------------

    def validate(self, old: model.Config, new: model.Config) -> None:
        """Nothing beyond YANG: the files are checked in prepare, where they are read."""

    async def prepare(self, old: model.Config, new: model.Config) -> Prepared:
        settings = settings_of(new)
        context = self._context
        if settings is not None and (settings != settings_of(old) or context is None):
            context = server_context(settings)  # CommitFailed names the leaf; nothing bound yet
        move = await self.listeners.prepare(wanted_endpoints(settings))
        return Prepared(settings, move, context if settings is not None else None)

    async def commit(self, handle: Prepared) -> None:
        self.listeners.commit(handle.move)
        changed = handle.new != self.settings
        self.settings, self._context = handle.new, handle.context
        if changed:  # X3 connections present the same certificate (read and checked in prepare)
            new = handle.new
            self._on_tls(None if new is None else (
                new.certificate_file, new.private_key_file, new.client_ca_file))
        if handle.new is None:
            self.disconnect_all()

    async def abort(self, handle: Prepared) -> None:
        await self.listeners.abort(handle.move)

    async def stop(self) -> None:
        self.listeners.close()
        self.disconnect_all()
        if self._connections:
            await asyncio.wait(self._connections, timeout=1.0)

    def disconnect_all(self) -> None:
        for task in list(self._connections):
            task.cancel()

    # ---- connections -----------------------------------------------------------------------

    async def _bind(self, host: str | None, port: int) -> Listener:
        return await asyncio.start_server(self._accept, host, port, reuse_port=True,
                                          limit=http.MAX_HEAD + 1024)  # fmt: skip

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")
        peer = str(address[0]) if address else ""
        if (len(self._connections) >= MAX_CONNECTIONS or self._context is None
                or self._handshaking[peer] >= MAX_HANDSHAKING_PER_SOURCE):  # fmt: skip
            writer.transport.abort()
            return
        task = asyncio.get_running_loop().create_task(
            self._serve(reader, writer, self._context, peer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        peer: str,
    ) -> None:
        session = f"x1-{next(self._ids)}"
        self._handshaking[peer] += 1
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                await writer.start_tls(context)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            LOG.debug("X1 connection from %s: TLS handshake failed: %s", peer, exc)
            writer.transport.abort()
            await self._record(session, peer, None, "refused", f"TLS handshake: {_why(exc)}")
            return
        finally:
            self._handshaking[peer] -= 1
            if not self._handshaking[peer]:
                del self._handshaking[peer]
        try:
            admf = peer_common_name(writer.get_extra_info("ssl_object"))
            principal = self._principal(admf)
            if principal is None:
                await self._record(session, peer, admf, "refused", f"the certificate's CN is no "
                                   f"login user holding {PERMISSION}")  # fmt: skip
            await self._requests(reader, writer, principal, peer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            writer.close()

    def _principal(self, admf: str | None) -> Principal | None:
        """The login user named by the certificate, when it may task flow-tap."""
        config = self._config()
        user = config.users.get(admf) if admf else None
        if admf is None or user is None:
            return None
        permissions = config.class_permissions(user.login_class)
        if PERMISSION not in permissions:
            return None
        return Principal(admf, admf, user.login_class, permissions, "certificate")

    async def _requests(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        principal: Principal | None,
        peer: str,
    ) -> None:
        async def accept_head(request: http.Request, expects_continue: bool) -> None:
            if request.target.split("?", 1)[0] != NE_PATH:
                raise http.HttpError(404, f"no resource {request.target}; X1 is POST {NE_PATH}")
            if request.method != "POST":
                raise http.HttpError(405, f"{request.method}: X1 takes POST only")
            if principal is None:
                raise http.HttpError(403, "this certificate may not task flow-tap")
            if request.media_type not in MEDIA_TYPES:
                raise http.HttpError(415, "X1 messages are application/xml")
            if expects_continue:
                writer.write(http.CONTINUE)
                await writer.drain()

        while True:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    request = await http.read_request(reader, MAX_BODY, accept_head)
            except http.HttpError as exc:
                await _answer(writer, exc.status, exc.detail, extra=_allow(exc.status))
                return
            except TimeoutError:
                return  # idle or stalled: close without an answer, as web servers do
            if request is None:
                return
            assert principal is not None  # accept_head refused every request otherwise
            body = await self._handle(principal, peer, request.body)
            writer.write(http.response(200, body, content_type="application/xml; charset=UTF-8",
                                       close=not request.keep_alive))  # fmt: skip
            await writer.drain()
            if not request.keep_alive:
                return

    async def _record(
        self, session: str, peer: str, admf: str | None, result: str, reason: str
    ) -> None:
        record = AuditRecord(event="x1-session", result=result, principal=admf, peer=peer,
                             session=session, method="x1", reason=reason)  # fmt: skip
        with contextlib.suppress(AuditError):
            await self._audit(record)


async def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    detail: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> None:
    writer.write(http.response(status, f"{detail}\n".encode(), content_type="text/plain",
                               close=True, extra=extra))  # fmt: skip
    with contextlib.suppress(OSError):
        await writer.drain()


def _allow(status: int) -> tuple[tuple[str, str], ...]:
    return (("Allow", "POST"),) if status == 405 else ()


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no handshake within {HANDSHAKE_TIMEOUT:g} s"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return str(exc) or type(exc).__name__
