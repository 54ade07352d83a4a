"""Costs that grow with the data stay linear (issue 13 item 1): editing many list entries,
hiding a large subtree from a view-only user, and the journal room a large commit writes. The bounds are correctness bounds with wide
margins: before, 6,000 entries took ~25 s to add, and hiding 60,000 ~6 s."""

from __future__ import annotations

import time
from pathlib import Path

from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.access import ReadFilter
from flowtap.config.edit import apply_edit
from flowtap.config.permissions import expand
from flowtap.config.persist import PREALLOCATE_LIMIT, PREALLOCATE_STEP, StateDir
from flowtap.config.schema import Schema
from flowtap.config.xmlutil import new_root

SYS = "urn:flowtap:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
VIEWER = Principal("netops", "netops", "read-only", expand({"view"}), "password")
EDITED = 6_000
HIDDEN = 60_000


def classes(count: int, operation: str = "") -> etree._Element:
    entries = "".join(f"<class{operation}><name>c{i}</name><permissions>view</permissions></class>"
                      for i in range(count))  # fmt: skip
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}"><system xmlns="{SYS}">'
                            f"<login>{entries}</login></system></config>")  # fmt: skip


def test_editing_many_entries_is_linear() -> None:
    schema = Schema()
    tree = new_root()
    for operation in ("", "", ' nc:operation="delete"'):  # add all, find all, delete all
        started = time.monotonic()
        tree = apply_edit(schema, tree, classes(EDITED, operation))
        assert time.monotonic() - started < 10  # ~1 s; quadratic, the first took ~25 s
        if not operation:
            login = tree.find(f"{{{SYS}}}system/{{{SYS}}}login")
            assert login is not None and len(login) == EDITED
            assert [c.findtext(f"{{{SYS}}}name") for c in login[:3]] == ["c0", "c1", "c2"]
    assert not tree.findall(f".//{{{SYS}}}class")


def test_hiding_a_large_subtree_is_linear() -> None:
    schema = Schema()
    entries = "".join(f"<class><name>c{i}</name></class>" for i in range(HIDDEN))
    tree = etree.fromstring(f'<data xmlns="{NC}"><system xmlns="{SYS}"><host-name>h</host-name>'
                            f"<login>{entries}</login></system></data>")  # fmt: skip
    started = time.monotonic()
    pruned = ReadFilter(schema).prune(tree, VIEWER)
    assert time.monotonic() - started < 2  # ~0.1 s; lxml's remove of the subtree took ~6 s
    assert pruned.find(f".//{{{SYS}}}login") is None
    assert pruned.findtext(f".//{{{SYS}}}host-name") == "h"
    assert len(tree.find(f"{{{SYS}}}system/{{{SYS}}}login")) == HIDDEN  # input untouched


def test_a_large_commit_preallocates_a_bounded_journal(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    config = b"<system/>" + b" " * (2 << 20)  # a 2 MB configuration
    state.commit_running(config, "admin")
    state.commit_running(config, "admin")
    size = state.journal_path.stat().st_size
    # room for the records plus at most PREALLOCATE_LIMIT: before, room for every record until
    # compaction (~400 MB of zeros, written and fsynced inside the commit)
    assert size <= 2 * len(config) + PREALLOCATE_LIMIT + 2 * PREALLOCATE_STEP
    assert StateDir(tmp_path).load_running() == config
