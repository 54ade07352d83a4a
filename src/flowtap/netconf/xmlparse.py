"""Hardened XML parsing of NETCONF messages, plus base-namespace names and rpc attribute rules.

Policy (SECURITY.md §5.1 N7-N9, N11 and §5.3):

- One module-level lxml parser built explicitly: no entity resolution, no DTD loading, no
  network, no huge-tree mode, PIs and comments dropped. Its input encoding is forced to UTF-8, so
  whatever a declaration claims, the bytes are decoded as UTF-8 (RFC 6241 §3: UTF-8 only).
- Refused before libxml2 sees the bytes, so none of it is ever processed: any DOCTYPE in the
  prolog (RFC 6241 §3.2: a DTD MUST NOT appear), any byte-order mark (UTF-8 is the only encoding
  and ncclient, Junos and netopeer2 never send one), an XML declaration naming an encoding other
  than UTF-8, and more than ``max_markup`` ``<`` characters (an upper bound on elements, computed
  without allocating; libxml2 has no whole-document cap, SECURITY.md §5.3).
- Nesting deeper than ``max_depth`` (default 64; libxml2 alone stops at 256). Real YANG data is
  < 20 levels deep and the filter code recurses per level, so 64 leaves headroom while keeping
  recursion shallow. Checked only when the message has enough markup to be that deep.
- More than ``max_attributes`` attributes in total, counted only when the message has that many
  ``=`` characters (each attribute needs one); likewise namespace declarations, counted in the
  bytes before parsing (libxml2 keeps them all, and filters copy the in-scope ones).
- Invalid UTF-8, NUL and other C0 controls are rejected by libxml2 itself.

Every refusal is ``NetconfRpcError(tag="malformed-message", type="rpc")`` whose message names the
libxml2 error code and position but never quotes the input: element names and values may be
lawful-intercept targets (SECURITY.md LI-2).

The parser object is shared; lxml serialises concurrent use of one parser with a lock, and the
NETCONF server parses from its event loop thread only.
"""

from __future__ import annotations

import re
from typing import Final

from lxml import etree

from flowtap.errors import NetconfRpcError

NC_NS: Final = "urn:ietf:params:xml:ns:netconf:base:1.0"
CAP_BASE_1_0: Final = "urn:ietf:params:netconf:base:1.0"
CAP_BASE_1_1: Final = "urn:ietf:params:netconf:base:1.1"
CAP_XPATH: Final = "urn:ietf:params:netconf:capability:xpath:1.0"


def nc(local: str) -> str:
    """Clark name ``{urn:ietf:params:xml:ns:netconf:base:1.0}local``."""
    return f"{{{NC_NS}}}{local}"


HELLO: Final = nc("hello")
CAPABILITIES: Final = nc("capabilities")
CAPABILITY: Final = nc("capability")
SESSION_ID: Final = nc("session-id")
RPC: Final = nc("rpc")
RPC_REPLY: Final = nc("rpc-reply")
RPC_ERROR: Final = nc("rpc-error")
ERROR_TYPE: Final = nc("error-type")
ERROR_TAG: Final = nc("error-tag")
ERROR_SEVERITY: Final = nc("error-severity")
ERROR_APP_TAG: Final = nc("error-app-tag")
ERROR_PATH: Final = nc("error-path")
ERROR_MESSAGE: Final = nc("error-message")
ERROR_INFO: Final = nc("error-info")
OK: Final = nc("ok")
DATA: Final = nc("data")
CONFIG: Final = nc("config")
FILTER: Final = nc("filter")
SOURCE: Final = nc("source")
TARGET: Final = nc("target")
RUNNING: Final = nc("running")
CANDIDATE: Final = nc("candidate")
STARTUP: Final = nc("startup")
URL: Final = nc("url")
GET: Final = nc("get")
GET_CONFIG: Final = nc("get-config")
EDIT_CONFIG: Final = nc("edit-config")
COPY_CONFIG: Final = nc("copy-config")
DELETE_CONFIG: Final = nc("delete-config")
LOCK: Final = nc("lock")
UNLOCK: Final = nc("unlock")
CLOSE_SESSION: Final = nc("close-session")
KILL_SESSION: Final = nc("kill-session")
COMMIT: Final = nc("commit")
DISCARD_CHANGES: Final = nc("discard-changes")
CANCEL_COMMIT: Final = nc("cancel-commit")
VALIDATE: Final = nc("validate")
OPERATION_ATTR: Final = nc("operation")

