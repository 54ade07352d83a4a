"""The intercept lifecycle, in-process: added (pending) -> live in the dataplane -> ended (deleted,
expired, refused by the dataplane, cleared with flow-tap). The sink is the real Dataplane with no
capture interface: it installs criteria (sockets, tables, counters) without capturing."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field

import pytest

from flowtap.config import model
from flowtap.dataplane import Dataplane
from flowtap.dataplane.service import FlowTapService
from flowtap.errors import UnservableInterceptError
from flowtap.intercept.criteria import ContentDestination, Criterion, Flag, Match, Timeouts
from flowtap.intercept.registry import CLEARED, LIMIT, REJECTED, Entry, Registry, RegistryLimits

PEER = "192.0.2.1"


@dataclass
class Watch:
    """What the registry told its listeners."""

    removed: list[tuple[str, int, str]] = field(default_factory=list)  # source, id, reason
    clears: int = 0

    def on_removed(self, entries: Sequence[Entry], reason: str) -> None:
        self.removed += [(e.source, e.criteria_id, reason) for e in entries]

    def on_clear(self) -> None:
        self.clears += 1


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    sink = Dataplane()
    reg = Registry(sink, RegistryLimits(), granularity=0.05)
    yield reg
    await reg.publisher.close()
    sink.stop()


@pytest.fixture
def watch(registry: Registry) -> Watch:
    w = Watch()
    registry.on_removed.append(w.on_removed)
    registry.on_clear.append(w.on_clear)
    return w


def criterion(reg: Registry, source: str = "a", *, static: bool = False,
              timeouts: Timeouts | None = None, source_port: int = 47100,
              ttl: int = 64) -> Criterion:  # fmt: skip
    dest = ContentDestination("cd1", "127.0.0.1", 47000, "127.0.0.1", source_port, ttl)
    return Criterion(reg.next_id(source), source, Match(), (dest,),
                     flags=Flag.STATIC if static else Flag.NONE,
                     timeouts=timeouts or Timeouts())  # fmt: skip


def live(reg: Registry, source: str = "a", **kw: object) -> Entry:
    entry = reg.add(criterion(reg, source, **kw), PEER)  # type: ignore[arg-type]
    reg.confirm(entry)
    return entry


async def installed(reg: Registry) -> set[int]:
    """The dataplane keys installed once every change so far is published."""
    await reg.publisher.flush()
    return set(reg.sink.counters())


async def test_an_add_is_pending_until_confirmed_then_live_in_the_dataplane(
    registry: Registry,
) -> None:
    entry = registry.add(criterion(registry), PEER)
    assert len(registry) == 1 and registry.entries("a") == [entry] and not entry.active
    assert registry.snapshot() == () and await installed(registry) == set()
    registry.confirm(entry)
    assert entry.active and await installed(registry) == {entry.key}
    assert entry.published is not None and entry.published.criteria_id == entry.key
    registry.confirm(entry)  # twice is once
    assert await installed(registry) == {entry.key} and len(registry.snapshot()) == 1


async def test_a_discarded_add_never_reaches_the_dataplane(registry: Registry,
                                                           watch: Watch) -> None:  # fmt: skip
    entry = registry.add(criterion(registry), PEER)
    registry.discard(entry)
    registry.confirm(entry)  # too late: it is gone
    assert len(registry) == 0 and await installed(registry) == set()
    assert registry.next_id("a") == 2 and watch.removed == []  # its ID stays used


async def test_delete_and_restore_follow_into_the_dataplane(registry: Registry,
                                                            watch: Watch) -> None:  # fmt: skip
    first, second = live(registry), live(registry)
    assert await installed(registry) == {first.key, second.key}
    epoch = registry.delete([first])
    assert not registry.holds(first) and await installed(registry) == {second.key}
    registry.restore([first], epoch)
    assert registry.holds(first) and await installed(registry) == {first.key, second.key}
    assert watch.removed == []  # a DELETE is recorded by its request, not as a removal


async def test_refresh_republishes_new_limits_and_unrefresh_puts_back_the_old(
    registry: Registry,
) -> None:
    entry = live(registry, timeouts=Timeouts(packets=100))
    await installed(registry)
    saved = registry.refresh([entry], Timeouts(packets=10, bytes=500))
    assert registry.snapshot()[0].timeouts == Timeouts(packets=10, bytes=500)
    assert await installed(registry) == {entry.key}
    registry.unrefresh(saved)
    assert registry.snapshot()[0].timeouts == Timeouts(packets=100)
    static = live(registry, static=True)
    assert registry.refresh([static], Timeouts(total=5)) == []  # never refreshed


async def test_total_and_idle_timeouts_expire_live_criteria_only(registry: Registry,
                                                                 watch: Watch) -> None:  # fmt: skip
    total = live(registry, timeouts=Timeouts(total=1))
    idle = live(registry, timeouts=Timeouts(idle=1))
    kept = live(registry, static=True, timeouts=Timeouts(total=1))  # STATIC ignores timeouts
    pending = registry.add(criterion(registry, timeouts=Timeouts(total=1)), PEER)
    await asyncio.sleep(1.4)
    assert sorted(watch.removed) == [("a", total.criteria_id, "timeout-total"),
                                     ("a", idle.criteria_id, "timeout-idle")]  # fmt: skip
    assert registry.entries("a") == [kept, pending]
    assert await installed(registry) == {kept.key}


async def test_a_packet_or_byte_limit_reported_by_the_dataplane_ends_it(
    registry: Registry, watch: Watch
) -> None:
    entry = live(registry, timeouts=Timeouts(packets=5))
    pending = registry.add(criterion(registry, timeouts=Timeouts(packets=5)), PEER)
    assert entry.published is not None and entry.published.timeouts.packets == 5
    registry.expire_by_limit(pending.key)  # not live: nothing to stop
    registry.expire_by_limit(entry.key)  # what Appliance.limit_reached hands over
    registry.expire_by_limit(entry.key)  # reported twice, ended once
    assert watch.removed == [("a", entry.criteria_id, LIMIT)]
    assert registry.entries("a") == [pending] and await installed(registry) == set()


async def test_what_the_dataplane_cannot_serve_is_refused_before_any_limit(
    registry: Registry,
) -> None:
    small = Registry(registry.sink, RegistryLimits(per_source=0))
    with pytest.raises(UnservableInterceptError):  # checked before the (reached) limit
        small.add(criterion(small, ttl=0), PEER)
    with pytest.raises(UnservableInterceptError):
        registry.add(criterion(registry, ttl=0), PEER)
    assert len(registry) == 0 and registry.next_id("a") == 1  # no ID consumed


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A local UDP port bound without SO_REUSEADDR: no content destination socket can take it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_a_criterion_the_dataplane_refuses_at_install_is_removed_alone(
    registry: Registry, watch: Watch, taken_port: int
) -> None:
    good = live(registry)
    assert await installed(registry) == {good.key}
    bad = live(registry, source_port=taken_port)
    also_good = live(registry, "b")
    assert await installed(registry) == {good.key, also_good.key}
    assert watch.removed == [("a", bad.criteria_id, REJECTED)]
    assert registry.entries("a") == [good] and registry.entries("b") == [also_good]


def flow_tap_config(*, configured: bool = True, disabled: bool = False,
                    pic: str = "sp-0/0/0") -> model.Config:  # fmt: skip
    """flow-tap on ``pic`` unit 0 with nothing to capture (no capture ring needs a device)."""
    unit = {0: model.Unit(0, inet=True)}
    pics = {name: model.Interface(name, "lo", units=unit, disabled=disabled and name == pic)
            for name in ("sp-0/0/0", "sp-1/0/0")}  # fmt: skip
    ft = model.FlowTapService(interface=f"{pic}.0") if configured else None
    return model.Config(interfaces=pics, flow_tap=ft)


class Hook:
    """The flow-tap hook on the registry's dataplane, wired as the appliance wires it."""

    def __init__(self, registry: Registry) -> None:
        assert isinstance(registry.sink, Dataplane)
        self.service = FlowTapService(dataplane=registry.sink)
        self.service.on_stop.append(registry.dataplane_stopped)
        self.config = model.Config()

    async def commit(self, new: model.Config) -> None:
        self.service.validate(self.config, new)
        await self.service.commit(await self.service.prepare(self.config, new))
        self.config = new


