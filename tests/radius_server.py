"""A real FreeRADIUS server on loopback, for tests (SECURITY.md section 2.4).

Usage (plain helper, not a fixture, so any test module can import it)::

    from tests.radius_server import FreeRadius

    @pytest.fixture(scope="module")
    def radius(tmp_path_factory):
        with FreeRadius(tmp_path_factory.mktemp("radius")) as server:
            yield server

    server_cfg = radius.server()          # flowtap.config.model.RadiusServer pointing at it

The whole configuration is written under the given directory (own port, ``reject_delay = 0``,
Message-Authenticator required from clients). :meth:`FreeRadius.start` waits for "Ready to
process requests"; :meth:`FreeRadius.stop` SIGKILLs the server. ``DEFAULT_USERS`` holds the
users the flowtap tests rely on; pass ``users=`` to replace them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

from flowtap.config.model import RadiusServer

FREERADIUS = "/usr/sbin/freeradius"
SECRET = "testing123"

DEFAULT_USERS = """\
alice   Cleartext-Password := "alice-secret"
        Juniper-User-Permissions = "flow-tap-operation configure",
        Juniper-Local-User-Name = "remote"
bob     Cleartext-Password := "bob-secret"
        Juniper-User-Permissions += "flow-tap",
        Juniper-User-Permissions += "flow-tap-control"
carol   Cleartext-Password := "carol-secret"
dave    Cleartext-Password := "dave-secret"
        Juniper-Local-User-Name = "ops"
erin    Cleartext-Password := "erin-secret"
        Juniper-User-Permissions += "view,flow-tap",
        Juniper-User-Permissions += "flow-tap-operation, configure",
        Juniper-User-Permissions += "admin"
mallory Cleartext-Password := "mallory-secret"
        Juniper-User-Permissions += "all;rm -rf / superuser flow_tap_operation FLOW-TAP",
        Juniper-User-Permissions += "flow-tap-op\\303\\251ration",
        Juniper-User-Permissions += "%(long)s",
        Juniper-User-Permissions += "flow-tap-operation\\001",
        Juniper-User-Permissions += "view"
oscar   Cleartext-Password := "oscar-secret"
        Juniper-Local-User-Name = "no-such-template",
        Juniper-User-Permissions = "flow-tap-operation"
root-li Cleartext-Password := "root-li-secret"
        Juniper-User-Permissions = "all"
frank   Cleartext-Password := "frank-radius"
""".replace("%(long)s", "flow-tap-operation" * 12)

_CONFIG = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = ${exec_prefix}/sbin
raddbdir = %(raddb)s
confdir = ${raddbdir}
run_dir = ${raddbdir}/run
logdir = ${raddbdir}/log
libdir = /usr/lib/freeradius
pidfile = ${run_dir}/radiusd.pid
name = radiusd
max_request_time = 30
cleanup_delay = 0
max_requests = 1024
hostname_lookups = no
log {
    destination = stdout
    colourise = no
    auth = yes
    auth_badpass = no
    auth_goodpass = no
}
security {
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}
client localhost {
    ipaddr = 127.0.0.1
    proto = udp
    secret = %(secret)s
    require_message_authenticator = yes
    nas_type = other
}
thread pool {
    start_servers = 2
    max_servers = 4
    min_spare_servers = 1
    max_spare_servers = 2
    max_requests_per_server = 0
}
modules {
    files {
        filename = ${confdir}/users
    }
    pap {
    }
}
server default {
    listen {
        type = auth
        ipaddr = 127.0.0.1
        port = %(port)d
    }
    authorize {
        files
        pap
    }
    authenticate {
        Auth-Type PAP {
            pap
        }
    }
    post-auth {
        Post-Auth-Type REJECT {
        }
    }
}
"""


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FreeRadius:
    """One FreeRADIUS process with its own configuration directory and port."""

    def __init__(
        self,
        directory: Path,
        users: str = DEFAULT_USERS,
        secret: str = SECRET,
        port: int | None = None,
        ready_timeout: float = 10.0,
    ) -> None:
        self.directory = Path(directory)
        self.users = users
        self.secret = secret
        self.port = port or free_udp_port()
        self.ready_timeout = ready_timeout
        self.output: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def raddb(self) -> Path:
        return self.directory / "raddb"

    def write_config(self) -> None:
        for sub in ("run", "log"):
            (self.raddb / sub).mkdir(parents=True, exist_ok=True)
        values = {"raddb": self.raddb, "secret": self.secret, "port": self.port}
        (self.raddb / "radiusd.conf").write_text(_CONFIG % values)
        (self.raddb / "users").write_text(self.users)
        (self.raddb / "dictionary").write_text("# empty: the installed dictionaries apply\n")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:  # drain until EOF so the server never blocks on a pipe
            self.output.append(line.rstrip("\n"))
            if "Ready to process requests" in line:
                self._ready.set()
        self._ready.set()

    def start(self) -> None:
        self.write_config()
        self._ready.clear()
        self._proc = subprocess.Popen(
            [FREERADIUS, "-f", "-l", "stdout", "-d", str(self.raddb), "-n", "radiusd"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name="freeradius-log", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if time.monotonic() > deadline:
                break
        if self._proc.poll() is not None or not any(
            "Ready to process requests" in line for line in self.output
        ):
            self.stop()
            raise RuntimeError("FreeRADIUS did not start:\n" + "\n".join(self.output[-30:]))

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)
            self._proc = None
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def server(self, **overrides: object) -> RadiusServer:
        """A ``RadiusServer`` for this instance: 127.0.0.1, its port and secret, timeout 1 s,
        1 attempt (fast "no answer" cases); keyword arguments override fields."""
        fields: dict[str, object] = {
            "address": "127.0.0.1",
            "secret": self.secret,
            "port": self.port,
            "timeout": 1,
            "retry": 1,
        }
        fields.update(overrides)
        return RadiusServer(**fields)  # type: ignore[arg-type]

    def __enter__(self) -> FreeRadius:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
