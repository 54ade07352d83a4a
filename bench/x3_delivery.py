"""X3 delivery rate against classic UDP delivery, side by side in one run (issue 18 figures).

Builds the dataplane benchmark's namespaces (bench/dataplane.py: trafgen/pacer in ``snd`` on
CPU0 with the router's forwarding, capture on CPU1) and measures, for the same 64-byte (and
1414-byte) traffic all matching one criterion (one flow), the highest paced rate at which every
packet is forwarded and every copy delivered:

  classic     one capture worker on CPU1; copies as outer IPv4/UDP datagrams to
              198.18.3.2:47000 (counted at med0, where a socket that never reads takes them,
              so no ICMP error comes back)
  x3          the same worker, the same criterion with X3 delivery: xCC PDUs over TLS (mutual,
              a throwaway CA) to a receiver in ``med`` that counts the PDUs it decrypts
  x3 relayed  two capture workers, both on CPU1, and a destination owned by the worker the
              flow does *not* land on: every copy crosses the relay to the worker that keeps
              the destination's one connection (flowtap.dataplane.x3.relay), the dearest case
              of the one-connection rule on this two-CPU machine

The forms alternate within each bisection step, so all see the same machine. The X3 receiver
decrypts on this same two-CPU machine, so the lossless X3 rate also measures the receiver's
share of it; the capture workers' CPU time per copy at a rate every form delivers (half the
lowest lossless rate) is what a copy costs the appliance in each form. Prints a table;
``--json FILE`` too.

Usage: sudo .venv/bin/python bench/x3_delivery.py [--quick] [--steps N] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from netconf_cycles import cpu_seconds  # a process's CPU time from /proc
from tests.x1.pki import Authority

import dataplane as dpb  # bench/dataplane.py: topology, pacer, trials
from flowtap.dataplane import Dataplane, ffi
from flowtap.dataplane.x3.relay import owner_of
from flowtap.intercept.criteria import X3, X3_TO_TARGET, ContentDestination, Criterion
from flowtap.tools.netns import Topology, unique_prefix
from flowtap.tools.x3_collector import server_context

MDF, X3_PORT = "198.18.3.2", 47300
XID = uuid.UUID("5d2b3c1e-0a4f-4e7b-8c9d-1f2e3a4b5c6d")
HEADER = 60  # an xCC PDU's header with sequence number and timestamp


class CountingReceiver:
    """A TLS X3 receiver that counts bytes (every PDU of a run has the same size)."""

    def __init__(self, topo: Topology, ca: Authority, ports: tuple[int, ...]) -> None:
        server = ca.issue("mdf", server=True)
        self.context = server_context(str(server.cert), str(server.key), str(ca.cert_path))
        with ffi.netns(topo.ns("med")):
            self.listeners = [socket.create_server((MDF, p), reuse_port=True) for p in ports]
        self.bytes = 0
        self._lock = threading.Lock()
        self._stop = False
        for listener in self.listeners:
            threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop:
            try:
                plain, _ = listener.accept()
                conn = self.context.wrap_socket(plain, server_side=True)
            except OSError:
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: Any) -> None:
        # into one buffer: a fresh 1 MiB bytes per recv (mmap, page faults, munmap) held this
        # receiver to about 230 MB/s, below what one capture worker sends at 1414 bytes
        buffer = bytearray(1 << 20)
        while not self._stop:
            try:
                size = conn.recv_into(buffer)
            except OSError:
                return
            if not size:
                return
            with self._lock:
                self.bytes += size

    def count(self) -> int:
        with self._lock:
            return self.bytes

    def close(self) -> None:
        self._stop = True
        for listener in self.listeners:
            listener.close()


@dataclass(frozen=True)
class Form:
    workers: int
    x3_port: int | None  # None: classic

    def options(self) -> dict[str, Any]:
        return {"workers": self.workers, "cpu": dpb.TAP_CPU}


def criterion(x3_port: int | None) -> Criterion:
    match = dpb.one_criterion()[0].match
    if x3_port is None:
        return Criterion(1, "bench", match, (dpb.CD,))
    destination = ContentDestination("did", MDF, x3_port, "", 0)
    return Criterion(1, "bench", match, (destination,), delivery=X3(XID.bytes, 1, X3_TO_TARGET))


def flow_worker(b: dpb.Bench, topo: Topology) -> int:
    """Which of two capture workers the benchmark's one flow lands on (the one that works)."""
    dp = Dataplane(workers=2, cpu=dpb.TAP_CPU)
    try:
        with ffi.netns(topo.ns("rtr")):
            dp.start(dpb.IFACES, inet6=False)
            dp.set_criteria([criterion(None)])
        pids = dp.worker_pids()
        before = [cpu_seconds(p) for p in pids]
        b.paced(dpb.SIZES["64B"], 50_000)
        work = [cpu_seconds(p) - t for p, t in zip(pids, before, strict=True)]
    finally:
        dp.stop()
    return work.index(max(work))


