"""The ``flow-tap-limits`` commit hook and the table's criteria limits changed at run time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowtap.config import model
from flowtap.dataplane import Dataplane
from flowtap.dtcp.criteria_limits import CriteriaLimits, CriteriaLimitsHook
from flowtap.errors import InterceptLimitError
from flowtap.intercept.criteria import ContentDestination, Criterion, Flag, Match
from flowtap.intercept.registry import Registry


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    sink = Dataplane()
    reg = Registry(sink)
    yield reg
    await reg.publisher.close()
    sink.stop()


def add(reg: Registry, source: str) -> int:
    dest = ContentDestination("cd1", "127.0.0.1", 47000, "127.0.0.1", 47100)
    entry = reg.add(Criterion(reg.next_id(source), source, Match(), (dest,), flags=Flag.STATIC),
                    "192.0.2.1")  # fmt: skip
    reg.confirm(entry)
    return entry.criteria_id


def refused(reg: Registry, source: str) -> bool:
    try:
        add(reg, source)
    except InterceptLimitError:
        return True
    return False


def config(total: int, per_source: int) -> model.Config:
    return model.Config(flow_tap=model.FlowTapService(
        interface="sp-0/0/0.0", criteria_limit=total, criteria_per_source_limit=per_source))


async def test_commit_applies_the_configured_limits_and_abort_does_not(registry: Registry) -> None:
    hook = CriteriaLimitsHook(registry)
    handle = await hook.prepare(model.Config(), config(10, 3))
    await hook.abort(handle)
    assert (registry.limits.total, registry.limits.per_source) == (32768, 16384)
    handle = await hook.prepare(model.Config(), config(10, 3))
    assert (registry.limits.total, registry.limits.per_source) == (32768, 16384)  # not yet
    await hook.commit(handle)
    assert (registry.limits.total, registry.limits.per_source) == (10, 3)
    assert [add(registry, "a") for _ in range(3)] == [1, 2, 3]
    assert refused(registry, "a") and len(registry) == 3  # the 4th of one source: 550
    destinations = (registry.limits.destinations, registry.limits.destinations_per_source)
    assert destinations == (64, 16)  # untouched


async def test_without_flow_tap_the_defaults_apply(registry: Registry) -> None:
    hook = CriteriaLimitsHook(registry)
    await hook.commit(await hook.prepare(model.Config(), config(10, 3)))
    await hook.commit(await hook.prepare(config(10, 3), model.Config()))
    assert CriteriaLimits.of(model.Config()) == CriteriaLimits(32768, 16384)
    assert (registry.limits.total, registry.limits.per_source) == (32768, 16384)


async def test_lowering_below_the_installed_count_keeps_every_criterion(
    registry: Registry,
) -> None:
    for _ in range(5):
        add(registry, "a")
    add(registry, "b")
    registry.set_criteria_limits(total=4, per_source=3)
    assert [len(registry.entries(s)) for s in ("a", "b")] == [5, 1]  # nothing removed
    assert refused(registry, "a") and refused(registry, "b")  # 6 in all >= 4
    registry.delete(registry.select("a", None, None)[:3])  # a: 2 left, 3 in all
    assert add(registry, "b") == 2  # below both limits again
    assert refused(registry, "c")  # 4 in all
    registry.set_criteria_limits(total=5, per_source=3)
    assert add(registry, "a") == 6 and refused(registry, "a")  # a: 3 of 3 (refusals use no ID)


def test_per_source_above_the_total_is_a_bug() -> None:
    from flowtap.intercept.table import CriteriaTable

    with pytest.raises(ValueError):
        CriteriaTable().set_criteria_limits(total=3, per_source=4)
    with pytest.raises(ValueError):
        CriteriaTable().set_criteria_limits(total=3, per_source=0)
