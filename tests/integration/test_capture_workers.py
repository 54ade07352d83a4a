"""Issue 15 item 4: ``services flow-tap capture-workers`` changes the number of capture worker
processes at commit, without losing a criterion, its counters, or a copy.

A stamped stream crosses the router while md1's criterion taps it; the commit goes from one
worker to two and back. Afterwards: the criterion is still listed, its MATCHING-PACKETS only
grew, every packet sent more than 1 ms after the ADD's 200 OK (and before its DELETE) has a
copy, and the router's ingress device has one ring per worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from flowtap.tools.dtcp_client import AsyncDtcpClient
from flowtap.tools.netns import unique_prefix
from flowtap.tools.stamped import Cycle, judge
from tests.integration.live_support import SVC, TAPPED_FLOWS, LiveRig, tap_fields

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")  # fmt: skip
RATE = 4000.0
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def rings_on(rig: LiveRig, device: str) -> int:
    """Packet sockets bound to ``device`` in the router's namespace (one per worker)."""
    assert rig.server.proc is not None
    rows = Path(f"/proc/{rig.server.proc.pid}/net/packet").read_text().splitlines()[1:]
    ifindex = json.loads(rig.topo.ip("rtr", "-j", "link", "show", device).stdout)[0]["ifindex"]
    return sum(1 for r in rows if int(r.split()[4]) == ifindex)


def set_workers(rig: LiveRig, workers: int) -> None:
    with rig.server.connect() as m:
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}"><services xmlns="{SVC}"><flow-tap><capture-workers>{workers}'
            "</capture-workers></flow-tap></services></config>"))
        m.commit()


def matching_packets(listing_raw: bytes) -> int:
    for line in listing_raw.decode().splitlines():
        if line.startswith("MATCHING-PACKETS"):
            return int(line.split(":", 1)[1].strip().split()[0])
    raise AssertionError(f"no MATCHING-PACKETS in {listing_raw!r}")


def test_changing_capture_workers_keeps_criteria_counters_and_copies(tmp_path: Path) -> None:
    with LiveRig(tmp_path, unique_prefix("ftcw"), workers=1) as rig:
        asyncio.run(_scenario(rig))


async def _scenario(rig: LiveRig) -> None:
    md1 = await rig.client("md1")
    stream = rig.stream(RATE)
    try:
        cycle, counts = await _retune(rig, md1)
    finally:
        await asyncio.sleep(0.3)
        sent, copies, _summary = await asyncio.to_thread(stream.stop)
        await md1.close()
    assert counts == sorted(counts) and counts[0] > 0, counts  # never reset, always counting
    verdict = judge(sent, copies, [cycle], TAPPED_FLOWS)
    assert verdict.blind == 0 and verdict.late == 0, verdict.summary()


async def _retune(rig: LiveRig, md1: AsyncDtcpClient) -> tuple[Cycle, list[int]]:
    """ADD the tap, go to two workers and back to one, DELETE it; the MATCHING-PACKETS seen."""
    await asyncio.sleep(0.3)
    add_sent = time.monotonic_ns()
    added = await md1.add(tap_fields())
    added_at = time.monotonic_ns()
    assert added.status == 200, added.raw
    await asyncio.sleep(0.5)
    assert rings_on(rig, "rin") == 1
    counts = [matching_packets((await md1.list()).raw)]
    for workers in (2, 1):
        await asyncio.to_thread(set_workers, rig, workers)
        assert rings_on(rig, "rin") == workers  # the commit returns with the new rings in use
        await asyncio.sleep(0.4)
        listing = await md1.list()
        assert f"CRITERIA-ID: {added.criteria_id}\r\n".encode() in listing.raw
        counts.append(matching_packets(listing.raw))
    delete_sent = time.monotonic_ns()
    deleted = await md1.delete([("Criteria-ID", str(added.criteria_id)), ("Flags", "STATIC")])
    deleted_at = time.monotonic_ns()
    assert deleted.status == 200, deleted.raw
    return Cycle(add_sent, added_at, delete_sent, deleted_at), counts
