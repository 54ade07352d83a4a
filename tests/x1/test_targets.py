"""X1 target identifiers: the eight IP kinds parsed and validated (LI-HANDOVER.md §2.4)."""

from __future__ import annotations

import ipaddress
import uuid

import pytest

from flowtap.x1 import encode, model
from flowtap.x1.decode import decode_request
from flowtap.x1.targets import (
    UNSUPPORTED_KINDS,
    AddressTarget,
    CidrTarget,
    PortRangeTarget,
    PortTarget,
)

from .samples import header, message, request, target, task_body


def _decode(inner: str) -> model.ActivateTask | model.MessageError:
    (decoded,) = decode_request(request(message("ActivateTaskRequest", task_body(target(inner)))))
    assert isinstance(decoded, model.ActivateTask | model.MessageError)
    return decoded


def _target(inner: str) -> object:
    decoded = _decode(inner)
    assert isinstance(decoded, model.ActivateTask), decoded
    (only,) = decoded.task.targets
    return only


def _refused(inner: str) -> model.MessageError:
    decoded = _decode(inner)
    assert isinstance(decoded, model.MessageError), decoded
    return decoded


@pytest.mark.parametrize(("inner", "expected"), [
    ("<ns1:ipv4Address>192.0.2.10</ns1:ipv4Address>",
     AddressTarget(ipaddress.ip_address("192.0.2.10"))),
    ("<ns1:ipv4Address> 192.0.2.10\n</ns1:ipv4Address>",
     AddressTarget(ipaddress.ip_address("192.0.2.10"))),
    ("<ns1:ipv6Address>2001:0db8:0000:0000:0000:0000:0000:00ff</ns1:ipv6Address>",
     AddressTarget(ipaddress.ip_address("2001:db8::ff"))),
    ("<ns1:ipv6Address>2001:DB8::FF</ns1:ipv6Address>",
     AddressTarget(ipaddress.ip_address("2001:db8::ff"))),
    ("<ns1:ipv4Cidr><c:IPv4CIDR>10.0.0.0/8</c:IPv4CIDR></ns1:ipv4Cidr>",
     CidrTarget(ipaddress.ip_network("10.0.0.0/8"))),
    ("<ns1:ipv4Cidr><c:IPv4CIDR>192.0.2.1/32</c:IPv4CIDR></ns1:ipv4Cidr>",
     CidrTarget(ipaddress.ip_network("192.0.2.1/32"))),
    ("<ns1:ipv4Cidr><c:IPv4CIDR>0.0.0.0/0</c:IPv4CIDR></ns1:ipv4Cidr>",
     CidrTarget(ipaddress.ip_network("0.0.0.0/0"))),
    ("<ns1:ipv4Cidr><c:IPv6CIDR>2001:db8::/32</c:IPv6CIDR></ns1:ipv4Cidr>",
     CidrTarget(ipaddress.ip_network("2001:db8::/32"))),
    ("<ns1:ipv6Cidr>2001:0db8:0000:0000:0000:0000:0000:0000/32</ns1:ipv6Cidr>",
     CidrTarget(ipaddress.ip_network("2001:db8::/32"))),
    ("<ns1:ipv6Cidr>2001:db8::1/128</ns1:ipv6Cidr>",
     CidrTarget(ipaddress.ip_network("2001:db8::1/128"))),
    ("<ns1:tcpPort>0</ns1:tcpPort>", PortTarget("tcp", 0)),
    ("<ns1:udpPort>65535</ns1:udpPort>", PortTarget("udp", 65535)),
    ("<ns1:tcpPortRange><c:start>80</c:start><c:end>80</c:end></ns1:tcpPortRange>",
     PortRangeTarget("tcp", 80, 80)),
    ("<ns1:udpPortRange><c:start>0</c:start><c:end>65535</c:end></ns1:udpPortRange>",
     PortRangeTarget("udp", 0, 65535)),
])  # fmt: skip
def test_kind_parsed(inner, expected):
    assert _target(inner) == expected


