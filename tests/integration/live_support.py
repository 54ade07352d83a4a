"""The rig of ``test_live_on_200.py`` and ``bench/tap_latency.py``: a real flowtapd in a router
namespace capturing its ingress, a stamped stream crossing it, two agencies over DTCP.

::

    snd ── rin [rtr: flowtapd, captures ge-0/0/0 = rin] rout ── rcv (198.19.0.0/16)
                                                  rmed ── med (content destination 47000)

The stream (:mod:`flowtap.tools.stamped`) goes to TARGET (flow 0) and to BYSTANDER (flow 1) in
turn; md1 taps TARGET and lets go of it again and again (:func:`cycles`) while md2 may install
criteria in bulk or flood ADD/DELETE of criteria that match nothing in the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from flowtap.dataplane import ffi
from flowtap.tools.dtcp_client import AsyncDtcpClient
from flowtap.tools.netns import Topology
from flowtap.tools.stamped import Copy, Cycle, Sent, read_copies, read_sent
from tests.flowtapd import IFS, SVC, Flowtapd
from tests.integration.dtcp_support import make_flowtapd, numbered_add_fields

TARGET, BYSTANDER, PORT = "198.19.0.10", "198.19.0.30", 40000
TAPPED_FLOWS = {0}  # the stream's flow 0 goes to TARGET
CD_ADDRESS, CD_PORT = Topology.v4(3, 2), 47000
CAPTURE = (
    f'<interfaces xmlns="{IFS}">'
    "<interface><name>sp-0/0/0</name><host-device>lo</host-device>"
    "<unit><name>0</name><family><inet/></family></unit></interface>"
    "<interface><name>ge-0/0/0</name><host-device>rin</host-device>"
    "<unit><name>0</name><family><inet/></family></unit></interface>"
    "</interfaces>"
    f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface>{{limits}}</flow-tap>'
    "</services>"
)
FLOOD_FIRST = 1_000_000  # the flood's criteria are numbered apart from a bulk install's


def flow_tap_knobs(criteria: int | None = None, workers: int | None = None) -> str:
    """``services flow-tap`` children allowing ``criteria`` criteria (one source may hold all
    of them) and running ``workers`` capture workers (None: the defaults)."""
    xml = ""
    if criteria is not None:
        xml += (f"<limits><criteria>{criteria}</criteria>"
                f"<criteria-per-source>{criteria}</criteria-per-source></limits>")
    if workers is not None:
        xml += f"<capture-workers>{workers}</capture-workers>"
    return xml


def tap_fields() -> list[tuple[str, str]]:
    """md1's ADD: every UDP packet to TARGET:PORT, copied to the content destination."""
    return [
        ("Cdest-ID", "cd1"), ("Source-Address", "*"), ("Dest-Address", TARGET),
        ("Protocol", "17"), ("Dest-Port", str(PORT)),
        ("X-JTap-Cdest-Dest-Address", CD_ADDRESS), ("X-JTap-Cdest-Dest-Port", str(CD_PORT)),
        ("X-JTap-Cdest-Source-Address", Topology.v4(3, 1)),
        ("X-JTap-Cdest-Source-Port", str(CD_PORT + 100)), ("Flags", "STATIC"),
    ]  # fmt: skip


class LiveRig:
    """Topology + flowtapd in ``rtr`` (``with LiveRig(...) as rig:`` builds and removes both)."""

    def __init__(self, tmp: Path, prefix: str, *, max_criteria: int | None = None,
                 workers: int | None = None) -> None:  # fmt: skip
        self.tmp = tmp
        self.topo = Topology(prefix, inet6=False)
        self.server: Flowtapd = make_flowtapd(tmp)
        self.server.extra_config = CAPTURE.format(limits=flow_tap_knobs(max_criteria, workers))
        self.server.netns = self.topo.ns("rtr")
        # IPv6 is off in the namespaces (no ND/MLD on the captured link): no ::1 to listen on
        self.server.system_services = self.server.system_services.replace(
            "<listen-address>::1</listen-address>", "")
        self.streams = 0

    def __enter__(self) -> LiveRig:
        self.topo.up()
        try:
            self.server.start()
        except BaseException:
            self.topo.down()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.server.stop()
        self.topo.down()

    async def client(self, user: str) -> AsyncDtcpClient:
        """A mediation device logged in as ``user`` (md1, md2), from the router's namespace."""
        u = self.server.users[user]
        with ffi.netns(self.topo.ns("rtr")):
            return await AsyncDtcpClient.connect(
                "127.0.0.1", self.server.dtcp_port, username=u.name, password=u.password,
                known_hosts=None)  # fmt: skip

    def stream(self, rate: float, max_seconds: float = 120.0) -> Stream:
        self.streams += 1
        return Stream(self.topo, self.tmp / f"stream{self.streams}", rate, max_seconds)


