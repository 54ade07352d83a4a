"""After an unclean stop, record in the LI audit log the end of every X1 task that was tapping
(SECURITY.md LI-10), as :mod:`flowtap.dtcp.crash_audit` does for DTCP criteria: tasks are
runtime state, so a SIGKILL, a crash or a power loss ends them without a DeactivateTask record.

:func:`tasks_ended_by_crash` is (a part of) the ``recover`` callback of
:meth:`flowtap.audit.AuditLog.open`. It replays the crashed writer's records newest first, back
to the ``open`` record that started it, per (ADMF, XID):
- ``x1`` ``ActivateTask`` or ``ModifyTask`` with result ``OK`` started (or, for a task that had
  failed, restarted) tapping: its record is durable before its criteria are published;
- ``x1`` ``DeactivateTask`` ``OK`` (and ``DeactivateAllTasks`` ``OK``, whose ``criteria_id``
  lists the XIDs) and ``x1-task-ended`` (flow-tap stopped, the dataplane refused it, the
  service stopped, or an earlier recovery) ended it.
A task started with no later end was live at the crash and gets an ``x1-task-ended`` record
with result ``unclean stop``, with the ADMF, peer, XID and DIDs of the record that started it
and when it was last known live. XIDs may be reused after a deactivation, so an end closes the
newest start before it, and an ActivateTask closes the task's history (anything older belongs
to an earlier task with the same XID).
"""

from __future__ import annotations

from typing import Any

from flowtap.audit import AuditRecord, lines_backwards, parse_line

UNCLEAN_STOP = "unclean stop"
ENDED_EVENT = "x1-task-ended"
_OPEN = b'"event":"open"'
_X1 = b'"event":"x1"'
_ENDED = b'"event":"x1-task-ended"'
_UNCLEAN = b'"result":"unclean stop"'
_STARTS = ("ActivateTask", "ModifyTask")
_ENDS = ("DeactivateTask", "DeactivateAllTasks")
_KEPT = ("seq", "time", "principal", "peer", "session", "criteria_id", "cdest_id")


def tasks_ended_by_crash(fd: int, end: int, last: dict[str, Any]) -> list[AuditRecord]:
    """The ``unclean stop`` records of the X1 tasks live when the log's writer died."""
    state: dict[tuple[str, str], str] = {}  # "ended", or "reported" (live at the crash)
    live: list[dict[str, Any]] = []
    newest: dict[str, Any] | None = None
    for line in lines_backwards(fd, end):
        if _OPEN in line:
            break
        if newest is None and _UNCLEAN not in line:
            newest = parse_line(line)
        if _ENDED not in line and not (_X1 in line and b'"result":"OK"' in line):
            continue
        record = parse_line(line)
        if record is None:
            continue
        method = record.get("method")
        keys = _keys(record)
        if record.get("event") == ENDED_EVENT or method in _ENDS:
            for key in keys:
                state.setdefault(key, "ended")
        elif method in _STARTS and len(keys) == 1:
            key = keys[0]
            if key not in state:
                state[key] = "reported"
                live.append({name: record.get(name) for name in _KEPT})
            if method == "ActivateTask":
                del state[key]  # what is older belongs to an earlier task with this XID
    stop = newest or last
    known = f"last known live {stop.get('time')} (seq {stop.get('seq')}, the last durable record)"
    return [_ended(start, known) for start in reversed(live)]


def _ended(start: dict[str, Any], known: str) -> AuditRecord:
    return AuditRecord(
        event=ENDED_EVENT, result=UNCLEAN_STOP, principal=start.get("principal"),
        peer=start.get("peer"), session=start.get("session"), method="ActivateTask",
        criteria_id=start.get("criteria_id"), cdest_id=start.get("cdest_id"),
        reason=f"{known}; provisioned {start.get('time')} (seq {start.get('seq')}); "
               "ended by an unclean stop of flowtapd (crash, kill or power loss)",
    )  # fmt: skip


def _keys(record: dict[str, Any]) -> list[tuple[str, str]]:
    principal, ids = record.get("principal"), record.get("criteria_id")
    if not isinstance(principal, str) or not isinstance(ids, str):
        return []
    return [(principal, xid) for xid in ids.split(",") if xid]

