"""Capture, match and IP/UDP-encapsulate intercepted packets (see dataplane/ENCAP.md).

Public API for the flow-tap commit hook (capture interfaces) and the intercept registry
(criteria and counters, through ``flowtap.intercept.sink.CriteriaSink``)::

    dp = Dataplane(cpu=1, on_limit=callback)
    prepared = dp.prepare([CaptureInterface("ge-0/0/0.0", "eth1")], inet6=True)  # may raise
    dp.commit(prepared)          # or dp.abort(prepared)
    dp.check(criterion)          # ValueError: no socket could serve it
    dp.apply(upserts, removals)  # atomic delta: install/replace by id, remove ids
    dp.set_criteria(criteria)    # atomic swap of match tables + BPF + sockets
    dp.counters()                # {criteria_id: CriterionCounters}
    dp.kernel_stats()            # KernelStats(packets, drops)
    dp.stop()
"""

from flowtap.dataplane.counters import CriterionCounters, KernelStats
from flowtap.dataplane.engine import Dataplane, PreparedCapture
from flowtap.dataplane.ring import CaptureInterface

__all__ = [
    "CaptureInterface",
    "CriterionCounters",
    "Dataplane",
    "KernelStats",
    "PreparedCapture",
]
