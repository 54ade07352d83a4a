"""DTCP ADD throughput with 10,000 criteria installed, LIST latency at 10,000, and how soon a
criterion taps after its 200 OK (LI-9).

Starts its own appliance in a subprocess (the DTCP service, the fsynced LI audit log, the
registry and publisher, and the real Dataplane capturing on ``lo`` when run as root, as the
flow-tap hook will make it), connects one mediation device over SSH and measures:

  fill            ADD/s while installing the first N criteria (pipelined, W in flight)
  list            LIST latency with N criteria (Flags Criteria, and Flags Both with counters)
  first copy      on a quiet system with N installed: 200 OK of an ADD -> first copy of a
                  matching packet received (LI-9; root only, capture on lo)
  add pipelined   ADD/s on one session with N installed, W requests in flight
  add sequential  ADD/s on one session with N installed, one request at a time (Toby-style)
  publish         the publisher's "change -> its delta applied" latency over the whole run
                  (max, p50, p99; floods included) and the last run's duration (reported as
                  set_criteria_last_ms, the name bench/REPORT.md has used since whole tables)

    .venv/bin/python bench/dtcp_add.py [--criteria 10000] [--measure 2000] [--window 64]

No figure is asserted; the issue's target is >= 2,000 ADD/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.dtcp_support import USERS, make_flowtapd

from flowtap.app import Appliance
from flowtap.dataplane import CaptureInterface
from flowtap.tools.dtcp_client import AsyncDtcpClient

PROBE = "127.0.0.88"
PROBE_PORT = 40088


def fields(i: int, cd_port: int) -> list[tuple[str, str]]:
    """A distinct /32 target per criterion, as real taps are."""
    return [
        ("Cdest-ID", "cd1"), ("Dest-Address", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"),
        ("Protocol", "17"), ("Dest-Port", str(1024 + i % 60000)),
        ("X-JTap-Cdest-Dest-Address", "127.0.0.1"), ("X-JTap-Cdest-Dest-Port", str(cd_port)),
        ("X-JTap-Cdest-Source-Address", "127.0.0.1"),
        ("X-JTap-Cdest-Source-Port", str(cd_port + 1)), ("Flags", "STATIC"),
    ]  # fmt: skip


async def windowed(client: AsyncDtcpClient, requests: list[bytes], window: int) -> float:
    """Send with ``window`` requests in flight; returns requests per second."""
    started = time.perf_counter()
    sent = min(window, len(requests))
    client.process.stdin.write(b"".join(requests[:sent]))
    done = 0
    while done < len(requests):
        replies = await client.read(1, timeout=60)
        assert replies and replies[0].status == 200, replies
        done += 1
        if sent < len(requests):
            client.process.stdin.write(requests[sent])
            sent += 1
    return len(requests) / (time.perf_counter() - started)


async def first_copy(client: AsyncDtcpClient, collector: socket.socket, cd_port: int) -> float:
    """Seconds from an ADD's 200 OK to the first copy of a packet sent every millisecond."""
    probe = [(n, PROBE if n == "Dest-Address" else str(PROBE_PORT) if n == "Dest-Port" else v)
             for n, v in fields(0, cd_port)]  # fmt: skip
    reply = await client.add(probe)
    assert reply.status == 200
    ok_at = time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        while time.perf_counter() - ok_at < 5:
            out.sendto(b"probe", (PROBE, PROBE_PORT))
            with contextlib.suppress(BlockingIOError):
                collector.recv(65535)
                return time.perf_counter() - ok_at
            await asyncio.sleep(0.001)
    return float("nan")


async def settle(client: AsyncDtcpClient) -> None:
    """Give the server's publisher time to install everything (no flood meanwhile)."""
    for _ in range(30):
        await client.noop()
        await asyncio.sleep(0.1)


async def measure(port: int, n: int, m: int, window: int) -> dict[str, float]:
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.setblocking(False)
    cd_port = collector.getsockname()[1]
    client = await AsyncDtcpClient.connect("127.0.0.1", port, username="md1",
                                           password=USERS["md1"].password, known_hosts=None)
    out: dict[str, float] = {}
    async with client:
        out["fill_add_per_s"] = await windowed(
            client, [client.build("ADD", fields(i, cd_port)) for i in range(n)], window)
        await settle(client)  # the publisher installs everything added
        for flags in ("Criteria", "Both"):  # LIST latency at exactly N criteria
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                reply = await client.list([("Flags", flags)])
                times.append(time.perf_counter() - t0)
                assert reply.status == 200 and len(reply.entries()) == n
            out[f"list_{flags.lower()}_ms"] = statistics.median(times) * 1000
        out["list_reply_bytes"] = len(reply.raw)
        if os.geteuid() == 0:  # a quiet system with N installed: ADD -> first copy
            out["first_copy_ms"] = await first_copy(client, collector, cd_port) * 1000
            await settle(client)
        out["add_pipelined_per_s"] = await windowed(
            client, [client.build("ADD", fields(n + i, cd_port)) for i in range(m)], window)
        await settle(client)
        seq_n = max(1, m // 4)
        out["add_sequential_per_s"] = await windowed(
            client, [client.build("ADD", fields(n + m + i, cd_port)) for i in range(seq_n)], 1)
        out["installed_at_end"] = n + m + seq_n + 1
    collector.close()
    return out


def serve(state: Path, init: Path) -> None:
    """The server side (a subprocess): the appliance, capture on lo, stats on SIGTERM."""

    async def main() -> None:
        app = Appliance(state, init)
        await app.start()
        if os.geteuid() == 0 and app.dataplane is not None:  # what the flow-tap hook does
            app.dataplane.start([CaptureInterface("sp-0/0/0.0", "lo")], inet6=False)
        assert app.dtcp is not None and app.registry is not None
        print(json.dumps({"port": app.dtcp.port}), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        stats = app.registry.publisher.stats
        report = {"publish_runs": stats.runs, "publish_max_ms": stats.max_latency * 1000,
                  "publish_p50_ms": stats.percentile(0.5) * 1000,
                  "publish_p99_ms": stats.percentile(0.99) * 1000,
                  "set_criteria_last_ms": stats.last_seconds * 1000,
                  "audit_fsyncs": app.audit_log.syncs if app.audit_log else 0}
        await app.stop()
        print(json.dumps(report), flush=True)

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--criteria", type=int, default=10_000)
    parser.add_argument("--measure", type=int, default=4_000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve", nargs=2, metavar=("STATE", "INIT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        template = make_flowtapd(Path(tmp))
        init = Path(tmp) / "init.xml"
        init.write_text(template.init_config())
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(template.state_dir),
                                 str(init)], stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["port"]
        try:
            figures = asyncio.run(measure(port, args.criteria, args.measure, args.window))
        finally:
            proc.send_signal(signal.SIGTERM)
            server = json.loads(proc.stdout.readline() or "{}")
            proc.wait(30)
    figures.update(server)
    print(f"DTCP ADD benchmark: {args.criteria} criteria installed, window {args.window}")
    for name, value in figures.items():
        print(f"  {name:24} {value:12.1f}")
    print(json.dumps({k: round(v, 2) for k, v in figures.items()}))
    if args.json:
        rows = [{"metric": name, "value": round(value, 1)} for name, value in figures.items()]
        args.json.write_text(json.dumps({
            "title": f"DTCP over SSH (bench/dtcp_add.py, {args.criteria:,} criteria installed)",
            "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
