"""Issue 3 acceptance 6: netconf-console2 works against flowtapd."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.flowtapd import Flowtapd

CONSOLE = str(Path(sys.executable).with_name("netconf-console2"))


def console(flowtapd: Flowtapd, *args: str) -> str:
    user = flowtapd.users["admin"]
    result = subprocess.run(
        [CONSOLE, "--host", "127.0.0.1", "--port", str(flowtapd.port), "-u", user.name,
         "-p", user.password, *args],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_hello(shared_flowtapd: Flowtapd) -> None:
    out = console(shared_flowtapd, "--hello")
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in out
    assert "module=flowtap-services" in out


def test_get_config_xpath(shared_flowtapd: Flowtapd) -> None:
    out = console(shared_flowtapd, "--get-config", "-x", "/system/host-name")
    assert "<host-name>test</host-name>" in out
    assert "<login>" not in out


def test_get_schema(shared_flowtapd: Flowtapd) -> None:
    out = console(shared_flowtapd, "--get-schema", "flowtap-services")
    assert "module flowtap-services" in out and "flow-tap" in out
