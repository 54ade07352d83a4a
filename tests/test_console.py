"""The console entry points keep third-party warnings off a tool's stderr (issue 13, row 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NOISY_VENDOR = 'import warnings\nwarnings.warn("vendor: this API is going away", UserWarning)\n'
PROGRAM = """
import sys
sys.path.insert(0, sys.argv[1])
from flowtap.console import route_warnings_to_log
route_warnings_to_log()
import noisy_vendor
print("our output", file=sys.stderr)
"""


def _run(tmp_path: Path, *python_options: str) -> str:
    (tmp_path / "noisy_vendor.py").write_text(NOISY_VENDOR)
    result = subprocess.run([sys.executable, *python_options, "-c", PROGRAM, str(tmp_path)],
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stderr


def test_an_import_time_warning_does_not_reach_stderr(tmp_path: Path) -> None:
    assert _run(tmp_path) == "our output\n"


def test_warnings_asked_for_are_still_shown(tmp_path: Path) -> None:
    stderr = _run(tmp_path, "-W", "default")
    assert "vendor: this API is going away" in stderr and stderr.endswith("our output\n")

