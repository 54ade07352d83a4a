"""How long one mediation device's bulk request (LIST, REFRESH, DELETE over N criteria) holds up
another's: the NOOP round trip of a second session while the first one works (issue 13 item 1).

Starts a real flowtapd (tests/flowtapd.py), installs N non-static criteria on ``md1`` (pipelined
ADDs, as bench/dtcp_add.py does), then, while ``md2`` sends NOOPs one at a time and times each
round trip, ``md1`` runs:

  idle            nothing (the baseline)
  list            LIST Flags Both of all N, five times
  refresh         REFRESH Criteria-ID * (Timeout-Total) of all N, five times
  delete          DELETE Criteria-ID * of all N, once

and prints, per phase, md1's request time (median) and md2's NOOP round trip (max and median).

    .venv/bin/python bench/dtcp_bulk_fairness.py [--criteria 10000]

No figure is asserted: tests/integration/test_dtcp_fairness.py holds the correctness bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.dtcp_support import make_flowtapd, md

from flowtap.dtcp.client import AsyncDtcpClient, Reply


def add_fields(i: int) -> list[tuple[str, str]]:
    """A distinct /32 target per criterion; not static, so REFRESH touches every one."""
    return [
        ("Cdest-ID", "cd1"), ("Dest-Address", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"),
        ("Protocol", "17"), ("Dest-Port", str(1024 + i % 60000)),
        ("X-JTap-Cdest-Dest-Address", "127.0.0.1"), ("X-JTap-Cdest-Dest-Port", "47000"),
        ("X-JTap-Cdest-Source-Address", "127.0.0.1"), ("X-JTap-Cdest-Source-Port", "47001"),
        ("Timeout-Total", "86400"),
    ]  # fmt: skip


async def fill(client: AsyncDtcpClient, n: int, window: int = 64) -> None:
    requests = [client.build("ADD", add_fields(i)) for i in range(n)]
    sent = min(window, n)
    client.process.stdin.write(b"".join(requests[:sent]))
    for _ in range(n):
        (reply,) = await client.read(1, timeout=60)
        assert reply.status == 200, reply.raw
        if sent < n:
            client.process.stdin.write(requests[sent])
            sent += 1


async def ping(client: AsyncDtcpClient, stop: asyncio.Event, rtts: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        assert (await client.noop()).status == 200
        rtts.append(time.perf_counter() - started)


async def phase(
    pinger: AsyncDtcpClient, work: Callable[[], Awaitable[Reply]] | None, times: int
) -> dict[str, float]:
    stop, rtts = asyncio.Event(), []
    task = asyncio.create_task(ping(pinger, stop, rtts))
    await asyncio.sleep(0.2)
    rtts.clear()  # only round trips that overlap the work
    durations = []
    if work is None:
        await asyncio.sleep(2)
    for _ in range(times if work is not None else 0):
        started = time.perf_counter()
        reply = await work()
        durations.append(time.perf_counter() - started)
        assert reply.status == 200, reply.raw[:200]
    stop.set()
    await task
    return {
        "request_ms": statistics.median(durations) * 1000 if durations else 0.0,
        "noop_max_ms": max(rtts) * 1000,
        "noop_p50_ms": statistics.median(rtts) * 1000,
        "noops": len(rtts),
    }


async def measure(server_port_user: tuple[object, int]) -> dict[str, dict[str, float]]:
    server, n = server_port_user
    out: dict[str, dict[str, float]] = {}
    async with md(server, "md1") as worker, md(server, "md2") as pinger:  # type: ignore[arg-type]
        await fill(worker, n)
        out["idle"] = await phase(pinger, None, 0)
        out["list"] = await phase(pinger, lambda: worker.list([("Flags", "Both")]), 5)
        refresh = [("Criteria-ID", "*"), ("Timeout-Total", "86400")]
        out["refresh"] = await phase(pinger, lambda: worker.refresh(refresh), 5)
        delete = [("Criteria-ID", "*")]
        out["delete"] = await phase(pinger, lambda: worker.delete(delete), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--criteria", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = make_flowtapd(Path(tmp))
        server.start()
        try:
            figures = asyncio.run(measure((server, args.criteria)))
        finally:
            server.stop()
    print(f"DTCP bulk requests over {args.criteria:,} criteria vs another session's NOOP")
    print(f"  {'phase':8} {'request ms':>11} {'NOOP max ms':>12} {'NOOP p50 ms':>12} {'NOOPs':>6}")
    for name, row in figures.items():
        print(f"  {name:8} {row['request_ms']:11.1f} {row['noop_max_ms']:12.1f} "
              f"{row['noop_p50_ms']:12.2f} {row['noops']:6.0f}")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
