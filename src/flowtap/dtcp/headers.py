"""DTCP header fields: the case-insensitive mapping, ``\\ddd`` escapes, and the names requests use.

``\\ddd`` (draft §5) names one byte, 000-255, of the value's UTF-8 encoding; an escape never acts
as a token or line separator, which is why values are kept escaped until a list has been split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# Request header names, lower-cased as ``Headers.keys()`` reports them.
FILTERS = ("source-address", "dest-address", "protocol", "source-port", "dest-port",
           "icmp-type", "icmp-code")  # fmt: skip
TIMEOUTS = ("timeout-idle", "timeout-total", "timeout-packets", "timeout-bytes")
CDEST_DEST_ADDRESS = "x-jtap-cdest-dest-address"
CDEST_DEST_PORT = "x-jtap-cdest-dest-port"
CDEST_SOURCE_ADDRESS = "x-jtap-cdest-source-address"
CDEST_SOURCE_PORT = "x-jtap-cdest-source-port"
CDEST_TTL = "x-jtap-cdest-ttl"
REQUIRED_JTAP = (CDEST_DEST_ADDRESS, CDEST_DEST_PORT, CDEST_SOURCE_ADDRESS, CDEST_SOURCE_PORT)
VRF_NAME = "x-jtap-vrf-name"
INPUT_INTERFACE = "x-jtap-input-interface"
OUTPUT_INTERFACE = "x-jtap-output-interface"
IP_VERSION = "x-jtap-ip-version"
INTERCEPT_ID = "x-md-intercept-id"

_COMMON = frozenset({"csource-id", "seq"})
_DRAFT_ADD = frozenset({*FILTERS, *TIMEOUTS, "priority", "action", "cdest-id", "flags"})
_JTAP_ADD = frozenset({*REQUIRED_JTAP, CDEST_TTL, VRF_NAME, INPUT_INTERFACE, IP_VERSION,
                       INTERCEPT_ID})  # fmt: skip
ALLOWED = {
    "ADD": _COMMON | _DRAFT_ADD | _JTAP_ADD,
    "DELETE": _COMMON | {"criteria-id", "cdest-id", "flags"},
    "REFRESH": _COMMON | {"criteria-id", "cdest-id", *TIMEOUTS},
    "LIST": _COMMON | {"criteria-id", "cdest-id", "flags"},
    "NOOP": _COMMON | {"flags"},
}
DRAFT_HEADERS = _DRAFT_ADD | {"criteria-id"}
# Junos ADD parameters that narrow or redirect what is tapped. This appliance does not implement
# them, and silently ignoring one would tap more than the warrant covers, so they get 501. The
# subscriber triggers are from the Junos trigger table; x-rm-remote-id, x-logical-system and
# x-routing-instance are inferred from its prose [U].
UNIMPLEMENTED_IN_ADD = frozenset({
    OUTPUT_INTERFACE, "x-jtap-filter-family", "x-drop-policy", "x-interface-id", "x-username",
    "x-act-sess-id", "x-ip-addr", "x-nas-port-id", "x-call-sta-id", "x-rm-circuit-id",
    "x-rm-remote-id", "x-logical-system", "x-routing-instance"})  # fmt: skip
# Every header this appliance reads or refuses by name. Each is single-valued: the ABNF gives
# none of them a repeated form (lists are comma-separated inside one header), so a second copy
# can only be a client bug or an injection attempt, and "first wins" would let whichever copy a
# middlebox or logger reads differ from the one acted on (SECURITY D3).
CATALOGUED = frozenset().union(*ALLOWED.values(), DRAFT_HEADERS, UNIMPLEMENTED_IN_ADD)


def single_valued(name: str) -> bool:
    """True for a lower-cased ``name`` that must not repeat in a request: every header but the
    ``X-`` extensions nobody catalogued, which are ignored however often they appear (draft
    §6.3: unknown ``X-`` headers must be ignored without error, and an ignored header cannot
    take effect twice). ``X-JTap-*`` are all Junos parameters, catalogued or refused (501)."""
    return name in CATALOGUED or not name.startswith("x-") or name.startswith("x-jtap-")

_ESCAPE = re.compile(rb"\\([0-9]{3})")
_VCHAR_EXCEPT_BACKSLASH = re.compile(r"[!-\[\]-~]*")


class Headers:
    """Header fields in wire order with case-insensitive lookup.

    The decoder refuses a request that repeats a single-valued header (:func:`single_valued`),
    so ``get`` is unambiguous for every header the appliance reads; of an ignored ``X-``
    extension the first value is kept."""

    __slots__ = ("_fields", "_first")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = []
        self._first: dict[str, str] = {}
        for name, value in fields:
            self.add(name, value)

    @classmethod
    def lowered(cls, fields: list[tuple[str, str]], keys: list[str]) -> Headers:
        """Headers of ``fields`` whose names, lower-cased, are ``keys``, none repeated."""
        headers = cls()
        headers._fields = fields
        headers._first = dict(zip(keys, (value for _, value in fields), strict=True))
        return headers

    def add(self, name: str, value: str) -> None:
        self._fields.append((name, value))
        self._first.setdefault(name.lower(), value)

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (still ``\\ddd``-escaped), or None."""
        # the codec asks by the lower-case names above: one dict look-up (an ADD makes ~30)
        value = self._first.get(name)
        return value if value is not None else self._first.get(name.lower())

    def count(self, name: str) -> int:
        key = name.lower()
        return sum(1 for n, _ in self._fields if n.lower() == key)

    def keys(self) -> frozenset[str]:
        """Lower-cased names present."""
        return frozenset(self._first)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._first or name.lower() in self._first)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        # Values are criteria and therefore confidential: never let a repr leak them.
        return f"Headers({[n for n, _ in self._fields]!r})"


def unescape(value: str) -> str:
    """Decode ``\\ddd`` escapes (bytes of UTF-8); ValueError if the result is not UTF-8."""
    if "\\" not in value:
        return value
    raw = _ESCAPE.sub(lambda m: bytes((int(m.group(1)),)), value.encode("utf-8"))
    return raw.decode("utf-8")


def escape(value: str) -> str:
    """Encode a value for the wire: anything but printable ASCII (and backslash) becomes ``\\ddd``.

    Replies echo identifiers that clients chose; escaping them keeps CR, LF, spaces and controls
    from ever forming a line or token of their own.
    """
    if _VCHAR_EXCEPT_BACKSLASH.fullmatch(value):
        return value
    return "".join(
        ch
        if _VCHAR_EXCEPT_BACKSLASH.fullmatch(ch)
        else "".join(f"\\{byte:03d}" for byte in ch.encode("utf-8"))
        for ch in value
    )
