"""How long one mediation device's bulk request (LIST, REFRESH, DELETE over N criteria) holds up
another's: the NOOP round trip of a second session while the first one works (issue 13 item 1).

Starts a real flowtapd (tests/flowtapd.py), installs N non-static criteria on ``md1`` (pipelined
ADDs, ``dtcp_support.install``), then, while ``md2`` (in a process of its own, so that parsing
md1's replies never delays it) sends NOOPs one at a time and times each round trip, ``md1`` runs:

  idle            nothing for 2 s (the baseline)
  list            LIST Flags Both of all N, five times
  refresh         REFRESH Criteria-ID * (Timeout-Total) of all N, five times
  delete          DELETE Criteria-ID * of all N, once

and prints, per phase, md1's request time (median) and the round trips of md2's NOOPs that
overlapped it (max and median).

    .venv/bin/python bench/dtcp_bulk_fairness.py [--criteria 10000]

No figure is asserted: tests/integration/test_dtcp_fairness.py holds the correctness bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Event
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.flowtapd import Flowtapd
from tests.integration.dtcp_support import install, make_flowtapd, md

from flowtap.tools.dtcp_client import Reply

Window = tuple[float, float]


async def ping(server: Flowtapd, stop: Event) -> list[tuple[float, float]]:
    """The other mediation device: NOOPs one at a time until ``stop``; (start, rtt) rows."""
    rows = []
    async with md(server, "md2") as client:
        while not stop.is_set():
            started = time.time()
            assert (await client.noop()).status == 200
            rows.append((started, time.time() - started))
    return rows


def pinger(server: Flowtapd, stop: Event, out: Path) -> None:
    out.write_text(json.dumps(asyncio.run(ping(server, stop))))


async def phase(work: Callable[[], Awaitable[Reply]] | None, times: int) -> tuple[float, Window]:
    """Run ``work`` ``times`` times (or sleep 2 s): its median duration and its time window."""
    begin = time.time()
    durations = []
    if work is None:
        await asyncio.sleep(2)
    for _ in range(times if work is not None else 0):
        started = time.perf_counter()
        reply = await work()
        durations.append(time.perf_counter() - started)
        assert reply.status == 200, reply.raw[:200]
    window = (begin, time.time())
    await asyncio.sleep(0.5)  # phases never overlap, not even through a slow NOOP
    return (statistics.median(durations) if durations else 0.0), window


async def measure(server: Flowtapd, n: int, rtts: Path) -> dict[str, tuple[float, Window]]:
    out = {}
    async with md(server, "md1") as worker:
        await install(worker, n)
        await asyncio.sleep(3)  # let the publisher install the table before measuring
        stop = multiprocessing.Event()
        process = multiprocessing.Process(target=pinger, args=(server, stop, rtts))
        process.start()
        await asyncio.sleep(2)  # connected and pinging
        out["idle"] = await phase(None, 0)
        out["list"] = await phase(lambda: worker.list([("Flags", "Both")]), 5)
        refresh = [("Criteria-ID", "*"), ("Timeout-Total", "86400")]
        out["refresh"] = await phase(lambda: worker.refresh(refresh), 5)
        out["delete"] = await phase(lambda: worker.delete([("Criteria-ID", "*")]), 1)
        stop.set()
        await asyncio.to_thread(process.join, 30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--criteria", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = make_flowtapd(Path(tmp))
        server.start()
        try:
            phases = asyncio.run(measure(server, args.criteria, Path(tmp) / "rtts.json"))
        finally:
            server.stop()
        rtts = json.loads((Path(tmp) / "rtts.json").read_text())
    print(f"DTCP bulk requests over {args.criteria:,} criteria vs another session's NOOP")
    print(f"  {'phase':8} {'request ms':>11} {'NOOP max ms':>12} {'NOOP p50 ms':>12} {'NOOPs':>6}")
    figures = {}
    for name, (duration, (begin, end)) in phases.items():
        overlapping = [rtt for start, rtt in rtts if start < end and start + rtt > begin]
        row = figures[name] = {
            "request_ms": round(duration * 1000, 1), "noops": len(overlapping),
            "noop_max_ms": round(max(overlapping) * 1000, 1),
            "noop_p50_ms": round(statistics.median(overlapping) * 1000, 2),
        }  # fmt: skip
        print(f"  {name:8} {row['request_ms']:11.1f} {row['noop_max_ms']:12.1f} "
              f"{row['noop_p50_ms']:12.2f} {row['noops']:6d}")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
