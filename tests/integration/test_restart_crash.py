"""Issue 3 acceptance 5: restart restores the last commit; SIGKILL during commits never leaves a
torn or half-applied configuration."""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import signal
import time
from pathlib import Path

from lxml import etree

from flowtap.config.persist import StateDir
from flowtap.config.schema import Schema
from flowtap.tools.netconf_client import NetconfClient
from tests.flowtapd import SYS, Flowtapd, free_port
from tests.integration.conftest import USERS

KILLS = 200


def hostname_cfg(name: str) -> str:
    return f'<system xmlns="{SYS}"><host-name>{name}</host-name></system>'


def test_restart_restores_last_commit(flowtapd: Flowtapd) -> None:
    with flowtapd.connect() as m:
        m.edit_config(target="candidate", config=f'<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">{hostname_cfg("persisted-name")}</config>')
        m.commit()
        before = m.get_config("running").data_xml
    flowtapd.stop()
    flowtapd.start(init=False)
    with flowtapd.connect() as m:
        assert m.get_config("running").data_xml == before


async def _commit_forever(port: int, names: list[str], stop: asyncio.Event) -> None:
    try:
        client = await NetconfClient.connect("127.0.0.1", port, "admin", USERS["admin"].password)
    except (OSError, Exception):
        return
    i = 0
    try:
        while not stop.is_set():
            name = f"n{len(names)}-{i}"
            names.append(name)  # recorded before it is sent: it may or may not have committed
            await client.edit_candidate(hostname_cfg(name))
            await client.commit()
            i += 1
    except Exception:
        return  # the server was killed under us


async def _kill_round(server: Flowtapd, names: list[str], delay: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(_commit_forever(server.port, names, stop))
    await asyncio.sleep(delay)  # kill at a random point of the commit stream
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    stop.set()
    await asyncio.wait_for(task, 10)


def _crash_chain(state: Path, kills: int, seed: int) -> tuple[int, int]:
    """Kill one flowtapd ``kills`` times; return (torn configurations, commits attempted)."""
    schema = Schema()
    server = Flowtapd(state, free_port(), dict(USERS))
    server.start()
    names: list[str] = ["test"]
    torn = 0
    rng = random.Random(seed)
    for _ in range(kills):
        if server.proc is None:
            server.start(init=False)
        asyncio.run(_kill_round(server, names, rng.uniform(0.05, 0.2)))
        server.proc = None
        stored = StateDir(state)
        raw = stored.load_running() or b""
        history = stored.history()
        stored.close()
        try:
            canonical = schema.canonical(raw, validate=True)
            tree = etree.fromstring(b"<d>" + canonical + b"</d>")
            if tree.findtext(f"{{{SYS}}}system/{{{SYS}}}host-name") not in names:
                torn += 1
        except Exception:
            torn += 1
        if not history or history[0].config != raw:
            torn += 1  # running must be the newest commit of the history
    server.start(init=False)  # and the last state still boots
    server.stop()
    return torn, len(names)


def test_sigkill_during_commits_never_tears(tmp_path: Path) -> None:
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(
            lambda i: _crash_chain(tmp_path / f"state{i}", KILLS // 2, 20261124 + i), range(2)))
    torn = sum(r[0] for r in results)
    attempted = sum(r[1] for r in results)
    print(f"\n{KILLS} SIGKILLs during commits: {torn} torn or half-applied configurations "
          f"({attempted} commits attempted, {time.monotonic() - started:.0f} s)")
    assert torn == 0
