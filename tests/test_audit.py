"""The LI audit log: durability, hash chain, tamper detection, permissions, reopen."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowtap import audit
from flowtap.audit import AuditLog, AuditRecord, verify
from flowtap.errors import AuditError
from flowtap.tools import audit_cli

TARGET = "src 192.0.2.77/32 dst-port 5060"


def dtcp(n: int) -> AuditRecord:
    return AuditRecord(
        event="dtcp", result="200 OK", principal="md1", template="remote", peer="198.51.100.7",
        session="s-1", method="ADD", criteria_id=n, cdest_id="cd-1", target=f"{TARGET} #{n}",
    )  # fmt: skip


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "li-audit.log"


async def _write(log: AuditLog, n: int) -> None:
    await asyncio.gather(*(log.append(dtcp(i)) for i in range(1, n + 1)))
    await log.close()


def write(path: Path, n: int = 5) -> None:
    """Open, append ``n`` DTCP records concurrently (group commit), close."""
    asyncio.run(_write(AuditLog.open(path), n))


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_chain_verifies_and_records_contain_all_fields(path: Path) -> None:
    write(path, 5)
    result = verify(path)
    assert result.ok and result.error is None
    assert result.records == 7 and result.last_seq == 7 and result.clean_close  # open+5+close
    header = json.loads(lines(path)[0])
    assert header["flowtap_audit"] == 1 and len(header["genesis"]) == 64
    records = [json.loads(line) for line in lines(path)[1:]]
    assert [r["event"] for r in records] == ["open"] + ["dtcp"] * 5 + ["close"]
    for r in records:
        assert tuple(r) == audit.RECORD_FIELDS
    first = records[1]
    assert first["seq"] == 2 and first["criteria_id"] == 1 and first["target"] == f"{TARGET} #1"
    assert (first["principal"], first["template"], first["peer"]) == (
        "md1",
        "remote",
        "198.51.100.7",
    )
    assert (first["session"], first["method"], first["cdest_id"]) == ("s-1", "ADD", "cd-1")
    assert first["result"] == "200 OK" and first["reason"] is None
    assert len(first["time"]) == 24 and first["time"].endswith("Z")  # 2026-01-01T00:00:00.000Z
    assert [r["criteria_id"] for r in records[1:6]] == [1, 2, 3, 4, 5]  # call order kept


def test_file_and_directory_modes(path: Path) -> None:
    old = os.umask(0)
    try:
        write(path, 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_edit_one_byte_fails(path: Path) -> None:
    write(path, 5)
    data = bytearray(path.read_bytes())
    pos = data.index(b"192.0.2.77")
    data[pos] = ord("9")  # 192 -> 992 in one record's target
    path.write_bytes(bytes(data))
    result = verify(path)
    assert not result.ok and result.line == 3 and "hash" in (result.error or "")


def test_edit_of_the_last_line_fails(path: Path) -> None:
    write(path, 2)
    data = path.read_bytes().replace(b'"event":"close"', b'"event":"clone"')
    path.write_bytes(data)
    assert not verify(path).ok


def test_recomputed_self_hash_still_breaks_the_chain(path: Path) -> None:
    write(path, 3)
    raw = lines(path)
    obj = json.loads(raw[2])
    obj["target"] = "src 203.0.113.1/32"
    del obj["hash"]
    raw[2] = audit._seal(obj) + b"\n"
    path.write_bytes(b"".join(raw))
    result = verify(path)
    assert not result.ok and result.line == 4 and "chain" in (result.error or "")


def test_delete_a_line_fails(path: Path) -> None:
    write(path, 5)
    raw = lines(path)
    del raw[3]
    path.write_bytes(b"".join(raw))
    result = verify(path)
    assert not result.ok and result.line == 4


def test_delete_the_header_fails(path: Path) -> None:
    write(path, 2)
    path.write_bytes(b"".join(lines(path)[1:]))
    assert verify(path).error == "missing or unknown header"


def test_reorder_fails(path: Path) -> None:
    write(path, 5)
    raw = lines(path)
    raw[2], raw[3] = raw[3], raw[2]
    path.write_bytes(b"".join(raw))
    result = verify(path)
    assert not result.ok and result.line == 3


def test_truncation_fails(path: Path) -> None:
    write(path, 5)
    size = path.stat().st_size
    os.truncate(path, size - 10)  # cut inside the last record
    result = verify(path)
    assert not result.ok and "truncated" in (result.error or "")


def test_line_boundary_truncation_is_caught_by_an_anchor(path: Path) -> None:
    write(path, 5)
    anchor = (verify(path).last_seq, verify(path).head or "")
    raw = lines(path)
    path.write_bytes(b"".join(raw[:-2]))  # cut two whole records
    unanchored = verify(path)
    assert unanchored.ok and not unanchored.clean_close  # a bare chain cannot tell
    anchored = verify(path, anchor=anchor)
    assert not anchored.ok and "before the anchor" in (anchored.error or "")
    path.write_bytes(b"".join(raw))
    assert verify(path, anchor=anchor).ok


def test_empty_and_missing_files(path: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert not verify(empty).ok
    with pytest.raises(OSError):
        verify(tmp_path / "missing.log")


def test_reopen_continues_the_chain(path: Path) -> None:
    write(path, 3)
    log = AuditLog.open(path)
    assert log.head[0] == 6  # open, 3, close, open
    asyncio.run(_write(log, 1))
    result = verify(path)
    assert result.ok and result.records == 8 and result.clean_close
    assert sum(1 for line in lines(path) if b'"flowtap_audit"' in line) == 1  # one header
    reopened = [json.loads(line) for line in lines(path)[1:] if b'"event":"open"' in line]
    assert [r["reason"] for r in reopened] == [None, None]  # clean both times


def test_unclean_shutdown_and_torn_tail_are_recorded(path: Path) -> None:
    log = AuditLog.open(path)
    log.append_sync(dtcp(1))
    log._release()  # a crash: no close record
    with open(path, "ab") as f:
        f.write(b'{"seq":3,"time":"2026-')  # a torn, never acknowledged write
    AuditLog.open(path).close_sync()
    result = verify(path)
    assert result.ok and result.records == 4
    reopen = json.loads(lines(path)[3])
    assert reopen["event"] == "open"
    assert "did not close" in reopen["reason"] and "discarded 22 torn bytes" in reopen["reason"]


def test_tampered_last_line_refuses_to_continue(path: Path) -> None:
    write(path, 1)
    path.write_bytes(path.read_bytes().replace(b'"event":"close"', b'"event":"clone"'))
    with pytest.raises(AuditError, match="cannot continue"):
        AuditLog.open(path)


def test_insecure_locations_and_second_writer_are_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    with pytest.raises(AuditError, match="0700"):
        AuditLog.open(loose / "a.log")
    safe = tmp_path / "safe"
    safe.mkdir(mode=0o700)
    (safe / "a.log").write_bytes(b"")
    os.chmod(safe / "a.log", 0o644)
    with pytest.raises(AuditError, match="0600"):
        AuditLog.open(safe / "a.log")
    os.symlink(safe / "a.log", safe / "link.log")
    with pytest.raises(OSError):
        AuditLog.open(safe / "link.log")
    log = AuditLog.open(safe / "b.log")
    with pytest.raises(AuditError, match="another writer"):
        AuditLog.open(safe / "b.log")
    log.close_sync()


async def _fail_closed(log: AuditLog) -> None:
    os.close(log._fd)  # every further write fails with EBADF
    results = await asyncio.gather(*(log.append(dtcp(i)) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, AuditError) for r in results)
    with pytest.raises(AuditError, match="unusable"):
        await log.append(dtcp(9))
    log._fd = os.open(os.devnull, os.O_RDONLY)  # let close() release something
    await log.close()


def test_write_failure_fails_closed(path: Path) -> None:
    asyncio.run(_fail_closed(AuditLog.open(path)))


async def _close_race(log: AuditLog) -> None:
    first = asyncio.ensure_future(log.append(dtcp(1)))
    closing = asyncio.ensure_future(log.close())
    await asyncio.sleep(0)  # both have queued their record
    with pytest.raises(AuditError, match="closed"):
        await log.append(dtcp(2))
    await first
    await closing
    await log.close()  # idempotent


def test_close_is_the_last_record_even_with_appends_racing(path: Path) -> None:
    asyncio.run(_close_race(AuditLog.open(path)))
    result = verify(path)
    assert result.ok and result.clean_close and result.records == 3


def test_sync_append_and_close(path: Path) -> None:
    log = AuditLog.open(path)
    log.append_sync(dtcp(1))
    log.close_sync()
    assert verify(path).ok and verify(path).records == 3
    with pytest.raises(AuditError, match="closed"):
        log.append_sync(dtcp(2))


async def _throughput(log: AuditLog, n: int, workers: int) -> tuple[float, int]:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await log.append(dtcp(i))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    rate = n / (time.perf_counter() - start)
    syncs = log.syncs
    await log.close()
    return rate, syncs


def test_group_commit_throughput(path: Path) -> None:
    n = 4000
    rate, syncs = asyncio.run(_throughput(AuditLog.open(path), n, workers=64))
    print(f"\naudit group commit: {rate:.0f} appends/s, {n} records in {syncs - 1} fsyncs")
    assert syncs < n / 4  # concurrent appends share fsyncs (speed itself: bench/audit_append.py)
    assert verify(path).ok


def test_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(path, 2)
    assert audit_cli.main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and "192.0.2.77" not in out
    seq, head = out.split("anchor ")[1].split()[0].split(":")
    assert audit_cli.main(["verify", str(path), "--anchor", f"{seq}:{head}"]) == 0
    assert audit_cli.main(["verify", str(path), "--anchor", f"{int(seq) + 1}:{head}"]) == 1
    os.truncate(path, path.stat().st_size - 1)
    assert audit_cli.main(["verify", str(path)]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert audit_cli.main(["verify", str(path.parent / "nope.log")]) == 2
    script = Path(sys.executable).parent / "flowtap-audit"
    if script.exists():  # the console script, once the package is (re)installed
        proc = subprocess.run(
            [str(script), "verify", str(path)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 1 and proc.stdout.startswith("FAILED")


_WRITER = """
import asyncio, sys
from flowtap.audit import AuditLog, AuditRecord
async def main():
    log = AuditLog.open(sys.argv[1])
    async def one(i):
        await log.append(AuditRecord("dtcp", "200 OK", criteria_id=i, target="x" * 300))
        print(i, flush=True)
    i = 0
    while True:
        await asyncio.gather(*(one(i + k) for k in range(50)))
        i += 50
asyncio.run(main())
"""


@pytest.mark.parametrize("delay", [0.15, 0.3, 0.45])
def test_survives_sigkill(path: Path, delay: float) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE)
    time.sleep(delay + 0.5)  # startup, then writes for ``delay``
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    acknowledged = {int(x) for x in out.split()}
    assert acknowledged, "the writer never got going"
    log = AuditLog.open(path)  # repairs a torn tail, notes the crash
    log.close_sync()
    result = verify(path)
    assert result.ok, result.error
    on_disk = {json.loads(line)["criteria_id"] for line in lines(path)[1:] if b'"dtcp"' in line}
    assert acknowledged <= on_disk  # nothing acknowledged was lost
