"""Issue 17 item 2 with a real libnetconf2 client: Debian's libnetconf2, the library netopeer2-cli
is built on, connects (building its libyang context from what the server serves, as
netopeer2-cli's ``connect`` does), subscribes as ``subscribe`` does, and receives the
netconf-config-change of a commit made in another session, with no error or warning logged by
libnetconf2 or libyang on the way (the issue saw "Missing "notifications" schema in the
context" and two failed get-schema on every connect)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flowtapd import SYS, Flowtapd
from tests.integration.conftest import USERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client(flowtapd: Flowtapd) -> Iterator[subprocess.Popen[str]]:
    user = USERS["ops"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.libnetconf2_client", "127.0.0.1",
         str(flowtapd.port), user.name, "--notifications", "1", "--timeout", "30"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    assert proc.stdin is not None
    proc.stdin.write(user.password + "\n")
    proc.stdin.close()
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def next_event(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        assert proc.stderr is not None
        pytest.fail(f"libnetconf2 client ended ({proc.returncode}): {proc.stderr.read()}")
    event: dict[str, Any] = json.loads(line)
    return event


def test_connect_subscribe_and_receive_a_config_change(
    flowtapd: Flowtapd, client: subprocess.Popen[str]
) -> None:
    connected = next_event(client)
    assert connected["event"] == "connected", connected
    assert "urn:ietf:params:netconf:capability:notification:1.0" in connected["capabilities"]
    assert {"notifications", "nc-notifications", "flowtap-system"} <= set(connected["implemented"])
    subscribed = next_event(client)
    assert subscribed["event"] == "subscribed", subscribed

    with flowtapd.connect() as editor:
        editor.edit_config(target="candidate", config=(
            '<config xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">'
            f'<system xmlns="{SYS}"><host-name>seen-by-libnetconf2</host-name></system></config>'))
        editor.commit()
    notification = next_event(client)
    assert notification["event"] == "notification", notification
    xml = notification["xml"]
    assert "netconf-config-change" in xml and "<username>admin</username>" in xml
    assert "host-name" in xml and "<operation>replace</operation>" in xml
    assert client.wait(10) == 0
    assert notification["messages"] == [], "libnetconf2 or libyang logged on the way"
