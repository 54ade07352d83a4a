"""Crash-safe storage of the configuration in the state directory.

Layout of ``STATE_DIR``::

    running.xml            hard link to the newest commit (what boot loads)
    commit-NNNNNNNN.xml    the last 50 committed configurations (Junos ``rollback N``)
    startup.xml            the startup datastore
    pending-confirm.json   a confirmed commit not yet confirmed (reverted at boot)

Every write is: temporary file in the same directory, fsync, rename, fsync of the directory. A
commit writes its entry once and links ``running.xml`` to it, all in one directory, so a commit
costs one file fsync and one directory fsync. A crash at any point leaves ``running.xml`` naming
either the old or the new complete file.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

HISTORY_DEPTH = 50
_PRUNE_BATCH = 10
_HEADER = re.compile(rb"^<!-- flowtap-commit (\{.*?\}) -->\n", re.S)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    number: int
    time: float
    user: str
    comment: str
    path: Path


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class StateDir:
    """The persisted datastores and commit history of one appliance."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        self.running_path = root / "running.xml"
        self.startup_path = root / "startup.xml"
        self.pending_path = root / "pending-confirm.json"
        for stale in root.glob(".*.tmp"):
            stale.unlink()  # a crash between write and rename leaves these; they never count
        self._numbers = sorted(self._scan())
        self._drop_uncommitted()

    def _drop_uncommitted(self) -> None:
        """A crash after writing a commit entry but before linking running.xml to it leaves an
        entry that never became running: it is not history, so it goes."""
        try:
            running = self.running_path.stat()
        except FileNotFoundError:
            running = None
        while self._numbers:
            newest = self._entry(self._numbers[-1])
            if running is not None and os.path.samestat(newest.stat(), running):
                return
            newest.unlink()
            self._numbers.pop()
        if self._numbers or running is None:
            return
        _fsync_dir(self.root)

    def _scan(self) -> list[int]:
        numbers = (p.stem.removeprefix("commit-") for p in self.root.glob("commit-*.xml"))
        return [int(n) for n in numbers if n.isdigit()]

    # -- running and history ---------------------------------------------------------------------

    def load_running(self) -> bytes | None:
        try:
            return strip_header(self.running_path.read_bytes())
        except FileNotFoundError:
            return None

    def commit_running(self, data: bytes, user: str, comment: str = "") -> int:
        number = (self._numbers[-1] + 1) if self._numbers else 1
        meta = json.dumps({"number": number, "time": time.time(), "user": user,
                           "comment": comment[:200]}, separators=(",", ":"))  # fmt: skip
        entry = self._entry(number)
        tmp = entry.with_name(f".{entry.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"<!-- flowtap-commit " + meta.encode() + b" -->\n" + data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, entry)
        link_tmp = self.root / ".running.xml.tmp"
        os.link(entry, link_tmp)
        os.replace(link_tmp, self.running_path)
        _fsync_dir(self.root)
        self._numbers.append(number)
        if len(self._numbers) >= HISTORY_DEPTH + _PRUNE_BATCH:
            # pruning a batch at a time keeps one unlink off every commit
            while len(self._numbers) > HISTORY_DEPTH:
                self._entry(self._numbers.pop(0)).unlink(missing_ok=True)
        return number

    def _entry(self, number: int) -> Path:
        return self.root / f"commit-{number:08d}.xml"

    def history(self) -> list[HistoryEntry]:
        """Newest first: index N is Junos ``rollback N``."""
        entries = []
        for number in reversed(self._numbers[-HISTORY_DEPTH:]):
            path = self._entry(number)
            try:
                with path.open("rb") as fh:
                    head = fh.readline()
            except FileNotFoundError:
                continue
            match = _HEADER.match(head)
            meta = json.loads(match.group(1)) if match else {}
            entries.append(HistoryEntry(number, float(meta.get("time", 0)),
                                        str(meta.get("user", "")), str(meta.get("comment", "")),
                                        path))  # fmt: skip
        return entries

    def load_history(self, index: int) -> bytes | None:
        entries = self.history()
        if not 0 <= index < len(entries):
            return None
        return strip_header(entries[index].path.read_bytes())

    # -- startup and pending confirmed commit --------------------------------------------------

    def load_startup(self) -> bytes | None:
        try:
            return self.startup_path.read_bytes()
        except FileNotFoundError:
            return None

    def write_startup(self, data: bytes | None) -> None:
        if data is None:
            self.startup_path.unlink(missing_ok=True)
            _fsync_dir(self.root)
        else:
            atomic_write(self.startup_path, data)

    def write_pending(self, rollback_to: bytes, persist_id: str | None, deadline: float) -> None:
        record = {"persist-id": persist_id, "deadline": deadline,
                  "rollback": rollback_to.decode()}  # fmt: skip
        atomic_write(self.pending_path, json.dumps(record).encode())

    def load_pending(self) -> bytes | None:
        try:
            record = json.loads(self.pending_path.read_bytes())
        except FileNotFoundError:
            return None
        return str(record["rollback"]).encode()

    def clear_pending(self) -> None:
        if self.pending_path.exists():
            self.pending_path.unlink()
            _fsync_dir(self.root)


def strip_header(data: bytes) -> bytes:
    match = _HEADER.match(data)
    return data[match.end() :] if match else data
