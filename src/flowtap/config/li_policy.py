"""Who may learn lawful-intercept facts from configuration operations (issue 13 item 4, LI-1).

The policy (netconf/CONFORMANCE.md, "Lawful-intercept facts"):

* Only a holder of ``flow-tap`` (``flow-tap-control`` implies it) may read LI configuration, so
  only such a committer gets errors that are caused by it or reveal it. Those keep every detail.
* Anyone else acts on the configuration as if the LI subtrees were exactly what is running: a
  commit or ``<validate>`` of the shared candidate takes the LI subtrees from running (another
  user's uncommitted LI edits neither fail nor join it), and the commit hooks do not refuse
  what only the LI service objects to: the flow-tap service accepts the change, serves what it
  still can and reports itself degraded (``flow-tap-state``, the LI audit log). So a non-LI
  user's reply is the same whether or not flow-tap is configured.
* A commit by the system itself (boot, a confirmed commit reverting) is never refused by the LI
  service either: the appliance must come up and a revert must happen.

The commit pipeline marks which kind of commit runs with :func:`committing`; hooks ask
:func:`strict`, so no hook signature carries the principal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.schema import Schema
from flowtap.config.xmlutil import descend, element

READ_FLAG = "flow-tap"
# The LI configuration subtrees (access.RULES: readable with flow-tap only).
LI_PATHS = ("/ftsvc:services/ftsvc:flow-tap", "/fts:system/fts:services/fts:flow-tap-dtcp")

_OUTSIDE = "outside a commit"  # hooks driven directly (tests, tools) keep every check
_committer: ContextVar[Principal | str | None] = ContextVar("li_committer", default=_OUTSIDE)


def sees_li(principal: Principal | None) -> bool:
    """True when ``principal`` may read LI configuration (None, the system, may not learn it
    from an error either: nobody reads the reply of a boot commit)."""
    return principal is not None and principal.has(READ_FLAG)


@contextlib.contextmanager
def committing(principal: Principal | None) -> Iterator[None]:
    """Run the hooks of one commit (or validation) on behalf of ``principal``."""
    token = _committer.set(principal)
    try:
        yield
    finally:
        _committer.reset(token)


def strict() -> bool:
    """True when the running commit may be refused for LI reasons, with the full reason: its
    committer reads LI configuration. False: serve what is possible and report degradation."""
    committer = _committer.get()
    return committer == _OUTSIDE or (isinstance(committer, Principal) and sees_li(committer))


def committer_name() -> str:
    """Who runs the current commit, for the LI audit log: a user name, or "system"."""
    committer = _committer.get()
    return committer.user if isinstance(committer, Principal) else "system"


class Grafter:
    """Builds datastore trees whose LI subtrees come from another tree. Compiled per schema."""

    def __init__(self, schema: Schema) -> None:
        ns = {n.prefix: n.namespace for n in schema.iter_nodes()}
        self._steps: list[list[str]] = []
        for path in LI_PATHS:
            steps = []
            for step in path.strip("/").split("/"):
                prefix, _, name = step.partition(":")
                steps.append(f"{{{ns[prefix]}}}{name}")
            self._steps.append(steps)

    def graft(self, base: etree._Element, source: etree._Element) -> etree._Element:
        """``base`` with its LI subtrees replaced by those of ``source``; ``base`` itself when
        they are equal already (trees are values: neither argument is modified)."""
        if base is source:  # after a commit, running is the candidate it came from
            return base
        if all(self._serialized(base, s) == self._serialized(source, s) for s in self._steps):
            return base
        out = etree.fromstring(etree.tostring(base))
        for steps in self._steps:
            parent = descend(out, steps[:-1])
            position = None
            if parent is not None:
                for old in parent.findall(steps[-1]):
                    position = parent.index(old) if position is None else position
                    parent.remove(old)
            wanted = descend(source, steps[:-1])
            items = [] if wanted is None else wanted.findall(steps[-1])
            if not items:
                _drop_emptied(parent, out)
                continue
            if parent is None:
                parent = _make(out, steps[:-1])
            at = len(parent) if position is None else position
            for offset, item in enumerate(items):
                parent.insert(at + offset, etree.fromstring(etree.tostring(item)))
        return out

    def changed(self, old: etree._Element, new: etree._Element) -> list[str]:
        """The LI hierarchies (as ``services flow-tap``) whose content differs between two
        datastore trees."""
        if old is new:
            return []
        return [" ".join(etree.QName(step).localname for step in steps)
                for steps in self._steps
                if self._serialized(old, steps) != self._serialized(new, steps)]  # fmt: skip

    @staticmethod
    def _serialized(tree: etree._Element, steps: list[str]) -> list[bytes]:
        parent = descend(tree, steps[:-1])
        if parent is None:
            return []
        return [etree.tostring(el) for el in parent.findall(steps[-1])]


def _drop_emptied(el: etree._Element | None, root: etree._Element) -> None:
    """Remove ancestors the removal left empty: every ancestor of an LI path is a non-presence
    container, which does not exist without children (RFC 7950 §7.5.1)."""
    while el is not None and el is not root and len(el) == 0:
        parent = el.getparent()
        if parent is None:
            return
        parent.remove(el)
        el = parent


def _make(tree: etree._Element, steps: list[str]) -> etree._Element:
    el = tree
    for step in steps:
        child = el.find(step)
        if child is None:
            child = element(step, etree.QName(step).namespace or "")
            el.append(child)
        el = child
    return el
