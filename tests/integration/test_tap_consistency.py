"""Issue 15 item 3: randomized ADD/DELETE/REFRESH/timeouts on three DTCP sessions while 50 flows
cross a real flowtapd router in network namespaces; every copy is compared with a reference
model (``tap_model``): 0 divergences.

::

    snd ── rin [rtr: flowtapd, DTCP on 127.0.0.1] rout ── rcv    stamped_flows: 50 UDP flows
                        rmed ── med: one UDP port per agency (mediation device)

Three agencies (md1..md3) each run a seeded random schedule: ADDs of host, prefix, address
range, port, port range, negated port and protocol criteria (static, with a short
Timeout-Total, or with a Timeout-Packets limit), DELETE by Criteria-ID and by Cdest-ID, REFRESH
by Criteria-ID and by Cdest-ID. The time each request was written and each 200 OK read is
recorded; criteria ended by a timeout are dated by their ``dtcp-remove`` audit record.
``FLOWTAP_CONSISTENCY_SEED`` picks another schedule (the seed is printed).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flowtap.dataplane import ffi
from flowtap.tools.dtcp_client import AsyncDtcpClient, Reply
from flowtap.tools.netns import Topology, unique_prefix
from tests.flowtapd import IFS, SVC, Flowtapd, TestUser
from tests.integration.dtcp_support import USERS, audit_records, make_flowtapd
from tests.integration.stamped_flows import DEST_PORTS, FLOWS, read_times, stamp_of
from tests.integration.tap_model import Tap, Traffic, Verdict, judge

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]

ROOT = Path(__file__).resolve().parents[2]
AGENCIES = ("md1", "md2", "md3")
AGENCY_PORTS = (47101, 47102, 47103)  # each agency's content destination port on med0
CD_ADDRESS, CD_SOURCE = "198.18.3.2", "198.18.99.1"
RATE, SECONDS = 2000.0, 20.0  # packets/s over all flows; traffic duration
MAX_LIVE = 6  # criteria one agency keeps at most (so copies stay a few thousand a second)
MS = 1_000_000

ROUTER = (
    f'<interfaces xmlns="{IFS}">'
    "<interface><name>sp-0/0/0</name><host-device>lo</host-device>"
    "<unit><name>0</name><family><inet/></family></unit></interface>"
    "<interface><name>ge-0/0/0</name><host-device>rin</host-device>"
    "<unit><name>0</name><family><inet/></family></unit></interface>"
    "<interface><name>ge-0/0/1</name><host-device>rout</host-device>"
    "<unit><name>0</name><family><inet/></family></unit></interface>"
    "</interfaces>"
    f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap></services>'
)


@dataclass
class Refresh:
    agency: int
    criteria_id: int | None  # None: by Cdest-ID "cdT"
    total: int
    sent: int
    ok: int


@dataclass
class Schedule:
    """What the agencies did, for the model."""

    taps: list[Tap] = field(default_factory=list)
    total: dict[int, int] = field(default_factory=dict)  # source port -> Timeout-Total
    cdest: dict[int, str] = field(default_factory=dict)  # source port -> Cdest-ID
    refreshes: list[Refresh] = field(default_factory=list)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def random_match(rng: random.Random) -> tuple[list[tuple[str, str]], frozenset[int]]:
    """DTCP match fields of one random criterion and the flows it matches."""
    kind = rng.choice(("host", "prefix", "range", "dport-range", "sport", "not-dport",
                       "tcp-only"))
    index = range(len(FLOWS))
    if kind == "host":
        i = rng.randrange(len(FLOWS))
        return [("Dest-Address", FLOWS[i].dest), ("Protocol", "17")], frozenset({i})
    if kind in ("prefix", "not-dport"):
        length = rng.choice((27, 28, 29, 30))
        base = rng.randrange(0, 64, 1 << (32 - length))
        inside = {i for i in index if base <= 1 + i < base + (1 << (32 - length))}
        fields = [("Dest-Address", f"198.19.0.{base}/{length}"), ("Protocol", "17")]
        if kind == "prefix":
            return fields, frozenset(inside)
        port = rng.choice(DEST_PORTS)
        return ([*fields, ("Dest-Port", f"!{port}")],
                frozenset(i for i in inside if FLOWS[i].dest_port != port))
    if kind == "range":
        first = rng.randint(1, 50)
        last = min(63, first + rng.randint(0, 6))
        return ([("Source-Address", "198.18.1.2"),
                 ("Dest-Address", f"198.19.0.{first}-198.19.0.{last}"), ("Protocol", "17")],
                frozenset(i for i in index if first <= 1 + i <= last))
    if kind == "dport-range":
        lo = rng.randrange(len(DEST_PORTS))
        hi = min(len(DEST_PORTS) - 1, lo + rng.randint(0, 1))
        return ([("Dest-Address", "198.19.0.0/26"),
                 ("Dest-Port", f"{DEST_PORTS[lo]}-{DEST_PORTS[hi]}")],
                frozenset(i for i in index if DEST_PORTS[lo] <= FLOWS[i].dest_port
                          <= DEST_PORTS[hi]))
    if kind == "sport":
        i = rng.randrange(len(FLOWS))
        return [("Source-Port", str(FLOWS[i].source_port))], frozenset({i})
    return [("Dest-Address", "198.19.0.0/26"), ("Protocol", "6")], frozenset()  # tcp-only


class Agency:
    """One mediation device's session and its random schedule."""

    def __init__(self, index: int, client: AsyncDtcpClient, rng: random.Random,
                 schedule: Schedule, ports: Iterator[int]) -> None:
        self.index = index
        self.client = client
        self.rng = rng
        self.schedule = schedule
        self.ports = ports
        self.mine: list[Tap] = []  # answered 200 and not ended by one of our DELETEs

    async def request(self, method: str, fields: list[tuple[str, str]]
                      ) -> tuple[Reply, int, int]:  # fmt: skip
        data = self.client.build(method, fields)
        sent = time.monotonic_ns()
        (reply,) = await self.client.send(data, 1, timeout=30)
        done = time.monotonic_ns()
        self.schedule.requests += 1
        self.schedule.statuses[reply.status] = self.schedule.statuses.get(reply.status, 0) + 1
        if reply.status not in (200, 431):  # 431: expired (timeout or limit) meanwhile
            print(f"unexpected: {method} {fields} -> {reply.status_line}")
        return reply, sent, done

    async def run(self, until: float) -> None:
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.uniform(0.01, 0.2))
            live = [t for t in self.mine if t.end_start is None]
            roll = self.rng.random()
            if roll < 0.55 and len(live) < MAX_LIVE:
                await self.add(limited=roll < 0.1)
            elif roll < 0.75 and live:
                await self.delete_one(self.rng.choice(live))
            elif roll < 0.83:
                await self.delete_cdest(self.rng.choice(("cdS", "cdT")))
            else:
                await self.refresh()

    async def add(self, *, limited: bool) -> None:
        port = next(self.ports)
        if limited:
            i = self.rng.randrange(len(FLOWS))
            f = FLOWS[i]
            match = [("Dest-Address", f.dest), ("Protocol", "17"),
                     ("Source-Port", str(f.source_port)), ("Dest-Port", str(f.dest_port))]
            flows, cdest = frozenset({i}), "cdP"
            timing = [("Timeout-Packets", str(self.rng.randint(3, 40)))]
        else:
            match, flows = random_match(self.rng)
            total = self.rng.choice((0, 0, 1, 2, 3))
            cdest = "cdT" if total else "cdS"
            timing = [("Timeout-Total", str(total))] if total else [("Flags", "STATIC")]
            if total:
                self.schedule.total[port] = total
        fields = [("Cdest-ID", cdest), *match,
                  ("X-JTap-Cdest-Dest-Address", CD_ADDRESS),
                  ("X-JTap-Cdest-Dest-Port", str(AGENCY_PORTS[self.index])),
                  ("X-JTap-Cdest-Source-Address", CD_SOURCE),
                  ("X-JTap-Cdest-Source-Port", str(port)), *timing]
        tap = Tap(self.index, port, flows, add_sent=time.monotonic_ns())
        if limited:
            tap.packet_limit = int(timing[0][1])
        reply, tap.add_sent, done = await self.request("ADD", fields)
        self.schedule.taps.append(tap)
        self.schedule.cdest[port] = cdest
        if reply.status == 200:
            tap.add_ok, tap.criteria_id = done, reply.criteria_id
            if not limited:  # a limited tap ends by its count; the model checks that alone
                self.mine.append(tap)

    async def delete_one(self, tap: Tap) -> None:
        reply, sent, done = await self.request(
            "DELETE", [("Criteria-ID", str(tap.criteria_id)), ("Flags", "STATIC")])
        if reply.status == 200:
            tap.end_start, tap.end_done = sent, done

    async def delete_cdest(self, cdest: str) -> None:
        reply, sent, done = await self.request(
            "DELETE", [("Cdest-ID", cdest), ("Flags", "STATIC")])
        if reply.status == 200:
            for tap in self.mine:
                if tap.end_start is None and self.schedule.cdest[tap.source_port] == cdest:
                    tap.end_start, tap.end_done = sent, done

    async def refresh(self) -> None:
        timed = [t for t in self.mine if t.end_start is None and t.source_port
                 in self.schedule.total]
        total = self.rng.randint(1, 3)
        if timed and self.rng.random() < 0.6:
            target: int | None = self.rng.choice(timed).criteria_id
            selector = ("Criteria-ID", str(target))
        else:
            target, selector = None, ("Cdest-ID", "cdT")
        reply, sent, done = await self.request(
            "REFRESH", [selector, ("Timeout-Total", str(total))])
        if reply.status == 200:
            self.schedule.refreshes.append(Refresh(self.index, target, total, sent, done))


