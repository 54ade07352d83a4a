"""The value grammar of DTCP filter headers (draft-cavuto-dtcp-03 §8) into ``criteria`` types.

``IPFilter``, ``PortFilter``, ``ProtFilter``, ``ICMPFilter`` and ``CritFilter`` are comma lists
(one optional run of spaces or tabs after each comma) of entries ``n``, ``n-m``, ``n-*``, ``*-m``,
``*``, each optionally prefixed with ``!``; addresses also take ``a/len``.

Errors are split by the status they deserve:
- ``FilterSyntaxError`` (400): not the grammar, or a number out of its range (port 65536,
  prefix /33, more than 20 digits).
- ``ImproperFilterError`` (432): grammatical but improper: reversed range, IPv4 and IPv6 mixed in
  one filter, prefix with host bits set (``10.1.1.1/24`` is far more likely a typo than a request
  to tap the whole /24, and over-collection is the worse failure for lawful intercept), or a
  filter that can never match (``!*``).
- ``UnsupportedValueError`` (501): IPv6 in DTCP/0.5 or 0.6 (IPv6 arrived with 0.7, draft App.A.4).
- ``UnknownCriteriaIdError`` (431): a Criteria-ID that cannot exist (negative, or beyond 64 bits);
  answering like "not found" keeps such probes indistinguishable from a stale ID (SECURITY D7).

Also here: identifiers (``DSTRING``: Csource-ID, Cdest-ID) and the X-JTap-Input-Interface list
(X-MD-Intercept-Id is :mod:`flowtap.dtcp.intercept_id`), whose errors the caller maps to its
own status.

Decisions: ``*`` next to other entries means the whole range of the filter's family (so
``!10.0.0.1, *`` is an IPv4 filter); a filter of nothing but ``*`` is the wildcard. IPv4 octets
are decimal even with leading zeros (``1*3DIGIT``); IPv6 zone IDs (``%eth0``) are rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv6Address

from flowtap.dtcp.headers import unescape
from flowtap.errors import (
    FilterSyntaxError,
    ImproperFilterError,
    UnknownCriteriaIdError,
    UnsupportedValueError,
)
from flowtap.intercept.criteria import ANY, ANY_ADDRESS, AddressFilter, Span, ValueFilter

U64_MAX = 2**64 - 1
ADDRESS_MAX = {4: 2**32 - 1, 6: 2**128 - 1}
PORT_MAX = 65535
BYTE_MAX = 255
MAX_INPUT_INTERFACES = 8
MAX_UNIT = 16384
_ADDRESS_BITS = {4: 32, 6: 128}
_U64_DIGITS = 20
_CONTROL_TEXT = re.compile(r"[\x00-\x1f\x7f]")
_INTERFACE = re.compile(r"[a-zA-Z][a-zA-Z0-9_.:/-]{0,63}")  # the YANG interface-name pattern
_IPV4 = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")


def split_list(value: str) -> list[str]:
    """Entries of a comma list; whitespace is allowed only right after a comma."""
    items = value.split(",")
    for index in range(1, len(items)):
        items[index] = items[index].lstrip(" \t")
    for item in items:
        if not item or " " in item or "\t" in item:
            raise FilterSyntaxError("empty list entry or stray whitespace")
    return items


def parse_number(text: str, digits: int, maximum: int) -> int:
    """A decimal of 1..``digits`` ASCII digits, at most ``maximum``."""
    if not (0 < len(text) <= digits and text.isascii() and text.isdigit()):
        raise FilterSyntaxError("not a number of the allowed length")
    value = int(text)
    if value > maximum:
        raise FilterSyntaxError("number out of range")
    return value


def parse_address(text: str, *, allow_ipv6: bool = True) -> tuple[int, int]:
    """(IP version, address as an integer) of a single IPv4 or IPv6 address."""
    if ":" in text:
        if not allow_ipv6:
            raise UnsupportedValueError("IPv6 needs DTCP/0.7 or later")
        if "%" in text or not text.isascii():
            raise FilterSyntaxError("malformed IPv6 address")
        try:
            return 6, int(IPv6Address(text))
        except AddressValueError:
            raise FilterSyntaxError("malformed IPv6 address") from None
    dotted = _IPV4.fullmatch(text)  # the usual case in one step; the loop names what is wrong
    if dotted is not None:
        a, b, c, d = map(int, dotted.groups())
        if a <= BYTE_MAX and b <= BYTE_MAX and c <= BYTE_MAX and d <= BYTE_MAX:
            return 4, a << 24 | b << 16 | c << 8 | d
    octets = text.split(".")
    if len(octets) != 4:
        raise FilterSyntaxError("malformed IPv4 address")
    value = 0
    for octet in octets:
        value = value << 8 | parse_number(octet, 3, BYTE_MAX)
    return 4, value


def parse_host(text: str, *, allow_ipv6: bool = True) -> tuple[int, int]:
    """A single address that can be a packet's source or destination (not ``0.0.0.0``/``::``)."""
    version, value = parse_address(text, allow_ipv6=allow_ipv6)
    if value == 0:
        raise FilterSyntaxError("unspecified address")
    return version, value


