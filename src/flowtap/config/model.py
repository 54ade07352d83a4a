"""Typed, immutable snapshot of a configuration, built from a validated datastore tree.

Commit hooks see only ``(old, new)`` snapshots; they never walk XML themselves. Defaults here are
the YANG defaults (a test keeps the two in step).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from lxml import etree

from flowtap.config.permissions import PREDEFINED_CLASSES, expand

NS_SYSTEM = "urn:flowtap:yang:system"
NS_INTERFACES = "urn:flowtap:yang:interfaces"
NS_SERVICES = "urn:flowtap:yang:services"

DEFAULT_NETCONF_PORT = 830
DEFAULT_DTCP_PORT = 32001
DEFAULT_CONNECTION_LIMIT = 75
DEFAULT_RATE_LIMIT = 150
DEFAULT_MAX_PRE_AUTH = 32
DEFAULT_MAX_PRE_AUTH_PER_SOURCE = 10
HMAC_LENIENT = "lenient"
HMAC_STRICT = "strict"
DEFAULT_HMAC_POLICY = HMAC_LENIENT
"""Junos-compatible: the SSH key is the public string "Juniper" and Junos' own reaction to a bad
digest is undocumented, so mismatches are served and audit-logged unless ``strict``."""
DEFAULT_RADIUS_PORT = 1812
DEFAULT_RADIUS_TIMEOUT = 3
DEFAULT_RADIUS_RETRY = 3
DEFAULT_CRITERIA_LIMIT = 32768
DEFAULT_CRITERIA_PER_SOURCE_LIMIT = 16384
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")
REMOTE_TEMPLATE = "remote"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    login_class: str
    encrypted_password: str | None = None
    public_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RadiusServer:
    address: str
    secret: str
    port: int = DEFAULT_RADIUS_PORT
    timeout: int = DEFAULT_RADIUS_TIMEOUT
    retry: int = DEFAULT_RADIUS_RETRY
    source_address: str | None = None


@dataclass(frozen=True, slots=True)
class NetconfService:
    port: int = DEFAULT_NETCONF_PORT
    listen_addresses: tuple[str, ...] = LOOPBACK_ADDRESSES
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    rate_limit: int = DEFAULT_RATE_LIMIT
    max_pre_auth: int = DEFAULT_MAX_PRE_AUTH
    max_pre_auth_per_source: int = DEFAULT_MAX_PRE_AUTH_PER_SOURCE


@dataclass(frozen=True, slots=True)
class DtcpService:
    port: int = DEFAULT_DTCP_PORT
    connection_limit: int = DEFAULT_CONNECTION_LIMIT
    rate_limit: int = DEFAULT_RATE_LIMIT
    max_pre_auth: int = DEFAULT_MAX_PRE_AUTH
    max_pre_auth_per_source: int = DEFAULT_MAX_PRE_AUTH_PER_SOURCE
    listen_addresses: tuple[str, ...] = ()
    hmac_policy: str = DEFAULT_HMAC_POLICY  # HMAC_LENIENT or HMAC_STRICT


@dataclass(frozen=True, slots=True)
class Unit:
    number: int
    inet: bool = False
    inet6: bool = False
    inet_addresses: tuple[str, ...] = ()
    inet6_addresses: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Interface:
    name: str
    host_device: str
    disabled: bool = False
    units: dict[int, Unit] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class X1Service:
    """``services flow-tap x1``: the ETSI X1 HTTPS listener and its TLS material."""

    address: str | None
    port: int
    ne_identifier: str
    certificate_file: str
    private_key_file: str
    client_ca_file: str


@dataclass(frozen=True, slots=True)
class FlowTapService:
    interface: str | None = None
    tunnel_interface: str | None = None
    criteria_limit: int = DEFAULT_CRITERIA_LIMIT  # limits criteria: all control sources
    criteria_per_source_limit: int = DEFAULT_CRITERIA_PER_SOURCE_LIMIT
    capture_workers: int | None = None  # None: one per online CPU
    x1: X1Service | None = None


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, as the runtime components need it."""

    classes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    idle_timeouts: Mapping[str, int] = field(default_factory=dict)  # class -> minutes
    users: Mapping[str, User] = field(default_factory=dict)
    authentication_order: tuple[str, ...] = ()
    radius_servers: tuple[RadiusServer, ...] = ()
    netconf: NetconfService | None = None
    dtcp: DtcpService | None = None
    interfaces: dict[str, Interface] = field(default_factory=dict)
    flow_tap: FlowTapService | None = None
    dynamic_flow_capture: bool = False

    def class_permissions(self, login_class: str) -> frozenset[str]:
        """Effective (expanded) permissions of a predefined or configured class."""
        if login_class in PREDEFINED_CLASSES:
            return expand(PREDEFINED_CLASSES[login_class])
        return expand(self.classes.get(login_class, frozenset()))

    def flow_tap_unit(self) -> tuple[Interface, Unit] | None:
        """The services PIC unit named by ``services flow-tap interface``, if configured."""
        if self.flow_tap is None or self.flow_tap.interface is None:
            return None
        name, _, unit = self.flow_tap.interface.partition(".")
        iface = self.interfaces.get(name)
        if iface is None or not unit.isdigit() or int(unit) not in iface.units:
            return None
        return iface, iface.units[int(unit)]


