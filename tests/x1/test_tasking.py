"""The X1 message layer (flowtap.x1.tasking) over a real intercept Registry: every error code it
produces, isolation between ADMFs, several messages per request in order, audit records, and
the live-on-answer guarantee. The sink records what is installed (the mock: no dataplane sends
X3 yet)."""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from flowtap.intercept.criteria import X3, X3_FROM_TARGET, X3_TO_TARGET, Criterion
from flowtap.intercept.registry import Registry, RegistryLimits
from flowtap.intercept.sink import CriterionCounters
from flowtap.x1 import model
from flowtap.x1.encode import encode_request
from flowtap.x1.targets import AddressTarget, PortTarget
from flowtap.x1.tasking import Tasking
from tests.x1.rig import (
    NE,
    AuditList,
    Health,
    RecordingSink,
    Rig,
    answers,
    destination,
    header,
    task,
)

A, B = "admf-a", "admf-b"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sink = RecordingSink()
    registry = Registry(sink, RegistryLimits(per_source=20, total=40))
    audit, health = AuditList(), Health()
    tasking = Tasking(registry, audit.submit, lambda: NE, health)
    yield Rig(registry, sink, audit, health, tasking)
    await registry.publisher.close()


async def provision(rig: Rig, admf: str, xid: uuid.UUID, did: uuid.UUID,
                    **kw: object) -> None:  # fmt: skip
    answers_ = await rig.send(admf, model.CreateDestination(header(admf), destination(did)),
                              model.ActivateTask(header(admf), task(xid, [did], **kw)))  # type: ignore[arg-type]
    assert [a.type for a in answers_] == ["CreateDestinationResponse", "ActivateTaskResponse"], \
        [a.description for a in answers_]


def installed(rig: Rig) -> list[Criterion]:
    return list(rig.sink.table.values())


async def test_messages_are_answered_in_order_with_the_headers_copied(rig: Rig) -> None:
    ping, keepalive, bad = header(A), header(A), header(A)
    body = await rig.raw(A, encode_request([
        model.Ping(ping), model.GetTaskDetails(bad, uuid.uuid4()), model.Keepalive(keepalive)]))
    got = answers(body)
    assert [a.type for a in got] == ["PingResponse", "ErrorResponse", "KeepaliveResponse"]
    assert [a.text("x1:x1TransactionId") for a in got] == [
        ping.transaction_id, bad.transaction_id, keepalive.transaction_id]
    assert got[0].text("x1:oK") == "AcknowledgedAndCompleted"
    assert (got[1].code, got[1].text("x1:requestMessageType")) == (2020, "GetTaskDetails")
    assert all(a.text("x1:neIdentifier") == NE and a.text("x1:admfIdentifier") == A for a in got)
    assert [(r.method, r.result) for r in rig.audit.records] == [
        ("Ping", "OK"), ("GetTaskDetails", "error 2020"), ("Keepalive", "OK")]


async def test_an_activated_task_is_live_before_its_answer(rig: Rig) -> None:
    xid, did = uuid.uuid4(), uuid.uuid4()
    target = AddressTarget(ipaddress.ip_address("198.51.100.7"))
    await provision(rig, A, xid, did, targets=[target, PortTarget("tcp", 80)])
    crits = installed(rig)
    assert len(crits) == 4  # two directions x two port sides
    assert all(isinstance(c.delivery, X3) and c.delivery.xid == xid.bytes for c in crits)
    assert {c.delivery.direction for c in crits if isinstance(c.delivery, X3)} == {
        X3_FROM_TARGET, X3_TO_TARGET}
    assert all(c.csource_id == f"x1 {A}" for c in crits)
    assert {(d.cdest_id, d.dest_address, d.dest_port) for c in crits for d in c.destinations} \
        == {(str(did), "192.0.2.50", 6443)}
    record = rig.audit.records[-1]
    assert (record.method, record.result, record.criteria_id, record.cdest_id) == (
        "ActivateTask", "OK", str(xid), str(did))
    assert record.target == "ipv4Address 198.51.100.7; tcpPort 80"