def parse_port(text: str) -> int:
    """A UDP port a packet can be sent from or to: 1-65535."""
    port = parse_number(text, 5, PORT_MAX)
    if port == 0:
        raise FilterSyntaxError("port 0")
    return port


def format_address(version: int, value: int) -> str:
    if version == 4:
        return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    return str(IPv6Address(value))


def _split_negation(item: str) -> tuple[str, bool]:
    if item.startswith("!"):
        return item[1:], True
    return item, False


def _filter_entries(value: str) -> tuple[list[tuple[str, bool]], bool]:
    """The (entry, negated) pairs of a filter list other than ``*``, and whether ``*`` was in
    it; ``!*`` can never match and is refused."""
    entries: list[tuple[str, bool]] = []
    wildcard = False
    for entry in split_list(value):
        item, negated = _split_negation(entry)
        if item != "*":
            entries.append((item, negated))
        elif negated:
            raise ImproperFilterError("'!*' never matches")
        else:
            wildcard = True
    return entries, wildcard


def _address_span(item: str, allow_ipv6: bool) -> tuple[int, int, int]:
    """(version, lo, hi) of one address entry other than ``*``."""
    if "/" in item:
        address, _, length = item.partition("/")
        version, value = parse_address(address, allow_ipv6=allow_ipv6)
        bits = _ADDRESS_BITS[version]
        host = (1 << (bits - parse_number(length, 3, bits))) - 1
        if value & host:
            raise ImproperFilterError("prefix has host bits set")
        return version, value, value | host
    if "-" in item:
        left, _, right = item.partition("-")
        if left == "*" and right == "*":
            raise FilterSyntaxError("'*-*' is not an entry")
        if left == "*":
            version, hi = parse_address(right, allow_ipv6=allow_ipv6)
            return version, 0, hi
        version, lo = parse_address(left, allow_ipv6=allow_ipv6)
        if right == "*":
            return version, lo, ADDRESS_MAX[version]
        right_version, hi = parse_address(right, allow_ipv6=allow_ipv6)
        if right_version != version:
            raise ImproperFilterError("range mixes IPv4 and IPv6")
        if lo > hi:
            raise ImproperFilterError("range is reversed")
        return version, lo, hi
    version, value = parse_address(item, allow_ipv6=allow_ipv6)
    return version, value, value


def parse_address_filter(value: str, *, allow_ipv6: bool = True) -> AddressFilter:
    """An ``IPFilter`` (Source-Address, Dest-Address)."""
    if value.isascii() and value.replace(".", "").isdigit():
        # one IPv4 host, what a tap usually names: the list below would find the same (and
        # refuse the same), at twice the cost on every ADD
        version, host = parse_address(value, allow_ipv6=allow_ipv6)
        return AddressFilter(version, (Span(host, host),))
    spans: list[Span] = []
    family: int | None = None
    entries, wildcard = _filter_entries(value)
    for item, negated in entries:
        version, lo, hi = _address_span(item, allow_ipv6)
        if family is None:
            family = version
        elif family != version:
            raise ImproperFilterError("filter mixes IPv4 and IPv6")
        spans.append(Span(lo, hi, negated))
    if family is None:
        return ANY_ADDRESS
    if wildcard:
        spans.insert(0, Span(0, ADDRESS_MAX[family]))
    return AddressFilter(family, tuple(spans))


def _value_span(item: str, digits: int, maximum: int) -> tuple[int, int]:
    if "-" not in item:
        value = parse_number(item, digits, maximum)
        return value, value
    left, _, right = item.partition("-")
    if left == "*" and right == "*":
        raise FilterSyntaxError("'*-*' is not an entry")
    lo = 0 if left == "*" else parse_number(left, digits, maximum)
    hi = maximum if right == "*" else parse_number(right, digits, maximum)
    if lo > hi:
        raise ImproperFilterError("range is reversed")
    return lo, hi