_S = f"{{{NS_SYSTEM}}}"
_NAME = f"{_S}name"
_PERM = f"{_S}permissions"
_IDLE_TIMEOUT = f"{_S}idle-timeout"
_AUTH = f"{_S}authentication"
_CLASS_LEAF = f"{_S}class"
_PASSWORD = f"{_S}encrypted-password"
_KEYS = f"{_S}*/{_S}name"  # ssh-rsa, ssh-ecdsa and ssh-ed25519 entries


@functools.lru_cache(maxsize=256)
def _q(ns: str, path: str) -> str:
    return "/".join(f"{{{ns}}}{part}" for part in path.split("/"))


def _text(el: etree._Element | None, path: str, ns: str) -> str | None:
    if el is None:
        return None
    found = el.find(_q(ns, path))
    return None if found is None or found.text is None else found.text.strip()


def _texts(el: etree._Element | None, path: str, ns: str) -> tuple[str, ...]:
    if el is None:
        return ()
    return tuple((e.text or "").strip() for e in el.iterfind(_q(ns, path)))


def _int(el: etree._Element | None, path: str, ns: str, default: int) -> int:
    value = _text(el, path, ns)
    return default if value is None else int(value)


K = TypeVar("K")
V = TypeVar("V")


class _Lazy(Mapping[K, V]):
    """A read-only mapping parsed from its subtree on first use.

    A commit builds a new snapshot every time, but the login classes and users are only read
    when someone logs in: parsing them eagerly was the largest part of a commit's snapshot.
    """

    def __init__(self, element: etree._Element | None,
                 parse: Callable[[etree._Element], dict[K, V]]) -> None:  # fmt: skip
        self._element = element
        self._parse = parse
        self._data: dict[K, V] | None = None

    @property
    def data(self) -> dict[K, V]:
        if self._data is None:
            self._data = {} if self._element is None else self._parse(self._element)
        return self._data

    def __getitem__(self, key: K) -> V:
        return self.data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return repr(self.data)


def _parse_classes(login: etree._Element) -> dict[str, frozenset[str]]:
    return {
        c.findtext(_NAME) or "": frozenset(p.text or "" for p in c.iterfind(_PERM))
        for c in login.iterfind(f"{_S}class")
    }


def _parse_idle_timeouts(login: etree._Element) -> dict[str, int]:
    return {
        c.findtext(_NAME) or "": int(minutes)
        for c in login.iterfind(f"{_S}class")
        if (minutes := c.findtext(_IDLE_TIMEOUT))
    }


def _parse_users(login: etree._Element) -> dict[str, User]:
    users = {}
    for u in login.iterfind(f"{_S}user"):
        auth = u.find(_AUTH)
        name = u.findtext(_NAME) or ""
        users[name] = User(
            name=name,
            login_class=u.findtext(_CLASS_LEAF) or "unauthorized",
            encrypted_password=None if auth is None else auth.findtext(_PASSWORD),
            public_keys=() if auth is None else tuple(k.text or "" for k in auth.iterfind(_KEYS)),
        )
    return users


def from_tree(root: etree._Element) -> Config:
    """Build the snapshot from a datastore tree (a ``<config>``/``<data>`` element whose children
    are the top-level containers)."""
    system = root.find(_q(NS_SYSTEM, "system"))
    services = root.find(_q(NS_SERVICES, "services"))
    login = system.find(f"{_S}login") if system is not None else None
    return Config(
        classes=_Lazy(login, _parse_classes),
        idle_timeouts=_Lazy(login, _parse_idle_timeouts),
        users=_Lazy(login, _parse_users),
        authentication_order=_texts(system, "authentication-order", NS_SYSTEM),
        radius_servers=_radius_servers(system),
        netconf=_netconf(system),
        dtcp=_dtcp(system),
        interfaces=_interfaces(root.find(_q(NS_INTERFACES, "interfaces"))),
        flow_tap=_flow_tap(services),
        dynamic_flow_capture=services is not None
        and services.find(_q(NS_SERVICES, "dynamic-flow-capture")) is not None,
    )


def _radius_servers(system: etree._Element | None) -> tuple[RadiusServer, ...]:
    s = NS_SYSTEM
    return tuple(
        RadiusServer(
            address=_text(r, "name", s) or "",
            secret=_text(r, "secret", s) or "",
            port=_int(r, "port", s, DEFAULT_RADIUS_PORT),
            timeout=_int(r, "timeout", s, DEFAULT_RADIUS_TIMEOUT),
            retry=_int(r, "retry", s, DEFAULT_RADIUS_RETRY),
            source_address=_text(r, "source-address", s),
        )
        for r in (system.iterfind(_q(s, "radius-server")) if system is not None else ())
    )


