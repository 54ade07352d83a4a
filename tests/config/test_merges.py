"""A commit of plain merges builds the new tree from running's libyang tree and the merged data
(flowtap.config.merges); whenever it answers, the answer must be the full commit's: the same
canonical bytes, and no answer where the full commit refuses. Random edits (from
test_write_scope's vocabulary, through the edit engine) on random valid configurations: plain
merges mostly, and now and then an edit with operations (a delete, a replace) whose data alone
is not what it did, which the shortcut must notice."""

from __future__ import annotations

import random

import pytest
from lxml import etree

from flowtap.config.edit import OPERATION, apply_edit, content_to_check
from flowtap.config.merges import commit_merges
from flowtap.config.schema import Schema
from flowtap.config.xmlutil import parse_top, serialize
from flowtap.errors import ConfigError

from .test_reach import random_edit
from .test_write_scope import configuration


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def mostly_plain(rng: random.Random, source: etree._Element) -> etree._Element:
    edit = random_edit(rng, source)
    if rng.random() < 0.8:
        for el in edit.iter():
            el.attrib.pop(OPERATION, None)
    return edit


@pytest.mark.parametrize("seed", range(6))
def test_a_commit_of_merges_answers_as_the_full_commit(schema: Schema, seed: int) -> None:
    rng = random.Random(seed)
    answered = refused = 0
    for _ in range(120):
        try:
            canonical, live = schema.canonical_tree(serialize(configuration(rng)), validate=True)
        except ConfigError:
            continue
        if live is None:
            continue
        try:
            candidate, merges = parse_top(canonical), []
            for _ in range(rng.randint(1, 3)):
                edit = mostly_plain(rng, configuration(rng))
                try:
                    candidate = apply_edit(schema, candidate, edit, "merge")
                except ConfigError:
                    continue
                data, plain = content_to_check(edit)
                assert plain == (not any(OPERATION in el.attrib for el in edit.iter()))
                merges.append(data)
            given = serialize(candidate)
            try:
                expected: bytes | None = schema.canonical(given, validate=True)
            except ConfigError:
                expected = None
            got = commit_merges(schema, live, merges, given)
            if got is not None:
                got[1].free()
                assert got[0] == expected, (canonical, merges)
                answered += 1
            refused += expected is None
        finally:
            live.free()
    assert answered > 15 and refused  # the shortcut answered often; refusals were exercised
