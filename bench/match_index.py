"""MatchIndex (dataplane/index.py) figures: one criterion in or out, lookups, memory.

For each installed count N and each criteria mix, fills an index with N criteria, then:

  add / remove    µs per change, N criteria installed: a new criterion added, then removed
                  again (so N stays put); median, p99 and max over --changes changes, and how
                  many garbage collections ran meanwhile
  rebuild         for comparison: building a whole MatchTable of the same N (what a change
                  costs on main)
  lookup          ns per lookup of a flow towards an installed host (in the mix, prefixes and
                  ranges over it match too) / towards no criterion; "cold": every flow new
                  (its source differs), as after a change invalidated the memo; "warm": one
                  flow whose answer is memoised. The same flows through a MatchTable of the
                  same criteria for comparison.
  memory          bytes the index allocates per criterion (tracemalloc; the Match objects
                  themselves belong to the criteria and are not counted)

Mixes: "hosts" (a destination host and port each); "mix" (IPv4 destination hosts 55 %,
destination prefixes /16-/30 15 %, destination ranges 10 %, source hosts or prefixes 10 %,
IPv6 destination hosts or /64s 10 %) plus 8 criteria with no positive address (filed under /0,
looked at by every lookup that misses the memo).

    .venv/bin/python bench/match_index.py [--counts 1000,10000,100000] [--changes 2000]

No figure is asserted. Runs in about a minute; single-threaded, pure Python.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.dataplane.reference_match import MatchTable  # the whole-table matcher main had

from flowtap.dataplane.index import MatchIndex
from flowtap.dataplane.packet import FlowKey
from flowtap.intercept.criteria import AddressFilter, Match, Span, ValueFilter

V4 = 0x0A000000  # 10.0.0.0
V6 = 0x20010DB8 << 96  # 2001:db8::
PORT = ValueFilter((Span(2000, 2000),))


def host_criterion(i: int) -> Match:
    return Match(dest_address=AddressFilter(4, (Span(V4 + i, V4 + i),)), dest_port=PORT)


def mixed_criterion(i: int, rng: random.Random) -> Match:
    r = rng.random()
    a = V4 + rng.randrange(1 << 24)
    if r < 0.55:
        return Match(dest_address=AddressFilter(4, (Span(a, a),)))
    if r < 0.70:
        host_bits = rng.randrange(2, 17)
        lo = a >> host_bits << host_bits
        return Match(dest_address=AddressFilter(4, (Span(lo, lo | ((1 << host_bits) - 1)),)))
    if r < 0.80:
        return Match(dest_address=AddressFilter(4, (Span(a, a + rng.randrange(1, 5000)),)),
                     protocol=ValueFilter((Span(17, 17),)))
    if r < 0.90:
        host_bits = rng.choice((0, 0, 8))
        lo = a >> host_bits << host_bits
        return Match(source_address=AddressFilter(4, (Span(lo, lo | ((1 << host_bits) - 1)),)))
    b = V6 + (rng.randrange(1 << 32) << 64)
    if rng.random() < 0.5:
        return Match(dest_address=AddressFilter(6, (Span(b + 1, b + 1),)))
    return Match(dest_address=AddressFilter(6, (Span(b, b + (1 << 64) - 1),)))


def criteria(kind: str, n: int) -> list[Match]:
    if kind == "hosts":
        return [host_criterion(i) for i in range(n)]
    rng = random.Random(n)
    wild = [Match(dest_port=ValueFilter((Span(p, p),)), protocol=ValueFilter((Span(6, 6),)))
            for p in range(8)]
    return wild + [mixed_criterion(i, rng) for i in range(n - len(wild))]


def filled(matches: list[Match]) -> MatchIndex[int]:
    index: MatchIndex[int] = MatchIndex(None, inet6=True)
    for key, m in enumerate(matches):
        index.add(key, m, key)
    return index


def whole_table(matches: list[Match]) -> MatchTable[int]:
    return MatchTable([(m, key) for key, m in enumerate(matches)], inet6=True)


def per_op_us(samples: list[int]) -> str:
    s = sorted(samples)
    return (f"median {s[len(s) // 2] / 1e3:7.2f}  p99 {s[len(s) * 99 // 100] / 1e3:7.2f}  "
            f"max {s[-1] / 1e3:8.2f}")


def changes(index: MatchIndex[int], extra: list[Match], base: int) -> tuple[list[int], list[int]]:
    adds, removes = [], []
    clock = time.perf_counter_ns
    for j, m in enumerate(extra):
        t0 = clock()
        index.add(base + j, m, base + j)
        t1 = clock()
        index.remove(base + j)
        t2 = clock()
        adds.append(t1 - t0)
        removes.append(t2 - t1)
    return adds, removes


def lookups(look: Callable[[int, FlowKey], object], hit: FlowKey, miss: FlowKey,
            repeat: int) -> dict[str, float]:
    """ns per lookup. Cold: every flow differs from all before it (by its source address, in
    198.18.0.0/15 where no criterion is filed), so none is memoised; warm: one flow again."""
    clock = time.perf_counter_ns
    out = {}
    for name, key in (("hit", hit), ("miss", miss)):
        flows: list[FlowKey] = [(0xC6120000 + i, *key[1:]) for i in range(repeat)]
        t0 = clock()
        for f in flows:
            look(4, f)
        out[f"{name} cold"] = (clock() - t0) / repeat
        t0 = clock()
        for _ in range(repeat):
            look(4, flows[0])
        out[f"{name} warm"] = (clock() - t0) / repeat
    return out


def memory_per_criterion(build: Callable[[], object], n: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del built
    return (after - before) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--counts", default="1000,10000,100000")
    ap.add_argument("--changes", type=int, default=2000)
    ap.add_argument("--lookups", type=int, default=200_000)
    args = ap.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load} (other processes on the machine stretch the max)")
    for kind in ("hosts", "mix"):
        for n in (int(c) for c in args.counts.split(",")):
            matches = criteria(kind, n)
            extra = criteria(kind, n + args.changes)[n:] if kind == "hosts" else \
                [mixed_criterion(j, random.Random(-n - j)) for j in range(args.changes)]
            t0 = time.perf_counter()
            index = filled(matches)
            fill_s = time.perf_counter() - t0
            collections = _gc_count()
            adds, removes = changes(index, extra, n)
            collections = _gc_count() - collections
            t0 = time.perf_counter()
            table = whole_table(matches)
            rebuild_ms = (time.perf_counter() - t0) * 1e3
            hit_address = V4 + 1 if kind == "hosts" else _an_installed_host(matches)
            hit: FlowKey = (0, hit_address, 17, 1234, 2000, -1, -1)
            miss: FlowKey = (0, 0xC6336401, 17, 1234, 2000, -1, -1)  # to 198.51.100.1
            figures = lookups(index.lookup, hit, miss, args.lookups)
            reference = lookups(table.lookup, hit, miss, args.lookups)
            per = memory_per_criterion(partial(filled, matches), n)
            per_table = memory_per_criterion(partial(whole_table, matches), n)
            print(f"{kind:5s} N={n:>7,}  fill {fill_s:6.2f} s  whole MatchTable rebuild "
                  f"{rebuild_ms:8.1f} ms  index {len(index):,} entries")
            print(f"        add    µs  {per_op_us(adds)}")
            print(f"        remove µs  {per_op_us(removes)}   gc collections meanwhile: "
                  f"{collections}")
            print("        lookup ns  " + "  ".join(f"{k} {v:6.0f}" for k, v in figures.items()))
            print("        MatchTable " + "  ".join(f"{k} {v:6.0f}" for k, v in reference.items()))
            print(f"        memory     {per:6.0f} B per criterion (MatchTable {per_table:.0f} B)")


def _gc_count() -> int:
    return sum(generation["collections"] for generation in gc.get_stats())


def _an_installed_host(matches: list[Match]) -> int:
    for m in matches:
        spans = m.dest_address.spans
        if m.dest_address.version == 4 and len(spans) == 1 and spans[0].lo == spans[0].hi:
            return spans[0].lo
    raise LookupError("no IPv4 host criterion in the mix")


if __name__ == "__main__":
    main()
