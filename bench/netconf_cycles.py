"""NETCONF cycles/s: edit-config(candidate) + commit + get-config(running) on one session.

Starts its own flowtapd on loopback (full YANG validation, access control, persistence with
fdatasync), drives it with flowtap's raw asyncio client (ncclient's 0.1 s poll would cap any
server at ~10 RPC/s), and prints the figures, with the CPU time the server and the client spent
per cycle (client and server share the machine's two cores and take turns). netopeer2 measured
177-206 cycles/s on this machine class with a raw paramiko client, so the same cycle is also run
through a raw paramiko client: that figure is the like-for-like comparison.

    .venv/bin/python bench/netconf_cycles.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.flowtapd import SYS, Flowtapd, TestUser, free_port

from flowtap.netconf.framing import FrameDecoder, encode_chunked, encode_eom
from flowtap.tools.netconf_client import NetconfClient

USER = TestUser("bench", "bench-pw", "li-admin")
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"


def edit(n: int) -> str:
    """Every cycle really changes running: entry n % 50 gets a new idle-timeout."""
    return (f'<system xmlns="{SYS}"><login><class><name>bench-{n % 50}</name>'
            f"<permissions>view</permissions><idle-timeout>{n % 60 + 1}</idle-timeout>"
            "</class></login></system>")  # fmt: skip


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(port: int, seconds: float, window: float) -> dict[str, Any]:
    client = await NetconfClient.connect("127.0.0.1", port, USER.name, USER.password)
    edits: list[float] = []
    commits: list[float] = []
    gets: list[float] = []
    windows: list[float] = []  # cycles/s of each window: one noisy moment spoils one window
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        window_start, window_n = time.perf_counter(), n
        while time.perf_counter() - window_start < window:
            t0 = time.perf_counter()
            await client.raw_rpc("<edit-config><target><candidate/></target>"
                                 f"<config>{edit(n)}</config></edit-config>")  # fmt: skip
            t1 = time.perf_counter()
            await client.raw_rpc("<commit/>")
            t2 = time.perf_counter()
            await client.raw_rpc("<get-config><source><running/></source></get-config>")
            t3 = time.perf_counter()
            edits.append(t1 - t0)
            commits.append(t2 - t1)
            gets.append(t3 - t2)
            n += 1
        windows.append((n - window_n) / (time.perf_counter() - window_start))
    elapsed = time.perf_counter() - started
    await client.close()
    return {
        "cycles": n,
        "cycles_per_s": statistics.median(windows),
        "windows": windows,
        "overall_per_s": n / elapsed,
        "rpc_per_s": 3 * statistics.median(windows),
        "edit_ms": statistics.median(edits) * 1000,
        "commit_ms": statistics.median(commits) * 1000,
        "get_ms": statistics.median(gets) * 1000,
        "p95_cycle_ms": statistics.quantiles(
            [a + b + c for a, b, c in zip(edits, commits, gets, strict=True)], n=20)[-1] * 1000,
    }


def run_paramiko(port: int, seconds: float) -> float:
    """The same cycle through a raw paramiko client (how netopeer2's figure was measured)."""
    transport = paramiko.Transport(("127.0.0.1", port))
    transport.connect(username=USER.name, password=USER.password)
    channel = transport.open_session()
    channel.invoke_subsystem("netconf")
    channel.sendall(encode_eom(f'<hello xmlns="{NC}"><capabilities><capability>'
                               "urn:ietf:params:netconf:base:1.1</capability></capabilities>"
                               "</hello>".encode()))  # fmt: skip
    decoder, pending = FrameDecoder(1 << 26), []

    def receive() -> bytes:
        while not pending:
            pending.extend(decoder.feed(channel.recv(65536)))
        return pending.pop(0)

    receive()
    pending.extend(decoder.start_chunked())
    message_id = 0

    def rpc(body: str) -> None:
        nonlocal message_id
        message_id += 1
        channel.sendall(encode_chunked(
            f'<rpc xmlns="{NC}" message-id="{message_id}">{body}</rpc>'.encode()))
        if b"rpc-error" in receive():
            raise RuntimeError(f"rpc-error in reply to {body[:60]}")

    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        rpc(f"<edit-config><target><candidate/></target><config>{edit(n)}</config></edit-config>")
        rpc("<commit/>")
        rpc("<get-config><source><running/></source></get-config>")
        n += 1
    rate = n / (time.perf_counter() - started)
    transport.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=2.0,
                        help="cycles/s is the median over windows this long")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = Flowtapd(Path(tmp) / "state", free_port(), {"bench": USER})
        server.start()
        try:
            assert server.proc is not None
            server_cpu, client_cpu = cpu_seconds(server.proc.pid), time.process_time()
            result = asyncio.run(run(server.port, args.seconds, args.window))
            server_cpu = cpu_seconds(server.proc.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            paramiko_rate = run_paramiko(server.port, args.seconds / 2)
        finally:
            server.stop()
    server_ms = server_cpu / result["cycles"] * 1000
    client_ms = client_cpu / result["cycles"] * 1000
    print("NETCONF edit(candidate)+commit+get-config(running), one session, raw client")
    print(f"  cycles/s          {result['cycles_per_s']:.0f}   (median of {len(result['windows'])} "
          f"windows of {args.window:g} s: {', '.join(f'{w:.0f}' for w in result['windows'])}; "
          f"{result['overall_per_s']:.0f} over all {result['cycles']:.0f} cycles)")
    print(f"  RPC/s             {result['rpc_per_s']:.0f}")
    print(f"  median edit       {result['edit_ms']:.2f} ms")
    print(f"  median commit     {result['commit_ms']:.2f} ms (validation + fsync'd persistence)")
    print(f"  median get-config {result['get_ms']:.2f} ms")
    print(f"  p95 cycle         {result['p95_cycle_ms']:.2f} ms")
    print(f"  CPU per cycle     server {server_ms:.2f} ms, client {client_ms:.2f} ms")
    print(f"  paramiko client   {paramiko_rate:.0f} cycles/s (netopeer2's method: 177-206)")
    print("  reference: netopeer2 177-206 cycles/s on this machine class; target >= 400")
    if args.json:
        args.json.write_text(json.dumps({
            "title": "NETCONF config plane (bench/netconf_cycles.py)",
            "rows": [
                {"metric": "edit+commit+get-config cycles/s, one session",
                 "value": round(result["cycles_per_s"]), "target": ">= 400",
                 "reference": "netopeer2 177-206"},
                {"metric": "cycles/s of each window, and over the whole run",
                 "value": ", ".join(f"{w:.0f}" for w in result["windows"])
                 + f"; {result['overall_per_s']:.0f}"},
                {"metric": "same cycle, raw paramiko client (netopeer2's method)",
                 "value": round(paramiko_rate), "reference": "netopeer2 177-206"},
                {"metric": "RPC/s", "value": round(result["rpc_per_s"])},
                {"metric": "median edit-config ms", "value": round(result["edit_ms"], 2)},
                {"metric": "median commit ms (validation + fdatasync)",
                 "value": round(result["commit_ms"], 2)},
                {"metric": "median get-config ms", "value": round(result["get_ms"], 2)},
                {"metric": "p95 cycle ms", "value": round(result["p95_cycle_ms"], 2)},
                {"metric": "CPU ms per cycle, server / client",
                 "value": f"{server_ms:.2f} / {client_ms:.2f}"},
            ],
        }, indent=2))


if __name__ == "__main__":
    main()
