"""Commits of plain merges: running's libyang tree with the merged data, instead of a parse of
the whole candidate.

A commit validates the candidate with libyang and takes its canonical bytes from libyang's
print. Parsing the candidate's XML was most of that (~280 us of ~330 us for a 4 KB
configuration), though the edit-configs of a session that pushes changes (NSO, Ansible) are
usually plain merges of a few nodes whose data the edit already type-checked. So the candidate
carries, while every edit since it equalled running was a plain merge (no edit attribute,
default operation merge), the data of those edits (:class:`flowtap.config.reach.Reach`), and a
commit builds the new tree from the validated tree of running the transaction manager keeps:
duplicate it, merge each edit's data in order, validate the whole tree (must, leafref, unique
and mandatory see every node), print it.

libyang's merge is not our edit engine, so the result is accepted only when its print is the
candidate's serialization byte for byte: then it is the candidate's tree, validated, and its
bytes are canonical. Otherwise (an entry libyang orders elsewhere, a value it writes another
way, a validation error to report) the caller runs the full commit, which is always right.
"""

from __future__ import annotations

from collections.abc import Sequence

import libyang

from flowtap.config.schema import Schema

MAX_MERGES = 64  # edits kept per candidate: a longer session commits by the full parse


def commit_merges(
    schema: Schema, live: libyang.DNode, merges: Sequence[bytes], given: bytes
) -> tuple[bytes, libyang.DNode] | None:
    """The canonical bytes of the candidate serialized as ``given`` and its validated libyang
    tree (the caller owns it), built from ``live`` (running's) and the data of the plain merges
    that made the candidate from running; None when that is not shown to be the candidate."""

    def merged(work: libyang.DNode) -> libyang.DNode:
        for data in merges:
            fragment = schema.fragment(data)
            if fragment is not None:
                try:
                    work.merge(fragment, with_siblings=True)
                finally:
                    fragment.free()
                work = work.first_sibling()  # a merged top-level node may now come first
        return work

    work = schema.derive(live, merged)
    if work is None:
        return None
    printed = Schema.print_tree(work)
    if printed != given:
        work.free()
        return None
    return printed, work