@pytest.mark.parametrize(("inner", "words"), [
    ("<ns1:ipv4Address>192.0.2.256</ns1:ipv4Address>", "not an IPv4 address"),
    ("<ns1:ipv4Address>192.0.2.010</ns1:ipv4Address>", "not an IPv4 address"),
    ("<ns1:ipv4Address>2001:db8::1</ns1:ipv4Address>", "not an IPv4 address"),
    ("<ns1:ipv4Address></ns1:ipv4Address>", "not an IPv4 address"),
    ("<ns1:ipv6Address>fe80::1%eth0</ns1:ipv6Address>", "not an IPv6 address"),
    ("<ns1:ipv6Address>2001:db8::1::2</ns1:ipv6Address>", "not an IPv6 address"),
    ("<ns1:ipv6Address>192.0.2.1</ns1:ipv6Address>", "not an IPv6 address"),
    ("<ns1:ipv4Cidr><c:IPv4CIDR>10.0.0.1/8</c:IPv4CIDR></ns1:ipv4Cidr>", "host bits"),
    ("<ns1:ipv4Cidr><c:IPv4CIDR>10.0.0.0/33</c:IPv4CIDR></ns1:ipv4Cidr>", "address/prefix"),
    ("<ns1:ipv4Cidr><c:IPv4CIDR>10.0.0.0</c:IPv4CIDR></ns1:ipv4Cidr>", "address/prefix"),
    ("<ns1:ipv4Cidr><c:IPv4CIDR>10.0.0.0/+8</c:IPv4CIDR></ns1:ipv4Cidr>", "address/prefix"),
    ("<ns1:ipv4Cidr>10.0.0.0/8</ns1:ipv4Cidr>", "ipv4Cidr must hold elements, not text"),
    ("<ns1:ipv4Cidr><ns1:IPv4CIDR>10.0.0.0/8</ns1:IPv4CIDR></ns1:ipv4Cidr>",
     "unexpected element IPv4CIDR"),
    ("<ns1:ipv6Cidr>2001:db8::1/64</ns1:ipv6Cidr>", "host bits"),
    ("<ns1:ipv6Cidr>2001:db8::/129</ns1:ipv6Cidr>", "address/prefix"),
    ("<ns1:tcpPort>65536</ns1:tcpPort>", "out of range"),
    ("<ns1:udpPort>-1</ns1:udpPort>", "out of range"),
    ("<ns1:tcpPort>80a</ns1:tcpPort>", "not an integer"),
    ("<ns1:tcpPort>" + "9" * 100 + "</ns1:tcpPort>", "not an integer"),
    ("<ns1:tcpPortRange><c:start>90</c:start><c:end>80</c:end></ns1:tcpPortRange>",
     "start is above its end"),
    ("<ns1:udpPortRange><c:start>1</c:start></ns1:udpPortRange>", "lacks end"),
    ("<ns1:udpPortRange><c:end>1</c:end><c:start>1</c:start></ns1:udpPortRange>",
     "lacks start"),
    ("<ns1:udpPortRange><ns1:start>1</ns1:start><ns1:end>2</ns1:end></ns1:udpPortRange>",
     "lacks start"),
    ("<ns1:tcpPort><ns1:x/></ns1:tcpPort>", "must hold text"),
])  # fmt: skip
def test_invalid_value_is_1010(inner, words):
    refused = _refused(inner)
    assert refused.code == 1010 and words in refused.description


@pytest.mark.parametrize("kind", sorted(UNSUPPORTED_KINDS))
def test_every_other_kind_is_3010_by_name(kind):
    refused = _refused(f"<ns1:{kind}>x</ns1:{kind}>")
    assert refused.code == 3010
    assert refused.description == f"targetIdentifier kind {kind} is not supported"


def test_ipv6_is_written_in_the_full_form_and_read_back():
    task = model.TaskDetails(uuid.UUID(int=5),
                             (AddressTarget(ipaddress.ip_address("::ffff:192.0.2.1")),
                              CidrTarget(ipaddress.ip_network("::/0"))),
                             model.DeliveryType.X3_ONLY, ())  # fmt: skip
    activate = model.ActivateTask(header(), task)
    data = encode.encode_request([activate])
    assert b"0000:0000:0000:0000:0000:ffff:c000:0201" in data
    assert b"0000:0000:0000:0000:0000:0000:0000:0000/0" in data
    assert decode_request(data) == [activate]
