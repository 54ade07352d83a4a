"""``make bench``: run every benchmark script, then write bench/REPORT.md and bench/rates.png.

Each script is run with ``--json FILE`` and prints its own table as it goes. A script's JSON is
``{"title", "rows": [{"metric", "value", "target"?, "reference"?}], "series"?: [{"name", "x",
"y", "panel"?, "style"?}], "xlabel"?, "ylabel"?, "images"?: [PNG paths relative to bench/]}``;
series are drawn on the report's plot (delivered against offered packet rate past saturation:
one panel per ``panel``, packets forwarded and copies delivered, one look per ``style`` so no
line hides another); images a script drew itself (tap_latency.py's CDF) are shown under its
table.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parent
SCRIPTS = [
    ("netconf_cycles.py", ["--seconds", "10"]),
    ("netconf_large.py", []),
    ("dtcp_add.py", []),
    ("dtcp_bulk_fairness.py", []),
    # one capture worker, pinned to CPU1: the bench forwards on CPU0 (the "NIC core"), so on
    # this 2-core machine a second worker could only share a core with forwarding or with
    # the first; `bench/dataplane.py --workers 2` measures that (README, Performance)
    ("dataplane.py", ["--workers", "1"]),
    ("tap_latency.py", []),
    ("x1_tasking.py", []),
    ("x3_delivery.py", []),
    ("hostile_soak.py", ["--cap", "45"]),
]


def run(script: str, args: list[str], out: Path) -> dict[str, object] | None:
    path = BENCH / script
    if not path.exists():
        print(f"== {script}: missing", flush=True)
        return None
    print(f"== {script}", flush=True)
    result = subprocess.run([sys.executable, str(path), *args, "--json", str(out)], check=False)
    if result.returncode != 0 or not out.exists():
        print(f"== {script} failed (exit {result.returncode})", flush=True)
        failed = {"metric": "run", "value": f"failed (exit {result.returncode})"}
        return {"title": script, "rows": [failed]}
    loaded: dict[str, object] = json.loads(out.read_text())
    return loaded if "rows" in loaded else from_dataplane(loaded)


def from_dataplane(d: dict[str, Any]) -> dict[str, object]:
    """bench/dataplane.py's own JSON -> rows and the plot's series."""
    rows: list[dict[str, object]] = [
        {"metric": "no-tap forwarding 64 B (median of the run)",
         "value": f"{d['forwarding_no_tap_pps']['64B_whole_run_median']:,.0f} pps"},
        {"metric": "no-tap forwarding 1414 B",
         "value": f"{d['forwarding_no_tap_pps']['1414B']:,.0f} pps"},
    ]
    many = d.get("many", 10_000)
    for key, value in d["intercept_lossless_pps"].items():
        name = key.replace("manycrit_", f"{many:,} criteria, ").replace("1crit_", "1 criterion, ")
        rows.append({"metric": f"lossless intercept rate {name}", "value": f"{value:,.0f} pps"})
    for name, value in d["ratios"].items():
        target = name.split("(target ")[1].rstrip(")") if "(target " in name else ""
        rows.append({"metric": name.split(" (target")[0], "value": f"{value:.3f}",
                     "target": target})
    bpf_many = d.get("bpf_many", d.get("bpf_10k", {}))
    rows.append({"metric": f"kernel pre-filter program, 1 / {many:,} criteria",
                 "value": f"{d['bpf_1crit']['kind']} {d['bpf_1crit']['insns']} / "
                          f"{bpf_many.get('kind')} {bpf_many.get('insns')} insns"})
    rows.append({"metric": "capture workers", "value": d.get("workers", "1")})
    rows.append({"metric": "runs disturbed by other processes (kept / redone)",
                 "value": f"{d['noisy_runs_kept']} / {d['reruns_for_foreign_load']}"})
    result: dict[str, object] = {"title": "Dataplane (bench/dataplane.py, 2-core VM, veth netns)",
                                 "rows": rows}
    sw = d.get("sweep_64B")
    if sw:
        result["series"] = sweep_series(sw)
        result["xlabel"] = "offered, packets/s (64 B)"
        result["ylabel"] = "delivered, packets/s"
    return result


# one look per capture method, the same in both panels; marker sizes and fills differ so that
# coinciding points (below every knee) still show each curve
STYLES: dict[str, dict[str, Any]] = {
    "no tap": {"color": "tab:gray", "marker": "s", "markersize": 10, "markerfacecolor": "none",
               "linestyle": "-", "linewidth": 3, "alpha": 0.6},
    "flowtap": {"color": "tab:blue", "marker": "o", "markersize": 5, "linestyle": "-",
                "linewidth": 1.5},
    "tcpdump": {"color": "tab:orange", "marker": "^", "markersize": 8,
                "markerfacecolor": "none", "linestyle": "--", "linewidth": 1.5},
}


def sweep_series(sw: dict[str, Any]) -> list[dict[str, object]]:
    """bench/dataplane.py's ``sweep_64B`` -> series for two panels: packets forwarded, and
    copies delivered (flowtap) or packets captured (tcpdump). Older runs had one flat dict."""
    if "offered" in sw:  # before the sweep went past the knee
        sw = {"no_tap": {"offered": sw["offered"], "forwarded": sw["no_tap_forwarded"]},
              "flowtap": {"offered": sw.get("tap_offered", sw["offered"]),
                          "forwarded": sw["tap_forwarded"], "copies": sw["tap_copies"]}}
    series: list[dict[str, object]] = []
    for key, name in (("no_tap", "no tap"), ("flowtap", "flowtap"), ("tcpdump", "tcpdump")):
        if key not in sw:
            continue
        s = sw[key]
        series.append({"name": name, "x": s["offered"], "y": s["forwarded"],
                       "panel": "forwarded by the router", "style": name})
        if key != "no_tap":
            label = "copies delivered" if key == "flowtap" else "packets captured"
            series.append({"name": f"{name}: {label}", "x": s["offered"], "y": s["copies"],
                           "panel": "copies delivered / packets captured", "style": name})
    return series


def plot(results: list[dict[str, object]], png: Path) -> bool:
    series = [(r, s) for r in results for s in r.get("series", [])]  # type: ignore[attr-defined]
    if not series:
        return False
    matplotlib.use("Agg")
    panels = list(dict.fromkeys(str(s.get("panel", "")) for _, s in series))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False,
                             sharex=True, sharey=True)
    top = max(max(*s["x"], *s["y"]) for _, s in series)
    for ax, panel in zip(axes[0], panels, strict=True):
        ax.plot([0, top], [0, top], color="black", linewidth=0.8, linestyle=":",
                label="delivered = offered")
        for result, s in series:
            if str(s.get("panel", "")) != panel:
                continue
            points = sorted(zip(s["x"], s["y"], strict=True))  # the pacer's rate varies
            style = STYLES.get(str(s.get("style")), {"marker": "o"})
            ax.plot([p[0] for p in points], [p[1] for p in points], label=s["name"], **style)
            ax.set_xlabel(str(result.get("xlabel", "offered")))
            ax.set_ylabel(str(result.get("ylabel", "delivered")))
        ax.set_title(panel or "delivered against offered")
        ax.set_xlim(0, top * 1.03)
        ax.set_ylim(0, top * 1.03)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1e3:.0f}k")
        ax.yaxis.set_major_formatter(lambda v, _: f"{v / 1e3:.0f}k")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle("flowtap: delivered against offered packet rate, past saturation")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    return True


def markdown(results: list[dict[str, object]], has_plot: bool) -> str:
    lines = [
        "# flowtap benchmark report",
        "",
        f"Generated by `make bench` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.node()} ({platform.machine()}, Python {platform.python_version()}). "
        "Each figure was measured by the script named in its section; ratios are measured side "
        "by side in one run.",
        "",
    ]
    for result in results:
        lines += [f"## {result['title']}", "", "| metric | value | target | reference |",
                  "|---|---|---|---|"]
        for row in result.get("rows", []):  # type: ignore[attr-defined]
            lines.append(f"| {row.get('metric')} | {row.get('value')} | "
                         f"{row.get('target', '')} | {row.get('reference', '')} |")
        lines.append("")
        for image in result.get("images", []):  # type: ignore[attr-defined]
            lines += [f"![{Path(image).stem}]({image})", ""]
    if has_plot:
        lines += ["## Delivered against offered rate", "", "![rates](rates.png)", ""]
    return "\n".join(lines)


def netopeer2_comparison() -> list[tuple[str, list[str]]]:
    """The config plane beside a netopeer2, in this run, when ``make bench`` is given one
    (``NETOPEER2=HOST:PORT NETOPEER2_PASSWORD=...``, as ``make bench-netopeer2`` takes it);
    nothing otherwise: the project builds no netopeer2 (README, Performance)."""
    address = os.environ.get("NETOPEER2")
    if not address:
        return []
    env = os.environ.get
    args = ["--vs", address, "--vs-name", "netopeer2",
            "--vs-user", env("NETOPEER2_USER") or "admin",
            "--vs-namespace", "urn:flowtap:yang:bench",
            "--vs-seconds", env("NETOPEER2_SECONDS") or "15",
            "--rounds", env("NETOPEER2_ROUNDS") or "3"]  # fmt: skip
    if env("NETOPEER2_KEY"):
        args += ["--vs-key", env("NETOPEER2_KEY") or ""]
    if env("NETOPEER2_PID"):
        args += ["--vs-pid", env("NETOPEER2_PID") or ""]
    if env("NETOPEER2_PASSWORD"):
        os.environ["VS_PASSWORD"] = env("NETOPEER2_PASSWORD") or ""
    return [("netconf_cycles.py", args)]


def main() -> None:
    results = []
    scripts = SCRIPTS[:1] + netopeer2_comparison() + SCRIPTS[1:]
    with tempfile.TemporaryDirectory() as tmp:
        for number, (script, args) in enumerate(scripts):
            result = run(script, args, Path(tmp) / f"{number}-{script}.json")
            if result is not None:
                results.append(result)
    has_plot = plot(results, BENCH / "rates.png")
    report = BENCH / "REPORT.md"
    report.write_text(markdown(results, has_plot))
    print(f"wrote {report}" + (f" and {BENCH / 'rates.png'}" if has_plot else ""))


if __name__ == "__main__":
    main()
