"""``make demo``: the seed's story live, in network namespaces, in well under a minute.

An administrator configures a fresh flowtapd over NETCONF; two agencies' mediation devices add
a criterion each over DTCP; subscriber traffic crosses the router; each agency's collector
writes the copies it receives to a pcap; then both DELETE. The demo checks that each pcap holds
exactly the packets of its agency's target, byte for byte, and exits non-zero otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from flowtap.tools.demo.lab import Lab
from flowtap.tools.demo.story import Story
from flowtap.tools.netns import unique_prefix


def _interrupt(_sig: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flowtap.tools.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo-out"),
                    help="where the pcaps, logs and flowtapd's state go (default %(default)s)")
    ap.add_argument("--seconds", type=float, default=6.0, help="traffic duration (max 20)")
    ap.add_argument("--rate", type=float, default=1500.0, help="packets/s, all flows (max 5000)")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("flowtap demo: needs root (network namespaces, packet sockets)", file=sys.stderr)
        return 2
    missing = [tool for tool in ("ip", "ss") if shutil.which(tool) is None]
    if missing:
        print(f"flowtap demo: missing {', '.join(missing)} (apt-get install iproute2)",
              file=sys.stderr)  # fmt: skip
        return 2
    seconds = min(max(args.seconds, 1.0), 20.0)
    rate = min(max(args.rate, 30.0), 5000.0)
    lab = Lab(unique_prefix("ftdemo"))
    story = Story(lab, args.out, seconds=seconds, rate=rate)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    ok = False
    code = 1
    try:
        story.prepare_out()
        print(f"flowtap demo: the seed's story, live (namespaces {lab.ns('*')}, output in "
              f"{args.out}/)", flush=True)  # fmt: skip
        lab.up()
        ok = asyncio.run(story.run())
        code = 0 if ok else 1
    except KeyboardInterrupt:
        print("\nflowtap demo: interrupted", flush=True)
        code = 130
    except Exception as exc:
        print(f"\nflowtap demo: FAILED: {type(exc).__name__}: {exc}", flush=True)
        code = 1
    finally:
        # a second Ctrl-C or SIGTERM must not cut the clean-up short
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            story.cleanup()
        finally:
            lab.down()
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)
    print(f"namespaces removed; {time.monotonic() - started:.1f} s; "
          f"{'PASS' if ok else 'FAIL'}", flush=True)  # fmt: skip
    return code
