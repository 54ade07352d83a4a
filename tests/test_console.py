"""The console entry points keep third-party warnings off a tool's stderr (issue 13, row 0)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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



TOOLS = ["flowtapd", "flowtap-dtcp", "flowtap-x1", "flowtap-collector", "flowtap-audit",
         "flowtap-cli"]
SCRIPTS = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())[
    "project"]["scripts"]


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The tool as its installed script runs it: the entry point pyproject names (run here
    through Python, so a tool added since the virtualenv was built is tried too)."""
    module, function = SCRIPTS[name].split(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    return subprocess.run([sys.executable, "-c", code, *args],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip


def test_every_tool_is_a_script() -> None:
    assert sorted(SCRIPTS) == sorted(TOOLS)


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_tells_its_version_and_plain_help(tool: str) -> None:
    """Issue 17 items 4 and 7: --version, and help without reStructuredText markup."""
    from flowtap.about import version

    shown = _tool(tool, "--version")
    assert shown.stdout.strip() == f"{tool} {version()}" and not shown.stderr
    helped = _tool(tool, "--help")
    assert "``" not in helped.stdout and ":func:" not in helped.stdout and not helped.stderr
    assert "::\n" not in helped.stdout


def test_plain_takes_the_markup_out() -> None:
    from flowtap.about import plain

    assert plain("``a``: see :func:`flowtap.audit.verify` and :mod:`~x.y`. Examples::\n") == (
        "a: see flowtap.audit.verify and y. Examples:\n"
    )
