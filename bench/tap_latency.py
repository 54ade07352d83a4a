"""How soon a tap is on after its ADD's 200 OK, and off after its DELETE's (issue 15).

The rig of ``tests/integration/test_live_on_200.py`` (``tests/integration/live_support.py``): a
real flowtapd in a router namespace capturing its ingress, a stamped 5,000 pps UDP stream
crossing it (half to the target, half to a bystander), md1 ADDing a criterion for the target,
holding it, DELETEing it, ``--trials`` times per scenario; md2 (another agency) installs
criteria matching nothing in the stream, in bulk with pipelined ADDs, or floods ADD/DELETE.
Scenarios: the tap alone; the tap alone during md2's ``--flood`` ADD/s (each DELETEd again);
10,000 installed; 100,000 installed (not with ``--quick``). Per scenario:

  first copy   ADD 200 OK -> first copy received of a packet sent after it (p50/p99/max, ms)
  last copy    DELETE 200 OK -> last copy received (negative: the copies stopped before it)
  blind        packets of the target sent > 1 ms after an ADD's 200 OK (before its DELETE)
               that got no copy; how many of them in the 10 ms before the DELETE was sent
  late         copies of packets sent > 1 ms after a DELETE's 200 OK

and writes the CDF of both latencies per scenario (``--png``, default bench/tap_latency.png).
ADD/s on one session at 10,000 installed is ``bench/dtcp_add.py``'s (run_all runs both).
No figure is asserted.

    .venv/bin/python bench/tap_latency.py [--quick] [--trials 40] [--flood 2000] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.dtcp_support import numbered_add_fields
from tests.integration.live_support import TAPPED_FLOWS, LiveRig, cycles, flood

from flowtap.tools.dtcp_client import AsyncDtcpClient
from flowtap.tools.netns import unique_prefix
from flowtap.tools.stamped import Verdict, judge

BENCH = Path(__file__).resolve().parent
RATE = 5000.0
HOLD, PAUSE = 0.1, 0.1
ALONE = "1 criterion (the tap alone)"
FIRST_COPY_TARGETS = {"10,000 installed": "p99 <= 10, max <= 50",
                      "100,000 installed": "p99 <= 20", "flood": "p99 <= 20"}


@dataclass
class Scenario:
    label: str
    installed: int  # criteria of md2 installed beforehand (the tap is one more)
    flood_adds_per_s: float = 0.0
    verdict: Verdict | None = None
    stream_pps: float = 0.0
    flood_achieved: float = 0.0
    install_add_per_s: float = 0.0


async def install(client: AsyncDtcpClient, first: int, count: int, window: int = 64) -> float:
    """ADD criteria ``first`` .. ``first + count - 1`` (matching nothing in the stream),
    ``window`` in flight; returns ADD/s."""
    started = time.perf_counter()
    sent = min(window, count)
    client.process.stdin.write(b"".join(client.build("ADD", numbered_add_fields(first + i))
                                        for i in range(sent)))  # fmt: skip
    for _ in range(count):
        (reply,) = await client.read(1, timeout=120)
        assert reply.status == 200, reply.raw
        if sent < count:
            client.process.stdin.write(client.build("ADD", numbered_add_fields(first + sent)))
            sent += 1
    return count / (time.perf_counter() - started) if count else 0.0


async def measure(rig: LiveRig, scenarios: list[Scenario], trials: int, settle: float) -> None:
    md1, md2 = await rig.client("md1"), await rig.client("md2")
    installed = 0
    try:
        for s in scenarios:
            if s.installed > installed:
                s.install_add_per_s = await install(md2, installed, s.installed - installed)
                installed = s.installed
                await asyncio.sleep(settle)  # today's publisher installs after the 200 OK
            print(f"-- {s.label}", flush=True)
            tap = rig.stream(RATE)
            stop = asyncio.Event()
            flooding = (asyncio.create_task(flood(md2, stop, s.flood_adds_per_s))
                        if s.flood_adds_per_s else None)  # fmt: skip
            try:
                await asyncio.sleep(0.3)
                done = await cycles(md1, trials, HOLD, PAUSE)
            finally:
                stop.set()
                sent, copies, summary = await asyncio.to_thread(tap.stop)
                flooded = await flooding if flooding else None
            s.verdict = judge(sent, copies, done, TAPPED_FLOWS)
            s.stream_pps = summary["pps"]
            s.flood_achieved = flooded.adds_per_s if flooded else 0.0
            print(f"   {s.verdict.summary()}", flush=True)
    finally:
        await md1.close()
        await md2.close()


def ms(values: list[int | None]) -> list[float]:
    return sorted(v / 1e6 for v in values if v is not None)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank; nan when there is nothing."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1)]


def spread(values: list[float]) -> str:
    """p50 / p99 / max; a trial without any copy counts as infinitely late ("none")."""
    return " / ".join(f"{p:.1f}" if math.isfinite(p) else "none"
                      for p in (percentile(values, q) for q in (0.5, 0.99, 1.0)))


def rows(scenarios: list[Scenario]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for s in scenarios:
        v = s.verdict
        assert v is not None
        first, last = ms(v.first_copy_ns), ms(v.last_copy_ns)
        no_copy = len(v.first_copy_ns) - len(first)
        first_or_never = [*first, *[math.inf] * no_copy]
        key = "flood" if s.flood_adds_per_s else s.label
        out += [
            {"metric": f"{s.label}: ADD 200 OK -> first copy p50/p99/max ms "
                       f"({len(v.first_copy_ns)} trials"
                       f"{f', {no_copy} without a copy' if no_copy else ''})",
             "value": spread(first_or_never), "target": FIRST_COPY_TARGETS.get(key, "")},
            {"metric": f"{s.label}: DELETE 200 OK -> last copy p50/p99/max ms",
             "value": spread(last), "target": "p99 <= 10"},
            {"metric": f"{s.label}: blind packets (of {v.should_copy:,} that must be copied)",
             "value": f"{v.blind:,} ({v.blind_before_delete:,} in the 10 ms before a DELETE)",
             "target": "0"},
            {"metric": f"{s.label}: late copies", "value": f"{v.late:,}", "target": "0"},
        ]
        if s.flood_adds_per_s:
            out.append({"metric": f"{s.label}: flood achieved, ADD/s (each also DELETEd)",
                        "value": f"{s.flood_achieved:,.0f}"})
        if s.install_add_per_s:
            out.append({"metric": f"{s.label}: bulk install, pipelined ADD/s",
                        "value": f"{s.install_add_per_s:,.0f}"})
    return out


def figures_of(s: Scenario) -> dict[str, object]:
    """One scenario's figures as JSON values (a first-copy percentile that falls on a trial
    without any copy: null)."""
    v = s.verdict
    assert v is not None
    out: dict[str, object] = {}
    for name, values in (("first_copy", v.first_copy_ns), ("last_copy", v.last_copy_ns)):
        got = ms(values)
        if name == "first_copy":  # no copy at all: the tap never came on (a cycle without
            got += [math.inf] * (len(values) - len(got))  # any copy has no last copy either)
        for q, tag in ((0.5, "p50"), (0.99, "p99"), (1.0, "max")):
            p = percentile(got, q)
            out[f"{name}_{tag}_ms"] = round(p, 2) if math.isfinite(p) else None
    out.update(trials=len(v.first_copy_ns),
               trials_without_copy=sum(1 for x in v.first_copy_ns if x is None),
               blind=v.blind, blind_before_delete=v.blind_before_delete,
               must_copy=v.should_copy, late=v.late,
               stream_pps=round(s.stream_pps), flood_add_per_s=round(s.flood_achieved),
               first_copy_ms=ms(v.first_copy_ns), last_copy_ms=ms(v.last_copy_ns))
    return out


def plot(scenarios: list[Scenario], png: Path) -> None:
    matplotlib.use("Agg")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, attr, title in ((axes[0], "first_copy_ns", "ADD 200 OK -> first copy"),
                            (axes[1], "last_copy_ns", "DELETE 200 OK -> last copy")):
        for s in scenarios:
            values = ms(getattr(s.verdict, attr))
            if values:
                ax.step(values, [(i + 1) / len(values) for i in range(len(values))],
                        where="post", label=s.label)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.axvline(10, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("ms (symlog)")
        ax.set_ylabel("fraction of trials")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("flowtap: when a tap is on and off (veth netns, 5,000 pps stamped stream)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 trials, no 100,000 scenario")
    parser.add_argument("--trials", type=int, default=None, help="cycles per scenario (40)")
    parser.add_argument("--flood", type=float, default=2000.0, help="md2's ADD/s in the flood")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds after a bulk install before measuring")
    parser.add_argument("--workers", type=int, default=None,
                        help="services flow-tap capture-workers (default: one per CPU)")
    parser.add_argument("--png", type=Path, default=BENCH / "tap_latency.png")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    trials = args.trials or (20 if args.quick else 40)
    scenarios = [Scenario(ALONE, 0),
                 Scenario(f"{ALONE}, flood of {args.flood:,.0f} ADD/s", 0, args.flood),
                 Scenario("10,000 installed", 10_000)]
    if not args.quick:
        scenarios.append(Scenario("100,000 installed", 100_000))
    limit = max(s.installed for s in scenarios) + 50_000  # the flood's criteria come and go
    with tempfile.TemporaryDirectory() as tmp, LiveRig(
            Path(tmp), unique_prefix("tlat"), max_criteria=limit,
            workers=args.workers) as rig:  # fmt: skip
        asyncio.run(measure(rig, scenarios, trials, args.settle))
    plot([s for s in scenarios if not s.flood_adds_per_s] + [s for s in scenarios
                                                             if s.flood_adds_per_s], args.png)
    table = rows(scenarios)
    print(f"Tap latency benchmark: {trials} trials per scenario, stream {RATE:,.0f} pps")
    for row in table:
        print(f"  {row['metric']:78} {row['value']}")
    figures = {s.label: figures_of(s) for s in scenarios}
    print(json.dumps({label: {k: v for k, v in f.items() if not isinstance(v, list)}
                      for label, f in figures.items()}))
    if args.json:
        args.json.write_text(json.dumps({
            "title": f"Tap on/off after the 200 OK (bench/tap_latency.py, {trials} trials each)",
            "rows": table, "images": [str(args.png.relative_to(BENCH))
                                      if args.png.is_relative_to(BENCH) else str(args.png)],
            "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
