"""``X-MD-Intercept-Id``: the jmirror IDs a DTCP ADD asks for, and how LIST echoes them. Pure.

Accepted spellings (DTCP.md §2, LI-HANDOVER.md §1.1; dataplane/ENCAP.md §1.1 states the rule):

- ``0x`` or ``0X`` then 1-16 hex digits, either case. Up to 8 digits is a 4-byte value, the
  intercept ID; 9-16 digits an 8-byte value, read as one 64-bit number whose upper 32 bits are
  the intercept ID and lower 32 bits the session ID (the Junos LIST sample
  ``0x0101010130010002`` is intercept ID 0x01010101, session ID 0x30010002).
- Decimal digits (up to 20, at most 2^64 - 1): a value below 2^32 is a 4-byte value, a larger
  one an 8-byte value split the same way. Digits are always decimal, even with a leading 0
  (Toby's ``001122334455667788`` is 1122334455667788): write hex with ``0x``.

The intercept ID must fit the 30 bits the jmirror header gives it (``V``, the top two bits of
the first word, is 0): 2^30 or more is refused, so that Wireshark (which reads 32 bits) and
OpenLI (which masks to 30) read the same number. A 4-byte value leaves the session ID to the
caller (the criterion's ID).
"""

from __future__ import annotations

from flowtap.errors import FilterSyntaxError
from flowtap.intercept.criteria import JMIRROR_MAX_INTERCEPT_ID, Jmirror

_U64_MAX = 2**64 - 1
_HEX = frozenset("0123456789abcdefABCDEF")


def parse_intercept_id(raw: str) -> tuple[int, int | None]:
    """(intercept ID, session ID or None for a 4-byte value) of an ``X-MD-Intercept-Id``.

    Raises:
        FilterSyntaxError: not hex or decimal, longer than 8 bytes, or an intercept ID of
            2^30 or more.
    """
    if raw[:2] in ("0x", "0X"):
        digits = raw[2:]
        if not 0 < len(digits) <= 16:
            raise FilterSyntaxError("expected 0x and 1 to 16 hex digits (4 or 8 bytes)")
        if not set(digits) <= _HEX:
            raise FilterSyntaxError("not hex")
        value, eight_bytes = int(digits, 16), len(digits) > 8
    else:
        if not (0 < len(raw) <= 20 and raw.isascii() and raw.isdigit()):
            raise FilterSyntaxError("expected 0x and hex digits, or decimal digits")
        value = int(raw)
        if value > _U64_MAX:
            raise FilterSyntaxError("longer than 8 bytes")
        eight_bytes = value > 0xFFFFFFFF
    intercept, session = (value >> 32, value & 0xFFFFFFFF) if eight_bytes else (value, None)
    if intercept > JMIRROR_MAX_INTERCEPT_ID:
        raise FilterSyntaxError(
            "intercept ID above 0x3fffffff: the jmirror header holds 30 bits of it")
    return intercept, session


def jmirror_of(raw: str, criteria_id: int) -> Jmirror:
    """The delivery an ``X-MD-Intercept-Id`` asks for in an ADD numbered ``criteria_id``.

    Raises:
        FilterSyntaxError: as :func:`parse_intercept_id`.
    """
    intercept, session = parse_intercept_id(raw)
    if session is None:
        return Jmirror(intercept, criteria_id)
    return Jmirror(intercept, session, session_given=True)


def render_intercept_id(delivery: Jmirror) -> str:
    """The field as LIST echoes it: ``0x`` and 8 lowercase hex digits for a 4-byte value, 16
    for an 8-byte one (the Junos sample's form)."""
    if delivery.session_given:
        return f"0x{delivery.intercept_id:08x}{delivery.session_id:08x}"
    return f"0x{delivery.intercept_id:08x}"
