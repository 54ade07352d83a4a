"""Give the memory of finished sessions back to the system.

A NETCONF or DTCP session may buffer up to a whole message (4 MiB for NETCONF) while it arrives,
in pieces of one SSH packet (32 KiB): below glibc's mmap threshold, so they come from the heap.
When the session ends Python frees them, but glibc keeps free heap pages mapped unless the top
of the heap is free: measured with 30 sessions each holding an unfinished 4 MiB chunked message,
RSS stayed at 178 MB after every session had closed (54 MB before). ``malloc_trim(0)`` returns
every free page (glibc >= 2.8 also releases pages in the middle of the heap). It costs a walk of
the heap, so it runs at most once per ``TRIM_INTERVAL`` seconds, after sessions end.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable

LOG = logging.getLogger(__name__)
TRIM_INTERVAL = 1.0


def _malloc_trim() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0) and None


_TRIM = _malloc_trim()
_pending: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None


def release_soon() -> None:
    """Return freed heap memory to the system within ``TRIM_INTERVAL`` seconds (coalesced)."""
    global _pending
    loop = asyncio.get_running_loop()
    if _TRIM is None or (_pending is not None and _pending[0] is loop):
        return  # (a trim planned on a loop that has since stopped is forgotten)
    _pending = loop, loop.call_later(TRIM_INTERVAL, _release)


def _release() -> None:
    global _pending
    _pending = None
    if _TRIM is not None:
        _TRIM()
