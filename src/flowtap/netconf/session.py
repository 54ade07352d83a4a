"""One NETCONF session: hello exchange, framing switch, the RPC loop, and notifications.

Transport-agnostic: it reads from an ``asyncio.StreamReader``-like object and writes through a
callable, so the SSH layer stays a thin shell.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable, Sequence

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.xmlutil import element
from flowtap.errors import ConfigError, ConfigErrors, NetconfRpcError, SessionTerminated
from flowtap.netconf import junos_ops, nmda_ops, ops, rollback_ops, session_ops
from flowtap.netconf.context import ServerContext
from flowtap.netconf.engine_errors import rpc_errors
from flowtap.netconf.framing import FrameDecoder, FramingError, encode_chunked, encode_eom
from flowtap.netconf.replies import NC_NS, error_reply, reply
from flowtap.netconf.state import state_elements
from flowtap.netconf.xmlparse import message_id, parse_message
from flowtap.sshd.deadline import Reader, seconds_from_env
from flowtap.sshd.reading import Backpressure, End, read_messages

LOG = logging.getLogger(__name__)


BASE_10 = "urn:ietf:params:netconf:base:1.0"
BASE_11 = "urn:ietf:params:netconf:base:1.1"
HELLO_TIMEOUT = seconds_from_env("FLOWTAP_NETCONF_HELLO_TIMEOUT", 60.0)
IDLE_TIMEOUT = 3600.0  # without a login-class idle-timeout
IDLE_MINUTE = seconds_from_env("FLOWTAP_NETCONF_IDLE_MINUTE", 60.0)  # tests shorten it
# From the first byte of a message to its end, however the bytes trickle in (N6, slowloris).
PARTIAL_MESSAGE_TIMEOUT = seconds_from_env("FLOWTAP_NETCONF_PARTIAL_TIMEOUT", 60.0)
# Replies a peer has not read yet: above OUTPUT_HIGH_WATER the session stops reading requests
# until the peer reads (at most PARTIAL_MESSAGE_TIMEOUT, then the session ends), so a client that
# pipelines requests and never reads cannot make the server buffer replies without bound.
# Notifications are not requests: past OUTPUT_LIMIT unread, the subscriber's session ends.
OUTPUT_HIGH_WATER = 1024 * 1024
OUTPUT_LIMIT = 16 * 1024 * 1024

Handler = Callable[["Session", etree._Element], Awaitable[list[etree._Element | bytes] | None]]

HANDLERS: dict[str, Handler] = {
    "get": ops.get,
    "get-config": ops.get_config,
    "edit-config": ops.edit_config,
    "copy-config": ops.copy_config,
    "delete-config": ops.delete_config,
    "lock": ops.lock,
    "unlock": ops.unlock,
    "discard-changes": ops.discard_changes,
    "validate": ops.validate,
    "commit": ops.commit,
    "cancel-commit": ops.cancel_commit,
    "close-session": session_ops.close_session,
    "kill-session": session_ops.kill_session,
    # the Junos XML API subset: ncclient's Junos handler sends it in the base namespace
    **junos_ops.HANDLERS,
}
NAMESPACED_HANDLERS: dict[tuple[str, str], Handler] = {
    ("urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring", "get-schema"): ops.get_schema,
    ("urn:ietf:params:xml:ns:netconf:notification:1.0", "create-subscription"):
        session_ops.create_subscription,
    ("urn:flowtap:yang:system", "get-rollback-information"):
        rollback_ops.get_rollback_information,
    ("urn:flowtap:yang:system", "rollback"): rollback_ops.load_rollback,
    (ops.NMDA_NS, "get-data"): nmda_ops.get_data,
    (ops.NMDA_NS, "edit-data"): nmda_ops.edit_data,
}  # fmt: skip


class _Frames:
    """The session's :class:`FrameDecoder` as the read loop sees it: the messages completed
    before a framing error are answered, and the session ends at the next read."""

    def __init__(self, decoder: FrameDecoder) -> None:
        self._decoder = decoder

    def feed(self, data: bytes) -> list[bytes]:
        try:
            return self._decoder.feed(data)
        except FramingError as exc:
            if not exc.completed:
                raise
            return exc.completed

    @property
    def in_message(self) -> bool:
        return self._decoder.in_message

    @property
    def broken(self) -> bool:
        return self._decoder.broken


class Session:
    def __init__(
        self,
        ctx: ServerContext,
        principal: Principal,
        peer: str,
        write: Callable[[bytes], None],
        close: Callable[[], None],
        *,
        unsent: Callable[[], int] = lambda: 0,
        drain: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``unsent`` tells how many written bytes the peer has not taken yet; ``drain`` waits
        until it has taken most of them."""
        self.ctx = ctx
        self.principal = principal
        self.peer = peer
        self._write = write
        self._close = close
        self._unsent = unsent
        self._drain = drain
        self.session_id = ctx.next_session_id()
        self.login_time = datetime.datetime.now(datetime.UTC)
        self.decoder = FrameDecoder(ctx.max_message)
        self.chunked = False
        self.closing = False
        self.subscribed = False
        self.in_rpcs = 0
        self.in_bad_rpcs = 0
        self.out_rpc_errors = 0
        self.out_notifications = 0
        self._hello_seen = False
        minutes = ctx.txn.config.idle_timeouts.get(principal.login_class)
        # the login class's idle-timeout, fixed at login as Junos does; else an hour
        self.idle_timeout = minutes * IDLE_MINUTE if minutes else IDLE_TIMEOUT

    # -- output ----------------------------------------------------------------------------------

    def send(self, message: bytes) -> None:
        self._write(encode_chunked(message) if self.chunked else encode_eom(message))

    def require(self, *flags: str) -> None:
        """Refuse unless the login class holds one of ``flags``, naming them: never called with
        a lawful-intercept bit, so the name tells nothing the user could not know."""
        if not self.principal.has(*flags):
            raise NetconfRpcError(
                tag="access-denied",
                message=f"Access denied: the login class lacks the {' or '.join(flags)} permission",
            )

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, reader: Reader) -> None:
        self.ctx.sessions[self.session_id] = self
        self.ctx.stats.in_sessions += 1
        try:
            self.send(self._hello())
            # The hello is read on its own: the framing of what follows depends on it, and it
            # has HELLO_TIMEOUT to arrive. Then requests, one at a time, with back-pressure.
            end = await read_messages(
                reader, _Frames(self.decoder), self._receive_hello,
                stopped=lambda: self.closing or self._hello_seen,
                idle_timeout=self.idle_timeout, message_timeout=PARTIAL_MESSAGE_TIMEOUT,
                first_message_timeout=HELLO_TIMEOUT,
            )  # fmt: skip
            if end is End.READ_TIMEOUT:
                raise SessionTerminated("no hello")
            if end is End.STOPPED and not self.closing:
                end = await read_messages(
                    reader, _Frames(self.decoder), self._handle_one,
                    stopped=lambda: self.closing,
                    idle_timeout=self.idle_timeout, message_timeout=PARTIAL_MESSAGE_TIMEOUT,
                    one_at_a_time=True, backpressure=self._backpressure(),
                )  # fmt: skip
            if end is not End.STOPPED:
                raise SessionTerminated(end.value)
        except SessionTerminated as exc:
            LOG.debug("session %d terminated: %s", self.session_id, exc)
            if not self.closing:
                self.ctx.stats.dropped_sessions += 1
        except (asyncio.IncompleteReadError, ConnectionError, EOFError):
            self.ctx.stats.dropped_sessions += 1
        finally:
            await self.end()

    def _backpressure(self) -> Backpressure | None:
        if self._drain is None:
            return None
        return Backpressure(self._unsent, self._drain, OUTPUT_HIGH_WATER, PARTIAL_MESSAGE_TIMEOUT)

    async def end(self) -> None:
        if self.ctx.sessions.pop(self.session_id, None) is None:
            return
        self.closing = True
        await self.ctx.datastores.release_session(self.session_id, self.principal)
        self._close()

    def _hello(self) -> bytes:
        hello = element(f"{{{NC_NS}}}hello", NC_NS)
        caps = etree.SubElement(hello, f"{{{NC_NS}}}capabilities")
        for uri in self.ctx.library.capabilities:
            etree.SubElement(caps, f"{{{NC_NS}}}capability").text = uri
        etree.SubElement(hello, f"{{{NC_NS}}}session-id").text = str(self.session_id)
        return etree.tostring(hello)

    async def _receive_hello(self, messages: Sequence[bytes]) -> None:
        self._hello_seen = True
        first, rest = messages[0], list(messages[1:])
        try:
            hello = parse_message(first)
        except NetconfRpcError:
            self.ctx.stats.in_bad_hellos += 1
            raise SessionTerminated("malformed hello") from None
        caps = [(c.text or "").strip() for c in hello.iter(f"{{{NC_NS}}}capability")]
        if (
            hello.tag != f"{{{NC_NS}}}hello"
            or hello.find(f"{{{NC_NS}}}session-id") is not None
            or not ({BASE_10, BASE_11} & set(caps))
        ):
            self.ctx.stats.in_bad_hellos += 1
            raise SessionTerminated("invalid client hello")  # RFC 6241 §8.1, N1/N2
        try:
            if BASE_11 in caps:
                self.chunked = True
                rest += self.decoder.start_chunked()
            else:
                rest += self.decoder.feed(b"")
        except FramingError as exc:
            if not exc.completed:
                raise
            rest += exc.completed  # answered; the next read ends the session
        for message in rest:  # sent by a client that did not wait for our hello
            await self.handle(message)

    # -- one message -----------------------------------------------------------------------------

    async def _handle_one(self, messages: Sequence[bytes]) -> None:
        (message,) = messages
        await self.handle(message)

    async def handle(self, message: bytes) -> None:
        self.in_rpcs += 1
        self.ctx.stats.in_rpcs += 1
        attrs: dict[str, str] = {}
        try:
            rpc = parse_message(message)
            if rpc.tag == f"{{{NC_NS}}}hello":
                raise SessionTerminated("second hello")  # N1
            if rpc.tag != f"{{{NC_NS}}}rpc":
                raise NetconfRpcError(
                    tag="unknown-element" if etree.QName(rpc).namespace == NC_NS
                    else "unknown-namespace",
                    type="protocol", message="Expected <rpc>",
                    info={"bad-element": etree.QName(rpc).localname},
                )  # fmt: skip
            attrs = {str(k): str(v) for k, v in rpc.attrib.items()}
            message_id(rpc)
            body = await self.dispatch(rpc)
            self.send(reply(attrs, body))
        except NetconfRpcError as exc:
            self._count_error()
            self.send(error_reply(attrs, [exc]))
        except (ConfigError, ConfigErrors) as exc:  # the commit engine refused the request
            self._count_error()
            self.send(error_reply(attrs, rpc_errors(exc)))
        except (SessionTerminated, asyncio.CancelledError):
            raise
        except Exception:
            # a bug must cost one rpc-error, not the session; the traceback names no value
            LOG.exception("session %d: unexpected failure in an RPC", self.session_id)
            self._count_error()
            self.send(error_reply(attrs, [NetconfRpcError(
                tag="operation-failed", message="Internal error; see the server log")]))

    def _count_error(self) -> None:
        self.in_bad_rpcs += 1
        self.out_rpc_errors += 1
        self.ctx.stats.in_bad_rpcs += 1
        self.ctx.stats.out_rpc_errors += 1

    async def dispatch(self, rpc: etree._Element) -> list[etree._Element | bytes] | None:
        operations = [c for c in rpc if isinstance(c.tag, str)]
        if len(operations) != 1:
            raise NetconfRpcError(
                tag="missing-element" if not operations else "bad-element",
                type="protocol", message="An <rpc> must hold exactly one operation",
                info={"bad-element": "rpc"},
            )  # fmt: skip
        op = operations[0]
        qname = etree.QName(op)
        namespace = qname.namespace or ""
        handler = (
            HANDLERS.get(qname.localname) if namespace == NC_NS
            else NAMESPACED_HANDLERS.get((namespace, qname.localname)) if namespace
            # PyEZ (and ncclient's commit-configuration) send the Junos XML API in no namespace;
            # any other operation without one is refused below as a missing namespace
            else junos_ops.HANDLERS.get(qname.localname)
        )  # fmt: skip
        if handler is None:
            known = namespace == NC_NS or any(ns == namespace for ns, _ in NAMESPACED_HANDLERS)
            if known:
                message = f"Operation {qname.localname!r} is not supported"
            elif not namespace:
                message = (f"Operation {qname.localname!r} has no namespace: NETCONF operations "
                           f"are in {NC_NS}")  # fmt: skip
            else:
                message = f"No operation {qname.localname!r} in namespace {namespace!r}"
            raise NetconfRpcError(
                tag="operation-not-supported" if known else "unknown-namespace",
                type="protocol",
                message=message,
                info={"bad-element": qname.localname}
                | ({} if known else {"bad-namespace": namespace}),
            )
        ops.check_parameters(op)
        return await handler(self, op)

    # -- state and notifications -----------------------------------------------------------------

    def state_data(self) -> list[etree._Element]:
        return state_elements(self)

    def notify(self, event: etree._Element) -> None:
        if self.closing:
            return
        notification = element(
            "{urn:ietf:params:xml:ns:netconf:notification:1.0}notification",
            "urn:ietf:params:xml:ns:netconf:notification:1.0",
        )
        etree.SubElement(notification, "{urn:ietf:params:xml:ns:netconf:notification:1.0}eventTime"
                         ).text = datetime.datetime.now(datetime.UTC).isoformat()  # fmt: skip
        notification.append(event)
        self.out_notifications += 1
        self.ctx.stats.out_notifications += 1
        if self._unsent() > OUTPUT_LIMIT:
            LOG.debug("session %d: notifications not read; closed", self.session_id)
            self.closing = True
            self._close()  # the read loop sees the end and releases the session
            return
        self.send(etree.tostring(notification))