MESSAGE_ID: Final = "message-id"
MAX_DEPTH: Final = 64
MAX_MARKUP: Final = 200_000
MAX_ATTRIBUTES: Final = 10_000
MAX_MESSAGE_ID: Final = 1024
MAX_ECHOED_ATTRIBUTES: Final = 16

_PARSER: Final = etree.XMLParser(
    encoding="utf-8",
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    attribute_defaults=False,
    huge_tree=False,
    remove_pis=True,
    remove_comments=True,
    # Ignorable indentation would otherwise become text nodes that filters and copies carry.
    remove_blank_text=True,
    collect_ids=False,
    recover=False,
)

_BOMS: Final = (b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")
_PROLOG_BLANKS: Final = re.compile(rb"[ \t\r\n]*")
_DECL_ENCODING: Final = re.compile(rb"""\sencoding\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_UTF8_NAMES: Final = (b"utf-8", b"utf8")
# Every namespace declaration is preceded by whitespace; in text this only over-counts.
_XMLNS_DECLARATION: Final = re.compile(rb"\sxmlns(?::[^\s=/>]+)?\s*=")


_ERROR: Final = etree.ErrorLevels.ERROR


def _malformed(message: str) -> NetconfRpcError:
    return NetconfRpcError(tag="malformed-message", type="rpc", message=message)


def _depth_probe(depth: int) -> etree.XPath:
    # True when some element sits deeper than `depth` below the root (the root is level 1).
    return etree.XPath("boolean(" + "/".join(["*"] * depth) + ")")


_DEPTH_PROBE: Final = _depth_probe(MAX_DEPTH)
_COUNT_ATTRIBUTES: Final = etree.XPath("count(//@*)")


def _check_prolog(data: bytes) -> None:
    """Refuse BOMs, non-UTF-8 declarations and DOCTYPE before libxml2 reads anything."""
    if data.startswith(_BOMS):
        raise _malformed("byte-order mark not allowed: NETCONF messages are UTF-8")
    pos = 0
    end = len(data)
    while pos < end:
        match = _PROLOG_BLANKS.match(data, pos)
        pos = match.end() if match else pos
        if data.startswith(b"<?", pos):
            close = data.find(b"?>", pos)
            if close < 0:
                return  # libxml2 reports the unterminated PI itself
            if pos == 0 and data.startswith(b"<?xml", 0) and data[5:6].isspace():
                decl = _DECL_ENCODING.search(data, 5, close)
                if decl:
                    name = (decl.group(1) or decl.group(2) or b"").lower()
                    if name not in _UTF8_NAMES:
                        raise _malformed("encoding declaration other than UTF-8")
            pos = close + 2
        elif data.startswith(b"<!--", pos):
            close = data.find(b"-->", pos + 4)
            if close < 0:
                return
            pos = close + 3
        elif data.startswith(b"<!DOCTYPE", pos):
            raise _malformed("DOCTYPE not allowed in NETCONF messages")
        else:
            return


def parse_message(
    data: bytes,
    *,
    max_depth: int = MAX_DEPTH,
    max_markup: int = MAX_MARKUP,
    max_attributes: int = MAX_ATTRIBUTES,
) -> etree._Element:
    """Parse one framed NETCONF message into its root element, or raise malformed-message."""
    if not data:
        raise _malformed("empty message")
    _check_prolog(data)
    markup = data.count(b"<")
    if markup > max_markup:
        raise _malformed("too many elements")
    if (data.count(b"xmlns") > max_attributes
            and len(_XMLNS_DECLARATION.findall(data)) > max_attributes):  # fmt: skip
        raise _malformed("too many namespace declarations")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        # lxml-stubs lack error_log; the code name is libxml2's, never text from the input.
        last = getattr(getattr(exc, "error_log", None), "last_error", None)
        code = str(getattr(last, "type_name", "ERR_PARSER"))
        line, column = exc.position
        raise _malformed(f"XML not well-formed ({code}) at line {line}, column {column}") from None
    # Defence in depth behind _check_prolog, paid only when the bytes could hold a DOCTYPE.
    if b"<!DOCTYPE" in data:
        info = root.getroottree().docinfo
        doctype = getattr(info, "doctype", None)  # "" without a DOCTYPE; absent from lxml-stubs
        if info.internalDTD is not None or doctype:
            raise _malformed("DOCTYPE not allowed in NETCONF messages")
    # Nesting deeper than max_depth takes at least 2 * max_depth + 1 '<' (the innermost element
    # may be self-closing), so small messages skip the probe.
    if markup > 2 * max_depth:
        probe = _DEPTH_PROBE if max_depth == MAX_DEPTH else _depth_probe(max_depth)
        if probe(root):
            raise _malformed(f"XML nested deeper than {max_depth} levels")
    if data.count(b"=") > max_attributes:
        count = _COUNT_ATTRIBUTES(root)
        if isinstance(count, float) and count > max_attributes:
            raise _malformed("too many attributes")
    # libxml2 reports namespace errors (an undeclared prefix, a namespace name that is no URI,
    # such as one holding "}") without failing the parse, and lxml then builds names like
    # "p:x" or "{a}b}x" that no later lookup can handle (found by fuzzing: "Internal error").
    for error in _PARSER.error_log:
        if error.level >= _ERROR:
            raise _malformed(f"XML not well-formed ({error.type_name}) at line {error.line}, "
                             f"column {error.column}")  # fmt: skip
    return root


def _rpc_attribute_error(tag: str, message: str, attribute: str) -> NetconfRpcError:
    return NetconfRpcError(
        tag=tag,
        type="rpc",
        message=message,
        info={"bad-attribute": attribute, "bad-element": "rpc"},
    )


def message_id(rpc: etree._Element) -> str:
    """The rpc's ``message-id`` (RFC 6241 §4.1), required and at most MAX_MESSAGE_ID characters."""
    value = rpc.get(MESSAGE_ID)
    if value is None:
        raise _rpc_attribute_error(
            "missing-attribute", "rpc has no message-id attribute", MESSAGE_ID
        )
    if len(value) > MAX_MESSAGE_ID:
        raise _rpc_attribute_error(
            "bad-attribute", f"message-id longer than {MAX_MESSAGE_ID} characters", MESSAGE_ID
        )
    return value


def reply_attributes(rpc: etree._Element) -> dict[str, str]:
    """Attributes the rpc-reply must echo (RFC 6241 §4.2), message-id included and checked.

    Keys are Clark names for namespaced attributes. Refuses, rather than silently drops, an
    attribute past the echo limits, because the RFC requires returning them unmodified.
    """
    attrs = {str(k): str(v) for k, v in rpc.attrib.items()}
    message_id(rpc)
    for index, (name, value) in enumerate(attrs.items()):
        if index >= MAX_ECHOED_ATTRIBUTES:
            local = name.rpartition("}")[2][:64]
            raise _rpc_attribute_error(
                "bad-attribute", f"rpc has more than {MAX_ECHOED_ATTRIBUTES} attributes", local
            )
        if len(value) > MAX_MESSAGE_ID:
            local = name.rpartition("}")[2][:64]
            raise _rpc_attribute_error(
                "bad-attribute", f"rpc attribute longer than {MAX_MESSAGE_ID} characters", local
            )
    return attrs
