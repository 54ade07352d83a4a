"""The lawful-intercept audit log (LI-5): append-only, fsynced, hash-chained JSON lines.

This file is the ONLY place where intercept targets may be written. One ASCII JSON object per
line: a header ``{"flowtap_audit":1,"genesis":<random 256 bits>,"created":..}``, then records
(fields in ``RECORD_FIELDS``: ``seq``, UTC ``time`` in ms, the :class:`AuditRecord` fields,
``prev`` = SHA-256 of the previous line, the header for the first record). Every line ends
with ``hash``, the SHA-256 of the line up to that field, so the last line is covered too.

:func:`verify` fails on an edited byte, a deleted, inserted or reordered line, a torn last line.
Whole lines cut off the end leave a valid shorter chain: that is detected only against an anchor
``(seq, head)`` noted earlier. Whoever can write the file can recompute the chain; it proves
integrity relative to anchors kept elsewhere (a keyed MAC would be the next step).

:meth:`AuditLog.append` returns once the record is durable (``fdatasync``); records are chained
in call order. Group commit: records arriving while an fsync is in flight are written and
synced together, each caller awaiting its own; by one worker thread, or on the event loop while
fsyncs are quick (``INLINE_SYNC``). After a write error every
append raises :class:`AuditError` (fail closed: no reply may claim success without its record).
:meth:`AuditLog.open` continues an existing chain from its last line, drops a torn (never
acknowledged) tail and appends an ``open`` record noting it and any unclean shutdown; after an
unclean one it first appends what its ``recover`` callback derives from the old records (the
intercepts that ended with the crash, LI-10), so an ``open`` record always follows a complete
account of the writer before it. :meth:`AuditLog.close` appends ``close``. Directory 0700,
file 0600, both owned by this user (anything looser is refused); an exclusive ``flock`` keeps
out a second writer.

The ``flowtap-audit`` command that verifies a log is :mod:`flowtap.tools.audit_cli`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flowtap.config.persist import fsync_dir as _fsync_dir
from flowtap.errors import AuditError

MAGIC = "flowtap_audit"
VERSION = 1
RECORD_FIELDS = (
    "seq", "time", "event", "principal", "template", "peer", "session", "method",
    "criteria_id", "cdest_id", "target", "result", "reason", "prev", "hash",
)  # fmt: skip
_HEX = frozenset("0123456789abcdef")
_TAIL_CHUNK = 64 * 1024
_JSON = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))  # json.dumps makes one a call
INLINE_SYNC = 0.001
"""A group whose write and ``fdatasync`` took less than this many seconds has the next done on
the event loop: handing it to the writer thread and back costs two thread wake-ups and GIL
hand-overs, more than a fast disk's fdatasync, on the path of every DTCP reply; a millisecond
holds the loop no longer than a turn of request handling (``flowtap.dtcp.right_of_way.TURN``)."""

Recover = Callable[[int, int, dict[str, Any]], Sequence["AuditRecord"]]
"""``(fd, end, last record)`` of a log whose writer did not close it -> records to append first."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One event. ``time`` and ``seq`` are stamped by the log when :meth:`append` is called."""

    event: str  # "auth", "dtcp", "open", "close", ...
    result: str  # "accept"/"reject" for auth, the DTCP status line for requests
    principal: str | None = None  # the authenticated (or claimed) user name
    template: str | None = None  # template user whose class applies (RADIUS users)
    peer: str | None = None  # "address" or "address:port"
    session: str | None = None
    method: str | None = None  # auth method, or DTCP method (ADD, DELETE, LIST, ...)
    criteria_id: int | str | None = None
    cdest_id: str | None = None
    target: str | None = None  # the target criteria text
    reason: str | None = None  # why refused, or other detail


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    records: int  # records (after the header) that verified
    last_seq: int
    head: str | None  # SHA-256 of the last verified line: the anchor to note elsewhere
    clean_close: bool  # the last record is a "close" record
    error: str | None = None
    line: int | None = None  # 1-based line number of the first problem


