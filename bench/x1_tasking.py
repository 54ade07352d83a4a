"""X1 tasking figures (issue 18): ActivateTask answer -> first X3 PDU, and X1 requests/s.

The rig of ``bench/tap_latency.py`` (``tests/integration/live_support.py``): a real flowtapd in
a router namespace capturing its ingress, a stamped 5,000 pps UDP stream crossing it (half to
the target); flowtapd configured with ``services flow-tap x1`` and a throwaway CA; an ADMF
(``flowtap-x1``'s ``X1Client``, one HTTPS connection with its client certificate) in the
router namespace; an X3 receiver (mutual TLS) in the content destination's namespace.

  first PDU, connected     ActivateTask answered -> first xCC PDU of that task received, while
                           another task keeps the destination's connections up (p50/p99/max)
  first PDU, first task    the same for a destination no task used before: the workers connect
                           and handshake after the answer, the copies wait for them meanwhile
  requests/s               GetTaskDetails, and ActivateTask + DeactivateTask pairs, one after
                           the other on one HTTPS connection, for ``--seconds`` each

No figure is asserted.   .venv/bin/python bench/x1_tasking.py [--trials 40] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.live_support import BYSTANDER, CAPTURE, CD_ADDRESS, TARGET, LiveRig
from tests.x1.pki import Authority, x1_element
from tests.x3.receiver import X3Receiver

from flowtap.dataplane import ffi
from flowtap.dataplane.x3.pdu import Pdu, PduType
from flowtap.tools.netns import unique_prefix
from flowtap.tools.x1_client import X1Client, parse_target

NE, X1_PORT, X3_PORT = "ne-bench-1", 8443, 47300
RATE = 5000.0


class FirstPdus:
    """When each task's first xCC PDU arrived (the X3 receiver's ``on_pdu``)."""

    def __init__(self) -> None:
        self.first: dict[uuid.UUID, float] = {}
        self.arrived = threading.Condition()

    def __call__(self, pdu: Pdu, when: float) -> None:
        if pdu.pdu_type == PduType.X3 and pdu.xid not in self.first:
            with self.arrived:
                self.first.setdefault(pdu.xid, when)
                self.arrived.notify_all()

    def noted(self, xid: uuid.UUID, timeout: float = 5.0) -> float | None:
        with self.arrived:
            self.arrived.wait_for(lambda: xid in self.first, timeout)
            return self.first.get(xid)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99, "max": ordered[-1],
            "n": len(ordered)}  # fmt: skip


def first_pdu(client: X1Client, receiver: FirstPdus, did: uuid.UUID, trials: int,
              fresh_destination: bool) -> tuple[list[float], int]:  # fmt: skip
    """ms from each ActivateTask answer to its first PDU; trials without any PDU in 5 s. With
    ``fresh_destination`` each trial creates its own destination (same address, so that no
    other task holds its connections: they open after the answer) and removes it after."""
    latencies, missing = [], 0
    target = [parse_target(f"ipv4Address={TARGET}")]
    for _ in range(trials):
        destination = uuid.uuid4() if fresh_destination else did
        if fresh_destination:
            (created,) = client.send(client.create_destination(destination, CD_ADDRESS, X3_PORT))
            assert created.ok, created.render()
        xid = uuid.uuid4()
        (answer,) = client.send(client.activate(xid, target, [destination]))
        answered = time.monotonic()
        assert answer.ok, answer.render()
        arrived = receiver.noted(xid)
        if arrived is None:
            missing += 1
        else:
            latencies.append((arrived - answered) * 1000)
        (gone,) = client.send(client.deactivate(xid))
        assert gone.ok, gone.render()
        if fresh_destination:
            client.send(client.remove_destination(destination))
        time.sleep(0.05)
    return latencies, missing


def rate(seconds: float, step: Any) -> float:
    done, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        step()
        done += 1
    return done / (time.monotonic() - started)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=5.0, help="per requests/s figure")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    res: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ftx1bench") as tmp:
        work = Path(tmp)
        ca = Authority(work, "bench")
        ne, admf = ca.issue(NE, server=True, client=True), ca.issue("md1")
        x1 = x1_element(ne, ca, X1_PORT, NE)
        rig = LiveRig(work, unique_prefix("ftx1b"))
        rig.server.extra_config = CAPTURE.format(limits=x1)
        with rig:
            with ffi.netns(rig.topo.ns("med")):
                firsts = FirstPdus()
                receiver = X3Receiver(ca, ca.issue("mdf-1", server=True), host=CD_ADDRESS,
                                      port=X3_PORT, on_pdu=firsts)  # fmt: skip
            stream = rig.stream(RATE)
            try:
                with ffi.netns(rig.topo.ns("rtr")):
                    client = X1Client(f"https://127.0.0.1:{X1_PORT}/X1/NE", cert=str(admf.cert),
                                      key=str(admf.key), ca=str(ca.cert_path), admf="md1",
                                      ne=NE, timeout=30)  # fmt: skip
                    with client:
                        did, anchor = uuid.uuid4(), uuid.uuid4()
                        client.send(client.create_destination(did, CD_ADDRESS, X3_PORT))
                        # a task on the bystander keeps the destination's connections up
                        client.send(client.activate(
                            anchor, [parse_target(f"ipv4Address={BYSTANDER}")], [did]))
                        firsts.noted(anchor, 10.0)
                        connected, lost = first_pdu(client, firsts, did, a.trials, False)
                        res["first_pdu_connected_ms"] = {**percentiles(connected),
                                                         "without_pdu": lost}  # fmt: skip
                        # no task left on the destination: its connections close, and the
                        # next task's workers connect and handshake after the answer
                        client.send(client.deactivate(anchor))
                        time.sleep(0.5)
                        fresh, lost = first_pdu(client, firsts, did, max(a.trials // 4, 5),
                                                True)  # fmt: skip
                        res["first_pdu_new_destination_ms"] = {**percentiles(fresh),
                                                               "without_pdu": lost}  # fmt: skip
                        client.send(client.activate(
                            anchor, [parse_target(f"ipv4Address={BYSTANDER}")], [did]))
                        res["get_task_details_per_s"] = rate(
                            a.seconds, lambda: client.send(client.get_task(anchor)))
                        target = [parse_target(f"ipv4Address={TARGET}")]

                        def pair() -> None:
                            xid = uuid.uuid4()
                            client.send(client.activate(xid, target, [did]))
                            client.send(client.deactivate(xid))

                        res["activate_deactivate_pairs_per_s"] = rate(a.seconds, pair)
                        client.send(client.deactivate(anchor))
            finally:
                stream.stop()
                receiver.close()
    c, f = res["first_pdu_connected_ms"], res["first_pdu_new_destination_ms"]
    print(f"X1 over HTTPS (one connection, ADMF md1) -> X3 over TLS; a {RATE:,.0f} pps stream, "
          "half of it to the target")
    print(f"  ActivateTask answer -> first PDU, destination connected: p50 {c['p50']:.1f}, "
          f"p99 {c['p99']:.1f}, max {c['max']:.1f} ms (n={c['n']}, {c['without_pdu']} without)")
    print(f"  ... a destination no task used before: p50 {f['p50']:.1f}, p99 {f['p99']:.1f}, "
          f"max {f['max']:.1f} ms (n={f['n']}, {f['without_pdu']} without)")
    print(f"  GetTaskDetails {res['get_task_details_per_s']:.0f}/s; ActivateTask+DeactivateTask "
          f"{res['activate_deactivate_pairs_per_s']:.0f} pairs/s")
    if a.json:
        rows = [
            {"metric": "X1 ActivateTask answer -> first X3 PDU, destination connected "
                       "(p50/p99/max)",
             "value": f"{c['p50']:.1f} / {c['p99']:.1f} / {c['max']:.1f} ms (n={c['n']}, "
                      f"{c['without_pdu']} without a PDU)"},
            {"metric": "the same, first task on a destination (connect + TLS after the answer)",
             "value": f"{f['p50']:.1f} / {f['p99']:.1f} / {f['max']:.1f} ms (n={f['n']})"},
            {"metric": "X1 GetTaskDetails on one HTTPS connection",
             "value": f"{res['get_task_details_per_s']:.0f}/s"},
            {"metric": "X1 ActivateTask + DeactivateTask pairs on one HTTPS connection",
             "value": f"{res['activate_deactivate_pairs_per_s']:.0f}/s"},
        ]
        a.json.write_text(json.dumps({"title": "X1 tasking (bench/x1_tasking.py)", "rows": rows,
                                      "raw": res}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