def _netconf(system: etree._Element | None) -> NetconfService | None:
    """``system services netconf ssh``: absent means NETCONF is not enabled."""
    s = NS_SYSTEM
    nc = system.find(_q(s, "services/netconf/ssh")) if system is not None else None
    if nc is None:
        return None
    return NetconfService(
        port=_int(nc, "port", s, DEFAULT_NETCONF_PORT),
        listen_addresses=_texts(nc, "listen-address", s) or LOOPBACK_ADDRESSES,
        connection_limit=_int(nc, "connection-limit", s, DEFAULT_CONNECTION_LIMIT),
        rate_limit=_int(nc, "rate-limit", s, DEFAULT_RATE_LIMIT),
        max_pre_auth=_int(nc, "max-pre-auth", s, DEFAULT_MAX_PRE_AUTH),
        max_pre_auth_per_source=_int(nc, "max-pre-auth-per-source", s,
                                     DEFAULT_MAX_PRE_AUTH_PER_SOURCE),
    )  # fmt: skip


def _dtcp(system: etree._Element | None) -> DtcpService | None:
    """``system services flow-tap-dtcp ssh``: absent means DTCP is not enabled."""
    s = NS_SYSTEM
    dt = system.find(_q(s, "services/flow-tap-dtcp/ssh")) if system is not None else None
    if dt is None:
        return None
    return DtcpService(
        port=_int(dt, "port", s, DEFAULT_DTCP_PORT),
        connection_limit=_int(dt, "connection-limit", s, DEFAULT_CONNECTION_LIMIT),
        rate_limit=_int(dt, "rate-limit", s, DEFAULT_RATE_LIMIT),
        max_pre_auth=_int(dt, "max-pre-auth", s, DEFAULT_MAX_PRE_AUTH),
        max_pre_auth_per_source=_int(dt, "max-pre-auth-per-source", s,
                                     DEFAULT_MAX_PRE_AUTH_PER_SOURCE),
        listen_addresses=_texts(dt, "listen-address", s),
        hmac_policy=_text(dt, "hmac-policy", s) or DEFAULT_HMAC_POLICY,
    )  # fmt: skip


def _interfaces(interfaces: etree._Element | None) -> dict[str, Interface]:
    i = NS_INTERFACES
    out = {}
    for ie in interfaces.iterfind(_q(i, "interface")) if interfaces is not None else ():
        name = _text(ie, "name", i) or ""
        out[name] = Interface(
            name=name,
            host_device=_text(ie, "host-device", i) or name,
            disabled=ie.find(_q(i, "disable")) is not None,
            units=_units(ie),
        )
    return out


def _units(interface: etree._Element) -> dict[int, Unit]:
    i = NS_INTERFACES
    units = {}
    for ue in interface.iterfind(_q(i, "unit")):
        number = int(_text(ue, "name", i) or 0)
        units[number] = Unit(
            number=number,
            inet=ue.find(_q(i, "family/inet")) is not None,
            inet6=ue.find(_q(i, "family/inet6")) is not None,
            inet_addresses=_texts(ue, "family/inet/address/name", i),
            inet6_addresses=_texts(ue, "family/inet6/address/name", i),
        )
    return units


def _flow_tap(services: etree._Element | None) -> FlowTapService | None:
    """``services flow-tap`` (a presence container): absent means flow-tap is not configured."""
    v = NS_SERVICES
    ft = services.find(_q(v, "flow-tap")) if services is not None else None
    if ft is None:
        return None
    workers = _text(ft, "capture-workers", v)
    return FlowTapService(
        interface=_text(ft, "interface", v),
        tunnel_interface=_text(ft, "tunnel-interface", v),
        criteria_limit=_int(ft, "limits/criteria", v, DEFAULT_CRITERIA_LIMIT),
        criteria_per_source_limit=_int(ft, "limits/criteria-per-source", v,
                                       DEFAULT_CRITERIA_PER_SOURCE_LIMIT),
        capture_workers=None if workers is None else int(workers),
        x1=_x1(ft.find(_q(v, "x1"))),
    )  # fmt: skip


def _x1(x1: etree._Element | None) -> X1Service | None:
    if x1 is None:
        return None
    v = NS_SERVICES
    return X1Service(
        address=_text(x1, "address", v), port=_int(x1, "port", v, 8443),
        ne_identifier=_text(x1, "ne-identifier", v) or "",
        certificate_file=_text(x1, "certificate-file", v) or "",
        private_key_file=_text(x1, "private-key-file", v) or "",
        client_ca_file=_text(x1, "client-ca-file", v) or "",
    )  # fmt: skip
