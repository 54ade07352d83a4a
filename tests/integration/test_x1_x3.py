"""Issue 18 B+C end to end: an ADMF tasks flowtapd over X1 (real HTTPS, client certificates) and
the target's packets reach a mediation function as X3 PDUs over mutual TLS.

flowtapd runs in the router namespace (:class:`~tests.integration.live_support.LiveRig`), the
X3 receiver in the content destination's namespace; real packets cross the router. Checked: the
packets sent after the ActivateTask answer all arrive as xCC PDUs with the task's XID, the
direction and the packet unchanged; GetTaskDetails and GetDestinationDetails report them;
after the DeactivateTask answer no PDU arrives; the ordinary log (INFO) names no target, XID or
ADMF, and the LI audit log records every request.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from flowtap.dataplane import ffi
from flowtap.dataplane.x3.pdu import PduType
from flowtap.intercept.criteria import X3_FROM_TARGET, X3_TO_TARGET
from flowtap.tools.netns import unique_prefix
from flowtap.tools.traffic import udp_packet
from flowtap.tools.x1_client import X1Client, parse_target
from tests.dataplane.netns_helpers import send
from tests.integration.dtcp_support import audit_records
from tests.integration.live_support import CAPTURE, CD_ADDRESS, PORT, TARGET, LiveRig
from tests.x1.pki import Authority, x1_element
from tests.x3.receiver import X3Receiver

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root and iproute2")  # fmt: skip
NE, X1_PORT, X3_PORT = "ne-lab-1", 8443, 47300
SOURCE = "198.18.1.2"


def wait_until(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_an_x1_task_delivers_x3_until_it_is_deactivated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("FLOWTAP_TEST_LOG", "INFO")
    ca = Authority(tmp_path, "lab")
    ne, admf = ca.issue(NE, server=True, client=True), ca.issue("md1")
    x1 = x1_element(ne, ca, X1_PORT, NE)
    xid, did = uuid.uuid4(), uuid.uuid4()
    rig = LiveRig(tmp_path, unique_prefix("ftx13"))
    rig.server.extra_config = CAPTURE.format(limits=x1)
    with rig:
        with ffi.netns(rig.topo.ns("med")):
            receiver = X3Receiver(ca, ca.issue("mdf-1", server=True), host=CD_ADDRESS,
                                  port=X3_PORT)  # fmt: skip
        try:
            with ffi.netns(rig.topo.ns("rtr")):
                client = X1Client(f"https://127.0.0.1:{X1_PORT}/X1/NE", cert=str(admf.cert),
                                  key=str(admf.key), ca=str(ca.cert_path), admf="md1", ne=NE,
                                  timeout=30)  # fmt: skip
                with client:
                    created, activated = client.send(
                        client.create_destination(did, CD_ADDRESS, X3_PORT),
                        client.activate(xid, [parse_target(f"ipv4Address={TARGET}")], [did]))
                    assert created.ok and activated.ok, (created.render(), activated.render())
                    # live on the answer: every packet sent from now on is a PDU
                    # flows that the kernel spreads over both capture workers
                    packets = [udp_packet(SOURCE, TARGET, 10000 + i % 32, PORT, 60 + i % 500,
                                          ident=i) for i in range(300)]  # fmt: skip
                    assert send(rig.topo, packets, None, 20_000) == 300
                    assert wait_until(lambda: len(receiver.pdus) >= 300)
                    assert wait_until(lambda: client.send(client.get_destination(did))[0].get(
                        "destinationResponseDetails/destinationStatus/"
                        "destinationDeliveryStatus") == "activeAndWorking")
                    (details,) = client.send(client.get_task(xid))
                    (deactivated,) = client.send(client.deactivate(xid))
                    assert deactivated.ok
                    count = len(receiver.pdus)
                    assert send(rig.topo, packets[:100], None, 20_000) == 100
                    time.sleep(0.5)
                    assert len(receiver.pdus) == count  # nothing after the answer
                    (removed,) = client.send(client.remove_destination(did))
                    assert removed.ok
        finally:
            receiver.close()
        log = "".join(rig.server.output)
    xcc = [p for p in receiver.pdus if p.pdu_type == PduType.X3]
    assert len(xcc) == 300
    assert len(receiver.connections) == 1  # one TLS connection per destination
    assert all(p.xid == xid and p.direction == X3_TO_TARGET for p in xcc)
    assert sorted(p.payload for p in xcc) == sorted(packets)
    assert not any(p.direction == X3_FROM_TARGET for p in xcc)
    status = "taskResponseDetails/taskStatus/"
    assert details.get(f"{status}provisioningStatus") == "complete"
    assert details.get(f"{status}amountOfX3Data") == str(sum(len(p) for p in packets))
    assert details.get(f"{status}timeOfLastIntercept")
    for secret in (TARGET, str(xid), str(did), "md1"):
        assert secret not in log, secret
    records = [(r["method"], r["result"]) for r in audit_records(rig.server)
               if r["event"] == "x1" and r["principal"] == "md1"]  # fmt: skip
    polls = len(records) - 5  # GetDestinationDetails until the links were up
    assert polls >= 1 and records == [("CreateDestination", "OK"), ("ActivateTask", "OK"),
                                       *[("GetDestinationDetails", "OK")] * polls,
                                       ("GetTaskDetails", "OK"), ("DeactivateTask", "OK"),
                                       ("RemoveDestination", "OK")]  # fmt: skip