async def test_flow_tap_removed_clears_once(registry: Registry, watch: Watch) -> None:
    hook = Hook(registry)
    await hook.commit(flow_tap_config())
    assert hook.service.running
    a, b = live(registry, "a"), live(registry, "b")
    pending = registry.add(criterion(registry, "a"), PEER)
    assert await installed(registry) == {a.key, b.key}
    await hook.commit(flow_tap_config(configured=False))
    assert not hook.service.running and watch.clears == 1
    assert sorted(watch.removed) == [("a", a.criteria_id, CLEARED),
                                     ("a", pending.criteria_id, CLEARED),
                                     ("b", b.criteria_id, CLEARED)]  # fmt: skip
    assert len(registry) == 0 and await installed(registry) == set()
    assert registry.next_id("a") == 3  # IDs are never reused while the process runs
    await hook.commit(flow_tap_config(configured=False))  # nothing changed: nothing happens
    assert watch.clears == 1


async def test_restart_stop_and_removal_while_stopped_clear_once_each(
    registry: Registry, watch: Watch
) -> None:
    hook = Hook(registry)
    await hook.commit(flow_tap_config())
    first = live(registry)
    await hook.commit(flow_tap_config(pic="sp-1/0/0"))  # another service PIC: restart
    assert hook.service.running and watch.clears == 1
    assert watch.removed == [("a", first.criteria_id, CLEARED)]
    second = live(registry)
    await hook.commit(flow_tap_config(pic="sp-1/0/0", disabled=True))  # PIC down: stopped
    assert not hook.service.running and watch.clears == 2
    assert watch.removed[1:] == [("a", second.criteria_id, CLEARED)]
    while_stopped = live(registry)  # the DTCP listener stays up while flow-tap is configured
    await hook.commit(flow_tap_config(configured=False, pic="sp-1/0/0", disabled=True))
    assert watch.clears == 3 and len(registry) == 0  # removed while stopped: cleared too
    assert watch.removed[2:] == [("a", while_stopped.criteria_id, CLEARED)]


