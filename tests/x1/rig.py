"""A Tasking over a real Registry whose sink records what is installed (the dataplane's X3 sender
does not exist yet, so no real sink accepts X3 criteria), an audit log in a list, and builders
of X1 messages."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from flowtap.audit import AuditRecord
from flowtap.auth.principal import Principal
from flowtap.errors import AuditError
from flowtap.intercept.criteria import Criterion
from flowtap.intercept.registry import Registry
from flowtap.intercept.sink import CriterionCounters
from flowtap.x1 import model
from flowtap.x1.encode import encode_request
from flowtap.x1.names import X1_NS
from flowtap.x1.targets import AddressTarget, Target
from flowtap.x1.tasking import Tasking

NE = "ne-1"
NS = {"x1": X1_NS, "xsi": "http://www.w3.org/2001/XMLSchema-instance"}


class RecordingSink:
    """Keeps the installed table as the dataplane does; counters are set by the test."""

    def __init__(self) -> None:
        self.table: dict[int, Criterion] = {}
        self.counts: dict[int, CriterionCounters] = {}
        self.refuse = False
        self.calls: list[tuple[list[int], list[int]]] = []  # (upserted keys, removed keys)

    def check(self, criterion: Criterion) -> None:
        pass

    def apply(self, upserts: Sequence[Criterion], removals: Collection[int]) -> None:
        self.calls.append((sorted(c.criteria_id for c in upserts), sorted(removals)))
        if self.refuse and upserts:
            raise ValueError("refused")
        for key in removals:
            self.table.pop(key, None)
        self.table.update((c.criteria_id, c) for c in upserts)

    def counters(self) -> dict[int, CriterionCounters]:
        return {k: v for k, v in self.counts.items() if k in self.table}


@dataclass
class AuditList:
    records: list[AuditRecord] = field(default_factory=list)
    broken: bool = False

    async def submit(self, record: AuditRecord) -> None:
        if self.broken:
            raise AuditError("disk full")
        self.records.append(record)


class Health:
    def __init__(self) -> None:
        self.connected: set[tuple[str, int]] = set()

    def destination_state(self, address: str, port: int) -> tuple[bool, int, int]:
        return (address, port) in self.connected, 0, 0

    def destination_problem(self, address: str, port: int) -> str | None:
        return None if (address, port) in self.connected else "Connection refused"


def principal(name: str) -> Principal:
    return Principal(name, name, "li-md", frozenset({"flow-tap-operation"}), "certificate")


def header(admf: str, ne: str = NE) -> model.Header:
    return model.Header(admf, ne, datetime.now(UTC), "v1.15.1", str(uuid.uuid4()))


def destination(did: uuid.UUID, address: str = "192.0.2.50", port: int = 6443,
                delivery: model.DeliveryType = model.DeliveryType.X3_ONLY,
                transport: str = "tcp") -> model.DestinationDetails:  # fmt: skip
    return model.DestinationDetails(did, delivery, model.DeliveryAddress(
        ipaddress.ip_address(address), port, transport))  # type: ignore[arg-type]


def task(xid: uuid.UUID, dids: Sequence[uuid.UUID], targets: Sequence[Target] = (),
         delivery: model.DeliveryType = model.DeliveryType.X3_ONLY,
         correlation: int | None = None) -> model.TaskDetails:  # fmt: skip
    chosen = tuple(targets) or (AddressTarget(ipaddress.ip_address("198.51.100.7")),)
    return model.TaskDetails(xid, chosen, delivery, tuple(dids), correlation)


@dataclass
class Answer:
    """One x1ResponseMessage: its xsi:type, error code (if any) and the element."""

    type: str
    element: etree._Element

    @property
    def code(self) -> int | None:
        found = self.element.findtext("x1:errorInformation/x1:errorCode", namespaces=NS)
        return None if found is None else int(found)

    @property
    def description(self) -> str | None:
        return self.element.findtext("x1:errorInformation/x1:errorDescription", namespaces=NS)

    def text(self, path: str) -> str | None:
        return self.element.findtext(path, namespaces=NS)

    def all(self, path: str) -> list[str]:
        return [e.text or "" for e in self.element.iterfind(path, namespaces=NS)]


def answers(body: bytes) -> list[Answer]:
    root = etree.fromstring(body)
    assert root.tag == f"{{{X1_NS}}}X1Response", body[:200]
    out = []
    for element in root:
        kind = element.get(f"{{{NS['xsi']}}}type") or ""
        out.append(Answer(kind.split(":")[-1], element))
    return out


@dataclass
class Rig:
    registry: Registry
    sink: RecordingSink
    audit: AuditList
    health: Health
    tasking: Tasking

    async def raw(self, admf: str, body: bytes, peer: str = "192.0.2.1") -> bytes:
        return await self.tasking.handle(principal(admf), peer, body)

    async def send(self, admf: str, *messages: model.Request) -> list[Answer]:
        return answers(await self.raw(admf, encode_request(messages)))

    async def one(self, admf: str, message: model.Request) -> Answer:
        (answer,) = await self.send(admf, message)
        return answer
