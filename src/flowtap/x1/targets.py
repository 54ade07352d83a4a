"""X1 target identifiers (LI-HANDOVER.md §2.4, §4): the IP kinds an IP tap can match, typed, and
the names of every other kind, which the decoder reports as unsupported (3010) by name.

How targets combine into a match (addresses OR, ports OR, addresses AND ports; an address taps
both directions) is the X1 front-end's rule when it builds an intercept, not the codec's.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final, Literal

Transport = Literal["tcp", "udp"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AddressTarget:
    """``ipv4Address`` / ``ipv6Address``: one host, both directions."""

    address: IPAddress

    @property
    def kind(self) -> str:
        return "ipv4Address" if self.address.version == 4 else "ipv6Address"


@dataclass(frozen=True, slots=True)
class CidrTarget:
    """``ipv4Cidr`` / ``ipv6Cidr``: a prefix (host bits clear), both directions."""

    network: IPNetwork

    @property
    def kind(self) -> str:
        return "ipv4Cidr" if self.network.version == 4 else "ipv6Cidr"


@dataclass(frozen=True, slots=True)
class PortTarget:
    """``tcpPort`` / ``udpPort``: the protocol, with the port as source or destination."""

    transport: Transport
    port: int

    @property
    def kind(self) -> str:
        return f"{self.transport}Port"


@dataclass(frozen=True, slots=True)
class PortRangeTarget:
    """``tcpPortRange`` / ``udpPortRange``: ``start <= end``, both inclusive."""

    transport: Transport
    start: int
    end: int

    @property
    def kind(self) -> str:
        return f"{self.transport}PortRange"


Target = AddressTarget | CidrTarget | PortTarget | PortRangeTarget

SUPPORTED_KINDS: Final = ("ipv4Address", "ipv6Address", "ipv4Cidr", "ipv6Cidr", "tcpPort",
                          "tcpPortRange", "udpPort", "udpPortRange")  # fmt: skip

# The rest of the XSD's TargetIdentifier choice: recognised, so that they are refused as
# unsupported (3010) and not as unknown elements (1010).
UNSUPPORTED_KINDS: Final = frozenset({
    "e164Number", "imsi", "imei", "macAddress", "emailAddress", "internationalizedEmailAddress",
    "sipUri", "telUri", "h323Uri", "impu", "impi", "nai", "radiusAttribute", "gtpuTunnelId",
    "gtpcTunnelId", "callPartyRole", "nonLocalIdentifier", "supiimsi", "supinai", "suci",
    "peiImei", "peiImeiCheckDigit", "peiImeisv", "gpsiMsisdn", "gpsiNai", "eui64",
    "serviceAccessIdentifier", "hashedIdentifier", "targetIdentifierExtension",
})
