"""The intercept registry, publisher, expiry queue, admission and tuning, driven directly (with the
real Dataplane as the sink: it installs criteria without capturing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from flowtap.dataplane import Dataplane
from flowtap.dtcp.filters import parse_criteria_selector
from flowtap.dtcp.tuning import DtcpTuning
from flowtap.errors import DestinationLimitError, InterceptLimitError, UnknownInterceptError
from flowtap.intercept.criteria import ContentDestination, Criterion, Flag, Match, Timeouts
from flowtap.intercept.registry import Registry, RegistryLimits


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    sink = Dataplane()
    reg = Registry(sink, RegistryLimits(per_source=5, total=8, destinations_per_source=2,
                                        destinations=3), granularity=0.05)  # fmt: skip
    yield reg
    await reg.publisher.close()
    sink.stop()


def criterion(reg: Registry, source: str, cdest: str = "cd1", *, static: bool = True,
              timeouts: Timeouts | None = None) -> Criterion:  # fmt: skip
    dest = ContentDestination(cdest, "127.0.0.1", 47000, "127.0.0.1", 47100)
    return Criterion(reg.next_id(source), source, Match(), (dest,),
                     flags=Flag.STATIC if static else Flag.NONE,
                     timeouts=timeouts or Timeouts())  # fmt: skip


def add(reg: Registry, source: str, cdest: str = "cd1", **kw: object) -> int:
    entry = reg.add(criterion(reg, source, cdest, **kw), "192.0.2.1")  # type: ignore[arg-type]
    reg.confirm(entry)
    return entry.criteria_id


def ids(reg: Registry, source: str) -> list[int]:
    return [e.criteria_id for e in reg.entries(source)]


async def test_ids_are_per_source_and_never_reused(registry: Registry) -> None:
    assert [add(registry, "a") for _ in range(3)] == [1, 2, 3]
    assert add(registry, "b") == 1
    registry.delete(registry.select("a", parse_criteria_selector("2-3"), None))
    assert add(registry, "a") == 4
    assert registry.clear() == 3 and len(registry) == 0
    assert add(registry, "a") == 5 and add(registry, "b") == 2


async def test_limits_count_pending_criteria_and_refuse_cleanly(registry: Registry) -> None:
    for _ in range(4):
        add(registry, "a")
    pending = registry.add(criterion(registry, "a"), "192.0.2.1")  # not confirmed yet
    with pytest.raises(InterceptLimitError):
        registry.add(criterion(registry, "a"), "192.0.2.1")
    assert len(registry) == 5
    registry.discard(pending)
    assert len(registry) == 4 and add(registry, "a") == 6  # the discarded ID stays used
    assert add(registry, "b", "x") == 1 and add(registry, "b", "y") == 2
    with pytest.raises(DestinationLimitError):  # 2 destinations per source
        registry.add(criterion(registry, "b", "z"), "p")
    with pytest.raises(DestinationLimitError):  # a:cd1, b:x, b:y: 3 in all already
        registry.add(criterion(registry, "c", "w"), "p")
    registry.delete(registry.select("b", None, "y"))  # y is free again
    assert add(registry, "c", "w") == 1


async def test_select_refuses_unknown_listed_ids_and_tolerates_ranges(registry: Registry) -> None:
    add(registry, "a", "x")
    add(registry, "a", "y")
    add(registry, "b", "x")
    for raw in ("3", "1,3", "2-5,3"):
        with pytest.raises(UnknownInterceptError) as exc:
            registry.select("a", parse_criteria_selector(raw), None)
        assert exc.value.intercept_id == 3
    assert [e.criteria_id for e in registry.select("a", parse_criteria_selector("2-9"),
                                                    None)] == [2]  # fmt: skip
    assert [e.criteria_id for e in registry.select("a", None, "x")] == [1]
    assert registry.select("a", None, "nothing") == []
    assert registry.knows_cdest("a", "y") and not registry.knows_cdest("b", "y")


async def test_publisher_coalesces_and_publishes_only_confirmed(registry: Registry) -> None:
    sink = registry.sink
    entries = [registry.add(criterion(registry, f"s{i % 3}"), "p") for i in range(7)]
    for entry in entries[:6]:
        registry.confirm(entry)
    await registry.publisher.flush()
    assert sorted(sink.counters()) == sorted(e.key for e in entries[:6])
    assert registry.publisher.stats.runs <= 2  # six changes, at most two apply calls
    registry.delete(entries[:3])
    await registry.publisher.flush()
    assert sorted(sink.counters()) == sorted(e.key for e in entries[3:6])


async def test_refresh_replaces_given_timeouts_and_can_be_undone(registry: Registry) -> None:
    entry = registry.add(criterion(registry, "a", static=False,
                                   timeouts=Timeouts(idle=100, total=200)), "p")  # fmt: skip
    registry.confirm(entry)
    saved = registry.refresh([entry], Timeouts(total=5, packets=10))
    assert entry.timeouts == Timeouts(idle=100, total=5, packets=10)
    assert entry.criterion.timeouts == entry.timeouts and entry.num_refresh == 1
    assert entry.published is not None and entry.published.timeouts.packets == 10
    registry.unrefresh(saved)
    assert entry.timeouts == Timeouts(idle=100, total=200) and entry.num_refresh == 0


async def test_total_timeouts_expire_in_deadline_order(registry: Registry) -> None:
    removed: list[tuple[int, str]] = []
    registry.on_removed.append(lambda es, why: removed.extend((e.criteria_id, why) for e in es))
    add(registry, "a", static=False, timeouts=Timeouts(total=1))
    add(registry, "a")  # static: never expires
    await asyncio.sleep(0.5)
    refreshed = registry.entries("a")[0]
    registry.refresh([refreshed], Timeouts(total=1))  # pushes the deadline out
    await asyncio.sleep(0.7)
    assert removed == []
    await asyncio.sleep(0.5)
    assert removed == [(1, "timeout-total")] and ids(registry, "a") == [2]


async def test_delete_is_undone_unless_the_table_was_cleared(registry: Registry) -> None:
    add(registry, "a")
    found = registry.select("a", None, None)
    epoch = registry.delete(found)
    registry.restore(found, epoch)
    assert ids(registry, "a") == [1]
    epoch = registry.delete(found)
    registry.clear()
    registry.restore(found, epoch)
    assert ids(registry, "a") == []


def test_tuning_from_the_environment() -> None:
    tuning = DtcpTuning.from_env({"FLOWTAP_DTCP_IDLE_TIMEOUT": "2.5",
                                  "FLOWTAP_DTCP_MAX_DESTINATIONS": "10"})  # fmt: skip
    assert (tuning.idle_timeout, tuning.max_destinations, tuning.login_timeout) == (2.5, 10, 30.0)
    with pytest.raises(ValueError, match="positive"):
        DtcpTuning.from_env({"FLOWTAP_DTCP_LOGIN_TIMEOUT": "0"})
    with pytest.raises(ValueError, match="number"):
        DtcpTuning.from_env({"FLOWTAP_DTCP_MAX_DESTINATIONS": "many"})


@pytest.mark.parametrize("name", ["FLOWTAP_DTCP_MAX_CRITERIA",
                                  "FLOWTAP_DTCP_MAX_CRITERIA_PER_SOURCE"])  # fmt: skip
def test_criteria_limits_are_configuration_not_tuning(name: str) -> None:
    with pytest.raises(ValueError, match="services flow-tap limits criteria"):
        DtcpTuning.from_env({name: "10"})
    limits = DtcpTuning.from_env({}).registry_limits()
    assert (limits.total, limits.per_source) == (32768, 16384)  # until the boot commit sets them


def test_hmac_policy_default_matches_the_yang_default() -> None:
    import re
    from pathlib import Path

    from lxml import etree

    from flowtap.config import model

    yang = (Path(__file__).resolve().parents[2] / "yang" / "flowtap-system.yang").read_text()
    leaf = yang[yang.index("leaf hmac-policy"):]
    assert re.search(r'default "(\w+)";', leaf).group(1) == model.DEFAULT_HMAC_POLICY  # type: ignore[union-attr]
    tree = etree.fromstring(
        f'<data xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><system xmlns="{model.NS_SYSTEM}">'
        "<services><flow-tap-dtcp><ssh><hmac-policy>strict</hmac-policy></ssh></flow-tap-dtcp>"
        "</services></system></data>")
    assert model.from_tree(tree).dtcp == model.DtcpService(hmac_policy="strict")
    tree.find(".//{*}hmac-policy").getparent().remove(tree.find(".//{*}hmac-policy"))
    assert model.from_tree(tree).dtcp == model.DtcpService(hmac_policy="lenient")


class _SlowSink:
    """A dataplane whose every apply takes 0.2 s (as rebuilding 5,000 criteria does)."""

    def apply(self, upserts: object, removals: object) -> None:
        time.sleep(0.2)

    def counters(self) -> dict[int, object]:
        return {}


def _loose(criteria_id: int) -> Criterion:
    dest = ContentDestination("cd1", "127.0.0.1", 47000, "127.0.0.1", 47100)
    return Criterion(criteria_id, "a", Match(), (dest,))
