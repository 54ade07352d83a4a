"""Issue 4 acceptance 8 and 7 (500), with the real Dataplane capturing on ``lo``.

The appliance runs in-process so the test can start capture on ``lo`` the way the flow-tap
service hook will (``Dataplane.start``) and look at the registry and the dataplane directly.
Packets are real UDP datagrams to 127.0.0.77 (loopback), copies are received by a UDP socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from flowtap.app import Appliance
from flowtap.dataplane import CaptureInterface
from flowtap.dtcp.tuning import DtcpTuning
from flowtap.tools.dtcp_client import AsyncDtcpClient
from tests.integration.dtcp_support import add_fields, audit_records, make_flowtapd

TARGET = "127.0.0.77"
TARGET_PORT = 40077

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="capture on lo needs root")


class Rig:
    def __init__(self, app: Appliance, tmp_path: Path) -> None:
        self.app = app
        self.collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.collector.bind(("127.0.0.1", 0))
        self.collector.setblocking(False)
        self.tmp_path = tmp_path

    @property
    def cd_port(self) -> int:
        return int(self.collector.getsockname()[1])

    def fields(self, **kw: object) -> list[tuple[str, str]]:
        extra = [("Dest-Address", TARGET), ("Dest-Port", str(TARGET_PORT))]
        return add_fields(port=self.cd_port, source_port=self.cd_port + 1,  # type: ignore[arg-type]
                          extra=extra, **kw)

    async def client(self) -> AsyncDtcpClient:
        assert self.app.dtcp is not None and self.app.dtcp.port is not None
        return await AsyncDtcpClient.connect("127.0.0.1", self.app.dtcp.port, username="md1",
                                             password="md1-pw-1", known_hosts=None)  # fmt: skip

    async def active(self) -> None:
        """Wait until every confirmed change is in the dataplane (LI-9: well under 1 s)."""
        assert self.app.registry is not None
        await asyncio.wait_for(self.app.registry.publisher.flush(), 1.0)

    def send(self, count: int, payload: bytes = b"tap-me") -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
            for _ in range(count):
                out.sendto(payload, (TARGET, TARGET_PORT))

    async def copies(self, expected: int, timeout: float = 3.0) -> list[bytes]:
        got: list[bytes] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(BlockingIOError):
                while True:
                    got.append(self.collector.recv(65535))
            if len(got) >= expected:
                await asyncio.sleep(0.1)  # and nothing more
                with contextlib.suppress(BlockingIOError):
                    while True:
                        got.append(self.collector.recv(65535))
                return got
            await asyncio.sleep(0.02)
        return got


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, before_start: Callable[[Path], None] | None = None
              ) -> AsyncIterator[Rig]:  # fmt: skip
    template = make_flowtapd(tmp_path)
    init = tmp_path / "init.xml"
    init.write_text(template.init_config())
    state = tmp_path / "state"
    if before_start is not None:
        before_start(state)
    app = Appliance(state, init, dtcp_tuning=DtcpTuning())
    await app.start()
    assert app.dataplane is not None
    # what the flow-tap service hook does for `services flow-tap` with host-device lo
    app.dataplane.start([CaptureInterface("sp-0/0/0.0", "lo")], inet6=False)
    the_rig = Rig(app, tmp_path)
    try:
        yield the_rig
    finally:
        the_rig.collector.close()
        await app.stop()


async def until_gone(client: AsyncDtcpClient, criteria_id: int, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        listing = await client.list([("Flags", "Criteria")])
        if criteria_id not in [int(e["CRITERIA-ID"]) for e in listing.entries()]:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError("criterion did not expire")


async def test_timeout_total_removes_the_criterion_after_about_a_second(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        client = await r.client()
        async with client:
            added = time.monotonic()
            reply = await client.add(r.fields(static=False, total=1))
            static = (await client.add(r.fields())).criteria_id
            assert reply.status == 200
            await until_gone(client, reply.criteria_id)  # type: ignore[arg-type]
            assert time.monotonic() - added >= 0.95  # not before its second
            listing = await client.list([("Flags", "Criteria")])
            assert [int(e["CRITERIA-ID"]) for e in listing.entries()] == [static]
        await r.active()
        assert r.app.registry is not None and len(r.app.registry) == 1
    removed = [x for x in audit_records(make_flowtapd(tmp_path)) if x["event"] == "dtcp-remove"]
    assert removed[0]["result"] == "timeout-total"


async def test_timeout_packets_removes_after_n_matches(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        client = await r.client()
        async with client:
            reply = await client.add(r.fields(static=False, packets=3))
            await r.active()  # the criterion taps from here on
            r.send(2)
            assert len(await r.copies(2)) == 2
            stats = (await client.list([("Flags", "Stats")])).entries()[0]
            assert (stats["MATCHING-PACKETS"], stats["REMAINING-PACKETS"]) == ("2", "1")
            r.send(3)
            assert len(await r.copies(1)) == 1  # the 3rd match is the last copy
            await until_gone(client, reply.criteria_id)  # type: ignore[arg-type]
            await r.active()
            r.send(2)
            assert await r.copies(1, timeout=0.5) == []
    removed = [x for x in audit_records(make_flowtapd(tmp_path)) if x["event"] == "dtcp-remove"]
    assert removed[0]["result"] == "timeout-packets-or-bytes"


async def test_timeout_idle_counts_from_the_last_matching_packet(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        client = await r.client()
        async with client:
            reply = await client.add(r.fields(static=False, idle=1))
            await r.active()
            for _ in range(6):  # 1.5 s of traffic keeps it alive
                r.send(1)
                await asyncio.sleep(0.25)
            entries = (await client.list([("Flags", "Both")])).entries()
            assert entries and entries[0]["MATCHING-PACKETS"] == "6"
            assert len(await r.copies(6)) == 6
            await until_gone(client, reply.criteria_id)  # type: ignore[arg-type]


async def test_refused_table_is_isolated_and_the_others_keep_tapping(tmp_path: Path) -> None:
    async with rig(tmp_path) as r:
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # no SO_REUSEADDR
        blocker.bind(("127.0.0.1", 0))
        try:
            client = await r.client()
            async with client:
                good = (await client.add(r.fields())).criteria_id
                bad_fields = [*r.fields(), ("X-JTap-Cdest-Source-Port", "0")]
                bad_fields = [f for f in r.fields() if f[0] != "X-JTap-Cdest-Source-Port"] + [
                    ("X-JTap-Cdest-Source-Port", str(blocker.getsockname()[1]))]
                replies = await client.pipeline([client.build("ADD", bad_fields),
                                                  client.build("ADD", r.fields())])
                assert [x.status for x in replies] == [200, 200]  # accepted, then refused
                await r.active()
                await until_gone(client, replies[0].criteria_id)  # type: ignore[arg-type]
                listing = await client.list([("Flags", "Criteria")])
                assert [int(e["CRITERIA-ID"]) for e in listing.entries()] == [
                    good, replies[1].criteria_id]
                r.send(1)
                assert len(await r.copies(2)) == 2  # both good criteria copy
        finally:
            blocker.close()
    removed = [x for x in audit_records(make_flowtapd(tmp_path)) if x["event"] == "dtcp-remove"]
    assert [x["result"] for x in removed][:1] == ["install-failed"]


def small_tmpfs(state: Path) -> None:
    audit = state / "audit"
    audit.mkdir(parents=True, mode=0o700)
    state.chmod(0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(audit)],
                   check=True)  # fmt: skip


async def test_500_when_the_audit_log_cannot_write_and_nothing_is_installed(
    tmp_path: Path,
) -> None:
    audit = tmp_path / "state" / "audit"
    try:
        async with rig(tmp_path, small_tmpfs) as r:
            fd = os.open(audit / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
            with contextlib.suppress(OSError):
                while True:  # fill the file system (the log file may keep a partial page)
                    os.write(fd, b"\0" * 1024)
            os.close(fd)
            client = await r.client()
            async with client:
                replies = []
                for _ in range(50):
                    replies += await client.pipeline([client.build("ADD", r.fields())])
                    if replies[-1].status == 500:
                        break
                assert replies[-1].status_line == "DTCP/0.7 500 Server Internal Error"
                accepted = [x.criteria_id for x in replies if x.status == 200]
                await r.active()
                registry = r.app.registry
                assert registry is not None
                assert [e.criteria_id for e in registry.entries("md1")] == accepted
                assert len(r.app.dataplane.counters()) == len(accepted)
                assert (await client.list()).status == 500  # fail closed from now on
                assert len(registry) == len(accepted)
    finally:
        await asyncio.to_thread(subprocess.run, ["umount", str(audit)], check=False)
