"""The candidate, running and startup datastores, with locks and confirmed commit.

Running belongs to the TransactionManager; this module adds what a management session layers on
top (the semantics are RFC 6241's; NETCONF is one front end): a shared candidate, per-datastore
locks owned by a session id, and RFC 6241 §8.4 confirmed commits that revert on timeout, on the
issuing session's end (without persist) and at the next boot (:mod:`flowtap.config.confirmed`).
Refusals are ``ConfigError``s.

Datastore trees are values: every change builds a new tree (``apply_edit`` edits a copy) and
nothing modifies one in place, so the candidate starts out as the very tree running holds and a
serialization stays valid for as long as its tree is current.

The candidate is shared, but a user who cannot read lawful-intercept configuration acts on their
own view of it (:meth:`Datastores.view`): the LI subtrees as running has them. Another user's
uncommitted LI edits are neither committed, validated, locked against nor discarded by them, so
none of those replies depends on LI edits they cannot see (li_policy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config import access, incremental, li_policy, reach
from flowtap.config.confirmed import ConfirmedCommits, PendingConfirm
from flowtap.config.diff import changes
from flowtap.config.edit import apply_edit, content_to_check
from flowtap.config.merges import MAX_MERGES
from flowtap.config.txn import CommitResult, Confirm, TransactionManager
from flowtap.config.xmlutil import parse_top, serialize
from flowtap.errors import ConfigError

LOG = logging.getLogger(__name__)
DEFAULT_CONFIRM_TIMEOUT = 600
DATASTORES = ("running", "candidate", "startup")


def lock_denied(holder: int, message: str) -> ConfigError:
    return ConfigError(
        tag="lock-denied", type="protocol", message=message, info={"session-id": str(holder)}
    )


class Datastores(ConfirmedCommits):
    def __init__(self, txn: TransactionManager) -> None:
        self.txn = txn
        self.schema = txn.schema
        self.state = txn.state
        self.candidate = txn.running
        # what the candidate's edits reached since it was running, for the tree they made
        self._reached: tuple[etree._Element, reach.Reach] | None = None
        self.locks: dict[str, int] = {}
        self.pending: PendingConfirm | None = None
        self.grafter = li_policy.Grafter(self.schema)
        self.read_filter = access.ReadFilter(self.schema)
        self._serialized: dict[str, tuple[etree._Element, bytes]] = {}
        # (datastore, hidden rules) -> (the tree it was pruned from, the pruned serialization)
        self._visible: dict[tuple[str, tuple[int, ...]], tuple[etree._Element, bytes]] = {}
        # told of each save (how: "saved from running") or delete of startup: the operator log
        self.startup_listeners: list[Callable[[str, Principal, int], None]] = []
        startup = self.state.load_startup()
        self.startup: etree._Element | None = None if startup is None else parse_top(startup)

    # -- reading -------------------------------------------------------------------------------

    def tree(self, name: str) -> etree._Element:
        if name == "running":
            return self.txn.running
        if name == "candidate":
            return self.candidate
        if name == "startup":
            if self.startup is None:
                raise ConfigError(tag="invalid-value", message="The startup datastore is empty")
            return self.startup
        raise ConfigError(
            tag="invalid-value", message=f"Unknown datastore {name!r}", info={"bad-element": name}
        )

    def serialized(self, name: str) -> bytes:
        """A datastore's top-level elements serialized, computed once per tree: datastore trees
        are replaced on every change and never modified in place."""
        if name == "running":
            return self.txn.running_bytes
        tree = self.tree(name)
        cached = self._serialized.get(name)
        if cached is not None and cached[0] is tree:
            return cached[1]
        data = serialize(tree)
        self._serialized[name] = (tree, data)
        return data

    def visible(self, name: str, principal: Principal) -> bytes:
        """A datastore's top-level elements as ``principal`` may read them, serialized.

        Pruning depends on the tree and on the rules hiding data from the reader only, so it is
        done once per tree and set of hidden rules: a commit (a new running tree) or an edit (a
        new candidate) is what makes the next reader prune again."""
        hidden = self.read_filter.hidden(principal)
        if not hidden:
            return self.serialized(name)
        tree = self.tree(name)
        cached = self._visible.get((name, hidden))
        if cached is not None and cached[0] is tree:
            return cached[1]
        data = self.read_filter.pruned_bytes(tree, hidden)
        if data is None:  # nothing hidden in it: the bytes every reader gets
            data = self.serialized(name)
        if len(self._visible) >= 64:  # a handful of classes in practice; never grows unbounded
            self._visible.clear()
        self._visible[(name, hidden)] = (tree, data)
        return data

    @property
    def candidate_dirty(self) -> bool:
        return self.candidate is not self.txn.running and (
            self.serialized("candidate") != self.txn.running_bytes
        )

    def reached(self) -> reach.Reach | None:
        """Where the candidate may differ from running (:mod:`flowtap.config.reach`), or None
        when that is not known."""
        if self.candidate is self.txn.running:
            return reach.Reach(self.txn.version, frozenset())
        known = self._reached
        if known is None or known[0] is not self.candidate or known[1].version != self.txn.version:
            return None
        return known[1]

    def _li_untouched(self) -> bool:
        """True when the candidate's LI subtrees are known to be running's."""
        reached = self.reached()
        return reached is not None and reached.avoids(li_policy.LI_PATHS)

    def view(self, principal: Principal | None) -> etree._Element:
        """The candidate as ``principal`` commits and validates it: for a user who cannot read
        LI configuration, with the LI subtrees exactly as running has them."""
        if li_policy.sees_li(principal) or self._li_untouched():
            return self.candidate
        return self.grafter.graft(self.candidate, self.txn.running)

    def _dirty_for(self, principal: Principal | None) -> bool:
        view = self.view(principal)
        if view is self.candidate:
            return self.candidate_dirty
        # a grafted tree may order siblings differently: compare in schema order, as commit does
        return self.schema.canonical(serialize(view), validate=False) != self.txn.running_bytes

    def _discarded(self, principal: Principal | None) -> etree._Element:
        """The candidate once ``principal``'s uncommitted changes are discarded: running, plus
        the LI edits of others when ``principal`` cannot see them."""
        if li_policy.sees_li(principal) or self._li_untouched():
            return self.txn.running
        return self.grafter.graft(self.txn.running, self.candidate)

    # -- locks -----------------------------------------------------------------------------------

    def check_writable(self, name: str, session_id: int) -> None:
        holder = self.locks.get(name)
        if holder is not None and holder != session_id:
            raise lock_denied(holder, f"The {name} datastore is locked by session {holder}")

    def lock(self, name: str, session_id: int, principal: Principal | None = None) -> None:
        if name not in DATASTORES:
            raise ConfigError(tag="invalid-value", message=f"Unknown datastore {name!r}")
        holder = self.locks.get(name)
        if holder is not None:
            raise lock_denied(holder, f"Lock failed, {name} is already locked by session {holder}")
        if name == "candidate" and self._dirty_for(principal):
            raise ConfigError(
                tag="lock-denied", type="protocol",
                message="Lock failed: the candidate has uncommitted changes",
                info={"session-id": "0"},
            )  # fmt: skip
        self.locks[name] = session_id

    def unlock(self, name: str, session_id: int, principal: Principal | None = None) -> None:
        holder = self.locks.get(name)
        if holder is None:
            raise ConfigError(tag="operation-failed", message=f"The {name} datastore is not locked")
        if holder != session_id:
            raise lock_denied(holder, f"The {name} datastore is locked by session {holder}")
        del self.locks[name]
        if name == "candidate" and self.candidate_dirty:
            # RFC 6241 §8.3.5.2: unlocking a modified candidate discards the changes
            self.candidate = self._discarded(principal)

    async def release_session(self, session_id: int, principal: Principal | None = None) -> None:
        """A session ended: its locks die with it; its unconfirmed commit is reverted."""
        for name in [n for n, holder in self.locks.items() if holder == session_id]:
            del self.locks[name]
            if name == "candidate":
                self.candidate = self._discarded(principal)
        pending = self.pending
        if pending is not None and pending.persist is None and pending.session_id == session_id:
            LOG.debug("session %d closed before confirming its commit: reverting", session_id)
            await self.revert("confirming session closed", "session closed",
                              origin=f"session {session_id}")  # fmt: skip

    # -- editing ---------------------------------------------------------------------------------

    def edit(
        self,
        target: str,
        config: etree._Element,
        principal: Principal,
        session_id: int,
        default_operation: str = "merge",
        test_option: str = "test-then-set",
        error_option: str = "stop-on-error",
    ) -> None:
        self.edit_all(target, [(config, default_operation)], principal, session_id,
                      test_option, error_option)  # fmt: skip

    def edit_all(
        self,
        target: str,
        edits: Sequence[tuple[etree._Element, str]],
        principal: Principal,
        session_id: int,
        test_option: str = "test-then-set",
        error_option: str = "stop-on-error",
    ) -> None:
        """Apply ``edits`` (each a config and its default operation) one after the other, as one
        edit: all of them or none (Junos ``load set`` is a sequence of edits)."""
        if target != "candidate":
            raise ConfigError(
                tag="operation-not-supported", type="protocol",
                message="Only the candidate datastore can be edited (no :writable-running)",
            )  # fmt: skip
        self.check_writable("candidate", session_id)
        if not principal.has("configure"):
            raise ConfigError(tag="access-denied", message="Access denied: no configure permission")
        spots = [access.edit_spots(self.schema, config, default_operation)
                 for config, default_operation in edits]  # fmt: skip
        for spotted in spots:  # all refused before any is applied (LI-1)
            access.check_edit_request(principal, spotted)
        result = self.candidate
        units: frozenset[incremental.Unit] | None = frozenset()
        reached: frozenset[str] | None = frozenset()
        merges: tuple[bytes, ...] | None = ()
        for (config, default_operation), spotted in zip(edits, spots, strict=True):
            result = apply_edit(self.schema, result, config, default_operation, error_option)
            more = reach.of_edit(spotted)
            reached = None if more is None or reached is None else reached | more
            data, plain = content_to_check(config)
            self.schema.check(data)
            plain = plain and default_operation == "merge"
            merges = (*merges, data) if plain and merges is not None else None
            if merges is not None and len(merges) > MAX_MERGES:
                merges = None
            # only a large running configuration commits entry by entry (incremental.WORTH_IT)
            large = len(self.txn.running_bytes) >= incremental.WORTH_IT
            touched = incremental.touched_units(self.schema, config, default_operation) if (
                large and units is not None) else None  # fmt: skip
            units = None if touched is None or units is None else units | touched
        if not access.needs_no_write_check(principal, reached):
            access.check_write_between(principal, self.schema, self.candidate, result)
        if test_option != "test-only":
            before = self.reached()
            self._reached = None if before is None or reached is None else (result, reach.Reach(
                before.version, before.paths | reached,
                None if before.merges is None or merges is None else before.merges + merges,
                None if before.units is None or units is None else before.units | units,
            ))  # fmt: skip
            self.candidate = result

    def discard(self, session_id: int, principal: Principal | None = None) -> None:
        self.check_writable("candidate", session_id)
        self.candidate = self._discarded(principal)

    async def copy_config(
        self, source: etree._Element, target: str, principal: Principal, session_id: int,
        *, source_name: str = "config",
    ) -> None:
        self.check_writable(target, session_id)
        if access.conceals_anything(principal):
            # The result replaces data the principal cannot see; whether that is refused would
            # reveal it (check_edit_request).
            raise ConfigError(
                tag="access-denied", message="Access denied: copy-config needs full access"
            )
        canonical = self.schema.canonical(serialize(source), validate=target == "startup")
        result = parse_top(canonical)
        current = self.startup if target == "startup" else self.candidate
        access.check_write(principal, changes(self.schema, current, result))
        if target == "candidate":
            self.candidate = result
        elif target == "startup":
            self.set_startup(canonical)
            self._startup_changed(f"saved from {source_name}", principal, session_id)
        else:
            raise ConfigError(
                tag="operation-not-supported", type="protocol",
                message=f"copy-config cannot target {target} (use candidate and commit)",
            )  # fmt: skip

    def set_startup(self, canonical: bytes) -> None:
        self.state.write_startup(canonical)
        self.startup = parse_top(canonical)

    def save_startup(self, principal: Principal, session_id: int) -> None:
        """copy-config running -> startup as a copy of the whole datastore, made by the server:
        nothing of it is read or checked node by node (the caller holds configure +
        maintenance)."""
        self.check_writable("startup", session_id)
        self.set_startup(self.txn.running_bytes)
        self._startup_changed("saved from running", principal, session_id)

    def delete_config(self, target: str, principal: Principal, session_id: int) -> None:
        if target != "startup":
            raise ConfigError(
                tag="operation-failed", message=f"The {target} datastore cannot be deleted"
            )
        self.check_writable(target, session_id)
        whole = principal.has("configure") and principal.has("maintenance")
        if self.startup is not None and not whole:  # else: the whole datastore, as save_startup
            access.check_write(principal, changes(self.schema, self.startup, None))
        self.state.write_startup(None)
        self.startup = None
        self._startup_changed("deleted", principal, session_id)

    def _startup_changed(self, how: str, principal: Principal, session_id: int) -> None:
        for listener in self.startup_listeners:
            listener(how, principal, session_id)

    # -- commit ------------------------------------------------------------------------------------

    async def commit(
        self,
        principal: Principal,
        session_id: int,
        *,
        confirmed: bool = False,
        timeout: int = DEFAULT_CONFIRM_TIMEOUT,
        persist: str | None = None,
        persist_id: str | None = None,
        comment: str = "",
    ) -> CommitResult:
        for name in ("running", "candidate"):
            self.check_writable(name, session_id)
        pending = self.pending
        if pending is not None:
            self._check_confirming(pending, session_id, persist_id)
        previous = self.txn.running_bytes
        # what the operator log says of it: "rolls back unless confirmed", or "confirms commit 7"
        confirm = Confirm(timeout=timeout) if confirmed else (
            None if pending is None else Confirm(settles=pending.chain))  # fmt: skip
        view = self.view(principal)
        result = await self.txn.commit(
            view, principal, comment, force=confirmed,
            # a grafted view differs from running where no edit of the candidate reached
            reached=self.reached() if view is self.candidate else None,
            origin=f"session {session_id}", confirm=confirm,
        )  # fmt: skip
        # what others left uncommitted and this principal could not see stays in the candidate
        self.candidate = self._discarded(principal)
        if confirmed:
            rollback, chain = (previous, ()) if pending is None else (
                pending.rollback, pending.chain)  # fmt: skip
            chain += () if result.diff is None else (result.diff,)
            self._arm(session_id, persist, rollback, timeout, chain)
        elif pending is not None:
            self._disarm()
        return result
