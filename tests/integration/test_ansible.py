"""Issue 17 (Tests): Ansible, unmodified, against a real flowtapd on loopback.

``ansible-playbook`` (ansible-core with the ansible.netcommon collection, both from the ``ansible``
PyPI package) drives the appliance over ``connection: ansible.netcommon.netconf`` with
``ansible_network_os: default`` (netcommon's plugin for a standard RFC 6241 server), through
``netconf_get``, ``netconf_config`` and ``netconf_rpc``. The playbook's JSON output (the
ansible.posix.json callback) is checked task by task, and what the server holds afterwards is
read back with ncclient.

What netcommon 8.2 cannot do against any server, and so is not asked of it here: ``confirm: N``
(it hands ncclient an int for confirm-timeout, and lxml refuses it: "Argument must be bytes or
unicode, got 'int'"), ``source_datastore`` and ``delete`` (the module calls connection methods
``copy`` and ``delete`` that the netconf plugin does not have: "Method not found"). The confirmed
commit is done here with ``netconf_rpc`` instead, as a playbook would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flowtapd import NC, SYS, Flowtapd, free_port
from tests.integration.conftest import USERS

pytest.importorskip("ansible_collections.ansible.netcommon",
                    reason="ansible (with ansible.netcommon) is in the test extra (requirements.lock)")
pytest.importorskip("jxmlease", reason="netconf_get display: json needs jxmlease (test extra)")

pytestmark = pytest.mark.slow  # one playbook of 11 tasks: about 15 s

PLAYBOOK_BIN = Path(sys.executable).with_name("ansible-playbook")
HOST_NAME_FILTER = f'<system xmlns="{SYS}"><host-name/></system>'


def host_name_config(name: str) -> str:
    return f'<config xmlns="{NC}"><system xmlns="{SYS}"><host-name>{name}</host-name></system></config>'


def rpc(name: str, task: str, content: str | None = None) -> dict[str, Any]:
    """A netconf_rpc task. Run inside the persistent connection (netcommon's default,
    import_modules) it returns its stdout as bytes, which ansible-core 2.19's json callback
    cannot write (the whole document is lost, rc 0); run as a module process it returns text."""
    args = {"rpc": name, "xmlns": NC, **({"content": content} if content else {})}
    return {"name": task, "vars": {"ansible_network_import_modules": False},
            "ansible.netcommon.netconf_rpc": args}


def playbook() -> list[dict[str, Any]]:
    """One play, run once; the task names are the keys the test reads the results by."""
    get = {"source": "running", "filter": HOST_NAME_FILTER, "display": "json"}
    confirmed = "<confirmed/><confirm-timeout>300</confirm-timeout>"
    # commit: false needs lock: never, as netconf_config unlocks when it ends and unlocking a
    # modified candidate discards it (here as on Junos and SR OS)
    no_commit = {"commit": False, "lock": "never"}
    tasks: list[dict[str, Any]] = [
        {"name": "get before", "ansible.netcommon.netconf_get": {
            **get, "source": "candidate", "lock": "if-supported"}},
        {"name": "candidate, commit, backup, save", "diff": True,
         "ansible.netcommon.netconf_config": {
             "content": host_name_config("ansible-1"), "get_filter": HOST_NAME_FILTER,
             "backup": True, "backup_options": {"dir_path": "backup", "filename": "box.xml"},
             "validate": True, "save": True}},
        {"name": "same again", "ansible.netcommon.netconf_config": {
            "content": host_name_config("ansible-1"), "get_filter": HOST_NAME_FILTER}},
        {"name": "check mode", "check_mode": True, "diff": True,
         "ansible.netcommon.netconf_config": {
             "content": host_name_config("checked"), "get_filter": HOST_NAME_FILTER}},
        {"name": "refused edit", "ignore_errors": True,
         "ansible.netcommon.netconf_config": {"content": f'<config xmlns="{NC}">'
                                              f'<system xmlns="{SYS}"><no-such>1</no-such></system></config>'}},
        # a confirmed commit that is cancelled: running must come back to ansible-1
        {"name": "edit, no commit", "ansible.netcommon.netconf_config": {
            "content": host_name_config("cancelled"), **no_commit}},
        rpc("commit", "commit confirmed", confirmed),
        rpc("cancel-commit", "cancel-commit"),
        {"name": "get after cancel", "ansible.netcommon.netconf_get": get},
        # a confirmed commit that netconf_config confirms
        {"name": "edit again, no commit", "ansible.netcommon.netconf_config": {
            "content": host_name_config("ansible-2"), **no_commit}},
        rpc("commit", "commit confirmed again", confirmed),
        {"name": "confirm", "ansible.netcommon.netconf_config": {"confirm_commit": True}},
        {"name": "close the NETCONF session", "meta": "reset_connection"},
    ]
    return [{"name": "flowtap", "hosts": "flowtap", "gather_facts": False, "tasks": tasks}]


def _stray_connections(playbook_pid: int) -> list[int]:
    """ansible-connection processes that this ansible-playbook left (they detach, setsid, and
    name their parent's pid on their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if any(a.endswith(b"ansible_connection_cli_stub.py") for a in argv) \
                    and str(playbook_pid).encode() in argv:
                found.append(int(entry.name))
    return found


def run_playbook(tmp_path: Path, flowtapd: Flowtapd) -> tuple[dict[str, Any], str]:
    """Run the playbook with everything Ansible writes under tmp_path; return the json
    callback's document and stderr."""
    home = tmp_path / "home"
    home.mkdir()
    user = USERS["admin"]
    inventory = {"all": {"children": {"flowtap": {"hosts": {"box": {
        "ansible_host": "127.0.0.1", "ansible_port": flowtapd.port,
        "ansible_user": user.name, "ansible_password": user.password,
        "ansible_connection": "ansible.netcommon.netconf",
        "ansible_network_os": "default",
        "ansible_python_interpreter": sys.executable,  # the venv's: display json needs jxmlease
    }}}}}}
    (tmp_path / "inventory.yml").write_text(json.dumps(inventory))
    (tmp_path / "playbook.yml").write_text(json.dumps(playbook()))
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")  # no ansible.cfg from elsewhere
    env = {
        **os.environ,
        "HOME": str(home),
        "LC_ALL": "C.UTF-8",  # ansible-core refuses a non-UTF-8 locale
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "remote-tmp"),
        "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(home / "pc"),
        "ANSIBLE_COLLECTIONS_PATH": str(home / "collections"),  # none: the venv's are used
        "ANSIBLE_HOST_KEY_CHECKING": "False",  # ncclient's hostkey_verify: nothing is written
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    proc = subprocess.Popen(
        [str(PLAYBOOK_BIN), "-i", "inventory.yml", "playbook.yml"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _stray_connections(proc.pid):  # only if a task failed before reset_connection
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    assert proc.returncode == 0, out + err
    assert out.strip(), "no JSON document from ansible-playbook:\n" + err
    return json.loads(out), err


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Flowtapd, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("ansible")
    server = Flowtapd(tmp / "state", free_port(), dict(USERS))
    server.start()
    try:
        doc, _ = run_playbook(tmp, server)
        yield tmp, server, doc
    finally:
        server.stop()


def results(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (play,) = doc["plays"]
    return {t["task"]["name"]: t["hosts"]["box"] for t in play["tasks"] if t["hosts"]}


def host_name(m: Any, source: str) -> str:  # an ncclient manager
    reply = m.get_config(source, filter=("subtree", HOST_NAME_FILTER))
    return str(reply.data.findtext(f".//{{{SYS}}}host-name"))


def test_the_play_ran_whole(ran: tuple[Path, Flowtapd, dict[str, Any]]) -> None:
    _, _, doc = ran
    assert doc["stats"]["box"]["failures"] == 0
    assert doc["stats"]["box"]["unreachable"] == 0
    assert doc["stats"]["box"]["ignored"] == 1  # the refused edit
    assert list(results(doc)) == [t["name"] for t in playbook()[0]["tasks"] if "meta" not in t]


def test_netconf_get_json(ran: tuple[Path, Flowtapd, dict[str, Any]]) -> None:
    r = results(ran[2])
    assert r["get before"]["output"] == {"data": {"system": {"host-name": "test"}}}
    assert r["get before"]["changed"] is False
    assert "warnings" not in r["get before"]  # netcommon knows the candidate can be locked
    assert r["get before"]["stdout"].startswith(f'<data xmlns="{NC}"><system xmlns="{SYS}">')


def test_netconf_config_commit_backup_diff_save(ran: tuple[Path, Flowtapd, dict[str, Any]]) -> None:
    tmp, server, doc = ran
    r = results(doc)["candidate, commit, backup, save"]
    assert r["changed"] is True
    assert "<host-name>test</host-name>" in r["diff"]["before"]
    assert "<host-name>ansible-1</host-name>" in r["diff"]["after"]
    # netcommon chose the candidate (no :writable-running here) and saw :startup for save
    assert "urn:ietf:params:netconf:capability:candidate:1.0" in r["server_capabilities"]
    assert r["backup_path"] == "backup/box.xml"  # relative to the playbook's directory
    backup = (tmp / "backup" / "box.xml").read_text()
    assert "<host-name>test</host-name>" in backup  # taken before the edit
    assert "<login>" not in backup  # get_filter applies to the backup too
    with server.connect() as m:
        assert host_name(m, "startup") == "ansible-1"  # save: copy-config to startup


def test_netconf_config_idempotent_check_mode_and_refusal(
        ran: tuple[Path, Flowtapd, dict[str, Any]]) -> None:
    r = results(ran[2])
    assert r["same again"]["changed"] is False
    check = r["check mode"]
    assert check["changed"] is True
    assert "<host-name>checked</host-name>" in check["diff"]["after"]
    refused = r["refused edit"]
    assert refused["failed"] is True
    assert refused["msg"] == "Unknown element 'no-such'"  # the server's error-message, as sent


def test_confirmed_commit_cancel_and_confirm(ran: tuple[Path, Flowtapd, dict[str, Any]]) -> None:
    r = results(ran[2])

    def name(task: str) -> str:
        return str(r[task]["output"]["data"]["system"]["host-name"])

    assert "<ok/>" in r["commit confirmed"]["stdout"]
    assert "<ok/>" in r["cancel-commit"]["stdout"]  # it is refused when nothing is pending
    assert name("get after cancel") == "ansible-1"  # cancelled: the previous configuration
    assert "<ok/>" in r["commit confirmed again"]["stdout"]
    assert r["confirm"]["changed"] is True


def test_server_state_after_the_play(ran: tuple[Path, Flowtapd, dict[str, Any]]) -> None:
    _, server, _ = ran
    with server.connect() as m:
        assert host_name(m, "running") == "ansible-2"  # confirmed, so kept after the session
        assert host_name(m, "candidate") == "ansible-2"  # check mode discarded its edit
        for name in ("running", "candidate"):  # no lock left behind, candidate clean
            m.lock(name)
            m.unlock(name)