def parse_value_filter(value: str, digits: int, maximum: int) -> ValueFilter:
    """A ``PortFilter`` (5 digits, 65535), ``ProtFilter`` or ``ICMPFilter`` (3 digits, 255)."""
    if value.isascii() and value.isdigit():  # one number: as the list below, at half the cost
        number = parse_number(value, digits, maximum)
        return ValueFilter((Span(number, number),))
    spans: list[Span] = []
    entries, wildcard = _filter_entries(value)
    for item, negated in entries:
        lo, hi = _value_span(item, digits, maximum)
        spans.append(Span(lo, hi, negated))
    if not spans:
        return ANY
    if wildcard:
        spans.insert(0, Span(0, maximum))
    return ValueFilter(tuple(spans))


def parse_port_filter(value: str) -> ValueFilter:
    return parse_value_filter(value, 5, PORT_MAX)


def parse_byte_filter(value: str) -> ValueFilter:
    """Protocol, ICMP-Type, ICMP-Code: numbers only, 0-255."""
    return parse_value_filter(value, 3, BYTE_MAX)


@dataclass(frozen=True, slots=True)
class CriteriaSelector:
    """A ``CritFilter`` (Criteria-ID in DELETE, REFRESH, LIST) over 64-bit IDs.

    ``listed_ids`` are the positive single IDs: if any of them is unknown, DELETE and REFRESH fail
    as a whole with 431 (draft §5.7, §5.9); ranges and ``*`` may match nothing.
    """

    filter: ValueFilter

    @property
    def is_wildcard(self) -> bool:
        return self.filter.is_wildcard

    @property
    def listed_ids(self) -> tuple[int, ...]:
        return tuple(s.lo for s in self.filter.spans if not s.negated and s.lo == s.hi)

    @property
    def only_listed(self) -> bool:
        """Whether it selects exactly ``listed_ids`` (no range, ``*`` or negation)."""
        return not self.is_wildcard and len(self.filter.spans) == len(self.listed_ids)

    def matches(self, criteria_id: int) -> bool:
        return self.filter.matches(criteria_id)


def parse_criteria_selector(value: str) -> CriteriaSelector:
    spans: list[Span] = []
    wildcard = False
    for entry in split_list(value):
        item, negated = _split_negation(entry)
        if item == "*":
            if negated:
                spans.append(Span(0, U64_MAX, negated=True))
            else:
                wildcard = True
            continue
        if not negated:
            _reject_impossible_id(item)
        lo, hi = _value_span(item, _U64_DIGITS, U64_MAX)
        spans.append(Span(lo, hi, negated))
    if wildcard and spans:
        spans.insert(0, Span(0, U64_MAX))
    return CriteriaSelector(ValueFilter(tuple(spans)))


def _reject_impossible_id(item: str) -> None:
    digits = item[1:] if item.startswith("-") else item
    if not (digits and digits.isascii() and digits.isdigit()):
        return
    if item.startswith("-") or len(digits) > _U64_DIGITS or int(digits) > U64_MAX:
        raise UnknownCriteriaIdError(item)


def parse_identifier(raw: str) -> str:
    """A DSTRING: no whitespace, escapes decoded, no control characters once decoded."""
    if not raw or " " in raw or "\t" in raw:
        raise FilterSyntaxError("empty or has whitespace")
    try:
        text = unescape(raw)
    except ValueError:
        raise FilterSyntaxError("escapes do not form UTF-8") from None
    if _CONTROL_TEXT.search(text):
        raise FilterSyntaxError("control character")
    return text


def parse_input_interfaces(raw: str) -> tuple[str, ...]:
    """Up to 8 IFLs as ``name.unit``; a missing unit is unit 0 (draft App.B.1.1 §8)."""
    names: list[str] = []
    for item in split_list(raw):
        base, dot, unit = item.rpartition(".")
        if not (dot and unit.isascii() and unit.isdigit()):
            base, unit = item, "0"
        if _INTERFACE.fullmatch(base) is None:
            raise FilterSyntaxError("malformed interface name")
        name = f"{base}.{parse_number(unit, 5, MAX_UNIT)}"
        if name not in names:
            names.append(name)
    if len(names) > MAX_INPUT_INTERFACES:
        raise FilterSyntaxError("more than 8 interfaces")
    return tuple(names)
