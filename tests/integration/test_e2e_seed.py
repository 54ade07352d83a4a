"""Issue 6 item 2: the seed's story end to end, step by step, on real processes.

Juniper's "Configuring Flow-Tap Services for Lawful Intercept", in network namespaces
(:mod:`flowtap.tools.demo.lab`): a sender, the router running flowtapd, a receiver with the
subscribers, and one network per agency holding its mediation device and content destination.
FreeRADIUS runs beside flowtapd in the router's namespace.

1. An administrator holding flow-tap-control configures over NETCONF (ncclient) the services
   PIC interface, the flow-tap service, flow-tap-dtcp with the seed's limits, login classes and
   users (agency A's mediation device local, agency B's known only to RADIUS with
   ``Juniper-User-Permissions = "flow-tap-operation"`` and the ``remote`` template, with
   ``authentication-order [radius password]``), and commits.
2. Both mediation devices connect over DTCP and ADD a criterion for their own target with
   their own content destination; traffic flows (two targets and a bystander); each collector
   receives exactly its target's packets, byte-identical; the receiver gets every packet as a
   router forwards it.
3. Neither agency's LIST shows the other's criterion; the flow-tap-state shows the counters to
   the LI administrator; a non-LI administrator (class super-user: every bit but the three LI
   ones) sees no flow-tap configuration, no state, no target in ``<get>`` or ``<get-config>``.
4. DELETE stops the copies; a commit that removes flow-tap-dtcp closes the DTCP sessions; a
   commit that lowers connection-limit refuses the next connection and keeps the open one.
5. The LI audit log verifies and holds exactly one record per step; flowtapd's own output at
   INFO names no target.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from lxml import etree

from flowtap import audit
from flowtap.dataplane import ffi
from flowtap.tools.demo import config
from flowtap.tools.demo.daemon import Proc, collector
from flowtap.tools.demo.lab import AGENCY_A, AGENCY_B, BYSTANDER, Agency, Lab, check_prefilter
from flowtap.tools.demo.traffic import Flow, Sender, forwarded, packets
from flowtap.tools.dtcp_client import AsyncDtcpClient
from flowtap.tools.netns import unique_prefix
from tests.flowtapd import NC, SVC, SYS, Flowtapd, TestUser
from tests.integration.seed_support import (
    audit_kinds,
    audit_records,
    connect_md,
    flow_tap_state,
    multiset,
    of,
    pcap_packets,
    read_wire,
    until,
    wire,
)
from tests.radius_server import FREERADIUS, SECRET, FreeRadius

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("ss"),
                       reason="needs root, ip and ss"),
    pytest.mark.skipif(not Path(FREERADIUS).exists(), reason="needs FreeRADIUS"),
]

ADMIN = TestUser("admin", "admin-pw-1", "li-admin")  # all + flow-tap-control
NON_LI = TestUser("netadmin", "netadmin-pw-1", "super-user")  # all, no LI bit
MD_A_PASSWORD = "md-a-local-pw-1"  # agency A's mediation device: a local user
MD_B_PASSWORD = "md-b-radius-pw-1"  # agency B's: known only to RADIUS
RADIUS_USERS = f"""\
{AGENCY_B.user} Cleartext-Password := "{MD_B_PASSWORD}"
        Juniper-User-Permissions = "flow-tap-operation"
