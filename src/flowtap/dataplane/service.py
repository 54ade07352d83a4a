"""The flow-tap service as a commit hook: ``services flow-tap`` reconciled into the dataplane.

What runs, decided here (dataplane/ENCAP.md, "Capture interfaces", says the same for operators):

* flow-tap runs while ``services flow-tap`` is configured, with ``interface sp-F/P/N.U``
  (classic flow-tap) or ``tunnel-interface vt-F/P/N.U`` (FlowTapLite). Both drive the same
  dataplane: Linux has no services PIC and no tunnel PFE, so the only differences are the
  service unit's name and where ``family inet6`` is read from. A ``disable``d service interface
  is a PIC that is down: flow-tap is stopped (criteria dropped) until it is enabled again.
* Captured: every configured interface that is not ``disable``d and is not a services PIC or
  tunnel interface (``sp-``, ``vt-``, ``fti-``: the service engines, the flow-tap one and any
  spare, not where subscriber traffic enters), ingress only, on its ``host-device`` (or on
  the Linux device named like the interface). Its IFL name, the name
  ``X-JTap-Input-Interface`` scopes to, is ``NAME.U`` for its lowest configured unit (``NAME.0``
  without units): a Linux device carries one IFL here. The service interface's own
  ``host-device`` is never captured: copies are routed by the kernel, not sent through it.
* IPv4 always; IPv6 iff the service unit has ``family inet6`` (FlowTapLite: the tunnel unit, if
  it is configured under ``interfaces``; otherwise IPv4 only).
* Refused at commit, when the committer reads LI configuration (``flow-tap``; see
  :mod:`flowtap.config.li_policy`): what :mod:`flowtap.dataplane.conflicts` finds and this commit
  introduces (dynamic-flow-capture next to flow-tap, a service unit that is not configured or
  has no ``family inet``, two capture interfaces on one Linux device: each packet would be
  copied twice, ``invalid-value``), and a capture device that does not exist or cannot be
  opened (``resource-denied``, path to the interface's ``host-device``).
* Degraded instead, for everyone else and for the system's own commits (boot, a revert): the
  commit goes through, flow-tap captures what it can (the first interface of a shared device,
  the devices that exist and open) and :attr:`FlowTapService.degraded` holds the reasons, which
  ``on_degraded`` listeners get (the LI audit log) and ``flow-tap-state`` shows. A device that
  comes back is captured again at the next commit, whoever makes it. So a user without LI bits
  never learns from a commit that flow-tap exists, and never finds it blocking a change.

Lifecycle on commit (criteria are the intercept registry's runtime state, never configuration):

* start    flow-tap newly configured: the dataplane starts capturing, with no criteria (the
           stop before dropped them; the registry installs new ones);
* rebind   capture interfaces or ``family inet6`` changed, same service unit (or a captured
           device was re-created with a new ifindex): new rings are opened in prepare and
           swapped in at commit, every criterion kept;
* restart  the service unit changed (another ``sp-`` unit, or classic <-> FlowTapLite):
           criteria dropped, the dataplane starts anew;
* stop     flow-tap removed, or its interface disabled: rings and sockets closed, criteria
           dropped.

On restart and stop, and when ``services flow-tap`` is removed while already stopped (a
disabled service unit), the ``on_stop`` listeners run once (in commit, on the event loop) so the
intercept registry forgets its criteria too, as Junos drops every dynamic filter when flow-tap
restarts or is removed: the registry must, or its next publication would bring them back.

The hook drives a :class:`Dataplane` it is given (the appliance's, which the intercept registry
installs criteria in and whose packet/byte limits it receives): it only opens, swaps and closes
its rings, and ``stop`` clears its criteria. :attr:`FlowTapService.dataplane` is that dataplane
while flow-tap runs and None otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from flowtap.config import li_policy, model
from flowtap.dataplane import conflicts
from flowtap.dataplane.conflicts import SERVICE_PATH, interface_path
from flowtap.dataplane.counters import KernelStats
from flowtap.dataplane.engine import Dataplane, PreparedCapture, default_workers
from flowtap.dataplane.ring import CaptureInterface
from flowtap.errors import CaptureError, CommitFailed

LOG = logging.getLogger(__name__)

__all__ = ["SERVICE_PATH", "CapturePlan", "FlowTapService", "check", "interface_path", "plan"]
SERVICE_TYPES = ("sp-", "vt-", "fti-")  # services PIC and tunnel interfaces: never captured
Action = Literal["keep", "start", "rebind", "restart", "stop"]


@dataclass(frozen=True, slots=True)
class CapturePlan:
    """What flow-tap captures for one configuration."""

    service: str  # the service unit: sp-0/0/0.0 (classic) or vt-0/0/0.0 (FlowTapLite)
    lite: bool  # FlowTapLite (tunnel-interface)
    interfaces: tuple[CaptureInterface, ...]
    inet6: bool
    workers: int = 1  # capture worker processes (capture-workers, else one per CPU)

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(i.device for i in self.interfaces)


def plan(config: model.Config) -> CapturePlan | None:
    """The capture plan of ``config``, or None when flow-tap does not run. Pure."""
    ft = config.flow_tap
    if ft is None:
        return None
    lite = ft.interface is None
    service = ft.interface if ft.interface is not None else ft.tunnel_interface
    if service is None:
        return None  # YANG requires one of the two
    name, _, unit = service.partition(".")
    own = config.interfaces.get(name)
    if own is not None and own.disabled:
        return None  # the services PIC (tunnel) is down
    inet6 = False
    if own is not None and unit.isdigit() and int(unit) in own.units:
        inet6 = own.units[int(unit)].inet6
    captures = []
    for iface in sorted(config.interfaces.values(), key=lambda i: i.name):
        if iface.name == name or iface.disabled or iface.name.startswith(SERVICE_TYPES):
            continue
        ifl = f"{iface.name}.{min(iface.units) if iface.units else 0}"
        captures.append(CaptureInterface(ifl, iface.host_device))
    workers = ft.capture_workers or default_workers()
    return CapturePlan(service, lite, tuple(captures), inet6, workers)


def check(config: model.Config, old: model.Config | None = None) -> None:
    """Refuse configurations flow-tap cannot serve as asked (pure); with ``old``, only what
    this change introduces (a conflict someone else left is reported as degradation).

    Raises:
        CommitFailed: the first conflict, as :mod:`flowtap.dataplane.conflicts` words it.
    """
    before = set() if old is None else {c.message for c in _conflicts(old)[1]}
    for conflict in _conflicts(config)[1]:
        if conflict.message not in before:
            raise conflict


def _conflicts(config: model.Config) -> tuple[CapturePlan | None, list[CommitFailed]]:
    """The plan without repeated devices, and every conflict of ``config``."""
    found = conflicts.configuration(config)
    p = plan(config)
    if p is None:
        return None, found
    repeats, shared = conflicts.shared_devices(
        [(ci.name.rpartition(".")[0], ci.device) for ci in p.interfaces])
    kept = tuple(ci for i, ci in enumerate(p.interfaces) if i not in repeats)
    return replace(p, interfaces=kept), found + shared


def _ifindex(device: str) -> int | None:
    try:
        return socket.if_nametoindex(device)
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class _Prepared:
    action: Action
    plan: CapturePlan | None = None
    capture: PreparedCapture | None = None
    ifindexes: tuple[int, ...] = ()
    asked: CapturePlan | None = None  # the plan as configured, before what cannot be served
    degraded: tuple[str, ...] = ()
    removed: bool = False  # ``services flow-tap`` is gone (its criteria with it)


class FlowTapService:
    """Commit hook ``flow-tap``: reconciles the capture interfaces of a :class:`Dataplane`."""

    name = "flow-tap"

    def __init__(self, *, dataplane: Dataplane | None = None) -> None:
        """Args:
            dataplane: the one to drive (the appliance's); tests let the hook make a bare one.
        """
        self._dp = dataplane if dataplane is not None else Dataplane()
        self._plan: CapturePlan | None = None
        self._ifindexes: tuple[int, ...] = ()
        self._committed = False
        self._degraded: tuple[str, ...] = ()
        self._asked: CapturePlan | None = None
        self.on_stop: list[Callable[[], None]] = []
        # (reasons, committer) when the reasons change; () means fully served again
        self.on_degraded: list[Callable[[tuple[str, ...], str], None]] = []

    # ---- what others read ----

    @property
    def dataplane(self) -> Dataplane | None:
        """The live dataplane while flow-tap runs, else None (do not keep the reference)."""
        return self._dp if self._plan is not None else None

    @property
    def running(self) -> bool:
        return self._plan is not None

    @property
    def plan(self) -> CapturePlan | None:
        """What is captured now (None: flow-tap is not running)."""
        return self._plan

    def kernel_stats(self) -> KernelStats:
        return self._dp.kernel_stats()

    @property
    def degraded(self) -> tuple[str, ...]:
        """Why flow-tap does not serve its configuration as asked (empty: it does)."""
        return self._degraded

    # ---- Hook ----

    def validate(self, old: model.Config, new: model.Config) -> None:
        if li_policy.strict():
            check(new, old)

    async def prepare(self, old: model.Config, new: model.Config) -> _Prepared:
        # boot captures what exists (module docstring), like a commit by someone without LI bits
        strict = li_policy.strict() and self._committed
        wanted, found = _conflicts(new)
        reasons = [c.message for c in found]
        current = self._plan
        if wanted is None:
            removed = old.flow_tap is not None and new.flow_tap is None
            return _Prepared("keep" if current is None else "stop", degraded=tuple(reasons),
                             removed=removed)  # fmt: skip
        asked = wanted
        missing = [self._error(ci, f"device {ci.device!r} does not exist")
                   for ci in wanted.interfaces if _ifindex(ci.device) is None]  # fmt: skip
        reasons += [error.message for error in missing]
        wanted = replace(wanted, interfaces=tuple(
            ci for ci in wanted.interfaces if _ifindex(ci.device) is not None))  # fmt: skip
        unchanged = asked == self._asked and wanted == current and not self._stale()
        if strict and missing and not unchanged:
            raise missing[0]
        if unchanged:
            return _Prepared("keep", asked=asked, degraded=tuple(reasons))
        action: Action = "start"
        if current is not None:
            same = (current.service, current.lite) == (wanted.service, wanted.lite)
            action = "rebind" if same else "restart"
        capture, wanted = self._open(wanted, strict, reasons)
        ifindexes = tuple(r.ifindex for r in capture.primary)
        return _Prepared(action, wanted, capture, ifindexes, asked, tuple(reasons))

    def _open(self, wanted: CapturePlan, strict: bool,
              reasons: list[str]) -> tuple[PreparedCapture, CapturePlan]:  # fmt: skip
        """Open the rings of ``wanted``; when not strict, leave out what cannot be opened."""
        while True:
            try:
                return self._dp.prepare(wanted.interfaces, wanted.inet6, wanted.workers), wanted
            except CaptureError as exc:
                bad = next((ci for ci in wanted.interfaces if ci.name == exc.interface), None)
                error = (CommitFailed(f"flow-tap: {exc}", tag="resource-denied", path=SERVICE_PATH)
                         if bad is None else self._error(bad, exc.reason))  # fmt: skip
                if strict:
                    raise error from None
                reasons.append(error.message)
                left = () if bad is None else tuple(c for c in wanted.interfaces if c is not bad)
                wanted = replace(wanted, interfaces=left)

    async def commit(self, handle: _Prepared) -> None:
        self._committed = True
        self._asked = handle.asked
        self._report(handle.degraded)
        if handle.action == "keep":
            if handle.removed:
                self._dropped()  # stopped before (disabled unit); criteria added since go now
            return
        dropped = handle.action in ("stop", "restart")
        if dropped:
            self._dp.stop()  # rings and sockets closed, criteria forgotten
        if handle.capture is not None:
            self._dp.commit(handle.capture)
        self._plan = handle.plan
        self._ifindexes = handle.ifindexes
        # whether and where flow-tap captures is LI configuration (LI-1): DEBUG only; its
        # degradations are in flow-tap-state and the LI audit log
        if handle.plan is None:
            LOG.debug("flow-tap stopped")
        else:
            LOG.debug("flow-tap %s on %s: capturing %s (IPv6 %s, %d capture workers)",
                     handle.action, handle.plan.service,
                     ", ".join(handle.plan.devices) or "nothing",
                     "on" if handle.plan.inet6 else "off", handle.plan.workers)
        if dropped:
            self._dropped()

    async def abort(self, handle: _Prepared) -> None:
        if handle.capture is not None:
            self._dp.abort(handle.capture)

    def close(self) -> None:
        """Stop capturing (appliance shutdown); the hook stays usable."""
        was = self._plan is not None
        self._dp.stop()
        self._plan, self._ifindexes, self._asked = None, (), None
        if was:
            for listener in list(self.on_stop):
                with contextlib.suppress(Exception):
                    listener()

    # ---- internals ----

    def _report(self, reasons: tuple[str, ...]) -> None:
        if reasons == self._degraded:
            return
        self._degraded = reasons
        committer = li_policy.committer_name()
        if reasons:  # flow-tap-state and the LI audit log (listeners below) tell its users
            LOG.debug("flow-tap degraded: %s", "; ".join(reasons))
        else:
            LOG.debug("flow-tap serves its configuration again")
        for listener in list(self.on_degraded):
            try:
                listener(reasons, committer)
            except Exception:
                LOG.exception("flow-tap on_degraded listener failed")

    def _dropped(self) -> None:
        for listener in list(self.on_stop):
            try:
                listener()
            except Exception:
                LOG.exception("flow-tap on_stop listener failed")

    def _stale(self) -> bool:
        """A captured device vanished or was re-created (new ifindex) since it was bound."""
        if self._plan is None:
            return False
        now = tuple(_ifindex(d) for d in self._plan.devices)
        return now != self._ifindexes

    @staticmethod
    def _error(ci: CaptureInterface, reason: str) -> CommitFailed:
        ifd = ci.name.rpartition(".")[0]
        leaf = None if ci.device == ifd else "host-device"
        return CommitFailed(f"flow-tap: cannot capture on interface {ifd}: {reason}",
                            tag="resource-denied", path=interface_path(ifd, leaf))

