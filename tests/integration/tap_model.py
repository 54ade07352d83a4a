"""Reference model for the randomized tap-consistency test. Pure: times in, divergences out.

Every ADD gets its own outer UDP source port (``X-JTap-Cdest-Source-Port``), so each copy names
the criterion that made it (ENCAP.md: one copy per criterion and destination) and the agency
port it arrived at names the agency it reached.

For each criterion and each packet of a flow it matches, sent in ``[t0, t1]``:
- *before*: sent before the ADD request was written (t1 < ADD sent): no copy allowed;
- *live*: sent more than 1 ms after the ADD's 200 OK (t0 > OK + 1 ms) and before its end began
  (t1 < end start): exactly one copy;
- *after*: sent more than 1 ms after its end (t0 > end + 1 ms): no copy allowed;
- otherwise *ambiguous*: zero or one copy, not checked further.
An end is a DELETE (start: request sent, end: 200 OK) or a total timeout (start: the earliest
moment it could fire less ``TIMER_GRACE_NS``, end: its ``dtcp-remove`` audit record). The grace
is for packets in flight: a DELETE takes milliseconds to cross SSH, the audit log and the
workers, so a packet sent before it was written reaches the router first; a timer fires at the
router with no such lead, and a packet sent just before that instant but still on its way
(sender, veth, the router's softirq, on a machine the test keeps busy) is rightly not copied. A criterion with a packet limit
N matches one flow: at most N copies, and the first N - (copies of ambiguous packets) live
packets are the ones copied, with none after them.
A copy for a flow the criterion does not match is *extra*, as is a second copy of one packet.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

MARGIN_NS = 1_000_000  # the 1 ms grace after a 200 OK
TIMER_GRACE_NS = 2_000_000  # before a timer's end: in flight when it fired (module docstring)


@dataclass
class Tap:
    """One ADD as the test sent it and what became of it (times in monotonic ns)."""

    agency: int
    source_port: int  # unique per ADD: names the criterion in every copy
    flows: frozenset[int]  # indexes into stamped_flows.FLOWS that the criterion matches
    add_sent: int
    add_ok: int | None = None  # None: not answered 200, never live
    criteria_id: int | None = None
    end_start: int | None = None  # None: never ended while traffic ran
    end_done: int | None = None  # None together with end_start, or an end of unknown time
    packet_limit: int | None = None
    end_by_timer: bool = False  # end_start is a timer's earliest firing, not a request sent


@dataclass
class Verdict:
    checked: int = 0  # (criterion, packet) pairs with a definite expectation
    ambiguous: int = 0
    copies: int = 0
    missing: int = 0
    extra: int = 0
    wrong_agency: int = 0
    unattributed: int = 0
    over_limit: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def divergences(self) -> int:
        return (self.missing + self.extra + self.wrong_agency + self.unattributed
                + self.over_limit)

    def note(self, text: str) -> None:
        """Keep a few examples, at most two per criterion (the text starts with its name)."""
        same = sum(1 for e in self.examples if e.split(":", 1)[0] == text.split(":", 1)[0])
        if len(self.examples) < 20 and same < 2:
            self.examples.append(text)

    def summary(self) -> str:
        return (f"copies {self.copies}, checked {self.checked}, ambiguous {self.ambiguous}; "
                f"missing {self.missing}, extra {self.extra}, wrong agency "
                f"{self.wrong_agency}, unattributed {self.unattributed}, over limit "
                f"{self.over_limit}")


class Traffic:
    """Send times of every packet; packet ``seq`` belongs to flow ``seq % flows``."""

    def __init__(self, t0: Sequence[int], t1: Sequence[int], flows: int) -> None:
        self.flows = flows
        self.t0 = [list(t0[f::flows]) for f in range(flows)]
        self.t1 = [list(t1[f::flows]) for f in range(flows)]

    def seq(self, flow: int, k: int) -> int:
        return flow + k * self.flows

    def span(self, flow: int, after_t0: int | None, before_t1: int | None) -> range:
        """Indexes k of ``flow``'s packets with t0 > after_t0 and t1 < before_t1."""
        lo = 0 if after_t0 is None else bisect.bisect_right(self.t0[flow], after_t0)
        hi = (len(self.t1[flow]) if before_t1 is None
              else bisect.bisect_left(self.t1[flow], before_t1))
        return range(lo, max(lo, hi))


