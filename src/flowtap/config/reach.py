"""Which guarded hierarchies an edit can change, read off the edit itself.

The write check of an edit or a commit (:func:`flowtap.config.access.check_write_between`)
compares two whole trees inside the hierarchies a class may not write, and the LI policy
compares the LI subtrees of two trees; both cost what those hierarchies hold, on every edit and
every commit. Yet an edit-config says what it can change: the nodes it names, and everything
below a node it deletes, removes or replaces. So the candidate carries, besides its tree, the
guarded hierarchies (``GUARDED``: every access rule's path and the login classes' permissions)
that the edits since it last equalled running could have changed. A check whose hierarchies
are not among them has nothing to compare and is skipped; whenever that is not known (a replace
of everything, an element the schema does not know, a candidate set any other way) the full
check runs, which is always right.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from flowtap.config.access import CLASS_PERMISSIONS, RULES, EditSpots
from flowtap.config.incremental import Unit

GUARDED = frozenset({rule.schema_path for rule in RULES} | {CLASS_PERMISSIONS})
# operations that change the whole subtree of the node they are on, named or not
_SUBTREE = frozenset({"delete", "remove", "replace"})


@dataclass(frozen=True, slots=True)
class Reach:
    """Where a candidate may differ from running as it was at ``version``: the ``GUARDED``
    hierarchies in ``paths`` at most (anywhere outside ``GUARDED`` as well). ``merges``, when
    every edit since was a plain merge, is their data in order (:mod:`flowtap.config.merges`);
    ``units``, when every edit since touched list entries only, those entries
    (:mod:`flowtap.config.incremental`, large configurations); otherwise None."""

    version: int
    paths: frozenset[str]
    merges: tuple[bytes, ...] | None = ()
    units: frozenset[Unit] | None = frozenset()

    def avoids(self, paths: Iterable[str]) -> bool:
        return self.paths.isdisjoint(paths)


def of_edit(spots: EditSpots) -> frozenset[str] | None:
    """The ``GUARDED`` hierarchies an edit-config can change, or None when that cannot be told
    from the edit (it replaces everything, or names what the schema lacks)."""
    if spots.whole or spots.unknown:
        return None
    found: set[str] = set()
    for path, operation in spots.named:
        found |= _around(path)
        if operation in _SUBTREE:
            found |= _below(path)
    return frozenset(found)


@functools.lru_cache(maxsize=2048)  # schema paths: a few hundred
def _around(path: str) -> frozenset[str]:
    """The guarded hierarchies holding ``path`` (or that are ``path``)."""
    return frozenset(g for g in GUARDED if path == g or path.startswith(g + "/"))


@functools.lru_cache(maxsize=2048)
def _below(path: str) -> frozenset[str]:
    """The guarded hierarchies strictly below ``path``."""
    return frozenset(g for g in GUARDED if g.startswith(path + "/"))
