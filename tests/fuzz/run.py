"""Long coverage-guided fuzz runs with atheris (libFuzzer), one target at a time.

    python tests/fuzz/run.py [--runs N | --seconds S] [--work DIR] [target ...]

Each target runs in its own process: flowtap is imported under ``atheris.instrument_imports`` so
libFuzzer sees its branch coverage. The seed corpus is ``tests/fuzz/corpus/<target>``; inputs
the run finds are kept in ``<work>/<target>/corpus`` (reused by the next run) and a crashing
input is written to ``<work>/<target>/crash-*``. libFuzzer stops a target at its first crash; the
summary line gives executions, exec/s, coverage and crashes per target, and the exit status is
1 when any target crashed.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from tests.fuzz import TARGETS  # noqa: E402

# libFuzzer's timeout ends the run; a 60 s input is a hang worth a report, not a slow XPath.
TIMEOUT_SECONDS = 60
RSS_LIMIT_MB = 2048
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+).*?exec/s: (\d+)")


def child(target: str, libfuzzer_args: list[str]) -> None:
    """Run one target under atheris in this process (never returns)."""
    import atheris

    with atheris.instrument_imports(include=["flowtap"]):
        importlib.import_module("flowtap")
        module = importlib.import_module(TARGETS[target])
    atheris.Setup([sys.argv[0], *libfuzzer_args], module.fuzz_one)
    atheris.Fuzz()


def _artifacts(work: Path) -> set[str]:
    return {p.name for p in work.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))}


def run_target(target: str, args: argparse.Namespace) -> dict[str, object]:
    work = Path(args.work) / target
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = HERE / "corpus" / target
    limit = f"-runs={args.runs}" if args.runs else f"-max_total_time={args.seconds}"
    libfuzzer = [str(corpus), str(seeds), limit, f"-timeout={TIMEOUT_SECONDS}",
                 f"-rss_limit_mb={RSS_LIMIT_MB}", f"-artifact_prefix={work}/",
                 "-print_final_stats=1", "-max_len=65536"]  # fmt: skip
    dictionary = HERE / "dicts" / f"{target}.dict"
    if dictionary.exists():
        libfuzzer.append(f"-dict={dictionary}")
    log = work / "fuzz.log"
    earlier = _artifacts(work)
    started = time.monotonic()
    with log.open("w") as out:
        status = subprocess.call(
            [sys.executable, __file__, "--child", target, "--", *libfuzzer],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    stats = _STAT.findall(text)
    done = _DONE.search(text)
    execs = int(done.group(1)) if done else int(stats[-1][0]) if stats else 0
    crashes = sorted(_artifacts(work) - earlier)
    return {
        "target": target,
        "executions": execs,
        "seconds": round(elapsed, 1),
        "exec/s": round(execs / elapsed) if elapsed else 0,
        "cov": int(stats[-1][1]) if stats else 0,
        "ft": int(stats[-1][2]) if stats else 0,
        "crashes": len(crashes),
        "artifacts": crashes,
        "status": status,
        "log": str(log),
    }


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[4:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument("--runs", type=int, help="executions per target")
    limit.add_argument("--seconds", type=int, default=600, help="seconds per target")
    parser.add_argument("--work", default=str(REPO / ".fuzz"), help="corpus and crash directory")
    args = parser.parse_args()
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {sorted(TARGETS)}")
    failed = False
    for target in args.targets:
        result = run_target(target, args)
        failed |= bool(result["status"])
        print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