def trial(b: dpb.Bench, size: int, rate: float, receiver: CountingReceiver | None
          ) -> tuple[bool, float]:  # fmt: skip
    """One paced trial: (lossless, achieved pps). For X3, delivered = PDUs decrypted."""
    before = receiver.count() if receiver is not None else 0
    r = b.paced(size, rate)
    if receiver is None:
        return r["forwarded"] == r["sent"] == r["delivered"], r["achieved_pps"]
    deadline = time.monotonic() + 2.0
    want = r["sent"] * (size + HEADER)
    while receiver.count() - before < want and time.monotonic() < deadline:
        time.sleep(0.05)
    got = (receiver.count() - before) // (size + HEADER)
    return r["forwarded"] == r["sent"] == got, r["achieved_pps"]


@contextlib.contextmanager
def tapped(topo: Topology, form: Form, files: tuple[str, str, str]) -> Iterator[Dataplane]:
    """A dataplane of ``form`` tapping the benchmark's flow, its X3 link up."""
    dp = Dataplane(**form.options())
    try:
        with ffi.netns(topo.ns("rtr")):
            dp.start(dpb.IFACES, inet6=False)
            if form.x3_port is not None:
                dp.set_x3_tls(files)
            dp.set_criteria([criterion(form.x3_port)])
        deadline = time.monotonic() + 10
        while form.x3_port is not None and not dp.destination_state(MDF, form.x3_port)[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("the X3 link did not come up")
            time.sleep(0.05)
        time.sleep(0.2)
        yield dp
    finally:
        dp.stop()


def lossless(b: dpb.Bench, topo: Topology, size: int, lo: float, hi: float, steps: int,
             files: tuple[str, str, str], receiver: CountingReceiver, forms: dict[str, Form]
             ) -> dict[str, float]:  # fmt: skip
    """Every form's highest lossless rate, bisected side by side (one tap each, alternating)."""
    best = dict.fromkeys(forms, 0.0)
    bounds = {name: [lo, hi] for name in forms}
    for _ in range(steps):
        for name, form in forms.items():
            low, high = bounds[name]
            rate = (low + high) / 2
            with tapped(topo, form, files):
                rx = receiver if form.x3_port is not None else None
                ok, achieved = trial(b, size, rate, rx)
                ok = ok or trial(b, size, rate, rx)[0]  # a loss must repeat
            if ok:
                best[name], bounds[name][0] = max(best[name], achieved), rate
            else:
                bounds[name][1] = rate
    return best


def worker_cpu(b: dpb.Bench, topo: Topology, size: int, rate: float,
               files: tuple[str, str, str], forms: dict[str, Form]) -> dict[str, float]:
    """The capture workers' CPU time per copy (us, all workers together) at a rate every form
    delivers: what a copy costs the appliance in each form, apart from what the destination's
    side costs this shared machine (the X3 receiver decrypts on the same two CPUs, which the
    classic copies' never-read socket does not). Median of three trials per form."""
    spent: dict[str, list[float]] = {name: [] for name in forms}
    for _ in range(3):
        for name, form in forms.items():
            with tapped(topo, form, files) as dp:
                pids = dp.worker_pids()
                before = sum(cpu_seconds(p) for p in pids)
                sent = b.paced(size, rate)["sent"]
                seconds = sum(cpu_seconds(p) for p in pids) - before
            spent[name].append(seconds * 1e6 / max(sent, 1))
    return {name: dpb.median(values) for name, values in spent.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--trial", type=float, default=1.5, help="paced trial length (s)")
    ap.add_argument("--steps", type=int, default=7, help="bisection steps")
    ap.add_argument("--quick", action="store_true", help="shorter trials, fewer steps")
    ap.add_argument("--max-wait", type=float, default=120.0,
                    help="total seconds to wait for other processes to go idle")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    missing = [t for t in ("trafgen", "gcc", "taskset") if not shutil.which(t)]
    if missing:
        print(f"missing tools: {', '.join(missing)} (make apt)", file=sys.stderr)
        return 1
    if a.quick:
        a.trial, a.steps = 1.0, 5
    topo = Topology(unique_prefix("ftx3b"), inet6=False)
    res: dict[str, Any] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ftx3bench") as tmp:
        try:
            topo.up()
            work = Path(tmp)
            ca = Authority(work, "bench")
            ne = ca.issue("ne-1")
            files = (str(ne.cert), str(ne.key), str(ca.cert_path))
            b = dpb.Bench(topo, work, 1.0, a.trial, a.max_wait)
            flow_on = flow_worker(b, topo)
            relayed_port = next(p for p in range(X3_PORT + 1, X3_PORT + 100)
                                if owner_of((MDF, p), 2) != flow_on)  # fmt: skip
            forms = {"classic": Form(1, None), "x3": Form(1, X3_PORT),
                     "x3_relayed": Form(2, relayed_port)}  # fmt: skip
            receiver = CountingReceiver(topo, ca, (X3_PORT, relayed_port))
            with ffi.netns(topo.ns("med")):  # takes the classic copies without ICMP errors
                sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sink.bind(("198.18.3.2", 47000))
            fwd64 = dpb.median([b.saturate(46)["fwd_pps"] for _ in range(2)])
            res["forwarding_no_tap_64B_pps"] = fwd64
            for label, size in dpb.SIZES.items():
                res[label] = r = lossless(b, topo, size, 0.1 * fwd64, 1.2 * fwd64, a.steps,
                                          files, receiver, forms)  # fmt: skip
                r["ratio"] = r["x3"] / r["classic"] if r["classic"] else float("nan")
                r["relayed_ratio"] = (r["x3_relayed"] / r["classic"] if r["classic"]
                                      else float("nan"))  # fmt: skip
                r["cpu_rate"] = rate = 0.5 * min(r["classic"], r["x3_relayed"], r["x3"])
                r["cpu_us"] = worker_cpu(b, topo, size, rate, files, forms)  # type: ignore
            receiver.close()
            sink.close()
        finally:
            topo.down()
    res["bench_seconds"] = time.monotonic() - started
    print("X3 over TLS vs classic UDP delivery, lossless paced rate, one criterion, all "
          "matching, capture on CPU1 (same run, alternating); relayed: 2 workers on CPU1, every "
          "copy relayed to the worker that owns the destination's connection")
    for label in dpb.SIZES:
        r = res[label]
        print(f"  {label:6s} classic {r['classic']:>9,.0f} pps   X3 {r['x3']:>9,.0f} pps   "
              f"X3/classic {r['ratio']:.2f}   X3 relayed {r['x3_relayed']:>9,.0f} pps   "
              f"relayed/classic {r['relayed_ratio']:.2f}")
        cpu = r["cpu_us"]
        print(f"         capture workers' CPU per copy at {r['cpu_rate']:,.0f} pps: classic "
              f"{cpu['classic']:.2f} us, X3 {cpu['x3']:.2f} us "
              f"(classic/X3 {cpu['classic'] / cpu['x3']:.2f}), X3 relayed "
              f"{cpu['x3_relayed']:.2f} us")
    print(f"  no-tap forwarding 64B {fwd64:,.0f} pps; {res['bench_seconds']:.0f} s")
    if a.json:
        rows: list[dict[str, object]] = [
            {"metric": f"lossless delivery {label}, one criterion all matching: classic UDP / "
                       "X3 over TLS (pps, same run)",
             "value": f"{res[label]['classic']:,.0f} / {res[label]['x3']:,.0f} "
                      f"(X3/classic {res[label]['ratio']:.2f})",
             "target": "X3/classic >= 0.9"} for label in dpb.SIZES]
        rows += [
            {"metric": f"lossless delivery {label}, X3 with every copy relayed between two "
                       "workers sharing CPU1 to the owner of the one connection (pps)",
             "value": f"{res[label]['x3_relayed']:,.0f} "
                      f"(relayed/classic {res[label]['relayed_ratio']:.2f})",
             "target": "reported"} for label in dpb.SIZES]
        rows += [
            {"metric": f"capture workers' CPU per copy {label} at "
                       f"{res[label]['cpu_rate']:,.0f} pps: classic / X3 / X3 relayed (us)",
             "value": " / ".join(f"{res[label]['cpu_us'][k]:.2f}"
                                 for k in ("classic", "x3", "x3_relayed")),
             "target": "X3 costs the appliance no more than classic"} for label in dpb.SIZES]
        rows.append({"metric": "no-tap forwarding 64 B (this run)", "value": f"{fwd64:,.0f} pps"})
        a.json.write_text(json.dumps({"title": "X3 delivery against classic (bench/x3_delivery.py)",
                                      "rows": rows, "raw": res}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
