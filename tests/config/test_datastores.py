"""Datastore trees are values: what is cached per tree follows every change."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config.datastores import Datastores
from flowtap.config.permissions import expand
from flowtap.config.persist import StateDir
from flowtap.config.schema import Schema
from flowtap.config.txn import TransactionManager
from flowtap.config.xmlutil import parse_top

SYS = "urn:flowtap:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
ADMIN = Principal("admin", "admin", "li-admin", expand({"all", "flow-tap-control"}), "password")


def edit(name: str) -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}"><system xmlns="{SYS}">'
                            f"<host-name>{name}</host-name></system></config>")  # fmt: skip


async def datastores(tmp_path: Path) -> Datastores:
    txn = TransactionManager(Schema(), StateDir(tmp_path))
    await txn.boot(f'<system xmlns="{SYS}"><host-name>boot</host-name></system>'.encode(),
                   persist=True)  # fmt: skip
    return Datastores(txn)


async def test_serializations_follow_edits_and_commits(tmp_path: Path) -> None:
    ds = await datastores(tmp_path)
    assert ds.candidate is ds.txn.running and not ds.candidate_dirty
    assert b"boot" in ds.serialized("candidate") and b"boot" in ds.serialized("running")
    ds.edit("candidate", edit("edited"), ADMIN, 1)
    assert b"edited" in ds.serialized("candidate") and b"boot" in ds.serialized("running")
    assert ds.candidate_dirty
    await ds.commit(ADMIN, 1)
    assert ds.serialized("running") == ds.txn.running_bytes and b"edited" in ds.serialized("running")
    assert ds.candidate is ds.txn.running and not ds.candidate_dirty


async def test_an_edit_leaves_running_untouched(tmp_path: Path) -> None:
    ds = await datastores(tmp_path)
    before = etree.tostring(ds.txn.running)
    ds.edit("candidate", edit("other"), ADMIN, 1)  # the candidate started as running's own tree
    assert etree.tostring(ds.txn.running) == before


async def test_an_edit_back_to_running_is_not_dirty(tmp_path: Path) -> None:
    ds = await datastores(tmp_path)
    ds.edit("candidate", edit("other"), ADMIN, 1)
    ds.edit("candidate", edit("boot"), ADMIN, 1)
    assert ds.candidate is not ds.txn.running and not ds.candidate_dirty


@pytest.mark.parametrize("value", ["x", "bench-7"])
async def test_a_canonical_candidate_becomes_running_as_is(tmp_path: Path, value: str) -> None:
    ds = await datastores(tmp_path)
    ds.edit("candidate", edit(value), ADMIN, 1)
    candidate = ds.candidate
    await ds.commit(ADMIN, 1)
    assert ds.txn.running is candidate  # already canonical: not re-parsed
    assert etree.tostring(parse_top(ds.txn.running_bytes)) == etree.tostring(candidate)
