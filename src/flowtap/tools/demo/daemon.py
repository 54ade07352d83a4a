"""Processes the demo starts inside namespaces: flowtapd and the agencies' collectors.

Each is ``ip netns exec NS python -m ...`` (``ip`` execs, so the pid is the program's own) with
its output in a file, never a pipe nobody reads. :meth:`Proc.stop` sends SIGTERM, then SIGKILL
after a grace period; every process is stopped by the demo's ``finally``, on Ctrl-C too.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from flowtap.errors import ProcError


class Proc:
    """A subprocess in a network namespace, its stdout+stderr in ``log``."""

    def __init__(self, name: str, netns: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(["ip", "netns", "exec", netns, *args], stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, marker: str, timeout: float) -> str:
        """Wait until a line of the output contains ``marker``; returns that line.

        Raises:
            ProcError: the process exited or ``timeout`` passed first.
        """
        deadline = time.monotonic() + timeout
        while True:
            for line in self.text().splitlines():
                if marker in line:
                    return line
            if self.proc.poll() is not None:
                raise ProcError(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise ProcError(f"{self.name} did not start within {timeout:.0f} s:\n"
                                f"{self.tail()}")  # fmt: skip
            time.sleep(0.05)

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


def flowtapd(netns: str, state_dir: Path, log: Path, *, log_level: str = "INFO",
             init_config: Path | None = None, timeout: float = 30.0) -> Proc:
    """Start flowtapd on ``state_dir`` (factory default on the first boot) and wait until it
    is ready."""
    state_dir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "flowtap", "--state-dir", str(state_dir),
            "--log-level", log_level]  # fmt: skip
    if init_config is not None:
        args += ["--init-config", str(init_config)]
    proc = Proc("flowtapd", netns, args, log)
    try:
        proc.wait_for("flowtapd: ready", timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def admin_password(state_dir: Path) -> str:
    """The first boot's generated admin password (``STATE_DIR/admin-credentials``)."""
    for line in (state_dir / "admin-credentials").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "password":
            return value.strip()
    raise ProcError("no password in admin-credentials")


def collector(netns: str, listen: str, port: int, pcap: Path, log: Path,
              *, timeout: float = 10.0) -> Proc:
    """``flowtap-collector`` writing every copy to ``pcap`` as it arrives (``--flush``)."""
    args = [sys.executable, "-m", "flowtap.tools.collector", "-l", listen, "-p", str(port),
            "-w", str(pcap), "--flush", "-t", "300"]  # fmt: skip
    proc = Proc(f"collector {pcap.name}", netns, args, log)
    try:
        proc.wait_for('"listening"', timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def collector_summary(proc: Proc) -> dict[str, Any]:
    """The collector's closing JSON line (after :meth:`Proc.stop`)."""
    for line in reversed(proc.text().splitlines()):
        if line.startswith("{") and '"packets"' in line:
            summary: dict[str, Any] = json.loads(line)
            return summary
    raise ProcError(f"{proc.name} printed no summary:\n{proc.tail()}")
