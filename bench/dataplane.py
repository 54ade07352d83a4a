"""Dataplane benchmark: builds its own namespaces, reports the DATAPLANE.md metrics in one run.

Generators (both run in the sender namespace, pinned to CPU0 with the router's softirq work,
the "NIC + forwarding core"; the tap's capture thread and tcpdump are pinned to CPU1):
  trafgen   (Debian netsniff-ng) PACKET_MMAP TX ring at full rate: every saturation figure.
  pacer     a small C program compiled here with gcc: smooth AF_PACKET sendmmsg (batches of 8,
            busy-wait pacing, qdisc bypass). trafgen's own rate limiter sends one line-rate
            burst per second (DATAPLANE.md §1), so every lossless figure uses the pacer.

Metrics (shared/spec/DATAPLANE.md):
  forwarding           rcv0 rx pps over a window while trafgen saturates CPU0, no tap
  forwarding kept      forwarding with the tap running / without it; runs alternate
                       (no tap, tap, no tap, tap ...) and the median of the pair ratios is shown
  intercept rate       highest paced rate at which every packet is forwarded AND every copy
                       delivered (med0 rx == rcv0 rx == sent), by bisection with the pacer
  criteria scaling     intercept rate with --many (100,000) criteria / with 1; the engine is
                       driven in-process, so no DTCP criteria limit applies
  tcpdump reference    tcpdump (libpcap) on rin with the same criterion as a BPF expression:
                       captured / kernel drops while trafgen saturates, and forwarding kept
  rate sweep           the report's picture: paced 64 B traffic, all matching, at 0.25x to 2x
                       the no-tap saturation rate and then the pacer flat out, past every
                       knee: forwarded with no tap / flowtap / tcpdump, copies delivered by
                       flowtap and packets captured by tcpdump (one tcpdump per point)

"No traffic matching" sends to 198.19.0.2 while the criterion taps 198.19.0.1 (another
subscriber behind the same router). The content destination (med0) counts every copy at the
veth and then drops it as PACKET_OTHERHOST (its MAC is changed after the router's static
neighbour entry was made), so the copies cost the receiving CPU next to nothing, as the
DATAPLANE.md harness arranged with an nft drop.

Usage: sudo .venv/bin/python bench/dataplane.py [--quick] [--workers N] [--many N] [--json FILE]
``--workers N`` is ``services flow-tap capture-workers N``: handed to the engine when it takes
it (see ``engine_options``), ignored (and reported so) by a single-threaded engine.
Bounded: about 10 minutes (579 and 693 s measured on a busy machine; --sweep-only under 2)
plus at most --max-wait seconds spent waiting for other processes to go idle (a run during
which they used more than 15 % of a CPU is redone, twice at most and only within that budget;
the table counts both); namespaces and processes are always cleaned up.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import ipaddress
import json
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flowtap.dataplane import CaptureInterface, Dataplane, ffi
from flowtap.dataplane.bpf import drop_all
from flowtap.dataplane.ring import Ring
from flowtap.intercept.criteria import (
    AddressFilter,
    ContentDestination,
    Criterion,
    Match,
    Span,
    ValueFilter,
)
from flowtap.tools.netns import Topology, unique_prefix
from flowtap.tools.traffic import udp_packet

SND, DST, OTHER = "198.18.1.2", "198.19.0.1", "198.19.0.2"
DPORT = 20000
CD = ContentDestination("cd", "198.18.3.2", 47000, "198.18.99.1", 5555, 64)
IFACES = [CaptureInterface("ge-0/0/0", "rin"), CaptureInterface("ge-0/0/1", "rout"),
          CaptureInterface("ge-0/0/2", "rmed")]
SIZES = {"64B": 46, "1414B": 1400}  # label (Ethernet frame w/o FCS + 4) -> IP packet size
TAP_CPU, GEN_CPU = 1, 0
FOREIGN_MAX = 0.15  # share of a CPU other processes may use during a run (DATAPLANE.md)

PACER_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#define MAX_BATCH 64
static double now(void) {
    struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
int main(int argc, char **argv) {
    if (argc != 5 && argc != 7) {
        fprintf(stderr, "usage: pacer DEV FRAMES RATE COUNT [BATCH SLEEP]\n"); return 2;
    }
    /* SLEEP 1: sleep instead of spinning while more than 200 us early, so that a CPU the
       pacer shares keeps its time */
    int batch = argc == 7 ? atoi(argv[5]) : 8, doze = argc == 7 && atoi(argv[6]);
    if (batch < 1 || batch > MAX_BATCH) return 2;
    double rate = atof(argv[3]);
    long count = atol(argv[4]);
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror("frames"); return 1; }
    static unsigned char buf[1 << 22];
    size_t size = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int n = 0; size_t pos = 0;
    struct iovec iov[4096];
    while (pos + 2 <= size && n < 4096) {
        unsigned len = buf[pos] | (buf[pos + 1] << 8);
        iov[n].iov_base = buf + pos + 2; iov[n].iov_len = len;
        pos += 2 + len; n++;
    }
    if (n == 0) return 1;
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    int one = 1, sndbuf = 4 << 20;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf);
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET; sll.sll_ifindex = if_nametoindex(argv[1]);
    if (!sll.sll_ifindex || bind(fd, (struct sockaddr *)&sll, sizeof sll)) {
        perror("bind"); return 1;
    }
    int total = n + MAX_BATCH;
    struct mmsghdr *vec = calloc(total, sizeof *vec);
    for (int i = 0; i < total; i++) {
        vec[i].msg_hdr.msg_iov = &iov[i % n]; vec[i].msg_hdr.msg_iovlen = 1;
    }
    long sent = 0, errors = 0;
    double t0 = now();
    while (sent < count) {
        if (rate > 0) {
            double due = t0 + sent / rate, early;
            while ((early = due - now()) > 0)
                if (doze && early > 2e-4) usleep((useconds_t)((early - 1e-4) * 1e6));
        }
        int k = count - sent < batch ? (int)(count - sent) : batch;
        int r = sendmmsg(fd, vec + sent % n, k, 0);
        if (r < 0) {
            if (errno == ENOBUFS || errno == EAGAIN) { errors++; continue; }
            perror("sendmmsg"); return 1;
        }
        sent += r;
    }
    printf("{\"sent\": %ld, \"seconds\": %.6f, \"retries\": %ld}\n", sent, now() - t0, errors);
    return 0;
}
"""


