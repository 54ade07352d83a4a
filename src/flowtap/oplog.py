"""The operator log: what the people who run the box read in flowtapd's log, one INFO line per
event, and nothing of lawful intercept (LI-1).

Start and stop (:mod:`flowtap.app`); every commit, one that changes nothing too (its number when
it made a history entry, who, from which session, its comment, the hierarchies it changed; a
confirmed commit's deadline, the confirmed commits a commit confirms, and why a rollback undid
them); every save and delete of the startup datastore (who, from which session); every NETCONF
login and failed login; and the listeners (:mod:`flowtap.sshd.listeners` says when one moves).
What belongs to lawful intercept goes to the LI audit log only: the logins of users holding an LI
permission bit (and every login on the DTCP port: mediation devices), the LI hierarchies among a
commit's changes (:mod:`flowtap.li_commits` records those), and the name of an LI user who
commits or saves startup. A commit that changed only LI configuration leaves no line here at all,
and neither does what settles it when it was a confirmed commit (see :func:`_settled`).

Logger ``flowtap.operator``; ``flowtapd --syslog`` also sends it to the local syslog.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterator

from lxml import etree

from flowtap.auth.authenticator import AuthDecision
from flowtap.auth.principal import Principal
from flowtap.config.li_policy import LI_PATHS
from flowtap.config.model import Config
from flowtap.config.permissions import LI_FLAGS
from flowtap.config.schema import Schema
from flowtap.config.txn import Confirm, Diff

LOG = logging.getLogger("flowtap.operator")
NETCONF = "netconf"  # the subsystem whose logins are logged here


def lawful_intercept(principal: Principal | None) -> bool:
    return principal is not None and bool(principal.permissions & LI_FLAGS)


def login(decision: AuthDecision, service: str, config: Config) -> None:
    """One line per NETCONF authentication decision, unless it is a lawful-intercept user's."""
    if service != NETCONF or lawful_intercept(decision.principal):
        return
    if decision.principal is None:
        user = config.users.get(decision.username)
        if user is None or config.class_permissions(user.login_class) & LI_FLAGS:
            # A name that is no user and an LI user's read alike: were one named or left out,
            # the log would tell which names belong to LI users. The LI audit log has both.
            LOG.info("login failed: a user from %s (name withheld)", decision.peer or "?")
            return
        LOG.info("login failed: user %r from %s (%s)", decision.username, decision.peer or "?",
                 decision.reason or decision.method)  # fmt: skip
        return
    LOG.info("login: user %r from %s (%s, class %s)", decision.principal.user,
             decision.peer or "?", decision.method, decision.principal.login_class)  # fmt: skip


def commit(schema: Schema, diff: Diff, principal: Principal | None) -> None:
    """Log a commit once its reply is out: finding what changed reads both configurations."""
    if (diff.number is None and not diff.unchanged) or not LOG.isEnabledFor(logging.INFO):
        return  # the boot's replay of the saved running (no history entry), or not written

    def write() -> None:
        changed = [] if diff.unchanged else list(changed_hierarchies(schema, diff.old, diff.new))
        if not changed and not diff.unchanged:
            return  # lawful-intercept configuration only (or nothing a reader could name)
        settled = _settled(schema, diff.confirm)
        if settled is None:
            if diff.unchanged:
                # it confirms only commits this log never described: a line, even one saying
                # just "no changes", would tell that a lawful-intercept change was pending
                return
            settled = ""
        number = "" if diff.number is None else f" {diff.number}"
        where = "" if diff.origin == "system" else f" ({diff.origin})"
        said = f", comment {diff.comment!r}" if diff.comment else ""
        what = "no changes" if diff.unchanged else "changed " + ", ".join(changed)
        LOG.info("commit%s by %s%s%s: %s%s", number, _who(principal), where, said, what, settled)

    try:
        asyncio.get_running_loop().call_soon(write)
    except RuntimeError:  # no loop (tools, tests driving the engine directly)
        write()


def _settled(schema: Schema, confirm: Confirm | None) -> str | None:
    """What a commit says of the confirmed commits it confirms or rolls back; None when this log
    described none of them. Only commits it described are named: confirming or cancelling a
    commit of lawful-intercept configuration only must not reveal that one was pending (LI-1),
    and naming its number would (this log has no line for it)."""
    if confirm is None:
        return ""
    return confirm.describe(lambda d: d.unchanged or next(
        changed_hierarchies(schema, d.old, d.new), None) is not None, _who(confirm.by))


def startup(how: str, principal: Principal, session_id: int) -> None:
    """A save (``how``: "saved from running") or delete of the startup datastore."""
    LOG.info("startup %s by %s (session %d)", how, _who(principal), session_id)


def _who(principal: Principal | None) -> str:
    return ("system" if principal is None else
            "a user" if lawful_intercept(principal) else repr(principal.user))  # fmt: skip


def changed_hierarchies(schema: Schema, old: etree._Element, new: etree._Element) -> Iterator[str]:
    """The hierarchies two levels down (``system login``, ``interfaces interface``) whose content
    differs; deeper where a lawful-intercept hierarchy lies inside, which is never named."""
    yield from _walk(old, new, "", "", _prefixes(schema))


def _walk(old: etree._Element | None, new: etree._Element | None, path: str, words: str,
          prefix_of: dict[str, str]) -> Iterator[str]:  # fmt: skip
    for tag in _tags(old, new):
        qname = etree.QName(tag)
        here = f"{path}/{prefix_of.get(qname.namespace or '', '?')}:{qname.localname}"
        named = f"{words} {qname.localname}".strip()
        mine, theirs = _group(old, tag), _group(new, tag)
        if here in LI_PATHS or mine == theirs:
            continue
        holds_li = any(p.startswith(here + "/") for p in LI_PATHS)
        single = len(mine) <= 1 and len(theirs) <= 1
        if single and (holds_li or not path):  # a top-level container, or one around LI
            yield from _walk(_first(old, tag), _first(new, tag), here, named, prefix_of)
        else:
            yield named


@functools.lru_cache(maxsize=4)
def _prefixes(schema: Schema) -> dict[str, str]:
    return {ns: schema.prefix_of[module] for module, ns in schema.namespace_of.items()}


def _tags(old: etree._Element | None, new: etree._Element | None) -> list[str]:
    seen: dict[str, None] = {}
    for parent in (new, old):
        if parent is not None:
            for child in parent:
                if isinstance(child.tag, str):
                    seen.setdefault(child.tag)
    return list(seen)


def _group(parent: etree._Element | None, tag: str) -> list[bytes]:
    return [] if parent is None else [etree.tostring(el) for el in parent.iterfind(tag)]


def _first(parent: etree._Element | None, tag: str) -> etree._Element | None:
    return None if parent is None else parent.find(tag)


def login_listener(
    audit: Callable[[AuthDecision, str], Awaitable[None]], config: Callable[[], Config]
) -> Callable[[AuthDecision, str], Awaitable[None]]:
    """``audit`` (the LI audit log's listener, which must see every decision first), then this
    log's line."""

    async def on_auth(decision: AuthDecision, service: str) -> None:
        await audit(decision, service)
        login(decision, service, config())

    return on_auth