async def test_task_details_report_counters_and_modifications(rig: Rig) -> None:
    xid, did = uuid.uuid4(), uuid.uuid4()
    await provision(rig, A, xid, did)
    first = next(iter(rig.sink.table))
    rig.sink.counts[first] = CriterionCounters(packets=2, bytes=300, last_packet=time.monotonic())
    got = await rig.one(A, model.GetTaskDetails(header(A), xid))
    status = "x1:taskResponseDetails/x1:taskStatus/"
    assert got.text(status + "x1:provisioningStatus") == "complete"
    assert got.text(status + "x1:amountOfX3Data") == "300"
    assert got.text(status + "x1:timeOfLastIntercept") is not None
    assert got.text(status + "x1:numberOfModifications") == "0"
    modified = task(xid, [did], [AddressTarget(ipaddress.ip_address("203.0.113.9"))])
    old, calls = sorted(rig.sink.table), len(rig.sink.calls)
    assert (await rig.one(A, model.ModifyTask(header(A), modified))).type == "ModifyTaskResponse"
    # the new criteria and the removal of the old ones in one dataplane delta: no gap
    ((upserted, removed),) = rig.sink.calls[calls:]
    assert removed == old and len(upserted) == 2 and not set(upserted) & set(old)
    assert first not in rig.sink.table and len(rig.sink.table) == 2
    hosts = {c.match.source_address.spans[0].lo for c in installed(rig)}
    assert int(ipaddress.ip_address("203.0.113.9")) in hosts
    got = await rig.one(A, model.GetTaskDetails(header(A), xid))
    assert got.text(status + "x1:amountOfX3Data") == "300"  # the replaced criteria's bytes
    assert got.text(status + "x1:numberOfModifications") == "1"
    assert got.text(status + "x1:timeOfLastModification") is not None
    assert got.text("x1:taskResponseDetails/x1:taskDetails/x1:targetIdentifiers/"
                    "x1:targetIdentifier/x1:ipv4Address") == "203.0.113.9"


async def test_deactivation_removes_every_criterion_before_its_answer(rig: Rig) -> None:
    xid, did = uuid.uuid4(), uuid.uuid4()
    await provision(rig, A, xid, did)
    assert installed(rig)
    assert (await rig.one(A, model.DeactivateTask(header(A), xid))).type == \
        "DeactivateTaskResponse"
    assert installed(rig) == [] and len(rig.registry) == 0
    assert (await rig.one(A, model.GetTaskDetails(header(A), xid))).code == 2020
    await provision(rig, A, uuid.uuid4(), uuid.uuid4())
    await provision(rig, A, uuid.uuid4(), uuid.uuid4())
    assert (await rig.one(A, model.DeactivateAllTasks(header(A)))).type == \
        "DeactivateAllTasksResponse"
    assert installed(rig) == []
    listed = await rig.one(A, model.ListAllDetails(header(A)))
    assert listed.all("x1:ListOfXIDs/x1:xId") == [] and len(listed.all("x1:ListOfDIDs/x1:dId")) == 3


async def test_every_task_and_destination_error_code(rig: Rig) -> None:
    xid, did, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await provision(rig, A, xid, did)
    h = header
    cases: list[tuple[model.Request, int]] = [
        (model.ActivateTask(h(A), task(xid, [did])), 2010),
        (model.ModifyTask(h(A), task(other, [did])), 2020),
        (model.DeactivateTask(h(A), other), 2020),
        (model.GetTaskDetails(h(A), other), 2020),
        (model.CreateDestination(h(A), destination(did)), 2030),
        (model.GetDestinationDetails(h(A), other), 2040),
        (model.RemoveDestination(h(A), other), 2040),
        (model.ModifyDestination(h(A), destination(other)), 2040),
        (model.ActivateTask(h(A), task(other, [other])), 2040),
        (model.ActivateTask(h(A), task(other, [did], delivery=model.DeliveryType.X2_ONLY)), 3040),
        (model.ActivateTask(h(A), task(other, [did], delivery=model.DeliveryType.X2_AND_X3)),
         3040),
        (model.ActivateTask(h(A), task(other, [])), 3040),
        (model.ActivateTask(h(A), task(other, [did], correlation=2**64)), 3000),
        (model.CreateDestination(h(A), destination(other, transport="udp")), 6020),
        (model.RemoveDestination(h(A), did), 7010),
        (model.RemoveAllDestinations(h(A)), 8010),
        (model.ModifyDestination(h(A), destination(did, delivery=model.DeliveryType.X2_ONLY)),
         3040),
        (model.Ping(h("someone-else")), 1030),
        (model.Ping(h(A, ne="ne-2")), 1060),
    ]
    got = await rig.send(A, *(request for request, _ in cases))
    assert [(a.type, a.code) for a in got] == [("ErrorResponse", code) for _, code in cases]
    # an X2Only destination exists, but an X3Only task cannot use it
    x2 = uuid.uuid4()
    assert (await rig.one(A, model.CreateDestination(h(A), destination(
        x2, delivery=model.DeliveryType.X2_ONLY)))).code is None
    assert (await rig.one(A, model.ActivateTask(h(A), task(other, [x2])))).code == 3040
    # RemoveAllDestinations refused: nothing was removed
    listed = await rig.one(A, model.ListAllDetails(h(A)))
    assert set(listed.all("x1:ListOfDIDs/x1:dId")) == {str(did), str(x2)}
    assert len(installed(rig)) == 2 and [r.result for r in rig.audit.records[-3:]] == [
        "OK", "error 3040", "OK"]


