"""Decoding the parts X1 messages share: ``taskDetails`` (with its target identifiers) and
``destinationDetails`` (with its delivery address). Pure; raises
:class:`~flowtap.x1.codes.X1Error`.

Optional parts of the XSD that flowtap does not implement are refused, not dropped: ignoring a
``listOfServiceTypes`` or a mediation detail would tap something other than what the ADMF
asked for. They get the code the standard has for it (3050 service types) or the generic
failure of the request at hand (3000/3001 tasks, 6000/6001 destinations).
"""

from __future__ import annotations

import enum
from typing import Final, TypeVar

from lxml import etree

from flowtap.x1 import values
from flowtap.x1.codes import ErrorCode, X1Error, schema_error
from flowtap.x1.model import DeliveryAddress, DeliveryType, DestinationDetails, TaskDetails
from flowtap.x1.names import X1_NS, common, x1
from flowtap.x1.targets import (
    SUPPORTED_KINDS,
    UNSUPPORTED_KINDS,
    AddressTarget,
    CidrTarget,
    IPAddress,
    IPNetwork,
    PortRangeTarget,
    PortTarget,
    Target,
    Transport,
)
from flowtap.x1.xmlread import Children, leaf, local_name

MAX_TARGETS: Final = 256  # targetIdentifier entries per task
MAX_DESTINATIONS: Final = 16  # dId entries per task

# deliveryAddress alternatives other than ipAddressAndPort: recognised, refused with 6020.
UNSUPPORTED_ADDRESS_KINDS: Final = frozenset({"e164Number", "uri", "emailAddress"})

_E = TypeVar("_E", bound=enum.StrEnum)


def enumerated(element: etree._Element, kind: type[_E]) -> _E:
    value = (leaf(element) or "").strip()
    try:
        return kind(value)
    except ValueError:
        raise schema_error(f"{local_name(element)} is not one of "
                           f"{', '.join(kind)}") from None  # fmt: skip


def task_details(element: etree._Element, failure: ErrorCode) -> TaskDetails:
    """``taskDetails``; ``failure`` is 3000 (ActivateTask) or 3001 (ModifyTask)."""
    seq = Children(element, "taskDetails")
    xid = values.parse_uuid(leaf(seq.required(x1("xId"))), "xId")
    targets_element = seq.required(x1("targetIdentifiers"))
    entries = Children(targets_element, "targetIdentifiers")
    targets = tuple(target(entry) for entry in
                    entries.repeated(x1("targetIdentifier"), 1, MAX_TARGETS))  # fmt: skip
    entries.end()
    delivery_type = enumerated(seq.required(x1("deliveryType")), DeliveryType)
    dids = Children(seq.required(x1("listOfDIDs")), "listOfDIDs")
    destinations = tuple(values.parse_uuid(leaf(d), "dId")
                         for d in dids.repeated(x1("dId"), 0, MAX_DESTINATIONS))  # fmt: skip
    if dids.optional(x1("dSId")) is not None:
        raise X1Error(failure, "dSId (destination sets) is not supported")
    dids.end()
    if seq.optional(x1("listOfMediationDetails")) is not None:
        raise X1Error(failure, "listOfMediationDetails is not supported")
    found = seq.optional(x1("correlationID"))
    correlation = None if found is None else values.integer(leaf(found), "correlationID", 0)
    found = seq.optional(x1("implicitDeactivationAllowed"))
    implicit = None if found is None else values.boolean(leaf(found),
                                                         "implicitDeactivationAllowed")
    found = seq.optional(x1("productID"))
    product = None if found is None else values.parse_uuid(leaf(found), "productID")
    if seq.optional(x1("listOfServiceTypes")) is not None:
        raise X1Error(ErrorCode.UNSUPPORTED_SERVICE_TYPE, "listOfServiceTypes is not supported")
    if seq.repeated(x1("taskDetailsExtensions")):
        raise X1Error(failure, "taskDetailsExtensions are not supported")
    if seq.optional(x1("listOfTrafficPolicyReferences")) is not None:
        raise X1Error(failure, "listOfTrafficPolicyReferences is not supported")
    seq.end()
    return TaskDetails(xid, targets, delivery_type, destinations, correlation, implicit, product)


