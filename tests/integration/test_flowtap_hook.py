"""Issue 5 item 6: the flow-tap commit hook reconciles the dataplane (acceptance 7, commit part).

Two levels, both on a real routed topology (``flowtap.tools.netns``):
- a real flowtapd inside the router namespace, driven over NETCONF with ncclient; what it
  captures is read from the kernel (``/proc/PID/net/packet``: the namespace is its own);
- the hook object in-process with a real dataplane, to see copies start, stop and resume.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ncclient.operations import RPCError

from flowtap.auth.principal import Principal
from flowtap.config import li_policy, model
from flowtap.config.permissions import expand
from flowtap.dataplane import ffi
from flowtap.dataplane.engine import default_workers
from flowtap.dataplane.service import FlowTapService
from flowtap.errors import CommitFailed
from flowtap.intercept.criteria import ContentDestination, Match
from flowtap.tools.netns import Topology, unique_prefix
from flowtap.tools.traffic import udp_packet
from tests.dataplane.helpers import addr, cfg_model, crit, vals
from tests.dataplane.netns_helpers import drain, send, settle, udp_receiver
from tests.flowtapd import NC, SVC, Flowtapd, free_port

from .conftest import USERS

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"), reason="needs root + ip"),
]

IFS = "urn:flowtap:yang:interfaces"
SND, RCV, RCV6 = "198.18.1.2", "198.18.2.2", "2001:db8:2::2"
CD = ContentDestination("cd", "198.18.3.2", 47000, "198.18.99.1", 5555, 64)
FLOW = Match(dest_address=addr(RCV), protocol=vals("17"), dest_port=vals("20000"))
FLOW6 = Match(dest_address=addr(RCV6), protocol=vals("17"), dest_port=vals("20000"))

WORKERS = default_workers()  # the daemon's capture workers: one per CPU


def iface(name: str, device: str | None = None, *, disable: bool = False,
          inet6: bool = False) -> str:
    host = f"<host-device>{device}</host-device>" if device else ""
    fam = "<inet/><inet6/>" if inet6 else "<inet/>"
    return (f"<interface><name>{name}</name>{host}{'<disable/>' if disable else ''}"
            f"<unit><name>0</name><family>{fam}</family></unit></interface>")


def config(*interfaces: str, flow_tap: str | None = "sp-0/0/0.0") -> str:
    ft = (f'<services xmlns="{SVC}"><flow-tap><interface>{flow_tap}</interface></flow-tap>'
          "</services>") if flow_tap else ""
    return f'<config xmlns="{NC}"><interfaces xmlns="{IFS}">{"".join(interfaces)}</interfaces>{ft}</config>'


BASE = (iface("sp-0/0/0", "lo"), iface("ge-0/0/0", "rin"), iface("ge-0/0/1", "rout"))


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    t = Topology(unique_prefix("fthk")).up()
    try:
        yield t
    finally:
        t.down()


@pytest.fixture
def daemon(topo: Topology, tmp_path: Path) -> Iterator[Flowtapd]:
    server = Flowtapd(tmp_path / "state", free_port(), dict(USERS), netns=topo.ns("rtr"))
    server.start()
    yield server
    server.stop()


def ifnames(topo: Topology) -> dict[int, str]:
    out = json.loads(topo.ip("rtr", "-j", "link", "show").stdout)
    return {link["ifindex"]: link["ifname"] for link in out}


def captured(topo: Topology, server: Flowtapd) -> list[str]:
    """Devices of the AF_PACKET sockets in flowtapd's namespace (sorted, repeats kept), each
    device counted once per full set of capture-worker rings: a device with a ring per worker
    shows once; a leaked or missing ring shows as the raw count, which no test expects."""
    assert server.proc is not None
    rows = Path(f"/proc/{server.proc.pid}/net/packet").read_text().splitlines()[1:]
    names = ifnames(topo)
    counts = Counter(names.get(int(r.split()[4]), "?") for r in rows)
    if any(n % WORKERS for n in counts.values()):
        return sorted(counts.elements())
    return sorted(dev for dev, n in counts.items() for _ in range(n // WORKERS))


def inodes(server: Flowtapd) -> set[int]:
    assert server.proc is not None
    rows = Path(f"/proc/{server.proc.pid}/net/packet").read_text().splitlines()[1:]
    return {int(r.split()[8]) for r in rows}


def eventually(probe: Callable[[], object], wanted: object, timeout: float = 10.0) -> object:
    """Poll until ``probe() == wanted`` (rings a rebind retires close on the capture thread)."""
    deadline = time.monotonic() + timeout
    value = probe()
    while value != wanted and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


def commit(server: Flowtapd, cfg: str, operation: str = "merge") -> None:
    with server.connect() as m:
        m.edit_config(target="candidate", config=cfg, default_operation=operation)
        m.commit()


# ---- flowtapd over NETCONF ----

def test_commit_starts_capture_then_removal_closes_every_socket(topo, daemon):
    assert captured(topo, daemon) == []
    commit(daemon, config(*BASE))
    # every interface but the services PIC, on its host-device; lo (sp-0/0/0) is not captured
    assert eventually(lambda: captured(topo, daemon), ["rin", "rout"]) == ["rin", "rout"]
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}" xmlns:nc="{NC}"><services xmlns="{SVC}">'
            '<flow-tap nc:operation="delete"/></services></config>'))
        m.commit()
    assert eventually(lambda: captured(topo, daemon), []) == []


def test_missing_device_is_resource_denied_and_changes_nothing(topo, daemon):
    commit(daemon, config(*BASE))
    assert eventually(lambda: captured(topo, daemon), ["rin", "rout"]) == ["rin", "rout"]
    before = inodes(daemon)
    with daemon.connect() as m:
        running = m.get_config("running").data_xml
        m.edit_config(target="candidate", config=config(iface("ge-0/0/2", "nosuchdev0")))
        with pytest.raises(RPCError) as exc:
            m.commit()
        assert exc.value.tag == "resource-denied"
        assert "ge-0/0/2" in exc.value.path and "host-device" in exc.value.path
        assert "nosuchdev0" in exc.value.message
        assert m.get_config("running").data_xml == running
        # an interface named like a device that does not exist either
        m.discard_changes()
        m.edit_config(target="candidate", config=config(iface("ge-0/0/3")))
        with pytest.raises(RPCError) as exc:
            m.commit()
        assert exc.value.tag == "resource-denied"
        assert exc.value.path.endswith("[fti:name='ge-0/0/3']")
        m.discard_changes()
    assert inodes(daemon) == before  # the running rings were never touched
    # without flow-tap the same interface commits: nothing needs its device
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=(
            f'<config xmlns="{NC}" xmlns:nc="{NC}"><services xmlns="{SVC}">'
            '<flow-tap nc:operation="delete"/></services></config>'))
        m.edit_config(target="candidate", config=config(iface("ge-0/0/2", "nosuchdev0"),
                                                        flow_tap=None))
        m.commit()
    assert eventually(lambda: captured(topo, daemon), []) == []


def test_interface_changes_rebind(topo, daemon):
    commit(daemon, config(*BASE))
    assert eventually(lambda: captured(topo, daemon), ["rin", "rout"]) == ["rin", "rout"]
    commit(daemon, config(iface("ge-0/0/1", "rout", disable=True)))
    assert eventually(lambda: captured(topo, daemon), ["rin"]) == ["rin"]
    enable = (f'<interface xmlns:nc="{NC}"><name>ge-0/0/1</name>'
              '<disable nc:operation="remove"/></interface>')
    commit(daemon, config(enable, iface("ge-0/0/2", "rmed")))
    wanted = ["rin", "rmed", "rout"]
    assert eventually(lambda: captured(topo, daemon), wanted) == wanted
    # a disabled services PIC stops flow-tap
    commit(daemon, config(iface("sp-0/0/0", "lo", disable=True)))
    assert eventually(lambda: captured(topo, daemon), []) == []


def test_two_interfaces_on_one_device_refused(topo, daemon):
    with daemon.connect() as m:
        m.edit_config(target="candidate", config=config(*BASE, iface("ge-0/0/5", "rin")))
        with pytest.raises(RPCError) as exc:
            m.commit()
        assert exc.value.tag == "invalid-value" and "ge-0/0/5" in exc.value.path
    assert captured(topo, daemon) == []


def test_boot_with_a_vanished_device_still_starts(topo, tmp_path):
    extra = config(*BASE, iface("ge-0/0/9", "gone0"))
    extra = extra[extra.index(">") + 1:-len("</config>")]  # the children of <config>
    server = Flowtapd(tmp_path / "state", free_port(), dict(USERS), extra_config=extra,
                      netns=topo.ns("rtr"))
    server.start()
    try:
        assert eventually(lambda: captured(topo, server), ["rin", "rout"]) == ["rin", "rout"]
        # a commit that changes what is captured reports the missing device
        with server.connect() as m:
            m.edit_config(target="candidate", config=config(iface("ge-0/0/2", "rmed")))
            with pytest.raises(RPCError) as exc:
                m.commit()
            assert exc.value.tag == "resource-denied" and "ge-0/0/9" in exc.value.path
    finally:
        server.stop()


# ---- the hook in-process: copies start, stop and resume (acceptance 7, commit level) ----

class Hooked:
    """Drives the hook the way the transaction manager does, inside the router namespace."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.hook = FlowTapService()
        self.config = model.Config()
        self.stops = 0
        self.hook.on_stop.append(self._stopped)

    def _stopped(self) -> None:
        self.stops += 1

    async def commit(self, new: model.Config) -> None:
        self.hook.validate(self.config, new)
        with ffi.netns(self.topo.ns("rtr")):
            handle = await self.hook.prepare(self.config, new)
        await self.hook.commit(handle)
        self.config = new

    def copies(self, packet: bytes, count: int, expect: int) -> int:
        """Send ``count`` packets; how many copies reached the content destination (waits
        for the dataplane to have matched ``expect`` packets, then for a quiet 0.3 s)."""
        rx = udp_receiver(self.topo, "med", 47000)
        dp = self.hook.dataplane
        seen = sum(c.packets for c in dp.counters().values()) if dp is not None else 0
        try:
            send(self.topo, [packet], count=count)
            if dp is not None and expect:
                settle(dp.counters, seen + expect, timeout=5)
            return len(drain(rx, 0.3))
        finally:
            rx.close()


