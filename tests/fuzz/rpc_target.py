"""Fuzz target: one NETCONF message through the hardened XML parser and the RPC dispatch.

The input is the message bytes as the framer would deliver them. They go through
``Session.handle`` of an in-process server (``netconf_server``): parse_message, the <rpc> checks,
dispatch to the operation, the operation on real datastores, and the reply. State carries over
from one input to the next as in a long session (edits, locks, commits), and is reset every few
thousand inputs.

Documented outcomes: an <rpc-reply> (data, <ok/> or <rpc-error>), or ``SessionTerminated`` for a
second <hello>. A crash is an exception the session had to turn into "Internal error" (it logs
it; the harness re-raises it), anything escaping ``handle``, or a reply that is not one
well-formed <rpc-reply> echoing the request's message-id.
"""

from __future__ import annotations

from lxml import etree

from flowtap.errors import NetconfRpcError, SessionTerminated
from flowtap.netconf.framing import EOM
from flowtap.netconf.xmlparse import RPC, RPC_REPLY, parse_message
from tests.fuzz.netconf_server import shared_server
from tests.fuzz.support import check

# Replies are ours, so they may be larger or deeper than what we accept from clients.
_REPLY_PARSER = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)


def _request_message_id(data: bytes) -> str | None:
    try:
        root = parse_message(data)
    except NetconfRpcError:
        return None
    return root.get("message-id") if root.tag == RPC else None


def fuzz_one(data: bytes) -> None:
    server = shared_server()
    try:
        replies = server.handle(data)
    except SessionTerminated:
        return  # a second <hello> ends the session (SECURITY N1)
    check(len(replies) == 1, f"{len(replies)} replies to one message")
    framed = replies[0]
    check(framed.endswith(EOM), "reply not EOM-framed")
    try:
        reply = etree.fromstring(framed[: -len(EOM)], _REPLY_PARSER)
    except etree.XMLSyntaxError as exc:
        raise AssertionError(f"reply is not well-formed XML: {exc}") from None
    check(reply.tag == RPC_REPLY, f"reply root is {reply.tag}")
    message_id = _request_message_id(data)
    if message_id is not None and len(message_id) <= 1024:
        check(reply.get("message-id") == message_id, "reply does not echo the message-id")
