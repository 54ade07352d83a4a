"""Packets in the capture rings as buffers, without copying them out.

The packet walk records where a copy is by its address in the ring (an int: what
``sendmmsg`` iovecs take for classic copies). A writer that hands packets to Python code (X3
PDUs, the X3 relay's ``sendmsg``) needs buffer objects instead; ``ctypes.string_at`` makes one
by copying into a fresh ``bytes``, which for a 1414-byte packet costs 0.6 us, a system
``malloc`` and a copy, more than the rest of its way to the kernel. A slice of a view of the
whole address space costs 0.1 us and copies nothing; the kernel or TLS then copies the packet
once. A slice is valid only while its ring block is held: whatever keeps a packet longer
makes it ``bytes`` first (:func:`detach`)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from typing import Final

# Only ever sliced at addresses of the rings this process mapped (the packet walk's); reading
# any other part is as wrong as a bad ctypes.string_at.
_ADDRESS_SPACE: Final = memoryview((ctypes.c_char * (1 << 56)).from_address(0)).cast("B")


def views(addresses: Iterable[int], lengths: Iterable[int]) -> list[memoryview]:
    """The packets at ``addresses`` of ``lengths`` bytes, not copied."""
    space = _ADDRESS_SPACE
    return [space[a:a + n] for a, n in zip(addresses, lengths, strict=True)]


def detach(packet: bytes | memoryview) -> bytes:
    """``packet`` as bytes of its own (before its ring block goes back to the kernel)."""
    return packet if isinstance(packet, bytes) else packet.tobytes()
