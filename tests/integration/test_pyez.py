"""Issue 17 item 1: PyEZ (junos-eznc, unmodified) against a real flowtapd on loopback: open
and facts, Config load (set, text, xml), diff, commit with a comment, commit check, rollback."""

from __future__ import annotations

import warnings

import pytest

from tests.flowtapd import Flowtapd
from tests.integration.conftest import USERS

pytest.importorskip("jnpr.junos", reason="junos-eznc is in the test extra (requirements.lock)")

from jnpr.junos import Device
from jnpr.junos.exception import ConfigLoadError
from jnpr.junos.utils.config import Config


def device(flowtapd: Flowtapd, user: str = "admin") -> Device:
    u = USERS[user]
    return Device(host="127.0.0.1", port=flowtapd.port, user=u.name, passwd=u.password,
                  hostkey_verify=False, look_for_keys=False, allow_agent=False)


def test_open_gathers_facts(flowtapd: Flowtapd) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # open() must not even warn
        dev = device(flowtapd).open()
    try:
        assert dev.facts["hostname"] == "test"
        assert dev.facts["model"] == "FLOWTAP"
        assert dev.facts["version"] == "0.1R1"
        assert dev.facts["version_info"].major == (0, 1)
    finally:
        dev.close()


def test_config_load_diff_commit_rollback(flowtapd: Flowtapd) -> None:
    with device(flowtapd) as dev:
        cu = Config(dev)
        assert cu.diff() is None
        cu.load("set system host-name pyez-1", format="set")
        assert cu.diff() == "[edit system]\n-   host-name test;\n+   host-name pyez-1;\n"
        assert cu.commit(comment="from pyez") is True
        cu.load("system { login { user erin { class ops; } } }", format="text")
        assert cu.commit_check() is True
        cu.commit()
        cu.load("<system><host-name>pyez-3</host-name></system>", format="xml")
        assert "+   host-name pyez-3;" in cu.diff()
        cu.commit(confirm=2)  # minutes, as Junos
        cu.commit()  # confirms
        with pytest.raises(ConfigLoadError):
            cu.load("system { no-such-statement 1; }", format="text")
        assert cu.diff() is None

        cu.rollback(1)  # the commit before pyez-3
        assert cu.diff() == "[edit system]\n-   host-name pyez-3;\n+   host-name pyez-1;\n"
        cu.commit(comment="rolled back")
        dev.facts_refresh(keys="hostname")  # facts are gathered on first use, then cached
        assert dev.facts["hostname"] == "pyez-1"

        history = dev.rpc.get_commit_information()
        assert [h.findtext("log") for h in history.findall("commit-history")][:3] == [
            "rolled back", None, None]
        assert "from pyez" in [h.findtext("log") for h in history.findall("commit-history")]
        users = dev.rpc.get_config(filter_xml="system/login/user")
        assert "erin" in [u.findtext("name") for u in users.findall("system/login/user")]
        cu.lock()
        cu.unlock()