class Stream:
    """The stamped sender in ``snd`` and the receiver in ``med``, as subprocesses."""

    def __init__(self, topo: Topology, base: Path, rate: float, max_seconds: float) -> None:
        self.sent_log, self.copy_log = base.with_suffix(".sent"), base.with_suffix(".copies")
        tool = [sys.executable, "-m", "flowtap.tools.stamped"]
        self.receiver = subprocess.Popen(
            ["ip", "netns", "exec", topo.ns("med"), *tool, "receive", "--port", str(CD_PORT),
             "--out", str(self.copy_log)], stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.receiver.stdout is not None
        assert json.loads(self.receiver.stdout.readline()) == {"listening": CD_PORT}
        self.sender = subprocess.Popen(
            ["ip", "netns", "exec", topo.ns("snd"), *tool, "send", "--dest", f"{TARGET}:{PORT}",
             "--dest", f"{BYSTANDER}:{PORT}", "--rate", str(rate), "--seconds",
             str(max_seconds), "--out", str(self.sent_log)],
            stdout=subprocess.PIPE, text=True)  # fmt: skip

    def stop(self, in_flight: float = 0.3) -> tuple[list[Sent], list[Copy], dict[str, float]]:
        """Stop sending, wait ``in_flight`` s for the last copies, stop receiving; the logs and
        the sender's summary (sent, pps)."""
        summary = _finish(self.sender)
        time.sleep(in_flight)
        _finish(self.receiver)
        return read_sent(self.sent_log), read_copies(self.copy_log), summary


def _finish(proc: subprocess.Popen[str]) -> dict[str, float]:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    lines = out.strip().splitlines()
    assert proc.returncode == 0 and lines, f"stamped exited {proc.returncode}: {out!r}"
    return dict(json.loads(lines[-1]))


async def cycles(client: AsyncDtcpClient, count: int, hold: float = 0.15,
                 pause: float = 0.1) -> list[Cycle]:  # fmt: skip
    """``count`` times: ADD the tap, hold it ``hold`` s, DELETE it, wait ``pause`` s."""
    out = []
    for _ in range(count):
        add_sent = time.monotonic_ns()
        added = await client.add(tap_fields())
        added_at = time.monotonic_ns()
        assert added.status == 200, added.raw
        await asyncio.sleep(hold)
        delete_sent = time.monotonic_ns()
        deleted = await client.delete([("Criteria-ID", str(added.criteria_id)),
                                       ("Flags", "STATIC")])  # fmt: skip
        deleted_at = time.monotonic_ns()
        assert deleted.status == 200, deleted.raw
        out.append(Cycle(add_sent, added_at, delete_sent, deleted_at))
        await asyncio.sleep(pause)
    return out


@dataclass
class FloodResult:
    adds: int = 0
    deletes: int = 0
    seconds: float = 0.0

    @property
    def adds_per_s(self) -> float:
        return self.adds / self.seconds if self.seconds else 0.0


async def flood(client: AsyncDtcpClient, stop: asyncio.Event, add_rate: float,
                window: int = 32) -> FloodResult:  # fmt: skip
    """ADD criteria that match nothing in the stream at up to ``add_rate`` a second, each
    DELETEd as soon as its 200 OK is read, ``window`` requests in flight, until ``stop``."""
    result = FloodResult()
    pending: list[str] = []  # "ADD" / "DELETE", in the order the replies will come
    to_delete: list[int] = []
    started = time.monotonic()
    number = FLOOD_FIRST
    while not stop.is_set() or pending or to_delete:
        allowed = not stop.is_set() and (time.monotonic() - started) * add_rate > result.adds
        if len(pending) < window and (to_delete or allowed):
            if to_delete:
                request = client.build("DELETE", [("Criteria-ID", str(to_delete.pop()))])
                pending.append("DELETE")
                result.deletes += 1
            else:
                request = client.build("ADD", numbered_add_fields(number))
                number += 1
                pending.append("ADD")
                result.adds += 1
            client.process.stdin.write(request)
            continue
        if not pending:
            await asyncio.sleep(0.001)
            continue
        (reply,) = await client.read(1, timeout=60)
        assert reply.status == 200, reply.raw
        if pending.pop(0) == "ADD":
            to_delete.append(reply.criteria_id)  # type: ignore[arg-type]
    result.seconds = time.monotonic() - started
    return result
