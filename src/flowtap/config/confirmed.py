"""Confirmed commits (RFC 6241 §8.4) of :class:`flowtap.config.datastores.Datastores`: armed by a
commit with ``confirmed``, confirmed by the next commit, rolled back on timeout, on cancel-commit,
on the issuing session's end (without persist) and at the next boot. Each rollback is a commit
that carries a :class:`flowtap.config.txn.Confirm`: which confirmed commits it undid and why, for
the operator log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.persist import StateDir
from flowtap.config.txn import Confirm, Diff, Outcome, TransactionManager
from flowtap.config.xmlutil import parse_top
from flowtap.errors import ConfigError

LOG = logging.getLogger(__name__)


@dataclass
class PendingConfirm:
    session_id: int
    persist: str | None
    rollback: bytes
    deadline: float
    timer: asyncio.TimerHandle | None = None
    chain: tuple[Diff, ...] = ()  # the confirmed commits the rollback undoes, oldest first


def _check_persist_id(pending: PendingConfirm, persist_id: str | None) -> None:
    if persist_id != pending.persist:
        raise ConfigError(
            tag="invalid-value", message="persist-id does not match the pending commit",
            info={"bad-element": "persist-id"},
        )  # fmt: skip


class ConfirmedCommits:
    """The part of the datastores that arms, checks, cancels and rolls back a confirmed commit
    (the datastores' ``commit`` arms and confirms it)."""

    txn: TransactionManager
    state: StateDir
    pending: PendingConfirm | None
    candidate: etree._Element

    def _check_confirming(self, pending: PendingConfirm, session_id: int, pid: str | None) -> None:
        if pending.persist is not None:
            _check_persist_id(pending, pid)
        elif pending.session_id != session_id:
            raise ConfigError(
                tag="in-use", message="Another session has a confirmed commit in progress"
            )

    def _arm(self, session_id: int, persist: str | None, rollback: bytes, timeout: int,
             chain: tuple[Diff, ...]) -> None:  # fmt: skip
        self._disarm(clear_file=False)
        deadline = time.time() + timeout
        self.state.write_pending(rollback, persist, deadline)
        loop = asyncio.get_running_loop()
        self.pending = PendingConfirm(session_id, persist, rollback, deadline, chain=chain)
        self.pending.timer = loop.call_later(timeout, self._on_timeout)

    def _disarm(self, *, clear_file: bool = True) -> None:
        if self.pending is not None and self.pending.timer is not None:
            self.pending.timer.cancel()
        self.pending = None
        if clear_file:
            self.state.clear_pending()

    def _on_timeout(self) -> None:
        LOG.debug("confirmed commit timed out: reverting")
        asyncio.get_running_loop().create_task(self.revert("confirm-timeout expired", "timed out"))

    async def cancel_commit(
        self, session_id: int, persist_id: str | None, principal: Principal | None = None
    ) -> None:
        pending = self.pending
        if pending is None:
            raise ConfigError(tag="operation-failed", message="No confirmed commit is pending")
        if pending.persist is not None:
            _check_persist_id(pending, persist_id)
        elif persist_id is not None or pending.session_id != session_id:
            raise ConfigError(
                tag="invalid-value" if persist_id is not None else "operation-failed",
                message="The pending confirmed commit belongs to another session",
            )
        await self.revert("cancel-commit", "cancelled", principal, f"session {session_id}")

    async def revert(
        self, why: str, outcome: Outcome, by: Principal | None = None, origin: str = ""
    ) -> None:
        pending = self.pending
        if pending is None:
            return
        self._disarm(clear_file=False)
        confirm = Confirm(settles=pending.chain, outcome=outcome, by=by, origin=origin)
        await self.txn.commit(parse_top(pending.rollback), None, f"rollback: {why}", force=True,
                              confirm=confirm)  # fmt: skip
        self.state.clear_pending()
        self._reset_candidate()

    def _reset_candidate(self) -> None:
        self.candidate = self.txn.running

    async def recover_pending(self) -> bool:
        """At boot: a confirmed commit that was never confirmed is rolled back."""
        rollback = self.state.load_pending()
        if rollback is None:
            return False
        await self.txn.commit(parse_top(rollback), None, "rollback: restart before confirm",
                              force=True, confirm=Confirm(outcome="restart"))  # fmt: skip
        self.state.clear_pending()
        self._reset_candidate()
        return True
