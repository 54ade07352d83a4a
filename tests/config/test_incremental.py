"""A commit of a few list entries (config/incremental.py) is a shortcut to the very bytes, tree
and errors of a full commit: two datastores take the same random edits, one always commits in
full, and after every commit both hold the same running configuration, byte for byte."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from lxml import etree

from flowtap.auth.principal import Principal
from flowtap.config import incremental
from flowtap.config.datastores import Datastores
from flowtap.config.permissions import expand
from flowtap.config.persist import StateDir
from flowtap.config.schema import Schema
from flowtap.config.xmlutil import serialize
from flowtap.errors import ConfigError

SYS = "urn:flowtap:yang:system"
NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
ADMIN = Principal("admin", "admin", "super-user", expand({"all"}), "password")
SCHEMA = Schema()


@pytest.fixture(autouse=True)
def shortcut_at_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(incremental, "WORTH_IT", 0)  # these configurations are small


def edit(body: str, *, top: str = "") -> etree._Element:
    return etree.fromstring(f'<config xmlns="{NC}" xmlns:nc="{NC}"><system xmlns="{SYS}">'
                            f"{top}<login>{body}</login></system></config>")  # fmt: skip


def radius_edit(rng: random.Random) -> str:
    """Keys libyang writes otherwise (IPv6 in capitals) in an ordered-by user list."""
    host = rng.choice(["2001:db8::1", "2001:DB8::1", "2001:db8::2", "192.0.2.7"])
    if rng.random() < 0.3:
        return f'<radius-server nc:operation="remove"><name>{host}</name></radius-server>'
    insert = ' yang:insert="first"' if rng.random() < 0.3 else ""
    return (f'<radius-server xmlns:yang="urn:ietf:params:xml:ns:yang:1"{insert}><name>{host}'
            f"</name><secret>s{rng.randint(0, 9)}</secret></radius-server>")  # fmt: skip


def units(body: str, default_operation: str = "merge") -> frozenset[incremental.Unit] | None:
    return incremental.touched_units(SCHEMA, edit(body), default_operation)


def test_units_are_the_outermost_list_entries_an_edit_names() -> None:
    found = units("<class><name> a  b </name><idle-timeout>5</idle-timeout></class>"
                  "<user><name>u</name><authentication><ssh-ed25519><name>k</name>"
                  "</ssh-ed25519></authentication></user>")  # fmt: skip
    assert found is not None
    assert {(u.path[-1].split("}")[1], u.keys) for u in found} == {
        ("class", (("name", "a b"),)),
        ("user", (("name", "u"),)),
    }


@pytest.mark.parametrize(
    "config",
    [
        f'<config xmlns="{NC}"><system xmlns="{SYS}"><host-name>h</host-name></system></config>',
        f'<config xmlns="{NC}" xmlns:nc="{NC}"><system xmlns="{SYS}">'
        '<login nc:operation="delete"/></system></config>',
        f'<config xmlns="{NC}"><system xmlns="{SYS}"><login/></system></config>',
        f'<config xmlns="{NC}"><system xmlns="{SYS}"><login><class/></login></system></config>',
    ],
    ids=["leaf-above-lists", "container-deleted", "empty-container", "entry-without-key"],
)
def test_an_edit_outside_every_list_entry_has_no_units(config: str) -> None:
    assert incremental.touched_units(SCHEMA, etree.fromstring(config), "merge") is None


def test_replace_as_default_operation_has_no_units() -> None:
    assert units("<class><name>a</name></class>", "replace") is None


def random_edit(rng: random.Random, names: list[str]) -> str:
    name = rng.choice(names)
    roll = rng.random()
    if roll < 0.35:
        return (
            f"<class><name>{name}</name><idle-timeout>{rng.randint(1, 66)}</idle-timeout></class>"
        )
    if roll < 0.45:
        return f'<class nc:operation="remove"><name>{name}</name></class>'
    if roll < 0.55:
        return (f'<class nc:operation="replace"><name>{name}</name>'
                "<permissions>view</permissions></class>")  # fmt: skip
    if roll < 0.62:  # a value libyang writes otherwise: the full commit decides
        return (
            f"<class><name>{name}</name><idle-timeout>+{rng.randint(1, 9)}</idle-timeout></class>"
        )
    if roll < 0.70:  # children in another order than the schema's
        return (f"<class><name>{name}</name><idle-timeout>7</idle-timeout>"
                "<permissions>configure</permissions></class>")  # fmt: skip
    if roll < 0.80:  # a user whose class may be gone: a must to evaluate on the whole tree
        return f"<user><name>u{rng.randint(0, 3)}</name><class>{name}</class></user>"
    if roll < 0.85:
        return f'<user nc:operation="remove"><name>u{rng.randint(0, 3)}</name></user>'
    if roll < 0.90:  # the same entry twice, and a second one
        other = rng.choice(names)
        return (f"<class><name>{name}</name><idle-timeout>3</idle-timeout></class>"
                f"<class><name>{other}</name><idle-timeout>4</idle-timeout></class>")  # fmt: skip
    return f"<class><name>{name}</name></class>"


def content(live: object) -> object:
    """A libyang tree's data, list order aside (the live tree need not keep the user's order:
    only validation reads it)."""

    def unordered(value: object) -> object:
        if isinstance(value, dict):
            return {k: unordered(v) for k, v in value.items()}
        if isinstance(value, list):
            return sorted((unordered(v) for v in value), key=repr)
        return value

    assert live is not None
    return unordered(live.print_dict(with_siblings=True))  # type: ignore[attr-defined]


async def booted(path: Path) -> Datastores:
    from flowtap.config.txn import TransactionManager

    txn = TransactionManager(SCHEMA, StateDir(path))
    entries = "".join(f"<class><name>c{i}</name><idle-timeout>60</idle-timeout></class>"
                      for i in range(40))  # fmt: skip
    await txn.boot(f'<system xmlns="{SYS}"><host-name>boot</host-name><login>{entries}'
                   "</login></system>".encode(), persist=True)  # fmt: skip
    return Datastores(txn)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_edits_commit_to_the_same_bytes_as_full_commits(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    names = [f"c{i}" for i in range(50)]  # c40..c49 do not exist yet
    fast, full = await booted(tmp_path / "fast"), await booted(tmp_path / "full")
    shortcuts = 0
    real = incremental.commit_units

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal shortcuts
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        shortcuts += result is not None
        return result

    monkeypatch.setattr(incremental, "commit_units", counting)
    errors = 0
    for step in range(120):
        bodies = [random_edit(rng, names) for _ in range(rng.randint(1, 3))]
        top = f"<host-name>h{step}</host-name>" if rng.random() < 0.05 else ""
        top += radius_edit(rng) if rng.random() < 0.25 else ""
        outcomes = []
        for ds in (fast, full):
            try:
                for body in bodies:
                    ds.edit("candidate", edit(body, top=top), ADMIN, 1)
                if ds is full:
                    ds._touched = None
                await ds.commit(ADMIN, 1)
                outcomes.append(None)
            except ConfigError as error:
                outcomes.append((error.tag, error.message, error.path))
                ds.discard(1)
        assert outcomes[0] == outcomes[1], bodies
        errors += outcomes[0] is not None
        assert fast.txn.running_bytes == full.txn.running_bytes, bodies
        assert serialize(fast.txn.running) == fast.txn.running_bytes
        assert SCHEMA.canonical(fast.txn.running_bytes, validate=True) == fast.txn.running_bytes
        assert content(fast.txn._live) == content(full.txn._live)
    assert shortcuts > 20, "the shortcut was hardly ever taken: this test would prove nothing"
    assert errors > 0, "no edit was refused: the error path went untested"


async def test_a_refused_commit_leaves_the_live_tree_as_it_was(tmp_path: Path) -> None:
    ds = await booted(tmp_path)
    ds.edit("candidate", edit("<user><name>u</name><class>c1</class></user>"), ADMIN, 1)
    await ds.commit(ADMIN, 1)
    ds.edit("candidate", edit('<class nc:operation="delete"><name>c1</name></class>'), ADMIN, 1)
    with pytest.raises(ConfigError, match="neither predefined nor configured"):
        await ds.commit(ADMIN, 1)
    ds.discard(1)
    ds.edit("candidate", edit("<class><name>c1</name><idle-timeout>9</idle-timeout></class>"),
            ADMIN, 1)  # fmt: skip
    await ds.commit(ADMIN, 1)
    assert b"<idle-timeout>9</idle-timeout>" in ds.txn.running_bytes
    assert b"<name>u</name>" in ds.txn.running_bytes

