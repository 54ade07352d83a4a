"""How long one mediation device's bulk work (LIST, REFRESH, DELETE over N criteria, an ADD
flood) holds up another's ADD (issue 15 item 6, issue 13 item 1).

Starts a real flowtapd (tests/flowtapd.py), installs N non-static criteria on ``md1`` (pipelined
ADDs, ``dtcp_support.install``), then, while ``md2`` (in a process of its own, so that parsing
md1's replies never delays it) adds a criterion and deletes it again, one request at a time,
timing each ADD's round trip (its 200 OK means the criterion taps), ``md1`` runs:

  idle            nothing for 2 s (the baseline)
  list            LIST Flags Both of all N, five times
  flood           ADDs of 5,000 more criteria, 64 in flight (as fast as the appliance takes them)
  refresh         REFRESH Criteria-ID * (Timeout-Total) of all of them, five times
  delete          DELETE Criteria-ID * of all of them, once

and prints, per phase, md1's request time (median) and the round trips of md2's ADDs that
overlapped it (max, p99, median), and how much the worst exceeds the idle median: the delay the
bulk work caused (goal: <= 10 ms).

    .venv/bin/python bench/dtcp_bulk_fairness.py [--criteria 10000] [--json FILE]

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
from tests.integration.dtcp_support import install, make_flowtapd, md, numbered_add_fields

from flowtap.tools.dtcp_client import Reply

Window = tuple[float, float]


async def ping(server: Flowtapd, stop: Event) -> list[tuple[float, float]]:
    """The other mediation device: ADD, DELETE, ADD... one at a time until ``stop``; (start,
    rtt) of each ADD."""
    rows = []
    async with md(server, "md2") as client:
        k = 0
        while not stop.is_set():
            started = time.time()
            added = await client.add(numbered_add_fields(PROBES + k % 1000))
            rows.append((started, time.time() - started))
            assert added.status == 200, added.raw[:200]
            assert (await client.delete([("Criteria-ID", str(added.criteria_id))])).status == 200
            k += 1
    return rows


PROBES = 200_000  # md2's criteria are numbered from here (another agency's namespace anyway)
FLOOD = 5_000


def pinger(server: Flowtapd, stop: Event, out: Path) -> None:
    out.write_text(json.dumps(asyncio.run(ping(server, stop))))


async def phase(work: Callable[[], Awaitable[object]] | None, times: int
                ) -> tuple[float, Window]:  # fmt: skip
    """Run ``work`` ``times`` times (or sleep 2 s): its median duration and its time window."""
    begin = time.time()
    durations = []
    if work is None:
        await asyncio.sleep(2)
    for _ in range(times if work is not None else 0):
        assert work is not None
        started = time.perf_counter()
        reply = await work()
        durations.append(time.perf_counter() - started)
        assert not isinstance(reply, Reply) or reply.status == 200, reply.raw[:200]
    window = (begin, time.time())
    await asyncio.sleep(0.5)  # phases never overlap, not even through a slow probe
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
        out["flood"] = await phase(lambda: install(worker, FLOOD, first=n), 1)
        refresh = [("Criteria-ID", "*"), ("Timeout-Total", "86400")]
        out["refresh"] = await phase(lambda: worker.refresh(refresh), 5)
        out["delete"] = await phase(lambda: worker.delete([("Criteria-ID", "*")]), 1)
        stop.set()
        await asyncio.to_thread(process.join, 30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--criteria", type=int, default=10_000)
    parser.add_argument("--json", type=Path, help="write make bench's report rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = make_flowtapd(Path(tmp))
        server.start()
        try:
            phases = asyncio.run(measure(server, args.criteria, Path(tmp) / "rtts.json"))
        finally:
            server.stop()
        rtts = json.loads((Path(tmp) / "rtts.json").read_text())
    print(f"DTCP bulk work over {args.criteria:,} criteria vs another agency's ADD round trip")
    print(f"  {'phase':8} {'request ms':>11} {'ADD max ms':>11} {'p99 ms':>8} {'p50 ms':>8} "
          f"{'ADDs':>6} {'delay ms':>9}")
    figures = {}
    idle = 0.0
    for name, (duration, (begin, end)) in phases.items():
        overlapping = sorted(rtt for start, rtt in rtts if start < end and start + rtt > begin)
        p50 = statistics.median(overlapping)
        if name == "idle":
            idle = p50
        row = figures[name] = {
            "request_ms": round(duration * 1000, 1), "adds": len(overlapping),
            "add_max_ms": round(overlapping[-1] * 1000, 1),
            "add_p99_ms": round(overlapping[int(0.99 * (len(overlapping) - 1))] * 1000, 1),
            "add_p50_ms": round(p50 * 1000, 2),
            "delay_ms": round((overlapping[-1] - idle) * 1000, 1),
        }  # fmt: skip
        print(f"  {name:8} {row['request_ms']:11.1f} {row['add_max_ms']:11.1f} "
              f"{row['add_p99_ms']:8.1f} {row['add_p50_ms']:8.2f} {row['adds']:6d} "
              f"{row['delay_ms']:9.1f}")  # fmt: skip
    print(json.dumps(figures))
    if args.json:
        rows = [{"metric": "another agency's ADD round trip, idle (p50 / max)",
                 "value": f"{figures['idle']['add_p50_ms']} / {figures['idle']['add_max_ms']} ms"}]
        what = {"list": f"a LIST of {args.criteria:,} criteria (x5)",
                "flood": f"an ADD flood of {FLOOD:,} ({FLOOD / phases['flood'][0]:,.0f} ADD/s)",
                "refresh": "REFRESH * (x5)", "delete": "DELETE *"}
        rows += [{"metric": f"another agency's ADD delayed by {label} (worst - idle p50)",
                  "value": f"{figures[k]['delay_ms']} ms (p99 {figures[k]['add_p99_ms']} ms)",
                  "target": "<= 10 ms" if k in ("list", "flood") else ""}
                 for k, label in what.items()]
        args.json.write_text(json.dumps({"title": "No head-of-line blocking between agencies "
                                         "(bench/dtcp_bulk_fairness.py)", "rows": rows}))


if __name__ == "__main__":
    main()
