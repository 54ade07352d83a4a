"""Issue 15 item 6 (no head-of-line blocking between agencies): a session with much in progress
gives way to sessions with little. First the rule itself, then two real DTCP sessions sharing a
registry, an audit log and a publisher, driven through in-memory channels: another agency's ADD
is answered while one piece of a long LIST is out, not while the whole LIST goes by. No timing
is asserted: only the order in which bytes leave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from pathlib import Path

import pytest

from flowtap.audit import AuditLog
from flowtap.auth.principal import Principal
from flowtap.config.model import HMAC_STRICT, Config
from flowtap.dtcp.auditing import LiAudit
from flowtap.dtcp.message import MessageDecoder, Request
from flowtap.dtcp.methods import grows_with_table
from flowtap.dtcp.right_of_way import RightOfWay
from flowtap.dtcp.session import DtcpSession
from flowtap.dtcp.tuning import DtcpTuning
from flowtap.intercept.criteria import ContentDestination, Criterion, Match, Timeouts
from flowtap.intercept.registry import Registry
from flowtap.intercept.sink import CriterionCounters
from flowtap.tools.dtcp_client import build_request

LISTED = 3_000  # tens of milliseconds of LIST reply, written a turn at a time


# ---- the rule -------------------------------------------------------------------------------


async def test_a_light_session_never_waits_and_a_heavy_one_waits_for_light_batches() -> None:
    way = RightOfWay(light=4, max_wait=60)
    heavy = way.started("a", 10, bulk=False)
    light = way.started("b", 1, bulk=False)
    await asyncio.wait_for(way.give_way("b"), 60)  # light: goes on although a is busy
    waiting = asyncio.ensure_future(way.give_way("a"))
    await asyncio.sleep(0)
    assert not waiting.done() and way.given_way == 1
    later = way.started("c", 1, bulk=False)  # started after a began to wait: not waited for
    light()
    await asyncio.wait_for(waiting, 60)
    later()
    heavy()


async def test_heavy_sessions_do_not_wait_for_each_other_and_a_bulk_request_is_heavy() -> None:
    way = RightOfWay(light=4, max_wait=60)
    flood = way.started("a", 64, bulk=False)
    listing = way.started("b", 1, bulk=True)
    assert not way.is_light("a") and not way.is_light("b")
    await asyncio.wait_for(way.give_way("a"), 60)
    await asyncio.wait_for(way.give_way("b"), 60)
    assert way.given_way == 0
    flood()
    listing()
    listing()  # twice is once
    assert way.is_light("a") and way.is_light("b")


async def test_a_light_batch_never_answered_holds_a_heavy_session_once_for_max_wait() -> None:
    way = RightOfWay(light=0, max_wait=0.01)
    way.started("a", 1, bulk=False)
    way.started("b", 0, bulk=False)  # never answered (a peer that does not read)
    await asyncio.wait_for(way.give_way("a"), 60)
    assert way.given_way == 1
    await way.give_way("a")  # the stale batch holds no one again
    assert way.given_way == 1
    way.started("b", 0, bulk=False)  # a new batch of b has the right of way again
    await asyncio.wait_for(way.give_way("a"), 60)
    assert way.given_way == 2


@pytest.mark.parametrize(("method", "criteria_id", "bulk"), [
    ("LIST", None, True), ("DELETE", "*", True), ("REFRESH", "1-100", True),
    ("DELETE", "1,2,3,4,5", True), ("LIST", "!7", True),
    ("DELETE", "5", False), ("REFRESH", "1,2,3,4", False), ("LIST", "9", False),
    ("DELETE", "x", False),  # refused at once
    ("ADD", None, False), ("NOOP", None, False),
])  # fmt: skip
def test_a_request_is_bulk_unless_it_names_a_few_criteria(method: str, criteria_id: str | None,
                                                           bulk: bool) -> None:  # fmt: skip
    fields = [] if criteria_id is None else [("Criteria-ID", criteria_id)]
    (request,) = MessageDecoder().feed(build_request(method, fields, seq=1, csource_id="md1"))
    assert isinstance(request, Request)
    assert grows_with_table(request) is bulk


# ---- two sessions ---------------------------------------------------------------------------


class AsyncSink:
    """A dataplane that installs on the event loop, one turn per delta (as the capture
    workers' acknowledgement takes one)."""

    def __init__(self) -> None:
        self.table: dict[int, Criterion] = {}

    def check(self, criterion: Criterion) -> None:
        pass

    def apply(self, upserts: Sequence[Criterion], removals: Collection[int]) -> None:
        for key in removals:
            self.table.pop(key, None)
        self.table.update((c.criteria_id, c) for c in upserts)

    async def apply_async(self, upserts: Sequence[Criterion], removals: Collection[int]) -> None:
        await asyncio.sleep(0)
        self.apply(upserts, removals)

    def counters(self) -> dict[int, CriterionCounters]:
        return {}


class Host:
    """What the DTCP service shares with its sessions."""

    def __init__(self, registry: Registry, audit: LiAudit, right_of_way: RightOfWay) -> None:
        self.registry = registry
        self.audit = audit
        self.tuning = DtcpTuning()
        self.right_of_way = right_of_way

    def config(self) -> Config:
        return Config()

    @property
    def hmac_policy(self) -> str:
        return HMAC_STRICT


class Wire:
    """Every write of the server to any channel, in order, as (channel, bytes)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bytes]] = []
        self._written = asyncio.Event()

    def append(self, item: tuple[str, bytes]) -> None:
        self.log.append(item)
        self._written.set()

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self._written.clear()
            await self._written.wait()


class Channel:
    """One side of an in-memory DTCP channel: what the client sends, what the server wrote."""

    def __init__(self, name: str, log: Wire) -> None:
        self.name = name
        self._log = log
        self._input: asyncio.Queue[bytes] = asyncio.Queue()

    def send(self, data: bytes) -> None:
        self._input.put_nowait(data)

    async def read(self, n: int = -1) -> bytes:
        return await self._input.get()

    def write(self, data: bytes) -> None:
        self._log.append((self.name, data))

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        self._input.put_nowait(b"")


def principal(user: str) -> Principal:
    return Principal(user, user, "li-md", frozenset({"flow-tap-operation"}), "password")


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[Host]:
    registry = Registry(AsyncSink())
    log = AuditLog.open(tmp_path / "audit" / "li-audit.log")
    yield Host(registry, LiAudit(log), RightOfWay(max_wait=60))  # no timing: order only
    await registry.publisher.close()
    await log.close()


def add_fields(i: int) -> list[tuple[str, str]]:
    return [
        ("Cdest-ID", "cd1"), ("Dest-Address", f"10.0.{i >> 8 & 255}.{i & 255}"),
        ("Protocol", "17"), ("X-JTap-Cdest-Dest-Address", "127.0.0.1"),
        ("X-JTap-Cdest-Dest-Port", "47000"), ("X-JTap-Cdest-Source-Address", "127.0.0.1"),
        ("X-JTap-Cdest-Source-Port", "47001"), ("Timeout-Total", "86400"),
    ]  # fmt: skip


def install(registry: Registry, source: str, n: int) -> None:
    dest = ContentDestination("cd1", "127.0.0.1", 47000, "127.0.0.1", 47001)
    for _ in range(n):
        criterion = Criterion(registry.next_id(source), source, Match(), (dest,),
                              timeouts=Timeouts(total=86400))  # fmt: skip
        registry.confirm(registry.add(criterion, "192.0.2.1"))


async def test_another_agencys_add_is_answered_while_one_piece_of_a_long_list_is_out(
    host: Host,
) -> None:
    install(host.registry, "md1", LISTED)
    await host.registry.publisher.flush()
    wire = Wire()
    log = wire.log
    lister, adder = Channel("md1", wire), Channel("md2", wire)
    sessions = [DtcpSession(host, principal(c.name), "192.0.2.1", f"dtcp-{c.name}", c.write,
                            c.drain, c.close) for c in (lister, adder)]  # fmt: skip
    runs = [asyncio.ensure_future(s.run(c)) for s, c in zip(sessions, (lister, adder),
                                                                strict=True)]  # fmt: skip
    lister.send(build_request("LIST", [("Flags", "Both")], seq=1, csource_id="md1"))
    await wire.until(lambda: bool(log))  # the LIST's first piece is out: md2's ADD arrives
    adder.send(build_request("ADD", add_fields(1), seq=1, csource_id="md2"))
    await wire.until(lambda: any(name == "md2" for name, _ in log))
    await wire.until(lambda: [d for n, d in log if n == "md1"][-1].endswith(b"\r\n\r\n"))
    for channel in (lister, adder):
        channel.close()
    await asyncio.gather(*runs)

    names = [name for name, _ in log]
    reply = names.index("md2")
    listing = b"".join(data for name, data in log if name == "md1")
    assert listing.count(b"\r\nCRITERIA-NUM: ") == LISTED  # the whole LIST, one reply
    assert listing.endswith(b"\r\n\r\n") and listing.count(b"\r\n\r\n") == 1
    assert b"\r\nCRITERIA-ID: 1\r\n" in log[reply][1] and b" 200 OK\r\n" in log[reply][1]
    # md2's ADD needs several turns of the loop (its channel, the audit log, the publisher,
    # the reply): md1 gave way after the piece that was out when md2's batch started
    assert names[:reply].count("md1") <= 3, names[: reply + 1]
    assert host.right_of_way.given_way >= 1
    assert len(host.registry.entries("md2")) == 1 and len(host.registry.entries("md1")) == LISTED
