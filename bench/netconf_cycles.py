"""NETCONF cycles/s: edit-config(candidate) + commit + get-config(running) on one session.

Starts its own flowtapd on loopback (full YANG validation, access control, persistence with
fsync), drives it with flowtap's raw asyncio client (ncclient's 0.1 s poll would cap any server
at ~10 RPC/s), and prints the figures. netopeer2 measured 177-206 cycles/s on this machine class.

    .venv/bin/python bench/netconf_cycles.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.flowtapd import SYS, Flowtapd, TestUser, free_port

from flowtap.netconf.client import NetconfClient

USER = TestUser("bench", "bench-pw", "li-admin")


async def run(port: int, seconds: float) -> dict[str, float]:
    client = await NetconfClient.connect("127.0.0.1", port, USER.name, USER.password)
    edits: list[float] = []
    commits: list[float] = []
    gets: list[float] = []
    started = time.perf_counter()
    n = 0
    while time.perf_counter() - started < seconds:
        # every cycle really changes running: entry n % 50 gets a new idle-timeout
        cfg = (f'<system xmlns="{SYS}"><login><class><name>bench-{n % 50}</name>'
               f"<permissions>view</permissions><idle-timeout>{n % 60 + 1}</idle-timeout>"
               "</class></login></system>")
        t0 = time.perf_counter()
        await client.edit_candidate(cfg)
        t1 = time.perf_counter()
        await client.commit()
        t2 = time.perf_counter()
        await client.get_config("running")
        t3 = time.perf_counter()
        edits.append(t1 - t0)
        commits.append(t2 - t1)
        gets.append(t3 - t2)
        n += 1
    elapsed = time.perf_counter() - started
    await client.close()
    return {
        "cycles": n,
        "cycles_per_s": n / elapsed,
        "rpc_per_s": 3 * n / elapsed,
        "edit_ms": statistics.median(edits) * 1000,
        "commit_ms": statistics.median(commits) * 1000,
        "get_ms": statistics.median(gets) * 1000,
        "p95_cycle_ms": statistics.quantiles(
            [a + b + c for a, b, c in zip(edits, commits, gets, strict=True)], n=20)[-1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Flowtapd(Path(tmp) / "state", free_port(), {"bench": USER})
        server.start()
        try:
            result = asyncio.run(run(server.port, args.seconds))
        finally:
            server.stop()
    print("NETCONF edit(candidate)+commit+get-config(running), one session, raw client")
    print(f"  cycles/s          {result['cycles_per_s']:.0f}   ({result['cycles']:.0f} cycles)")
    print(f"  RPC/s             {result['rpc_per_s']:.0f}")
    print(f"  median edit       {result['edit_ms']:.2f} ms")
    print(f"  median commit     {result['commit_ms']:.2f} ms (validation + fsync'd persistence)")
    print(f"  median get-config {result['get_ms']:.2f} ms")
    print(f"  p95 cycle         {result['p95_cycle_ms']:.2f} ms")
    print("  reference: netopeer2 177-206 cycles/s on this machine class; target >= 400")
    if args.json:
        args.json.write_text(json.dumps({
            "title": "NETCONF config plane (bench/netconf_cycles.py)",
            "rows": [
                {"metric": "edit+commit+get-config cycles/s, one session",
                 "value": round(result["cycles_per_s"]), "target": ">= 400",
                 "reference": "netopeer2 177-206"},
                {"metric": "RPC/s", "value": round(result["rpc_per_s"])},
                {"metric": "median edit-config ms", "value": round(result["edit_ms"], 2)},
                {"metric": "median commit ms (validation + fdatasync)",
                 "value": round(result["commit_ms"], 2)},
                {"metric": "median get-config ms", "value": round(result["get_ms"], 2)},
                {"metric": "p95 cycle ms", "value": round(result["p95_cycle_ms"], 2)},
            ],
        }, indent=2))


if __name__ == "__main__":
    main()