@pytest.fixture
def hooked(topo: Topology) -> Iterator[Hooked]:
    h = Hooked(topo)
    try:
        yield h
    finally:
        h.hook.close()


PKT = udp_packet(SND, RCV, 10000, 20000, 64)
PKT6 = udp_packet("2001:db8:1::2", RCV6, 10000, 20000, 80)


async def test_removing_flow_tap_stops_copies_and_re_adding_starts_empty(hooked):
    await hooked.commit(cfg_model())
    dp = hooked.hook.dataplane
    assert dp is not None and hooked.hook.plan is not None
    assert hooked.hook.plan.devices == ("rin", "rout")
    with ffi.netns(hooked.topo.ns("rtr")):
        dp.set_criteria([crit(1, FLOW, CD)])
    assert hooked.copies(PKT, 200, 200) == 200
    await hooked.commit(cfg_model(flow_tap=False))  # one commit: copies stop
    assert hooked.hook.dataplane is None and hooked.stops == 1
    assert hooked.copies(PKT, 200, 0) == 0
    assert dp.counters() == {}  # the criteria are gone with it
    await hooked.commit(cfg_model())  # back: running, with no criteria
    dp = hooked.hook.dataplane
    assert dp is not None and dp.counters() == {} and hooked.stops == 1
    assert hooked.copies(PKT, 200, 0) == 0
    with ffi.netns(hooked.topo.ns("rtr")):
        dp.set_criteria([crit(2, FLOW, CD)])
    assert hooked.copies(PKT, 200, 200) == 200


