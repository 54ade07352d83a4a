"""Start a real flowtapd process on loopback for integration tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from flowtap.auth.passwords import make_hash

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"
IFS = "urn:flowtap:yang:interfaces"
SVC = "urn:flowtap:yang:services"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TestUser:
    __test__ = False  # not a pytest test class

    name: str
    password: str  # "" for none (a key-only user, or a RADIUS template such as ``remote``)
    login_class: str
    public_keys: tuple[str, ...] = ()
    hash_rounds: int = 1000  # SHA-512 crypt rounds of the stored hash (tests: the cheapest)

    def authentication(self) -> str:
        password = (f"<encrypted-password>{make_hash(self.password, rounds=self.hash_rounds)}"
                    "</encrypted-password>") if self.password else ""
        keys = "".join(f"<ssh-ed25519><name>{key}</name></ssh-ed25519>"
                       for key in self.public_keys)
        return f"<authentication>{password}{keys}</authentication>" if password or keys else ""


@dataclass
class Flowtapd:
    """A flowtapd subprocess with its own state directory."""

    state_dir: Path
    port: int
    users: dict[str, TestUser] = field(default_factory=dict)
    extra_config: str = ""
    extra_classes: str = ""  # more <class> elements under system login
    extra_system: str = ""  # more elements under system (authentication-order, radius-server)
    system_services: str = ""  # more elements under system services (flow-tap-dtcp)
    env: dict[str, str] = field(default_factory=dict)  # e.g. FLOWTAP_DTCP_* tuning
    dtcp_port: int = 0  # the flow-tap-dtcp port the test configured, if any
    netns: str | None = None  # run inside this network namespace (``ip netns exec``)
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit" / "li-audit.log"

    def init_config(self) -> str:
        classes = """
          <class><name>li-admin</name><permissions>all</permissions>
            <permissions>flow-tap-control</permissions></class>
          <class><name>ops</name><permissions>view</permissions>
            <permissions>configure</permissions></class>
          <class><name>ft-ctl</name><permissions>view</permissions>
            <permissions>configure</permissions><permissions>flow-tap-control</permissions></class>
        """
        users = "".join(
            f"<user><name>{u.name}</name><class>{u.login_class}</class>{u.authentication()}"
            "</user>"
            for u in self.users.values()
        )
        return (
            f'<config xmlns="{NC}"><system xmlns="{SYS}"><host-name>test</host-name>'
            f"<login>{classes}{self.extra_classes}{users}</login>{self.extra_system}"
            f"<services><netconf><ssh><port>{self.port}</port>"
            f"<listen-address>127.0.0.1</listen-address></ssh></netconf>{self.system_services}"
            f"</services></system>{self.extra_config}</config>"
        )

    def start(self, *, init: bool = True, timeout: float = 20.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "flowtap", "--state-dir", str(self.state_dir),
                "--log-level", os.environ.get("FLOWTAP_TEST_LOG", "WARNING")]  # fmt: skip
        if init:
            cfg = self.state_dir.parent / f"{self.state_dir.name}-init.xml"
            cfg.write_text(self.init_config())
            args += ["--init-config", str(cfg)]
        if self.netns is not None:
            args = ["ip", "netns", "exec", self.netns, *args]  # exec: the pid stays flowtapd's
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)  # fmt: skip
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.output.append(line)
            if "flowtapd: ready" in line:
                # keep draining: a chatty (DEBUG) daemon must never block on a full pipe
                threading.Thread(target=self._drain, args=(self.proc.stdout,),
                                 daemon=True).start()
                return
        self.stop()
        raise RuntimeError("flowtapd did not start:\n" + "".join(self.output))

    def _drain(self, stream: IO[str]) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                self.output.append(line)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def connect(self, user: str = "admin", **kwargs: object):  # type: ignore[no-untyped-def]
        from ncclient import manager

        from flowtap.dataplane.ffi import netns

        u = self.users[user]
        with netns(self.netns):  # the socket keeps the namespace it was made in
            return manager.connect(
                host="127.0.0.1", port=self.port, username=u.name, password=u.password,
                hostkey_verify=False, allow_agent=False, look_for_keys=False, timeout=30,
                **kwargs,
            )  # fmt: skip


def env_ok() -> bool:
    return os.geteuid() == 0