async def test_the_service_stopping_is_a_clear_with_its_own_reason(registry: Registry,
                                                                   watch: Watch) -> None:  # fmt: skip
    entry = live(registry)
    assert registry.clear("service stopped") == 1
    assert watch.removed == [("a", entry.criteria_id, "service stopped")] and watch.clears == 1


async def test_a_refresh_the_dataplane_cannot_see_publishes_nothing(registry: Registry) -> None:
    """Issue 15 item 6: a REFRESH * of the total or idle timeout of 10,000 criteria must not
    queue 10,000 moot changes in front of other agencies' ADDs; one that changes a packet or
    byte limit, and its undo, still reach the dataplane."""
    entry = live(registry, timeouts=Timeouts(total=100, packets=100))
    await installed(registry)
    runs = registry.publisher.stats.runs
    registry.refresh([entry], Timeouts(total=50, idle=20))
    assert registry.publisher.pending() == 0
    await installed(registry)
    assert registry.publisher.stats.runs == runs
    saved = registry.refresh([entry], Timeouts(packets=10))
    assert registry.publisher.pending() == 1
    await installed(registry)
    registry.unrefresh(saved)
    assert registry.publisher.pending() == 1  # the limit of 100 goes back to the dataplane
    assert await installed(registry) == {entry.key}
    assert registry.snapshot()[0].timeouts == Timeouts(packets=100)