async def test_rebind_keeps_criteria_and_restart_drops_them(hooked):
    await hooked.commit(cfg_model())
    dp = hooked.hook.dataplane
    assert dp is not None
    with ffi.netns(hooked.topo.ns("rtr")):
        dp.set_criteria([crit(1, FLOW, CD)])
    assert hooked.copies(PKT, 100, 100) == 100
    await hooked.commit(cfg_model(rout=False))  # an interface change: rebind
    assert hooked.hook.plan is not None and hooked.hook.plan.devices == ("rin",)
    assert hooked.stops == 0 and set(dp.counters()) == {1}
    assert hooked.copies(PKT, 100, 100) == 100
    assert dp.counters()[1].packets == 200  # the same counter carried on
    await hooked.commit(cfg_model(rout=False))  # nothing changed: nothing happens
    assert hooked.stops == 0
    await hooked.commit(cfg_model(rout=False, service="sp-1/0/0.0"))  # another PIC: restart
    assert hooked.stops == 1 and dp.counters() == {}
    assert hooked.copies(PKT, 100, 0) == 0


async def test_ipv6_tapped_only_with_family_inet6_on_the_sp_unit(hooked):
    await hooked.commit(cfg_model())
    dp = hooked.hook.dataplane
    assert dp is not None
    with ffi.netns(hooked.topo.ns("rtr")):
        dp.set_criteria([crit(1, FLOW6, CD)])
    assert hooked.copies(PKT6, 100, 0) == 0
    await hooked.commit(cfg_model(inet6=True))  # rebind with IPv6, criteria kept
    assert hooked.stops == 0
    assert hooked.copies(PKT6, 100, 100) == 100


