"""The LI audit record of every commit that changes lawful-intercept configuration.

The operator log never names an LI hierarchy or an LI user (:mod:`flowtap.oplog`); an LI auditor
finds those commits here: event ``config``, who committed (a user name, or ``system`` for a
confirmed commit's timeout and the like), from where (``session N``), and in ``reason`` the
commit number, the comment, which LI hierarchies changed (``services flow-tap``, ``system
services flow-tap-dtcp``; never their values, which stay in the configuration under its
permissions) and what the commit did to pending confirmed commits that changed any: a confirmed
commit's deadline, which of them it confirms, or why it rolls them back.

The commit's reply waits until the record is durable, as a DTCP reply waits for its own; a commit
that touched no LI hierarchy, directly or by confirming, writes nothing and waits for nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flowtap.audit import AuditRecord
from flowtap.auth.principal import Principal
from flowtap.config.li_policy import LI_PATHS, Grafter
from flowtap.config.txn import Confirm, Diff

Submit = Callable[[AuditRecord], Awaitable[None]]
Listener = Callable[[Diff, Principal | None], Awaitable[None] | None]


def record(
    diff: Diff, principal: Principal | None, changed: list[str], settled: str
) -> AuditRecord:
    number = "commit" if diff.number is None else f"commit {diff.number}"
    comment = f", comment {diff.comment!r}" if diff.comment else ""
    what = f"changed {', '.join(changed)}" if changed else "no LI changes"
    return AuditRecord(
        event="config", result="committed", method="commit",
        principal=principal.user if principal is not None else "system",
        session=diff.origin, reason=f"{number}{comment}: {what}{settled}",
    )  # fmt: skip


def _settled(grafter: Grafter, confirm: Confirm | None, changed: list[str]) -> str:
    """What the commit does to confirmed commits that changed LI configuration, in words."""
    if confirm is None or (confirm.timeout is not None and not changed):
        return ""
    by = confirm.by.user if confirm.by is not None else "system"
    return confirm.describe(lambda d: bool(_changed(grafter, d)), by) or ""


def _changed(grafter: Grafter, diff: Diff) -> list[str]:
    """The LI hierarchies a commit changed (none, without comparing, when its edits reached
    none: flowtap.config.reach)."""
    if diff.unchanged or (diff.reached is not None and diff.reached.isdisjoint(LI_PATHS)):
        return []
    return grafter.changed(diff.old, diff.new)


def listener(grafter: Grafter, submit: Submit) -> Listener:
    """A transaction listener, for commits that change running and for those that do not
    (``TransactionManager.listeners`` and ``unchanged_listeners``): the awaitable of the
    durable record of a commit that concerns LI configuration; otherwise None."""

    def on_commit(diff: Diff, principal: Principal | None) -> Awaitable[None] | None:
        if diff.number is None and not diff.unchanged:
            return None  # the boot replays what was committed (and audited) before
        changed = _changed(grafter, diff)
        settled = _settled(grafter, diff.confirm, changed)
        if not changed and not settled:
            return None
        return submit(record(diff, principal, changed, settled))

    return on_commit
