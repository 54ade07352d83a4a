"""Shared set-up for the DTCP integration tests: a flowtapd with flow-tap and DTCP configured,
mediation-device users, request builders and an audit-log reader."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from flowtap.tools.dtcp_client import AsyncDtcpClient, Reply, build_request
from tests.flowtapd import IFS, NC, SVC, SYS, Flowtapd, TestUser, free_port

LI_CLASSES = (
    "<class><name>li-md</name><permissions>flow-tap-operation</permissions></class>"
    "<class><name>admin-system</name><permissions>admin</permissions>"
    "<permissions>system</permissions></class>"
)
USERS = {
    "admin": TestUser("admin", "admin-pw-1", "li-admin"),
    "md1": TestUser("md1", "md1-pw-1", "li-md"),
    "md2": TestUser("md2", "md2-pw-1", "li-md"),
    "ops": TestUser("ops", "ops-pw-1", "ops"),
}
FLOW_TAP = (
    f'<interfaces xmlns="{IFS}">'
    "<interface><name>sp-0/0/0</name><host-device>lo</host-device>"
    "<unit><name>0</name><family><inet/></family></unit></interface>"
    "<interface><name>ge-1/3/5</name><host-device>lo</host-device>"
    "<unit><name>0</name><family><inet/></family></unit></interface>"
    "</interfaces>"
    f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap></services>'
)


def dtcp_service(port: int, **leaves: Any) -> str:
    """``<flow-tap-dtcp><ssh>`` with ``port`` and leaves such as connection_limit=3."""
    body = "".join(f"<{k.replace('_', '-')}>{v}</{k.replace('_', '-')}>" for k, v in leaves.items())
    return (f"<flow-tap-dtcp><ssh><port>{port}</port><listen-address>127.0.0.1</listen-address>"
            f"<listen-address>::1</listen-address>{body}</ssh></flow-tap-dtcp>")


def dtcp_edit(**leaves: Any) -> str:
    """An edit-config body changing ``system services flow-tap-dtcp ssh`` leaves."""
    body = "".join(f"<{k.replace('_', '-')}>{v}</{k.replace('_', '-')}>" for k, v in leaves.items())
    return (f'<config xmlns="{NC}"><system xmlns="{SYS}"><services><flow-tap-dtcp><ssh>{body}'
            "</ssh></flow-tap-dtcp></services></system></config>")


def make_flowtapd(
    tmp_path: Path, users: dict[str, TestUser] | None = None, *, env: dict[str, str] | None = None,
    flow_tap: bool = True, dtcp: bool = True, **leaves: Any,
) -> Flowtapd:
    """A flowtapd (not started) with flow-tap and DTCP configured; ``.dtcp_port`` is set."""
    server = Flowtapd(tmp_path / "state", free_port(), dict(users or USERS))
    server.dtcp_port = free_port()
    server.extra_classes = LI_CLASSES
    server.extra_config = FLOW_TAP if flow_tap else ""
    server.system_services = dtcp_service(server.dtcp_port, **leaves) if dtcp else ""
    server.env = dict(env or {})
    return server


@contextlib.contextmanager
def running(server: Flowtapd) -> Iterator[Flowtapd]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def md(server: Flowtapd, user: str = "md1", **kw: Any) -> AsyncIterator[AsyncDtcpClient]:
    """A mediation device connected to ``server``'s DTCP port as ``user`` (password)."""
    u = server.users[user]
    client = await AsyncDtcpClient.connect(
        "127.0.0.1", server.dtcp_port, username=u.name, password=u.password,
        known_hosts=None, **kw,
    )
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def add_fields(
    *, cdest: str = "cd1", dest: str = "192.0.2.10", port: int = 47000,
    source: str = "127.0.0.1", source_port: int = 47100, static: bool = True,
    extra: list[tuple[str, str]] | None = None, **timeouts: int,
) -> list[tuple[str, str]]:
    """An ADD's fields: Toby's flow-tap layout (only ``Flags: STATIC`` by default)."""
    fields = [
        ("Cdest-ID", cdest),
        ("Source-Address", "*"),
        ("Dest-Address", dest),
        ("Protocol", "17"),
        ("Dest-Port", "40000"),
        ("X-JTap-Cdest-Dest-Address", "127.0.0.1"),
        ("X-JTap-Cdest-Dest-Port", str(port)),
        ("X-JTap-Cdest-Source-Address", source),
        ("X-JTap-Cdest-Source-Port", str(source_port)),
    ]
    for name, value in extra or []:  # an extra field replaces a default of the same name
        same = [i for i, (n, _) in enumerate(fields) if n.lower() == name.lower()]
        if same:
            fields[same[0]] = (name, value)
        else:
            fields.append((name, value))
    fields += [(f"Timeout-{k.title()}", str(v)) for k, v in timeouts.items()]
    if static:
        fields.append(("Flags", "STATIC"))
    return fields


def numbered_add_fields(i: int) -> list[tuple[str, str]]:
    """ADD fields with a distinct /32 target per ``i``, as real taps are; not static, so a
    REFRESH touches every one."""
    return [
        ("Cdest-ID", "cd1"), ("Dest-Address", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"),
        ("Protocol", "17"), ("Dest-Port", str(1024 + i % 60000)),
        ("X-JTap-Cdest-Dest-Address", "127.0.0.1"), ("X-JTap-Cdest-Dest-Port", "47000"),
        ("X-JTap-Cdest-Source-Address", "127.0.0.1"), ("X-JTap-Cdest-Source-Port", "47001"),
        ("Timeout-Total", "86400"),
    ]  # fmt: skip


async def install(client: AsyncDtcpClient, n: int, window: int = 64, first: int = 0) -> None:
    """``n`` criteria (``numbered_add_fields`` from ``first``), ``window`` ADDs in flight:
    thousands a second."""
    requests = [client.build("ADD", numbered_add_fields(first + i)) for i in range(n)]
    sent = min(window, n)
    client.process.stdin.write(b"".join(requests[:sent]))
    for _ in range(n):
        (reply,) = await client.read(1, timeout=60)
        assert reply.status == 200, reply.raw
        if sent < n:
            client.process.stdin.write(requests[sent])
            sent += 1


def request(method: str, csource: str, fields: list[tuple[str, str]], seq: int = 1,
            version: str = "0.7") -> bytes:
    return build_request(method, fields, seq=seq, csource_id=csource, version=version)


def listed_ids(reply: Reply) -> list[int]:
    assert reply.status == 200, reply.raw
    return [int(e["CRITERIA-ID"]) for e in reply.entries()]


def audit_records(server: Flowtapd) -> list[dict[str, Any]]:
    lines = server.audit_log.read_bytes().splitlines()
    return [json.loads(line) for line in lines[1:]]


def shape(reply: Reply) -> bytes:
    """A reply without the lines that legitimately differ between two requests."""
    keep = [line for line in reply.raw.split(b"\r\n")
            if not line.upper().startswith((b"SEQ:", b"TIMESTAMP:", b"AUTHENTICATION-INFO:"))]
    return b"\r\n".join(keep)


def commit(server: Flowtapd, config: str) -> None:
    """edit-config + commit as admin (blocking: call through asyncio.to_thread)."""
    with server.connect("admin") as m:
        m.edit_config(target="candidate", config=config)
        m.commit()
