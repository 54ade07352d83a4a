"""After an unclean stop, record in the LI audit log the end of every intercept that was live
(SECURITY LI-10): the auditor must see every interval of tapping, and criteria are runtime state,
so a SIGKILL, a crash or a power loss ends them all without a DELETE or expiry record.

:func:`criteria_ended_by_crash` is the ``recover`` callback of :meth:`AuditLog.open`. It replays
the crashed writer's records, newest first, back to the ``open`` record that started it:

- ``dtcp`` ``ADD`` with ``200 OK`` installed a criterion (its record is durable before the
  criterion is published, so a durable ADD may have tapped);
- ``dtcp`` ``DELETE`` with ``200 OK`` (``criteria_id`` lists the IDs deleted) and ``dtcp-remove``
  (expiry, flow-tap cleared, install failure, service stopped, or an earlier recovery) ended one;
- REFRESH, LIST, NOOP and refusals change nothing that is live.

An ADD with no later end was live at the crash and gets a ``dtcp-remove`` record with result
``unclean stop``: ``principal`` (the control source), ``peer``, ``session``, ``criteria_id`` and
``cdest_id`` as its ADD record had them, and a ``reason`` giving when the tap was last known live
(the time and seq of the crashed writer's last durable record), when it was added (its ADD's
time and seq) and that it ended by an unclean stop. The records precede the new ``open`` record,
so each writer's segment starts after a complete account of the previous one: a crash during
this recovery leaves no ``open`` behind, and the next start replays the same segment, skipping
the criteria already recorded as ended.

Why only back to the last ``open``: criteria never outlive their process, and every stop before
that ``open`` was accounted for (a clean one by the ``service stopped`` records, an unclean one
by this recovery). Cost: one backward read of that segment, O(its bytes) in time, 64 KiB
buffers; memory O(criteria live at some point of the segment), bounded by the highest criteria
limit in force during it (``services flow-tap limits criteria``), since an end waits in memory
only until its ADD is reached.
Lines of other kinds are skipped on a byte test without being parsed. The "last known live" time
may be later than the real end of a criterion whose expiry record the crash lost (an expiry is
recorded just after it takes effect): the interval shown errs on the side of tapping, never hides
any.
"""

from __future__ import annotations

from typing import Any

from flowtap.audit import AuditRecord, lines_backwards, parse_line

UNCLEAN_STOP = "unclean stop"
_OPEN = b'"event":"open"'
_REMOVE = b'"event":"dtcp-remove"'
_ADD = b'"method":"ADD"'
_DELETE = b'"method":"DELETE"'
_OK = b'"result":"200 OK"'
_UNCLEAN = b'"result":"unclean stop"'
_KEPT = ("seq", "time", "principal", "template", "peer", "session", "criteria_id", "cdest_id")


def criteria_ended_by_crash(fd: int, end: int, last: dict[str, Any]) -> list[AuditRecord]:
    """The ``unclean stop`` records for the criteria live when the log's writer died.

    ``fd`` is the log (read with ``os.pread`` up to ``end``), ``last`` its last record."""
    ended: set[tuple[str, int]] = set()
    live: list[dict[str, Any]] = []
    newest: dict[str, Any] | None = None  # the dead writer's last record
    for line in lines_backwards(fd, end):
        if _OPEN in line:
            break
        if newest is None and _UNCLEAN not in line:  # not one of an interrupted recovery
            newest = parse_line(line)
        if _REMOVE in line:
            record = parse_line(line)
            if record is not None:
                ended.update(_keys(record))
        elif _OK in line and (_ADD in line or _DELETE in line):
            record = parse_line(line)
            if record is None or record.get("event") != "dtcp":
                continue
            keys = _keys(record)
            if record.get("method") == "DELETE":
                ended.update(keys)
            elif len(keys) == 1 and keys[0] in ended:
                ended.discard(keys[0])  # IDs are never reused within a process: done with it
            elif len(keys) == 1:
                live.append({name: record.get(name) for name in _KEPT})  # not the target
    stop = newest or last
    known = f"last known live {stop.get('time')} (seq {stop.get('seq')}, the last durable record)"
    return [_ended(add, known) for add in reversed(live)]  # in the order they were added


def _ended(add: dict[str, Any], known: str) -> AuditRecord:
    return AuditRecord(
        event="dtcp-remove", result=UNCLEAN_STOP, principal=add.get("principal"),
        template=add.get("template"), peer=add.get("peer"), session=add.get("session"),
        criteria_id=add.get("criteria_id"), cdest_id=add.get("cdest_id"),
        reason=f"{known}; added {add.get('time')} (seq {add.get('seq')}); "
               "ended by an unclean stop of flowtapd (crash, kill or power loss)",
    )  # fmt: skip


def _keys(record: dict[str, Any]) -> list[tuple[str, int]]:
    """(control source, Criteria-ID) of each criterion a record names."""
    principal, ids = record.get("principal"), record.get("criteria_id")
    if not isinstance(principal, str):
        return []
    if isinstance(ids, int):
        return [(principal, ids)]
    if isinstance(ids, str):
        return [(principal, int(i)) for i in ids.split(",") if i.strip().isdigit()]
    return []

