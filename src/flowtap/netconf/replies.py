"""rpc-reply and rpc-error builders (RFC 6241 §4.2, §4.3 and Appendix A)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from lxml import etree

from flowtap.config.xmlutil import element
from flowtap.errors import NetconfRpcError

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
_REPLY = f"{{{NC_NS}}}rpc-reply"
_MAX_ECHO = 1024  # rpc attributes echoed back are capped (N11)
_REPLY_OPEN = f'<rpc-reply xmlns="{NC_NS}"'
_ATTRIBUTE_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                    "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})  # fmt: skip


Body = Iterable[etree._Element | bytes]


def reply(attrs: Mapping[str, str], body: Body | None = None) -> bytes:
    """``<rpc-reply>`` echoing the rpc's attributes, with ``body`` or ``<ok/>``.

    Body items may be pre-serialized bytes, so datastore content is never moved or copied into
    a reply tree (serializing is the only per-request work on a get-config).
    """
    echoed = {name: value for name, value in attrs.items() if len(value) <= _MAX_ECHO}
    if any(name.startswith("{") for name in echoed):  # namespaced: lxml chooses the prefixes
        root = element(_REPLY, NC_NS)
        for name, value in echoed.items():
            root.set(name, value)
        head = etree.tostring(root, encoding="UTF-8")[:-2] + b">"
    else:  # the usual message-id alone: no tree needed
        head = (_REPLY_OPEN + "".join(
            f' {name}="{value.translate(_ATTRIBUTE_ESCAPES)}"' for name, value in echoed.items()
        ) + ">").encode()  # fmt: skip
    parts = [item if isinstance(item, bytes) else etree.tostring(item) for item in body or ()]
    if not parts:
        parts = [b"<ok/>"]
    return head + b"".join(parts) + b"</rpc-reply>"


def data(children: Iterable[etree._Element]) -> bytes:
    """``<data>`` holding serialized copies of ``children`` (which stay where they are)."""
    return data_bytes(b"".join(etree.tostring(child) for child in children))


def data_bytes(inner: bytes) -> bytes:
    """``<data>`` around already serialized top-level elements."""
    return _DATA_OPEN + inner + b"</data>"


_DATA_OPEN = b'<data xmlns="' + NC_NS.encode() + b'">'


def error_element(error: NetconfRpcError) -> etree._Element:
    err = element(f"{{{NC_NS}}}rpc-error", NC_NS)
    etree.SubElement(err, f"{{{NC_NS}}}error-type").text = error.type
    etree.SubElement(err, f"{{{NC_NS}}}error-tag").text = error.tag
    etree.SubElement(err, f"{{{NC_NS}}}error-severity").text = error.severity
    if error.app_tag:
        etree.SubElement(err, f"{{{NC_NS}}}error-app-tag").text = error.app_tag
    if error.path:
        path = etree.SubElement(err, f"{{{NC_NS}}}error-path", nsmap=_prefixes(error.path))
        path.text = error.path
    msg = etree.SubElement(err, f"{{{NC_NS}}}error-message")
    msg.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    msg.text = error.message
    if error.info:
        info = etree.SubElement(err, f"{{{NC_NS}}}error-info")
        for name, value in error.info.items():
            etree.SubElement(info, f"{{{NC_NS}}}{name}").text = value
    return err


def error_reply(attrs: Mapping[str, str], errors: Iterable[NetconfRpcError]) -> bytes:
    root = element(_REPLY, NC_NS)
    for name, value in attrs.items():
        if len(value) <= _MAX_ECHO:
            root.set(name, value)
    for error in errors:
        root.append(error_element(error))
    # UTF-8, not lxml's default ASCII: that writes a non-ASCII attribute name of the <rpc> as a
    # character reference, which is not well-formed XML (found by fuzzing).
    return etree.tostring(root, encoding="UTF-8")


# The module prefixes used in error-path, declared on the element so clients can resolve them.
PREFIXES = {
    "fts": "urn:flowtap:yang:system",
    "fti": "urn:flowtap:yang:interfaces",
    "ftsvc": "urn:flowtap:yang:services",
}


def _prefixes(path: str) -> dict[str, str]:
    return {p: ns for p, ns in PREFIXES.items() if f"{p}:" in path}
