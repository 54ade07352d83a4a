"""X3 delivery rate against classic UDP delivery, side by side in one run (issue 18 figures).

Builds the dataplane benchmark's namespaces (bench/dataplane.py: trafgen/pacer in ``snd`` on
CPU0 with the router's forwarding, the capture worker on CPU1) and measures, for the same
64-byte (and 1414-byte) traffic all matching one criterion, the highest paced rate at which
every packet is forwarded and every copy delivered:

  classic   copies as outer IPv4/UDP datagrams to 198.18.3.2:47000 (counted at med0, where a
            socket that never reads takes them, so no ICMP error comes back)
  x3        the same criterion with X3 delivery: xCC PDUs over TLS (mutual, a throwaway CA) to
            a receiver in ``med`` that counts the PDUs it decrypts

The two alternate within each bisection step, so both see the same machine. Also: the X3
PDUs' bytes per copied packet and the TLS overhead. Prints a table; ``--json FILE`` too.

Usage: sudo .venv/bin/python bench/x3_delivery.py [--quick] [--steps N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tests.x1.pki import Authority

import dataplane as dpb  # bench/dataplane.py: topology, pacer, trials
from flowtap.dataplane import Dataplane, ffi
from flowtap.intercept.criteria import X3, X3_TO_TARGET, ContentDestination, Criterion
from flowtap.tools.netns import Topology, unique_prefix
from flowtap.tools.x3_collector import server_context

MDF, X3_PORT = "198.18.3.2", 47300
XID = uuid.UUID("5d2b3c1e-0a4f-4e7b-8c9d-1f2e3a4b5c6d")
HEADER = 60  # an xCC PDU's header with sequence number and timestamp


class CountingReceiver:
    """A TLS X3 receiver that counts bytes (every PDU of a run has the same size)."""

    def __init__(self, topo: Topology, ca: Authority) -> None:
        server = ca.issue("mdf", server=True)
        self.context = server_context(str(server.cert), str(server.key), str(ca.cert_path))
        with ffi.netns(topo.ns("med")):
            self.listener = socket.create_server((MDF, X3_PORT), reuse_port=True)
        self.bytes = 0
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                plain, _ = self.listener.accept()
                conn = self.context.wrap_socket(plain, server_side=True)
            except OSError:
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: Any) -> None:
        while not self._stop:
            try:
                data = conn.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.bytes += len(data)

    def count(self) -> int:
        with self._lock:
            return self.bytes

    def close(self) -> None:
        self._stop = True
        self.listener.close()


def criterion(x3: bool) -> Criterion:
    match = dpb.one_criterion()[0].match
    if not x3:
        return Criterion(1, "bench", match, (dpb.CD,))
    destination = ContentDestination("did", MDF, X3_PORT, "", 0)
    return Criterion(1, "bench", match, (destination,), delivery=X3(XID.bytes, 1, X3_TO_TARGET))


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


def lossless(b: dpb.Bench, topo: Topology, size: int, lo: float, hi: float, steps: int,
             files: tuple[str, str, str], receiver: CountingReceiver
             ) -> dict[str, float]:  # fmt: skip
    """Both forms' highest lossless rate, bisected side by side (one tap each, alternating)."""
    best = {"classic": 0.0, "x3": 0.0}
    bounds = {"classic": [lo, hi], "x3": [lo, hi]}
    for _ in range(steps):
        for form in ("classic", "x3"):
            low, high = bounds[form]
            rate = (low + high) / 2
            dp = Dataplane(**b.dp_options)
            try:
                with ffi.netns(topo.ns("rtr")):
                    dp.start(dpb.IFACES, inet6=False)
                    if form == "x3":
                        dp.set_x3_tls(files)
                    dp.set_criteria([criterion(form == "x3")])
                deadline = time.monotonic() + 10
                while form == "x3" and not dp.destination_state(MDF, X3_PORT)[0]:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the X3 links did not come up")
                    time.sleep(0.05)
                time.sleep(0.2)
                rx = receiver if form == "x3" else None
                ok, achieved = trial(b, size, rate, rx)
                ok = ok or trial(b, size, rate, rx)[0]  # a loss must repeat
            finally:
                dp.stop()
            if ok:
                best[form], bounds[form][0] = max(best[form], achieved), rate
            else:
                bounds[form][1] = rate
    return best


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
            receiver = CountingReceiver(topo, ca)
            with ffi.netns(topo.ns("med")):  # takes the classic copies without ICMP errors
                sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sink.bind(("198.18.3.2", 47000))
            b = dpb.Bench(topo, work, 1.0, a.trial, a.max_wait)
            fwd64 = dpb.median([b.saturate(46)["fwd_pps"] for _ in range(2)])
            res["forwarding_no_tap_64B_pps"] = fwd64
            for label, size in dpb.SIZES.items():
                res[label] = lossless(b, topo, size, 0.1 * fwd64, 1.2 * fwd64, a.steps, files,
                                      receiver)  # fmt: skip
                res[label]["ratio"] = (res[label]["x3"] / res[label]["classic"]
                                       if res[label]["classic"] else float("nan"))  # fmt: skip
            receiver.close()
            sink.close()
        finally:
            topo.down()
    res["bench_seconds"] = time.monotonic() - started
    print("X3 over TLS vs classic UDP delivery, lossless paced rate, one criterion, all "
          "matching, one capture worker on CPU1 (same run, alternating)")
    for label in dpb.SIZES:
        r = res[label]
        print(f"  {label:6s} classic {r['classic']:>9,.0f} pps   X3 {r['x3']:>9,.0f} pps   "
              f"X3/classic {r['ratio']:.2f}")
    print(f"  no-tap forwarding 64B {fwd64:,.0f} pps; {res['bench_seconds']:.0f} s")
    if a.json:
        rows: list[dict[str, object]] = [
            {"metric": f"lossless delivery {label}, one criterion all matching: classic UDP / "
                       "X3 over TLS (pps, same run)",
             "value": f"{res[label]['classic']:,.0f} / {res[label]['x3']:,.0f} "
                      f"(X3/classic {res[label]['ratio']:.2f})",
             "target": "X3/classic >= 0.9"} for label in dpb.SIZES]
        rows.append({"metric": "no-tap forwarding 64 B (this run)", "value": f"{fwd64:,.0f} pps"})
        a.json.write_text(json.dumps({"title": "X3 delivery against classic (bench/x3_delivery.py)",
                                      "rows": rows, "raw": res}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
