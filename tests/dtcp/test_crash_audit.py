"""LI-10: after an unclean stop the LI audit log records, per criterion live at the crash, that it
ended (flowtap.dtcp.crash_audit replayed by AuditLog.open)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from flowtap.audit import AuditLog, AuditRecord, verify
from flowtap.dtcp.crash_audit import UNCLEAN_STOP, criteria_ended_by_crash


def dtcp(method: str, source: str, criteria_id: int | str | None, result: str = "200 OK",
         ) -> AuditRecord:  # fmt: skip
    return AuditRecord(
        event="dtcp", result=result, principal=source, template="li", peer="192.0.2.9",
        session=f"s-{source}", method=method, criteria_id=criteria_id, cdest_id="cd1",
        target="Dest-Address: 192.0.2.77" if method == "ADD" else None,
    )  # fmt: skip


def removed(source: str, criteria_id: int, reason: str) -> AuditRecord:
    return AuditRecord(event="dtcp-remove", result=reason, principal=source,
                       peer="192.0.2.9", criteria_id=criteria_id, cdest_id="cd1")  # fmt: skip


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "li-audit.log"


def crash_after(path: Path, *records: AuditRecord) -> None:
    """One writer's life: open, ``records``, then a SIGKILL (no close, no service-stop records)."""
    log = AuditLog.open(path, criteria_ended_by_crash)
    log.append_sync(*records)
    log._release()


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()[1:]]


def ended(path: Path) -> list[tuple[str, int]]:
    return [(r["principal"], r["criteria_id"]) for r in records(path)
            if r["result"] == UNCLEAN_STOP]  # fmt: skip


def test_each_criterion_live_at_the_crash_gets_an_end_record(path: Path) -> None:
    crash_after(
        path,
        dtcp("ADD", "md1", 1), dtcp("ADD", "md1", 2), dtcp("ADD", "md2", 1),
        dtcp("ADD", "md1", 3), dtcp("ADD", "md1", 4), dtcp("ADD", "md1", 5),
        dtcp("DELETE", "md1", "1,3"),  # deleted
        removed("md1", 4, "timeout-total"),  # expired
        dtcp("REFRESH", "md1", "2"), dtcp("LIST", "md1", None), dtcp("NOOP", "md2", None),
        dtcp("ADD", "md1", 6, result="550 Max Criteria Limit Exceeded"),  # never installed
        dtcp("DELETE", "md2", "7", result="431 Unknown Criteria ID"),  # changed nothing
    )
    before = records(path)
    last, add_md2 = before[-1], before[3]
    AuditLog.open(path, criteria_ended_by_crash).close_sync()
    assert verify(path).ok
    assert ended(path) == [("md1", 2), ("md2", 1), ("md1", 5)]  # in the order they were added
    after = records(path)[len(before):]
    assert [r["event"] for r in after] == ["dtcp-remove"] * 3 + ["open", "close"]
    assert "did not close" in after[3]["reason"]
    md2 = after[1]
    assert (md2["peer"], md2["session"], md2["cdest_id"], md2["template"]) == (
        "192.0.2.9", "s-md2", "cd1", "li")  # as its ADD had them
    assert md2["target"] is None  # the ADD record holds the criterion; this one only ends it
    assert f"last known live {last['time']} (seq {last['seq']}" in md2["reason"]
    assert f"added {add_md2['time']} (seq {add_md2['seq']})" in md2["reason"]
    assert "unclean stop" in md2["reason"]


def test_clean_close_and_earlier_crashes_are_not_replayed_again(path: Path) -> None:
    crash_after(path, dtcp("ADD", "md1", 1))
    log = AuditLog.open(path, criteria_ended_by_crash)  # records md1/1 ended, then runs
    log.append_sync(dtcp("ADD", "md1", 1), removed("md1", 1, "service stopped"))
    log.close_sync()  # a clean stop: its criteria were recorded as "service stopped"
    AuditLog.open(path, criteria_ended_by_crash).close_sync()
    crash_after(path, dtcp("ADD", "md1", 1), dtcp("ADD", "md1", 2))
    crash_after(path)  # a second crash with nothing live
    AuditLog.open(path, criteria_ended_by_crash).close_sync()
    assert ended(path) == [("md1", 1), ("md1", 1), ("md1", 2)]
    assert verify(path).ok


def test_a_crash_during_recovery_is_completed_by_the_next_start(path: Path) -> None:
    crash_after(path, dtcp("ADD", "md1", 1), dtcp("ADD", "md1", 2), dtcp("ADD", "md1", 3))
    last = records(path)[-1]
    log = AuditLog.open(path, lambda fd, end, last: criteria_ended_by_crash(fd, end, last)[:1])
    log._release()
    lines = path.read_bytes().splitlines(keepends=True)
    assert b'"event":"open"' in lines[-1]
    path.write_bytes(b"".join(lines[:-1]))  # killed after md1/1's record, before "open"
    AuditLog.open(path, criteria_ended_by_crash).close_sync()
    assert ended(path) == [("md1", 1), ("md1", 2), ("md1", 3)]  # each exactly once
    assert verify(path).ok
    final = [r for r in records(path) if r["result"] == UNCLEAN_STOP][-1]
    assert f"last known live {last['time']} (seq {last['seq']}" in final["reason"]


def test_ten_thousand_live_criteria_are_all_recorded_within_seconds(path: Path) -> None:
    """Boot after a crash with 10,000 criteria live among 16,000 records: a correctness bound
    with a wide margin (see the report for measured figures)."""
    noise = [dtcp("LIST", "md1", None) for _ in range(2_000)]
    adds = [dtcp("ADD", "md1", i) for i in range(1, 12_001)]
    deletes = [dtcp("DELETE", "md1", ",".join(map(str, range(i, i + 1000)))) for i in (1, 1001)]
    crash_after(path, *adds, *noise, *deletes)
    started = time.perf_counter()
    AuditLog.open(path, criteria_ended_by_crash).close_sync()
    took = time.perf_counter() - started
    assert ended(path) == [("md1", i) for i in range(2_001, 12_001)]
    assert verify(path).ok
    assert took < 10, took
