"""NETCONF cycles/s: edit-config(candidate) + commit + get-config(running) on one session.

Starts its own flowtapd on loopback (full YANG validation, access control, persistence with
fdatasync) and measures two of its users, since access control costs differ:

- ``admin``, class ``super-user``: every permission bit except the lawful-intercept ones
  (``all`` never implies flow-tap/flow-tap-control), so the LI subtrees are pruned from what it
  reads and its writes are checked against them. This is who runs the automation.
- ``bench``, class ``li-admin`` (``all`` + ``flow-tap-control``): the one user for whom nothing
  is pruned.

Each cycle edits one leaf (``idle-timeout``) of a 50-entry ``system/login/class`` list, which the
script creates first, so every commit really changes running. The cycle runs through flowtap's
raw asyncio client (ncclient's 0.1 s poll would cap any server at ~10 RPC/s), with the CPU time
the server and the client spent per cycle (they share the machine's two cores), and through a
raw paramiko client.

``--vs HOST:PORT`` runs the same cycle with the same paramiko client against another NETCONF
server (netopeer2: ``make bench-netopeer2``; its module is ``bench/netopeer2/flowtap-bench.yang``)
beside this flowtapd: legs interleaved, every round one leg per server and user, and prints
cycles/s per round, the ratios flowtap / other, and connect + hello times.

    .venv/bin/python bench/netconf_cycles.py [--seconds 10]
    .venv/bin/python bench/netconf_cycles.py --vs 127.0.0.1:8301 --vs-user admin \\
        --vs-namespace urn:flowtap:yang:bench   # password from VS_PASSWORD, or --vs-key FILE
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.flowtapd import SYS, Flowtapd, TestUser, free_port

from flowtap.netconf.framing import FrameDecoder, encode_chunked, encode_eom
from flowtap.tools.netconf_client import NetconfClient

# glibc's default SHA-512 crypt cost: the same work per password login as a `$6$` hash without
# `rounds=` on the other server (flowtap's first-boot admin uses 100,000 rounds)
HASH_ROUNDS = 5000
ADMIN = TestUser("admin", "admin-pw", "super-user", hash_rounds=HASH_ROUNDS)
LI_ADMIN = TestUser("bench", "bench-pw", "li-admin", hash_rounds=HASH_ROUNDS)
USERS = {"super-user admin": ADMIN, "LI-admin": LI_ADMIN}
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
ENTRIES = 50
# one edit: entry {i} (0..49) of the class list gets idle-timeout {timeout} (1..60)
TEMPLATE = ('<system xmlns="{ns}"><login><class><name>bench-{i}</name>'
            "<idle-timeout>{timeout}</idle-timeout></class></login></system>")  # fmt: skip
ERROR = re.compile(rb"<([\w.-]+:)?rpc-error[\s>/]")
OK = re.compile(rb"<([\w.-]+:)?ok\s*/>")


@dataclass
class Server:
    """One NETCONF server and the edit that fits its module. ``n`` counts its cycles over every
    leg: cycle n sets entry n % 50 to n % 60 + 1, never the value that entry holds (set by cycle
    n - 50, or 60 by :func:`setup`), so every commit changes running."""

    name: str
    host: str
    port: int
    template: str
    pid: int | None = None  # for its CPU time, when it runs on this machine
    n: int = 0

    def edit(self) -> str:
        body = self.template.format(i=self.n % ENTRIES, timeout=self.n % 60 + 1)
        self.n += 1
        return body


@dataclass
class Login:
    label: str
    server: Server
    user: str
    password: str | None = None
    key: paramiko.PKey | None = None
    results: list[dict[str, float]] = field(default_factory=list)


class Session:
    """Raw NETCONF 1.1 over paramiko, one RPC in flight; the client for every server."""

    def __init__(self, login: Login, timeout: float = 30.0) -> None:
        started = time.perf_counter()
        server = login.server
        sock = socket.create_connection((server.host, server.port), timeout=timeout)
        # as asyncio does for every TCP connection: with Nagle on, paramiko's writes now and then
        # wait for the server's delayed ACK (~40 ms), whichever the server
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = paramiko.Transport(sock)
        self.transport.start_client(timeout=timeout)
        if login.key is not None:
            self.transport.auth_publickey(login.user, login.key)
        else:
            self.transport.auth_password(login.user, login.password or "")
        self.channel = self.transport.open_session(timeout=timeout)
        self.channel.settimeout(timeout)
        self.channel.invoke_subsystem("netconf")
        self.channel.sendall(encode_eom(f'<hello xmlns="{NC}"><capabilities><capability>'
                                        "urn:ietf:params:netconf:base:1.1</capability>"
                                        "</capabilities></hello>".encode()))  # fmt: skip
        self.decoder = FrameDecoder(1 << 26)
        self.pending: list[bytes] = []
        hello = self.receive()
        if b"urn:ietf:params:netconf:base:1.1" not in hello:
            raise RuntimeError(f"{server.name} does not offer NETCONF base:1.1")
        self.pending.extend(self.decoder.start_chunked())
        self.connect_s = time.perf_counter() - started
        self.message_id = 0

    def receive(self) -> bytes:
        while not self.pending:
            data = self.channel.recv(65536)
            if not data:
                raise ConnectionError("session closed")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0)

    def rpc(self, body: str, *, ok: bool = True) -> bytes:
        self.message_id += 1
        self.channel.sendall(encode_chunked(
            f'<rpc xmlns="{NC}" message-id="{self.message_id}">{body}</rpc>'.encode()))
        reply = self.receive()
        if ERROR.search(reply, 0, 1024) or (ok and not OK.search(reply)):
            raise RuntimeError(f"{body[:60]}... failed: {reply[:600]!r}")
        return reply

    def cycle(self, server: Server) -> int:
        """One edit + commit + get-config; the size of running as the reply brought it."""
        self.rpc(f"<edit-config><target><candidate/></target><config>{server.edit()}</config>"
                 "</edit-config>")  # fmt: skip
        self.rpc("<commit/>")
        return len(self.rpc("<get-config><source><running/></source></get-config>", ok=False))

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, EOFError, paramiko.SSHException):
            self.rpc("<close-session/>")
        self.transport.close()


def setup(login: Login) -> int:
    """Creates (or resets) the 50 entries, idle-timeout 60, in one commit; returns the size of
    running as get-config brings it."""
    session = Session(login)
    try:
        for i in range(ENTRIES):
            session.rpc("<edit-config><target><candidate/></target><config>"
                        f"{login.server.template.format(i=i, timeout=60)}</config>"
                        "</edit-config>")  # fmt: skip
        session.rpc("<commit/>")
        running = session.rpc("<get-config><source><running/></source></get-config>", ok=False)
    finally:
        session.close()
    if f"bench-{ENTRIES - 1}".encode() not in running:
        raise RuntimeError(f"{login.server.name}: the entries are not in running after setup: "
                           "does --vs-namespace/--vs-template fit its module?")  # fmt: skip
    return len(running)


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def leg(login: Login, seconds: float) -> dict[str, float]:
    """The cycle on one fresh session for ``seconds``."""
    session = Session(login)
    server = login.server
    cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
    n, size = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        size = session.cycle(server)
        n += 1
    elapsed = time.perf_counter() - started
    cpu, client_cpu = cpu_seconds(server.pid) - cpu, time.process_time() - client_cpu
    session.close()
    return {"cycles": n, "per_s": n / elapsed, "server_cpu_ms": cpu / n * 1000,
            "client_cpu_ms": client_cpu / n * 1000, "connect_ms": session.connect_s * 1000,
            "running_bytes": size}  # fmt: skip


def connects(login: Login, count: int) -> list[float]:
    """Connect + SSH login + hello exchange, in ms, ``count`` fresh sessions."""
    times = []
    for _ in range(count):
        session = Session(login)
        times.append(session.connect_s * 1000)
        session.close()
    return times


async def run_asyncio(port: int, user: TestUser, server: Server, seconds: float,
                      window: float) -> dict[str, Any]:  # fmt: skip
    client = await NetconfClient.connect("127.0.0.1", port, user.name, user.password)
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
                                 f"<config>{server.edit()}</config></edit-config>")  # fmt: skip
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


def start_flowtapd(tmp: str) -> tuple[Flowtapd, Server]:
    daemon = Flowtapd(Path(tmp) / "state", free_port(), {u.name: u for u in USERS.values()})
    daemon.start()
    assert daemon.proc is not None
    server = Server("flowtap", "127.0.0.1", daemon.port, TEMPLATE.replace("{ns}", SYS),
                    daemon.proc.pid)  # fmt: skip
    return daemon, server


def flowtap_logins(server: Server) -> list[Login]:
    return [Login(f"flowtap {label}", server, u.name, u.password) for label, u in USERS.items()]


def measure_flowtap(args: argparse.Namespace) -> None:
    """Both users, one after the other, on one flowtapd."""
    figures: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        daemon, server = start_flowtapd(tmp)
        try:
            logins = flowtap_logins(server)
            running_bytes = setup(logins[0])
            for (label, user), login in zip(USERS.items(), logins, strict=True):
                server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
                result = asyncio.run(run_asyncio(server.port, user, server, args.seconds,
                                                 args.window))  # fmt: skip
                cycles = result["cycles"]
                result["server_ms"] = (cpu_seconds(server.pid) - server_cpu) / cycles * 1e3
                result["client_ms"] = (time.process_time() - client_cpu) / cycles * 1e3
                result["paramiko"] = leg(login, args.seconds / 2)
                result["connect_ms"] = statistics.median(connects(login, 5))
                figures[label] = result
        finally:
            daemon.stop()
    print("NETCONF edit(candidate)+commit+get-config(running), one session, raw client; "
          f"one leaf of a {ENTRIES}-entry list, running {running_bytes:,} bytes as admin reads it")
    for label, r in figures.items():
        print(f"  {label} ({USERS[label].login_class})")
        print(f"    cycles/s          {r['cycles_per_s']:.0f}   (median of {len(r['windows'])} "
              f"windows of {args.window:g} s: {', '.join(f'{w:.0f}' for w in r['windows'])}; "
              f"{r['overall_per_s']:.0f} over all {r['cycles']:.0f} cycles)")
        print(f"    RPC/s             {r['rpc_per_s']:.0f}")
        print(f"    median edit       {r['edit_ms']:.2f} ms")
        print(f"    median commit     {r['commit_ms']:.2f} ms (validation + fsync'd persistence)")
        print(f"    median get-config {r['get_ms']:.2f} ms ({r['paramiko']['running_bytes']:,} "
              "bytes)")
        print(f"    p95 cycle         {r['p95_cycle_ms']:.2f} ms")
        print(f"    CPU per cycle     server {r['server_ms']:.2f} ms, "
              f"client {r['client_ms']:.2f} ms")
        print(f"    paramiko client   {r['paramiko']['per_s']:.0f} cycles/s")
        print(f"    connect + hello   {r['connect_ms']:.1f} ms (paramiko, median of 5)")
    print("  target >= 400 cycles/s; netopeer2 beside it: make bench-netopeer2")
    if args.json:
        rows: list[dict[str, object]] = []
        for label, r in figures.items():
            rows += [
                {"metric": f"{label}: edit+commit+get-config cycles/s, one session",
                 "value": round(r["cycles_per_s"]), "target": ">= 400",
                 "reference": "netopeer2: make bench-netopeer2"},
                {"metric": f"{label}: cycles/s of each window, and over the whole run",
                 "value": ", ".join(f"{w:.0f}" for w in r["windows"])
                 + f"; {r['overall_per_s']:.0f}"},
                {"metric": f"{label}: same cycle, raw paramiko client (the --vs client)",
                 "value": round(r["paramiko"]["per_s"])},
                {"metric": f"{label}: RPC/s", "value": round(r["rpc_per_s"])},
                {"metric": f"{label}: median edit-config / commit (validation + fdatasync) / "
                           "get-config ms",
                 "value": f"{r['edit_ms']:.2f} / {r['commit_ms']:.2f} / {r['get_ms']:.2f}"},
                {"metric": f"{label}: p95 cycle ms", "value": round(r["p95_cycle_ms"], 2)},
                {"metric": f"{label}: CPU ms per cycle, server / client",
                 "value": f"{r['server_ms']:.2f} / {r['client_ms']:.2f}"},
                {"metric": f"{label}: connect + hello ms (paramiko, median of 5)",
                 "value": round(r["connect_ms"], 1)},
            ]  # fmt: skip
        args.json.write_text(json.dumps(
            {"title": "NETCONF config plane (bench/netconf_cycles.py)", "rows": rows}, indent=2))


def parse_other(args: argparse.Namespace) -> Login:
    host, _, port = args.vs.rpartition(":")
    if not host or not port.isdigit():
        sys.exit(f"--vs wants HOST:PORT, not {args.vs!r}")
    template = (args.vs_template.read_text().strip() if args.vs_template
                else TEMPLATE.replace("{ns}", args.vs_namespace))  # fmt: skip
    server = Server(args.vs_name, host.strip("[]"), int(port), template, args.vs_pid)
    key = paramiko.PKey.from_path(args.vs_key) if args.vs_key else None
    password = args.vs_password or os.environ.get("VS_PASSWORD")
    if key is None and not password:
        sys.exit("--vs needs a credential: --vs-password, VS_PASSWORD in the environment, or "
                 "--vs-key FILE")  # fmt: skip
    return Login(args.vs_name, server, args.vs_user, password, key)


def measure_vs(args: argparse.Namespace) -> None:
    other = parse_other(args)
    with tempfile.TemporaryDirectory() as tmp:
        daemon, server = start_flowtapd(tmp)
        try:
            logins = [*flowtap_logins(server), other]
            sizes = {server.name: setup(logins[0]), other.server.name: setup(other)}
            for login in logins:  # warm-up: caches, first-use allocations, page cache
                leg(login, args.warmup)
            connect_ms: dict[str, list[float]] = {login.label: [] for login in logins}
            for r in range(args.rounds):
                order = logins[r % 3:] + logins[:r % 3]  # each leg takes each position once
                for login in order:
                    login.results.append(leg(login, args.vs_seconds))
                    connect_ms[login.label] += [login.results[-1]["connect_ms"],
                                                *connects(login, args.connects)]
                print(f"  round {r + 1}: " + ", ".join(
                    f"{login.label} {login.results[-1]['per_s']:.0f}" for login in logins)
                    + " cycles/s", flush=True)  # fmt: skip
        finally:
            daemon.stop()
    admin, li, vs = logins
    name = other.server.name

    def per_round(login: Login) -> str:
        return ", ".join(f"{x['per_s']:.0f}" for x in login.results)

    def ratios(login: Login) -> list[float]:
        return [a["per_s"] / b["per_s"] for a, b in zip(login.results, vs.results, strict=True)]

    def cpu(login: Login, key: str = "server_cpu_ms") -> str:
        values = [x[key] for x in login.results]
        return "n/a (no --vs-pid)" if any(v != v for v in values) else \
            ", ".join(f"{v:.2f}" for v in values) + " ms"  # fmt: skip

    print(f"NETCONF edit(candidate)+commit+get-config(running), one paramiko session per leg, "
          f"{args.rounds} rounds of {args.vs_seconds:g} s legs interleaved, flowtap beside "
          f"{name} at {args.vs}")
    print(f"  running as get-config brings it: flowtap {sizes[server.name]:,} bytes (admin), "
          f"{name} {sizes[name]:,} bytes")
    for login in logins:
        print(f"  {login.label:24} cycles/s per round {per_round(login)}; CPU per cycle: "
              f"server {cpu(login)}, client {cpu(login, 'client_cpu_ms')}; connect + hello "
              f"median {statistics.median(connect_ms[login.label]):.1f} ms "
              f"(min {min(connect_ms[login.label]):.1f}, {len(connect_ms[login.label])} "
              "sessions)")
    def cpu_ratios(login: Login) -> list[float]:
        """Server CPU per cycle, other / flowtap: less swayed by other work on the machine."""
        return [b["server_cpu_ms"] / a["server_cpu_ms"]
                for a, b in zip(login.results, vs.results, strict=True)]  # fmt: skip

    for login in (admin, li):
        values = ratios(login)
        print(f"  ratio {login.label} / {name}: per round "
              f"{', '.join(f'{v:.2f}' for v in values)}; median {statistics.median(values):.2f}")
    if other.server.pid is not None:
        for login in (admin, li):
            values = cpu_ratios(login)
            print(f"  server CPU per cycle, {name} / {login.label}: per round "
                  f"{', '.join(f'{v:.2f}' for v in values)}; median "
                  f"{statistics.median(values):.2f}")
    if args.json:
        rows: list[dict[str, object]] = []
        for login in logins:
            rows.append({"metric": f"{login.label}: cycles/s per round", "value": per_round(login)})
        for login in (admin, li):
            values = ratios(login)
            rows.append({"metric": f"{login.label} / {name}, per round (median)",
                         "value": ", ".join(f"{v:.2f}" for v in values)
                         + f" ({statistics.median(values):.2f})",
                         "target": ">= 2.0" if login is admin else ""})  # fmt: skip
        if other.server.pid is not None:
            for login in (admin, li):
                values = cpu_ratios(login)
                rows.append({"metric": f"server CPU per cycle, {name} / {login.label}, per "
                                       "round (median)",
                             "value": ", ".join(f"{v:.2f}" for v in values)
                             + f" ({statistics.median(values):.2f})"})  # fmt: skip
        for login in logins:
            rows.append({"metric": f"{login.label}: connect + hello ms (median)",
                         "value": round(statistics.median(connect_ms[login.label]), 1)})
            rows.append({"metric": f"{login.label}: CPU ms per cycle per round, server; "
                                   "client", "value": f"{cpu(login)}; "
                                   f"{cpu(login, 'client_cpu_ms')}"})  # fmt: skip
        args.json.write_text(json.dumps({"title": f"NETCONF config plane beside {name} "
                                                  "(bench/netconf_cycles.py --vs)",
                                         "rows": rows}, indent=2))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per user (asyncio client)")
    parser.add_argument("--window", type=float, default=2.0,
                        help="cycles/s is the median over windows this long")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here (bench/run_all.py)")
    vs = parser.add_argument_group("side by side with another NETCONF server")
    vs.add_argument("--vs", metavar="HOST:PORT", help="the other server")
    vs.add_argument("--vs-name", default="netopeer2", help="what to call it in the output")
    vs.add_argument("--vs-user", default="admin")
    vs.add_argument("--vs-password", help="default: the VS_PASSWORD environment variable")
    vs.add_argument("--vs-key", type=Path, help="a private key file instead of a password")
    vs.add_argument("--vs-namespace", default="urn:flowtap:yang:bench",
                    help="namespace of the other server's system/login/class list "
                         "(bench/netopeer2/flowtap-bench.yang's by default)")  # fmt: skip
    vs.add_argument("--vs-template", type=Path,
                    help="a file holding the <config> content of one edit, a Python format "
                         "string with {i} (entry 0..49) and {timeout} (1..60), for a server "
                         "whose module differs")  # fmt: skip
    vs.add_argument("--vs-pid", type=int, help="the other server's pid: report its CPU per cycle")
    vs.add_argument("--vs-seconds", type=float, default=15.0, help="length of one leg")
    vs.add_argument("--rounds", type=int, default=3)
    vs.add_argument("--warmup", type=float, default=2.0, help="seconds per server and user")
    vs.add_argument("--connects", type=int, default=5,
                    help="connect + hello timings per leg")  # fmt: skip
    args = parser.parse_args()
    if args.vs:
        measure_vs(args)
    else:
        measure_flowtap(args)


if __name__ == "__main__":
    main()
