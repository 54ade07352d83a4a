"""An ADMF's X1 client (ETSI TS 103 221-1): messages built from Python values, sent over HTTPS
with a client certificate, and the responses read back as :class:`Answer` objects.

::

    with X1Client("https://ne.example:8443/X1/NE", cert="admf.crt", key="admf.key",
                  ca="ca.pem", admf="admf-1", ne="ne-1") as client:
        client.send(client.create_destination(did, "192.0.2.50", 6443))
        client.send(client.activate(xid, [parse_target("ipv4Address=198.51.100.7")], [did]))

One HTTPS connection is kept open and reopened when the network element closed it. Requests are
built with flowtap's own X1 encoder (:mod:`flowtap.x1.encode`); responses are read generically
(every leaf with its path), so that any response, including an ``X1TopLevelErrorResponse``,
can be shown.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final

from lxml import etree

from flowtap.x1 import model, values
from flowtap.x1.encode import encode_request
from flowtap.x1.names import VERSION, X1_NS, XSI_TYPE
from flowtap.x1.targets import (
    AddressTarget,
    CidrTarget,
    PortRangeTarget,
    PortTarget,
    Target,
    Transport,
)

DEFAULT_URL: Final = "https://127.0.0.1:8443/X1/NE"
TARGET_KINDS: Final = ("ipv4Address", "ipv6Address", "ipv4Cidr", "ipv6Cidr", "tcpPort", "udpPort",
                       "tcpPortRange", "udpPortRange")  # fmt: skip


class X1ClientError(Exception):
    """The network element could not be reached, or answered with something other than X1."""


@dataclass(frozen=True)
class Answer:
    """One answer of an ``X1Response`` (or the ``X1TopLevelErrorResponse``): its type, the
    error code and description of an ``ErrorResponse``, and every leaf as (path, text)."""

    type: str
    fields: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        return self.type not in ("ErrorResponse", "X1TopLevelErrorResponse")

    @property
    def code(self) -> int | None:
        found = self.get("errorInformation/errorCode")
        return int(found) if found is not None and found.isdigit() else None

    @property
    def description(self) -> str | None:
        return self.get("errorInformation/errorDescription")

    def get(self, path: str) -> str | None:
        """The text of the first leaf at ``path`` (local names joined by ``/``)."""
        return next((text for p, text in self.fields if p == path), None)

    def all(self, path: str) -> list[str]:
        return [text for p, text in self.fields if p == path]

    def render(self) -> str:
        head = self.type if self.ok else f"{self.type} {self.code}: {self.description}"
        return "\n".join([head, *(f"  {p}: {text}" for p, text in self.fields)])


def read_response(body: bytes) -> list[Answer]:
    """The answers of a response body.

    Raises:
        X1ClientError: not an X1 response document.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise X1ClientError(f"the answer is not XML: {exc}") from None
    if root.tag == f"{{{X1_NS}}}X1TopLevelErrorResponse":
        return [Answer("X1TopLevelErrorResponse", tuple(_leaves(root, "")))]
    if root.tag != f"{{{X1_NS}}}X1Response":
        raise X1ClientError(f"the answer is not an X1Response: {etree.QName(root).localname}")
    answers = []
    for message in root:
        kind = (message.get(XSI_TYPE) or "").rpartition(":")[2]
        answers.append(Answer(kind, tuple(_leaves(message, ""))))
    return answers


def _leaves(element: etree._Element, prefix: str) -> Iterable[tuple[str, str]]:
    for child in element:
        if not isinstance(child.tag, str):
            continue
        path = f"{prefix}{etree.QName(child).localname}"
        if len(child):
            yield from _leaves(child, path + "/")
        else:
            yield path, (child.text or "").strip()


def parse_target(text: str) -> Target:
    """``kind=value``: ``ipv4Address=192.0.2.1``, ``ipv6Cidr=2001:db8::/32``, ``tcpPort=80``,
    ``udpPortRange=1000-2000``.

    Raises:
        ValueError: an unknown kind or a malformed value.
    """
    kind, equals, value = text.partition("=")
    if not equals or kind not in TARGET_KINDS:
        raise ValueError(f"a target is KIND=VALUE with KIND one of {', '.join(TARGET_KINDS)}")
    try:
        if kind == "ipv4Address":
            return AddressTarget(values.ipv4_address(value, kind))
        if kind == "ipv6Address":
            return AddressTarget(values.ipv6_address(value, kind))
        if kind == "ipv4Cidr":
            return CidrTarget(values.ipv4_network(value, kind))
        if kind == "ipv6Cidr":
            return CidrTarget(values.ipv6_network(value, kind))
        transport: Transport = "tcp" if kind.startswith("tcp") else "udp"
        if kind.endswith("Range"):
            start, dash, end = value.partition("-")
            if not dash:
                raise ValueError(f"{kind} is START-END")
            return PortRangeTarget(transport, values.port(start, kind), values.port(end, kind))
        return PortTarget(transport, values.port(value, kind))
    except Exception as exc:  # the codec's X1Error names the field
        raise ValueError(str(exc)) from None


