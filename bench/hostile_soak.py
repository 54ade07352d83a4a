"""Issue 13's hostile-input and fault campaign as a bounded soak: what an attacker with a login
(or without one) can do to the appliance, and what the people who depend on it see meanwhile.

Each phase starts its own flowtapd (flow-tap on ``lo``, DTCP with the seed's
``connection-limit 5; rate-limit 5;``, NETCONF with Junos's 75 / 150 per minute), attacks it,
and measures from the point of view of the administrator or the mediation device:

  idle-netconf   75 SSH logins by a view-only user (from 127.0.0.3) that open no channel; time
                 until the administrator (from 127.0.0.1) gets a NETCONF reply
  idle-dtcp      5 logins by that user on the DTCP port; time until the mediation device gets
                 its NOOP answered
  preauth-flood  raw TCP connections from 127.0.0.2 to the DTCP port, kept at 5 (never logging
                 in); mediation-device admissions from 127.0.0.1 / tries (one try every 13 s,
                 within its own rate-limit)
  big-message    30 NETCONF sessions each sending an unfinished 4 MiB message; daemon RSS
                 before, with them open, and after they close
  stopped-lock   a client that locks the candidate and is then SIGSTOPped; time until the
                 administrator can lock it
  xpath          a view-only user's nested-count XPath filter; the attacker's reply time, an
                 administrator's reply time and the DTCP banner time while it runs, and how long
                 SIGTERM then takes to stop the daemon
  dup-header     a DTCP request carrying Csource-ID twice: the status answered

Every phase ends by closing its attackers and counting the TCP connections the daemon still
holds on its ports ("slots leaked"). Each wait is capped (``--cap``, default 45 s): a capped
figure reads "> CAP". No figure is asserted.

    .venv/bin/python bench/hostile_soak.py [--cap 45] [--phases idle-netconf,xpath] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flowtap.console import route_warnings_to_log

route_warnings_to_log()
# paramiko (under ncclient) prints a traceback for every connection the daemon refuses
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

import asyncssh  # noqa: I001

from flowtap.tools.dtcp_client import AsyncDtcpClient, build_request
from tests.flowtapd import Flowtapd, TestUser
from tests.integration.dtcp_support import USERS, make_flowtapd

NETOPS = TestUser("netops", "netops-pw-1", "read-only")
NC_HELLO = (b'<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>'
            b"<capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>"
            b"]]>]]>")  # fmt: skip
ATTACKER = "127.0.0.3"  # a host of the network that has view-only credentials
HOSTILE_XPATH = "//*[count(//*[count(//*[count(//*)>0])>0])>0]"
TRIED: Counter[str] = Counter()


def rss_mb(server: Flowtapd) -> float:
    assert server.proc is not None
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def held_connections(*ports: int) -> int:
    """Established TCP connections whose local end is one of ``ports`` (the daemon's side)."""
    total = 0
    for port in ports:
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, check=False).stdout  # fmt: skip
        total += len([line for line in out.splitlines() if line.strip()])
    return total


async def ssh_login(server: Flowtapd, port: int, user: TestUser,
                    local_addr: tuple[str, int] | None = None) -> asyncssh.SSHClientConnection:
    TRIED[f"ssh login ({user.name})"] += 1
    return await asyncssh.connect("127.0.0.1", port, username=user.name, password=user.password,
                                  known_hosts=None, agent_path=None, local_addr=local_addr,
                                  login_timeout=20)  # fmt: skip


def admin_get(server: Flowtapd) -> None:
    with server.connect("admin") as m:
        m.get_config("running", filter=("xpath", "/system/host-name"))


async def until(action: Callable[[], Awaitable[Any]], cap: float, pause: float = 1.0,
                attempt_timeout: float = 10.0) -> tuple[float | None, int]:
    """Seconds until ``action`` first succeeds (None past ``cap``), and how many tries."""
    start = time.monotonic()
    tries = 0
    while time.monotonic() - start < cap:
        tries += 1
        try:
            await asyncio.wait_for(action(), attempt_timeout)
            return time.monotonic() - start, tries
        except Exception:
            await asyncio.sleep(pause)
    return None, tries


def fmt(seconds: float | None, cap: float) -> str:
    return f"> {cap:.0f} s" if seconds is None else f"{seconds:.2f} s"


async def mediation_noop(server: Flowtapd) -> None:
    TRIED["dtcp NOOP (md1)"] += 1
    u = server.users["md1"]
    async with await AsyncDtcpClient.connect("127.0.0.1", server.dtcp_port, username=u.name,
                                             password=u.password, known_hosts=None) as md:
        reply = await md.request("NOOP", [])
        if reply.status != 200:
            raise RuntimeError(reply.status_line)


