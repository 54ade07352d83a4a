"""The eBPF kernel pre-filter (dataplane/prefilter.py): cost of one criteria change at scale,
program size, trie memory, and the program's cost per packet.

Figures printed:
  add / remove       wall time of Prefilter.add() and .remove() (Python bookkeeping plus one
                     bpf() call per trie element that changes), with N criteria filed
  memory             what the kernel charges for the four tries (fdinfo memlock)
  per packet         BPF_PROG_TEST_RUN mean ns per run of the loaded program on one frame
                     (JIT on; the run also pays the test harness's skb setup, not counted in the
                     figure, so this is the program alone, as on the forwarding CPU)

Criteria are a mix of what DTCP adds: 70 % IPv4 hosts, 15 % IPv4 prefixes /20-/30, 5 % IPv4
ranges, 10 % IPv6 hosts; addresses random in 10.0.0.0/8 and 2001:db8::/32, so some share
trie elements (reference counts).

Usage: sudo .venv/bin/python bench/prefilter.py [--criteria N] [--json FILE]
Needs root (bpf()); creates no interfaces; about 10 s for 100,000 criteria.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import statistics
import struct
import time

from flowtap.dataplane import bpf_syscall
from flowtap.dataplane.prefilter import Prefilter
from flowtap.intercept.criteria import AddressFilter, Match, Span

NET4, NET6 = int(ipaddress.ip_address("10.0.0.0")), int(ipaddress.ip_address("2001:db8::"))


def criterion(rng: random.Random) -> Match:
    roll = rng.random()
    if roll < 0.70:
        a = NET4 + rng.randrange(1 << 24)
        return Match(dest_address=AddressFilter(4, (Span(a, a),)))
    if roll < 0.85:
        length = rng.randint(20, 30)
        size = 1 << (32 - length)
        lo = NET4 + rng.randrange(1 << 24) // size * size
        return Match(dest_address=AddressFilter(4, (Span(lo, lo + size - 1),)))
    if roll < 0.90:
        lo = NET4 + rng.randrange(1 << 24)
        return Match(source_address=AddressFilter(4, (Span(lo, lo + rng.randint(2, 40)),)))
    a = NET6 + rng.randrange(1 << 96)
    return Match(dest_address=AddressFilter(6, (Span(a, a),)))


def frame(src: str, dst: str, dst_mac: bytes = bytes(6)) -> bytes:
    """An Ethernet + IPv4/IPv6 + UDP frame for BPF_PROG_TEST_RUN (all-zero MAC: PACKET_HOST)."""
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    udp = struct.pack("!HHHH", 1000, 2000, 26, 0) + bytes(18)
    if len(d) == 16:
        ip = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + s + d
        return dst_mac + bytes(6) + b"\x86\xdd" + ip + udp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, s, d)
    return dst_mac + bytes(6) + b"\x08\x00" + ip + udp


def timed(fn: object, *args: object) -> float:
    t = time.perf_counter_ns()
    fn(*args)  # type: ignore[operator]
    return (time.perf_counter_ns() - t) / 1000


def summary(us: list[float]) -> dict[str, float]:
    us = sorted(us)
    return {"mean": round(statistics.fmean(us), 1), "p50": round(us[len(us) // 2], 1),
            "p99": round(us[int(len(us) * 0.99)], 1), "max": round(us[-1], 1)}


def per_packet(pf: Prefilter) -> dict[str, tuple[int, int]]:
    cases = {
        "v4 miss (2 lookups)": frame("192.0.2.1", "192.0.2.2"),
        "v4 dst hit (1 lookup)": frame("192.0.2.1", "10.0.0.0"),
        "v6 miss (2 lookups)": frame("2001:db9::1", "2001:db9::2"),
        "other host (no lookup)": frame("192.0.2.1", "192.0.2.2", b"\x02" + bytes(5)),
    }
    return {name: bpf_syscall.prog_test_run(pf.program_fd, f, 1_000_000)
            for name, f in cases.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--criteria", type=int, default=100_000)
    ap.add_argument("--churn", type=int, default=10_000, help="add+remove pairs at full load")
    ap.add_argument("--json")
    args = ap.parse_args()
    rng = random.Random(15)
    pf = Prefilter()
    out: dict[str, object] = {"program_slots": pf.program_length, "criteria": args.criteria}
    out["per_packet_empty"] = per_packet(pf)
    # always file something at 10.0.0.0 so the "hit" case hits
    pf.add(-1, Match(dest_address=AddressFilter(4, (Span(NET4, NET4),))), {4, 6})
    fill = [timed(pf.add, k, criterion(rng), {4, 6}) for k in range(args.criteria)]
    out["fill_add_us"] = summary(fill)
    out["entries"] = pf.entries()
    out["memlock_bytes"] = pf.memory()
    churn = [criterion(rng) for _ in range(args.churn)]
    adds, removes = [], []
    for i, m in enumerate(churn):
        adds.append(timed(pf.add, args.criteria + i, m, {4, 6}))
        removes.append(timed(pf.remove, args.criteria + i))
    out["add_us_at_full"] = summary(adds)
    out["remove_us_at_full"] = summary(removes)
    out["per_packet_full"] = per_packet(pf)
    drain = [timed(pf.remove, k) for k in range(args.criteria)]
    out["drain_remove_us"] = summary(drain)
    pf.close()

    print(f"eBPF pre-filter: program {out['program_slots']} slots; "
          f"{args.criteria:,} criteria -> {out['entries']:,} trie elements, "
          f"memlock {out['memlock_bytes']:,} bytes")
    for name in ("fill_add_us", "add_us_at_full", "remove_us_at_full", "drain_remove_us"):
        print(f"  {name:18s} {out[name]}")
    print("  per packet (retval, ns/run): empty tries | full tries")
    empty, full = out["per_packet_empty"], out["per_packet_full"]
    assert isinstance(empty, dict) and isinstance(full, dict)
    for case in empty:
        print(f"    {case:24s} {empty[case]} | {full[case]}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
