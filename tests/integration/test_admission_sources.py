"""Issue 13 row 3: hosts that never log in cannot keep the mediation device out.

The DTCP service listens on every address (no ``listen-address``) with the seed's limits
(connection-limit 5, rate-limit 5). Raw TCP connections from other loopback addresses, held open
and never authenticated, used to spend the IPv4 family's rate-limit (and connection-limit) so
that the mediation device on 127.0.0.1 was refused every time.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.flowtapd import Flowtapd
from tests.integration.dtcp_support import make_flowtapd, md


@pytest.fixture
def every_address(tmp_path: Path) -> Iterator[Flowtapd]:
    # a long login timeout: the flood's connections stay open for the whole test
    server = make_flowtapd(tmp_path, env={"FLOWTAP_DTCP_LOGIN_TIMEOUT": "120"})
    server.system_services = (
        f"<flow-tap-dtcp><ssh><port>{server.dtcp_port}</port><connection-limit>5"
        "</connection-limit><rate-limit>5</rate-limit></ssh></flow-tap-dtcp>")  # fmt: skip
    server.start()
    yield server
    server.stop()


@contextlib.contextmanager
def flood(port: int, sources: list[str], per_source: int) -> Iterator[list[bytes]]:
    """Raw TCP connections from ``sources`` that read the SSH banner and then say nothing;
    yields what each read first (the banner, or b"" when refused)."""
    socks, banners = [], []
    try:
        for source in sources:
            for _ in range(per_source):
                sock = socket.socket()
                socks.append(sock)
                sock.settimeout(5)
                sock.bind((source, 0))
                sock.connect((source, port))  # the listener serves every address
                try:
                    banners.append(sock.recv(64))
                except ConnectionResetError:
                    banners.append(b"")
        yield banners
    finally:
        for sock in socks:
            sock.close()


async def mediation_device_admitted(server: Flowtapd, tries: int) -> int:
    admitted = 0
    for _ in range(tries):
        with contextlib.suppress(Exception):
            async with md(server) as client:
                if (await client.noop()).status == 200:
                    admitted += 1
    return admitted


async def test_a_flood_from_one_address_only_throttles_itself(every_address: Flowtapd) -> None:
    with flood(every_address.dtcp_port, ["127.0.0.2"], 15) as banners:
        admitted = await mediation_device_admitted(every_address, 5)
    print(f"\nmediation device admitted {admitted} of 5 under a flood of 15 from 127.0.0.2")
    assert admitted == 5
    # rate-limit 5, counted for 127.0.0.2 alone: the flood's other connections were refused at
    # once, before the SSH version exchange
    assert sum(b.startswith(b"SSH-2.0-") for b in banners) == 5


async def test_a_flood_from_many_addresses_cannot_fill_the_pre_auth_pool(
    every_address: Flowtapd,
) -> None:
    # 8 addresses x 5 (rate-limit per source) = 40 connections held > max-pre-auth 32
    sources = [f"127.0.0.{i}" for i in range(2, 10)]
    with flood(every_address.dtcp_port, sources, 5):
        admitted = await mediation_device_admitted(every_address, 3)
    print(f"\nmediation device admitted {admitted} of 3 under a flood of 40 from 8 addresses")
    assert admitted == 3