async def admin_reply(server: Flowtapd) -> None:
    TRIED["netconf get-config (admin)"] += 1
    await asyncio.to_thread(admin_get, server)


async def logins(server: Flowtapd, port: int, count: int) -> list[Any]:
    """``count`` logins by the view-only user from the attacker's address, a few at a time (as
    many in flight as one source may have before logging in)."""
    gate = asyncio.Semaphore(8)

    async def one() -> asyncssh.SSHClientConnection:
        async with gate:
            return await ssh_login(server, port, NETOPS, local_addr=(ATTACKER, 0))

    return await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)


async def idle_logins_then(server: Flowtapd, port: int, count: int,
                           victim: Callable[[], Awaitable[Any]], cap: float) -> tuple[int, str]:
    """Hold ``count`` channel-less logins on ``port`` while ``victim`` retries; how many logins
    were made and how long the victim waited."""
    opened = [a for a in await logins(server, port, count)
              if isinstance(a, asyncssh.SSHClientConnection)]  # fmt: skip
    waited, tries = await until(victim, cap)
    for conn in opened:
        conn.close()
    return len(opened), fmt(waited, cap) + f" ({tries} tries)"


async def phase_idle_netconf(server: Flowtapd, cap: float) -> dict[str, str]:
    made, waited = await idle_logins_then(server, server.port, 75,
                                          lambda: admin_reply(server), cap)  # fmt: skip
    return {"idle logins opened": str(made), "administrator's first NETCONF reply": waited}


async def phase_idle_dtcp(server: Flowtapd, cap: float) -> dict[str, str]:
    made, waited = await idle_logins_then(server, server.dtcp_port, 5,
                                          lambda: mediation_noop(server), cap)  # fmt: skip
    return {"logins without flow-tap-operation made": str(made),
            "mediation device's first NOOP answered": waited}


async def phase_preauth_flood(server: Flowtapd, cap: float) -> dict[str, str]:
    held: list[socket.socket] = []
    stop = asyncio.Event()

    async def flood() -> None:
        while not stop.is_set():
            held[:] = [s for s in held if _alive(s)]
            while len(held) < 5:
                s = socket.socket()
                s.setblocking(False)
                s.bind(("127.0.0.2", 0))
                with contextlib.suppress(BlockingIOError):
                    s.connect(("127.0.0.1", server.dtcp_port))
                TRIED["raw TCP from 127.0.0.2"] += 1
                held.append(s)
            await asyncio.sleep(0.2)

    flooder = asyncio.create_task(flood())
    await asyncio.sleep(1.0)
    admitted = tries = 0
    start = time.monotonic()
    while time.monotonic() - start < cap:
        tries += 1
        try:
            await asyncio.wait_for(mediation_noop(server), 10)
            admitted += 1
        except Exception:
            pass
        await asyncio.sleep(13.0)  # within the device's own rate-limit (5 a minute)
    stop.set()
    await flooder
    for s in held:
        s.close()
    return {"mediation device admitted / tries": f"{admitted} / {tries} over {cap:.0f} s"}


def _alive(s: socket.socket) -> bool:
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


