"""NETCONF commit latency with a large configuration: 10,000 login classes in running.

Starts its own flowtapd (bench/netconf_cycles.py's users and client), loads ``--entries``
entries of the ``system/login/class`` list in one edit-config + commit, then, as the super-user
``admin`` (no LI bits: every write is checked and every read pruned), runs ``--cycles`` times:
edit one entry's idle-timeout in candidate, commit, and prints the commit's round trip (p50,
p99, max), the edit's and a get-config's (the whole running) (issue 16: p99 < 50 ms).

    .venv/bin/python bench/netconf_large.py [--entries 10000] [--cycles 300] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from netconf_cycles import USERS, Login, Session, start_flowtapd  # the same client and users

LOAD_CHUNK = 2_000  # entries per edit-config while loading (3 elements each)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--json", type=Path, help="write make bench's report rows here")
    args = parser.parse_args()
    admin = USERS["super-user admin"]
    with tempfile.TemporaryDirectory() as tmp:
        daemon, server = start_flowtapd(tmp)
        try:
            session = Session(Login("flowtap admin", server, admin.name, admin.password))
            ns = server.template.split('xmlns="')[1].split('"')[0]
            started = time.perf_counter()
            for first in range(0, args.entries, LOAD_CHUNK):  # a request's element limit
                classes = "".join(f"<class><name>big-{i}</name><idle-timeout>60</idle-timeout>"
                                  "</class>"
                                  for i in range(first, min(args.entries, first + LOAD_CHUNK)))
                session.rpc(f"<edit-config><target><candidate/></target><config><system xmlns="
                            f'"{ns}"><login>{classes}</login></system></config></edit-config>')
            session.rpc("<commit/>")
            load_s = time.perf_counter() - started
            edits, commits, gets = [], [], []
            for n in range(args.cycles):
                t0 = time.perf_counter()
                session.rpc(f'<edit-config><target><candidate/></target><config><system xmlns="'
                            f'{ns}"><login><class><name>big-{n * 7919 % args.entries}</name>'
                            f"<idle-timeout>{n % 59 + 1}</idle-timeout></class></login>"
                            "</system></config></edit-config>")
                t1 = time.perf_counter()
                session.rpc("<commit/>")
                t2 = time.perf_counter()
                edits.append(t1 - t0)
                commits.append(t2 - t1)
                if n % 10 == 0:
                    size = len(session.rpc("<get-config><source><running/></source>"
                                           "</get-config>", ok=False))
                    gets.append(time.perf_counter() - t2)
            session.close()
        finally:
            daemon.stop()
    ms = 1000.0
    figures = {
        "entries": args.entries, "load_s": round(load_s, 2), "running_bytes": size,
        "commit_p50_ms": round(statistics.median(commits) * ms, 2),
        "commit_p99_ms": round(quantile(commits, 0.99) * ms, 2),
        "commit_max_ms": round(max(commits) * ms, 2),
        "edit_p50_ms": round(statistics.median(edits) * ms, 2),
        "edit_p99_ms": round(quantile(edits, 0.99) * ms, 2),
        "get_config_p50_ms": round(statistics.median(gets) * ms, 2),
    }  # fmt: skip
    print(f"NETCONF with {args.entries:,} list entries in running, super-user admin, "
          f"{args.cycles} edit+commit cycles")
    for key, value in figures.items():
        print(f"  {key:20} {value}")
    if args.json:
        rows = [
            {"metric": f"load {args.entries:,} entries (edit-configs of 2,000, one commit)",
             "value": f"{figures['load_s']} s, running {size:,} bytes"},
            {"metric": "commit round trip p50 / p99 / max", "target": "p99 < 50 ms",
             "value": f"{figures['commit_p50_ms']} / {figures['commit_p99_ms']} / "
                      f"{figures['commit_max_ms']} ms"},
            {"metric": "edit-config (one leaf) p50 / p99",
             "value": f"{figures['edit_p50_ms']} / {figures['edit_p99_ms']} ms"},
            {"metric": "get-config running p50 (pruned for admin)",
             "value": f"{figures['get_config_p50_ms']} ms"},
        ]  # fmt: skip
        args.json.write_text(json.dumps({
            "title": f"NETCONF with {args.entries:,} entries in running, super-user "
                     "(bench/netconf_large.py)", "rows": rows}))


if __name__ == "__main__":
    main()
