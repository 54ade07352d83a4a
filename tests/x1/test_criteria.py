"""A task's targets as criteria (flowtap.x1.criteria): every packet the task should tap matches
exactly one criterion (one PDU, with the right direction) and no other packet matches any; and
DTCP's LIST and DELETE of the same user never see X1 criteria."""

from __future__ import annotations

import ipaddress
import itertools
import uuid
from collections.abc import AsyncIterator

import pytest

from flowtap.config.model import Config
from flowtap.dtcp.fields import parse_identity
from flowtap.dtcp.message import MessageDecoder, Request
from flowtap.dtcp.methods import RequestContext, delete, list_
from flowtap.intercept.criteria import X3_FROM_TARGET, X3_TO_TARGET, X3_UNKNOWN, Match
from flowtap.intercept.registry import Registry
from flowtap.tools.dtcp_client import build_request
from flowtap.x1 import model
from flowtap.x1.criteria import derived_correlation_id, owner, taps
from flowtap.x1.targets import AddressTarget, CidrTarget, PortRangeTarget, PortTarget, Target
from flowtap.x1.tasking import Tasking
from tests.x1.rig import (
    NE,
    AuditList,
    Health,
    RecordingSink,
    Rig,
    destination,
    header,
    principal,
    task,
)

T1, T2 = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2")
OTHER = ipaddress.ip_address("198.51.100.9")
V6 = ipaddress.ip_address("2001:db8::1")
V6_OTHER = ipaddress.ip_address("2001:db8::99")
NET = ipaddress.ip_network("203.0.113.0/30")


def matches(match: Match, packet: tuple[int, int, int, int, int, int]) -> bool:
    version, src, dst, protocol, sport, dport = packet
    return (match.source_address.matches(version, src) and match.dest_address.matches(version, dst)
            and match.protocol.matches(protocol) and match.source_port.matches(sport)
            and match.dest_port.matches(dport))  # fmt: skip


def packets() -> list[tuple[int, int, int, int, int, int]]:
    v4 = [int(a) for a in (T1, T2, OTHER, NET.network_address + 2)]
    v6 = [int(V6), int(V6_OTHER)]
    ports = [80, 443, 53, 1000, 1005, 2000]
    out = []
    for version, hosts in ((4, v4), (6, v6)):
        for src, dst, protocol, sport, dport in itertools.product(hosts, hosts, (6, 17, 1), ports,
                                                                  ports):
            out.append((version, src, dst, protocol, sport, dport))
    return out


def expected(targets: list[Target], packet: tuple[int, int, int, int, int, int]) -> int | None:
    """The direction of the one PDU the task should make of ``packet``, or None."""
    version, src, dst, protocol, sport, dport = packet

    def is_target(address: int) -> bool:
        for t in targets:
            if isinstance(t, AddressTarget) and t.address.version == version \
                    and int(t.address) == address:
                return True
            if isinstance(t, CidrTarget) and t.network.version == version and \
                    int(t.network.network_address) <= address <= int(t.network.broadcast_address):
                return True
        return False

    def is_port(port: int) -> bool:
        for t in targets:
            number = 6 if t.kind.startswith("tcp") else 17 if t.kind.startswith("udp") else None
            if number != protocol:
                continue
            if isinstance(t, PortTarget) and t.port == port:
                return True
            if isinstance(t, PortRangeTarget) and t.start <= port <= t.end:
                return True
        return False

    has_addresses = any(isinstance(t, AddressTarget | CidrTarget) for t in targets)
    has_ports = any(isinstance(t, PortTarget | PortRangeTarget) for t in targets)
    if has_ports and not (is_port(sport) or is_port(dport)):
        return None
    if not has_addresses:
        return X3_UNKNOWN
    if is_target(src):
        return X3_FROM_TARGET
    if is_target(dst):
        return X3_TO_TARGET
    return None


TASKS: list[list[Target]] = [
    [AddressTarget(T1)],
    [AddressTarget(T1), AddressTarget(T2), CidrTarget(NET)],
    [AddressTarget(T1), AddressTarget(V6)],
    [AddressTarget(T1), PortTarget("tcp", 80)],
    [AddressTarget(T1), CidrTarget(NET), PortTarget("tcp", 80), PortTarget("udp", 53),
     PortRangeTarget("tcp", 1000, 1010)],
    [PortTarget("tcp", 443)],
    [PortTarget("udp", 53), PortRangeTarget("tcp", 1000, 1005), AddressTarget(V6)],
]


@pytest.mark.parametrize("targets", TASKS, ids=lambda t: "+".join(x.kind for x in t))
def test_each_tapped_packet_matches_exactly_one_criterion_with_its_direction(
    targets: list[Target],
) -> None:
    made = taps(targets)
    for packet in packets():
        hits = [tap.direction for tap in made if matches(tap.match, packet)]
        want = expected(targets, packet)
        assert hits == ([] if want is None else [want]), (packet, hits, want)


def test_the_derived_correlation_id_is_stable_and_never_zero() -> None:
    xid = uuid.uuid4()
    assert derived_correlation_id(xid) == derived_correlation_id(xid) != 0
    assert 0 < derived_correlation_id(uuid.UUID(int=0)) < 2**64


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sink = RecordingSink()
    registry = Registry(sink)
    audit, health = AuditList(), Health()
    yield Rig(registry, sink, audit, health, Tasking(registry, audit.submit, lambda: NE, health))
    await registry.publisher.close()


async def _no_one_waits() -> None:
    """DTCP's right of way (dtcp/right_of_way.py): no other session here to give way to."""


def dtcp_request(method: str, user: str, *fields: tuple[str, str]) -> Request:
    (request,) = MessageDecoder().feed(build_request(method, fields, seq=1, csource_id=user))
    assert isinstance(request, Request)
    return request


async def test_dtcp_list_and_delete_of_the_same_user_never_touch_x1_criteria(rig: Rig) -> None:
    user = "md1"
    did = uuid.uuid4()
    got = await rig.send(user, model.CreateDestination(header(user), destination(did)),
                         model.ActivateTask(header(user), task(uuid.uuid4(), [did])))
    assert [a.code for a in got] == [None, None] and len(rig.registry) == 2
    assert owner(user) != user and " " in owner(user)  # a Csource-ID has no whitespace
    ctx = RequestContext(rig.registry, principal(user), "192.0.2.1", "dtcp-1", Config,
                         give_way=_no_one_waits)  # fmt: skip
    for method, fields in (("LIST", (("Flags", "Both"),)), ("DELETE", (("Criteria-ID", "*"),))):
        request = dtcp_request(method, user, *fields)
        handler = list_ if method == "LIST" else delete
        outcome = await handler(ctx, request, parse_identity(request), "")
        assert outcome.status == 200
        assert outcome.record.reason is not None and outcome.record.reason.endswith(" 0")
    assert len(rig.registry) == 2 and len(rig.sink.table) == 2