def date_timeouts(schedule: Schedule, removals: list[dict[str, object]]) -> int:
    """End every total-timeout tap the audit log says expired: from the earliest moment its
    timer could fire (ADD or a REFRESH surely applied, plus its Timeout-Total) to the record.
    Returns how many taps a timeout ended."""
    wall_minus_mono = time.time_ns() - time.monotonic_ns()
    expired: dict[tuple[str, int], int] = {}
    for r in removals:
        if r["event"] == "dtcp-remove" and r["result"] == "timeout-total":
            stamp = datetime.datetime.fromisoformat(str(r["time"]).replace("Z", "+00:00"))
            wall = int(stamp.timestamp() * 1000) * MS
            expired[(str(r["principal"]), int(str(r["criteria_id"])))] = (
                wall - wall_minus_mono + MS)  # the record's time is truncated to the ms
    dated = 0
    for tap in schedule.taps:
        total = schedule.total.get(tap.source_port)
        if total is None or tap.add_ok is None:
            continue
        earliest = tap.add_sent + total * 1000 * MS
        for r in schedule.refreshes:
            hits = r.agency == tap.agency and r.criteria_id in (None, tap.criteria_id)
            if hits and r.sent > tap.add_ok and r.sent < earliest:
                earliest = (r.sent + r.total * 1000 * MS if r.ok < earliest
                            else min(earliest, r.sent + r.total * 1000 * MS))
        removed = expired.get((AGENCIES[tap.agency], tap.criteria_id or 0))
        if removed is not None:  # a timeout came first (a later DELETE found nothing)
            tap.end_start, tap.end_done = min(earliest, removed), removed
            tap.end_by_timer = True
            dated += 1
        elif tap.end_start is None:
            tap.end_start = earliest  # refreshed meanwhile, or fires after the traffic
            tap.end_by_timer = True
        elif earliest < tap.end_start:  # deleted; maybe refreshed first
            tap.end_start, tap.end_by_timer = earliest, True
    return dated