def target(element: etree._Element) -> Target:
    """One ``targetIdentifier`` (an XSD choice)."""
    kind = Children(element, "targetIdentifier").choice()
    qname = etree.QName(kind)
    name = qname.localname
    if qname.namespace == X1_NS and name in UNSUPPORTED_KINDS:
        raise X1Error(ErrorCode.UNSUPPORTED_TARGET_IDENTIFIER_TYPE,
                      f"targetIdentifier kind {name} is not supported")
    if qname.namespace != X1_NS or name not in SUPPORTED_KINDS:
        raise schema_error(f"unexpected element {local_name(kind)} in targetIdentifier")
    if name == "ipv4Address":
        return AddressTarget(values.ipv4_address(leaf(kind), name))
    if name == "ipv6Address":
        return AddressTarget(values.ipv6_address(leaf(kind), name))
    if name == "ipv6Cidr":
        return CidrTarget(values.ipv6_network(leaf(kind), name))
    if name == "ipv4Cidr":
        return CidrTarget(_ip_cidr(kind))
    transport: Transport = "tcp" if name.startswith("tcp") else "udp"
    if name.endswith("Range"):
        bounds = Children(kind, name)
        start = values.port(leaf(bounds.required(common("start"))), f"{name} start")
        end = values.port(leaf(bounds.required(common("end"))), f"{name} end")
        bounds.end()
        if start > end:
            raise schema_error(f"{name} start is above its end")
        return PortRangeTarget(transport, start, end)
    return PortTarget(transport, values.port(leaf(kind), name))


def _ip_cidr(element: etree._Element) -> IPNetwork:
    # ipv4Cidr is the common IPCIDR type, a choice wrapper (unlike ipv6Cidr, a plain string):
    # the generated bindings of TS 103 221-1 show it (fact sheet §2.4).
    inner = Children(element, "ipv4Cidr").choice()
    if inner.tag == common("IPv4CIDR"):
        return values.ipv4_network(leaf(inner), "ipv4Cidr")
    if inner.tag == common("IPv6CIDR"):
        return values.ipv6_network(leaf(inner), "ipv4Cidr")
    raise schema_error(f"unexpected element {local_name(inner)} in ipv4Cidr")


def destination_details(element: etree._Element, failure: ErrorCode) -> DestinationDetails:
    """``destinationDetails``; ``failure`` is 6000 (CreateDestination) or 6001 (Modify)."""
    seq = Children(element, "destinationDetails")
    did = values.parse_uuid(leaf(seq.required(x1("dId"))), "dId")
    found = seq.optional(x1("friendlyName"))
    friendly = None if found is None else values.text(leaf(found), "friendlyName")
    delivery_type = enumerated(seq.required(x1("deliveryType")), DeliveryType)
    address = delivery_address(seq.required(x1("deliveryAddress")))
    if seq.repeated(x1("destinationDetailsExtensions")):
        raise X1Error(failure, "destinationDetailsExtensions are not supported")
    seq.end()
    return DestinationDetails(did, delivery_type, address, friendly)


def delivery_address(element: etree._Element) -> DeliveryAddress:
    kind = Children(element, "deliveryAddress").choice()
    qname = etree.QName(kind)
    if qname.namespace == X1_NS and qname.localname in UNSUPPORTED_ADDRESS_KINDS:
        raise X1Error(ErrorCode.UNSUPPORTED_DELIVERY_ADDRESS_TYPE,
                      f"deliveryAddress kind {qname.localname} is not supported")
    if kind.tag != x1("ipAddressAndPort"):
        raise schema_error(f"unexpected element {local_name(kind)} in deliveryAddress")
    seq = Children(kind, "ipAddressAndPort")
    address_choice = Children(seq.required(common("address")), "address").choice()
    port_choice = Children(seq.required(common("port")), "port").choice()
    seq.end()
    if address_choice.tag == common("IPv4Address"):
        address: IPAddress = values.ipv4_address(leaf(address_choice), "IPv4Address")
    elif address_choice.tag == common("IPv6Address"):
        address = values.ipv6_address(leaf(address_choice), "IPv6Address")
    else:
        raise schema_error(f"unexpected element {local_name(address_choice)} in address")
    if port_choice.tag not in (common("TCPPort"), common("UDPPort")):
        raise schema_error(f"unexpected element {local_name(port_choice)} in port")
    name = etree.QName(port_choice).localname
    number = values.port(leaf(port_choice), name)
    return DeliveryAddress(address, number, "tcp" if name == "TCPPort" else "udp")