def criterion(cid: int, dst: int, dport: int = DPORT) -> Criterion:
    m = Match(dest_address=AddressFilter(4, (Span(dst, dst),)),
              protocol=ValueFilter((Span(17, 17),)), dest_port=ValueFilter((Span(dport, dport),)))
    return Criterion(cid, "bench", m, (CD,))


def one_criterion() -> list[Criterion]:
    return [criterion(1, int(ipaddress.ip_address(DST)))]


def many_criteria(n: int) -> list[Criterion]:
    """The matching one plus n-1 others on random hosts of 10.0.0.0/8 and random ports."""
    rng = random.Random(7)
    hosts = rng.sample(range(int(ipaddress.ip_address("10.0.0.0")),
                             int(ipaddress.ip_address("10.255.255.255"))), n - 1)
    return one_criterion() + [criterion(i + 2, h, rng.randint(1, 65535))
                              for i, h in enumerate(hosts)]


def frame(topo: Topology, size: int, dst: str) -> bytes:
    pkt = udp_packet(SND, dst, 10000, DPORT, size)
    return (bytes.fromhex(topo.mac(1, 1).replace(":", ""))
            + bytes.fromhex(topo.mac(1, 2).replace(":", "")) + b"\x08\x00" + pkt)


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGINT the process group of ``proc`` (started with a new session), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def foreign_jiffies() -> dict[int, int]:
    """CPU time (utime + stime, in clock ticks) of every user-space process that is not this
    bench or one of its children: other tenants' load, which spoils a measurement."""
    me = os.getpid()
    info: dict[int, tuple[int, int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[6]) & 0x00200000:  # PF_KTHREAD: softirq work is ours to measure
            continue
        info[int(d)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    out = {}
    for pid, (_ppid, ticks) in info.items():
        p, ours = pid, False
        while p in info and p > 1:
            if p == me:
                ours = True
                break
            p = info[p][0]
        if not ours:
            out[pid] = ticks
    return out


def steal() -> int:
    """Clock ticks the hypervisor gave to other guests (both CPUs)."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[8])


def foreign_cpu(before: dict[int, int], after: dict[int, int], seconds: float) -> float:
    """Share of one CPU that other processes used between two snapshots."""
    ticks = sum(t - before.get(pid, 0) for pid, t in after.items())
    return ticks / os.sysconf("SC_CLK_TCK") / seconds


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


class Bench:
    def __init__(self, topo: Topology, work: Path, seconds: float, trial: float,
                 max_wait: float = 0.0) -> None:
        self.t = topo
        self.work = work
        self.seconds = seconds
        self.trial = trial
        self.pacer = work / "pacer"
        src = work / "pacer.c"
        src.write_text(PACER_C)
        subprocess.run(["gcc", "-O2", "-o", str(self.pacer), str(src)], check=True)
        self.frames: dict[tuple[int, str], tuple[Path, Path]] = {}
        self.reruns = 0  # runs repeated because of other processes' load
        self.no_tap: list[float] = []  # every 64B no-tap forwarding figure of the run
        self.noisy = 0  # runs kept although others' load stayed above FOREIGN_MAX
        self.wait_deadline = time.monotonic() + max_wait
        self.dp_options: dict[str, Any] = {"cpu": TAP_CPU}  # Dataplane(...), see --workers
        self.many = 100_000  # criteria of the scaling figures

    def files(self, size: int, dst: str) -> tuple[Path, Path]:
        """(trafgen config, pacer frame file) for one frame."""
        if (size, dst) not in self.frames:
            f = frame(self.t, size, dst)
            cfg = self.work / f"tg-{size}-{dst}.cfg"
            cfg.write_text("{ " + ", ".join(f"0x{b:02x}" for b in f) + " }\n")
            raw = self.work / f"pc-{size}-{dst}.bin"
            raw.write_bytes(struct.pack("<H", len(f)) + f)
            self.frames[(size, dst)] = (cfg, raw)
        return self.frames[(size, dst)]

    def counters(self) -> tuple[int, int, int]:
        return (self.t.link_stats("snd", "snd0")["tx_packets"],
                self.t.link_stats("rcv", "rcv0")["rx_packets"],
                self.t.link_stats("med", "med0")["rx_packets"])

    def saturate(self, size: int, dst: str = DST) -> dict[str, float]:
        """trafgen flat out; rates over ``seconds`` after 1 s of warm-up. A run during which
        other processes used more than 15 % of a CPU is run again (twice at most)."""
        return self._quietly(lambda: self._saturate(size, dst))

    def _quietly(self, trial: Callable[[], dict[str, float]]) -> dict[str, float]:
        """Run ``trial`` once other processes are idle; redo it (twice at most, within the
        waiting budget) when they used more than FOREIGN_MAX of a CPU meanwhile."""
        for attempt in range(3):
            self.wait_quiet()
            j0, t0 = foreign_jiffies(), time.monotonic()
            r = trial()
            r["elapsed"] = time.monotonic() - t0
            r["foreign_cpu"] = foreign_cpu(j0, foreign_jiffies(), r["elapsed"])
            if r["foreign_cpu"] <= FOREIGN_MAX:
                break
            if attempt == 2 or time.monotonic() > self.wait_deadline:
                self.noisy += 1
                break
            self.reruns += 1
        return r

    def wait_quiet(self) -> None:
        """Wait (within the run's overall waiting budget) until other processes are idle."""
        while time.monotonic() < self.wait_deadline:
            j0 = foreign_jiffies()
            time.sleep(0.5)
            if foreign_cpu(j0, foreign_jiffies(), 0.5) <= FOREIGN_MAX:
                return

    def _saturate(self, size: int, dst: str) -> dict[str, float]:
        cfg, _ = self.files(size, dst)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.t.ns("snd"), "taskset", "-c", str(GEN_CPU),
             "trafgen", "-o", "snd0", "-i", str(cfg), "-P", "1", "--no-sock-mem", "-Q", "-C"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            time.sleep(1.0)
            b, t0 = self.counters(), time.monotonic()
            time.sleep(self.seconds)
            a, t1 = self.counters(), time.monotonic()
        finally:
            stop_group(proc)  # trafgen forks its workers
        time.sleep(0.3)
        dt = t1 - t0
        sent, fwd, dlv = (x - y for x, y in zip(a, b, strict=True))
        return {"offered_pps": sent / dt, "fwd_pps": fwd / dt, "dlv_pps": dlv / dt}

    def paced(self, size: int, rate: float, dst: str = DST, count: int = 0,
              cpu: int = GEN_CPU) -> dict[str, float]:  # fmt: skip
        """One pacer trial of ``trial`` seconds at ``rate`` pps, or of ``count`` packets as
        fast as the pacer can send them when ``rate`` is 0 (rerun like ``saturate``). On
        another CPU than GEN_CPU the pacer sends batches of 32 and sleeps while early."""
        return self._quietly(lambda: self._paced(size, rate, dst, count, cpu))

    def _paced(self, size: int, rate: float, dst: str, count: int = 0,
               cpu: int = GEN_CPU) -> dict[str, float]:  # fmt: skip
        _, raw = self.files(size, dst)
        before = self.counters()
        out = subprocess.run(
            ["ip", "netns", "exec", self.t.ns("snd"), "taskset", "-c", str(cpu),
             str(self.pacer), "snd0", str(raw), f"{rate:.0f}",
             str(count or int(rate * self.trial)), *(["32", "1"] if cpu != GEN_CPU else [])],
            capture_output=True, text=True, check=True, timeout=self.trial * 4 + 10).stdout
        r = json.loads(out)
        time.sleep(0.3)  # the ring retires its last block, the copies land
        after = self.counters()
        sent, fwd, dlv = (x - y for x, y in zip(after, before, strict=True))
        return {"sent": sent, "forwarded": fwd, "delivered": dlv,
                "achieved_pps": r["sent"] / r["seconds"], "seconds": r["seconds"]}

    def lossless(self, size: int, lo: float, hi: float, copies: bool, steps: int) -> float:
        """Highest achieved paced rate with forwarded == sent (and delivered == sent)."""
        best = 0.0

        def passes(r: dict[str, float]) -> bool:
            return r["forwarded"] == r["sent"] and (not copies or r["delivered"] == r["sent"])

        for _ in range(steps):
            rate = (lo + hi) / 2
            r = self.paced(size, rate)
            ok = passes(r) or passes(r := self.paced(size, rate))  # a loss must repeat
            if ok:
                best, lo = max(best, r["achieved_pps"]), rate
            else:
                hi = rate
        return best


def engine_options(workers: int | None) -> tuple[dict[str, Any], str]:
    """``Dataplane(...)`` options for ``--workers`` and how the run will capture.

    ``services flow-tap capture-workers`` reaches the engine as a constructor argument; an
    engine without one has a single capture thread, pinned to TAP_CPU (the option is then
    ignored, and the report says so). Several workers are left to the engine to place."""
    params = inspect.signature(Dataplane).parameters
    name = next((n for n in ("capture_workers", "workers") if n in params), None)
    if workers is None:
        return {"cpu": TAP_CPU}, "engine default" if name else "1 thread, CPU1"
    if name is None:
        return {"cpu": TAP_CPU}, f"1 thread, CPU1 (--workers {workers} ignored: not supported)"
    options: dict[str, Any] = {name: workers}
    if workers == 1 and "cpu" in params:
        options["cpu"] = TAP_CPU
    return options, f"{workers}"


@contextlib.contextmanager
def tap(topo: Topology, criteria: list[Criterion], options: dict[str, Any] | None = None
        ) -> Iterator[Dataplane]:  # fmt: skip
    dp = Dataplane(**(options if options is not None else {"cpu": TAP_CPU}))
    try:
        with ffi.netns(topo.ns("rtr")):
            dp.start(IFACES, inet6=False)
            dp.set_criteria(criteria)
        time.sleep(0.2)
        yield dp
    finally:
        dp.stop()


@contextlib.contextmanager
def floor_ring(topo: Topology) -> Iterator[None]:
    with ffi.netns(topo.ns("rtr")):
        ring = Ring(IFACES[0])
    try:
        ring.attach(drop_all())
        ring.hook(True)
        yield
    finally:
        ring.close()


@contextlib.contextmanager
def tcpdump(topo: Topology, expression: str, stats: dict[str, int]) -> Iterator[None]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", topo.ns("rtr"), "taskset", "-c", str(TAP_CPU), "tcpdump",
         "-i", "rin", "-B", "4096", "-w", "/dev/null", "-n", "-Q", "in", expression],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        time.sleep(1.0)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            err = proc.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            err = proc.communicate()[1]
        for ln in err.splitlines():
            parts = ln.split(" ", 1)
            if len(parts) == 2 and parts[0].isdigit():
                stats[parts[1]] = int(parts[0])


def kept(b: Bench, size: int, dst: str, reps: int,
         setup: Callable[[], contextlib.AbstractContextManager[Any]]) -> dict[str, Any]:
    """Alternate no-tap and tap saturation runs; median of the per-pair ratios."""
    base, with_tap, ratios = [], [], []
    last: dict[str, float] = {}
    for _ in range(reps):
        n = b.saturate(size, dst)
        b.no_tap.append(n["fwd_pps"])
        with setup():
            last = b.saturate(size, dst)
        base.append(n["fwd_pps"])
        with_tap.append(last["fwd_pps"])
        ratios.append(last["fwd_pps"] / n["fwd_pps"])
    return {"no_tap_fwd_pps": median(base), "tap_fwd_pps": median(with_tap),
            "kept": median(ratios), "kept_all": [round(x, 3) for x in ratios],
            "dlv_pps": last.get("dlv_pps", 0.0)}


# offered rate as fractions of no-tap saturation forwarding, then the pacer flat out: every
# curve goes past its knee
SWEEP = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0)
FLAT_OUT = 0.0


@contextlib.contextmanager
def forwarding_on(topo: Topology, cpu: int) -> Iterator[None]:
    """Steer rin's receive processing (forwarding, ring writes) to ``cpu`` with RPS.

    On a veth the sender's own CPU forwards what it sends (netif_rx runs the receive softirq
    before sendmmsg returns), so a generator there can never offer more than is forwarded
    and no curve would show a knee. With RPS the packets are queued to ``cpu``'s backlog,
    which drops what it cannot take, and a generator on another CPU can offer more."""
    path = "/sys/class/net/rin/queues/rx-0/rps_cpus"

    def write(mask: int) -> None:
        subprocess.run(["ip", "netns", "exec", topo.ns("rtr"), "sh", "-c",
                        f"echo {mask:x} > {path}"], check=True)

    write(1 << cpu)
    try:
        yield
    finally:
        write(0)


def sweep(b: Bench, topo: Topology, fwd64: float) -> dict[str, dict[str, list[float]]]:
    """Delivered against offered rate at 64 B, everything matching one criterion (the
    report's picture): forwarded with no tap, with flowtap and with tcpdump, and the copies
    flowtap delivered / the packets tcpdump captured. Offered is what the pacer achieved.
    Forwarding runs on GEN_CPU (RPS), the pacer on TAP_CPU, sleeping while early, next to
    the tap's capture thread or tcpdump."""
    rates = [*(f * fwd64 for f in SWEEP), FLAT_OUT]
    flat_count = int(2.5 * fwd64 * b.trial)
    out: dict[str, dict[str, list[float]]] = {
        name: {"offered": [], "forwarded": [], "copies": []}
        for name in ("no_tap", "flowtap", "tcpdump")}

    def point(name: str, rate: float) -> dict[str, float]:
        r = b.paced(46, rate, count=0 if rate else flat_count, cpu=TAP_CPU)
        out[name]["offered"].append(r["achieved_pps"])
        out[name]["forwarded"].append(r["forwarded"] / r["seconds"])
        return r

    for rate in rates:
        point("no_tap", rate)
        out["no_tap"]["copies"].append(0.0)
    with tap(topo, one_criterion(), b.dp_options):
        for rate in rates:
            r = point("flowtap", rate)
            out["flowtap"]["copies"].append(r["delivered"] / r["seconds"])
    expr = f"udp and dst host {DST} and dst port {DPORT}"
    for rate in rates:  # one tcpdump per point: it tells what it captured when it exits
        td: dict[str, int] = {}
        with tcpdump(topo, expr, td):
            r = point("tcpdump", rate)
        out["tcpdump"]["copies"].append(td.get("packets captured", 0) / r["seconds"])
    return out


def run(topo: Topology, b: Bench, reps: int, steps: int) -> dict[str, Any]:
    res: dict[str, Any] = {"load_before": os.getloadavg()[0], "steal_before": steal()}
    # no tap: forwarding at saturation, and what the pacer can offer losslessly
    base = {label: median([b.saturate(size)["fwd_pps"] for _ in range(reps)])
            for label, size in SIZES.items()}
    fwd64 = base["64B"]  # bisection bounds; the ratios use the whole run's median (below)
    res["forwarding_no_tap_pps"] = base
    res["forwarding_no_tap_lossless_paced_pps"] = b.lossless(46, 0.6 * fwd64, 1.4 * fwd64,
                                                             False, steps)
    one = one_criterion()
    # flow-tap running with no criteria: its rings are off the receive path
    res["kept_idle"] = kept(b, 46, OTHER, reps, lambda: tap(topo, [], b.dp_options))
    # the floor of any AF_PACKET design: a ring on rin running the drop-all program
    res["kept_ring_drop_all"] = kept(b, 46, OTHER, reps, lambda: floor_ring(topo))
    # forwarding kept: nothing matching, everything matching
    res["kept_1crit_no_match"] = kept(b, 46, OTHER, reps, lambda: tap(topo, one, b.dp_options))
    res["kept_1crit_all_match"] = kept(b, 46, DST, reps, lambda: tap(topo, one, b.dp_options))
    rates: dict[str, float] = {}
    with tap(topo, one, b.dp_options) as dp:
        res["bpf_1crit"] = {"kind": dp.prefilter_kind, "insns": dp.prefilter_length}
        for label, size in SIZES.items():
            rates[f"1crit_{label}"] = b.lossless(size, 0.3 * fwd64, 1.2 * fwd64, True, steps)
        res["kernel_drops_1crit"] = dp.kernel_stats().drops
    with forwarding_on(topo, GEN_CPU):
        res["sweep_64B"] = sweep(b, topo, fwd64)
    many = many_criteria(b.many)
    with tap(topo, many, b.dp_options) as dp:
        res["bpf_many"] = {"kind": dp.prefilter_kind, "insns": dp.prefilter_length}
        for label, size in SIZES.items():
            rates[f"manycrit_{label}"] = b.lossless(size, 0.3 * fwd64, 1.2 * fwd64, True, steps)
    res["kept_manycrit_no_match"] = kept(b, 46, OTHER, reps, lambda: tap(topo, many, b.dp_options))
    res["intercept_lossless_pps"] = rates
    # tcpdump (libpcap) on the same interface, the criterion as a pcap expression
    expr = f"udp and dst host {DST} and dst port {DPORT}"
    td: dict[str, int] = {}

    def td_setup() -> contextlib.AbstractContextManager[Any]:
        td.clear()
        return tcpdump(topo, expr, td)

    res["tcpdump_kept_no_match"] = kept(b, 46, OTHER, reps, td_setup)
    td_all = kept(b, 46, DST, reps, td_setup)
    captured, drops = td.get("packets captured", 0), td.get("packets dropped by kernel", 0)
    res["tcpdump_all_match"] = {**td_all, "captured": captured, "kernel_drops": drops}
    res["load_after"] = os.getloadavg()[0]
    # no-tap forwarding at 64B: the median of every no-tap run (the start's and the ones the
    # forwarding-kept pairs made), so that drift over the run does not skew the ratios
    fwd64 = median([*b.no_tap, base["64B"]])
    res["forwarding_no_tap_pps"]["64B_whole_run_median"] = fwd64
    res["forwarding_no_tap_pps"]["64B_whole_run_all"] = [round(x) for x in b.no_tap]
    res["reruns_for_foreign_load"] = b.reruns
    res["steal_seconds"] = (steal() - res.pop("steal_before")) / os.sysconf("SC_CLK_TCK")
    res["noisy_runs_kept"] = b.noisy
    res["ratios"] = {
        "intercept 64B 1 criterion / no-tap forwarding (target >= 0.95)":
            rates["1crit_64B"] / fwd64,
        "intercept 1414B 1 criterion / no-tap forwarding 1414B":
            rates["1crit_1414B"] / base["1414B"],
        "forwarding kept, no traffic matching, 1 criterion (target >= 0.98)":
            res["kept_1crit_no_match"]["kept"],
        f"forwarding kept, no traffic matching, {b.many:,} criteria":
            res["kept_manycrit_no_match"]["kept"],
        "forwarding kept, all traffic matching (saturated) (target >= 0.92 and above tcpdump)":
            res["kept_1crit_all_match"]["kept"],
        f"{b.many:,} / 1 criterion intercept at 64B (target >= 0.95)":
            rates["manycrit_64B"] / rates["1crit_64B"] if rates["1crit_64B"] else 0.0,
        f"{b.many:,} / 1 criterion intercept at 1414B":
            rates["manycrit_1414B"] / rates["1crit_1414B"] if rates["1crit_1414B"] else 0.0,
        "tcpdump forwarding kept, no traffic matching (same run; anchor 0.94)":
            res["tcpdump_kept_no_match"]["kept"],
        "tcpdump forwarding kept, all traffic matching (same run; anchor 0.82)":
            td_all["kept"],
    }
    return res


def sweep_only(topo: Topology, b: Bench) -> dict[str, Any]:
    fwd64 = b.saturate(46)["fwd_pps"]
    with forwarding_on(topo, GEN_CPU):
        return {"forwarding_no_tap_pps": {"64B": fwd64}, "sweep_64B": sweep(b, topo, fwd64)}


def sweep_rows(res: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f"sweep 64B {name}: offered -> forwarded / copies (kpps)",
             ", ".join(f"{o / 1e3:.0f}->{f / 1e3:.0f}/{c / 1e3:.0f}" for o, f, c
                       in zip(sw["offered"], sw["forwarded"], sw["copies"], strict=True)))
            for name, sw in res["sweep_64B"].items()]


