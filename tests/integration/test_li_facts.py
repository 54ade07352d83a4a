"""Issue 13 item 4 (table rows 4, 5, 6): lawful-intercept facts reach only those who may see them.

Two real daemons with the same users and the same configuration outside the LI subtrees; only
``tapped`` has ``services flow-tap`` and ``system services flow-tap-dtcp``. Every error path
that mentions flow-tap, DTCP or an LI leaf (src/ and yang/, listed in ``CASES``) is run on both
by users without LI bits; their replies must be identical and name nothing of LI. The LI
administrator keeps getting the precise errors.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ncclient.operations import RPCError

from tests.flowtapd import IFS, NC, SVC, SYS, Flowtapd, TestUser, free_port

from .conftest import USERS

LI_USERS = {
    **USERS,  # admin: all + flow-tap-control; ops: view + configure; viewer: view only
    "su": TestUser("su", "su-pw-1", "super-user"),  # every bit but the LI ones
    "netops": TestUser("netops", "netops-pw-1", "read-only"),
    "mda": TestUser("mda", "mda-pw-1", "md"),  # a mediation device: flow-tap-operation only
}
MD_CLASS = "<class><name>md</name><permissions>flow-tap-operation</permissions></class>"
SP = (f'<interfaces xmlns="{IFS}"><interface><name>sp-0/0/0</name><host-device>lo</host-device>'
      "<unit><name>0</name><family><inet/></family></unit></interface></interfaces>")
FLOW_TAP = f'<services xmlns="{SVC}"><flow-tap><interface>sp-0/0/0.0</interface></flow-tap></services>'
NON_LI = ("su", "ops", "netops")


def dtcp_service(port: int) -> str:
    return f"<flow-tap-dtcp><ssh><port>{port}</port></ssh></flow-tap-dtcp>"


def other_port(*taken: int) -> int:
    """A free port none of ``taken`` (free_port may hand out the same port twice in a row)."""
    while (port := free_port()) in taken:
        pass
    return port


def start(tmp_path: Path, name: str, *, flow_tap: bool, dtcp_port: int | None) -> Flowtapd:
    server = Flowtapd(
        tmp_path / name, other_port(dtcp_port or 0), dict(LI_USERS), extra_classes=MD_CLASS,
        extra_config=SP + (FLOW_TAP if flow_tap else ""),
        system_services=dtcp_service(dtcp_port) if dtcp_port else "",
        dtcp_port=dtcp_port or 0,
    )  # fmt: skip
    server.start()
    return server


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Flowtapd, Flowtapd]]:
    """(plain, tapped): the same appliance without and with flow-tap."""
    plain = start(tmp_path, "plain", flow_tap=False, dtcp_port=None)
    try:
        tapped = start(tmp_path, "tapped", flow_tap=True, dtcp_port=other_port(plain.port))
        try:
            yield plain, tapped
        finally:
            tapped.stop()
    finally:
        plain.stop()


def cfg(inner: str, *, nc_prefix: bool = False) -> str:
    extra = f' xmlns:nc="{NC}"' if nc_prefix else ""
    return f'<config xmlns="{NC}"{extra}>{inner}</config>'


def interface(name: str, body: str = "", op: str | None = None) -> str:
    """One interface; ``body`` may use ``nc:operation``."""
    attr = f' nc:operation="{op}"' if op else ""
    return cfg(f'<interfaces xmlns="{IFS}"><interface{attr}><name>{name}</name>{body}'
               "</interface></interfaces>", nc_prefix=True)  # fmt: skip


UNIT0 = "<unit><name>0</name><family><inet/></family></unit>"
Step = Callable[[Any], object]


def edit(config: str, test_only: bool = False) -> Step:
    if test_only:
        return lambda m: m.edit_config(target="candidate", config=config, test_option="test-only")
    return lambda m: m.edit_config(target="candidate", config=config)


def validate(m: Any) -> object:
    return m.validate(source="candidate")


def commit(m: Any) -> object:
    return m.commit()


def discard(m: Any) -> object:
    return m.discard_changes()


def edit_commit(config: str) -> list[Step]:
    return [edit(config), validate, commit, discard]


# Every error path that mentions flow-tap, DTCP or an LI leaf, and how a non-LI user reaches it.
CASES: dict[str, list[Step]] = {
    # YANG must (now a flow-tap hook rule): flow-tap and dynamic-flow-capture together
    "dynamic-flow-capture": [
        edit(cfg(f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>'), test_only=True),
        *edit_commit(cfg(f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>')),
        *edit_commit(cfg(f'<services xmlns="{SVC}"><dynamic-flow-capture nc:operation="delete"/>'
                         "</services>", nc_prefix=True)),
    ],
    # YANG must (now a hook rule): the flow-tap interface names a configured unit ...
    "service-unit-removed": [
        *edit_commit(interface("sp-0/0/0", '<unit nc:operation="delete"><name>0</name></unit>')),
        *edit_commit(interface("sp-0/0/0", UNIT0)),
    ],
    # ... with family inet
    "service-unit-inet-removed": [
        *edit_commit(interface("sp-0/0/0", '<unit><name>0</name><family><inet nc:operation='
                               '"delete"/><inet6/></family></unit>')),
        *edit_commit(interface("sp-0/0/0", UNIT0)),
    ],
    # dataplane/service.py check(): two capture interfaces on one Linux device
    "shared-host-device": [
        *edit_commit(cfg(f'<interfaces xmlns="{IFS}">'
                         "<interface><name>ge-0/0/2</name><host-device>lo</host-device></interface>"
                         "<interface><name>ge-0/0/3</name><host-device>lo</host-device></interface>"
                         "</interfaces>")),
        *edit_commit(cfg(f'<interfaces xmlns="{IFS}" xmlns:nc="{NC}">'
                         '<interface nc:operation="delete"><name>ge-0/0/2</name></interface>'
                         '<interface nc:operation="delete"><name>ge-0/0/3</name></interface>'
                         "</interfaces>")),
    ],
    # dataplane/service.py prepare(): a capture device that does not exist
    "missing-capture-device": [
        *edit_commit(interface("ge-0/0/6", UNIT0)),
        *edit_commit(interface("ge-0/0/6", op="delete")),
    ],
    # access.check_edit_request: an edit naming LI configuration (present or not)
    "edit-names-li-configuration": [
        edit(cfg(f'<services xmlns="{SVC}"><flow-tap nc:operation="delete"/></services>',
                 nc_prefix=True)),
        edit(cfg(f'<system xmlns="{SYS}"><services>{dtcp_service(4242)}</services></system>')),
        edit(cfg(f'<services xmlns="{SVC}" nc:operation="replace"/>', nc_prefix=True)),
        lambda m: m.copy_config(source="running", target="candidate"),
    ],
    # the shared candidate: the LI administrator left uncommitted LI edits (tapped only)
    "pending-li-edits": [
        lambda m: m.lock("candidate"),
        edit(cfg(f'<system xmlns="{SYS}"><host-name>edited</host-name></system>')),
        validate, commit, lambda m: m.unlock("candidate"),
        lambda m: m.validate(source="running"),
    ],
}
PENDING_LI_EDITS = cfg(
    f'<services xmlns="{SVC}"><flow-tap><interface nc:operation="delete"/>'
    "<limits><criteria-per-source>40000</criteria-per-source></limits></flow-tap></services>"
    f'<system xmlns="{SYS}"><services><flow-tap-dtcp><ssh><rate-limit>9</rate-limit></ssh>'
    "</flow-tap-dtcp></services></system>", nc_prefix=True)


# Every error text in src/ and yang/ that names flow-tap, DTCP or dynamic-flow-capture, and the
# CASES entry that runs it as non-LI users, or why no non-LI user can reach it.
ERROR_PATHS = {
    "flow-tap and dynamic-flow-capture cannot be configured together": "dynamic-flow-capture",
    "flow-tap interface names a unit that is not configured under interfaces":
        "service-unit-removed",
    "flow-tap interface unit has no family inet": "service-unit-inet-removed",
    "flow-tap: interfaces {seen[device]} and {ifd} both use host-device": "shared-host-device",
    "flow-tap: cannot capture on interface {ifd}: {reason}": "missing-capture-device",
    # a device that exists but cannot be opened: the same lenient path as a missing one
    "flow-tap: {exc}": "missing-capture-device",
    # the bind decides for non-LI users (test_row6_netconf_on_the_hidden_dtcp_port_...)
    "NETCONF and flow-tap-dtcp cannot share a port": "netconf-port",
    # YANG rules on flow-tap's own leaves: the same two reasons
    "flow-tap needs an interface (services PIC unit) or a tunnel-interface": "pending-li-edits",
    "flow-tap limits criteria-per-source (default 16384) must": "pending-li-edits",
    "flow-tap interface must be a logical unit (type-fpc/pic/port.unit)":
        "edit-names-li-configuration",
    "flow-tap interface must be a services PIC unit (sp-fpc/pic/port.unit)":
        "edit-names-li-configuration",
    # get-flow-tap-information (flowtap-cli show services flow-tap): a child element is refused
    # alike for every user and whatever is configured (it names the RPC, no LI fact) ...
    "Unsupported element {local!r} in <get-flow-tap-information>": "names-only-the-rpc",
    # ... and only a caller who may read flow-tap-state gets past access-denied to this one
    "This server runs no flow-tap service": "li-readers-only",
    # the X1 TLS files are read only when services flow-tap x1 changes, which only a flow-tap
    # user can do (test_x1_tasking.py::test_x1_tls_files_fail_only_the_commit_that_changes_x1)
    "services flow-tap x1 {leaf}: {detail}": "li-editors-only",
}
NOT_RUN_AS_NON_LI = {"netconf-port", "names-only-the-rpc", "li-readers-only", "li-editors-only"}
REPO = Path(__file__).resolve().parents[2]


def li_error_texts() -> set[str]:
    """The error texts of src/flowtap (CommitFailed, ConfigError, NetconfRpcError) and yang/
    (error-message) that name flow-tap, DTCP or dynamic-flow-capture."""
    import ast

    li = re.compile(r"flow-tap|dtcp|dynamic-flow", re.IGNORECASE)
    found: set[str] = set()
    for path in (REPO / "src" / "flowtap").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name not in ("CommitFailed", "ConfigError", "NetconfRpcError"):
                continue
            values = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "message")]
            for value in values:
                text = ast.unparse(value)
                if li.search(text):
                    found.add(re.sub(r"^f?'|'$", "", text))
    for path in (REPO / "yang").glob("*.yang"):
        found.update(m for m in re.findall(r'error-message\s+"([^"]*)"', path.read_text())
                     if li.search(m))
    return found


def test_every_li_error_path_is_enumerated():
    found = li_error_texts()
    listed = {next((k for k in ERROR_PATHS if text.startswith(k)), text) for text in found}
    assert listed == set(ERROR_PATHS), "classify new LI error texts in ERROR_PATHS"
    assert set(ERROR_PATHS.values()) <= {*CASES, *NOT_RUN_AS_NON_LI}


def outcome(step: Step, m: Any) -> object:
    try:
        step(m)
    except RPCError as exc:
        return (exc.type, exc.tag, exc.severity, exc.path, exc.message, exc.app_tag)
    return "ok"


def run(server: Flowtapd, user: str, steps: list[Step]) -> list[object]:
    with server.connect(user) as m:
        return [outcome(step, m) for step in steps]


def assert_no_li_fact(text: str, server: Flowtapd) -> None:
    lowered = text.lower()
    assert "flow-tap" not in lowered and "dtcp" not in lowered and "flow_tap" not in lowered
    if server.dtcp_port:
        assert str(server.dtcp_port) not in text


@pytest.mark.parametrize("case", list(CASES))
def test_non_li_replies_identical_with_and_without_flow_tap(pair, case):
    plain, tapped = pair
    if case == "pending-li-edits":
        with tapped.connect("admin") as m:  # left in the shared candidate, uncommitted
            m.edit_config(target="candidate", config=PENDING_LI_EDITS)
    for user in NON_LI:
        without, with_ = run(plain, user, CASES[case]), run(tapped, user, CASES[case])
        assert with_ == without, (user, case)
        assert_no_li_fact(repr(with_), tapped)
        if user == "su" and case != "edit-names-li-configuration":
            assert without == ["ok"] * len(without), without  # nothing here is refused
    if case == "pending-li-edits":
        with tapped.connect("admin") as m:  # the LI edits are still there, still its own
            candidate = m.get_config("candidate").data_xml
            assert "<rate-limit>9</rate-limit>" in candidate
            assert "<host-name>edited</host-name>" in candidate
            assert "<host-name>edited</host-name>" in m.get_config("running").data_xml
            assert "<rate-limit>9</rate-limit>" not in m.get_config("running").data_xml
            with pytest.raises(RPCError) as exc:
                m.validate(source="candidate")  # its own invalid edit: told precisely
            assert "flow-tap needs an interface" in exc.value.message


# LI holders keep the precise errors: what each CASES entry hid, the LI administrator is told.
PRECISE = {
    "dynamic-flow-capture": (cfg(f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>'),
                             "flow-tap and dynamic-flow-capture cannot be configured together"),
    "service-unit-removed": (
        cfg(f'<interfaces xmlns="{IFS}" xmlns:nc="{NC}"><interface><name>sp-0/0/0</name><unit '
            'nc:operation="delete"><name>0</name></unit></interface></interfaces>'),
        "flow-tap interface names a unit that is not configured under interfaces"),
    "shared-host-device": (
        cfg(f'<interfaces xmlns="{IFS}">'
            "<interface><name>ge-0/0/2</name><host-device>lo</host-device></interface>"
            "<interface><name>ge-0/0/3</name><host-device>lo</host-device></interface>"
            "</interfaces>"),
        "flow-tap: interfaces ge-0/0/2 and ge-0/0/3 both use host-device lo"),
    "missing-capture-device": (interface("ge-0/0/6", UNIT0),
                               "flow-tap: cannot capture on interface ge-0/0/6: "
                               "device 'ge-0/0/6' does not exist"),
}


def test_li_holders_keep_the_precise_errors(pair):
    _, tapped = pair
    with tapped.connect("admin") as m:
        running = m.get_config("running").data_xml
        for case, (config, message) in PRECISE.items():
            m.discard_changes()
            m.edit_config(target="candidate", config=config)
            if case != "missing-capture-device":  # a device is only looked for at commit
                with pytest.raises(RPCError) as exc:
                    m.validate(source="candidate")
                assert message in exc.value.message, case
            with pytest.raises(RPCError) as exc:
                m.commit()
            assert message in exc.value.message, case
            assert exc.value.path and ("flow-tap" in exc.value.path or "ge-0/0" in exc.value.path)
        m.discard_changes()
        assert m.get_config("running").data_xml == running


def state_of(server: Flowtapd, user: str = "admin") -> dict[str, list[str]]:
    from .seed_support import flow_tap_state

    with server.connect(user) as m:
        return flow_tap_state(m.get().data_xml)


def li_audit(server: Flowtapd, event: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The LI audit records of ``event`` (appended asynchronously: wait for the first)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = server.audit_log.read_bytes().splitlines()[1:]
        found = [r for r in map(json.loads, lines) if r["event"] == event]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_row4_flow_tap_state_only_for_flow_tap_holders(pair):
    _, tapped = pair
    assert state_of(tapped)["status"] == ["running"]  # admin: flow-tap-control implies flow-tap
    assert state_of(tapped, "ftctl")["criteria"] == ["0"]
    with tapped.connect("mda") as md:  # while a mediation device is logged in over NETCONF
        for user in ("mda", *NON_LI):
            with tapped.connect(user) as m:
                for reply in (
                    m.get().data_xml,
                    m.get(filter=("subtree", f'<flow-tap-state xmlns="{SVC}"/>')).data_xml,
                    m.get(filter=("xpath", ({"s": SVC}, "//s:*"))).data_xml,
                ):
                    assert "flow-tap-state" not in reply and "dtcp-sessions" not in reply, user
                    if user != "mda":  # nor who the LI users are
                        assert "<username>mda</username>" not in reply, user
        assert "<username>mda</username>" in md.get().data_xml  # its own session
        with tapped.connect("admin") as m:
            assert "<username>mda</username>" in m.get().data_xml


def test_row5_super_user_without_li_bits_commits_and_flow_tap_degrades(pair):
    _, tapped = pair
    with tapped.connect("su") as m:
        m.edit_config(target="candidate", config=interface("ge-0/0/6", UNIT0))
        m.commit()
    state = state_of(tapped)
    assert state["status"] == ["degraded"]
    assert state["degraded-reason"] == [
        "flow-tap: cannot capture on interface ge-0/0/6: device 'ge-0/0/6' does not exist"]
    [record] = li_audit(tapped, "flow-tap")
    assert (record["result"], record["principal"]) == ("degraded", "su")
    assert "ge-0/0/6" in record["reason"]
    with tapped.connect("admin") as m:  # what su left does not block the LI administrator
        m.edit_config(target="candidate", config=cfg(
            f'<system xmlns="{SYS}"><host-name>li-admin-was-here</host-name></system>'))
        m.commit()
    with tapped.connect("su") as m:  # the interface goes: flow-tap serves its configuration again
        m.edit_config(target="candidate", config=interface("ge-0/0/6", op="delete"))
        m.commit()
    assert state_of(tapped)["status"] == ["running"]
    assert "degraded-reason" not in state_of(tapped)
    assert [r["result"] for r in li_audit(tapped, "flow-tap")] == ["degraded", "restored"]


def test_row6_dynamic_flow_capture_next_to_flow_tap_leaves_flow_tap_running(pair):
    _, tapped = pair
    with tapped.connect("ops") as m:
        m.edit_config(target="candidate",
                      config=cfg(f'<services xmlns="{SVC}"><dynamic-flow-capture/></services>'))
        m.validate(source="candidate")
        m.commit()
    state = state_of(tapped)
    assert state["status"] == ["degraded"]
    assert state["degraded-reason"] == [
        "flow-tap and dynamic-flow-capture cannot be configured together"]
    with tapped.connect("admin") as m:  # a conflict someone else left does not block LI work
        m.edit_config(target="candidate", config=cfg(
            f'<system xmlns="{SYS}"><services><flow-tap-dtcp><ssh><rate-limit>9</rate-limit>'
            "</ssh></flow-tap-dtcp></services></system>"))
        m.commit()


def _netconf_port_reply(server: Flowtapd, port: int) -> object:
    with server.connect("su") as m:
        return outcome(edit(cfg(f'<system xmlns="{SYS}"><services><netconf><ssh><port>{port}'
                                "</port></ssh></netconf></services></system>")), m), outcome(
            commit, m)  # fmt: skip


def test_row6_netconf_on_the_hidden_dtcp_port_gets_the_generic_bind_error(pair):
    plain, tapped = pair
    dtcp = tapped.dtcp_port
    other = other_port(dtcp, plain.port, tapped.port)
    with socket.create_server(("0.0.0.0", other)):  # a port some process holds
        held = _netconf_port_reply(plain, other)
    tapped_reply = _netconf_port_reply(tapped, dtcp)
    assert held[0] == tapped_reply[0] == "ok"
    assert tapped_reply[1] != "ok"
    assert re.sub(str(dtcp), "P", repr(tapped_reply[1])) == re.sub(str(other), "P", repr(held[1]))
    assert_no_li_fact(repr(tapped_reply).replace(str(dtcp), ""), tapped)
    with tapped.connect("admin") as m:  # the LI administrator is told why
        m.edit_config(target="candidate", config=cfg(
            f'<system xmlns="{SYS}"><services><netconf><ssh><port>{dtcp}</port></ssh></netconf>'
            "</services></system>"))
        with pytest.raises(RPCError) as exc:
            m.commit()
        assert exc.value.message == "NETCONF and flow-tap-dtcp cannot share a port"


def test_row6_dtcp_configured_without_flow_tap_holds_no_port(tmp_path):
    """DTCP configured but not listening (no flow-tap): its port is free, so NETCONF may take
    it, exactly as if no DTCP were configured."""
    dtcp = other_port()
    server = start(tmp_path, "dtcp-only", flow_tap=False, dtcp_port=dtcp)
    try:
        assert _netconf_port_reply(server, dtcp) == ("ok", "ok")
        server.port = dtcp
        with server.connect("su") as m:
            assert f"<port>{dtcp}</port>" in m.get_config("running").data_xml
    finally:
        server.stop()


def test_uncommitted_li_configuration_from_nothing_is_not_seen_by_others(pair):
    """An LI user starts flow-tap in the shared candidate (no ``services`` in running at all)
    and has not committed: others lock, edit, validate, commit and unlock as if it were not
    there, and it stays in the candidate for its author."""
    plain, _ = pair
    with plain.connect("admin") as m:
        m.edit_config(target="candidate", config=cfg(
            FLOW_TAP + f'<system xmlns="{SYS}"><services>{dtcp_service(other_port())}'
            "</services></system>"))
    for user in NON_LI:
        assert run(plain, user, CASES["pending-li-edits"]) == run(
            plain, user, CASES["pending-li-edits"])  # and again, after its own commit
    assert run(plain, "su", CASES["pending-li-edits"]) == ["ok"] * 6
    with plain.connect("admin") as m:
        assert "sp-0/0/0.0" in m.get_config("candidate").data_xml
        assert "sp-0/0/0.0" not in m.get_config("running").data_xml
        m.commit()  # still its own to commit
        assert "sp-0/0/0.0" in m.get_config("running").data_xml
