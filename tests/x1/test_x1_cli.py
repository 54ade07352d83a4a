"""flowtap-x1 without a network element: its version and help, its target syntax, and how it
reads answers (the client against a real flowtapd is in tests/integration/test_x1_tasking.py).
The console script is not installed in the test virtualenv here, so the module runs it."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowtap.about import version
from flowtap.tools.x1_client import X1ClientError, parse_target, read_response
from flowtap.x1 import model
from flowtap.x1.encode import encode_response, encode_top_level_error
from flowtap.x1.targets import AddressTarget, CidrTarget, PortRangeTarget, PortTarget
from tests.x1.rig import header

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "flowtap.tools.x1_cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip


def test_version_and_plain_help() -> None:
    shown = _run("--version")
    assert shown.stdout.strip() == f"flowtap-x1 {version()}" and not shown.stderr
    helped = _run("--help")
    assert "``" not in helped.stdout and "activate" in helped.stdout and not helped.stderr


def test_targets_are_kind_equals_value() -> None:
    assert parse_target("ipv4Address=192.0.2.1") == AddressTarget(
        ipaddress.ip_address("192.0.2.1"))
    assert parse_target("ipv6Cidr=2001:db8::/32") == CidrTarget(
        ipaddress.ip_network("2001:db8::/32"))
    assert parse_target("tcpPort=443") == PortTarget("tcp", 443)
    assert parse_target("udpPortRange=1000-2000") == PortRangeTarget("udp", 1000, 2000)
    for bad in ("imsi=262011234567890", "tcpPort=70000", "ipv4Address", "udpPortRange=5",
                "ipv4Cidr=192.0.2.1/24"):  # fmt: skip
        with pytest.raises(ValueError):
            parse_target(bad)


def test_answers_are_read_leaf_by_leaf() -> None:
    h = header("admf-1")
    body = encode_response([
        model.OkResponse(h, "Ping"),
        model.ErrorResponse(h, "GetTaskDetails", 2020, "no task with this xId"),
    ])  # fmt: skip
    ok, refused = read_response(body)
    assert (ok.type, ok.ok, ok.get("oK")) == ("PingResponse", True, "AcknowledgedAndCompleted")
    assert (refused.ok, refused.code, refused.description) == (False, 2020,
                                                               "no task with this xId")
    assert refused.render().startswith("ErrorResponse 2020: no task with this xId")
    (top,) = read_response(encode_top_level_error(model.TopLevelErrorResponse(
        "admf-1", "ne-1", h.timestamp)))
    assert top.type == "X1TopLevelErrorResponse" and not top.ok
    with pytest.raises(X1ClientError):
        read_response(b"<html>no</html>")