class CopyReceiver:
    """The agencies' content-destination sockets in ``med``, drained by one thread into
    (agency, outer source port, inner seq)."""

    def __init__(self, topo: Topology) -> None:
        self.socks = []
        with ffi.netns(topo.ns("med")):
            for port in AGENCY_PORTS:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.SOL_SOCKET, ffi.SO_RCVBUFFORCE, 32 << 20)
                s.bind(("0.0.0.0", port))
                s.setblocking(False)
                self.socks.append(s)
        self.copies: list[tuple[int, int, int]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = {s.fileno(): i for i, s in enumerate(self.socks)}
        while not self._stop:
            ready, _, _ = select.select(self.socks, [], [], 0.05)
            for s in ready:
                with contextlib.suppress(BlockingIOError):
                    while True:
                        data, (_, port) = s.recvfrom(2048)
                        self.copies.append((index[s.fileno()], port, stamp_of(data)))

    def close(self) -> list[tuple[int, int, int]]:
        self._stop = True
        self._thread.join()
        for s in self.socks:
            s.close()
        return self.copies

    @staticmethod
    def drops(topo: Topology) -> int:
        """Datagrams ``med``'s UDP stack dropped (full receive buffers): a copy lost here
        would be counted as missing, so the verdict only stands at 0."""
        with ffi.netns(topo.ns("med")), open("/proc/thread-self/net/snmp") as f:
            udp = [line.split() for line in f if line.startswith("Udp:")]
        return int(dict(zip(udp[0], udp[1], strict=True))["RcvbufErrors"])


@contextlib.contextmanager
def quiet_receivers(topo: Topology) -> Iterator[None]:
    """Listening (never read) sockets in ``rcv``: the flows get no ICMP port-unreachable
    answers, which would cross the router's captured ``rout``."""
    socks = []
    with ffi.netns(topo.ns("rcv")):
        for port in DEST_PORTS:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", port))
            socks.append(s)
    try:
        yield
    finally:
        for s in socks:
            s.close()


async def connect(server: Flowtapd, user: str, netns: str) -> AsyncDtcpClient:
    with ffi.netns(netns):  # DTCP listens on the router's loopback
        sock = socket.create_connection(("127.0.0.1", server.dtcp_port), timeout=10)
    sock.setblocking(False)
    u = server.users[user]
    return await AsyncDtcpClient.connect("127.0.0.1", server.dtcp_port, username=u.name,
                                         password=u.password, known_hosts=None, sock=sock)


async def drive(server: Flowtapd, topo: Topology, seed: int, schedule: Schedule,
                sender: subprocess.Popen[str]) -> None:
    clients = [await connect(server, name, topo.ns("rtr")) for name in AGENCIES]
    ports = iter(range(30000, 60000))
    agencies = [Agency(i, c, random.Random(seed * 10 + i), schedule, ports)
                for i, c in enumerate(clients)]
    assert sender.stdin is not None
    sender.stdin.write("go\n")
    sender.stdin.flush()
    await asyncio.sleep(0.3)
    until = time.monotonic() + SECONDS - 1.3
    try:
        await asyncio.gather(*(a.run(until) for a in agencies))
        await asyncio.to_thread(sender.wait, 30)  # the sessions outlive the traffic
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()


def start_sender(topo: Topology, out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", topo.ns("snd"), sys.executable, "-m",
         "tests.integration.stamped_flows", "--rate", str(RATE), "--seconds", str(SECONDS),
         "--out", str(out)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["ready"]
    return proc


def test_every_copy_matches_the_reference_model(tmp_path: Path) -> None:
    seed = int(os.environ.get("FLOWTAP_CONSISTENCY_SEED", "15"))
    topo = Topology(unique_prefix("ftcons"), inet6=False)
    users = {**USERS, "md3": TestUser("md3", "md3-pw-1", "li-md")}
    server = make_flowtapd(tmp_path, users)
    server.extra_config, server.netns = ROUTER, topo.ns("rtr")
    server.system_services = (  # IPv4 only: the namespaces have no IPv6
        f"<flow-tap-dtcp><ssh><port>{server.dtcp_port}</port>"
        "<listen-address>127.0.0.1</listen-address></ssh></flow-tap-dtcp>")
    schedule = Schedule()
    times = tmp_path / "times.bin"
    try:
        topo.up()
        server.start()
        with quiet_receivers(topo):
            receiver = CopyReceiver(topo)
            sender = start_sender(topo, times)
            try:
                asyncio.run(drive(server, topo, seed, schedule, sender))
                assert sender.stdout is not None
                sent = json.loads(sender.stdout.readline())["sent"]
                time.sleep(0.5)  # the last copies land
            finally:
                with contextlib.suppress(ProcessLookupError):
                    sender.kill()
                copies = receiver.close()
                dropped = CopyReceiver.drops(topo)
        server.stop()
        timed_out = date_timeouts(schedule, audit_records(server))
    finally:
        server.stop()
        topo.down()
    t0, t1 = read_times(times)
    assert len(t0) == sent
    verdict: Verdict = judge(Traffic(t0, t1, len(FLOWS)), schedule.taps, copies)
    print(f"\nseed {seed}: {sent} packets, {schedule.requests} requests {schedule.statuses}, "
          f"{len(schedule.taps)} ADDs, {len(schedule.refreshes)} REFRESHes, {timed_out} "
          f"Timeout-Total expiries; {verdict.summary()}")
    for line in verdict.examples:
        print("  " + line)
    assert dropped == 0, f"the agencies' sockets dropped {dropped} copies: no verdict"
    assert verdict.checked > 0 and verdict.copies > 0
    assert verdict.divergences == 0, verdict.summary()
