"""LI-10 for X1: after an unclean stop the LI audit log records, per task tapping at the crash,
that it ended (flowtap.x1.crash_audit, replayed by AuditLog.open through flowtapd's recover
callback). The records are those the real message layer writes."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from flowtap.app import intercepts_ended_by_crash
from flowtap.audit import AuditLog, verify
from flowtap.dtcp.auditing import LiAudit
from flowtap.intercept.registry import Registry
from flowtap.x1 import model
from flowtap.x1.crash_audit import UNCLEAN_STOP
from flowtap.x1.tasking import Tasking
from tests.x1.rig import NE, AuditList, Health, RecordingSink, Rig, destination, header, task

A, B = "admf-a", "admf-b"


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()[1:]]


async def test_tasks_tapping_at_a_crash_get_an_end_record(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "li-audit.log"
    log = AuditLog.open(path, intercepts_ended_by_crash)
    sink = RecordingSink()
    registry = Registry(sink)
    tasking = Tasking(registry, LiAudit(log).submit, lambda: NE, Health())
    rig = Rig(registry, sink, AuditList(), Health(), tasking)
    t1, t2, t3, did = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def ok(admf: str, *messages: model.Request) -> None:
        assert [a.code for a in await rig.send(admf, *messages)] == [None] * len(messages)

    try:
        await ok(A, model.CreateDestination(header(A), destination(did)),
                 model.ActivateTask(header(A), task(t1, [did])))
        registry.clear()  # flow-tap removed: t1 failed
        await tasking.drain()
        await ok(A, model.ActivateTask(header(A), task(t2, [did])),
                 model.DeactivateTask(header(A), t2),
                 model.ModifyTask(header(A), task(t1, [did])),  # t1 taps again
                 model.ActivateTask(header(A), task(t2, [did])),  # the XID reused
                 model.ActivateTask(header(A), task(t3, [did])),
                 model.DeactivateTask(header(A), t3),
                 model.GetTaskDetails(header(A), t1))
        await ok(B, model.CreateDestination(header(B), destination(did)),
                 model.ActivateTask(header(B), task(t1, [did])))  # B's own, same XID
    finally:
        await registry.publisher.close()
    log._release()  # killed: no close, no "service stopped" records
    before = len(records(path))
    AuditLog.open(path, intercepts_ended_by_crash).close_sync()
    assert verify(path).ok
    after = records(path)[before:]
    ended = [(r["principal"], r["criteria_id"]) for r in after if r["result"] == UNCLEAN_STOP]
    assert ended == [(A, str(t1)), (A, str(t2)), (B, str(t1))]
    assert all(r["event"] == "x1-task-ended" and r["cdest_id"] == str(did)
               for r in after if r["result"] == UNCLEAN_STOP)  # fmt: skip
    # a second start replays nothing again
    AuditLog.open(path, intercepts_ended_by_crash).close_sync()
    assert len([r for r in records(path) if r["result"] == UNCLEAN_STOP]) == 3