"""
FLOWS = (Flow("target A", AGENCY_A.target, 40000, 5004),
         Flow("target B", AGENCY_B.target, 40002, 443),
         Flow("bystander", BYSTANDER, 40004, 8080))  # fmt: skip
TARGETS = (AGENCY_A.target, AGENCY_B.target)
RATE = 5000.0


@pytest.fixture
def lab() -> Iterator[Lab]:
    topology = Lab(unique_prefix("ftseed")).up()
    try:
        yield topology
    finally:
        topology.down()


@pytest.fixture
def radius(lab: Lab, tmp_path: Path) -> Iterator[FreeRadius]:
    server = FreeRadius(tmp_path / "radius", users=RADIUS_USERS)
    with ffi.netns(lab.ns("rtr")):  # forked from this thread: it runs in the router's namespace
        server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def daemon(lab: Lab, radius: FreeRadius, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Flowtapd]:  # fmt: skip
    monkeypatch.setenv("FLOWTAP_TEST_LOG", "INFO")  # ordinary logs at INFO: checked for targets
    server = Flowtapd(tmp_path / "state", 830, {"admin": ADMIN}, netns=lab.ns("rtr"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def edit(body: str) -> str:
    return f'<config xmlns="{NC}">{body}</config>'


class Story:
    """What the steps share: the lab, the collectors and what was sent and copied."""

    def __init__(self, lab: Lab, tmp_path: Path) -> None:
        self.lab = lab
        self.tmp_path = tmp_path
        self.collectors: dict[str, Proc] = {}
        self.sent: list[tuple[Flow, bytes]] = []
        self.copied: dict[str, list[bytes]] = {AGENCY_A.label: [], AGENCY_B.label: []}

    def pcap(self, agency: Agency) -> Path:
        return self.tmp_path / f"agency-{agency.label.lower()}.pcap"

    def start_collectors(self) -> None:
        for a in (AGENCY_A, AGENCY_B):
            self.collectors[a.label] = collector(
                self.lab.ns(a.role), a.address, a.cd_port, self.pcap(a),
                self.tmp_path / f"collector-{a.label}.log")

    def stop_collectors(self) -> None:
        for proc in self.collectors.values():
            proc.stop(grace=5)

    async def traffic(self, per_flow: int, tapped: tuple[Agency, ...]) -> None:
        """Send ``per_flow`` packets of every flow; ``tapped`` agencies expect their target's
        copies. Asserts that each collector then holds exactly the copies expected so far and
        that the receiver got every packet as a router forwards it (TTL - 1, nothing else)."""
        batch = packets(FLOWS, per_flow, first_ident=len(self.sent))
        self.sent += batch
        for a in tapped:
            self.copied[a.label] += of(batch, a.target)
        sender = Sender(self.lab)
        try:
            with wire(self.lab, "rcv", "rcv0") as rx:
                assert await asyncio.to_thread(sender.send, [p for _, p in batch], RATE) == len(
                    batch)
                arrived: list[bytes] = []

                def complete() -> bool:
                    arrived.extend(read_wire(rx))
                    return len(arrived) >= len(batch) and all(
                        len(pcap_packets(self.pcap(a))) >= len(self.copied[a.label])
                        for a in (AGENCY_A, AGENCY_B))

                await until(complete)
                await asyncio.sleep(0.3)  # and nothing more arrives
                arrived.extend(read_wire(rx))
        finally:
            sender.close()
        assert multiset(arrived) == multiset([forwarded(p) for _, p in batch]), \
            "the receiver must get every packet, unchanged but for the router's TTL decrement"
        for a in (AGENCY_A, AGENCY_B):
            got = pcap_packets(self.pcap(a))
            assert multiset(got) == multiset(self.copied[a.label]), (
                f"agency {a.label}: {len(got)} copies, expected exactly the "
                f"{len(self.copied[a.label])} packets to its target")


async def test_seed_story_end_to_end(lab: Lab, radius: FreeRadius, daemon: Flowtapd,
                                     tmp_path: Path) -> None:  # fmt: skip
    story = Story(lab, tmp_path)
    listen = [a.router_address for a in (AGENCY_A, AGENCY_B)]
    clients: dict[str, AsyncDtcpClient] = {}
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(story.stop_collectors)

        # ---- 1. the administrator configures flow-tap over NETCONF and commits --------------
        admin = daemon.connect("admin")
        stack.callback(admin.close_session)
        users = [
            config.mediation_device(AGENCY_A, MD_A_PASSWORD, rounds=1000),
            config.LoginUser(NON_LI.name, NON_LI.login_class, NON_LI.password,
                             "network administrator, no LI permission", rounds=1000),
            config.LoginUser("remote", "unauthorized"),  # template of RADIUS-only users
        ]
        for body in (
            config.interfaces("rin"),  # sp-0/0/0 unit 0 family inet; ge-0/0/0 on rin
            config.flow_tap_service(),  # services flow-tap interface sp-0/0/0.0
            config.dtcp(listen, connection_limit=5, rate_limit=5),
            config.login([config.LI_OPERATOR_CLASS], users),
            config.radius("127.0.0.1", radius.port, SECRET, timeout=2, retry=1),
        ):
            admin.edit_config(target="candidate", config=edit(body))
        admin.commit()
        running = etree.fromstring(admin.get_config("running").data_xml.encode())
        assert running.find(f".//{{{SVC}}}flow-tap/{{{SVC}}}interface").text == "sp-0/0/0.0"
        dtcp = running.find(f".//{{{SYS}}}flow-tap-dtcp/{{{SYS}}}ssh")
        assert dtcp.findtext(f"{{{SYS}}}connection-limit") == "5"
        assert dtcp.findtext(f"{{{SYS}}}rate-limit") == "5"
        assert AGENCY_B.user not in admin.get_config("running").data_xml  # RADIUS-only
        state = flow_tap_state(admin.get().data_xml)
        assert state, "no /ftsvc:flow-tap-state in <get> for the LI administrator"
        assert state.get("status") == ["running"] and state.get("interface") == ["sp-0/0/0.0"]
        assert state.get("capture-device") == ["rin"] and state.get("criteria") == ["0"]

        # ---- 2. two agencies tap their targets over DTCP; traffic flows ---------------------
        story.start_collectors()
        clients["A"] = await connect_md(lab, daemon, AGENCY_A, MD_A_PASSWORD)
        clients["B"] = await connect_md(lab, daemon, AGENCY_B, MD_B_PASSWORD)
        for client in clients.values():
            stack.push_async_callback(close_quietly, client)
        ids = {}
        for agency in (AGENCY_A, AGENCY_B):
            reply = await clients[agency.label].add(agency.add_fields())
            assert reply.status == 200 and reply.verified, reply.raw
            ids[agency.label] = reply.criteria_id
        check_prefilter(lab, present=TARGETS)  # live at the 200 OK: nothing to wait for
        await story.traffic(300, tapped=(AGENCY_A, AGENCY_B))

        # ---- 3. isolation: LIST, flow-tap-state for LI users only ---------------------------
        for agency, other in ((AGENCY_A, AGENCY_B), (AGENCY_B, AGENCY_A)):
            listing = await clients[agency.label].list()
            assert listing.status == 200
            entries = listing.entries()
            assert [(e["CRITERIA-ID"], e["CSOURCE-ID"]) for e in entries] == [
                (str(ids[agency.label]), agency.user)]
            for secret in (other.target, other.user, other.cdest_id, other.address):
                assert secret.encode() not in listing.raw
        matched = of(story.sent, AGENCY_A.target) + of(story.sent, AGENCY_B.target)
        state = flow_tap_state(admin.get().data_xml)
        assert {k: state.get(k) for k in ("dtcp-sessions", "criteria", "matched-packets",
                                          "matched-bytes", "sent-copies", "dropped-copies",
                                          "kernel-drops")} == {
            "dtcp-sessions": ["2"], "criteria": ["2"], "matched-packets": [str(len(matched))],
            "matched-bytes": [str(sum(map(len, matched)))], "sent-copies": [str(len(matched))],
            "dropped-copies": ["0"], "kernel-drops": ["0"]}  # fmt: skip
        assert int(state["kernel-packets"][0]) >= len(matched)
        daemon.users[NON_LI.name] = NON_LI
        with daemon.connect(NON_LI.name) as netadmin:
            for reply in (netadmin.get().data_xml, netadmin.get_config("running").data_xml,
                          netadmin.get(filter=("subtree", f'<flow-tap-state xmlns="{SVC}"/>')
                                       ).data_xml):  # fmt: skip
                assert_no_flow_tap(reply)
            assert "sp-0/0/0" in netadmin.get_config("running").data_xml  # it sees the rest

        # ---- 4. DELETE stops the copies; commits reach the DTCP service ---------------------
        reply = await clients["A"].delete(AGENCY_A.delete_fields(ids["A"]))
        assert reply.status == 200, reply.raw
        check_prefilter(lab, present=(AGENCY_B.target,), absent=(AGENCY_A.target,))
        await story.traffic(100, tapped=(AGENCY_B,))  # A's copies stopped, B's go on
        reply = await clients["B"].delete(AGENCY_B.delete_fields(ids["B"]))
        assert reply.status == 200, reply.raw
        check_prefilter(lab, absent=TARGETS)
        await story.traffic(100, tapped=())

        admin.edit_config(target="candidate", config=edit(config.delete_dtcp()))
        admin.commit()
        for client in clients.values():  # the mediation devices are disconnected
            await asyncio.wait_for(client.conn.wait_closed(), 10)

        admin.edit_config(target="candidate",
                          config=edit(config.dtcp(listen, connection_limit=5, rate_limit=5)))
        admin.commit()
        first = await connect_md(lab, daemon, AGENCY_A, MD_A_PASSWORD)
        stack.push_async_callback(close_quietly, first)
        admin.edit_config(target="candidate", config=edit(config.dtcp(connection_limit=1)))
        admin.commit()
        with pytest.raises((ConnectionError, asyncssh.ConnectionLost)):  # one too many
            await connect_md(lab, daemon, AGENCY_B, MD_B_PASSWORD)
        assert (await first.noop()).status == 200  # the open one carries on
        await first.close()
        second = None
        for _ in range(50):  # its slot is released once the server has seen the close
            with contextlib.suppress(OSError, asyncssh.Error):
                second = await connect_md(lab, daemon, AGENCY_B, MD_B_PASSWORD)
                break
            await asyncio.sleep(0.1)
        assert second is not None
        await second.close()

    # ---- 5. the audit log: one verified record per step; no target in ordinary logs ---------
    daemon.stop()
    result = audit.verify(daemon.audit_log)
    assert result.ok and result.clean_close, result
    records = audit_records(daemon.audit_log)
    a, b = AGENCY_A.user, AGENCY_B.user
    ok = "200 OK"
    assert audit_kinds(records) == {
        ("open",): 1,
        ("auth", "netconf", "admin", "accept"): 1,
        ("auth", "netconf", NON_LI.name, "accept"): 1,
        ("auth", "flow-tap-dtcp", a, "accept"): 2,  # the first session, the one kept open
        ("auth", "flow-tap-dtcp", b, "accept"): 2,  # the first session, the one after it
        ("dtcp", "ADD", a, ok): 1, ("dtcp", "ADD", b, ok): 1,
        ("dtcp", "LIST", a, ok): 1, ("dtcp", "LIST", b, ok): 1,
        ("dtcp", "DELETE", a, ok): 1, ("dtcp", "DELETE", b, ok): 1,
        ("dtcp", "NOOP", a, ok): 1,
        ("close",): 1,
        ("config",): 4,  # the commits that changed LI configuration (flow-tap, DTCP limits)
    }  # fmt: skip
    for record in (r for r in records if r["event"] == "config"):
        assert " changed " in record["reason"] and "services flow-tap" in record["reason"]
    auth_b = [r for r in records if r["event"] == "auth" and r["principal"] == b]
    assert {(r["method"], r["template"]) for r in auth_b} == {("radius", "remote")}
    adds = {r["principal"]: r for r in records if r.get("method") == "ADD"}
    for agency in (AGENCY_A, AGENCY_B):
        add = adds[agency.user]
        assert f"Dest-Address: {agency.target}" in add["target"]
        assert (add["peer"], add["cdest_id"], add["criteria_id"]) == (
            agency.address, agency.cdest_id, ids[agency.label])
    output = "".join(daemon.output)
    assert " INFO " in output  # flowtapd really logged at INFO
    assert "flow-tap-dtcp: connection refused (connection-limit)" in output
    for target in TARGETS:
        assert target not in output


def assert_no_flow_tap(xml: str) -> None:
    """LI-1: no flow-tap configuration, state, count or target in a non-LI user's reply."""
    root = etree.fromstring(xml.encode())
    assert root.find(f".//{{{SVC}}}flow-tap") is None
    assert root.find(f".//{{{SVC}}}services") is None  # not even an empty container
    assert root.find(f".//{{{SYS}}}flow-tap-dtcp") is None
    assert root.find(f".//{{{SVC}}}flow-tap-state") is None
    for secret in (*TARGETS, AGENCY_A.address, AGENCY_B.address, AGENCY_A.cdest_id,
                   AGENCY_B.cdest_id, "criteria"):  # fmt: skip
        assert secret not in xml, secret


async def close_quietly(client: AsyncDtcpClient) -> None:
    with contextlib.suppress(Exception):
        await client.close()
