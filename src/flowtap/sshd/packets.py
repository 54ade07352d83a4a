"""One SSH packet per reply: without asyncssh's CBC countermeasure, which flowtap never needs.

Once a connection encrypts, asyncssh sends an empty SSH_MSG_IGNORE before every packet it sends:
the defence against the chosen-plaintext attack on CBC mode's predictable IV (RFC 4251 §9.3.1;
OpenSSH did the same for CBC ciphers). flowtap's servers negotiate no CBC cipher
(``server.ENCRYPTION_ALGS``: AES-GCM and AES-CTR, whose IV no peer can predict), so the extra
packet buys nothing and costs each reply a second encryption, MAC and socket write, and each
client a second packet to read: about a twentieth of a NETCONF edit+commit+get-config cycle.
RFC 4253 §11.2 makes sending it optional.
"""

from __future__ import annotations

from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE

_EMPTY = b"\x00\x00\x00\x00"  # an SSH string of no bytes: what asyncssh's ignore packet holds


def without_cbc_ignores(conn: asyncssh.SSHServerConnection) -> None:
    """Make ``conn`` drop the empty ignore packets asyncssh inserts; every other packet,
    ignore packets with data included, goes as before. asyncssh sends through the instance's
    ``send_packet``, so the one it inserts before each packet meets this filter first."""
    send = conn.send_packet

    def send_packet(pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype == MSG_IGNORE and args == (_EMPTY,):
            return
        send(pkttype, *args, handler=handler)

    setattr(conn, "send_packet", send_packet)  # noqa: B010 (an instance's method, not a field)
