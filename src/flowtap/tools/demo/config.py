"""The seed's configuration as NETCONF ``<config>`` content, step by step (the same payloads as
``netconf/examples/``, with this lab's devices, addresses and users).

Every function returns the children of ``<config>``: an ``<edit-config>`` body, or several
joined together for one commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from flowtap.auth.passwords import make_hash
from flowtap.tools.demo.lab import INGRESS_DEV, Agency

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
SYS = "urn:flowtap:yang:system"
IFS = "urn:flowtap:yang:interfaces"
SVC = "urn:flowtap:yang:services"
SERVICE_PIC = "sp-0/0/0"
INGRESS = "ge-0/0/0"
LI_OPERATOR = "li-operator"  # the seed's class for mediation devices: flow-tap-operation only


def _leaf(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def interfaces(ingress_device: str = INGRESS_DEV) -> str:
    """``interfaces``: the services PIC unit and the ingress interface bound to its Linux
    device with ``host-device``.

    The services PIC is a name here: Linux has no PIC and copies are routed by the kernel, so
    its own ``host-device`` is never captured (lo, as in ``netconf/examples/``). flow-tap taps
    every other configured interface: ``ge-0/0/0``, on the router's ingress device."""
    return (
        f'<interfaces xmlns="{IFS}">'
        f"<interface>{_leaf('name', SERVICE_PIC)}"
        "<description>services PIC: flow-tap</description><host-device>lo</host-device>"
        "<unit><name>0</name><family><inet/></family></unit></interface>"
        f"<interface>{_leaf('name', INGRESS)}<description>subscriber ingress</description>"
        f"{_leaf('host-device', ingress_device)}"
        "<unit><name>0</name><family><inet/></family></unit></interface>"
        "</interfaces>"
    )


def flow_tap_service() -> str:
    """``services flow-tap { interface sp-0/0/0.0; }``."""
    return (f'<services xmlns="{SVC}"><flow-tap>{_leaf("interface", SERVICE_PIC + ".0")}'
            "</flow-tap></services>")


def flow_tap(ingress_device: str = INGRESS_DEV) -> str:
    """:func:`interfaces` and :func:`flow_tap_service` together."""
    return interfaces(ingress_device) + flow_tap_service()


def dtcp(listen: Iterable[str] = (), *, connection_limit: int | None = 5,
         rate_limit: int | None = 5, port: int | None = None) -> str:
    """``system services flow-tap-dtcp ssh { connection-limit 5; rate-limit 5; }`` (the seed's
    values), listening on ``listen`` (all addresses when empty)."""
    body = "".join(_leaf("listen-address", a) for a in listen)
    if port is not None:
        body = _leaf("port", port) + body
    if connection_limit is not None:
        body += _leaf("connection-limit", connection_limit)
    if rate_limit is not None:
        body += _leaf("rate-limit", rate_limit)
    return (f'<system xmlns="{SYS}"><services><flow-tap-dtcp><ssh>{body}</ssh></flow-tap-dtcp>'
            "</services></system>")


def delete_dtcp() -> str:
    """Remove ``system services flow-tap-dtcp``."""
    return (f'<system xmlns="{SYS}" xmlns:nc="{NC}"><services>'
            '<flow-tap-dtcp nc:operation="delete"/></services></system>')


@dataclass(frozen=True, slots=True)
class LoginClass:
    name: str
    permissions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LoginUser:
    name: str
    login_class: str
    password: str | None = None  # None: no local credential (a RADIUS template)
    full_name: str | None = None
    rounds: int | None = None  # crypt rounds (None: the appliance default)

    def xml(self) -> str:
        auth = ""
        if self.password:
            auth = ("<authentication>"
                    f"{_leaf('encrypted-password', make_hash(self.password, self.rounds))}"
                    "</authentication>")  # fmt: skip
        full = _leaf("full-name", self.full_name) if self.full_name else ""
        return (f"<user>{_leaf('name', self.name)}{full}{_leaf('class', self.login_class)}"
                f"{auth}</user>")


def login(classes: Sequence[LoginClass] = (), users: Sequence[LoginUser] = ()) -> str:
    """``system login`` classes and users."""
    body = "".join(
        f"<class>{_leaf('name', c.name)}{''.join(_leaf('permissions', p) for p in c.permissions)}"
        "</class>"
        for c in classes
    )
    body += "".join(u.xml() for u in users)
    return f'<system xmlns="{SYS}"><login>{body}</login></system>'


def mediation_device(agency: Agency, password: str, *, rounds: int | None = None) -> LoginUser:
    """The local login of an agency's mediation device (class ``li-operator``)."""
    return LoginUser(agency.user, LI_OPERATOR, password,
                     f"Mediation device, agency {agency.label}", rounds)  # fmt: skip


LI_OPERATOR_CLASS = LoginClass(LI_OPERATOR, ("flow-tap-operation",))


def radius(address: str, port: int, secret: str, *, timeout: int = 2, retry: int = 1) -> str:
    """``authentication-order [radius password]`` and one RADIUS server."""
    return (
        f'<system xmlns="{SYS}"><authentication-order>radius</authentication-order>'
        "<authentication-order>password</authentication-order>"
        f"<radius-server>{_leaf('name', address)}{_leaf('port', port)}{_leaf('secret', secret)}"
        f"{_leaf('timeout', timeout)}{_leaf('retry', retry)}</radius-server></system>"
    )