async def test_codec_refusals_and_an_unreadable_request(rig: Rig) -> None:
    body = encode_request([model.Ping(header(A)), model.ActivateTask(header(A), task(
        uuid.uuid4(), [uuid.uuid4()]))])
    body = body.replace(b"<x1:ipv4Address>198.51.100.7</x1:ipv4Address>",
                        b"<x1:e164Number>4930123</x1:e164Number>")
    body = body.replace(b"<x1:version>v1.15.1</x1:version>", b"<x1:version>v2.0.0</x1:version>",
                        1)  # fmt: skip
    assert [(a.type, a.code) for a in answers(await rig.raw(A, body))] == [
        ("ErrorResponse", 1020), ("ErrorResponse", 3010)]
    for hostile in (b"<x1:X1Request", b'<!DOCTYPE x [<!ENTITY a "b">]><X1Request/>',
                    b"<X1Request/>"):  # fmt: skip
        reply = await rig.raw(A, hostile)
        assert b"X1TopLevelErrorResponse" in reply and f"<x1:neIdentifier>{NE}<".encode() in reply
    assert rig.audit.records[-1].method == "X1Request" and \
        rig.audit.records[-1].result == "error 1010"


async def test_an_admf_sees_only_its_own_and_others_answer_as_unknown(rig: Rig) -> None:
    xid, did = uuid.uuid4(), uuid.uuid4()
    await provision(rig, A, xid, did)

    def probes(x: uuid.UUID, d: uuid.UUID) -> list[model.Request]:
        return [model.GetTaskDetails(header(B), x), model.DeactivateTask(header(B), x),
                model.ModifyTask(header(B), task(x, [d])),
                model.GetDestinationDetails(header(B), d), model.RemoveDestination(header(B), d),
                model.ModifyDestination(header(B), destination(d))]  # fmt: skip

    theirs = await rig.send(B, *probes(xid, did))
    absent = await rig.send(B, *probes(uuid.uuid4(), uuid.uuid4()))
    assert [(a.code, a.description) for a in theirs] == [(a.code, a.description) for a in absent]
    assert [a.code for a in theirs] == [2020, 2020, 2020, 2040, 2040, 2040]
    assert (await rig.one(B, model.ListAllDetails(header(B)))).all("x1:ListOfXIDs/x1:xId") == []
    got = await rig.one(B, model.GetAllDetails(header(B)))
    assert got.all("x1:listOfTaskResponseDetails/x1:taskResponseDetails") == []
    assert (await rig.one(B, model.DeactivateAllTasks(header(B)))).code is None
    assert (await rig.one(B, model.RemoveAllDestinations(header(B)))).code is None
    # the same IDs, used by B on its own, do not meet A's
    await provision(rig, B, xid, did)
    assert len(installed(rig)) == 4
    assert (await rig.one(A, model.DeactivateTask(header(A), xid))).code is None
    assert {c.csource_id for c in installed(rig)} == {f"x1 {B}"}


async def test_a_record_that_cannot_be_written_leaves_nothing_done(rig: Rig) -> None:
    rig.audit.broken = True
    got = await rig.send(A, model.CreateDestination(header(A), destination(uuid.uuid4())),
                         model.Ping(header(A)))
    assert [(a.type, a.code, a.text("x1:requestMessageType")) for a in got] == [
        ("ErrorResponse", 1000, "CreateDestination"), ("ErrorResponse", 1000, "Ping")]
    rig.audit.broken = False
    did = uuid.uuid4()
    assert (await rig.one(A, model.CreateDestination(header(A), destination(did)))).code is None
    assert (await rig.one(A, model.ListAllDetails(header(A)))).all("x1:ListOfDIDs/x1:dId") == [
        str(did)]
    rig.audit.broken = True
    assert (await rig.one(A, model.ActivateTask(header(A), task(uuid.uuid4(), [did])))).code \
        == 1000
    assert installed(rig) == [] and len(rig.registry) == 0


async def test_criteria_ended_by_flow_tap_fail_the_task(rig: Rig) -> None:
    xid, did = uuid.uuid4(), uuid.uuid4()
    await provision(rig, A, xid, did)
    rig.registry.clear()
    await rig.registry.publisher.flush()
    got = await rig.one(A, model.GetTaskDetails(header(A), xid))
    status = "x1:taskResponseDetails/x1:taskStatus/"
    assert got.text(status + "x1:provisioningStatus") == "failed"
    assert got.text(status + "x1:listOfFaults/x1:unresolvedFault/x1:errorCode") == "9030"
    ne = await rig.one(A, model.GetNEStatus(header(A)))
    assert ne.text("x1:neStatusDetails/x1:neStatus") == "Faults"
    await rig.tasking.drain()
    ended = [r for r in rig.audit.records if r.event == "x1-task-ended"]
    assert [(r.principal, r.criteria_id, r.result) for r in ended] == [(A, str(xid), "cleared")]
    # a ModifyTask provisions it again
    assert (await rig.one(A, model.ModifyTask(header(A), task(xid, [did])))).code is None
    got = await rig.one(A, model.GetTaskDetails(header(A), xid))
    assert got.text(status + "x1:provisioningStatus") == "complete" and len(installed(rig)) == 2


