"""The reference model of test_tap_consistency judges right: a faithful run is clean, and each
kind of divergence (missing, late, early, duplicate, unmatched, wrong agency, unknown, over a
packet limit) is counted. Pure, no namespaces."""

from __future__ import annotations

from tests.integration.tap_model import MARGIN_NS, Tap, Traffic, judge

FLOWS = 2
MS = 1_000_000


def traffic(packets: int = 40) -> Traffic:
    """Packet seq sent in [seq ms, seq ms + 0.1 ms]; flow = seq % 2."""
    t0 = [seq * MS for seq in range(packets)]
    return Traffic(t0, [t + MS // 10 for t in t0], FLOWS)


def tap(**kw: object) -> Tap:
    base: dict[str, object] = {"agency": 0, "source_port": 30000, "flows": frozenset({0}),
                               "add_sent": 10 * MS, "add_ok": 12 * MS, "criteria_id": 1,
                               "end_start": 30 * MS, "end_done": 32 * MS}
    base.update(kw)
    return Tap(**base)  # type: ignore[arg-type]


def faithful(t: Tap, tr: Traffic, port: int = 30000) -> list[tuple[int, int, int]]:
    """Copies of every even packet sent while the tap was definitely live."""
    assert t.add_ok is not None and t.end_start is not None
    return [(t.agency, port, seq) for seq in range(0, 40, 2)
            if tr.t0[0][seq // 2] > t.add_ok + MARGIN_NS and tr.t1[0][seq // 2] < t.end_start]


def test_a_faithful_run_is_clean() -> None:
    tr, t = traffic(), tap()
    v = judge(tr, [t], faithful(t, tr))
    assert v.divergences == 0 and v.copies == 8 and v.checked > 8


def test_ambiguous_packets_may_or_may_not_be_copied() -> None:
    tr, t = traffic(), tap()
    v = judge(tr, [t], [*faithful(t, tr), (0, 30000, 12), (0, 30000, 30)])
    assert v.divergences == 0


def test_each_divergence_is_counted() -> None:
    tr, t = traffic(), tap()
    good = faithful(t, tr)
    assert judge(tr, [t], good[1:]).missing == 1
    assert judge(tr, [t], [*good, (0, 30000, 36)]).extra == 1  # after the DELETE's OK + 1 ms
    assert judge(tr, [t], [*good, (0, 30000, 8)]).extra == 1  # before the ADD was sent
    assert judge(tr, [t], [*good, good[0]]).extra == 1  # a second copy
    assert judge(tr, [t], [*good, (0, 30000, 15)]).extra == 1  # flow 1: not matched
    assert judge(tr, [t], [*good, (1, 30000, 16)]).wrong_agency == 1
    assert judge(tr, [t], [*good, (0, 31000, 16)]).unattributed == 1
    refused = tap(add_ok=None)
    assert judge(tr, [refused], [(0, 30000, 20)]).extra == 1


def test_a_packet_limit_allows_that_many_copies_of_the_first_live_packets() -> None:
    tr = traffic()
    t = tap(end_start=None, end_done=None, packet_limit=3)
    first = [(0, 30000, s) for s in (14, 16, 18)]  # the first live packets of flow 0
    assert judge(tr, [t], first).divergences == 0
    assert judge(tr, [t], [(0, 30000, 12), (0, 30000, 14), (0, 30000, 16)]).divergences == 0
    assert judge(tr, [t], [*first, (0, 30000, 20)]).over_limit == 1
    skipped = judge(tr, [t], [(0, 30000, s) for s in (14, 18, 20)])
    assert (skipped.missing, skipped.over_limit) == (1, 1)
    assert judge(tr, [t], first[:2]).missing == 1


def test_a_timer_end_forgives_packets_in_flight_when_it_fired() -> None:
    tr, timer = traffic(), tap(end_by_timer=True)
    good = [c for c in faithful(timer, tr) if c[2] != 28]  # sent 1.9 ms before it fired
    assert judge(tr, [timer], good).divergences == 0
    assert judge(tr, [timer], [c for c in good if c[2] != 26]).missing == 1  # 3.9 ms before
    assert judge(tr, [tap()], good).missing == 1  # a DELETE's end forgives nothing
