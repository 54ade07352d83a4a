"""One DTCP channel: decode -> check -> dispatch -> audit (durable) -> reply.

Transport-agnostic (reads from an ``asyncio.StreamReader``-like object, writes through
callables), so the SSH layer stays a thin shell.

Per message, in order:
1. A message the decoder refused gets its error reply (400, 501, 505; fatal ones then close).
2. ``Authentication-Info`` is checked with the key ``Juniper``. Under the ``strict`` policy a
   missing or wrong digest drops the request unanswered (497 is never sent); under ``lenient``
   (default) it is served and the verdict goes to the audit record.
3. ``Csource-ID`` and ``Seq`` are read (400 when missing or malformed). Seq is echoed and never
   enforced, as on Junos over SSH (D8: repeats and regressions are served).
4. A Csource-ID that is not the authenticated user is an unknown control source (D4): the
   request is not answered (499 is never sent, draft §4.4), it is audit-logged, and the channel
   is closed: one principal per session, no speaking for another mediation device.
5. The method's handler (:mod:`flowtap.dtcp.methods`).

A batch of pipelined messages is handled in arrival order and their audit records are chained
in that order; the batch then goes to the reply stage (:mod:`flowtap.dtcp.replying`), which,
batch after batch, waits until the records are durable, confirms every change, waits until the
changes are live in the dataplane (the intercept publisher's ``flush`` of the control source),
and writes the replies in order, while the channel already handles the next batch. A reply never
precedes its durable record, and a 200 OK to an ADD, DELETE or REFRESH never precedes the
dataplane change it reports. If the audit log cannot be written, the changes of the affected
requests are undone and each gets ``500 Server Internal Error`` (fail closed).

Requests whose cost grows with the table (LIST, DELETE, REFRESH) let other sessions run: between
two such messages of a batch, between the slices of their work (``methods.SLICE``) and between
the turns of writing a LIST reply, which is rendered piece by piece as the channel drains.
There, and between the turns of a pipeline, a session with much in progress lets the sessions
with little go first (:mod:`flowtap.dtcp.right_of_way`): each batch is registered there from
handled to answered.

The channel closes after the login class's ``idle-timeout`` (else ``idle_timeout``) without a
message, ``message_timeout`` after a
message started without its end arriving, after ``max_consecutive_errors`` protocol errors in a
row (400, 501, 505 or an unanswered 497: D1) and on a fatal framing error (D12). Criteria
outlive the channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from flowtap.auth.principal import Principal
from flowtap.config.model import HMAC_STRICT, Config
from flowtap.dtcp.auditing import LiAudit
from flowtap.dtcp.auth_info import verify_request
from flowtap.dtcp.fields import parse_identity, seq_of
from flowtap.dtcp.message import DecodeError, MessageDecoder, Request
from flowtap.dtcp.methods import (
    BULK_METHODS,
    HANDLERS,
    Outcome,
    RequestContext,
    grows_with_table,
    refused,
    status_line,
)
from flowtap.dtcp.replies import decode_error_reply
from flowtap.dtcp.replying import ReplyStage
from flowtap.dtcp.right_of_way import TURN, RightOfWay
from flowtap.dtcp.tuning import DtcpTuning
from flowtap.errors import DtcpError
from flowtap.intercept.registry import Registry
from flowtap.sshd.deadline import Reader
from flowtap.sshd.reading import End, read_messages

LOG = logging.getLogger(__name__)
PROTOCOL_ERRORS = frozenset({400, 497, 501, 505})
"""Statuses of a client that does not speak DTCP (or not with us); ``max_consecutive_errors`` of
them in a row close the channel. Refusals of well-formed requests (43x, 550, 551, 901) do not."""

class SessionHost(Protocol):
    """What the DTCP service shares with its sessions."""

    registry: Registry
    audit: LiAudit
    tuning: DtcpTuning
    right_of_way: RightOfWay

    def config(self) -> Config: ...

    @property
    def hmac_policy(self) -> str: ...


class _Messages:
    """The channel's :class:`MessageDecoder` as the read loop sees it."""

    def __init__(self, decoder: MessageDecoder) -> None:
        self._decoder = decoder

    def feed(self, data: bytes) -> list[Request | DecodeError]:
        return self._decoder.feed(data)

    @property
    def in_message(self) -> bool:
        return self._decoder.pending > 0

    @property
    def broken(self) -> bool:
        return self._decoder.failed


