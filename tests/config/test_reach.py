"""What an edit can change, read off the edit (flowtap.config.reach), lets the write check and
the LI comparisons be skipped: that must never skip one that would have found something.
Random edits (every operation, at every depth, under every default operation) are applied to
random configurations of test_write_scope's vocabulary, which reaches every access rule, the LI
bits of login classes and both LI hierarchies; whenever the reach says a check is not needed,
the check on the whole diff must agree."""

from __future__ import annotations

import random

import pytest
from lxml import etree

from flowtap.config import access, reach
from flowtap.config.diff import changes
from flowtap.config.edit import OPERATION, apply_edit
from flowtap.config.li_policy import LI_PATHS, Grafter
from flowtap.config.schema import Schema
from flowtap.errors import ConfigError

from .test_write_scope import NC, PRINCIPALS, configuration, refused

OPERATIONS = ("merge", "replace", "create", "delete", "remove", "none")


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def random_edit(rng: random.Random, source: etree._Element) -> etree._Element:
    """An edit-config ``<config>`` naming one element of ``source`` (with its subtree, or not)
    inside its ancestors, each of which may carry an operation."""
    elements = [el for el in source.iter() if el is not source]
    config = etree.fromstring(f'<config xmlns="{NC}"/>')
    if not elements:
        return config
    chosen = rng.choice(elements)
    chain = []
    el: etree._Element | None = chosen
    while el is not None and el is not source:
        chain.append(el)
        el = el.getparent()
    holder = config
    for depth, original in enumerate(reversed(chain)):
        if original is chosen and rng.random() < 0.7:
            copy = etree.fromstring(etree.tostring(original))  # the whole subtree
        else:
            copy = etree.Element(original.tag, nsmap=original.nsmap)
            copy.text = original.text if len(original) == 0 else None
            for key in original:  # list keys (and any leaf) travel with their entry
                if len(key) == 0 and key.tag.endswith("}name") and original is not chosen:
                    etree.SubElement(copy, key.tag).text = key.text
        if rng.random() < 0.3 or (original is chosen and rng.random() < 0.5):
            copy.set(OPERATION, rng.choice(OPERATIONS))
        holder.append(copy)
        holder = copy
        del depth
    return config


@pytest.mark.parametrize("seed", range(8))
def test_a_check_the_reach_skips_would_have_found_nothing(schema: Schema, seed: int) -> None:
    rng = random.Random(seed)
    grafter = Grafter(schema)
    skipped = checked = refusals = li_skipped = 0
    for _ in range(200):
        old = configuration(rng)
        edit = random_edit(rng, configuration(rng) if rng.random() < 0.5 else old)
        default = rng.choice(("merge", "merge", "none", "replace"))
        try:
            new = apply_edit(schema, old, edit, default)
        except ConfigError:
            continue
        reached = reach.of_edit(access.edit_spots(schema, edit, default))
        whole = changes(schema, old, new)
        for who in PRINCIPALS:
            expected = refused(lambda: access.check_write(who, whole))  # noqa: B023
            refusals += expected
            if access.needs_no_write_check(who, reached):
                skipped += 1
                assert not expected, (who.permissions, etree.tostring(old), etree.tostring(edit))
            else:
                checked += 1
        if reached is not None and reached.isdisjoint(LI_PATHS):
            li_skipped += 1
            assert grafter.changed(old, new) == [], (etree.tostring(old), etree.tostring(edit))
    # every way was exercised: skipped, checked and refused, and LI comparisons skipped
    assert skipped and checked and refusals and li_skipped, (skipped, checked, refusals)


def test_the_reach_of_an_edit(schema: Schema) -> None:
    def of(body: str, default: str = "merge") -> frozenset[str] | None:
        edit = etree.fromstring(f'<config xmlns="{NC}">{body}</config>')
        return reach.of_edit(access.edit_spots(schema, edit, default))

    sys_ns = 'xmlns="urn:flowtap:yang:system"'
    idle = (f"<system {sys_ns}><login><class><name>a</name><idle-timeout>5</idle-timeout>"
            "</class></login></system>")  # fmt: skip
    assert of(idle) == {"/fts:system", "/fts:system/fts:login"}
    grant = (f"<system {sys_ns}><login><class><name>a</name><permissions>flow-tap</permissions>"
             "</class></login></system>")  # fmt: skip
    assert access.CLASS_PERMISSIONS in (of(grant) or ())
    # deleting a class reaches its permissions, named or not
    delete = (f'<system {sys_ns}><login><class xmlns:nc="{NC}" nc:operation="delete">'
              "<name>a</name></class></login></system>")  # fmt: skip
    assert access.CLASS_PERMISSIONS in (of(delete) or ())
    # replacing the whole system reaches every hierarchy below it, LI ones included
    replace = f'<system {sys_ns} xmlns:nc="{NC}" nc:operation="replace"><host-name>r</host-name></system>'
    assert set(LI_PATHS) - (of(replace) or set()) == {"/ftsvc:services/ftsvc:flow-tap"}
    assert of(idle, "replace") is None  # a replace of everything
    assert of('<nonsense xmlns="urn:x"/>') is None  # unknown to the schema
    # the super-user (no LI bits) needs no check of a class's idle-timeout, but of a grant
    super_user = PRINCIPALS[0]
    assert access.needs_no_write_check(super_user, of(idle))
    assert not access.needs_no_write_check(super_user, of(grant))
    assert not access.needs_no_write_check(PRINCIPALS[2], of(idle))  # view only: no configure