async def test_missing_device_fails_prepare_and_leaves_the_dataplane_alone(hooked):
    await hooked.commit(cfg_model())
    old = hooked.hook.plan
    cfg = cfg_model()
    bad = {**cfg.interfaces, "ge-0/0/7": model.Interface("ge-0/0/7", "nosuchdev7")}
    new = model.Config(interfaces=bad, flow_tap=cfg.flow_tap)
    with ffi.netns(hooked.topo.ns("rtr")), pytest.raises(CommitFailed) as exc:
        await hooked.hook.prepare(hooked.config, new)
    assert exc.value.tag == "resource-denied"
    assert exc.value.path == "/fti:interfaces/fti:interface[fti:name='ge-0/0/7']/fti:host-device"
    assert hooked.hook.plan == old


SUPER_USER = Principal("su", "su", "super-user", expand({"all"}), "password")


async def test_without_li_bits_a_missing_device_degrades_and_capture_resumes(hooked):
    """Issue 13 row 5: a commit by a user who cannot see flow-tap is never refused by it; what
    cannot be captured is reported (not to that user), and captured once it exists."""
    reports: list[tuple[tuple[str, ...], str]] = []
    hooked.hook.on_degraded.append(lambda reasons, who: reports.append((reasons, who)))
    await hooked.commit(cfg_model())
    cfg = cfg_model()
    late = {**cfg.interfaces, "ge-0/0/7": model.Interface("ge-0/0/7", "ftlate0")}
    new = model.Config(interfaces=late, flow_tap=cfg.flow_tap)
    with li_policy.committing(SUPER_USER):
        await hooked.commit(new)
    assert hooked.hook.plan is not None and hooked.hook.plan.devices == ("rin", "rout")
    assert reports == [(("flow-tap: cannot capture on interface ge-0/0/7: device 'ftlate0' "
                         "does not exist",), "su")]
    assert hooked.hook.degraded == reports[0][0]
    hooked.topo.ip("rtr", "link", "add", "ftlate0", "type", "veth", "peer", "name", "ftlate1")
    try:
        hooked.topo.ip("rtr", "link", "set", "ftlate0", "up")
        with li_policy.committing(SUPER_USER):  # the next commit, anyone's, captures it
            await hooked.commit(new)
        assert hooked.hook.plan.devices == ("rin", "rout", "ftlate0")
        assert hooked.hook.degraded == () and reports[-1] == ((), "su")
    finally:
        hooked.hook.close()
        hooked.topo.ip("rtr", "link", "del", "ftlate0", check=False)


def test_topology_helpers_are_clean(topo):
    """The hook's namespace holds no stray packet sockets between tests."""
    rows = subprocess.run(["ip", "netns", "exec", topo.ns("rtr"), "cat", "/proc/net/packet"],
                          capture_output=True, text=True, check=True).stdout.splitlines()[1:]
    assert rows == []