async def test_a_task_the_dataplane_refuses_is_not_created(rig: Rig) -> None:
    did = uuid.uuid4()
    assert (await rig.one(A, model.CreateDestination(header(A), destination(did)))).code is None
    rig.sink.refuse = True
    xid = uuid.uuid4()
    got = await rig.one(A, model.ActivateTask(header(A), task(xid, [did])))
    assert got.code == 3000 and installed(rig) == []
    assert (await rig.one(A, model.GetTaskDetails(header(A), xid))).code == 2020


async def test_limits_count_x1_criteria_and_refuse_with_3000(rig: Rig) -> None:
    did = uuid.uuid4()
    assert (await rig.one(A, model.CreateDestination(header(A), destination(did)))).code is None
    many = [PortTarget("tcp", 80), PortTarget("udp", 53),
            AddressTarget(ipaddress.ip_address("192.0.2.9")),
            AddressTarget(ipaddress.ip_address("2001:db8::9"))]  # 16 criteria
    assert (await rig.one(A, model.ActivateTask(header(A), task(uuid.uuid4(), [did], many)))
            ).code is None  # fmt: skip
    got = await rig.one(A, model.ActivateTask(header(A), task(uuid.uuid4(), [did], many)))
    assert got.code == 3000 and "limit" in (got.description or "")
    assert len(rig.registry) == 16  # the refused task's pending criteria were discarded


async def test_a_modified_destination_is_followed_by_its_tasks(rig: Rig) -> None:
    xid, did = uuid.uuid4(), uuid.uuid4()
    await provision(rig, A, xid, did)
    moved = destination(did, "192.0.2.77", 7443)
    assert (await rig.one(A, model.ModifyDestination(header(A), moved))).code is None
    assert {(d.dest_address, d.dest_port) for c in installed(rig) for d in c.destinations} == {
        ("192.0.2.77", 7443)}
    got = await rig.one(A, model.GetDestinationDetails(header(A), did))
    assert got.text("x1:destinationResponseDetails/x1:destinationStatus/"
                    "x1:destinationDeliveryStatus") == "deliveryFault"
    rig.health.connected.add(("192.0.2.77", 7443))
    got = await rig.one(A, model.GetDestinationDetails(header(A), did))
    assert got.text("x1:destinationResponseDetails/x1:destinationStatus/"
                    "x1:destinationDeliveryStatus") == "activeAndWorking"
    assert (await rig.one(A, model.GetNEStatus(header(A)))).text(
        "x1:neStatusDetails/x1:neStatus") == "OK"


async def test_the_real_dataplane_refuses_x3_until_it_can_send_it() -> None:
    from flowtap.dataplane import Dataplane

    sink = Dataplane()
    registry = Registry(sink)
    audit = AuditList()
    tasking = Tasking(registry, audit.submit, lambda: NE, Health())
    rig = Rig(registry, RecordingSink(), audit, Health(), tasking)
    try:
        did = uuid.uuid4()
        assert (await rig.one(A, model.CreateDestination(header(A), destination(did)))).code \
            is None
        got = await rig.one(A, model.ActivateTask(header(A), task(uuid.uuid4(), [did])))
        assert got.code == 3000 and "X3" in (got.description or "") and len(registry) == 0
    finally:
        await registry.publisher.close()
        sink.stop()


class _BrokenHealth:
    def destination_state(self, address: str, port: int) -> tuple[bool, int, int]:
        raise RuntimeError(f"bug while looking at {address}")

    def destination_problem(self, address: str, port: int) -> str | None:
        raise RuntimeError(f"bug while looking at {address}")


async def test_a_bug_in_one_message_is_answered_1000_and_the_rest_run(rig: Rig) -> None:
    did = uuid.uuid4()
    assert (await rig.one(A, model.CreateDestination(header(A), destination(did)))).code is None
    rig.tasking.health = _BrokenHealth()
    got = await rig.send(A, model.GetDestinationDetails(header(A), did), model.Ping(header(A)))
    assert [(a.type, a.code) for a in got] == [("ErrorResponse", 1000), ("PingResponse", None)]
    assert [r.result for r in rig.audit.records[-2:]] == ["error 1000", "OK"]
