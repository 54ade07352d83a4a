"""The commit pipeline: validate -> permission check on the diff -> hooks validate -> hooks
prepare -> persist running atomically -> hooks commit. Or abort.

Learned from FRR's northbound (prepare allocates, abort releases only what prepared, apply
cannot fail) and sysrepo (permission checks on the diff, not the request). The engine knows
nothing about NETCONF, DTCP or the dataplane: those plug in as ``Hook``s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import libyang
from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config import access, incremental, li_policy, merges, model, reach
from flowtap.config.diff import Change, changes
from flowtap.config.persist import StateDir
from flowtap.config.schema import Schema
from flowtap.config.xmlutil import new_root, parse_top, serialize
from flowtap.errors import ConfigError

LOG = logging.getLogger(__name__)


class Hook(Protocol):
    """A live component reconciled from the running configuration.

    ``validate`` is pure and may raise ``CommitFailed`` (an engine error, passed on as is).
    ``prepare`` allocates what the new configuration needs (sockets, listeners, tables) and may
    raise ``CommitFailed``; it returns a handle. ``commit`` swaps the prepared resources in and
    must not fail. ``abort`` releases exactly what ``prepare`` allocated and must not fail. Only
    hooks whose prepare succeeded are aborted, in reverse order.
    """

    name: str

    def validate(self, old: model.Config, new: model.Config) -> None: ...

    async def prepare(self, old: model.Config, new: model.Config) -> Any: ...

    async def commit(self, handle: Any) -> None: ...

    async def abort(self, handle: Any) -> None: ...


class Diff:
    """The changes of one commit, computed only when someone asks for them, and what the commit
    was: its history number (None when not persisted), comment and origin (a session)."""

    def __init__(self, schema: Schema, old: etree._Element, new: etree._Element, comment: str = "",
                 origin: str = "system", unchanged: bool = False,
                 confirm: Confirm | None = None,
                 reached: frozenset[str] | None = None) -> None:  # fmt: skip
        self._args = (schema, old, new)
        self.old, self.new = old, new
        # the guarded hierarchies (flowtap.config.reach) in which old and new may differ; None:
        # not known, any of them
        self.reached = reached
        self.number: int | None = None
        self.comment, self.origin, self.confirm = comment, origin, confirm
        self.unchanged = unchanged  # running stays as it was (a forced or an empty commit)

    @functools.cached_property
    def changes(self) -> list[Change]:
        return changes(*self._args)


Outcome = Literal["confirmed", "cancelled", "timed out", "session closed", "restart"]


@dataclass(frozen=True, slots=True)
class Confirm:
    """A commit's part in a confirmed commit (RFC 6241 §8.4), for those who describe commits:
    either it is confirmed itself and rolls back after ``timeout`` seconds unless confirmed, or
    it settles the pending confirmed commits ``settles`` (unknown at a restart): confirms them,
    or rolls them back, as ``by`` asked from ``origin`` (a cancel-commit) or the server did."""

    timeout: int | None = None
    settles: tuple[Diff, ...] = ()
    outcome: Outcome = "confirmed"
    by: Principal | None = None
    origin: str = ""

    def describe(self, named: Callable[[Diff], bool], who: str) -> str | None:
        """``"; ..."``: the deadline, or what became of the settled commits ``named`` accepts
        (``who`` names ``by``); None when it settles commits but ``named`` accepts none (each
        log names only the commits it described itself)."""
        if self.timeout is not None:
            return f"; rolls back in {self.timeout} s unless confirmed"
        if self.outcome == "restart":  # which commits is not known after a restart
            return "; a confirmed commit not confirmed before the restart: rolled back"
        numbers = [str(d.number) for d in self.settles if d.number is not None and named(d)]
        if not numbers:
            return None
        commits = f"commit{'s' if len(numbers) > 1 else ''} {', '.join(numbers)}"
        if self.outcome == "confirmed":
            return f"; confirms {commits}"
        if self.outcome == "cancelled":
            return f"; {commits} cancelled by {who} ({self.origin}): rolled back"
        if self.outcome == "session closed":
            return f"; {commits} not confirmed before {self.origin} closed: rolled back"
        return f"; {commits} not confirmed in time: rolled back"


@dataclass(frozen=True, slots=True)
class CommitResult:
    number: int | None  # history number, None when nothing changed
    diff: Diff | None


ConfigListener = Callable[[Diff, Principal | None], Awaitable[None] | None]


class TransactionManager:
    """Owns the running configuration and every change to it."""

    def __init__(self, schema: Schema, state: StateDir) -> None:
        self.schema = schema
        self.state = state
        self.hooks: list[Hook] = []
        self.running = new_root()
        self.running_bytes = b""
        self.config = model.Config()
        self.version = 0
        self.lock = asyncio.Lock()
        self.listeners: list[ConfigListener] = []
        # told of a commit that changes nothing and is not forced: no history entry, no hook ran
        self.unchanged_listeners: list[ConfigListener] = []
        # running, validated, as libyang holds it: what the next commit of a few list entries
        # starts from (:mod:`flowtap.config.incremental`)
        self._live: libyang.DNode | None = None

    def add_hook(self, hook: Hook) -> None:
        self.hooks.append(hook)

    def validate(self, tree: etree._Element, principal: Principal | None) -> bytes:
        """What a commit of ``tree`` by ``principal`` checks before it allocates anything: YANG
        validation and each hook's validate (under the LI policy, :mod:`flowtap.config.li_policy`).
        Returns the canonical serialization."""
        canonical = self.schema.canonical(serialize(tree), validate=True)
        new_config = model.from_tree(parse_top(canonical))
        with li_policy.committing(principal):
            for hook in self.hooks:
                hook.validate(self.config, new_config)
        return canonical

    async def commit(
        self,
        candidate: etree._Element,
        principal: Principal | None,
        comment: str = "",
        *,
        force: bool = False,
        persist: bool = True,
        reached: reach.Reach | None = None,
        origin: str = "system",
        confirm: Confirm | None = None,
    ) -> CommitResult:
        """Make ``candidate`` the running configuration, or change nothing at all.

        ``reached``, when given, says where ``candidate`` may differ from running at its
        version (:mod:`flowtap.config.reach`): checks of the guarded hierarchies it did not
        reach are skipped, and a commit of list entries or of plain merges costs what they
        change, not a parse of the whole candidate.

        Raises:
            ConfigError: validation, access-denied, or a hook refusal.
        """
        async with self.lock:
            step, given = None, None
            large = len(self.running_bytes) >= incremental.WORTH_IT
            if reached is not None and reached.version != self.version:
                reached = None  # running changed since: nothing is known of the candidate
            if (reached is not None and reached.units is not None and self._live is not None
                    and large):  # fmt: skip
                step = incremental.commit_units(
                    self.schema, self._live, self.running, candidate, reached.units
                )
            elif (reached is not None and reached.merges is not None and self._live is not None
                  and not large):  # fmt: skip
                given = serialize(candidate)
                step = merges.commit_merges(self.schema, self._live, reached.merges, given)
            if step is None:
                given = serialize(candidate) if given is None else given
                canonical, live = self.schema.canonical_tree(given, validate=True)
                # Trees are values (see datastores): a canonical candidate becomes running as is.
                new_tree = candidate if canonical == given else parse_top(canonical)
            else:
                (canonical, live), new_tree = step, candidate
            # libyang may have rewritten what the edits made (defaults, when): then nothing is
            # known of where the new tree differs
            known = reached is not None and new_tree is candidate
            try:
                result = await self._commit_locked(
                    new_tree, canonical, principal, comment, force, persist, origin, confirm,
                    reached.paths if known and reached is not None else None,
                )
            except BaseException:
                if live is not None:
                    live.free()
                raise
            if result.number is None and result.diff is None:
                if live is not None:
                    live.free()
                return result
            stale, self._live = self._live, live
            if stale is not None:  # a large tree takes milliseconds to free: after the reply
                asyncio.get_running_loop().call_soon(stale.free)
            return result

    async def _commit_locked(
        self,
        new_tree: etree._Element,
        canonical: bytes,
        principal: Principal | None,
        comment: str,
        force: bool,
        persist: bool,
        origin: str,
        confirm: Confirm | None,
        reached: frozenset[str] | None = None,
    ) -> CommitResult:
        unchanged = canonical == self.running_bytes
        if unchanged and not force:
            if self.unchanged_listeners:
                diff = Diff(self.schema, self.running, self.running, comment, origin, True, confirm)
                await _notify(self.unchanged_listeners, diff, principal)
            return CommitResult(None, None)
        diff = Diff(self.schema, self.running, new_tree, comment, origin, unchanged, confirm,
                    reached)  # fmt: skip
        if principal is not None and not access.needs_no_write_check(principal, reached):
            access.check_write_between(principal, self.schema, self.running, new_tree)
        old_config, new_config = self.config, model.from_tree(new_tree)
        with li_policy.committing(principal):
            prepared = await self._prepare_hooks(old_config, new_config)
        number = None
        if persist:
            user = principal.user if principal else "system"
            number = diff.number = self.state.commit_running(canonical, user, comment)
        self.running, self.running_bytes, self.config = new_tree, canonical, new_config
        self.version += 1
        for hook, handle in prepared:
            LOG.debug("commit: commit %s", hook.name)
            with li_policy.committing(principal):
                await _quietly(hook.commit(handle), hook.name, "commit")
        await _notify(self.listeners, diff, principal)
        return CommitResult(number, diff)

    async def _prepare_hooks(
        self, old_config: model.Config, new_config: model.Config
    ) -> list[tuple[Hook, Any]]:
        """Every hook's validate, then every hook's prepare; on a failure, abort what prepared."""
        LOG.debug("commit: validate hooks")
        for hook in self.hooks:
            hook.validate(old_config, new_config)
        prepared: list[tuple[Hook, Any]] = []
        try:
            for hook in self.hooks:
                LOG.debug("commit: prepare %s", hook.name)
                prepared.append((hook, await hook.prepare(old_config, new_config)))
        except Exception as exc:
            for hook, handle in reversed(prepared):
                LOG.debug("commit: abort %s", hook.name)
                await _quietly(hook.abort(handle), hook.name, "abort")
            if isinstance(exc, ConfigError):
                raise
            LOG.exception("commit: prepare raised unexpectedly")
            raise ConfigError(tag="operation-failed", message=f"Commit failed: {exc}") from exc
        return prepared

    async def boot(self, data: bytes, *, persist: bool) -> CommitResult:
        """Replay a persisted (or initial) configuration through the whole pipeline."""
        return await self.commit(parse_top(data), None, "initial configuration",
                                 force=True, persist=persist)  # fmt: skip


async def _notify(
    listeners: list[ConfigListener], diff: Diff, principal: Principal | None
) -> None:
    for listener in listeners:
        try:
            result = listener(diff, principal)
            if result is not None:
                await result
        except Exception:
            LOG.exception("config listener failed")


async def _quietly(result: Awaitable[None], name: str, phase: str) -> None:
    try:
        await result
    except Exception:
        LOG.exception("hook %s failed in %s (a bug: this phase must not fail)", name, phase)
