"""``Dataplane.apply``, the intercept owner's delta install, on the real Dataplane with no capture
interface (it opens destination sockets and builds tables without capturing; no root needed)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import pytest

from flowtap.dataplane import Dataplane
from flowtap.dataplane.slab import PACKETS
from flowtap.errors import SendError
from flowtap.intercept.criteria import ContentDestination, Criterion, Match, Timeouts

RCV = "127.0.0.1"


def crit(cid: int, *dests: ContentDestination) -> Criterion:
    return Criterion(cid, "a", Match(), dests or (cd(),), timeouts=Timeouts(packets=cid))


def cd(source_port: int = 47100, ttl: int = 64) -> ContentDestination:
    return ContentDestination(f"cd{source_port}", RCV, 47000, RCV, source_port, ttl)


@pytest.fixture
def dp() -> Iterator[Dataplane]:
    plane = Dataplane()
    yield plane
    plane.stop()


def installed(dp: Dataplane) -> list[int]:
    return sorted(dp.counters())


def test_apply_installs_replaces_and_removes_by_criteria_id(dp: Dataplane) -> None:
    dp.apply([crit(1), crit(2), crit(3)], ())
    assert installed(dp) == [1, 2, 3]
    dp.apply([dataclasses.replace(crit(2), timeouts=Timeouts(packets=99)), crit(4)], [1, 7])
    assert installed(dp) == [2, 3, 4]  # 7 was never installed: ignored
    dp.apply((), [2, 3, 4])
    assert installed(dp) == []


@pytest.mark.parametrize("refused", [
    crit(9, cd(ttl=0)),  # no socket can send with TTL 0
    crit(9, cd(47101), cd(47102), cd(47103)),  # more than two destinations
])  # fmt: skip
def test_a_refused_upsert_leaves_the_installed_table_unchanged(dp: Dataplane,
                                                               refused: Criterion) -> None:  # fmt: skip
    dp.apply([crit(1), crit(2)], ())
    with pytest.raises(ValueError):
        dp.apply([crit(3), refused], [1])
    assert installed(dp) == [1, 2]  # neither the removal nor the other upsert happened
    dp.apply([crit(3)], [1])  # the same delta without it goes in
    assert installed(dp) == [2, 3]


def test_a_destination_socket_that_cannot_open_leaves_the_table_unchanged(dp: Dataplane) -> None:
    dp.apply([crit(1)], ())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((RCV, 0))  # no SO_REUSEADDR: the copy socket cannot bind this port
        with pytest.raises(SendError):
            dp.apply([crit(2), crit(3, cd(taken.getsockname()[1]))], [1])
    assert installed(dp) == [1]


def test_installing_and_removing_one_id_at_once_is_refused(dp: Dataplane) -> None:
    dp.apply([crit(1)], ())
    with pytest.raises(ValueError):
        dp.apply([crit(1), crit(2)], [1])
    assert installed(dp) == [1]


def test_a_change_no_worker_sees_needs_no_worker(dp: Dataplane) -> None:
    """A REFRESH of Timeout-Total: the match, destinations and limits stay, so neither the
    pre-filter nor a worker hears of it (at 10,000 criteria a REFRESH * was 4.6 s of worker
    traffic), but the table holds the new criterion."""
    dp.apply([crit(1)], ())
    refreshed = dataclasses.replace(crit(1), timeouts=Timeouts(packets=1, total=60))
    assert dp._moot(refreshed)
    assert not dp._moot(dataclasses.replace(crit(1), timeouts=Timeouts(packets=5)))
    assert not dp._moot(crit(1, cd(47101)))
    dp.apply([refreshed], ())
    assert dp._criteria[1] == refreshed and installed(dp) == [1]


def test_counters_are_read_at_one_instant(dp: Dataplane) -> None:
    dp.apply([crit(1), crit(2)], ())
    slab = dp._slab
    assert slab is not None
    frozen = dp.counters()
    slab.words[slab.record(0, dp._slots[2]) + PACKETS] += 7  # a worker counts meanwhile
    assert frozen[2].packets == 0 and dp.counters()[2].packets == 7
    assert sorted(frozen) == [1, 2] and len(frozen) == 2
