"""Issue 15 item 1: a 200 OK means live. After an ADD's 200 OK every matching packet is copied;
after a DELETE's 200 OK no packet is.

A real flowtapd captures the router's ingress (``live_support``); a stamped stream (each packet
carries its send time) crosses it to TARGET and to a bystander while md1 ADDs a criterion for
TARGET, holds it, DELETEs it, again and again. Then every packet sent more than 1 ms after an
ADD's 200 OK and before its DELETE was sent must have a copy (else it is *blind*), and no
packet sent more than 1 ms after a DELETE's 200 OK may have one (else the copy is *late*).
Quietly, and while md2 floods ADD/DELETE of criteria matching nothing in the stream.
The first tests check the judge itself on made-up logs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator

import pytest

from flowtap.tools.netns import unique_prefix
from flowtap.tools.stamped import Copy, Cycle, Sent, judge
from tests.integration.live_support import TAPPED_FLOWS, LiveRig, cycles, flood

CYCLES = 12
HOLD, PAUSE = 0.15, 0.1  # seconds the tap is on, then off, per cycle
RATE = 5000.0  # packets/s, half of them to TARGET
FLOOD_ADDS_PER_S = 300.0  # md2's ADDs a second, each DELETEd again: 600 requests/s
MS = 1_000_000



# ---- the judge, on made-up logs ------------------------------------------------------------

def stream(ms: range) -> list[Sent]:
    """One packet of the tapped flow per millisecond (seq = the millisecond)."""
    return [Sent(t, 0, t * MS) for t in ms]


ONE_CYCLE = [Cycle(add_sent=10 * MS, added=12 * MS, delete_sent=50 * MS, deleted=52 * MS)]


def test_judge_counts_a_packet_sent_after_the_200_ok_without_a_copy_as_blind() -> None:
    sent = stream(range(100))
    copies = [Copy(s.seq, 0, s.sent_ns, s.sent_ns + MS) for s in sent if 11 <= s.seq <= 51
              and s.seq != 30]  # fmt: skip
    verdict = judge(sent, copies, ONE_CYCLE, TAPPED_FLOWS)
    assert (verdict.blind, verdict.late, verdict.should_copy) == (1, 0, 36)  # 14..49 but 30
    assert verdict.blind_before_delete == 0
    assert verdict.first_copy_ns == [1 * MS] and verdict.last_copy_ns == [0]


def test_judge_tells_packets_lost_just_before_the_delete_apart() -> None:
    sent = stream(range(100))
    copies = [Copy(s.seq, 0, s.sent_ns, s.sent_ns + MS) for s in sent if 12 <= s.seq <= 44]
    verdict = judge(sent, copies, ONE_CYCLE, TAPPED_FLOWS)
    assert (verdict.blind, verdict.blind_before_delete) == (5, 5)  # 45..49, within 10 ms


def test_judge_counts_a_copy_of_a_packet_sent_after_the_delete_200_ok_as_late() -> None:
    sent = stream(range(100))
    copies = [Copy(s.seq, 0, s.sent_ns, s.sent_ns + MS) for s in sent if 13 <= s.seq <= 60]
    verdict = judge(sent, copies, ONE_CYCLE, TAPPED_FLOWS)
    assert (verdict.blind, verdict.late) == (0, 7)  # 54..60 (53 is within the 1 ms grace)
    assert verdict.last_copy_ns == [9 * MS]


def test_judge_counts_untapped_flows_and_copies_before_the_first_add() -> None:
    sent = [*stream(range(100)), Sent(1000, 1, 20 * MS)]
    copies = [Copy(5, 0, 5 * MS, 6 * MS), Copy(1000, 1, 20 * MS, 21 * MS)]
    copies += [Copy(s.seq, 0, s.sent_ns, s.sent_ns + MS) for s in sent[12:52]]
    verdict = judge(sent, copies, ONE_CYCLE, TAPPED_FLOWS)
    assert (verdict.blind, verdict.late, verdict.foreign) == (0, 1, 1)


# ---- a real flowtapd ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRig]:
    with LiveRig(tmp_path_factory.mktemp("live"), unique_prefix("live")) as the_rig:
        yield the_rig


async def run(rig: LiveRig, flood_adds_per_s: float) -> str:
    """Cycles over a fresh stream (and md2's flood, if any); the failures, or ""."""
    tap = rig.stream(RATE)
    md1, md2 = await rig.client("md1"), await rig.client("md2")
    stop = asyncio.Event()
    flooding = asyncio.create_task(flood(md2, stop, flood_adds_per_s)) if flood_adds_per_s else None
    try:
        await asyncio.sleep(0.3)  # the stream and the flood are steady before the first ADD
        done = await cycles(md1, CYCLES, HOLD, PAUSE)
    finally:
        stop.set()
        sent, copies, summary = await asyncio.to_thread(tap.stop)
        flooded = await flooding if flooding else None
        await md1.close()
        await md2.close()
    verdict = judge(sent, copies, done, TAPPED_FLOWS)
    context = (f"{verdict.summary()}; stream {summary['pps']:.0f} pps"
               + (f"; flood {flooded.adds_per_s:.0f} ADD/s" if flooded else ""))
    # a stream that never ran, or a flood that never flooded, would prove nothing
    assert verdict.should_copy >= CYCLES * HOLD * RATE / 2 * 0.5, context
    if flooded:
        assert flooded.adds_per_s >= flood_adds_per_s / 3, context
    broken = verdict.blind or verdict.late or verdict.foreign
    return context if broken else ""


@pytest.mark.netns
@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip")
@pytest.mark.parametrize("flood_rate", [0.0, FLOOD_ADDS_PER_S], ids=["quiet", "flood"])
async def test_every_packet_after_the_add_200_is_copied_none_after_the_delete_200(
    rig: LiveRig, flood_rate: float
) -> None:
    failures = await run(rig, flood_rate)
    assert not failures, failures