async def phase_big_message(server: Flowtapd, cap: float) -> dict[str, str]:
    before = rss_mb(server)
    conns: list[asyncssh.SSHClientConnection] = []
    body = b'<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>'
    body += b"<x/>" * ((4 * 1024 * 1024 - 200) // 4)
    for _ in range(30):
        conn = await ssh_login(server, server.port, NETOPS)
        writer, _reader, _err = await conn.open_session(subsystem="netconf", encoding=None)
        writer.write(NC_HELLO + body)
        TRIED["unfinished 4 MiB message"] += 1
        conns.append(conn)
    await asyncio.sleep(3.0)
    peak = rss_mb(server)
    for conn in conns:
        conn.close()
    await asyncio.sleep(3.0)
    return {"daemon RSS before / with 30 open / 3 s after close":
            f"{before:.0f} / {peak:.0f} / {rss_mb(server):.0f} MB"}


STOPPED_LOCKER = """
import os, signal, sys
from ncclient import manager
m = manager.connect(host="127.0.0.1", port=int(sys.argv[1]), username="ops",
                    password="ops-pw-1", hostkey_verify=False, allow_agent=False,
                    look_for_keys=False, timeout=30)
m.lock("candidate")
print("locked", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
"""


async def phase_stopped_lock(server: Flowtapd, cap: float) -> dict[str, str]:
    locker = subprocess.Popen(  # noqa: ASYNC220 - a plain child we stop, read and kill
        [sys.executable, "-c", STOPPED_LOCKER, str(server.port)], stdout=subprocess.PIPE,
        text=True)  # fmt: skip
    assert locker.stdout is not None
    line = await asyncio.to_thread(locker.stdout.readline)
    if "locked" not in line:
        locker.kill()
        return {"stopped client's lock": "the client could not lock"}

    def admin_lock() -> None:
        TRIED["lock candidate (admin)"] += 1
        with server.connect("admin") as m:
            m.lock("candidate")
            m.unlock("candidate")

    waited, tries = await until(lambda: asyncio.to_thread(admin_lock), cap)
    locker.send_signal(signal.SIGKILL)
    locker.wait()
    return {"administrator locks the candidate after": fmt(waited, cap) + f" ({tries} tries)"}


async def phase_xpath(server: Flowtapd, cap: float) -> dict[str, str]:
    def hostile() -> None:
        TRIED["hostile XPath get (netops)"] += 1
        with server.connect("netops") as m:
            m.get(filter=("xpath", HOSTILE_XPATH))

    started = time.monotonic()
    attack = asyncio.create_task(asyncio.wait_for(asyncio.to_thread(hostile), cap))
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    try:
        await asyncio.wait_for(admin_reply(server), cap)
        admin = f"{time.monotonic() - t0:.2f} s"
    except Exception:
        admin = f"> {cap:.0f} s"
    t0 = time.monotonic()
    banner = await asyncio.to_thread(_banner_time, server.dtcp_port, cap)
    try:
        await attack
        outcome = "answered"
    except TimeoutError:
        outcome = "no reply"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:60]}"
    attacker = f"{outcome} after {time.monotonic() - started:.2f} s"
    assert server.proc is not None
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(server.proc.wait, 10)
        term = f"{time.monotonic() - t0:.2f} s"
    except subprocess.TimeoutExpired:
        term = "> 10 s (killed)"
    return {"attacker's reply": attacker, "administrator's reply meanwhile": admin,
            "DTCP SSH banner meanwhile": banner, "SIGTERM to exit": term}


def _banner_time(port: int, cap: float) -> str:
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=cap) as s:
            s.recv(64)
        return f"{time.monotonic() - t0:.2f} s"
    except OSError:
        return f"> {cap:.0f} s"


async def phase_dup_header(server: Flowtapd, cap: float) -> dict[str, str]:
    u = server.users["md1"]
    async with await AsyncDtcpClient.connect("127.0.0.1", server.dtcp_port, username=u.name,
                                             password=u.password, known_hosts=None) as md:
        raw = build_request("NOOP", [("Csource-ID", "md1")], seq=1, csource_id="md1")
        TRIED["DTCP request with Csource-ID twice"] += 1
        reply = (await md.send(raw, 1, timeout=cap))[0]
        return {"Csource-ID twice answered": reply.status_line}


PHASES: dict[str, Callable[[Flowtapd, float], Awaitable[dict[str, str]]]] = {
    "idle-netconf": phase_idle_netconf,
    "idle-dtcp": phase_idle_dtcp,
    "preauth-flood": phase_preauth_flood,
    "big-message": phase_big_message,
    "stopped-lock": phase_stopped_lock,
    "xpath": phase_xpath,
    "dup-header": phase_dup_header,
}


async def run_phase(name: str, cap: float, workdir: Path) -> dict[str, str]:
    users = {**USERS, "netops": NETOPS}
    server = make_flowtapd(workdir / name, users, connection_limit=5, rate_limit=5)
    server.start()
    try:
        result = await asyncio.wait_for(PHASES[name](server, cap), cap * 4 + 60)
        await asyncio.sleep(1.0)
        if server.proc is not None and server.proc.poll() is None:
            result["slots leaked (connections still held 1 s after)"] = str(
                held_connections(server.port, server.dtcp_port))
        return result
    finally:
        server.kill()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cap", type=float, default=45.0)
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("hostile_soak: run as root (127.0.0.2 binds, ss)", file=sys.stderr)
        return 2
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="flowtap-soak-") as tmp:
        for name in args.phases.split(","):
            t0 = time.monotonic()
            try:
                result = await run_phase(name, args.cap, Path(tmp))
            except Exception as exc:
                result = {"phase": f"failed: {type(exc).__name__}: {exc}"}
            for metric, value in result.items():
                print(f"{name:14} {metric:55} {value}", flush=True)
                rows.append({"metric": f"{name}: {metric}", "value": value})
            print(f"{name:14} {'(phase time)':55} {time.monotonic() - t0:.1f} s", flush=True)
    print("requests tried per kind:")
    for kind, count in sorted(TRIED.items()):
        print(f"  {kind:45} {count}")
        rows.append({"metric": f"tried: {kind}", "value": str(count)})
    if args.json:
        args.json.write_text(json.dumps({"title": "Hostile-input soak (issue 13)", "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