class X1Client:
    """An ADMF talking to one network element's ``/X1/NE`` over mutual TLS."""

    def __init__(self, url: str = DEFAULT_URL, *, cert: str, key: str, ca: str, admf: str,
                 ne: str, timeout: float = 30.0, version: str = VERSION) -> None:  # fmt: skip
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the URL must be https://HOST[:PORT]/PATH")
        self.host, self.port = parts.hostname, parts.port or 443
        self.path = parts.path or "/X1/NE"
        self.admf, self.ne, self.version = admf, ne, version
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca)
        self.context.load_cert_chain(cert, key)
        self._connection: http.client.HTTPSConnection | None = None

    def __enter__(self) -> X1Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # ---- sending ---------------------------------------------------------------------------

    def post(self, body: bytes, content_type: str = "application/xml") -> tuple[int, bytes]:
        """POST ``body`` as is; (HTTP status, response body). Retries once on a connection the
        network element closed meanwhile (an idle keep-alive connection times out)."""
        for attempt in (1, 2):
            connection = self._connection or http.client.HTTPSConnection(
                self.host, self.port, context=self.context, timeout=self.timeout)
            self._connection = connection
            try:
                connection.request("POST", self.path, body=body,
                                   headers={"Content-Type": content_type})  # fmt: skip
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self.close()
            return response.status, data
        raise AssertionError("unreachable")

    def send_raw(self, body: bytes) -> tuple[bytes, list[Answer]]:
        """Send an X1 request document; the response body and its answers.

        Raises:
            X1ClientError: an HTTP status other than 200, or a body that is not X1.
        """
        status, data = self.post(body)
        if status != 200:
            raise X1ClientError(f"HTTP {status}: {data.decode('utf-8', 'replace').strip()}")
        return data, read_response(data)

    def send(self, *messages: model.Request) -> list[Answer]:
        """Send ``messages`` in one request; one answer each (or one top-level error)."""
        return self.send_raw(encode_request(messages))[1]

    # ---- messages --------------------------------------------------------------------------

    def header(self) -> model.Header:
        return model.Header(self.admf, self.ne, datetime.now(UTC), self.version,
                            str(uuid.uuid4()))  # fmt: skip

    def activate(self, xid: uuid.UUID, targets: Sequence[Target], dids: Sequence[uuid.UUID], *,
                 delivery_type: model.DeliveryType = model.DeliveryType.X3_ONLY,
                 correlation_id: int | None = None) -> model.ActivateTask:  # fmt: skip
        return model.ActivateTask(self.header(), model.TaskDetails(
            xid, tuple(targets), delivery_type, tuple(dids), correlation_id))

    def modify(self, xid: uuid.UUID, targets: Sequence[Target], dids: Sequence[uuid.UUID], *,
               delivery_type: model.DeliveryType = model.DeliveryType.X3_ONLY,
               correlation_id: int | None = None) -> model.ModifyTask:  # fmt: skip
        return model.ModifyTask(self.header(), model.TaskDetails(
            xid, tuple(targets), delivery_type, tuple(dids), correlation_id))

    def deactivate(self, xid: uuid.UUID) -> model.DeactivateTask:
        return model.DeactivateTask(self.header(), xid)

    def deactivate_all(self) -> model.DeactivateAllTasks:
        return model.DeactivateAllTasks(self.header())

    def get_task(self, xid: uuid.UUID) -> model.GetTaskDetails:
        return model.GetTaskDetails(self.header(), xid)

    def destination(self, did: uuid.UUID, address: str, port: int, *,
                    delivery_type: model.DeliveryType = model.DeliveryType.X3_ONLY,
                    friendly_name: str | None = None,
                    udp: bool = False) -> model.DestinationDetails:  # fmt: skip
        ip = (values.ipv6_address(address, "address") if ":" in address
              else values.ipv4_address(address, "address"))  # fmt: skip
        return model.DestinationDetails(did, delivery_type, model.DeliveryAddress(
            ip, port, "udp" if udp else "tcp"), friendly_name)

    def create_destination(self, did: uuid.UUID, address: str, port: int, *,
                           delivery_type: model.DeliveryType = model.DeliveryType.X3_ONLY,
                           friendly_name: str | None = None,
                           udp: bool = False) -> model.CreateDestination:  # fmt: skip
        return model.CreateDestination(self.header(), self.destination(
            did, address, port, delivery_type=delivery_type, friendly_name=friendly_name,
            udp=udp))

    def modify_destination(self, did: uuid.UUID, address: str, port: int, *,
                           delivery_type: model.DeliveryType = model.DeliveryType.X3_ONLY,
                           friendly_name: str | None = None,
                           udp: bool = False) -> model.ModifyDestination:  # fmt: skip
        return model.ModifyDestination(self.header(), self.destination(
            did, address, port, delivery_type=delivery_type, friendly_name=friendly_name,
            udp=udp))

    def remove_destination(self, did: uuid.UUID) -> model.RemoveDestination:
        return model.RemoveDestination(self.header(), did)

    def remove_all_destinations(self) -> model.RemoveAllDestinations:
        return model.RemoveAllDestinations(self.header())

    def get_destination(self, did: uuid.UUID) -> model.GetDestinationDetails:
        return model.GetDestinationDetails(self.header(), did)

    def ne_status(self) -> model.GetNEStatus:
        return model.GetNEStatus(self.header())

    def get_all(self) -> model.GetAllDetails:
        return model.GetAllDetails(self.header())

    def list_all(self) -> model.ListAllDetails:
        return model.ListAllDetails(self.header())

    def keepalive(self) -> model.Keepalive:
        return model.Keepalive(self.header())

    def ping(self) -> model.Ping:
        return model.Ping(self.header())
