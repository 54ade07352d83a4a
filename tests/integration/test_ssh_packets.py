"""Each NETCONF reply is one SSH packet: flowtap's SSH server drops asyncssh's empty
SSH_MSG_IGNORE before every packet, a countermeasure for CBC ciphers it never negotiates
(src/flowtap/sshd/packets.py). Counted on the client side, with ncclient's paramiko transport."""

from __future__ import annotations

from typing import Any

from flowtap.sshd.server import ENCRYPTION_ALGS
from tests.flowtapd import Flowtapd


def received_packets(manager: Any) -> int:
    packetizer = manager._session._transport.packetizer
    return int(packetizer._Packetizer__received_packets)


def test_a_small_reply_is_one_packet(shared_flowtapd: Flowtapd) -> None:
    with shared_flowtapd.connect() as m:
        m.get_config("running")  # settle whatever the session start sent
        before = received_packets(m)
        for _ in range(10):
            m.discard_changes()
        assert received_packets(m) - before == 10  # was 20: an ignore packet before each


def test_no_cbc_cipher_is_ever_negotiated() -> None:
    """The premise of dropping the ignore packets: every cipher offered has an unpredictable IV."""
    assert ENCRYPTION_ALGS and not [name for name in ENCRYPTION_ALGS if "cbc" in name]