def utc_ms(ns: int | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for ``ns`` (``time.time_ns()`` by default)."""
    global _second  # a one-entry cache: every record is stamped
    ns = time.time_ns() if ns is None else ns
    sec, rest = divmod(ns, 1_000_000_000)
    if _second[0] != sec:
        _second = (sec, datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{rest // 1_000_000:03d}Z"


_second = (-1, "")  # the last second utc_ms formatted, and its text


def _seal(body: dict[str, Any]) -> bytes:
    """Serialise ``body`` and append its own ``hash`` field; returns the line without newline."""
    raw = _JSON.encode(body).encode("ascii")
    return raw[:-1] + b',"hash":"' + hashlib.sha256(raw).hexdigest().encode("ascii") + b'"}'


def _check_seal(line: bytes) -> dict[str, Any]:
    """Parse a line and check its own hash; raises ValueError with a reason."""
    try:
        parsed: object = json.loads(line.decode("ascii"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("not a JSON ASCII line") from exc
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    obj: dict[str, Any] = parsed
    digest = obj.get("hash")
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX:
        raise ValueError("no valid hash field")
    tail = b',"hash":"' + digest.encode("ascii") + b'"}'
    if not line.endswith(tail):
        raise ValueError("hash field not last")
    body = line[: -len(tail)] + b"}"
    if hashlib.sha256(body).hexdigest() != digest:
        raise ValueError("line hash mismatch (edited)")
    return obj


def lines_backwards(fd: int, end: int) -> Iterator[bytes]:
    """Complete lines of the log before ``end``, last first, read in 64 KiB steps (for the
    ``recover`` callbacks, which replay a crashed writer's records newest first)."""
    pos, tail = end, b""
    while pos > 0:
        step = min(_TAIL_CHUNK, pos)
        pos -= step
        lines = (os.pread(fd, step, pos) + tail).split(b"\n")
        tail = lines[0]  # may continue in the previous chunk
        yield from (line for line in reversed(lines[1:]) if line)
    if tail:
        yield tail


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One record of the log as a dict, or None for a line that is not one (a ``recover``
    callback skips it: ``flowtap-audit verify`` is what reports a damaged line)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def _ensure_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        os.chmod(directory, 0o700)  # whatever the umask
        _fsync_dir(directory.parent)
    st = directory.stat()
    if st.st_mode & 0o077 or st.st_uid != os.geteuid():
        raise AuditError(f"audit directory {directory} must be 0700 and owned by this user")


class AuditLog:
    """An open audit log. Create with :meth:`open`; use from one event loop."""

    def __init__(self, path: Path, fd: int, seq: int, prev: str) -> None:
        self.path = path
        self._fd = fd
        self._seq = seq
        self._prev = prev
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._failed: BaseException | None = None
        self._closed = self._closing = False
        self.syncs = 0  # fdatasync calls (group commit: fewer than records)
        self._inline = False  # the last write was quick: write the next on the event loop

    @classmethod
    def open(cls, path: str | os.PathLike[str], recover: Recover | None = None) -> AuditLog:
        """Open (or create) the log at ``path`` and append an ``open`` record (synchronously).

        When the previous writer did not close the log, ``recover(fd, end, last)`` gets the
        file (readable with ``os.pread`` up to ``end``) and its last record; what it returns is
        appended, durable in one ``fdatasync``, before the ``open`` record."""
        path = Path(path)
        _ensure_dir(path.parent)
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            os.fchmod(fd, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(path, flags)
            created = False
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_mode & 0o077 or st.st_uid != os.geteuid():
                raise AuditError(f"audit log {path} must be a regular 0600 file of this user")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise AuditError(f"audit log {path} is in use by another writer") from exc
            seq, prev, notes, last = cls._resume(fd, st.st_size)
            if created:
                _fsync_dir(path.parent)
        except BaseException:
            os.close(fd)
            raise
        log = cls(path, fd, seq, prev)
        try:
            if last is not None and last.get("event") != "close" and recover is not None:
                log.append_sync(*recover(fd, os.fstat(fd).st_size, last))
            log.append_sync(AuditRecord("open", "ok", reason="; ".join(notes) or None))
        except BaseException:  # also a failed recovery: the next start tries again
            log._release()
            raise
        return log

    @staticmethod
    def _resume(fd: int, size: int) -> tuple[int, str, list[str], dict[str, Any] | None]:
        """Find where the chain stands: ``(last seq, hash of last line, notes, last record)``."""
        notes: list[str] = []
        data = b""
        pos = size
        while pos > 0:  # read backwards until the last complete line is in ``data``
            step = min(_TAIL_CHUNK, pos)
            pos -= step
            data = os.pread(fd, step, pos) + data
            if data.count(b"\n") >= 2 or (pos == 0 and b"\n" in data):
                break
        cut = data.rfind(b"\n") + 1  # end of the last complete line, relative to ``pos``
        if pos + cut < size:  # torn tail: written but never acknowledged
            torn = data[cut:]
            os.ftruncate(fd, pos + cut)
            os.fsync(fd)
            notes.append(f"discarded {len(torn)} torn bytes sha256={_line_hash(torn)}")
        if pos + cut == 0:  # new (or torn header only): write a header
            header = _seal({MAGIC: VERSION, "genesis": secrets.token_hex(32), "created": utc_ms()})
            os.write(fd, header + b"\n")
            os.fsync(fd)
            return 0, _line_hash(header), notes, None
        last = data[: cut - 1].rsplit(b"\n", 1)[-1]
        try:
            obj = _check_seal(last)
        except ValueError as exc:
            raise AuditError(f"cannot continue the chain: last line invalid ({exc})") from None
        if obj.get(MAGIC) == VERSION:
            return 0, _line_hash(last), notes, None
        if not isinstance(obj.get("seq"), int):
            raise AuditError("cannot continue the chain: last line has no seq")
        if obj.get("event") != "close":
            notes.insert(0, "previous writer did not close the log (crash or kill)")
        return int(obj["seq"]), _line_hash(last), notes, obj

    def _encode(self, record: AuditRecord) -> bytes:
        if self._failed is not None:
            raise AuditError("audit log unusable after a write error") from self._failed
        if self._closed or self._closing:
            raise AuditError("audit log closed")
        body: dict[str, Any] = {"seq": self._seq + 1, "time": utc_ms()}
        # getattr, not dataclasses.asdict: the fields are scalars, and asdict's deep copy was
        # most of the cost of a record (a recovery after a crash appends thousands at once)
        body.update((name, getattr(record, name)) for name in RECORD_FIELDS[2:-2])
        body["prev"] = self._prev
        line = _seal(body)
        self._seq += 1
        self._prev = _line_hash(line)
        return line + b"\n"

    def _write_durable(self, data: bytes) -> float:
        """Write and fdatasync ``data``; returns the seconds it took."""
        started = time.perf_counter()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fdatasync(self._fd)
        return time.perf_counter() - started

    def append_sync(self, *records: AuditRecord) -> None:
        """Append ``records`` and fsync once, in the calling thread (blocks; for startup,
        shutdown and tools)."""
        if self._queue or self._flusher is not None:
            raise AuditError("append_sync() while asynchronous appends are in flight")
        if not records:
            return
        data = b"".join([self._encode(record) for record in records])
        try:
            self._write_durable(data)
        except OSError as exc:
            self._failed = exc
            raise AuditError(f"audit write failed: {exc.strerror}") from exc
        self.syncs += 1

    async def append(self, record: AuditRecord) -> None:
        """Append ``record``; returns once it is durable. Raises :class:`AuditError`."""
        await self._enqueue(record)

    def append_nowait(self, record: AuditRecord) -> asyncio.Future[None]:
        """Chain ``record`` now (call order is file order); the future resolves once it is
        durable. Raises :class:`AuditError` at once when the log is unusable."""
        return self._enqueue(record)

    def _enqueue(self, record: AuditRecord) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        line = self._encode(record)  # chained now: the order of calls is the order on disk
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append((line, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowtap-audit")
        batch: list[tuple[bytes, asyncio.Future[None]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                data = b"".join(line for line, _ in batch)
                if self._inline:
                    self._inline = self._write_durable(data) < INLINE_SYNC
                else:
                    took = await loop.run_in_executor(self._executor, self._write_durable, data)
                    self._inline = took < INLINE_SYNC
                self.syncs += 1
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
                batch = []
        except BaseException as exc:
            self._failed = exc
            error = AuditError(f"audit write failed: {exc!r}")
            for _, future in batch + self._queue:
                if not future.done():
                    future.set_exception(error)
            self._queue = []
            if not isinstance(exc, Exception):
                raise
        finally:
            self._flusher = None

    async def close(self) -> None:
        """Append a ``close`` record, then release the file."""
        if self._closed or self._closing:
            return
        try:
            if self._failed is None:
                future = self._enqueue(AuditRecord(event="close", result="ok"))
                self._closing = True  # later appends fail: "close" stays the last record
                await future
        finally:
            self._release()

    def close_sync(self) -> None:
        """:meth:`close` without an event loop (no asynchronous append may be in flight)."""
        if self._closed or self._closing:
            return
        if self._queue or self._flusher is not None:
            raise AuditError("close_sync() while asynchronous appends are in flight")
        try:
            if self._failed is None:
                self.append_sync(AuditRecord(event="close", result="ok"))
        finally:
            self._release()

    def _release(self) -> None:
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)

    async def __aenter__(self) -> AuditLog:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last line appended: an anchor for :func:`verify`."""
        return self._seq, self._prev


def verify(path: str | os.PathLike[str], anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Check the whole chain. ``anchor=(seq, head)`` also requires record ``seq`` to hash to
    ``head`` (detects lines cut off the end after the anchor was taken)."""
    seq = 0
    head: str | None = None
    clean = False
    number = 0

    def fail(error: str) -> VerifyResult:
        return VerifyResult(False, seq, seq, head, clean, error, number)

    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                return fail("incomplete last line (truncated)")
            line = raw[:-1]
            try:
                obj = _check_seal(line)
            except ValueError as exc:
                return fail(str(exc))
            if number == 1:
                if obj.get(MAGIC) != VERSION or len(str(obj.get("genesis", ""))) != 64:
                    return fail("missing or unknown header")
            else:
                if set(obj) != set(RECORD_FIELDS):
                    return fail("record fields differ")
                if obj["prev"] != head:
                    return fail("chain broken (line edited, deleted, inserted or reordered)")
                if obj["seq"] != seq + 1:
                    return fail(f"sequence gap: expected {seq + 1}")
                if not all(isinstance(obj[k], str) for k in ("time", "event", "result")):
                    return fail("bad field types")
                seq = obj["seq"]
                clean = obj["event"] == "close"
            head = _line_hash(line)
            if anchor is not None and seq == anchor[0] and number > 1 and head != anchor[1]:
                return fail("does not match the anchor")
    if number == 0:
        return fail("empty file (no header)")
    if anchor is not None and seq < anchor[0]:
        number += 1
        return fail(f"log ends at seq {seq}, before the anchor seq {anchor[0]} (truncated)")
    return VerifyResult(True, seq, seq, head, clean)