def judge(traffic: Traffic, taps: Iterable[Tap], copies: Iterable[tuple[int, int, int]]
          ) -> Verdict:  # fmt: skip
    """``copies``: (agency the copy reached, outer source port, inner seq)."""
    v = Verdict()
    by_port = {t.source_port: t for t in taps}
    got: dict[int, Counter[int]] = {p: Counter() for p in by_port}
    for agency, port, seq in copies:
        v.copies += 1
        tap = by_port.get(port)
        if tap is None:
            v.unattributed += 1
            v.note(f"copy of seq {seq} from unknown source port {port}")
        elif tap.agency != agency:
            v.wrong_agency += 1
            v.note(f"criterion of agency {tap.agency} copied seq {seq} to agency {agency}")
        else:
            got[port][seq] += 1
    for port, tap in by_port.items():
        _judge_tap(traffic, tap, got[port], v)
    return v


def _judge_tap(traffic: Traffic, tap: Tap, got: Counter[int], v: Verdict) -> None:
    name = f"agency {tap.agency} criterion {tap.criteria_id} (port {tap.source_port})"
    for seq, n in got.items():
        if n > 1:
            v.extra += n - 1
            v.note(f"{name}: {n} copies of seq {seq}")
        if seq % traffic.flows not in tap.flows:
            v.extra += 1
            v.note(f"{name}: copied seq {seq} of flow {seq % traffic.flows}, not matched")
    if tap.add_ok is None:
        for seq in got:
            if seq % traffic.flows in tap.flows:
                v.extra += 1
                v.note(f"{name}: copied seq {seq} though its ADD was refused")
        return
    if tap.packet_limit is not None:
        _judge_limited(traffic, tap, got, v, name)
        return
    for flow in tap.flows:
        n = len(traffic.t0[flow])
        before = range(0, bisect.bisect_left(traffic.t1[flow], tap.add_sent))
        live = traffic.span(flow, tap.add_ok + MARGIN_NS, _live_until(tap))
        after = (traffic.span(flow, tap.end_done + MARGIN_NS, None)
                 if tap.end_done is not None else range(n, n))
        for k in live:
            v.checked += 1
            if traffic.seq(flow, k) not in got:
                v.missing += 1
                v.note(f"{name}: no copy of seq {traffic.seq(flow, k)}, sent "
                       f"{_ms(traffic.t0[flow][k] - tap.add_ok)} after its ADD's 200 OK"
                       + ("" if tap.end_start is None else
                          f", {_ms(tap.end_start - traffic.t1[flow][k])} before its end"))
        for forbidden, when, ref in ((before, "before its ADD", tap.add_sent),
                                     (after, "after its end", tap.end_done)):
            for k in forbidden:
                v.checked += 1
                if traffic.seq(flow, k) in got:
                    assert ref is not None
                    v.extra += 1
                    v.note(f"{name}: copied seq {traffic.seq(flow, k)} sent {when} (by "
                           f"{_ms(abs(traffic.t0[flow][k] - ref))})")
        v.ambiguous += n - len(before) - len(live) - len(after)


def _live_until(tap: Tap) -> int | None:
    if tap.end_start is None or not tap.end_by_timer:
        return tap.end_start
    return tap.end_start - TIMER_GRACE_NS


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


def _judge_limited(traffic: Traffic, tap: Tap, got: Counter[int], v: Verdict, name: str
                   ) -> None:  # fmt: skip
    assert tap.add_ok is not None and tap.packet_limit is not None and len(tap.flows) == 1
    (flow,) = tap.flows
    seqs = {traffic.seq(flow, k) for k in range(len(traffic.t0[flow]))}
    before = {traffic.seq(flow, k)
              for k in range(bisect.bisect_left(traffic.t1[flow], tap.add_sent))}
    live = [traffic.seq(flow, k) for k in traffic.span(flow, tap.add_ok + MARGIN_NS, None)]
    mine = {s for s in got if s in seqs}
    for seq in sorted(mine & before):
        v.extra += 1
        v.note(f"{name}: copied seq {seq} sent before its ADD")
    ambiguous_copies = len(mine - before - set(live))
    owed = live[:max(0, tap.packet_limit - ambiguous_copies)]
    v.checked += len(live)
    v.ambiguous += len(seqs) - len(before) - len(live)
    for seq in owed:
        if seq not in mine:
            v.missing += 1
            v.note(f"{name}: no copy of seq {seq} (within its packet limit {tap.packet_limit};"
                   f" {len(mine)} copies, {ambiguous_copies} of ambiguous packets, first"
                   f" live {live[:3]}, copied {sorted(mine)[:12]})")
    past = sorted(mine & (set(live) - set(owed)))
    v.over_limit += len(past) + max(0, ambiguous_copies - tap.packet_limit)
    if past or ambiguous_copies > tap.packet_limit:
        v.note(f"{name}: {len(mine)} copies for a limit of {tap.packet_limit}, "
               f"{len(past)} past the packets it owed")
