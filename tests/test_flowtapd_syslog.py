"""``flowtapd --syslog`` with no syslog socket to reach (issue 17 item 5): a one-line error and
exit status 2 at start, not a logging traceback for every operator log line after it."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from flowtap import cli, oplog


def test_syslog_that_cannot_be_reached_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: list[Path] = []

    async def serve(state_dir: Path, init_config: Path | None) -> None:
        served.append(state_dir)
        oplog.LOG.info("flowtapd started")  # what the daemon would log first

    monkeypatch.setattr(cli, "serve", serve)
    monkeypatch.setattr(cli, "SYSLOG_ADDRESS", str(tmp_path / "no-syslog-here"), raising=False)
    handlers = list(oplog.LOG.handlers)
    try:
        code = cli.main(["--state-dir", str(tmp_path / "state"), "--syslog"])
    finally:
        oplog.LOG.handlers[:] = handlers
    err = capsys.readouterr().err
    assert (code, served) == (2, [])
    assert err.startswith("flowtapd: --syslog: cannot reach the syslog socket ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_syslog_that_can_be_reached_gets_the_operator_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=oplog.LOG.name)  # basicConfig does it in flowtapd
    address = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as syslog:
        syslog.bind(str(address))
        syslog.settimeout(5)

        async def serve(state_dir: Path, init_config: Path | None) -> None:
            oplog.LOG.info("flowtapd started")

        monkeypatch.setattr(cli, "serve", serve)
        monkeypatch.setattr(cli, "SYSLOG_ADDRESS", str(address), raising=False)
        handlers = list(oplog.LOG.handlers)
        try:
            assert cli.main(["--state-dir", str(tmp_path / "state"), "--syslog"]) == 0
        finally:
            for handler in oplog.LOG.handlers[len(handlers):]:
                handler.close()
            oplog.LOG.handlers[:] = handlers
        message = syslog.recv(4096)
    assert message.startswith(b"<30>flowtapd[") and b"flowtapd started" in message