class DtcpSession:
    def __init__(
        self,
        host: SessionHost,
        principal: Principal,
        peer: str,
        session_id: str,
        write: Callable[[bytes], None],
        drain: Callable[[], Awaitable[None]],
        close: Callable[[], None],
    ) -> None:
        self.host = host
        self.principal = principal
        self.session_id = session_id
        self._write = write
        self._drain = drain
        self._close = close
        self._decoder = MessageDecoder()
        self._right_of_way = host.right_of_way
        self._ctx = RequestContext(host.registry, principal, peer, session_id, host.config,
                                   self._give_way)  # fmt: skip
        self._replies = ReplyStage(session_id, host.registry.publisher, self._send,
                                   self._send_in_pieces)
        self._errors = 0
        self.closing = False
        # the login class's idle-timeout (minutes), fixed at login as for NETCONF; else tuning's
        minutes = host.config().idle_timeouts.get(principal.login_class)
        tuning = host.tuning
        self.idle_timeout = minutes * tuning.idle_minute if minutes else tuning.idle_timeout

    async def run(self, reader: Reader) -> None:
        try:
            end = await read_messages(
                reader, _Messages(self._decoder), self._process, stopped=lambda: self.closing,
                idle_timeout=self.idle_timeout, message_timeout=self.host.tuning.message_timeout,
            )  # fmt: skip
            if end is End.READ_TIMEOUT:
                LOG.debug("%s: closed by timeout", self.session_id)
        except (ConnectionError, EOFError, asyncio.IncompleteReadError):
            LOG.debug("%s: connection lost", self.session_id)
        finally:
            # what was handled is settled even when the peer is gone: durable records are
            # confirmed, the others undone
            await self._replies.drain()
            self.close()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self._close()

    async def _give_way(self) -> None:
        await self._right_of_way.give_way(self.session_id)

    async def _process(self, items: Sequence[Request | DecodeError]) -> None:
        bulk = any(isinstance(i, Request) and grows_with_table(i) for i in items)
        answered = self._right_of_way.started(self.session_id, len(items), bulk=bulk)
        try:
            await self._give_way()  # a pipeline's next batch lets light sessions go first
            outcomes, close = await self._handle_all(items)
            records = [self.host.audit.submit(o.record) for o in outcomes]
        except BaseException:
            answered()
            raise
        streaming = any(o.reply is not None and not isinstance(o.reply, bytes) for o in outcomes)
        await self._replies.submit(outcomes, records, answered, settle=close or streaming)
        if close:
            self.close()

    async def _handle_all(self, items: Sequence[Request | DecodeError]
                          ) -> tuple[list[Outcome], bool]:  # fmt: skip
        """Handle ``items`` in order, up to the one after which the channel closes; their
        outcomes, and whether to close."""
        outcomes: list[Outcome] = []
        turn = time.perf_counter()
        for item in items:
            outcome = await self._handle(item)
            outcomes.append(outcome)
            if ((isinstance(item, Request) and item.method in BULK_METHODS)
                    or time.perf_counter() - turn > TURN):
                # ten pipelined LISTs, or a window of 64 ADDs: others run in between
                await self._give_way()
                await asyncio.sleep(0)
                turn = time.perf_counter()
            self._errors = self._errors + 1 if outcome.status in PROTOCOL_ERRORS else 0
            if outcome.close or self._errors >= self.host.tuning.max_consecutive_errors:
                return outcomes, True
        return outcomes, False

    async def _send(self, replies: list[bytes]) -> None:
        if replies:
            self._write(b"".join(replies))
            await self._drain()

    async def _send_in_pieces(self, pieces: Iterator[bytes]) -> bool:
        """A long reply (LIST): each piece is rendered when asked for; what one turn
        (``TURN``) renders is written at once, then other sessions run; ``drain`` also stops
        a client that does not read from piling up the whole reply in memory. False when
        rendering failed (a bug): half a reply cannot be taken back, so the channel is
        closed."""
        ended = False
        while not ended:
            turn = time.perf_counter()
            rendered: list[bytes] = []
            try:
                while time.perf_counter() - turn < TURN:
                    rendered.append(next(pieces))
            except StopIteration:
                ended = True
            except Exception as exc:  # never the request's values in the log: the type only
                LOG.error("%s: internal error while writing a reply: %s", self.session_id,
                          type(exc).__name__)  # fmt: skip
                self.close()
                return False
            if rendered:
                self._write(b"".join(rendered))
                await self._drain()
            if not ended:
                await self._give_way()
                await asyncio.sleep(0)
        return True

    async def _handle(self, item: Request | DecodeError) -> Outcome:
        ctx = self._ctx
        if isinstance(item, DecodeError):
            reply = decode_error_reply(item, datetime.now())
            record = ctx.record(item.method, status_line(item.status),
                                reason=f"seq={item.seq}; {item.detail}")  # fmt: skip
            return Outcome(item.status, reply, record, item.version or "0.7", item.seq,
                           close=item.fatal)  # fmt: skip
        request = item
        verdict = "ok" if verify_request(request) else (
            "missing" if request.authentication_info is None else "mismatch")  # fmt: skip
        note = f"seq={seq_of(request)}; hmac={verdict}"
        if verdict != "ok" and self.host.hmac_policy == HMAC_STRICT:
            record = ctx.record(request.method, "497 Invalid Authentication (not sent)",
                                reason=note)  # fmt: skip
            return Outcome(497, None, record, request.version)
        try:
            ident = parse_identity(request)
        except DtcpError as error:
            return refused(ctx, request, None, note, error)
        if ident.csource_id != self.principal.user:
            record = ctx.record(
                request.method, "499 Unknown Control Source Identifier (not sent)",
                reason=f"{note}; Csource-ID {ident.csource_id!r} is not the SSH user",
            )  # fmt: skip
            return Outcome(499, None, record, request.version, ident.seq, close=True)
        try:
            return await HANDLERS[request.method](ctx, request, ident, note)
        except Exception as exc:  # a bug: answer 500, never leak the request into logs
            LOG.error("%s: internal error in %s: %s", self.session_id, request.method,
                      type(exc).__name__)  # fmt: skip
            internal = DtcpError(500, "Server Internal Error", "internal error")
            return refused(ctx, request, ident, note, internal)