def sweep_table(res: dict[str, Any]) -> str:
    rows = [("forwarding, no tap, 64B (trafgen)",
             f"{res['forwarding_no_tap_pps']['64B']:,.0f} pps"), *sweep_rows(res)]
    return "\n".join(f"{a}  {b}" for a, b in rows)


def table(res: dict[str, Any]) -> str:
    k = res["kept_1crit_no_match"]
    rows = [
        ("forwarding, no tap, 64B / 1414B (trafgen)",
         f"{res['forwarding_no_tap_pps']['64B']:,.0f} / "
         f"{res['forwarding_no_tap_pps']['1414B']:,.0f} pps"),
        ("forwarding, no tap, 64B, median of all the run's no-tap runs",
         f"{res['forwarding_no_tap_pps']['64B_whole_run_median']:,.0f} pps (n="
         f"{len(res['forwarding_no_tap_pps']['64B_whole_run_all']) + 1})"),
        ("forwarding, no tap, lossless paced 64B (pacer)",
         f"{res['forwarding_no_tap_lossless_paced_pps']:,.0f} pps"),
        ("forwarding with tap, no criteria (rings unhooked)",
         f"{res['kept_idle']['tap_fwd_pps']:,.0f} pps, kept "
         f"{res['kept_idle']['kept']:.3f} {res['kept_idle']['kept_all']}"),
        ("forwarding with a ring, drop-all filter (AF_PACKET floor)",
         f"{res['kept_ring_drop_all']['tap_fwd_pps']:,.0f} pps, kept "
         f"{res['kept_ring_drop_all']['kept']:.3f} {res['kept_ring_drop_all']['kept_all']}"),
        ("forwarding with tap, 1 criterion, none matching",
         f"{k['tap_fwd_pps']:,.0f} pps, kept {k['kept']:.3f} {k['kept_all']}"),
        (f"forwarding with tap, {res['many']:,} criteria, none matching",
         f"{res['kept_manycrit_no_match']['tap_fwd_pps']:,.0f} pps, kept "
         f"{res['kept_manycrit_no_match']['kept']:.3f} "
         f"{res['kept_manycrit_no_match']['kept_all']}"),
        ("forwarding with tap, all matching (saturated)",
         f"{res['kept_1crit_all_match']['tap_fwd_pps']:,.0f} pps fwd, "
         f"{res['kept_1crit_all_match']['dlv_pps']:,.0f} pps copies, kept "
         f"{res['kept_1crit_all_match']['kept']:.3f}"),
    ]
    for key, v in res["intercept_lossless_pps"].items():
        rows.append((f"intercept rate, lossless, {key}", f"{v:,.0f} pps"))
    rows.append((f"kernel pre-filter program, 1 / {res['many']:,} criteria",
                 f"{res['bpf_1crit']['kind']} {res['bpf_1crit']['insns']} insns / "
                 f"{res['bpf_many']['kind']} {res['bpf_many']['insns']} insns"))
    t = res["tcpdump_all_match"]
    rows.append(("tcpdump, all matching (saturated)",
                 f"{t['tap_fwd_pps']:,.0f} pps fwd, captured {t['captured']:,}, "
                 f"kernel drops {t['kernel_drops']:,}, kept {t['kept']:.3f}"))
    rows.append(("tcpdump, none matching",
                 f"{res['tcpdump_kept_no_match']['tap_fwd_pps']:,.0f} pps, kept "
                 f"{res['tcpdump_kept_no_match']['kept']:.3f} "
                 f"{res['tcpdump_kept_no_match']['kept_all']}"))
    for name, v in res["ratios"].items():
        rows.append((name, f"{v:.3f}"))
    rows += sweep_rows(res)
    rows.append(("capture workers", res["workers"]))
    rows.append(("load average before / after, runs redone for others' load",
                 f"{res['load_before']:.2f} / {res['load_after']:.2f}, "
                 f"{res['reruns_for_foreign_load']} (kept noisy: {res['noisy_runs_kept']}), "
                 f"steal {res['steal_seconds']:.1f} s"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b}" for a, b in rows)


def _rounded(x: object) -> object:
    if isinstance(x, float):
        return round(x, 3) if x < 10 else round(x)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="saturation window (s)")
    ap.add_argument("--trial", type=float, default=1.5, help="paced trial length (s)")
    ap.add_argument("--reps", type=int, default=3, help="saturation repetitions (median)")
    ap.add_argument("--steps", type=int, default=7, help="bisection steps")
    ap.add_argument("--quick", action="store_true", help="shorter runs, fewer steps")
    ap.add_argument("--max-wait", type=float, default=150.0,
                    help="total seconds to wait for other processes to go idle")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--workers", type=int, default=None,
                    help="capture workers (services flow-tap capture-workers N); default: "
                         "the engine's")
    ap.add_argument("--sweep-only", action="store_true",
                    help="only the rate sweep (the report's picture) and the no-tap figure")
    ap.add_argument("--many", type=int, default=100_000,
                    help="criteria installed for the scaling figures")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 1
    missing = [t for t in ("trafgen", "gcc", "tcpdump", "taskset") if not shutil.which(t)]
    if missing:
        print(f"missing tools: {', '.join(missing)} (make apt)", file=sys.stderr)
        return 1
    if (os.cpu_count() or 1) < 2:
        print("needs 2 CPUs (generator + forwarding on CPU0, tap on CPU1)", file=sys.stderr)
        return 1
    if a.quick:
        a.seconds, a.trial, a.reps, a.steps = 1.5, 1.0, 1, 5
    topo = Topology(unique_prefix("ftdpb"), inet6=False)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ftbench") as tmp:
        try:
            topo.up()
            # the CD counts every copy at the veth, then drops it as PACKET_OTHERHOST
            topo.ip("med", "link", "set", "med0", "address", "02:fd:00:00:03:99")
            bench = Bench(topo, Path(tmp), a.seconds, a.trial, a.max_wait)
            bench.dp_options, workers = engine_options(a.workers)
            bench.many = a.many
            res = (sweep_only(topo, bench) if a.sweep_only
                   else run(topo, bench, a.reps, a.steps))
            res["workers"], res["many"] = workers, a.many
        finally:
            topo.down()
    res["bench_seconds"] = time.monotonic() - started
    res["settings"] = {"seconds": a.seconds, "trial": a.trial, "reps": a.reps,
                       "steps": a.steps, "generator": "trafgen (saturation), gcc pacer (paced)"}
    print(sweep_table(res) if a.sweep_only else table(res))
    out = _rounded(res)
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
