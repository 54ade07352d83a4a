"""Send each protocol message as one TCP segment train, not one per SSH packet.

asyncssh writes every channel packet with its own ``send()`` and precedes each one with an
SSH_MSG_IGNORE packet, so a one-line NETCONF or DTCP reply costs two loopback/NIC transmissions,
two receive wake-ups at the peer and, on loopback, the peer's whole TCP receive path twice in our
own ``send()``. Holding the socket corked while one message is written lets the kernel emit it
once: measured on loopback, a null NETCONF RPC goes from about 2,450 to 2,700 per second.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

Write = Callable[[bytes], None]


def corked(write: Write, sock: Any) -> Write:
    """``write`` wrapped so that everything it sends in one call leaves as one burst.

    ``sock`` is the transport's socket (``get_extra_info("socket")``); anything that is not a TCP
    socket gets ``write`` back unchanged.
    """
    if sock is None or getattr(sock, "type", None) != socket.SOCK_STREAM or sock.family not in (
        socket.AF_INET, socket.AF_INET6,
    ):  # fmt: skip
        return write

    def write_corked(data: bytes) -> None:
        with contextlib.suppress(OSError):  # closed underneath us: write() reports it
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        try:
            write(data)
        finally:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)

    return write_corked
