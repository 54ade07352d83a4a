"""The LI audit record of every commit that changes lawful-intercept configuration.

The operator log never names an LI hierarchy or an LI user (:mod:`flowtap.oplog`); an LI auditor
finds those commits here: event ``config``, the commit number, who committed (a user name, or
``system`` for a confirmed commit's timeout and the like), from where (``session N``), the
comment, and which LI hierarchies changed (``services flow-tap``, ``system services
flow-tap-dtcp``), never their values, which stay in the configuration under its permissions.

The commit's reply waits until the record is durable, as a DTCP reply waits for its own; a commit
that changed no LI hierarchy writes nothing and waits for nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from flowtap.audit import AuditRecord
from flowtap.auth.principal import Principal
from flowtap.config.li_policy import Grafter
from flowtap.config.txn import Diff

Submit = Callable[[AuditRecord], Awaitable[None]]


def record(diff: Diff, principal: Principal | None, changed: list[str]) -> AuditRecord:
    comment = f", comment {diff.comment!r}" if diff.comment else ""
    return AuditRecord(
        event="config", result="committed", method="commit",
        principal=principal.user if principal is not None else "system",
        session=diff.origin,
        reason=f"commit {diff.number}{comment}: changed {', '.join(changed)}",
    )  # fmt: skip


def listener(grafter: Grafter, submit: Submit) -> Callable[[Diff, Principal | None],
                                                           Awaitable[None] | None]:
    """A transaction listener (``TransactionManager.listeners``): for a persisted commit that
    changed LI configuration, the awaitable of its durable record; otherwise None."""

    def on_commit(diff: Diff, principal: Principal | None) -> Awaitable[None] | None:
        if diff.number is None:
            return None  # the boot replays what was committed (and audited) before
        changed = grafter.changed(diff.old, diff.new)
        return submit(record(diff, principal, changed)) if changed else None

    return on_commit
