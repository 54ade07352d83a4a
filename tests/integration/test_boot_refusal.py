"""A configuration the daemon cannot boot on ends it at once, with exit status 2 and the reason,
instead of hanging in asyncio's teardown, waiting for the XPath worker it had started before the
boot commit was refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REFUSED = b"""<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">
<system xmlns="urn:flowtap:yang:system"><services><netconf><ssh><port>notaport</port></ssh>
</netconf></services></system></config>"""
NOT_A_CONFIG = b"<data/>"


def boot(tmp_path: Path, document: bytes) -> subprocess.CompletedProcess[str]:
    init = tmp_path / "init.xml"
    init.write_bytes(document)
    command = [sys.executable, "-m", "flowtap", "--state-dir", str(tmp_path / "state"),
               "--init-config", str(init)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.mark.parametrize(
    ("document", "reason"),
    [(REFUSED, 'configuration refused at boot: Invalid type uint16 value "notaport"'),
     (NOT_A_CONFIG, "the root element must be <config> or <data>")],
)  # fmt: skip
def test_a_refused_boot_ends_the_daemon_with_status_2(
    tmp_path: Path, document: bytes, reason: str
) -> None:
    result = boot(tmp_path, document)
    assert result.returncode == 2, result.stderr
    assert reason in result.stderr
    assert "ready" not in result.stdout
