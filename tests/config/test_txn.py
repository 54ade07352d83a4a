"""Issue 3 acceptance 4: the commit pipeline aborts exactly the hooks that prepared."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from flowtap.config import model
from flowtap.config.persist import StateDir, decode_records
from flowtap.config.schema import Schema
from flowtap.config.txn import TransactionManager
from flowtap.config.xmlutil import parse_top
from flowtap.errors import CommitFailed, ConfigError

SYS = "urn:flowtap:yang:system"


class RecordingHook:
    def __init__(self, name: str, log: list[str], fail_prepare: bool = False,
                 fail_validate: bool = False) -> None:
        self.name = name
        self.log = log
        self.fail_prepare = fail_prepare
        self.fail_validate = fail_validate

    def validate(self, old: model.Config, new: model.Config) -> None:
        self.log.append(f"{self.name}.validate")
        if self.fail_validate:
            raise CommitFailed(f"{self.name} refuses")

    async def prepare(self, old: model.Config, new: model.Config) -> Any:
        self.log.append(f"{self.name}.prepare")
        if self.fail_prepare:
            raise CommitFailed(f"{self.name} cannot allocate", tag="resource-denied")
        return f"{self.name}-handle"

    async def commit(self, handle: Any) -> None:
        self.log.append(f"{self.name}.commit({handle})")

    async def abort(self, handle: Any) -> None:
        self.log.append(f"{self.name}.abort({handle})")


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def hostname(name: str) -> bytes:
    return f'<system xmlns="{SYS}"><host-name>{name}</host-name></system>'.encode()


async def test_prepare_failure_aborts_prepared_hooks_in_reverse(schema: Schema,
                                                                  tmp_path: Path) -> None:
    log: list[str] = []
    state = StateDir(tmp_path)
    txn = TransactionManager(schema, state)
    await txn.boot(hostname("before"), persist=True)
    for hook in (RecordingHook("a", log), RecordingHook("b", log),
                 RecordingHook("c", log, fail_prepare=True), RecordingHook("d", log)):
        txn.add_hook(hook)
    on_disk = state.journal_path.read_bytes()
    history = len(state.history())
    with pytest.raises(ConfigError) as exc:
        await txn.commit(parse_top(hostname("after")), None)
    assert exc.value.tag == "resource-denied"
    assert log == ["a.validate", "b.validate", "c.validate", "d.validate",
                   "a.prepare", "b.prepare", "c.prepare",
                   "b.abort(b-handle)", "a.abort(a-handle)"]
    assert state.journal_path.read_bytes() == on_disk
    assert len(state.history()) == history
    assert b"before" in txn.running_bytes and model.from_tree(txn.running) == txn.config


async def test_validate_failure_prepares_nothing(schema: Schema, tmp_path: Path) -> None:
    log: list[str] = []
    txn = TransactionManager(schema, StateDir(tmp_path))
    await txn.boot(hostname("before"), persist=True)
    txn.add_hook(RecordingHook("a", log))
    txn.add_hook(RecordingHook("b", log, fail_validate=True))
    with pytest.raises(ConfigError):
        await txn.commit(parse_top(hostname("after")), None)
    assert log == ["a.validate", "b.validate"]


async def test_success_commits_in_order_after_persisting(schema: Schema, tmp_path: Path) -> None:
    log: list[str] = []
    state = StateDir(tmp_path)
    txn = TransactionManager(schema, state)
    await txn.boot(hostname("before"), persist=True)
    txn.add_hook(RecordingHook("a", log))
    txn.add_hook(RecordingHook("b", log))
    result = await txn.commit(parse_top(hostname("after")), None)
    assert log[-2:] == ["a.commit(a-handle)", "b.commit(b-handle)"]
    assert result.number == 2 and b"after" in (StateDir(tmp_path).load_running() or b"")
    assert [e.number for e in state.history()] == [2, 1]
    assert state.load_history(1) is not None and b"before" in state.load_history(1)  # type: ignore[operator]


async def test_history_keeps_fifty_and_survives_compaction(schema: Schema,
                                                             tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    txn = TransactionManager(schema, state)
    for i in range(260):  # past the compaction threshold
        await txn.commit(parse_top(hostname(f"h{i}")), None)
    for view in (state, StateDir(tmp_path)):  # live and reopened
        entries = view.history()
        assert len(entries) == 50 and entries[0].number == 260 and entries[-1].number == 211
        assert b"h259" in (view.load_running() or b"")
        assert b"h258" in (view.load_history(1) or b"")


def _journal_with_two_records(tmp_path: Path) -> tuple[bytes, int]:
    state = StateDir(tmp_path)
    state.commit_running(hostname("one"), "a")
    state.commit_running(hostname("two"), "a")
    whole = state.journal_path.read_bytes()
    state.close()
    _, end = decode_records(whole)
    assert whole[end:].count(0) == len(whole) - end  # preallocated: zeros after the records
    return whole[:end], len(whole)


@pytest.mark.parametrize("padded", [False, True], ids=["cut-file", "torn-in-preallocation"])
def test_torn_tail_is_cut_off(tmp_path: Path, padded: bool) -> None:
    records, size = _journal_with_two_records(tmp_path)
    for cut in range(1, 40):  # a crash in the middle of writing the second record
        if padded and not any(records[-cut:]):
            # the bytes "lost" are zeros, as the preallocation holds: the file is the whole
            # record, bit for bit (the digest ends in a zero byte once in 256 runs)
            continue
        torn = records[:-cut]
        # the file ends with the torn record, or the record was torn inside the zeros
        tail = bytes(size - len(torn)) if padded else b""
        StateDir(tmp_path).close()
        (tmp_path / "commits.journal").write_bytes(torn + tail)
        reopened = StateDir(tmp_path)
        assert b"one" in (reopened.load_running() or b"")
        assert [e.number for e in reopened.history()] == [1]
        reopened.commit_running(hostname("three"), "a")  # written where the torn one began
        again = StateDir(tmp_path)
        assert b"three" in (again.load_running() or b"")
        assert [e.number for e in again.history()] == [2, 1]
        again.close()
        reopened.close()


def test_a_short_record_over_a_torn_longer_one_leaves_no_garbage(tmp_path: Path) -> None:
    records, size = _journal_with_two_records(tmp_path)
    _, first_end = decode_records(records[: len(records) // 2 + 30])
    big = records[:first_end] + b"\x07" * 5000  # a torn, longer record
    (tmp_path / "commits.journal").write_bytes(big + bytes(size - len(big)))
    state = StateDir(tmp_path)
    state.commit_running(hostname("x"), "a")  # much shorter than the torn bytes
    state.close()
    data = (tmp_path / "commits.journal").read_bytes()
    entries, end = decode_records(data)
    assert [e.number for e in entries] == [1, 2] and b"\x07" not in data[end:]


def test_large_configurations_are_stored_deflated_and_plain_records_still_read(
    tmp_path: Path,
) -> None:
    from flowtap.config.persist import COMPRESS_OVER

    large = b"<system>" + b"<x>entry</x>" * (COMPRESS_OVER // 8) + b"</system>"
    state = StateDir(tmp_path)
    state.commit_running(large, "admin", "big")
    state.close()
    stored = (tmp_path / "commits.journal").read_bytes()
    assert large not in stored and b'"z":1' in stored
    legacy = StateDir(tmp_path / "legacy")
    legacy.close()
    meta = json.dumps({"number": 7, "time": 1.0, "user": "old", "comment": "plain"}).encode()
    record = struct.pack(">H", len(meta)) + meta + large  # as flowtap wrote before deflating
    framed = struct.pack(">I", len(record) + 32) + record + hashlib.sha256(record).digest()
    (tmp_path / "legacy" / "commits.journal").write_bytes(framed)
    assert StateDir(tmp_path / "legacy").load_running() == large
    assert StateDir(tmp_path).load_running() == large
