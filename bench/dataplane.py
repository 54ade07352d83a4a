"""Dataplane benchmark: builds its own namespaces, prints the DATAPLANE.md metrics in one run.

Metrics (shared/spec/DATAPLANE.md):
  forwarding           rcv0 rx pps with the generator flat out (CPU0), no tap
  forwarding kept      forwarding with the tap running / without it (same run)
  intercept rate       highest paced rate at which every packet is forwarded AND every copy
                       delivered (med0 rx == sent == rcv0 rx), by bisection
  criteria scaling     intercept rate with 10,000 criteria / with 1
  tcpdump reference    libpcap capture of the same flow on rin, with the same generator

The generator (flowtap.dataplane.traffic, a separate process) is pinned to CPU0 with the
router's softirq work; the tap (capture thread) and tcpdump are pinned to CPU1.
Usage: sudo .venv/bin/python bench/dataplane.py [--quick]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

from flowtap.criteria import AddressFilter, ContentDestination, Criterion, Match, Span, ValueFilter
from flowtap.dataplane import CaptureInterface, Dataplane, ffi
from flowtap.dataplane.netns import Topology, unique_prefix

SND, DST = "198.18.1.2", "198.19.0.1"
CD = ContentDestination("cd", "198.18.3.2", 47000, "198.18.99.1", 5555, 64)
IFACES = [CaptureInterface("ge-0/0/0", "rin"), CaptureInterface("ge-0/0/1", "rout"),
          CaptureInterface("ge-0/0/2", "rmed")]


def criterion(cid: int, dst: int, dport: int = 20000) -> Criterion:
    m = Match(dest_address=AddressFilter(4, (Span(dst, dst),)),
              protocol=ValueFilter((Span(17, 17),)), dest_port=ValueFilter((Span(dport, dport),)))
    return Criterion(cid, "bench", m, (CD,))


def many_criteria(n: int) -> list[Criterion]:
    """The matching one plus n-1 others on random hosts of 10.0.0.0/8 and random ports."""
    rng = random.Random(7)
    hosts = rng.sample(range(int(ipaddress.ip_address("10.0.0.0")),
                             int(ipaddress.ip_address("10.255.255.255"))), n - 1)
    return [criterion(1, int(ipaddress.ip_address(DST)))] + [
        criterion(i + 2, h, rng.randint(1, 65535)) for i, h in enumerate(hosts)]


class Bench:
    def __init__(self, topo: Topology, seconds: float) -> None:
        self.t = topo
        self.seconds = seconds

    def counters(self) -> tuple[int, int, int]:
        return (self.t.link_stats("snd", "snd0")["tx_packets"],
                self.t.link_stats("rcv", "rcv0")["rx_packets"],
                self.t.link_stats("med", "med0")["rx_packets"])

    def traffic(self, size: int, rate: float, seconds: float,
                dport: int = 20000) -> dict[str, float]:
        count = int((rate or 900_000) * seconds)
        before = self.counters()
        out = subprocess.run(
            ["ip", "netns", "exec", self.t.ns("snd"), sys.executable, "-m",
             "flowtap.dataplane.traffic", "--dev", "snd0", "--dst-mac", self.t.mac(1, 1),
             "--src", SND, "--dst", DST, "--dport", str(dport), "--size", str(size),
             "--count", str(count), "--rate", str(rate), "--cpu", "0"],
            capture_output=True, text=True, check=True).stdout
        secs = json.loads(out)["seconds"]
        time.sleep(0.3)  # let the ring retire its last block and the copies land
        after = self.counters()
        sent, fwd, dlv = (a - b for a, b in zip(after, before, strict=True))
        return {"sent": sent, "forwarded": fwd, "delivered": dlv, "seconds": secs,
                "offered_pps": sent / secs, "fwd_pps": fwd / secs, "dlv_pps": dlv / secs}

    def saturate(self, size: int, dport: int = 20000) -> dict[str, float]:
        return self.traffic(size, 0, self.seconds, dport)

    def lossless(self, size: int, hi: float, copies: bool, steps: int = 6) -> float:
        lo, best = hi * 0.3, 0.0
        for _ in range(steps):
            rate = (lo + hi) / 2
            r = self.traffic(size, rate, min(self.seconds, 1.5))
            ok = r["forwarded"] == r["sent"] and (not copies or r["delivered"] == r["sent"])
            achieved = r["sent"] / r["seconds"]
            if ok:
                best, lo = max(best, achieved), rate
            else:
                hi = rate
        return best


def tcpdump(topo: Topology, bench: Bench, size: int, dport: int) -> dict[str, float]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", topo.ns("rtr"), "taskset", "-c", "1", "tcpdump", "-i", "rin",
         "-B", "4096", "-w", "/dev/null", "-n", "udp dst port 20000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    r = bench.saturate(size, dport)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=10)[1]
    stats = {ln.split(" ", 1)[1]: int(ln.split()[0])
             for ln in err.splitlines() if ln and ln.split()[0].isdigit()}
    r["captured"] = stats.get("packets captured", 0)
    r["kernel_drops"] = stats.get("packets dropped by kernel", 0)
    return r


def _rounded(x: object) -> object:
    if isinstance(x, float):
        return round(x, 3) if x < 10 else round(x)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    return x


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0, help="saturation run length")
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer bisection steps")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    if a.quick:
        a.seconds = 1.5
    topo = Topology(unique_prefix("ftdpb"), inet6=False).up()
    try:
        return run(topo, Bench(topo, a.seconds), 4 if a.quick else 6)
    finally:
        topo.down()


def run(topo: Topology, b: Bench, steps: int) -> int:
    with ffi.netns(topo.ns("med")):  # a sink that never reads: no ICMP errors back
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("0.0.0.0", 47000))
    res: dict[str, object] = {}
    base64, base1400 = b.saturate(46), b.saturate(1400)
    res["forwarding_no_tap_pps"] = {"64B": base64["fwd_pps"], "1414B": base1400["fwd_pps"],
                                    "generator_offered_64B": base64["offered_pps"]}
    nomatch = b.lossless(46, base64["offered_pps"], copies=False, steps=steps)
    res["forwarding_no_tap_lossless_pps"] = nomatch

    def with_tap(criteria: list[Criterion]) -> Dataplane:
        dp = Dataplane(cpu=1)
        with ffi.netns(topo.ns("rtr")):
            dp.start(IFACES, inet6=False)
            dp.set_criteria(criteria)
        time.sleep(0.2)
        return dp

    dp = with_tap([criterion(1, int(ipaddress.ip_address(DST)), dport=30000)])  # not matching
    nm = b.saturate(46)
    res["tap_1crit_no_match"] = {"fwd_pps": nm["fwd_pps"],
                                 "forwarding_kept": nm["fwd_pps"] / base64["fwd_pps"],
                                 "bpf": dp.filters["ge-0/0/0.0"].kind}
    dp.set_criteria([criterion(1, int(ipaddress.ip_address(DST)))])  # all matching
    am = b.saturate(46)
    res["tap_1crit_all_match_saturated"] = {
        "fwd_pps": am["fwd_pps"], "dlv_pps": am["dlv_pps"],
        "forwarding_kept": am["fwd_pps"] / base64["fwd_pps"],
        "kernel_drops": dp.kernel_drops()}
    rates: dict[str, float] = {}
    for size, label in ((46, "64B"), (1400, "1414B")):
        rates[f"1crit_{label}"] = b.lossless(size, base64["offered_pps"], True, steps)
    dp.stop()
    dp = with_tap(many_criteria(10_000))
    res["bpf_10k"] = {"kind": dp.filters["ge-0/0/0.0"].kind,
                      "insns": len(dp.filters["ge-0/0/0.0"])}
    for size, label in ((46, "64B"), (1400, "1414B")):
        rates[f"10kcrit_{label}"] = b.lossless(size, base64["offered_pps"], True, steps)
    nm10 = b.saturate(46, dport=30000)
    res["tap_10kcrit_no_match_forwarding_kept"] = nm10["fwd_pps"] / base64["fwd_pps"]
    dp.stop()
    res["intercept_lossless_pps"] = rates
    res["ratios"] = {
        "intercept_64B_1crit / no-tap forwarding (target >= 0.95)":
            rates["1crit_64B"] / base64["fwd_pps"],
        "intercept_64B_1crit / no-tap lossless forwarding": rates["1crit_64B"] / nomatch,
        "forwarding kept, no traffic matching (target >= 0.98)":
            res["tap_1crit_no_match"]["forwarding_kept"],  # type: ignore[index]
        "10k / 1 criterion at 64B (target >= 0.95)": rates["10kcrit_64B"] / rates["1crit_64B"],
        "10k / 1 criterion at 1414B": rates["10kcrit_1414B"] / rates["1crit_1414B"],
    }
    td_match = tcpdump(topo, b, 46, 20000)
    td_none = tcpdump(topo, b, 46, 30000)
    res["tcpdump_reference"] = {
        "captured": td_match["captured"], "kernel_drops": td_match["kernel_drops"],
        "offered": td_match["sent"],
        "fwd_kept_all_matching": td_match["fwd_pps"] / base64["fwd_pps"],
        "fwd_kept_no_match": td_none["fwd_pps"] / base64["fwd_pps"]}
    sink.close()
    print(json.dumps(_rounded(res), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
