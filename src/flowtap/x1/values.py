"""The XSD simple types X1 uses, as text in and Python values out (and back). Pure.

Every parser raises :class:`~flowtap.x1.codes.X1Error` 1010 naming the element, never the value.
Readers are lenient only where the schema's own whitespace rules are (numbers, booleans, times
and identifiers have their surrounding whitespace collapsed) and where it costs no ambiguity:
an ``IPv6Address`` may arrive in any RFC 4291 text form, while TS 103 280 asks for the full
lower-case form, which is what the writers produce.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from datetime import UTC, datetime
from typing import Final

from flowtap.x1.codes import schema_error

MAX_IDENTIFIER: Final = 256  # admfIdentifier, neIdentifier, version: short names in practice
MAX_TEXT: Final = 1024  # friendlyName, errorDescription
MAX_DIGITS: Final = 40  # xs:integer values (correlationID fits 2^128)

_UUID: Final = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                          r"[0-9a-fA-F]{12}")  # fmt: skip
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
# QualifiedMicrosecondDateTime: a date-time with a time zone; fractions up to microseconds.
_DATETIME: Final = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,6})?"
                              r"(Z|[+-]\d{2}:\d{2})")  # fmt: skip
_IPV4: Final = re.compile(r"[0-9.]{7,15}")
_IPV6: Final = re.compile(r"[0-9a-fA-F:.]{2,45}")


def text(value: str | None, name: str, limit: int = MAX_TEXT) -> str:
    """An ``xs:string`` kept as sent (whitespace is significant), at most ``limit`` characters."""
    value = value or ""
    if len(value) > limit:
        raise schema_error(f"{name} longer than {limit} characters")
    return value


def token(value: str | None, name: str, limit: int = MAX_IDENTIFIER) -> str:
    """A non-empty string with its surrounding whitespace removed."""
    value = (value or "").strip()
    if not value:
        raise schema_error(f"{name} is empty")
    if len(value) > limit:
        raise schema_error(f"{name} longer than {limit} characters")
    return value


def uuid_text(value: str | None, name: str) -> str:
    """A UUID checked but kept as written (x1TransactionId is copied into the answer as is)."""
    value = (value or "").strip()
    if not _UUID.fullmatch(value):
        raise schema_error(f"{name} is not a UUID")
    return value


def parse_uuid(value: str | None, name: str) -> uuid.UUID:
    return uuid.UUID(uuid_text(value, name))


def integer(value: str | None, name: str, low: int | None = None, high: int | None = None) -> int:
    value = (value or "").strip()
    if not _INTEGER.fullmatch(value) or len(value) > MAX_DIGITS:
        raise schema_error(f"{name} is not an integer")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise schema_error(f"{name} out of range {low}..{high}")
    return number


def boolean(value: str | None, name: str) -> bool:
    value = (value or "").strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise schema_error(f"{name} is not a boolean")


def port(value: str | None, name: str) -> int:
    return integer(value, name, 0, 65535)


def parse_datetime(value: str | None, name: str) -> datetime:
    """A QualifiedMicrosecondDateTime, as an aware datetime in UTC."""
    value = (value or "").strip()
    match = _DATETIME.fullmatch(value)
    if not match:
        raise schema_error(f"{name} is not a date-time with a time zone")
    base, fraction, zone = match.groups()
    micro = (fraction or ".0")[1:].ljust(6, "0")
    try:
        stamp = datetime.fromisoformat(f"{base}.{micro}{'+00:00' if zone == 'Z' else zone}")
        # Overflows at the ends of the calendar (0001-01-01T00:00+01:00 is in year 0 in UTC).
        return stamp.astimezone(UTC)
    except (ValueError, OverflowError):
        raise schema_error(f"{name} is not a valid date-time") from None


def format_datetime(value: datetime) -> str:
    """``2017-10-06T18:46:21.247432Z``: UTC, six fraction digits, as ETSI's examples (and four
    year digits always: strftime's %Y drops the leading zeros of years before 1000)."""
    text = value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    return text + "Z"


def ipv4_address(value: str | None, name: str) -> ipaddress.IPv4Address:
    value = (value or "").strip()
    try:
        if not _IPV4.fullmatch(value):
            raise ValueError
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise schema_error(f"{name} is not an IPv4 address") from None


def ipv6_address(value: str | None, name: str) -> ipaddress.IPv6Address:
    # The character class keeps out zone IDs ("%eth0"), which ipaddress would accept.
    value = (value or "").strip()
    try:
        if not _IPV6.fullmatch(value):
            raise ValueError
        return ipaddress.IPv6Address(value)
    except ValueError:
        raise schema_error(f"{name} is not an IPv6 address") from None


def format_ipv6(address: ipaddress.IPv6Address) -> str:
    """TS 103 280's IPv6Address form: eight groups of four lower-case hex digits."""
    return address.exploded


def ipv4_network(value: str | None, name: str) -> ipaddress.IPv4Network:
    address, length = _split_prefix(value, name, 32)
    return _network(ipv4_address(address, name), length, name)  # type: ignore[return-value]


def ipv6_network(value: str | None, name: str) -> ipaddress.IPv6Network:
    address, length = _split_prefix(value, name, 128)
    return _network(ipv6_address(address, name), length, name)  # type: ignore[return-value]


def format_network(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    if isinstance(network, ipaddress.IPv6Network):
        return f"{format_ipv6(network.network_address)}/{network.prefixlen}"
    return str(network)


def _split_prefix(value: str | None, name: str, bits: int) -> tuple[str, int]:
    address, slash, length = (value or "").strip().partition("/")
    if not slash or not length.isdigit() or len(length) > 3 or int(length) > bits:
        raise schema_error(f"{name} is not an address/prefix-length")
    return address, int(length)


def _network(address: ipaddress.IPv4Address | ipaddress.IPv6Address, length: int,
             name: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:  # fmt: skip
    try:
        return ipaddress.ip_network((address, length), strict=True)
    except ValueError:
        # A prefix with host bits set is ambiguous (did the ADMF mean the host or the
        # network?), so it is refused rather than silently masked.
        raise schema_error(f"{name} has host bits set beyond its prefix length") from None
