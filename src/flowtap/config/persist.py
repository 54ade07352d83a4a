"""Crash-safe storage of the configuration in the state directory.

Layout of ``STATE_DIR``::

    commits.journal        append-only journal of committed configurations; the last complete
                           record is running, the last 50 are Junos ``rollback 0..49``
    startup.xml            the startup datastore
    pending-confirm.json   a confirmed commit not yet confirmed (reverted at boot)

A commit writes one record ``[u32 length][u16 meta length][meta JSON][config][sha256]`` after
the last one (a configuration over ``COMPRESS_OVER`` bytes is stored deflated, ``"z":1`` in the
meta, as Junos gzips its rollback files: 670 KB of XML becomes 27 KB, so a large commit writes
and syncs 27 KB, compaction rewrites 1.4 MB instead of 33 MB and room is made 25 times less
often) and calls fdatasync on the open journal: one write and one sync, no file creation,
no directory sync. The journal is kept preallocated with zeros (room for the records until the
next compaction), so a commit overwrites blocks that already exist and its fdatasync flushes
data only: no file-size change, no filesystem-journal commit (about 75 us less per commit on
ext4). A crash mid-write leaves a short or unverifiable record before the zeros; opening the
journal zeroes it, so the newest complete record (the old running) stays running. When the
journal holds more than ``COMPACT_AT`` records it is rewritten with the newest
``HISTORY_DEPTH`` (temporary file, fsync, rename, directory fsync). Other files are written the
same way (``atomic_write``).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

HISTORY_DEPTH = 50
COMPACT_AT = 200
PREALLOCATE_STEP = 1 << 20
# Room made ahead at most: room for every record until compaction, for a large configuration
# (2 MB), was ~400 MB of zeros written and fsynced inside one commit (2.5 s on the event loop).
PREALLOCATE_LIMIT = 16 << 20
COMPRESS_OVER = 16 << 10  # below, deflating costs more than the bytes it saves
_HEAD = struct.Struct(">IH")  # record length (after this field), meta length
_DIGEST = 32


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    number: int
    time: float
    user: str
    comment: str
    config: bytes


def fsync_dir(path: Path) -> None:
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
    fsync_dir(path.parent)


def _whole_steps(size: int) -> int:
    """``size`` rounded up to whole preallocation steps."""
    return -(-size // PREALLOCATE_STEP) * PREALLOCATE_STEP


def encode_record(entry: HistoryEntry) -> bytes:
    meta: dict[str, object] = {"number": entry.number, "time": entry.time, "user": entry.user,
                               "comment": entry.comment}  # fmt: skip
    config = entry.config
    if len(config) > COMPRESS_OVER:
        config, meta["z"] = zlib.compress(config, 1), 1
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode()
    body = struct.pack(">H", len(meta_bytes)) + meta_bytes + config
    digest = hashlib.sha256(body).digest()
    return struct.pack(">I", len(body) + _DIGEST) + body + digest


def decode_records(data: bytes) -> tuple[list[HistoryEntry], int]:
    """Every complete, verified record, and the offset where the valid part ends."""
    records, offset = _decode(data)
    return [entry for entry, _ in records], offset


def _decode(data: bytes) -> tuple[list[tuple[HistoryEntry, bytes]], int]:
    """Each complete, verified record, decoded and as stored."""
    records: list[tuple[HistoryEntry, bytes]] = []
    offset = 0
    while offset + _HEAD.size <= len(data):
        length, meta_length = _HEAD.unpack_from(data, offset)
        end = offset + 4 + length
        if length < 2 + _DIGEST or end > len(data):
            break
        body = data[offset + 4 : end - _DIGEST]
        intact = hashlib.sha256(body).digest() == data[end - _DIGEST : end]
        if not intact or meta_length > len(body) - 2:
            break
        try:
            meta = json.loads(body[2 : 2 + meta_length])
            config = bytes(body[2 + meta_length :])
            if meta.get("z"):
                config = zlib.decompress(config)
        except (ValueError, zlib.error):
            break
        entry = HistoryEntry(int(meta["number"]), float(meta["time"]), str(meta["user"]),
                             str(meta["comment"]), config)  # fmt: skip
        records.append((entry, bytes(data[offset:end])))
        offset = end
    return records, offset


class StateDir:
    """The persisted datastores and commit history of one appliance."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        self.journal_path = root / "commits.journal"
        self.startup_path = root / "startup.xml"
        self.pending_path = root / "pending-confirm.json"
        for stale in root.glob(".*.tmp"):
            stale.unlink()  # a crash between write and rename leaves these; they never count
        self._fd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT, 0o600)
        with open(self._fd, "rb", closefd=False) as fh:
            data = fh.read()
        records, valid = _decode(data)
        self._end = valid  # where the next record goes
        self._size = len(data)
        torn = len(data.rstrip(b"\0"))
        if torn > valid:  # the torn record of an interrupted commit
            os.pwrite(self._fd, bytes(torn - valid), valid)
            os.fsync(self._fd)
        # the newest HISTORY_DEPTH records, decoded and as stored (compaction copies the latter)
        self._entries = [entry for entry, _ in records[-HISTORY_DEPTH:]]
        self._stored = [record for _, record in records[-HISTORY_DEPTH:]]
        self._records = len(records)

    def close(self) -> None:
        os.close(self._fd)

    # -- running and history ---------------------------------------------------------------------

    def load_running(self) -> bytes | None:
        return self._entries[-1].config if self._entries else None

    def commit_running(self, data: bytes, user: str, comment: str = "") -> int:
        number = self._entries[-1].number + 1 if self._entries else 1
        entry = HistoryEntry(number, time.time(), user, comment[:200], data)
        record = encode_record(entry)
        if self._end + len(record) > self._size:
            ahead = min(len(record) * max(COMPACT_AT - self._records, 1), PREALLOCATE_LIMIT)
            self._preallocate(self._end + max(ahead, len(record)))
        os.pwrite(self._fd, record, self._end)
        os.fdatasync(self._fd)
        self._end += len(record)
        self._entries.append(entry)
        self._stored.append(record)
        self._records += 1
        if len(self._entries) > HISTORY_DEPTH:
            del self._entries[0], self._stored[0]
        if self._records > COMPACT_AT:
            self._compact()
        return number

    def _preallocate(self, size: int) -> None:
        """Grow the journal with zeros (written, not fallocated: writing into unwritten extents
        would change metadata on every commit again) and make the new size durable."""
        size = _whole_steps(size)
        os.pwrite(self._fd, bytes(size - self._size), self._size)
        os.fsync(self._fd)
        self._size = size

    def _compact(self) -> None:
        records = b"".join(self._stored)
        average = len(records) // max(len(self._entries), 1)
        room = _whole_steps(len(records) + min(average * COMPACT_AT, PREALLOCATE_LIMIT))
        atomic_write(self.journal_path, records + bytes(room - len(records)))
        os.close(self._fd)
        self._fd = os.open(self.journal_path, os.O_RDWR)
        self._end, self._size = len(records), room
        self._records = len(self._entries)

    def history(self) -> list[HistoryEntry]:
        """Newest first: index N is Junos ``rollback N``."""
        return list(reversed(self._entries))

    def load_history(self, index: int) -> bytes | None:
        if not 0 <= index < len(self._entries):
            return None
        return self._entries[-1 - index].config

    # -- startup and pending confirmed commit --------------------------------------------------

    def load_startup(self) -> bytes | None:
        try:
            return self.startup_path.read_bytes()
        except FileNotFoundError:
            return None

    def write_startup(self, data: bytes | None) -> None:
        if data is None:
            self.startup_path.unlink(missing_ok=True)
            fsync_dir(self.root)
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
            fsync_dir(self.root)
