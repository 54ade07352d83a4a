"""Issue 3 acceptance 7: the YANG modules are clean for pyang --lint and yanglint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

YANG = Path(__file__).resolve().parents[1] / "yang"
MODULES = sorted(str(p) for p in YANG.glob("flowtap-*.yang"))


def test_three_modules() -> None:
    assert [Path(m).stem for m in MODULES] == [
        "flowtap-interfaces", "flowtap-services", "flowtap-system"]


def test_pyang_lint_clean() -> None:
    pyang = str(Path(sys.executable).with_name("pyang"))
    result = subprocess.run([pyang, "--lint", "-p", f"{YANG / 'ietf'}:{YANG}", *MODULES],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr)


def test_yanglint_clean() -> None:
    yanglint = shutil.which("yanglint")
    assert yanglint, "yanglint missing: make test installs libyang2-tools"
    result = subprocess.run([yanglint, "-p", str(YANG), "-p", str(YANG / "ietf"), *MODULES],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr
